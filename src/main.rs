//! The `charon` binary: parse arguments, run, exit with the command's code.

use clap::Parser;

#[tokio::main]
async fn main() {
    let cli = charon::cli::Cli::parse();
    let code = match charon::cli::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            // `{:#}` prints the chain of causes on one line.
            eprintln!("charon: {e:#}");
            1
        }
    };
    std::process::exit(code);
}
