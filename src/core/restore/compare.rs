//! Comparing a restored database with the live one: schema from the
//! catalogs, row counts, foreign keys.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::{PgPool, Row};

use crate::core::Result;

/// The schema compared (where the data map's catalog looks too).
pub const SCHEMA: &str = "public";

/// The schema as a set of lines, one per table, column, constraint and index
/// (and view / sequence), each naming its table: comparable with a set
/// difference.
pub async fn schema_lines(pool: &PgPool) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    let rels = sqlx::query(
        "SELECT c.relname, c.relkind::text AS kind FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'S') \
         AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')",
    )
    .bind(SCHEMA)
    .fetch_all(pool)
    .await?;
    for r in rels {
        let name: String = r.try_get("relname")?;
        let kind = match r.try_get::<String, _>("kind")?.as_str() {
            "r" | "p" => "table",
            "v" => "view",
            "m" => "materialized view",
            _ => "sequence",
        };
        out.insert(format!("{kind} {name}"));
    }
    let cols = sqlx::query(
        "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod) AS ty, \
         a.attnotnull, pg_get_expr(d.adbin, d.adrelid) AS def \
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped",
    )
    .bind(SCHEMA)
    .fetch_all(pool)
    .await?;
    for r in cols {
        let table: String = r.try_get("relname")?;
        let col: String = r.try_get("attname")?;
        let ty: String = r.try_get("ty")?;
        let not_null: bool = r.try_get("attnotnull")?;
        let def: Option<String> = r.try_get("def")?;
        out.insert(format!(
            "column {table}.{col} {ty}{}{}",
            if not_null { " NOT NULL" } else { "" },
            def.map(|d| format!(" DEFAULT {d}")).unwrap_or_default()
        ));
    }
    let cons = sqlx::query(
        "SELECT c.relname, k.conname, pg_get_constraintdef(k.oid) AS def \
         FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1",
    )
    .bind(SCHEMA)
    .fetch_all(pool)
    .await?;
    for r in cons {
        let table: String = r.try_get("relname")?;
        let name: String = r.try_get("conname")?;
        let def: String = r.try_get("def")?;
        out.insert(format!("constraint {table}.{name} {def}"));
    }
    let idx =
        sqlx::query("SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = $1")
            .bind(SCHEMA)
            .fetch_all(pool)
            .await?;
    for r in idx {
        let table: String = r.try_get("tablename")?;
        let name: String = r.try_get("indexname")?;
        let def: String = r.try_get("indexdef")?;
        out.insert(format!("index {table}.{name}: {def}"));
    }
    Ok(out)
}

/// The differences between the live and the restored schema, one line each.
pub fn schema_diff(live: &BTreeSet<String>, restored: &BTreeSet<String>) -> Vec<String> {
    let mut out: Vec<String> = live
        .difference(restored)
        .map(|l| format!("missing from the restore: {l}"))
        .collect();
    out.extend(
        restored
            .difference(live)
            .map(|l| format!("only in the restore: {l}")),
    );
    out
}

pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// The ordinary tables of the schema.
pub async fn tables(pool: &PgPool) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition \
         ORDER BY c.relname",
    )
    .bind(SCHEMA)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| r.try_get::<String, _>("relname").map_err(Into::into))
        .collect()
}

/// Exact row count of every table (names from the catalog).
pub async fn row_counts(pool: &PgPool) -> Result<BTreeMap<String, i64>> {
    let mut out = BTreeMap::new();
    for t in tables(pool).await? {
        let sql = format!(
            "SELECT count(*) FROM {}.{}",
            quote_ident(SCHEMA),
            quote_ident(&t)
        );
        // Identifiers read from the catalog and quoted.
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(pool)
            .await?;
        out.insert(t, n);
    }
    Ok(out)
}

/// One foreign key and how many rows break it.
#[derive(Debug, Clone)]
pub struct FkResult {
    pub table: String,
    pub name: String,
    pub orphans: i64,
}

/// Every foreign key of the schema, each checked with one query counting
/// the referencing rows (all key columns non-null, MATCH SIMPLE) that have
/// no referenced row.
pub async fn foreign_keys(pool: &PgPool) -> Result<Vec<FkResult>> {
    let fks = sqlx::query(
        "SELECT k.conname, c.relname AS child, cn.nspname AS child_schema, \
         p.relname AS parent, pn.nspname AS parent_schema, \
         ARRAY(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY u(n, i) \
               JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n ORDER BY u.i) AS ccols, \
         ARRAY(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY u(n, i) \
               JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.n ORDER BY u.i) AS pcols \
         FROM pg_constraint k \
         JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace cn ON cn.oid = c.relnamespace \
         JOIN pg_class p ON p.oid = k.confrelid JOIN pg_namespace pn ON pn.oid = p.relnamespace \
         WHERE k.contype = 'f' AND cn.nspname = $1 ORDER BY c.relname, k.conname",
    )
    .bind(SCHEMA)
    .fetch_all(pool)
    .await?;
    let mut queries = Vec::new();
    for r in fks {
        let name: String = r.try_get("conname")?;
        let child: String = r.try_get("child")?;
        let child_schema: String = r.try_get("child_schema")?;
        let parent: String = r.try_get("parent")?;
        let parent_schema: String = r.try_get("parent_schema")?;
        let ccols: Vec<String> = r.try_get("ccols")?;
        let pcols: Vec<String> = r.try_get("pcols")?;
        let not_null: Vec<String> = ccols
            .iter()
            .map(|c| format!("c.{} IS NOT NULL", quote_ident(c)))
            .collect();
        let join: Vec<String> = ccols
            .iter()
            .zip(&pcols)
            .map(|(c, p)| format!("p.{} = c.{}", quote_ident(p), quote_ident(c)))
            .collect();
        if not_null.is_empty() || join.len() != ccols.len() {
            continue;
        }
        let sql = format!(
            "SELECT count(*) FROM {}.{} c WHERE {} AND NOT EXISTS (SELECT 1 FROM {}.{} p WHERE {})",
            quote_ident(&child_schema),
            quote_ident(&child),
            not_null.join(" AND "),
            quote_ident(&parent_schema),
            quote_ident(&parent),
            join.join(" AND ")
        );
        queries.push((child, name, sql));
    }
    // Two at a time (the restore's pool is shared with the other checks).
    use futures::StreamExt;
    futures::stream::iter(queries)
        .map(|(table, name, sql)| async move {
            // Identifiers read from the catalog and quoted.
            let orphans: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_one(pool)
                .await?;
            Ok(FkResult {
                table,
                name,
                orphans,
            })
        })
        .buffered(2)
        .collect::<Vec<Result<FkResult>>>()
        .await
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_both_ways() {
        let a: BTreeSet<String> = ["table a".into(), "table b".into()].into();
        let b: BTreeSet<String> = ["table a".into(), "table c".into()].into();
        assert_eq!(
            schema_diff(&a, &b),
            vec![
                "missing from the restore: table b".to_string(),
                "only in the restore: table c".to_string()
            ]
        );
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
