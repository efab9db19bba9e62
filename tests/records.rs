//! Records, masking, reveal and redaction against a real PostgreSQL: two
//! tenants with colliding record shapes, keyset pages, filters with hostile
//! text, masks, reveal, one-field and detector redaction with the console
//! record, and changes between preview and apply.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use charon::core::Error;
use charon::core::datamap::{Catalog, DataMap, validate_against_catalog};
use charon::core::detect::Detector;
use charon::core::records::{
    self, At, Cursor, Dir, Filter, How, Kind, MaskedRecord, Page, Pk, Query, SortBy,
};
use chrono::NaiveDate;
use common::TestDb;
use sqlx::PgPool;
use uuid::Uuid;

const KEY: &[u8] = b"redaction-test-key-0123456789abcdef";

const CARD: &str = "4111 1111 1111 1111";
const CARD2: &str = "5555555555554444";
const ORDER: &str = "1234567890123456"; // 16 digits, Luhn fails
const EMAIL: &str = "jane.quincy@example.com";
const NAME: &str = "Jane Quincy Doe";
const SSN: &str = "123-45-6789";
const MEMBER_EMAIL: &str = "alice.member@example.com";
const MEMBER_NAME: &str = "Alice Zed Member";
const MEMBER_PHONE: &str = "+1 415-555-0199";
const ACCOUNT: &str = "GB82WEST12345698765432";

struct Fixture {
    db: TestDb,
    map: DataMap,
    catalog: Catalog,
    a: Uuid,
    b: Uuid,
}

/// Offsets of each tenant's ids: A's are 1.., B's 100001...
const OFF_A: i64 = 0;
const OFF_B: i64 = 100_000;

async fn tenant(pool: &PgPool, off: i64) -> Uuid {
    let biz = Uuid::new_v4();
    let user = Uuid::new_v4();
    let conn = Uuid::new_v4();
    let acct = Uuid::new_v4();
    let stmts: &[&str] = &[
        "INSERT INTO businesses VALUES ($1, 'Same Name LLC', 'pro', 'US', '2024-01-01')",
        "INSERT INTO users (id, email, full_name, phone, created_at)
         VALUES ($3, 'alice.member@example.com', 'Alice Zed Member', '+1 415-555-0199', '2024-01-01')",
        "INSERT INTO memberships VALUES ($1, $3, 'owner', '2024-01-01')",
        "INSERT INTO bank_connections VALUES ($4, $1, $3, 'First Bank', 'item-sandbox-000111222', 'active', '2024-01-01')",
        "INSERT INTO bank_accounts VALUES ($5, $1, $4, 'Checking', '1234', 'depository')",
        // 60 transactions: three per day (ties on the date), amounts with
        // ties and negatives, and three rows with hostile-looking text.
        "INSERT INTO transactions
         SELECT $2 + g, $1, $5, '2024-01-01'::timestamptz + (g / 3) * interval '1 day',
                (g * 37) % 1000 - 200,
                CASE WHEN g % 5 = 0 THEN 'Coffee Shop' ELSE 'Hardware ' || g END,
                CASE g WHEN 58 THEN '50%_off\\ sale' WHEN 59 THEN '50xxoff sale'
                       WHEN 60 THEN 'O''Brien \"quoted\"' ELSE 'purchase ' || g END,
                'ops'
           FROM generate_series(1, 60) g",
        "INSERT INTO receipts
         SELECT $2 + g, $1, $3, 'receipts/' || g || '.jpg', 'Store ' || g, g * 100,
                '2024-02-01'::date + g,
                CASE WHEN g % 4 = 0 THEN 'TOTAL 12.00 VISA 5555555555554444' ELSE 'TOTAL 3.00' END,
                CASE g WHEN 1 THEN 'paid with card 4111 1111 1111 1111, order 1234567890123456'
                       WHEN 2 THEN 'order 1234567890123456'
                       WHEN 3 THEN 'call me at +1 415-555-0134'
                       ELSE NULL END,
                '2024-02-01'::timestamptz + g * interval '1 hour'
           FROM generate_series(1, 20) g",
        "INSERT INTO invoices
         SELECT $2 + g, $1, 'INV-' || g, 'Jane Quincy Doe', 'jane.quincy@example.com',
                '1 Main St, SSN 123-45-6789', g * 1000, '2024-03-01', '2024-04-01', 'sent',
                '2024-03-01'::timestamptz + g * interval '1 day'
           FROM generate_series(1, 10) g",
        "INSERT INTO trips
         SELECT $2 + g, $1, $3, '2024-05-01 08:00'::timestamptz + g * interval '1 day',
                '2024-05-01 08:30'::timestamptz + g * interval '1 day', 1000 * g, 'client visit'
           FROM generate_series(1, 5) g",
        "INSERT INTO trip_points
         SELECT $2 + 1, s, $1, '2024-05-02 08:00'::timestamptz + s * interval '1 minute',
                37.774929 + s * 0.001, -122.419416
           FROM generate_series(1, 20) s",
        "INSERT INTO shifts
         SELECT $2 + g, $1, $3, '2024-06-01 09:00'::timestamptz + g * interval '1 day',
                '2024-06-01 17:00'::timestamptz + g * interval '1 day',
                CASE WHEN g = 1 THEN 'swap, card 4111111111111111' ELSE NULL END
           FROM generate_series(1, 5) g",
        "INSERT INTO payroll_entries
         SELECT $2 + g, $1, $3, '2024-07-01', '2024-07-31', 500000 + g, 400000,
                '123-45-6789', 'GB82WEST12345698765432', '2024-08-01'::timestamptz + g * interval '1 day'
           FROM generate_series(1, 5) g",
    ];
    for s in stmts {
        sqlx::query(sqlx::AssertSqlSafe(*s))
            .bind(biz)
            .bind(off)
            .bind(user)
            .bind(conn)
            .bind(acct)
            .execute(pool)
            .await
            .unwrap_or_else(|e| panic!("{s}: {e}"));
    }
    biz
}

async fn fixture(prefix: &str) -> Fixture {
    let db = TestDb::pluto(prefix).await;
    let a = tenant(&db.pool, OFF_A).await;
    let b = tenant(&db.pool, OFF_B).await;
    sqlx::raw_sql(charon::pluto::INDEXES)
        .execute(&db.pool)
        .await
        .unwrap();
    let map = DataMap::bundled().unwrap();
    let catalog = validate_against_catalog(&db.pool, &map).await.unwrap();
    Fixture {
        db,
        map,
        catalog,
        a,
        b,
    }
}

impl Fixture {
    async fn page(&self, tenant: Uuid, kind: Kind, q: &Query) -> Page {
        records::list(&self.db.pool, &self.map, &self.catalog, tenant, kind, q)
            .await
            .unwrap()
    }

    /// Every row of a kind, page by page forward, then the same backwards
    /// from the last page; asserts both give the same rows.
    async fn all(
        &self,
        tenant: Uuid,
        kind: Kind,
        sort: SortBy,
        dir: Dir,
        filter: &Filter,
    ) -> Vec<Pk> {
        let mut q = Query {
            sort,
            dir,
            filter: filter.clone(),
            at: At::First,
            limit: 7,
        };
        let mut forward = Vec::new();
        let mut pages = 0;
        loop {
            let p = self.page(tenant, kind, &q).await;
            assert!(p.rows.len() <= 7);
            forward.extend(p.rows.iter().map(|r| r.id));
            pages += 1;
            assert!(pages < 1000);
            match p.next {
                Some(c) => q.at = At::After(c),
                None => break,
            }
        }
        q.at = At::Last;
        let mut backward: Vec<Pk> = Vec::new();
        loop {
            let p = self.page(tenant, kind, &q).await;
            let mut ids: Vec<Pk> = p.rows.iter().map(|r| r.id).collect();
            ids.extend(backward);
            backward = ids;
            match p.prev {
                Some(c) => q.at = At::Before(c),
                None => break,
            }
        }
        assert_eq!(
            forward, backward,
            "{kind} forward and backward pages differ"
        );
        forward
    }
}

fn int_ids(ids: &[Pk]) -> Vec<i64> {
    ids.iter()
        .map(|p| match p {
            Pk::Int(i) => *i,
            Pk::Uuid(_) => panic!("uuid"),
        })
        .collect()
}

async fn expected(pool: &PgPool, sql: &'static str, tenant: Uuid) -> Vec<i64> {
    sqlx::query_scalar(sql)
        .bind(tenant)
        .fetch_all(pool)
        .await
        .unwrap()
}

fn json(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).unwrap()
}

#[tokio::test]
async fn keyset_pages_cover_every_row_once_in_order() {
    let f = fixture("rec_keyset").await;
    let none = Filter::default();
    let by_date = int_ids(
        &f.all(f.a, Kind::Transactions, SortBy::Date, Dir::Asc, &none)
            .await,
    );
    let want = expected(
        &f.db.pool,
        "SELECT id FROM transactions WHERE business_id = $1 ORDER BY posted_at, id",
        f.a,
    )
    .await;
    assert_eq!(want.len(), 60);
    assert_eq!(by_date, want);

    let desc = int_ids(
        &f.all(f.a, Kind::Transactions, SortBy::Date, Dir::Desc, &none)
            .await,
    );
    let mut rev = want.clone();
    rev.reverse();
    assert_eq!(desc, rev);

    let by_amount = int_ids(
        &f.all(f.a, Kind::Transactions, SortBy::Amount, Dir::Asc, &none)
            .await,
    );
    let want_amount = expected(
        &f.db.pool,
        "SELECT id FROM transactions WHERE business_id = $1 ORDER BY amount_cents, id",
        f.a,
    )
    .await;
    assert_eq!(by_amount, want_amount);
    let by_amount_desc = int_ids(
        &f.all(f.a, Kind::Transactions, SortBy::Amount, Dir::Desc, &none)
            .await,
    );
    let mut rev = want_amount.clone();
    rev.reverse();
    assert_eq!(by_amount_desc, rev);

    // Going back from a middle page gives the page before it.
    let q = Query {
        limit: 10,
        ..Query::default()
    };
    let p1 = f.page(f.a, Kind::Transactions, &q).await;
    let p2 = f
        .page(
            f.a,
            Kind::Transactions,
            &Query {
                at: At::After(p1.next.unwrap()),
                ..q.clone()
            },
        )
        .await;
    assert_eq!(
        int_ids(&p2.rows.iter().map(|r| r.id).collect::<Vec<_>>()),
        want[10..20]
    );
    let back = f
        .page(
            f.a,
            Kind::Transactions,
            &Query {
                at: At::Before(p2.prev.unwrap()),
                ..q.clone()
            },
        )
        .await;
    assert_eq!(back.rows, p1.rows);
    assert!(back.prev.is_none());

    // The last page is the tail, in order.
    let last = f
        .page(
            f.a,
            Kind::Transactions,
            &Query {
                at: At::Last,
                ..q.clone()
            },
        )
        .await;
    assert_eq!(
        int_ids(&last.rows.iter().map(|r| r.id).collect::<Vec<_>>()),
        want[50..]
    );
    assert!(last.next.is_none());

    // A cursor survives its text form, and is refused by another list.
    let c = p1.next.unwrap();
    assert_eq!(Cursor::parse(&c.to_string()).unwrap(), c);
    let wrong = records::list(
        &f.db.pool,
        &f.map,
        &f.catalog,
        f.a,
        Kind::Receipts,
        &Query {
            at: At::After(c),
            ..q.clone()
        },
    )
    .await;
    assert!(matches!(wrong, Err(Error::InvalidInput(_))));
    assert!(Cursor::parse("transactions:date:asc:x:1").is_err());
    assert!(Cursor::parse("'; DROP TABLE x; --").is_err());
    let no_amount = records::list(
        &f.db.pool,
        &f.map,
        &f.catalog,
        f.a,
        Kind::Shifts,
        &Query {
            sort: SortBy::Amount,
            ..Query::default()
        },
    )
    .await;
    assert!(matches!(no_amount, Err(Error::InvalidInput(_))));
}

#[tokio::test]
async fn no_view_filter_or_page_returns_the_other_tenants_rows() {
    let f = fixture("rec_isolation").await;
    let filters = [
        Filter::default(),
        Filter {
            text: Some("o".into()),
            ..Filter::default()
        },
        Filter {
            date_from: NaiveDate::from_ymd_opt(2024, 1, 5),
            date_to: NaiveDate::from_ymd_opt(2024, 12, 31),
            ..Filter::default()
        },
    ];
    for (tenant, other) in [(f.a, f.b), (f.b, f.a)] {
        // Ids of the tenant's own rows, per table.
        for kind in Kind::ALL {
            let table = kind.table();
            let col = kind.pk_column();
            let own: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT {col}::text FROM {table} WHERE business_id = $1"
            )))
            .bind(tenant)
            .fetch_all(&f.db.pool)
            .await
            .unwrap();
            let theirs: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT {col}::text FROM {table} WHERE business_id = $1"
            )))
            .bind(other)
            .fetch_all(&f.db.pool)
            .await
            .unwrap();
            assert!(!own.is_empty(), "{kind}");
            let sorts: &[SortBy] = if kind.has_amount() {
                &[SortBy::Date, SortBy::Amount]
            } else {
                &[SortBy::Date]
            };
            for filter in &filters {
                for &sort in sorts {
                    for dir in [Dir::Asc, Dir::Desc] {
                        let ids = f.all(tenant, kind, sort, dir, filter).await;
                        for id in &ids {
                            assert!(
                                own.contains(&id.to_string()),
                                "{kind}: {id} is not the tenant's"
                            );
                        }
                        if *filter == Filter::default() {
                            assert_eq!(ids.len(), own.len(), "{kind}");
                        }
                    }
                }
            }
            // Show, reveal, route and redaction of the other tenant's rows.
            for id in &theirs {
                let pk = kind.parse_pk(id).unwrap();
                let shown = records::show(&f.db.pool, &f.map, &f.catalog, tenant, kind, pk)
                    .await
                    .unwrap();
                assert!(shown.is_none(), "{kind} {id} shown to the other tenant");
            }
        }
        let their_invoice = Pk::Int(if other == f.a { OFF_A } else { OFF_B } + 1);
        let r = records::reveal(
            &f.db.pool,
            &f.map,
            &f.catalog,
            tenant,
            Kind::Invoices,
            their_invoice,
            "customer_email",
        )
        .await;
        assert!(matches!(r, Err(Error::NotFound(_))));
        let their_trip = if other == f.a { OFF_A } else { OFF_B } + 1;
        let route = records::trip_route(&f.db.pool, &f.map, &f.catalog, tenant, their_trip)
            .await
            .unwrap();
        assert!(route.is_none());
        let their_receipt = Pk::Int(if other == f.a { OFF_A } else { OFF_B } + 1);
        let p = records::preview_redaction(
            &f.db.pool,
            &f.map,
            &f.catalog,
            tenant,
            Kind::Receipts,
            their_receipt,
            "notes",
            How::Span(Detector::Card),
        )
        .await;
        assert!(matches!(p, Err(Error::NotFound(_))));
    }
}

#[tokio::test]
async fn filters_text_date_and_amount_with_hostile_text() {
    let f = fixture("rec_filter").await;
    let ids = |text: &str| {
        let filter = Filter {
            text: Some(text.to_string()),
            ..Filter::default()
        };
        let f = &f;
        async move {
            int_ids(
                &f.all(f.a, Kind::Transactions, SortBy::Date, Dir::Asc, &filter)
                    .await,
            )
        }
    };
    assert_eq!(ids("coffee").await.len(), 12); // every 5th of 60, any case
    assert_eq!(ids(r"50%_off\").await, vec![58]);
    assert_eq!(ids("%").await, vec![58]);
    assert_eq!(ids("_").await, vec![58]);
    assert_eq!(ids(r"\").await, vec![58]);
    assert_eq!(ids("O'Brien").await, vec![60]);
    assert_eq!(ids("\"quoted\"").await, vec![60]);
    assert_eq!(
        ids("'; DROP TABLE transactions; --").await,
        Vec::<i64>::new()
    );
    assert_eq!(ids("x' OR '1'='1").await, Vec::<i64>::new());
    // Personal columns are not searchable: a filter cannot probe a mask.
    let inv = f
        .all(
            f.a,
            Kind::Invoices,
            SortBy::Date,
            Dir::Asc,
            &Filter {
                text: Some("jane".into()),
                ..Filter::default()
            },
        )
        .await;
    assert!(inv.is_empty());
    let nul = records::list(
        &f.db.pool,
        &f.map,
        &f.catalog,
        f.a,
        Kind::Transactions,
        &Query {
            filter: Filter {
                text: Some("a\0b".into()),
                ..Filter::default()
            },
            ..Query::default()
        },
    )
    .await;
    assert!(matches!(nul, Err(Error::InvalidInput(_))));

    // Dates: days 5..=6 hold g = 15..=20 (three a day, g / 3).
    let dated = f
        .all(
            f.a,
            Kind::Transactions,
            SortBy::Date,
            Dir::Asc,
            &Filter {
                date_from: NaiveDate::from_ymd_opt(2024, 1, 6),
                date_to: NaiveDate::from_ymd_opt(2024, 1, 7),
                ..Filter::default()
            },
        )
        .await;
    assert_eq!(int_ids(&dated), vec![15, 16, 17, 18, 19, 20]);

    let want: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM transactions WHERE business_id = $1 AND amount_cents BETWEEN -50 AND 100
         ORDER BY amount_cents, id",
    )
    .bind(f.a)
    .fetch_all(&f.db.pool)
    .await
    .unwrap();
    assert!(!want.is_empty());
    let amounts = f
        .all(
            f.a,
            Kind::Transactions,
            SortBy::Amount,
            Dir::Asc,
            &Filter {
                amount_min: Some(-50),
                amount_max: Some(100),
                ..Filter::default()
            },
        )
        .await;
    assert_eq!(int_ids(&amounts), want);
    let combined = f
        .all(
            f.a,
            Kind::Transactions,
            SortBy::Date,
            Dir::Desc,
            &Filter {
                text: Some("coffee".into()),
                amount_min: Some(0),
                ..Filter::default()
            },
        )
        .await;
    let want: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM transactions WHERE business_id = $1 AND merchant = 'Coffee Shop'
           AND amount_cents >= 0 ORDER BY posted_at DESC, id DESC",
    )
    .bind(f.a)
    .fetch_all(&f.db.pool)
    .await
    .unwrap();
    assert_eq!(int_ids(&combined), want);
}

async fn everything(f: &Fixture, tenant: Uuid) -> Vec<MaskedRecord> {
    let mut out = Vec::new();
    for kind in Kind::ALL {
        let p = f
            .page(
                tenant,
                kind,
                &Query {
                    limit: records::MAX_LIMIT,
                    ..Query::default()
                },
            )
            .await;
        for r in &p.rows {
            let shown = records::show(&f.db.pool, &f.map, &f.catalog, tenant, kind, r.id)
                .await
                .unwrap()
                .unwrap();
            out.push(shown);
        }
        out.extend(p.rows);
    }
    out
}

#[tokio::test]
async fn every_personal_value_is_masked_in_lists_and_details() {
    let f = fixture("rec_mask").await;
    let all = everything(&f, f.a).await;
    let text = json(&all);
    for raw in [
        CARD,
        CARD2,
        EMAIL,
        NAME,
        SSN,
        "1 Main St",
        MEMBER_EMAIL,
        MEMBER_NAME,
        MEMBER_PHONE,
        "415-555-0134",
        ACCOUNT,
        "37.774929",
        "37.775929",
        "item-sandbox-000111222",
    ] {
        assert!(!text.contains(raw), "{raw} appears unmasked");
    }
    let receipt = all
        .iter()
        .find(|r| r.kind == Kind::Receipts && r.id == Pk::Int(4) && r.field("ocr_text").is_some())
        .unwrap();
    assert_eq!(
        receipt.value("ocr_text"),
        "TOTAL 12.00 VISA ••••••••••••4444"
    );
    let receipt = all
        .iter()
        .find(|r| r.kind == Kind::Receipts && r.id == Pk::Int(1))
        .unwrap();
    assert_eq!(
        receipt.value("notes"),
        format!("paid with card •••• •••• •••• 1111, order {ORDER}")
    );
    let invoice = all
        .iter()
        .find(|r| r.kind == Kind::Invoices && r.field("customer_address").is_some())
        .unwrap();
    assert_eq!(invoice.value("customer_email"), "j***@e***.com");
    assert_eq!(invoice.value("customer_name"), "J. Q. D.");
    assert_eq!(invoice.value("customer_address"), "•••");
    assert_eq!(invoice.value("amount_cents"), "1000");
    assert!(invoice.field("customer_email").unwrap().personal);
    assert!(!invoice.field("amount_cents").unwrap().personal);
    let payroll = all
        .iter()
        .find(|r| r.kind == Kind::Payroll && r.field("tax_id").is_some())
        .unwrap();
    assert_eq!(payroll.value("tax_id"), "•••");
    assert_eq!(payroll.field("tax_id").unwrap().category, "government_id");
    assert_eq!(payroll.value("bank_account"), "••••5432");
    let member = all.iter().find(|r| r.kind == Kind::Members).unwrap();
    assert_eq!(member.value("user.email"), "a***@e***.com");
    assert_eq!(member.value("user.full_name"), "A. Z. M.");
    assert_eq!(member.value("user.phone"), "•••••••••99");
    assert_eq!(member.value("role"), "owner");

    // The route, at the masked precision, deduplicated.
    let route = records::trip_route(&f.db.pool, &f.map, &f.catalog, f.a, 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(route.points, vec![(37.78, -122.42), (37.79, -122.42)]);
    assert_eq!(route.distance_m, 1000);
    assert_eq!(route.duration_s, 30 * 60);
    let empty = records::trip_route(&f.db.pool, &f.map, &f.catalog, f.a, 2)
        .await
        .unwrap()
        .unwrap();
    assert!(empty.points.is_empty());
}

#[tokio::test]
async fn seeded_personal_values_never_appear_unmasked() {
    let db = TestDb::new("rec_seeded").await;
    charon::pluto::seed(
        &db.pool,
        &charon::pluto::SeedOptions {
            tenants: 4,
            seed: 11,
        },
        &|_| {},
    )
    .await
    .unwrap();
    let map = DataMap::bundled().unwrap();
    let catalog = validate_against_catalog(&db.pool, &map).await.unwrap();
    let tenants: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM businesses")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    let secrets: Vec<String> = sqlx::query_scalar(
        "SELECT email FROM users UNION SELECT phone FROM users WHERE phone IS NOT NULL
         UNION SELECT full_name FROM users UNION SELECT tax_id FROM payroll_entries
         UNION SELECT bank_account FROM payroll_entries
         UNION SELECT customer_email FROM invoices UNION SELECT customer_name FROM invoices
         UNION SELECT customer_address FROM invoices",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(secrets.len() > 20);
    let f = Fixture {
        db,
        map,
        catalog,
        a: tenants[0],
        b: tenants[1],
    };
    for t in &tenants {
        let text = json(&everything(&f, *t).await);
        for s in &secrets {
            assert!(
                !text.contains(s.as_str()),
                "a seeded personal value appears unmasked"
            );
        }
    }
}

#[tokio::test]
async fn reveal_returns_one_personal_value_and_refuses_others() {
    let f = fixture("rec_reveal").await;
    let r = records::reveal(
        &f.db.pool,
        &f.map,
        &f.catalog,
        f.a,
        Kind::Invoices,
        Pk::Int(1),
        "customer_email",
    )
    .await
    .unwrap();
    assert_eq!(r.value.expose().as_deref(), Some(EMAIL));
    assert_eq!(r.category, "contact.email");
    assert!(!format!("{r:?}").contains(EMAIL));
    let user =
        sqlx::query_scalar::<_, Uuid>("SELECT user_id FROM memberships WHERE business_id = $1")
            .bind(f.a)
            .fetch_one(&f.db.pool)
            .await
            .unwrap();
    let m = records::reveal(
        &f.db.pool,
        &f.map,
        &f.catalog,
        f.a,
        Kind::Members,
        Pk::Uuid(user),
        "user.phone",
    )
    .await
    .unwrap();
    assert_eq!(m.value.expose().as_deref(), Some(MEMBER_PHONE));
    for (field, unknown) in [
        ("amount_cents", false),
        ("status", false),
        ("business_id", false),
        ("nope", true),
        ("customer_email; --", true),
    ] {
        let r = records::reveal(
            &f.db.pool,
            &f.map,
            &f.catalog,
            f.a,
            Kind::Invoices,
            Pk::Int(1),
            field,
        )
        .await;
        if unknown {
            assert!(matches!(r, Err(Error::NotFound(_))), "{field}");
        } else {
            assert!(matches!(r, Err(Error::InvalidInput(_))), "{field}");
        }
    }
}

async fn console() -> TestDb {
    let db = TestDb::new("rec_console").await;
    charon::core::db::migrate_console(&db.pool).await.unwrap();
    db
}

async fn note(pool: &PgPool, id: i64) -> Option<String> {
    sqlx::query_scalar("SELECT notes FROM receipts WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn redaction_replaces_exactly_the_card_and_records_only_a_keyed_hash() {
    let f = fixture("rec_redact").await;
    let c = console().await;
    let before = note(&f.db.pool, 1).await.unwrap();
    let p = records::preview_redaction(
        &f.db.pool,
        &f.map,
        &f.catalog,
        f.a,
        Kind::Receipts,
        Pk::Int(1),
        "notes",
        How::Span(Detector::Card),
    )
    .await
    .unwrap();
    assert_eq!(p.matches, 1);
    assert_eq!(
        p.before_masked,
        format!("paid with card •••• •••• •••• 1111, order {ORDER}")
    );
    assert_eq!(
        p.after.as_deref(),
        Some(format!("paid with card [REDACTED:card], order {ORDER}").as_str())
    );
    assert!(!json(&p).contains(CARD));
    let done = records::apply_redaction(
        &f.db.pool,
        &c.pool,
        &f.map,
        &f.catalog,
        KEY,
        "carol",
        "ticket SUP-1: card typed into a note",
        &p,
    )
    .await
    .unwrap();
    assert_eq!((done.fields, done.matches), (1, 1));
    assert_eq!(
        note(&f.db.pool, 1).await.unwrap(),
        format!("paid with card [REDACTED:card], order {ORDER}")
    );
    // The other tenant's identical note is untouched.
    assert_eq!(note(&f.db.pool, OFF_B + 1).await.unwrap(), before);

    let row: String = sqlx::query_scalar("SELECT row_to_json(r)::text FROM redactions r")
        .fetch_one(&c.pool)
        .await
        .unwrap();
    for part in ["4111", "1111 1111", CARD] {
        assert!(
            !row.contains(part),
            "console row holds part of the old value"
        );
    }
    let (table, key, column, method, detector, operator, status, hmac): (
        String,
        serde_json::Value,
        String,
        String,
        Option<String>,
        String,
        String,
        Vec<u8>,
    ) = sqlx::query_as(
        "SELECT table_name, row_key, column_name, method, detector, operator, status, old_value_hmac
           FROM redactions",
    )
    .fetch_one(&c.pool)
    .await
    .unwrap();
    assert_eq!(table, "receipts");
    assert_eq!(key, serde_json::json!({"id": "1"}));
    assert_eq!(column, "notes");
    assert_eq!(
        (method.as_str(), detector.as_deref()),
        ("span", Some("card"))
    );
    assert_eq!(operator, "carol");
    assert_eq!(status, "applied");
    assert_eq!(
        hmac,
        records::keyed_hash(KEY, before.as_bytes())
            .unwrap()
            .to_vec()
    );

    // Applying the same preview again: the value changed, refused.
    let again = records::apply_redaction(
        &f.db.pool, &c.pool, &f.map, &f.catalog, KEY, "carol", "again", &p,
    )
    .await;
    assert!(matches!(again, Err(Error::Conflict(_))));

    // A random 16-digit order number is not a card: nothing to redact.
    let p2 = records::preview_redaction(
        &f.db.pool,
        &f.map,
        &f.catalog,
        f.a,
        Kind::Receipts,
        Pk::Int(2),
        "notes",
        How::Span(Detector::Card),
    )
    .await
    .unwrap();
    assert_eq!(p2.matches, 0);
    let r = records::apply_redaction(
        &f.db.pool, &c.pool, &f.map, &f.catalog, KEY, "carol", "order", &p2,
    )
    .await;
    assert!(matches!(r, Err(Error::InvalidInput(_))));
    assert_eq!(note(&f.db.pool, 2).await.unwrap(), format!("order {ORDER}"));

    // Nulling a nullable free-text field; NOT NULL and non-personal refused.
    let pn = records::preview_redaction(
        &f.db.pool,
        &f.map,
        &f.catalog,
        f.a,
        Kind::Receipts,
        Pk::Int(3),
        "notes",
        How::Null,
    )
    .await
    .unwrap();
    assert_eq!(pn.after, None);
    records::apply_redaction(
        &f.db.pool,
        &c.pool,
        &f.map,
        &f.catalog,
        KEY,
        "carol",
        "phone in note",
        &pn,
    )
    .await
    .unwrap();
    assert_eq!(note(&f.db.pool, 3).await, None);
    for (kind, field, how) in [
        (Kind::Invoices, "customer_address", How::Null),
        (Kind::Invoices, "amount_cents", How::Null),
        (Kind::Receipts, "merchant", How::Span(Detector::Card)),
        (Kind::Receipts, "uploaded_by", How::Null),
    ] {
        let r = records::preview_redaction(
            &f.db.pool,
            &f.map,
            &f.catalog,
            f.a,
            kind,
            Pk::Int(1),
            field,
            how,
        )
        .await;
        assert!(matches!(r, Err(Error::InvalidInput(_))), "{field}");
    }
    // Without a reason, or with a short key: refused.
    let p4 = records::preview_redaction(
        &f.db.pool,
        &f.map,
        &f.catalog,
        f.a,
        Kind::Receipts,
        Pk::Int(4),
        "ocr_text",
        How::Span(Detector::Card),
    )
    .await
    .unwrap();
    let r = records::apply_redaction(
        &f.db.pool, &c.pool, &f.map, &f.catalog, KEY, "carol", "  ", &p4,
    )
    .await;
    assert!(matches!(r, Err(Error::InvalidInput(_))));
    let r = records::apply_redaction(
        &f.db.pool, &c.pool, &f.map, &f.catalog, b"short", "carol", "why", &p4,
    )
    .await;
    assert!(matches!(r, Err(Error::Config(_))));
}

#[tokio::test]
async fn a_change_between_preview_and_apply_is_refused() {
    let f = fixture("rec_race").await;
    let c = console().await;
    let p = records::preview_redaction(
        &f.db.pool,
        &f.map,
        &f.catalog,
        f.a,
        Kind::Receipts,
        Pk::Int(1),
        "notes",
        How::Span(Detector::Card),
    )
    .await
    .unwrap();
    sqlx::query("UPDATE receipts SET notes = notes || ' (edited)' WHERE id = 1")
        .execute(&f.db.pool)
        .await
        .unwrap();
    let r = records::apply_redaction(
        &f.db.pool, &c.pool, &f.map, &f.catalog, KEY, "carol", "ticket", &p,
    )
    .await;
    assert!(matches!(r, Err(Error::Conflict(_))), "{r:?}");
    assert!(note(&f.db.pool, 1).await.unwrap().contains(CARD));
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM redactions")
        .fetch_one(&c.pool)
        .await
        .unwrap();
    assert_eq!(n, 0);

    // A sweep: a new card appears after the preview.
    let bulk =
        records::preview_detector_redaction(&f.db.pool, &f.map, &f.catalog, f.a, Detector::Card)
            .await
            .unwrap();
    sqlx::query("UPDATE receipts SET notes = 'card 4111111111111111' WHERE id = 5")
        .execute(&f.db.pool)
        .await
        .unwrap();
    let r = records::apply_detector_redaction(
        &f.db.pool, &c.pool, &f.map, &f.catalog, KEY, "carol", "sweep", &bulk,
    )
    .await;
    assert!(matches!(r, Err(Error::Conflict(_))), "{r:?}");
    assert!(note(&f.db.pool, 1).await.unwrap().contains(CARD));
}

#[tokio::test]
async fn detector_sweep_applies_exactly_what_the_preview_counted() {
    let f = fixture("rec_bulk").await;
    let c = console().await;
    let bulk =
        records::preview_detector_redaction(&f.db.pool, &f.map, &f.catalog, f.a, Detector::Card)
            .await
            .unwrap();
    // Receipt 1's note, receipts 4, 8, .., 20 OCR (5), shift 1's note.
    assert_eq!(bulk.matches, 7, "{:?}", bulk.columns);
    assert_eq!(bulk.fields, 7);
    let b_before: Vec<String> = sqlx::query_scalar(
        "SELECT coalesce(notes, '') || ocr_text FROM receipts WHERE business_id = $1 ORDER BY id",
    )
    .bind(f.b)
    .fetch_all(&f.db.pool)
    .await
    .unwrap();
    let done = records::apply_detector_redaction(
        &f.db.pool,
        &c.pool,
        &f.map,
        &f.catalog,
        KEY,
        "carol",
        "card sweep SUP-2",
        &bulk,
    )
    .await
    .unwrap();
    assert_eq!(done.matches, bulk.matches);
    assert_eq!(done.fields, bulk.fields);
    let rows: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM redactions WHERE batch_id = $1 AND status = 'applied'",
    )
    .bind(done.batch_id)
    .fetch_one(&c.pool)
    .await
    .unwrap();
    assert_eq!(rows as u64, bulk.fields);
    let after =
        records::preview_detector_redaction(&f.db.pool, &f.map, &f.catalog, f.a, Detector::Card)
            .await
            .unwrap();
    assert_eq!(after.matches, 0);
    assert_eq!(
        note(&f.db.pool, 1).await.unwrap(),
        format!("paid with card [REDACTED:card], order {ORDER}")
    );
    let ocr: String = sqlx::query_scalar("SELECT ocr_text FROM receipts WHERE id = 4")
        .fetch_one(&f.db.pool)
        .await
        .unwrap();
    assert_eq!(ocr, "TOTAL 12.00 VISA [REDACTED:card]");
    // The other tenant is untouched.
    let b_after: Vec<String> = sqlx::query_scalar(
        "SELECT coalesce(notes, '') || ocr_text FROM receipts WHERE business_id = $1 ORDER BY id",
    )
    .bind(f.b)
    .fetch_all(&f.db.pool)
    .await
    .unwrap();
    assert_eq!(b_before, b_after);
    let all: String =
        sqlx::query_scalar("SELECT string_agg(row_to_json(r)::text, ' ') FROM redactions r")
            .fetch_one(&c.pool)
            .await
            .unwrap();
    assert!(!all.contains("4111") && !all.contains("5555555555554444"));

    // Nothing left: apply refuses an empty preview.
    let r = records::apply_detector_redaction(
        &f.db.pool, &c.pool, &f.map, &f.catalog, KEY, "carol", "again", &after,
    )
    .await;
    assert!(matches!(r, Err(Error::InvalidInput(_))));
}

#[tokio::test]
async fn a_tenant_reached_through_a_join_path_scopes_the_same_rows() {
    let mut f = fixture("rec_via").await;
    // The same schema, with transactions reaching their tenant through
    // their bank account instead of their own business_id.
    let text = charon::core::datamap::PLUTO_MAP;
    let at = text.find("[tables.transactions]").unwrap();
    let (head, tail) = text.split_at(at);
    let tail = tail.replacen(
        "tenant = { column = \"business_id\" }",
        "tenant = { via = [\"account_id -> bank_accounts.id\"], column = \"business_id\" }",
        1,
    );
    let via = DataMap::parse(&format!("{head}{tail}"), std::path::Path::new("via.toml")).unwrap();
    assert!(!via.table("transactions").unwrap().tenant.is_direct());
    let direct = f
        .all(
            f.a,
            Kind::Transactions,
            SortBy::Amount,
            Dir::Asc,
            &Filter::default(),
        )
        .await;
    f.map = via;
    f.catalog = validate_against_catalog(&f.db.pool, &f.map).await.unwrap();
    let joined = f
        .all(
            f.a,
            Kind::Transactions,
            SortBy::Amount,
            Dir::Asc,
            &Filter::default(),
        )
        .await;
    assert_eq!(direct, joined);
    let other = records::show(
        &f.db.pool,
        &f.map,
        &f.catalog,
        f.a,
        Kind::Transactions,
        Pk::Int(OFF_B + 1),
    )
    .await
    .unwrap();
    assert!(other.is_none());
    let mine = records::show(
        &f.db.pool,
        &f.map,
        &f.catalog,
        f.a,
        Kind::Transactions,
        Pk::Int(1),
    )
    .await
    .unwrap();
    assert!(mine.is_some());
}
