//! The live catalog of the Pluto database (schema `public`), and the check
//! that the data map names only tables and columns it has, with fitting
//! types. Identifiers that go into SQL come from here: [`Catalog::table`]
//! and [`Catalog::column`] quote a name only if the catalog has it.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use sqlx::PgPool;

use super::{ColumnErasure, DataMap, KeyPath, Table, is_text_type};
use crate::core::{Error, Result};

/// The schema charon reads the Pluto database in.
pub const SCHEMA: &str = "public";

#[derive(Debug, Clone, Serialize)]
pub struct Catalog {
    pub tables: BTreeMap<String, CatalogTable>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CatalogTable {
    pub name: String,
    /// Columns in their table order.
    pub columns: Vec<CatalogColumn>,
    /// The primary key's columns, in key order; empty when there is none.
    pub primary_key: Vec<String>,
}

impl CatalogTable {
    pub fn column(&self, name: &str) -> Option<&CatalogColumn> {
        self.columns.iter().find(|c| c.name == name)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CatalogColumn {
    pub name: String,
    /// The base type as `format_type` names it, without modifiers (domains
    /// resolved): `text`, `character varying`, `double precision`, `uuid`.
    pub data_type: String,
    pub nullable: bool,
    /// `GENERATED ALWAYS AS (...) STORED`.
    pub generated: bool,
}

/// A double-quoted SQL identifier that the live catalog has. The only way
/// to get one is through [`Catalog`], so a name from a file or a user never
/// reaches SQL unchecked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ident(String);

impl Ident {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl Catalog {
    /// Reads the tables (ordinary and partitioned, not partitions) of schema
    /// `public`, their columns and primary keys.
    pub async fn load(pool: &PgPool) -> Result<Catalog> {
        let rows: Vec<(String, String, String, bool, bool)> = sqlx::query_as(
            "SELECT c.relname::text, a.attname::text,
                    format_type(CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END, NULL),
                    NOT a.attnotnull, a.attgenerated <> ''
               FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
               JOIN pg_attribute a ON a.attrelid = c.oid
               JOIN pg_type t ON t.oid = a.atttypid
              WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition
                AND a.attnum > 0 AND NOT a.attisdropped
              ORDER BY c.relname, a.attnum",
        )
        .bind(SCHEMA)
        .fetch_all(pool)
        .await?;
        let mut tables: BTreeMap<String, CatalogTable> = BTreeMap::new();
        for (table, column, data_type, nullable, generated) in rows {
            tables
                .entry(table.clone())
                .or_insert_with(|| CatalogTable {
                    name: table,
                    columns: Vec::new(),
                    primary_key: Vec::new(),
                })
                .columns
                .push(CatalogColumn {
                    name: column,
                    data_type,
                    nullable,
                    generated,
                });
        }
        let keys: Vec<(String, String)> = sqlx::query_as(
            "SELECT c.relname::text, a.attname::text
               FROM pg_index i
               JOIN pg_class c ON c.oid = i.indrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace
               JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY (i.indkey)
              WHERE n.nspname = $1 AND i.indisprimary
              ORDER BY c.relname, array_position(i.indkey::int2[], a.attnum)",
        )
        .bind(SCHEMA)
        .fetch_all(pool)
        .await?;
        for (table, column) in keys {
            if let Some(t) = tables.get_mut(&table) {
                t.primary_key.push(column);
            }
        }
        Ok(Catalog { tables })
    }

    /// The quoted, schema-qualified name of a table the catalog has:
    /// `"public"."users"`.
    pub fn table(&self, table: &str) -> Result<Ident> {
        if self.tables.contains_key(table) {
            Ok(Ident(format!("{}.{}", quote(SCHEMA), quote(table))))
        } else {
            Err(Error::NotFound(format!(
                "table `{table}` in the Pluto database"
            )))
        }
    }

    /// The quoted name of a column the catalog has: `"email"`.
    pub fn column(&self, table: &str, column: &str) -> Result<Ident> {
        match self.tables.get(table).and_then(|t| t.column(column)) {
            Some(c) => Ok(Ident(quote(&c.name))),
            None => Err(Error::NotFound(format!(
                "column `{table}.{column}` in the Pluto database"
            ))),
        }
    }

    pub fn get(&self, table: &str) -> Option<&CatalogTable> {
        self.tables.get(table)
    }

    fn col(&self, table: &str, column: &str) -> Option<&CatalogColumn> {
        self.tables.get(table).and_then(|t| t.column(column))
    }
}

/// Loads the live catalog and checks the map against it: every table and
/// column it names exists, with a type that fits its category; keys, join
/// paths and erasure actions fit the catalog. Every problem is listed in
/// the error (one per line), each with the map's file, line and key.
pub async fn validate_against_catalog(pool: &PgPool, map: &DataMap) -> Result<Catalog> {
    let catalog = Catalog::load(pool).await?;
    let problems = problems(map, &catalog);
    if problems.is_empty() {
        Ok(catalog)
    } else {
        Err(Error::Config(problems.join("\n")))
    }
}

/// The problems of the map against a catalog, as messages; empty when none.
pub fn problems(map: &DataMap, catalog: &Catalog) -> Vec<String> {
    let mut out = Vec::new();
    let src = map.source.display().to_string();
    for t in &map.tables {
        let mut say = |line: usize, key: String, why: String| {
            out.push(format!("{src}:{line}: key `{key}`: {why}"));
        };
        let tkey = format!("tables.{}", t.name);
        let Some(ct) = catalog.get(&t.name) else {
            say(
                t.line,
                tkey,
                format!(
                    "table `{}` does not exist in the live catalog (schema `{SCHEMA}`)",
                    t.name
                ),
            );
            continue;
        };
        for c in &t.columns {
            let ckey = format!("{tkey}.columns.{}", c.name);
            let Some(cc) = ct.column(&c.name) else {
                say(
                    c.line,
                    ckey,
                    format!(
                        "column `{}.{}` does not exist in the live catalog",
                        t.name, c.name
                    ),
                );
                continue;
            };
            if !c.category.fits_type(&cc.data_type) {
                say(
                    c.line,
                    format!("{ckey}.category"),
                    format!(
                        "category `{}` does not fit `{}.{}` of type `{}` (expected {})",
                        c.category,
                        t.name,
                        c.name,
                        cc.data_type,
                        c.category.expected_types()
                    ),
                );
            }
            match &c.erasure {
                ColumnErasure::Null if !cc.nullable => say(
                    c.line,
                    format!("{ckey}.erasure"),
                    format!(
                        "`null` does not fit `{}.{}`, which is NOT NULL: use `pseudonymise`",
                        t.name, c.name
                    ),
                ),
                ColumnErasure::Pseudonymise if !is_text_type(&cc.data_type) => say(
                    c.line,
                    format!("{ckey}.erasure"),
                    format!(
                        "`pseudonymise` needs a text column, but `{}.{}` is `{}`",
                        t.name, c.name, cc.data_type
                    ),
                ),
                ColumnErasure::Generated if !cc.generated => say(
                    c.line,
                    format!("{ckey}.erasure"),
                    format!("`{}.{}` is not a generated column", t.name, c.name),
                ),
                e if cc.generated
                    && !matches!(e, ColumnErasure::Generated | ColumnErasure::DeleteRow)
                    && c.category.is_personal() =>
                {
                    say(
                        c.line,
                        format!("{ckey}.erasure"),
                        format!(
                            "`{}.{}` is a generated column: its erasure is `generated` (it follows its source columns)",
                            t.name, c.name
                        ),
                    )
                }
                _ => {}
            }
        }
        // The key must be the table's primary key.
        let missing_pk: Vec<&String> = t
            .primary_key
            .iter()
            .filter(|k| ct.column(k).is_none())
            .collect();
        if !missing_pk.is_empty() {
            say(
                t.line,
                format!("{tkey}.primary_key"),
                format!(
                    "unknown key column `{}`: not in the live catalog's `{}`",
                    missing_pk
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join("`, `"),
                    t.name
                ),
            );
        } else if t.primary_key != ct.primary_key {
            say(
                t.line,
                format!("{tkey}.primary_key"),
                if ct.primary_key.is_empty() {
                    format!("`{}` has no primary key in the live catalog", t.name)
                } else {
                    format!(
                        "({}) is not the primary key of `{}` in the live catalog, which is ({})",
                        t.primary_key.join(", "),
                        t.name,
                        ct.primary_key.join(", ")
                    )
                },
            );
        }
        path_problems(catalog, t, &t.tenant, &format!("{tkey}.tenant"), &mut say);
        for (i, s) in t.subjects.iter().enumerate() {
            let key = format!("{tkey}.subject[{i}]");
            path_problems(catalog, t, &s.path, &key, &mut say);
            if let Some(cc) = catalog.col(s.path.target_table(&t.name), &s.path.column) {
                let fits = s.kind.category().fits_type(&cc.data_type);
                if !fits {
                    say(
                        s.path.line,
                        format!("{key}.column"),
                        format!(
                            "`{}` links need {}, but `{}.{}` is `{}`",
                            s.kind.category(),
                            s.kind.category().expected_types(),
                            s.path.target_table(&t.name),
                            s.path.column,
                            cc.data_type
                        ),
                    );
                }
            }
        }
    }
    out
}

/// Every column along a path exists, and each join compares equal types.
fn path_problems(
    catalog: &Catalog,
    t: &Table,
    path: &KeyPath,
    key: &str,
    say: &mut impl FnMut(usize, String, String),
) {
    let mut at = t.name.as_str();
    for step in &path.via {
        let from = catalog.col(at, &step.from_column);
        let to = catalog.col(&step.table, &step.to_column);
        if catalog.get(&step.table).is_none() {
            say(
                path.line,
                format!("{key}.via"),
                format!(
                    "join path names table `{}`, which does not exist in the live catalog",
                    step.table
                ),
            );
            return;
        }
        for (table, column, found) in [
            (at, step.from_column.as_str(), from),
            (step.table.as_str(), step.to_column.as_str(), to),
        ] {
            if found.is_none() && catalog.get(table).is_some() {
                say(
                    path.line,
                    format!("{key}.via"),
                    format!(
                        "join path names column `{table}.{column}`, which does not exist in the live catalog"
                    ),
                );
            }
        }
        if let (Some(f), Some(to)) = (from, to)
            && f.data_type != to.data_type
        {
            say(
                path.line,
                format!("{key}.via"),
                format!(
                    "join `{at}.{}` = `{}.{}` compares `{}` with `{}`",
                    step.from_column, step.table, step.to_column, f.data_type, to.data_type
                ),
            );
        }
        at = step.table.as_str();
    }
    if catalog.get(at).is_some() && catalog.col(at, &path.column).is_none() {
        say(
            path.line,
            format!("{key}.column"),
            format!(
                "unknown key column `{at}.{}`: not in the live catalog",
                path.column
            ),
        );
    }
}
