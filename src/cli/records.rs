//! `charon records list|show`: masked records for scripts.
//!
//! ```text
//! charon records list --tenant ID --type receipts [--json] [--limit N]
//!                     [--after CURSOR | --before CURSOR | --last]
//!                     [--sort date|amount] [--desc] [--filter TEXT]
//!                     [--from YYYY-MM-DD] [--to YYYY-MM-DD] [--min N] [--max N]
//! charon records show --tenant ID --type receipts --id ID [--json]
//! ```
//!
//! Text output goes through the terminal sanitiser, one record per line,
//! fields separated by two spaces as `name=value` (a tab or newline inside
//! a value is shown escaped, so a line is always one record); the page's
//! cursors follow on lines `# next CURSOR` / `# prev CURSOR`. JSON is the
//! service's [`Page`] / [`MaskedRecord`], escaped by `output::json`.
//!
//! Both go through the console's dispatch point (MFA gate, permission
//! table, audit) like every other action.

use chrono::NaiveDate;
use clap::{Args, Subcommand, ValueEnum};
use uuid::Uuid;

use super::output;
use super::session::{Factor, dispatch_stepped};
use crate::core::action::{Action, Reply};
use crate::core::console::Console;
use crate::core::records::{
    self, At, Cursor, Dir, Filter, Kind, MaskedRecord, Page, Query, SortBy,
};

#[derive(Debug, Subcommand)]
pub enum RecordsCommand {
    /// One page of a tenant's records of one type, masked.
    List(ListArgs),
    /// One record with all its fields, masked.
    Show(ShowArgs),
    /// Show one personal field unmasked, for a ticket (support, compliance;
    /// step-up; audited with the field and the reason, never the value).
    Reveal(RevealArgs),
    /// Permanently redact one field (compliance): shows the before/after,
    /// asks for confirmation (or --yes), then applies it with a step-up.
    Redact(RedactArgs),
    /// Redact every match of a detector across one tenant's free-text
    /// columns: shows the count per column first, then applies all of them
    /// in one transaction (compliance; confirmation or --yes; step-up).
    RedactAll(RedactAllArgs),
}

#[derive(Debug, Args)]
pub struct RedactAllArgs {
    #[arg(long)]
    pub tenant: Uuid,
    /// card, iban, email or phone.
    #[arg(long, value_parser = parse_detector)]
    pub detector: crate::core::detect::Detector,
    /// The reason or ticket reference (recorded in the audit log).
    #[arg(long)]
    pub reason: String,
    /// Apply without asking (for scripts).
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct FieldArgs {
    #[arg(long)]
    pub tenant: Uuid,
    #[arg(long = "type", value_parser = parse_kind)]
    pub kind: Kind,
    #[arg(long)]
    pub id: String,
    /// The column, e.g. `notes`.
    #[arg(long)]
    pub field: String,
    /// The reason or ticket reference (recorded in the audit log).
    #[arg(long)]
    pub reason: String,
}

#[derive(Debug, Args)]
pub struct RevealArgs {
    #[command(flatten)]
    pub field: FieldArgs,
}

#[derive(Debug, Args)]
pub struct RedactArgs {
    #[command(flatten)]
    pub field: FieldArgs,
    /// Replace what this detector finds (card, iban, email, phone) with `[REDACTED:…]`.
    #[arg(long, conflicts_with = "null", value_parser = parse_detector)]
    pub detector: Option<crate::core::detect::Detector>,
    /// Set the whole value to NULL instead.
    #[arg(long)]
    pub null: bool,
    /// Apply without asking (for scripts).
    #[arg(long)]
    pub yes: bool,
}

fn parse_detector(s: &str) -> Result<crate::core::detect::Detector, String> {
    crate::core::detect::Detector::parse(s)
        .ok_or_else(|| "unknown detector; one of card, iban, email, phone".to_string())
}

/// Reads `--type`.
pub fn parse_kind(s: &str) -> Result<Kind, String> {
    Kind::parse(s).ok_or_else(|| {
        let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
        format!("unknown record type; one of: {}", names.join(", "))
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SortArg {
    Date,
    Amount,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// The tenant's business id.
    #[arg(long)]
    pub tenant: Uuid,
    /// transactions, receipts, invoices, trips, shifts, payroll, members,
    /// bank_connections.
    #[arg(long = "type", value_parser = parse_kind)]
    pub kind: Kind,
    #[arg(long)]
    pub json: bool,
    /// Rows per page (at most 500).
    #[arg(long, default_value_t = records::DEFAULT_LIMIT)]
    pub limit: u32,
    /// The page after this cursor (a previous page's `next`).
    #[arg(long, conflicts_with_all = ["before", "last"])]
    pub after: Option<String>,
    /// The page before this cursor (a previous page's `prev`).
    #[arg(long, conflicts_with = "last")]
    pub before: Option<String>,
    /// The last page.
    #[arg(long)]
    pub last: bool,
    #[arg(long, value_enum, default_value = "date")]
    pub sort: SortArg,
    /// Newest (or largest) first.
    #[arg(long)]
    pub desc: bool,
    /// Text in any non-personal or free-text column (literal, any case).
    #[arg(long)]
    pub filter: Option<String>,
    /// From this day (UTC), inclusive.
    #[arg(long)]
    pub from: Option<NaiveDate>,
    /// Up to this day (UTC), inclusive.
    #[arg(long)]
    pub to: Option<NaiveDate>,
    /// Smallest amount (cents; metres for trips).
    #[arg(long, allow_hyphen_values = true)]
    pub min: Option<i64>,
    /// Largest amount.
    #[arg(long, allow_hyphen_values = true)]
    pub max: Option<i64>,
}

impl ListArgs {
    /// The service query these arguments ask for.
    pub fn query(&self) -> anyhow::Result<Query> {
        let at = match (&self.after, &self.before, self.last) {
            (Some(c), _, _) => At::After(Cursor::parse(c)?),
            (None, Some(c), _) => At::Before(Cursor::parse(c)?),
            (None, None, true) => At::Last,
            (None, None, false) => At::First,
        };
        Ok(Query {
            sort: match self.sort {
                SortArg::Date => SortBy::Date,
                SortArg::Amount => SortBy::Amount,
            },
            dir: if self.desc { Dir::Desc } else { Dir::Asc },
            filter: Filter {
                text: self.filter.clone(),
                date_from: self.from,
                date_to: self.to,
                amount_min: self.min,
                amount_max: self.max,
            },
            at,
            limit: self.limit,
        })
    }
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    #[arg(long)]
    pub tenant: Uuid,
    #[arg(long = "type", value_parser = parse_kind)]
    pub kind: Kind,
    /// The record's id (a number; a UUID for members and bank connections).
    #[arg(long)]
    pub id: String,
    #[arg(long)]
    pub json: bool,
}

/// Runs a `records` subcommand through the dispatch point (authorised,
/// audited, after the MFA gate). Exit code 0, or 1 when the tenant has no
/// such record.
pub async fn run(console: &Console, cmd: &RecordsCommand, factor: Factor) -> anyhow::Result<i32> {
    match cmd {
        RecordsCommand::Reveal(args) => {
            let f = &args.field;
            let action = Action::Reveal {
                tenant: f.tenant,
                kind: f.kind,
                id: f.kind.parse_pk(&f.id)?,
                field: f.field.clone(),
                reason: f.reason.clone(),
            };
            let Reply::Revealed { revealed, .. } =
                dispatch_stepped(console, action, factor).await?
            else {
                anyhow::bail!("unexpected reply to a reveal");
            };
            eprintln!(
                "charon: {} of {} {} revealed for `{}` (audited)",
                f.field,
                f.kind.label(),
                f.id,
                f.reason
            );
            output::line(revealed.value.expose().as_deref().unwrap_or("NULL"));
            Ok(0)
        }
        RecordsCommand::Redact(args) => redact(console, args, factor).await,
        RecordsCommand::RedactAll(args) => redact_all(console, args, factor).await,
        RecordsCommand::List(args) => {
            let reply = console
                .dispatch(Action::RecordsList {
                    tenant: args.tenant,
                    kind: args.kind,
                    query: args.query()?,
                })
                .await?;
            let Reply::Records(page) = reply else {
                anyhow::bail!("unexpected reply to a records list");
            };
            print_page(&page, args.json)?;
            Ok(0)
        }
        RecordsCommand::Show(args) => {
            let id = args.kind.parse_pk(&args.id)?;
            match console
                .dispatch(Action::RecordShow {
                    tenant: args.tenant,
                    kind: args.kind,
                    id,
                })
                .await
            {
                Ok(Reply::Record(r)) => {
                    print_record(&r, args.json)?;
                    Ok(0)
                }
                Ok(_) => anyhow::bail!("unexpected reply to a record show"),
                Err(crate::core::Error::NotFound(_)) => {
                    eprintln!("no such {} in this tenant", args.kind.label());
                    Ok(1)
                }
                Err(e) => Err(e.into()),
            }
        }
    }
}

/// Asks before a permanent change: `--yes`, or `y` typed on a terminal.
fn confirmed(yes: bool, question: &str) -> anyhow::Result<bool> {
    use std::io::{BufRead, IsTerminal, Write};
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        anyhow::bail!("not applied: confirm on a terminal, or pass --yes");
    }
    eprint!("charon: {question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

async fn redact_all(
    console: &Console,
    args: &RedactAllArgs,
    factor: Factor,
) -> anyhow::Result<i32> {
    let Reply::SweepPreview { token, preview } = console
        .dispatch(Action::RedactSweepPreview {
            tenant: args.tenant,
            detector: args.detector,
        })
        .await?
    else {
        anyhow::bail!("unexpected reply to a sweep preview");
    };
    for c in &preview.columns {
        output::line(&format!(
            "{}.{}: {} row(s), {} match(es)",
            c.table, c.column, c.rows, c.matches
        ));
    }
    output::line(&format!(
        "total: {} field(s), {} match(es)",
        preview.fields, preview.matches
    ));
    let apply = Action::RedactSweepApply {
        preview: token,
        reason: args.reason.clone(),
    };
    confirm_and_apply(
        console,
        preview.matches,
        args.yes,
        "apply these permanent redactions?",
        apply,
        factor,
    )
    .await
}

/// The common end of a redaction: nothing to do, not confirmed, or applied
/// (with its step-up) and reported.
async fn confirm_and_apply(
    console: &Console,
    matches: u64,
    yes: bool,
    question: &str,
    apply: Action,
    factor: Factor,
) -> anyhow::Result<i32> {
    if matches == 0 {
        eprintln!("charon: nothing to redact");
        return Ok(1);
    }
    if !confirmed(yes, question)? {
        eprintln!("charon: not applied");
        return Ok(1);
    }
    let Reply::Redacted(done) = dispatch_stepped(console, apply, factor).await? else {
        anyhow::bail!("unexpected reply to a redaction");
    };
    output::line(&format!(
        "redacted: {} field(s), {} match(es), batch {}",
        done.fields, done.matches, done.batch_id
    ));
    Ok(0)
}

async fn redact(console: &Console, args: &RedactArgs, factor: Factor) -> anyhow::Result<i32> {
    let f = &args.field;
    let how = match (args.detector, args.null) {
        (Some(d), false) => records::How::Span(d),
        (None, true) => records::How::Null,
        _ => anyhow::bail!("say what to redact: --detector card|iban|email|phone, or --null"),
    };
    let Reply::RedactionPreview { token, preview } = console
        .dispatch(Action::RedactPreview {
            tenant: f.tenant,
            kind: f.kind,
            id: f.kind.parse_pk(&f.id)?,
            field: f.field.clone(),
            how,
        })
        .await?
    else {
        anyhow::bail!("unexpected reply to a redaction preview");
    };
    output::line(&format!("before: {}", preview.before_masked));
    output::line(&format!(
        "after:  {}",
        preview.after.as_deref().unwrap_or("NULL")
    ));
    output::line(&format!("matches: {}", preview.matches));
    let apply = Action::RedactApply {
        preview: token,
        reason: f.reason.clone(),
    };
    confirm_and_apply(
        console,
        preview.matches as u64,
        args.yes,
        "apply this permanent redaction?",
        apply,
        factor,
    )
    .await
}

/// A page as text lines (not yet sanitised): one per record, then the cursors.
pub fn page_lines(page: &Page) -> Vec<String> {
    let mut out: Vec<String> = page
        .rows
        .iter()
        .map(|r| {
            r.fields
                .iter()
                .map(|f| format!("{}={}", f.name, f.value.as_deref().unwrap_or("NULL")))
                .collect::<Vec<_>>()
                .join("  ")
        })
        .collect();
    if let Some(c) = &page.next {
        out.push(format!("# next {c}"));
    }
    if let Some(c) = &page.prev {
        out.push(format!("# prev {c}"));
    }
    out
}

/// A record as text lines (not yet sanitised): `name: value`, personal
/// fields marked with their category.
pub fn record_lines(r: &MaskedRecord) -> Vec<String> {
    let width = r.fields.iter().map(|f| f.name.len()).max().unwrap_or(0);
    let mut out = vec![format!("{} {}", r.kind.label(), r.id)];
    for f in &r.fields {
        let value = f.value.as_deref().unwrap_or("NULL");
        if f.personal {
            out.push(format!(
                "  {:<width$}  {value}  [{}, mask {}]",
                f.name, f.category, f.mask
            ));
        } else {
            out.push(format!("  {:<width$}  {value}", f.name));
        }
    }
    out
}

pub fn print_page(page: &Page, json: bool) -> anyhow::Result<()> {
    if json {
        return output::json(page);
    }
    for l in page_lines(page) {
        output::line(&l);
    }
    Ok(())
}

pub fn print_record(r: &MaskedRecord, json: bool) -> anyhow::Result<()> {
    if json {
        return output::json(r);
    }
    for l in record_lines(r) {
        output::line(&l);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::records::{Field, Pk};
    use crate::core::sanitize::sanitize;

    fn record() -> MaskedRecord {
        MaskedRecord {
            kind: Kind::Receipts,
            id: Pk::Int(7),
            fields: vec![
                Field {
                    name: "id".into(),
                    value: Some("7".into()),
                    personal: false,
                    category: "none",
                    mask: "none",
                },
                Field {
                    name: "notes".into(),
                    value: Some("hi\x1b]52;c;AAAA\x07\tthere\u{202e}".into()),
                    personal: true,
                    category: "free_text",
                    mask: "free_text",
                },
            ],
        }
    }

    #[test]
    fn lines_are_one_record_each_and_inert_once_sanitised() {
        let page = Page {
            kind: Kind::Receipts,
            rows: vec![record()],
            next: None,
            prev: None,
        };
        let lines = page_lines(&page);
        assert_eq!(lines.len(), 1);
        for l in lines.iter().chain(record_lines(&record()).iter()) {
            let s = sanitize(l);
            assert!(!s.chars().any(crate::core::sanitize::is_unsafe), "{s}");
        }
        assert!(record_lines(&record())[2].contains("[free_text, mask free_text]"));
    }

    #[test]
    fn arguments_make_a_query() {
        use clap::Parser;
        #[derive(Parser)]
        struct T {
            #[command(subcommand)]
            cmd: RecordsCommand,
        }
        let t = T::try_parse_from([
            "x",
            "list",
            "--tenant",
            "00000000-0000-0000-0000-000000000001",
            "--type",
            "bank-connections",
            "--last",
            "--sort",
            "date",
            "--min",
            "-5",
        ])
        .unwrap();
        let RecordsCommand::List(a) = t.cmd else {
            panic!("list")
        };
        assert_eq!(a.kind, Kind::BankConnections);
        let q = a.query().unwrap();
        assert_eq!(q.at, At::Last);
        assert_eq!(q.filter.amount_min, Some(-5));
        assert!(T::try_parse_from(["x", "list", "--tenant", "x", "--type", "receipts"]).is_err());
        assert!(
            T::try_parse_from([
                "x",
                "show",
                "--tenant",
                "00000000-0000-0000-0000-000000000001",
                "--type",
                "nope",
                "--id",
                "1"
            ])
            .is_err()
        );
    }
}
