//! `datamap check`: every column of the live schema that the map does not
//! classify, with a hint when its name or a sample of its values looks
//! personal. A new PII column added by an app migration must not go
//! unnoticed.

use serde::Serialize;
use sqlx::PgPool;

use super::catalog::{self, Catalog};
use super::{Category, DataMap};
use crate::core::Result;
use crate::core::detect::{self, Detector};

/// How many non-null values of an unclassified column are sampled.
pub const SAMPLE_SIZE: i64 = 50;

#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// The map's file.
    pub source: String,
    /// Tables and columns in the live schema.
    pub tables_checked: usize,
    pub columns_checked: usize,
    /// What the map names that the live catalog does not have (or has with
    /// an unfitting type), as in [`super::validate_against_catalog`].
    pub map_problems: Vec<String>,
    /// Live tables the map does not mention at all.
    pub missing_tables: Vec<String>,
    /// Live columns the map does not classify (those of missing tables too).
    pub unclassified: Vec<Unclassified>,
}

impl CheckReport {
    /// True when the map covers the live schema exactly.
    pub fn is_clean(&self) -> bool {
        self.map_problems.is_empty()
            && self.missing_tables.is_empty()
            && self.unclassified.is_empty()
    }

    /// 0 when clean, 1 otherwise (for CI).
    pub fn exit_code(&self) -> i32 {
        if self.is_clean() { 0 } else { 1 }
    }

    /// The report as text lines for a terminal. Not yet sanitised: print
    /// them through `core::sanitize::sanitize` (table and column names come
    /// from the catalog).
    pub fn lines(&self) -> Vec<String> {
        let r = self;
        let mut out = vec![
            format!("data map: {}", r.source),
            format!(
                "live schema: {} tables, {} columns",
                r.tables_checked, r.columns_checked
            ),
        ];
        if r.is_clean() {
            out.push("ok: the map classifies every table and column".into());
            return out;
        }
        if !r.map_problems.is_empty() {
            out.push(String::new());
            out.push(format!(
                "map entries that do not fit the live catalog ({}):",
                r.map_problems.len()
            ));
            out.extend(r.map_problems.iter().map(|p| format!("  {p}")));
        }
        if !r.missing_tables.is_empty() {
            out.push(String::new());
            out.push(format!(
                "tables missing from the map ({}): {}",
                r.missing_tables.len(),
                r.missing_tables.join(", ")
            ));
        }
        if !r.unclassified.is_empty() {
            out.push(String::new());
            out.push(format!("unclassified columns ({}):", r.unclassified.len()));
            for u in &r.unclassified {
                let table_note = if u.table_in_map {
                    ""
                } else {
                    "  (table not in the map)"
                };
                out.push(format!(
                    "  {}.{}  {}{table_note}",
                    u.table, u.column, u.data_type
                ));
                for h in &u.hints {
                    out.push(format!(
                        "      looks personal ({}): {}",
                        h.suggests, h.detail
                    ));
                }
            }
            let hinted = r
                .unclassified
                .iter()
                .filter(|u| !u.hints.is_empty())
                .count();
            out.push(String::new());
            out.push(format!(
            "{} unclassified, {hinted} of them look personal: add each to the map (category \"none\" if it is not personal)",
            r.unclassified.len()
        ));
        }
        out
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Unclassified {
    pub table: String,
    pub column: String,
    pub data_type: String,
    /// False when the whole table is missing from the map.
    pub table_in_map: bool,
    /// Why the column may be personal; empty when nothing suggests it.
    pub hints: Vec<Hint>,
}

/// A reason to think a column is personal. Never holds a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hint {
    pub source: HintSource,
    /// The category it looks like.
    pub suggests: Category,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HintSource {
    /// The column's name.
    Name,
    /// A sample of its values.
    Values,
}

/// Compares the map with the live catalog of `pool`'s database.
pub async fn check(pool: &PgPool, map: &DataMap) -> Result<CheckReport> {
    let catalog = Catalog::load(pool).await?;
    check_with_catalog(pool, map, &catalog).await
}

/// [`check`] with a catalog already loaded.
pub async fn check_with_catalog(
    pool: &PgPool,
    map: &DataMap,
    catalog: &Catalog,
) -> Result<CheckReport> {
    let mut report = CheckReport {
        source: map.source.display().to_string(),
        tables_checked: catalog.tables.len(),
        columns_checked: catalog.tables.values().map(|t| t.columns.len()).sum(),
        map_problems: catalog::problems(map, catalog),
        missing_tables: Vec::new(),
        unclassified: Vec::new(),
    };
    for ct in catalog.tables.values() {
        let mapped = map.table(&ct.name);
        if mapped.is_none() {
            report.missing_tables.push(ct.name.clone());
        }
        for cc in &ct.columns {
            if mapped.is_some_and(|t| t.column(&cc.name).is_some()) {
                continue;
            }
            let mut hints = name_hints(&cc.name);
            if cc.data_type == "point" {
                hints.push(Hint {
                    source: HintSource::Values,
                    suggests: Category::LocationPrecise,
                    detail: "a geometric point".into(),
                });
            }
            match sample(pool, catalog, &ct.name, &cc.name).await {
                Ok(values) => hints.extend(value_hints(&cc.data_type, &values)),
                Err(e) => tracing::warn!(
                    table = %ct.name, column = %cc.name,
                    "could not sample values: {e}"
                ),
            }
            report.unclassified.push(Unclassified {
                table: ct.name.clone(),
                column: cc.name.clone(),
                data_type: cc.data_type.clone(),
                table_in_map: mapped.is_some(),
                hints,
            });
        }
    }
    Ok(report)
}

/// Up to [`SAMPLE_SIZE`] non-null values of a column, as text. Identifiers
/// come from the catalog; the limit is bound; a slow scan gives up after
/// two seconds.
async fn sample(
    pool: &PgPool,
    catalog: &Catalog,
    table: &str,
    column: &str,
) -> Result<Vec<String>> {
    let t = catalog.table(table)?;
    let c = catalog.column(table, column)?;
    let sql = format!("SELECT {c}::text FROM {t} WHERE {c} IS NOT NULL LIMIT $1");
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL statement_timeout = 2000")
        .execute(&mut *tx)
        .await?;
    let values: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(SAMPLE_SIZE)
        .fetch_all(&mut *tx)
        .await?;
    tx.rollback().await?;
    Ok(values)
}

/// Name parts that suggest a category. Short ones must be a whole part
/// (`ip`, `tel`, `lat`), longer ones may be inside one (`customer_email`).
const NAME_RULES: &[(&str, bool, Category)] = &[
    // (part, whole part only, suggests)
    ("email", false, Category::ContactEmail),
    ("mail", false, Category::ContactEmail),
    ("phone", false, Category::ContactPhone),
    ("mobile", true, Category::ContactPhone),
    ("tel", true, Category::ContactPhone),
    ("fax", true, Category::ContactPhone),
    ("name", false, Category::Name),
    ("address", false, Category::Address),
    ("street", false, Category::Address),
    ("zip", true, Category::Address),
    ("zipcode", true, Category::Address),
    ("postcode", false, Category::Address),
    ("postal", true, Category::Address),
    ("birth", false, Category::BirthDate),
    ("birthday", false, Category::BirthDate),
    ("dob", true, Category::BirthDate),
    ("ssn", true, Category::GovernmentId),
    ("tax", true, Category::GovernmentId),
    ("passport", false, Category::GovernmentId),
    ("iban", false, Category::FinancialAccount),
    ("account", false, Category::FinancialAccount),
    ("acct", true, Category::FinancialAccount),
    ("card", false, Category::FinancialCard),
    ("pan", true, Category::FinancialCard),
    ("lat", true, Category::LocationPrecise),
    ("latitude", true, Category::LocationPrecise),
    ("lon", true, Category::LocationPrecise),
    ("lng", true, Category::LocationPrecise),
    ("longitude", true, Category::LocationPrecise),
    ("ip", true, Category::Identifier),
    ("note", false, Category::FreeText),
    ("comment", false, Category::FreeText),
    ("memo", true, Category::FreeText),
];

/// Hints from a column's name: `date_of_birth` → birth_date.
pub fn name_hints(column: &str) -> Vec<Hint> {
    let lower = column.to_lowercase();
    let parts: Vec<&str> = lower
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|p| !p.is_empty())
        .collect();
    let mut out: Vec<Hint> = Vec::new();
    for &(word, whole, suggests) in NAME_RULES {
        let hit = parts
            .iter()
            .any(|p| if whole { *p == word } else { p.contains(word) });
        if hit && !out.iter().any(|h| h.suggests == suggests) {
            out.push(Hint {
                source: HintSource::Name,
                suggests,
                detail: format!("name contains `{word}`"),
            });
        }
    }
    out
}

/// Hints from sampled values (never quoting them): how many hold e-mail
/// addresses, phone numbers, IBANs or card numbers, or look like latitudes
/// and longitudes.
pub fn value_hints(data_type: &str, values: &[String]) -> Vec<Hint> {
    let mut out = Vec::new();
    let n = values.len();
    if n == 0 {
        return out;
    }
    for (d, whole, part, what) in [
        (
            Detector::Email,
            Category::ContactEmail,
            Category::FreeText,
            "e-mail addresses",
        ),
        (
            Detector::Iban,
            Category::FinancialAccount,
            Category::FreeText,
            "IBANs",
        ),
        (
            Detector::Card,
            Category::FinancialCard,
            Category::FreeText,
            "card numbers (Luhn-valid)",
        ),
        (
            Detector::Phone,
            Category::ContactPhone,
            Category::FreeText,
            "phone numbers",
        ),
    ] {
        let mut holds = 0;
        let mut entire = 0;
        for v in values {
            let spans: Vec<_> = detect::find_all(v)
                .into_iter()
                .filter(|s| s.detector == d)
                .collect();
            if !spans.is_empty() {
                holds += 1;
                if spans.len() == 1 && spans[0].start == 0 && spans[0].end == v.trim_end().len() {
                    entire += 1;
                }
            }
        }
        if holds > 0 {
            out.push(Hint {
                source: HintSource::Values,
                suggests: if entire * 2 >= n { whole } else { part },
                detail: format!("{holds} of {n} sampled values hold {what}"),
            });
        }
    }
    if matches!(data_type, "double precision" | "real" | "numeric") {
        let parsed: Vec<Option<f64>> = values.iter().map(|v| v.trim().parse().ok()).collect();
        let in_range = parsed
            .iter()
            .all(|p| p.is_some_and(|x: f64| (-180.0..=180.0).contains(&x)));
        let precise = values
            .iter()
            .filter(|v| v.split_once('.').is_some_and(|(_, frac)| frac.len() >= 4))
            .count();
        if in_range && precise * 2 >= n {
            out.push(Hint {
                source: HintSource::Values,
                suggests: Category::LocationPrecise,
                detail: format!(
                    "{precise} of {n} sampled values look like coordinates (within ±180, 4+ decimals)"
                ),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suggests(h: &[Hint]) -> Vec<Category> {
        h.iter().map(|h| h.suggests).collect()
    }

    #[test]
    fn names_that_look_personal() {
        assert_eq!(
            suggests(&name_hints("date_of_birth")),
            vec![Category::BirthDate]
        );
        assert_eq!(
            suggests(&name_hints("customer_email")),
            vec![Category::ContactEmail]
        );
        assert_eq!(
            suggests(&name_hints("home_phone")),
            vec![Category::ContactPhone]
        );
        assert_eq!(suggests(&name_hints("tel")), vec![Category::ContactPhone]);
        assert_eq!(
            suggests(&name_hints("last_login_ip")),
            vec![Category::Identifier]
        );
        assert_eq!(
            suggests(&name_hints("lat")),
            vec![Category::LocationPrecise]
        );
        assert_eq!(
            suggests(&name_hints("billing_zip")),
            vec![Category::Address]
        );
        assert_eq!(
            suggests(&name_hints("iban")),
            vec![Category::FinancialAccount]
        );
        assert_eq!(suggests(&name_hints("ssn")), vec![Category::GovernmentId]);
        assert!(name_hints("hotel_id").is_empty());
        assert!(name_hints("template").is_empty());
        assert!(name_hints("description").is_empty());
        assert!(name_hints("amount_cents").is_empty());
        assert!(name_hints("shipping_status").is_empty());
    }

    #[test]
    fn values_that_look_personal() {
        let emails: Vec<String> = (0..10).map(|i| format!("user{i}@example.com")).collect();
        assert_eq!(
            suggests(&value_hints("text", &emails)),
            vec![Category::ContactEmail]
        );
        let notes = vec![
            "lunch".to_string(),
            "paid with 4111 1111 1111 1111".to_string(),
            "IBAN DE89370400440532013000".to_string(),
        ];
        let h = value_hints("text", &notes);
        assert_eq!(suggests(&h), vec![Category::FreeText, Category::FreeText]);
        assert_eq!(h[0].detail, "1 of 3 sampled values hold IBANs");
        let coords = vec!["37.774929".to_string(), "-122.419416".to_string()];
        assert_eq!(
            suggests(&value_hints("double precision", &coords)),
            vec![Category::LocationPrecise]
        );
        let amounts = vec!["12.5".to_string(), "99.99".to_string()];
        assert!(value_hints("numeric", &amounts).is_empty());
        let orders = vec!["1234567890123456".to_string()];
        assert!(value_hints("text", &orders).is_empty());
        assert!(value_hints("text", &[]).is_empty());
    }
}
