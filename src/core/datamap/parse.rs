//! The map file: a raw serde layer that rejects unknown keys, resolved into
//! [`DataMap`] with every problem named by file, line and key.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::{
    Category, Column, ColumnErasure, DataMap, Hold, JoinStep, KeyPath, Mask, RowErasure,
    SubjectKind, SubjectLink, System, SystemKind, Table,
};
use crate::core::config::line_of;
use crate::core::{Error, Result};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMap {
    version: Spanned<u32>,
    #[serde(default)]
    systems: BTreeMap<Spanned<String>, RawSystem>,
    tables: BTreeMap<Spanned<String>, RawTable>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSystem {
    kind: Spanned<String>,
    #[serde(default)]
    description: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    primary_key: Spanned<Vec<Spanned<String>>>,
    tenant: Spanned<RawPath>,
    #[serde(default)]
    subject: Vec<Spanned<RawSubject>>,
    erasure: Option<Spanned<RawErasure>>,
    #[serde(default)]
    note: String,
    #[serde(default)]
    columns: BTreeMap<Spanned<String>, Spanned<RawColumn>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPath {
    #[serde(default)]
    via: Vec<Spanned<String>>,
    column: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSubject {
    kind: Spanned<String>,
    #[serde(default)]
    via: Vec<Spanned<String>>,
    column: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawErasure {
    rows: Spanned<String>,
    reason: Option<Spanned<String>>,
    retention_years: Option<Spanned<u32>>,
    keep_if_referenced: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawColumn {
    category: Spanned<String>,
    mask: Option<Spanned<String>>,
    erasure: Option<Spanned<String>>,
    system: Option<Spanned<String>>,
    /// For `revoke_item`: the column of the same row that holds the
    /// credential the removal needs (e.g. a Plaid access token).
    credential: Option<Spanned<String>>,
    #[serde(default)]
    note: String,
}

/// Collects problems, each as `file:line: key `k`: why`.
struct Problems<'a> {
    text: &'a str,
    source: &'a Path,
    list: Vec<String>,
}

impl Problems<'_> {
    fn line(&self, span: &Range<usize>) -> usize {
        line_of(self.text, span.start)
    }

    fn add(&mut self, span: Range<usize>, key: &str, why: impl AsRef<str>) {
        let line = self.line(&span);
        self.list.push(format!(
            "{}:{line}: key `{key}`: {}",
            self.source.display(),
            why.as_ref()
        ));
    }
}

fn one_of(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn valid_identifier(s: &str) -> bool {
    !s.is_empty() && s.len() <= 63 && !s.contains('\0')
}

pub(super) fn parse(text: &str, source: &Path) -> Result<DataMap> {
    let raw: RawMap = toml::from_str(text).map_err(|e| {
        let place = e
            .span()
            .map(|s| format!("{}:{}", source.display(), line_of(text, s.start)))
            .unwrap_or_else(|| source.display().to_string());
        Error::Config(format!("{place}: {}", e.message().trim()))
    })?;
    let mut p = Problems {
        text,
        source,
        list: Vec::new(),
    };
    if *raw.version.get_ref() != 1 {
        p.add(
            raw.version.span(),
            "version",
            "unsupported version (this charon reads version 1)",
        );
    }

    let mut systems = Vec::new();
    for (name, s) in &raw.systems {
        let key = format!("systems.{}.kind", name.get_ref());
        match SystemKind::parse(s.kind.get_ref()) {
            Some(kind) => systems.push(super::System {
                name: name.get_ref().clone(),
                kind,
                description: s.description.clone(),
            }),
            None => p.add(
                s.kind.span(),
                &key,
                format!(
                    "unknown system kind `{}` (expected one of {})",
                    s.kind.get_ref(),
                    one_of(SystemKind::NAMES)
                ),
            ),
        }
    }

    // Column names per table, for checking keys and join paths inside the map.
    let columns_of: BTreeMap<&str, Vec<&str>> = raw
        .tables
        .iter()
        .map(|(t, rt)| {
            (
                t.get_ref().as_str(),
                rt.columns.keys().map(|c| c.get_ref().as_str()).collect(),
            )
        })
        .collect();
    // Each table's subject links' target column categories are checked once
    // all tables are resolved.
    let mut link_checks: Vec<(String, Range<usize>, String, String, SubjectKind)> = Vec::new();

    let mut tables = Vec::new();
    for (tname, rt) in &raw.tables {
        let table = tname.get_ref();
        let tkey = format!("tables.{table}");
        if !valid_identifier(table) {
            p.add(tname.span(), &tkey, "not a valid PostgreSQL identifier");
        }
        let own_columns = columns_of.get(table.as_str()).cloned().unwrap_or_default();
        if rt.columns.is_empty() {
            p.add(
                tname.span(),
                &format!("{tkey}.columns"),
                "no columns: list every column of the table (category \"none\" for non-personal ones)",
            );
        }

        // Primary key.
        let mut primary_key = Vec::new();
        if rt.primary_key.get_ref().is_empty() {
            p.add(
                rt.primary_key.span(),
                &format!("{tkey}.primary_key"),
                "must name at least one column",
            );
        }
        for c in rt.primary_key.get_ref() {
            if !own_columns.contains(&c.get_ref().as_str()) {
                p.add(
                    c.span(),
                    &format!("{tkey}.primary_key"),
                    format!(
                        "unknown key column `{}`: not among the columns of `{table}` in this map",
                        c.get_ref()
                    ),
                );
            }
            primary_key.push(c.get_ref().clone());
        }

        // Tenant key.
        let tenant = resolve_path(
            &mut p,
            &columns_of,
            table,
            &format!("{tkey}.tenant"),
            &rt.tenant.get_ref().via,
            &rt.tenant.get_ref().column,
            rt.tenant.span(),
        );

        // Subject links.
        let mut subjects = Vec::new();
        for (i, s) in rt.subject.iter().enumerate() {
            let skey = format!("{tkey}.subject[{i}]");
            let raw_s = s.get_ref();
            let path = resolve_path(
                &mut p,
                &columns_of,
                table,
                &skey,
                &raw_s.via,
                &raw_s.column,
                s.span(),
            );
            match SubjectKind::parse(raw_s.kind.get_ref()) {
                Some(kind) => {
                    link_checks.push((
                        skey,
                        raw_s.column.span(),
                        path.target_table(table).to_string(),
                        path.column.clone(),
                        kind,
                    ));
                    subjects.push(SubjectLink { kind, path });
                }
                None => p.add(
                    raw_s.kind.span(),
                    &format!("{skey}.kind"),
                    format!(
                        "unknown subject kind `{}` (expected one of {})",
                        raw_s.kind.get_ref(),
                        one_of(SubjectKind::NAMES)
                    ),
                ),
            }
        }

        // Row erasure.
        let ekey = format!("{tkey}.erasure");
        let erasure = match &rt.erasure {
            None if rt.subject.is_empty() => RowErasure::Unlinked,
            None => {
                p.add(
                    tname.span(),
                    &ekey,
                    "missing: the table links to a data subject, so it must say what erasure does to its rows (rows = \"delete\" or \"retain\")",
                );
                RowErasure::Unlinked
            }
            Some(e) => resolve_erasure(&mut p, &ekey, e, rt.subject.is_empty()),
        };

        // Columns.
        let mut columns = Vec::new();
        for (cname, rc) in &rt.columns {
            let ckey = format!("{tkey}.columns.{}", cname.get_ref());
            if !valid_identifier(cname.get_ref()) {
                p.add(cname.span(), &ckey, "not a valid PostgreSQL identifier");
            }
            let line = p.line(&cname.span());
            if let Some(c) = resolve_column(&mut p, &ckey, cname.get_ref(), rc, &erasure, &systems)
            {
                columns.push(Column { line, ..c });
            }
            if let Some(cred) = &rc.get_ref().credential {
                let fits = rc.get_ref().erasure.as_ref().map(|e| e.get_ref().as_str())
                    == Some("revoke_item");
                if !fits {
                    p.add(
                        cred.span(),
                        &format!("{ckey}.credential"),
                        "`credential` only fits a `revoke_item` column",
                    );
                } else if !rt.columns.keys().any(|k| k.get_ref() == cred.get_ref()) {
                    p.add(
                        cred.span(),
                        &format!("{ckey}.credential"),
                        format!(
                            "no column `{}` in table `{table}` to read the credential from",
                            cred.get_ref()
                        ),
                    );
                }
            }
        }

        tables.push(Table {
            name: table.clone(),
            line: p.line(&tname.span()),
            primary_key,
            tenant,
            subjects,
            erasure,
            columns,
            note: rt.note.clone(),
        });
    }

    // A subject link must end on a column of the matching category.
    for (key, span, target, column, kind) in link_checks {
        let Some(col) = tables
            .iter()
            .find(|t| t.name == target)
            .and_then(|t| t.column(&column))
        else {
            continue; // already reported as unknown
        };
        if col.category != kind.category() {
            p.add(
                span,
                &format!("{key}.column"),
                format!(
                    "a `{}` link must end on a column of category `{}`, but `{target}.{column}` is `{}`",
                    kind_name(kind),
                    kind.category(),
                    col.category
                ),
            );
        }
    }

    if p.list.is_empty() {
        Ok(DataMap {
            source: source.to_path_buf(),
            systems,
            tables,
        })
    } else {
        Err(Error::Config(p.list.join("\n")))
    }
}

fn kind_name(k: SubjectKind) -> &'static str {
    match k {
        SubjectKind::UserId => "user_id",
        SubjectKind::Email => "email",
        SubjectKind::Phone => "phone",
    }
}

/// `"a -> t.b"` → a join step.
fn parse_step(s: &str) -> Option<JoinStep> {
    let (from, to) = s.split_once("->")?;
    let (table, to_column) = to.trim().split_once('.')?;
    let (from, table, to_column) = (from.trim(), table.trim(), to_column.trim());
    if [from, table, to_column]
        .iter()
        .any(|x| x.is_empty() || x.contains(char::is_whitespace) || x.contains('.'))
    {
        return None;
    }
    Some(JoinStep {
        from_column: from.to_string(),
        table: table.to_string(),
        to_column: to_column.to_string(),
    })
}

fn resolve_path(
    p: &mut Problems<'_>,
    columns_of: &BTreeMap<&str, Vec<&str>>,
    table: &str,
    key: &str,
    via: &[Spanned<String>],
    column: &Spanned<String>,
    span: Range<usize>,
) -> KeyPath {
    let mut steps = Vec::new();
    let mut at = table.to_string();
    let mut ok = true;
    for v in via {
        let vkey = format!("{key}.via");
        let Some(step) = parse_step(v.get_ref()) else {
            p.add(
                v.span(),
                &vkey,
                format!(
                    "`{}` is not a join step; write \"column -> table.column\"",
                    v.get_ref()
                ),
            );
            ok = false;
            break;
        };
        if let Some(cols) = columns_of.get(at.as_str())
            && !cols.contains(&step.from_column.as_str())
        {
            p.add(
                v.span(),
                &vkey,
                format!(
                    "join path names unknown column `{}` of table `{at}`",
                    step.from_column
                ),
            );
            ok = false;
        }
        match columns_of.get(step.table.as_str()) {
            None => {
                p.add(
                    v.span(),
                    &vkey,
                    format!(
                        "join path names unknown table `{}` (not in this map)",
                        step.table
                    ),
                );
                ok = false;
                break;
            }
            Some(cols) if !cols.contains(&step.to_column.as_str()) => {
                p.add(
                    v.span(),
                    &vkey,
                    format!(
                        "join path names unknown column `{}` of table `{}`",
                        step.to_column, step.table
                    ),
                );
                ok = false;
            }
            Some(_) => {}
        }
        at = step.table.clone();
        steps.push(step);
    }
    if ok
        && let Some(cols) = columns_of.get(at.as_str())
        && !cols.contains(&column.get_ref().as_str())
    {
        p.add(
            column.span(),
            &format!("{key}.column"),
            format!(
                "unknown key column `{}`: not among the columns of `{at}` in this map",
                column.get_ref()
            ),
        );
    }
    KeyPath {
        via: steps,
        column: column.get_ref().clone(),
        line: p.line(&span),
    }
}

fn resolve_erasure(
    p: &mut Problems<'_>,
    key: &str,
    e: &Spanned<RawErasure>,
    unlinked: bool,
) -> RowErasure {
    let raw = e.get_ref();
    if unlinked {
        p.add(
            e.span(),
            key,
            "the table has no subject link, so erasure never reaches it: remove `erasure` or add a `subject`",
        );
    }
    match raw.rows.get_ref().as_str() {
        "delete" => {
            if let Some(r) = &raw.reason {
                p.add(
                    r.span(),
                    &format!("{key}.reason"),
                    "a legal-hold reason only goes with rows = \"retain\"",
                );
            }
            if let Some(r) = &raw.retention_years {
                p.add(
                    r.span(),
                    &format!("{key}.retention_years"),
                    "retention years only go with rows = \"retain\"",
                );
            }
            RowErasure::Delete {
                keep_if_referenced: raw
                    .keep_if_referenced
                    .as_ref()
                    .map(|k| *k.get_ref())
                    .unwrap_or(false),
            }
        }
        "retain" => {
            if let Some(k) = &raw.keep_if_referenced {
                p.add(
                    k.span(),
                    &format!("{key}.keep_if_referenced"),
                    "only goes with rows = \"delete\"",
                );
            }
            let reason = match &raw.reason {
                Some(r) if !r.get_ref().trim().is_empty() => r.get_ref().clone(),
                Some(r) => {
                    p.add(r.span(), &format!("{key}.reason"), "must not be empty");
                    String::new()
                }
                None => {
                    p.add(
                        e.span(),
                        &format!("{key}.reason"),
                        "missing: retained rows need the legal hold's reason",
                    );
                    String::new()
                }
            };
            let retention_years = match &raw.retention_years {
                Some(y) if *y.get_ref() > 0 => *y.get_ref(),
                Some(y) => {
                    p.add(
                        y.span(),
                        &format!("{key}.retention_years"),
                        "must be greater than 0",
                    );
                    0
                }
                None => {
                    p.add(
                        e.span(),
                        &format!("{key}.retention_years"),
                        "missing: retained rows need a retention period in years",
                    );
                    0
                }
            };
            RowErasure::Retain(Hold {
                reason,
                retention_years,
            })
        }
        other => {
            p.add(
                raw.rows.span(),
                &format!("{key}.rows"),
                format!("unknown row action `{other}` (expected `delete` or `retain`)"),
            );
            RowErasure::Unlinked
        }
    }
}

fn resolve_column(
    p: &mut Problems<'_>,
    key: &str,
    name: &str,
    rc: &Spanned<RawColumn>,
    rows: &RowErasure,
    systems: &[System],
) -> Option<Column> {
    let raw = rc.get_ref();
    let Some(category) = Category::parse(raw.category.get_ref()) else {
        let names: Vec<&str> = Category::ALL.iter().map(|c| c.as_str()).collect();
        p.add(
            raw.category.span(),
            &format!("{key}.category"),
            format!(
                "unknown category `{}` (expected one of {})",
                raw.category.get_ref(),
                one_of(&names)
            ),
        );
        return None;
    };

    if !category.is_personal() {
        let mut ok = true;
        if let Some(m) = &raw.mask
            && m.get_ref() != "none"
        {
            p.add(
                m.span(),
                &format!("{key}.mask"),
                format!(
                    "mask `{}` does not fit category `none` (a non-personal column is shown as is)",
                    m.get_ref()
                ),
            );
            ok = false;
        }
        if let Some(e) = &raw.erasure {
            p.add(
                e.span(),
                &format!("{key}.erasure"),
                "a non-personal column has no erasure action (it stays with its row)",
            );
            ok = false;
        }
        if let Some(s) = &raw.system {
            p.add(
                s.span(),
                &format!("{key}.system"),
                "only an `external_ref` column points at an external system",
            );
            ok = false;
        }
        return ok.then(|| Column {
            name: name.to_string(),
            line: 0,
            category,
            mask: Mask::None,
            erasure: ColumnErasure::Retain,
            note: raw.note.clone(),
        });
    }

    // Mask: required for personal columns, and must fit the category.
    let mask = match &raw.mask {
        None => {
            p.add(
                rc.span(),
                &format!("{key}.mask"),
                format!(
                    "missing: a `{category}` column needs a display mask (one of {})",
                    one_of(
                        &category
                            .masks()
                            .iter()
                            .map(|m| m.as_str())
                            .collect::<Vec<_>>()
                    )
                ),
            );
            None
        }
        Some(m) => match Mask::parse(m.get_ref()) {
            None => {
                let names: Vec<&str> = Mask::ALL.iter().map(|m| m.as_str()).collect();
                p.add(
                    m.span(),
                    &format!("{key}.mask"),
                    format!(
                        "unknown mask `{}` (expected one of {})",
                        m.get_ref(),
                        one_of(&names)
                    ),
                );
                None
            }
            Some(mask) if !category.masks().contains(&mask) => {
                p.add(
                    m.span(),
                    &format!("{key}.mask"),
                    format!(
                        "mask `{mask}` does not fit category `{category}` (use one of {})",
                        one_of(
                            &category
                                .masks()
                                .iter()
                                .map(|m| m.as_str())
                                .collect::<Vec<_>>()
                        )
                    ),
                );
                None
            }
            Some(mask) => Some(mask),
        },
    };

    // Erasure action.
    let ekey = format!("{key}.erasure");
    let plain_delete = matches!(
        rows,
        RowErasure::Delete {
            keep_if_referenced: false
        }
    );
    let erasure = match &raw.erasure {
        None if category == Category::ExternalRef => {
            p.add(
                rc.span(),
                &ekey,
                "missing: an external reference needs `delete_object` or `revoke_item`",
            );
            None
        }
        None if plain_delete => Some(ColumnErasure::DeleteRow),
        None if matches!(rows, RowErasure::Unlinked) => Some(ColumnErasure::Retain),
        None => {
            p.add(
                rc.span(),
                &ekey,
                "missing: this table's rows can be kept (retain, or keep_if_referenced), so each personal column must say what erasure does to it",
            );
            None
        }
        Some(e) => resolve_column_erasure(p, &ekey, e, category, rows, plain_delete, raw, systems),
    };
    if raw.system.is_some()
        && category != Category::ExternalRef
        && let Some(s) = &raw.system
    {
        p.add(
            s.span(),
            &format!("{key}.system"),
            "only an `external_ref` column points at an external system",
        );
        return None;
    }

    Some(Column {
        name: name.to_string(),
        line: 0,
        category,
        mask: mask?,
        erasure: erasure?,
        note: raw.note.clone(),
    })
}

#[allow(clippy::too_many_arguments)]
fn resolve_column_erasure(
    p: &mut Problems<'_>,
    key: &str,
    e: &Spanned<String>,
    category: Category,
    rows: &RowErasure,
    plain_delete: bool,
    raw: &RawColumn,
    systems: &[System],
) -> Option<ColumnErasure> {
    let bad = |p: &mut Problems<'_>, why: String| {
        p.add(e.span(), key, why);
        None
    };
    let action = e.get_ref().as_str();
    let external = matches!(action, "delete_object" | "revoke_item");
    if category == Category::ExternalRef && !external {
        return bad(
            p,
            format!(
                "`{action}` does not fit an external reference: use `delete_object` or `revoke_item`"
            ),
        );
    }
    if external && category != Category::ExternalRef {
        return bad(p, format!("`{action}` only fits an `external_ref` column"));
    }
    match action {
        "delete_row" if plain_delete => Some(ColumnErasure::DeleteRow),
        "delete_row" => bad(
            p,
            match rows {
                RowErasure::Retain(_) => "`delete_row` does not fit a table whose rows are retained".into(),
                RowErasure::Delete { .. } => "`delete_row` does not fit a table with keep_if_referenced: say what happens when the row is kept".into(),
                RowErasure::Unlinked => "`delete_row` does not fit a table erasure never reaches".into(),
            },
        ),
        "null" => Some(ColumnErasure::Null),
        "pseudonymise" if category == Category::Identifier => bad(
            p,
            "an identifier cannot be pseudonymised (rows elsewhere reference it): use `retain` or `null`".into(),
        ),
        "pseudonymise" => Some(ColumnErasure::Pseudonymise),
        "redact" if matches!(category, Category::FreeText | Category::Address) => {
            Some(ColumnErasure::Redact)
        }
        "redact" => bad(
            p,
            format!("`redact` only fits free text, not `{category}`: use `pseudonymise` or `null`"),
        ),
        "retain" => Some(ColumnErasure::Retain),
        "generated" => Some(ColumnErasure::Generated),
        "delete_object" | "revoke_item" => {
            let Some(sys) = &raw.system else {
                return bad(
                    p,
                    format!("`{action}` needs `system`, the external system the column points into"),
                );
            };
            let want = if action == "delete_object" {
                super::SystemKind::ObjectStore
            } else {
                super::SystemKind::Plaid
            };
            match systems.iter().find(|s| &s.name == sys.get_ref()) {
                None => {
                    let names: Vec<&str> = systems.iter().map(|s| s.name.as_str()).collect();
                    p.add(
                        sys.span(),
                        &key.replace(".erasure", ".system"),
                        format!(
                            "unknown system `{}` (declared: {})",
                            sys.get_ref(),
                            if names.is_empty() { "none".to_string() } else { one_of(&names) }
                        ),
                    );
                    None
                }
                Some(s) if s.kind != want => bad(
                    p,
                    format!(
                        "`{action}` does not fit system `{}`, which is of kind `{}`",
                        s.name,
                        if s.kind == super::SystemKind::Plaid { "plaid" } else { "object_store" }
                    ),
                ),
                Some(s) if action == "delete_object" => Some(ColumnErasure::DeleteObject {
                    system: s.name.clone(),
                }),
                Some(s) => Some(ColumnErasure::RevokeItem {
                    system: s.name.clone(),
                    credential: raw.credential.as_ref().map(|c| c.get_ref().clone()),
                }),
            }
        }
        other => bad(
            p,
            format!(
                "unknown erasure action `{other}` (expected one of {})",
                one_of(ColumnErasure::NAMES)
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        match parse(text, Path::new("m.toml")) {
            Ok(_) => panic!("parsed"),
            Err(e) => e.to_string(),
        }
    }

    const BASE: &str = r#"version = 1
[tables.users]
primary_key = ["id"]
tenant = { via = ["id -> memberships.user_id"], column = "business_id" }
subject = [{ kind = "user_id", column = "id" }]
erasure = { rows = "delete" }
[tables.users.columns]
id = { category = "identifier", mask = "none" }
email = { category = "contact.email", mask = "email" }
[tables.memberships]
primary_key = ["business_id", "user_id"]
tenant = { column = "business_id" }
[tables.memberships.columns]
business_id = { category = "none" }
user_id = { category = "identifier", mask = "none" }
"#;

    #[test]
    fn base_parses() {
        let m = parse(BASE, Path::new("m.toml")).unwrap();
        let users = m.table("users").unwrap();
        assert_eq!(users.line, 2);
        assert_eq!(users.tenant.target_table("users"), "memberships");
        assert_eq!(users.column("email").unwrap().line, 9);
        assert_eq!(
            users.column("email").unwrap().erasure,
            ColumnErasure::DeleteRow
        );
        assert_eq!(
            m.table("memberships").unwrap().erasure,
            RowErasure::Unlinked
        );
    }

    #[test]
    fn errors_name_line_and_key() {
        let e = err(&BASE.replace("\"contact.email\"", "\"contact.emial\""));
        assert!(e.starts_with("m.toml:9: key `tables.users.columns.email.category`: unknown category `contact.emial`"), "{e}");
        let e = err(&BASE.replace("mask = \"email\"", "mask = \"initials\""));
        assert!(
            e.contains("m.toml:9:") && e.contains("does not fit category `contact.email`"),
            "{e}"
        );
        let e = err(&BASE.replace("memberships.user_id", "members.user_id"));
        assert!(
            e.contains("m.toml:4:") && e.contains("unknown table `members`"),
            "{e}"
        );
        let e = err(&BASE.replace("primary_key = [\"id\"]", "primary_key = [\"uid\"]"));
        assert!(
            e.contains("m.toml:3:") && e.contains("unknown key column `uid`"),
            "{e}"
        );
        let e = err(&BASE.replace(
            "erasure = { rows = \"delete\" }",
            "erasure = { rows = \"retain\" }",
        ));
        assert!(
            e.contains("reason`: missing") && e.contains("retention_years`: missing"),
            "{e}"
        );
        let e = err(&BASE.replace("version = 1", "version = 1\nextra = 2"));
        assert!(
            e.starts_with("m.toml:2:") && e.contains("unknown field `extra`"),
            "{e}"
        );
        let e = err(&BASE.replace("kind = \"user_id\"", "kind = \"email\""));
        assert!(
            e.contains("must end on a column of category `contact.email`"),
            "{e}"
        );
    }

    #[test]
    fn all_problems_are_reported() {
        let e = err(&BASE
            .replace("\"contact.email\"", "\"bogus\"")
            .replace("memberships.user_id", "nowhere.user_id"));
        assert_eq!(e.lines().count(), 2, "{e}");
    }

    #[test]
    fn shipped_map_parses() {
        let m = DataMap::parse(super::super::PLUTO_MAP, Path::new("pluto.toml")).unwrap();
        assert_eq!(m.tables.len(), 12);
        let payroll = m.table("payroll_entries").unwrap();
        assert!(matches!(&payroll.erasure, RowErasure::Retain(h) if h.retention_years == 7));
        let receipts = m.table("receipts").unwrap();
        assert_eq!(
            receipts.column("s3_key").unwrap().erasure,
            ColumnErasure::DeleteObject {
                system: "receipts_bucket".into()
            }
        );
        let tx = m.table("transactions").unwrap();
        assert_eq!(
            tx.subjects[0].path.target_table("transactions"),
            "bank_connections"
        );
        assert_eq!(tx.subjects[0].path.via.len(), 2);
    }
}
