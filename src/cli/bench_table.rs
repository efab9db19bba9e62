//! One table for every benchmark. Each benchmark records its headline
//! figures (figure, target, measured, baseline, met) as JSON lines in the
//! file named by `$CHARON_BENCH_RESULTS` when that is set; `charon bench
//! table` turns the file into a Markdown table and puts it at the top of
//! BENCHMARKS.md, between two markers, leaving the rest of the file (the
//! detailed write-ups) alone. `scripts/bench.sh` runs them all.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// The environment variable naming the results file (JSON lines).
pub const RESULTS_ENV: &str = "CHARON_BENCH_RESULTS";

const START: &str =
    "<!-- bench-table:start (written by scripts/bench.sh; edits are overwritten) -->";
const END: &str = "<!-- bench-table:end -->";

/// One headline figure of one benchmark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// What was measured, e.g. "tenant search, name, p95".
    pub figure: String,
    /// The target as the issue states it, e.g. "< 20 ms".
    pub target: String,
    /// The measured value with its unit.
    pub measured: String,
    /// What it is compared with (bare SQL, bare pg_restore …), or "—".
    pub baseline: String,
    /// Whether the target is met; `None` where there is no target.
    pub met: Option<bool>,
}

impl Figure {
    pub fn new(
        figure: impl Into<String>,
        target: impl Into<String>,
        measured: impl Into<String>,
        baseline: impl Into<String>,
        met: Option<bool>,
    ) -> Figure {
        Figure {
            figure: figure.into(),
            target: target.into(),
            measured: measured.into(),
            baseline: baseline.into(),
            met,
        }
    }
}

/// Appends `figures` to the results file when `$CHARON_BENCH_RESULTS` is
/// set; does nothing otherwise (a benchmark run by hand only prints).
pub fn record(figures: &[Figure]) -> anyhow::Result<()> {
    let Some(path) = std::env::var_os(RESULTS_ENV) else {
        return Ok(());
    };
    append(Path::new(&path), figures)
}

fn append(path: &Path, figures: &[Figure]) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening the benchmark results {}", path.display()))?;
    for f in figures {
        writeln!(file, "{}", serde_json::to_string(f)?)?;
    }
    Ok(())
}

/// Reads a results file written by [`record`].
pub fn read(path: &Path) -> anyhow::Result<Vec<Figure>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the benchmark results {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("{} line {}", path.display(), i + 1))
        })
        .collect()
}

/// A table cell: pipes escaped, line breaks flattened.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// The Markdown block (with its markers) for `figures`; `about` is one
/// line saying when, where and at what scale the run was made.
pub fn render(figures: &[Figure], about: &str) -> String {
    let mut out = format!(
        "{START}\n## All benchmarks, one run\n\n{}\n\n| figure | target | measured | baseline | met |\n| --- | --- | --- | --- | --- |\n",
        cell(about)
    );
    for f in figures {
        let met = match f.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "—",
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {met} |\n",
            cell(&f.figure),
            cell(&f.target),
            cell(&f.measured),
            cell(&f.baseline),
        ));
    }
    out.push_str(END);
    out
}

/// `doc` with its table block replaced by `block`; when it has none yet,
/// the block goes before the first `## ` section (or at the end).
pub fn splice(doc: &str, block: &str) -> String {
    if let (Some(s), Some(e)) = (doc.find(START), doc.find(END))
        && s < e
    {
        return format!("{}{block}{}", &doc[..s], &doc[e + END.len()..]);
    }
    match doc.find("\n## ") {
        Some(i) => format!("{}{block}\n\n{}", &doc[..=i], &doc[i + 1..]),
        None => format!("{}\n\n{block}\n", doc.trim_end()),
    }
}

/// `charon bench table`: the results file into BENCHMARKS.md.
pub fn write_table(results: &Path, benchmarks: &Path, about: &str) -> anyhow::Result<usize> {
    let figures = read(results)?;
    anyhow::ensure!(
        !figures.is_empty(),
        "no figures in {}: did the benchmarks run with {RESULTS_ENV} set?",
        results.display()
    );
    let doc = std::fs::read_to_string(benchmarks).unwrap_or_else(|_| "# Benchmarks\n".into());
    let new = splice(&doc, &render(&figures, about));
    let tmp = benchmarks.with_extension("md.tmp");
    std::fs::write(&tmp, new)?;
    std::fs::rename(&tmp, benchmarks)?;
    Ok(figures.len())
}

/// The `p`-th percentile (nearest rank) of `v`, which it sorts.
pub fn pct(v: &mut [std::time::Duration], p: usize) -> std::time::Duration {
    v.sort();
    let i = ((v.len() * p).div_ceil(100)).saturating_sub(1);
    v.get(i).copied().unwrap_or_default()
}

/// Milliseconds with two decimals.
pub fn ms(d: std::time::Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn figs() -> Vec<Figure> {
        vec![
            Figure::new(
                "search p95",
                "< 20 ms",
                "16.05 ms",
                "14.41 ms bare",
                Some(true),
            ),
            Figure::new("a | b", "—", "3", "—", None),
            Figure::new("checks", "< 25 %", "25.8 %", "bare", Some(false)),
        ]
    }

    #[test]
    fn renders_every_figure_with_pipes_escaped_and_misses_in_bold() {
        let t = render(&figs(), "run of today");
        assert!(t.starts_with(START) && t.ends_with(END));
        assert!(t.contains("| search p95 | < 20 ms | 16.05 ms | 14.41 ms bare | yes |"));
        assert!(t.contains("| a \\| b | — | 3 | — | — |"));
        assert!(t.contains("| **no** |"));
        assert_eq!(t.matches("\n| ").count(), 2 + 3);
    }

    #[test]
    fn splice_inserts_before_the_first_section_then_replaces_in_place() {
        let doc = "# Benchmarks\n\nIntro.\n\n## Seeding\n\ndetails\n";
        let once = splice(doc, &render(&figs(), "first"));
        assert!(once.find(START).unwrap() < once.find("## Seeding").unwrap());
        assert!(once.contains("Intro.") && once.contains("details"));
        let twice = splice(&once, &render(&figs()[..1], "second"));
        assert_eq!(twice.matches(START).count(), 1);
        assert!(twice.contains("second") && !twice.contains("first"));
        assert!(!twice.contains("a \\| b"));
        assert!(twice.ends_with("details\n"));
    }

    #[test]
    fn results_round_trip_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        append(&path, &figs()[..2]).unwrap();
        append(&path, &figs()[2..]).unwrap();
        assert_eq!(read(&path).unwrap(), figs());
        let md = dir.path().join("B.md");
        std::fs::write(&md, "# Benchmarks\n\n## Old\n").unwrap();
        assert_eq!(write_table(&path, &md, "now").unwrap(), 3);
        let text = std::fs::read_to_string(&md).unwrap();
        assert!(text.contains("| checks |") && text.contains("## Old"));
    }

    #[test]
    fn an_empty_results_file_is_an_error_not_an_empty_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        std::fs::write(&path, "").unwrap();
        let md = dir.path().join("B.md");
        assert!(write_table(&path, &md, "now").is_err());
        assert!(!md.exists());
    }
}
