//! The data map against a real PostgreSQL: the shipped map fits the seeded
//! Pluto schema exactly, `check` catches a new personal column, and broken
//! maps fail with their specific error at the right line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use charon::core::datamap::{
    self, Category, ColumnErasure, DataMap, HintSource, RowErasure, SubjectKind,
    validate_against_catalog,
};
use charon::pluto::{SeedOptions, seed};
use common::TestDb;

async fn seeded(prefix: &str) -> TestDb {
    let db = TestDb::new(prefix).await;
    seed(
        &db.pool,
        &SeedOptions {
            tenants: 4,
            seed: 7,
        },
        &|_| {},
    )
    .await
    .unwrap();
    db
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/datamap")
        .join(name)
}

fn load_err(name: &str) -> String {
    match DataMap::load(&fixture(name)) {
        Ok(_) => panic!("{name} loaded"),
        Err(e) => e.to_string(),
    }
}

async fn catalog_err(db: &TestDb, name: &str) -> String {
    let map = DataMap::load(&fixture(name)).unwrap();
    match validate_against_catalog(&db.pool, &map).await {
        Ok(_) => panic!("{name} validated"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn shipped_map_validates_and_covers_the_seeded_schema() {
    let db = seeded("dm_shipped").await;
    let map = DataMap::bundled().unwrap();
    let catalog = validate_against_catalog(&db.pool, &map).await.unwrap();

    // The file on disk is the one compiled in.
    let on_disk =
        DataMap::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join(datamap::PLUTO_MAP_PATH))
            .unwrap();
    assert_eq!(on_disk.tables.len(), map.tables.len());

    let report = datamap::check(&db.pool, &map).await.unwrap();
    assert!(report.is_clean(), "{:#?}", report);
    assert_eq!(report.exit_code(), 0);
    assert_eq!(report.tables_checked, 12);
    assert!(report.lines().iter().any(|l| l.starts_with("ok:")));

    // Identifiers come quoted from the catalog, and only if it has them.
    assert_eq!(
        catalog.table("users").unwrap().as_str(),
        "\"public\".\"users\""
    );
    assert_eq!(
        catalog.column("users", "email").unwrap().as_str(),
        "\"email\""
    );
    assert!(catalog.table("users; DROP TABLE users").is_err());
    assert!(catalog.column("users", "nope").is_err());

    // What erasure will read.
    let payroll = map.table("payroll_entries").unwrap();
    match &payroll.erasure {
        RowErasure::Retain(h) => {
            assert_eq!(h.retention_years, 7);
            assert!(h.reason.contains("payroll"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        payroll.column("tax_id").unwrap().erasure,
        ColumnErasure::Pseudonymise
    );
    assert_eq!(
        payroll.column("gross_cents").unwrap().category,
        Category::None
    );
    let tx = map.table("transactions").unwrap();
    let link = &tx.subjects[0];
    assert_eq!(link.kind, SubjectKind::UserId);
    assert_eq!(link.path.target_table("transactions"), "bank_connections");
    assert_eq!(link.path.column, "created_by");
    let users = map.table("users").unwrap();
    assert_eq!(users.tenant.target_table("users"), "memberships");
    let plaid = map
        .table("bank_connections")
        .unwrap()
        .column("plaid_item_id")
        .unwrap();
    assert_eq!(
        plaid.erasure,
        ColumnErasure::RevokeItem {
            system: "plaid".into(),
            credential: Some("plaid_access_token".into()),
        }
    );
    assert_eq!(
        map.system("plaid").unwrap().kind,
        datamap::SystemKind::Plaid
    );
}

#[tokio::test]
async fn check_catches_a_new_personal_column() {
    let db = seeded("dm_dob").await;
    sqlx::raw_sql("ALTER TABLE users ADD COLUMN date_of_birth date")
        .execute(&db.pool)
        .await
        .unwrap();
    let map = DataMap::bundled().unwrap();
    // The map itself still fits: only coverage is missing.
    validate_against_catalog(&db.pool, &map).await.unwrap();
    let report = datamap::check(&db.pool, &map).await.unwrap();
    assert!(!report.is_clean());
    assert_ne!(report.exit_code(), 0);
    assert!(report.missing_tables.is_empty());
    assert_eq!(report.unclassified.len(), 1, "{report:#?}");
    let u = &report.unclassified[0];
    assert_eq!(
        (u.table.as_str(), u.column.as_str()),
        ("users", "date_of_birth")
    );
    assert_eq!(u.data_type, "date");
    assert!(u.table_in_map);
    assert!(
        u.hints
            .iter()
            .any(|h| h.source == HintSource::Name && h.suggests == Category::BirthDate),
        "{:?}",
        u.hints
    );
    let text = report.lines().join("\n");
    assert!(text.contains("users.date_of_birth  date"), "{text}");
    assert!(text.contains("looks personal (birth_date)"), "{text}");
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["unclassified"][0]["column"], "date_of_birth");
    assert_eq!(
        json["unclassified"][0]["hints"][0]["suggests"],
        "birth_date"
    );
}

#[tokio::test]
async fn check_samples_values_and_reports_missing_tables() {
    let db = seeded("dm_values").await;
    sqlx::raw_sql(
        "ALTER TABLE shifts ADD COLUMN contact text;
         UPDATE shifts SET contact = 'worker' || id || '@example.com';
         ALTER TABLE receipts ADD COLUMN extra text;
         UPDATE receipts SET extra = CASE WHEN id % 2 = 0 THEN 'paid 4111 1111 1111 1111' ELSE 'order 1234567890123456' END;
         CREATE TABLE audit_events (id bigint PRIMARY KEY, ip inet, kind text);
         INSERT INTO audit_events VALUES (1, '10.0.0.1', 'login');",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let report = datamap::check(&db.pool, &DataMap::bundled().unwrap())
        .await
        .unwrap();
    assert_eq!(report.missing_tables, vec!["audit_events".to_string()]);
    let find = |t: &str, c: &str| {
        report
            .unclassified
            .iter()
            .find(|u| u.table == t && u.column == c)
            .unwrap_or_else(|| panic!("{t}.{c} not reported: {report:#?}"))
    };
    let contact = find("shifts", "contact");
    assert!(
        contact
            .hints
            .iter()
            .any(|h| h.source == HintSource::Values && h.suggests == Category::ContactEmail),
        "{:?}",
        contact.hints
    );
    let extra = find("receipts", "extra");
    let card = extra
        .hints
        .iter()
        .find(|h| h.detail.contains("card numbers"))
        .unwrap();
    // Only the Luhn-valid half is counted; no value is quoted.
    assert!(card.detail.contains(" of "), "{}", card.detail);
    assert!(!card.detail.contains("4111"), "{}", card.detail);
    let ip = find("audit_events", "ip");
    assert!(!ip.table_in_map);
    assert!(ip.hints.iter().any(|h| h.suggests == Category::Identifier));
    let kind = find("audit_events", "kind");
    assert!(kind.hints.is_empty(), "{:?}", kind.hints);
    assert!(
        report
            .lines()
            .iter()
            .any(|l| l.contains("tables missing from the map (1): audit_events"))
    );
}

#[tokio::test]
async fn check_reports_map_entries_the_catalog_lacks() {
    let db = seeded("dm_stale").await;
    sqlx::raw_sql("ALTER TABLE trips DROP COLUMN purpose")
        .execute(&db.pool)
        .await
        .unwrap();
    let map = DataMap::bundled().unwrap();
    let report = datamap::check(&db.pool, &map).await.unwrap();
    assert!(report.unclassified.is_empty());
    assert_eq!(report.map_problems.len(), 1, "{:?}", report.map_problems);
    assert!(report.map_problems[0].contains("trips.purpose"));
    assert!(report.map_problems[0].starts_with("datamap/pluto.toml:"));
    assert_ne!(report.exit_code(), 0);
    let e = validate_against_catalog(&db.pool, &map)
        .await
        .unwrap_err()
        .to_string();
    let line = map.table("trips").unwrap().column("purpose").unwrap().line;
    assert!(
        e.starts_with(&format!(
            "datamap/pluto.toml:{line}: key `tables.trips.columns.purpose`"
        )),
        "{e}"
    );
}

#[tokio::test]
async fn catalog_errors_name_file_line_and_key() {
    let db = TestDb::pluto("dm_fixtures").await;

    let e = catalog_err(&db, "unknown-table.toml").await;
    assert!(
        e.contains("unknown-table.toml:11: key `tables.customers`: table `customers` does not exist in the live catalog"),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "{e}");

    let e = catalog_err(&db, "unknown-column.toml").await;
    assert!(
        e.contains("unknown-column.toml:13: key `tables.users.columns.date_of_birth`: column `users.date_of_birth` does not exist"),
        "{e}"
    );

    // Every problem is listed, each at its own line.
    let e = catalog_err(&db, "wrong-type.toml").await;
    assert!(
        e.contains("wrong-type.toml:12: key `tables.trip_points.columns.recorded_at.category`: category `location.precise` does not fit `trip_points.recorded_at` of type `timestamp with time zone`"),
        "{e}"
    );
    assert!(
        e.contains("wrong-type.toml:14: key `tables.trip_points.columns.lon.category`: category `contact.phone` does not fit `trip_points.lon` of type `double precision`"),
        "{e}"
    );
    assert_eq!(e.lines().count(), 2, "{e}");

    let e = catalog_err(&db, "not-the-primary-key.toml").await;
    assert!(
        e.contains("not-the-primary-key.toml:5: key `tables.users.primary_key`: (email) is not the primary key of `users` in the live catalog, which is (id)"),
        "{e}"
    );
    assert!(
        e.contains("not-the-primary-key.toml:13: key `tables.users.columns.email.erasure`: `null` does not fit `users.email`, which is NOT NULL"),
        "{e}"
    );
}

#[test]
fn file_errors_name_file_line_and_key() {
    let e = load_err("bad-category.toml");
    assert!(
        e.contains("bad-category.toml:10: key `tables.users.columns.email.category`: unknown category `contact.emial` (expected one of"),
        "{e}"
    );
    let e = load_err("unknown-key.toml");
    assert!(
        e.contains(
            "unknown-key.toml:5: key `tables.users.primary_key`: unknown key column `user_id`"
        ),
        "{e}"
    );
    let e = load_err("unknown-field.toml");
    assert!(
        e.contains("unknown-field.toml:6:") && e.contains("unknown field `tennant`"),
        "{e}"
    );
    let e = load_err("bad-mask.toml");
    assert!(
        e.contains("bad-mask.toml:10: key `tables.users.columns.full_name.mask`: mask `email` does not fit category `name`"),
        "{e}"
    );
    let e = load_err("unknown-join-table.toml");
    assert!(
        e.contains("unknown-join-table.toml:7: key `tables.trip_points.subject[0].via`: join path names unknown table `journeys`"),
        "{e}"
    );
    let e = load_err("no-such-file.toml");
    assert!(e.contains("no-such-file.toml: cannot read"), "{e}");
}
