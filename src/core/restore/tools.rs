//! Running PostgreSQL's client programs (pg_restore, pg_amcheck).

use std::path::{Path, PathBuf};

/// The program `name`: in `bin_dir` if given, else on `PATH`, else in the
/// newest `/usr/lib/postgresql/*/bin`.
pub fn find(name: &str, bin_dir: Option<&Path>) -> Option<PathBuf> {
    if let Some(dir) = bin_dir {
        let p = dir.join(name);
        return p.is_file().then_some(p);
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin").join(name)))
        .filter(|p| p.is_file())
        .collect();
    versions.sort();
    versions.pop()
}

/// The last few lines of a program's error output, for a reason.
pub fn tail(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(4);
    let text = lines.get(start..).unwrap_or_default().join(" | ");
    if text.is_empty() {
        "(no error output)".to_string()
    } else {
        text
    }
}

/// [`tail`] of a PostgreSQL client's error output without the lines that
/// can quote row values (`DETAIL:`, `CONTEXT:` of a COPY, `Command was:`,
/// `LINE n:`): what goes into a verdict (history, reports) names the error,
/// never a customer's value.
pub fn tail_without_values(stderr: &str) -> String {
    let kept: Vec<&str> = stderr
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            let t = t.strip_prefix("pg_restore: ").unwrap_or(t);
            let t = t.strip_prefix("pg_amcheck: ").unwrap_or(t);
            !(t.starts_with("DETAIL:")
                || t.starts_with("CONTEXT:")
                || t.starts_with("Command was:")
                || t.starts_with("LINE ")
                || t.starts_with("HINT:"))
        })
        .collect();
    tail(&kept.join("\n"))
}

/// A connection URL without its password, and the password (percent-decoded)
/// to hand over in `PGPASSWORD`, so that it never shows in a process list.
pub fn split_password(url: &str) -> (String, Option<String>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_string(), None);
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return (url.to_string(), None);
    };
    let Some((user, password)) = userinfo.split_once(':') else {
        return (url.to_string(), None);
    };
    (
        format!("{scheme}://{user}@{host}{tail}"),
        Some(percent_decode(password)),
    )
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes.get(i).copied().unwrap_or_default();
        if b == b'%'
            && let Some(h) = s.get(i + 1..i + 3)
            && let Ok(v) = u8::from_str_radix(h, 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A command for `program` connecting to `url`: the URL goes in `--dbname`
/// (or, with `positional`, as the last argument: pg_amcheck) without its
/// password, which goes in the environment.
pub fn command_for(program: &Path, url: &str, positional: bool) -> tokio::process::Command {
    let (url, password) = split_password(url);
    let mut cmd = tokio::process::Command::new(program);
    if positional {
        cmd.arg(url);
    } else {
        cmd.arg(format!("--dbname={url}"));
    }
    cmd.kill_on_drop(true);
    if let Some(p) = password {
        cmd.env("PGPASSWORD", p);
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_split() {
        assert_eq!(
            split_password("postgres://u:p%40ss@h:5432/db?sslmode=disable"),
            (
                "postgres://u@h:5432/db?sslmode=disable".to_string(),
                Some("p@ss".to_string())
            )
        );
        assert_eq!(
            split_password("postgres://u@h/db"),
            ("postgres://u@h/db".to_string(), None)
        );
        assert_eq!(tail(""), "(no error output)");
        let err = "pg_restore: error: COPY failed for table \"users\": ERROR:  bad\nCONTEXT:  COPY users, line 3, column email: \"jane@example.com\"\npg_restore: error: could not execute query: ERROR: dup\nDETAIL:  Key (email)=(jane@example.com) already exists.\nCommand was: INSERT INTO users VALUES ('jane@example.com');\n";
        let t = tail_without_values(err);
        assert!(!t.contains("jane"), "{t}");
        assert!(t.contains("could not execute query"), "{t}");
    }
}
