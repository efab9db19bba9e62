//! The tenant generator: turns a seed into rows of every Pluto table, block
//! by block, in COPY text format. One RNG stream (ChaCha8 seeded from the
//! seed) drives everything in a fixed order, ids are counters and timestamps
//! count back from a fixed instant, so the same seed gives the same bytes.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::copy::{RowWriter, civil_from_days, days_from_civil};
use super::fake::{self, R, pick};
use super::names::{self, CITIES, City};

/// The tables, in an order where every table comes after those it references.
pub const TABLES: [Table; 12] = [
    Table::Businesses,
    Table::Users,
    Table::Memberships,
    Table::BankConnections,
    Table::BankAccounts,
    Table::Transactions,
    Table::Receipts,
    Table::Invoices,
    Table::Trips,
    Table::TripPoints,
    Table::Shifts,
    Table::PayrollEntries,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Businesses = 0,
    Users,
    Memberships,
    BankConnections,
    BankAccounts,
    Transactions,
    Receipts,
    Invoices,
    Trips,
    TripPoints,
    Shifts,
    PayrollEntries,
}

impl Table {
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Table::Businesses => "businesses",
            Table::Users => "users",
            Table::Memberships => "memberships",
            Table::BankConnections => "bank_connections",
            Table::BankAccounts => "bank_accounts",
            Table::Transactions => "transactions",
            Table::Receipts => "receipts",
            Table::Invoices => "invoices",
            Table::Trips => "trips",
            Table::TripPoints => "trip_points",
            Table::Shifts => "shifts",
            Table::PayrollEntries => "payroll_entries",
        }
    }

    /// The COPY statement, columns in the order the generator writes them.
    pub fn copy_statement(self) -> &'static str {
        match self {
            Table::Businesses => "COPY businesses (id, name, plan, country, created_at) FROM STDIN",
            Table::Users => "COPY users (id, email, full_name, phone, created_at) FROM STDIN",
            Table::Memberships => {
                "COPY memberships (business_id, user_id, role, created_at) FROM STDIN"
            }
            Table::BankConnections => {
                "COPY bank_connections (id, business_id, created_by, institution, plaid_item_id, \
                 status, created_at, plaid_access_token) FROM STDIN"
            }
            Table::BankAccounts => {
                "COPY bank_accounts (id, business_id, connection_id, name, account_mask, kind) \
                 FROM STDIN"
            }
            Table::Transactions => {
                "COPY transactions (id, business_id, account_id, posted_at, amount_cents, \
                 merchant, description, category) FROM STDIN"
            }
            Table::Receipts => {
                "COPY receipts (id, business_id, uploaded_by, s3_key, merchant, amount_cents, \
                 receipt_date, ocr_text, notes, created_at) FROM STDIN"
            }
            Table::Invoices => {
                "COPY invoices (id, business_id, number, customer_name, customer_email, \
                 customer_address, amount_cents, issued_on, due_on, status, created_at) FROM STDIN"
            }
            Table::Trips => {
                "COPY trips (id, business_id, user_id, started_at, ended_at, distance_m, purpose) \
                 FROM STDIN"
            }
            Table::TripPoints => {
                "COPY trip_points (trip_id, seq, business_id, recorded_at, lat, lon) FROM STDIN"
            }
            Table::Shifts => {
                "COPY shifts (id, business_id, user_id, starts_at, ends_at, notes) FROM STDIN"
            }
            Table::PayrollEntries => {
                "COPY payroll_entries (id, business_id, user_id, period_start, period_end, \
                 gross_cents, net_cents, tax_id, bank_account, paid_at) FROM STDIN"
            }
        }
    }

    /// The tables whose rows this table's rows reference (directly, or through
    /// a table listed here).
    pub fn parents(self) -> &'static [Table] {
        match self {
            Table::Businesses | Table::Users => &[],
            Table::Memberships
            | Table::BankConnections
            | Table::Receipts
            | Table::Trips
            | Table::Shifts
            | Table::PayrollEntries => &[Table::Businesses, Table::Users],
            Table::Invoices => &[Table::Businesses],
            Table::BankAccounts => &[Table::BankConnections],
            Table::Transactions => &[Table::BankAccounts],
            Table::TripPoints => &[Table::Trips],
        }
    }
}

/// The rows of one block of tenants, one writer per table.
#[derive(Debug)]
pub struct Rows {
    pub tables: [RowWriter; 12],
}

impl Default for Rows {
    fn default() -> Self {
        Rows {
            tables: std::array::from_fn(|_| RowWriter::new()),
        }
    }
}

impl Rows {
    fn w(&mut self, t: Table) -> &mut RowWriter {
        &mut self.tables[t.index()]
    }
}

/// "Now" for the synthetic world: 2026-01-01 00:00:00 UTC. Nothing is later.
pub const END_DAY: i64 = 20_454;
const END: i64 = END_DAY * 86_400;
const DAY: i64 = 86_400;
/// Businesses were created between 2018-01-01 and 2025-09-30.
const FIRST_BUSINESS_DAY: i64 = 17_532;
const LAST_BUSINESS_DAY: i64 = 20_361;

/// Tenants of one block may share users: an accountant serving several
/// businesses, an owner with two companies.
pub const BLOCK: u32 = 50;

const ROLE_OWNER: &str = "owner";

/// Country weights (per mille-ish).
const COUNTRIES: &[(&str, u32)] = &[
    ("US", 42),
    ("GB", 14),
    ("CA", 9),
    ("AU", 8),
    ("DE", 8),
    ("FR", 6),
    ("NL", 3),
    ("IE", 3),
    ("NZ", 2),
    ("ES", 3),
    ("AT", 2),
];

struct Member {
    id: Uuid,
    role: &'static str,
    /// Hired directly (gets shifts and payroll).
    staff: bool,
    joined: i64,
}

pub struct Generator {
    rng: R,
    next_transaction: i64,
    next_receipt: i64,
    next_invoice: i64,
    next_trip: i64,
    next_shift: i64,
    next_payroll: i64,
}

impl Generator {
    pub fn new(seed: u64) -> Generator {
        Generator {
            rng: ChaCha8Rng::seed_from_u64(seed),
            next_transaction: 1,
            next_receipt: 1,
            next_invoice: 1,
            next_trip: 1,
            next_shift: 1,
            next_payroll: 1,
        }
    }

    /// Generates `tenants` tenants (in blocks of [`BLOCK`]) into `rows`.
    pub fn tenants(&mut self, tenants: u32, rows: &mut Rows) {
        let mut left = tenants;
        while left > 0 {
            let n = left.min(BLOCK);
            self.block(n, rows);
            left -= n;
        }
    }

    fn block(&mut self, n: u32, rows: &mut Rows) {
        // Accountants of local firms, each serving several businesses of the block.
        let mut firm_accountants: Vec<Uuid> = Vec::new();
        // Owners of earlier businesses in the block (and when they signed
        // up), who may found another.
        let mut owners: Vec<(Uuid, i64)> = Vec::new();
        for _ in 0..n {
            self.tenant(rows, &mut firm_accountants, &mut owners);
        }
    }

    fn new_user(
        &mut self,
        rows: &mut Rows,
        city: &City,
        domain: Option<&str>,
        created: i64,
    ) -> Uuid {
        let rng = &mut self.rng;
        let id = fake::uuid(rng);
        let p = fake::person(rng);
        let name = p.full_name();
        let company = domain.filter(|_| rng.gen_bool(0.4));
        let email = fake::email(rng, &p, company);
        let phone = if rng.gen_bool(0.85) {
            Some(fake::phone(rng, city))
        } else {
            None
        };
        rows.w(Table::Users)
            .uuid(&id)
            .str(&email)
            .str(&name)
            .opt_str(phone.as_deref())
            .ts(created);
        rows.w(Table::Users).end();
        id
    }

    fn tenant(
        &mut self,
        rows: &mut Rows,
        firm_accountants: &mut Vec<Uuid>,
        owners: &mut Vec<(Uuid, i64)>,
    ) {
        // --- the business ---------------------------------------------------
        let total: u32 = COUNTRIES.iter().map(|c| c.1).sum();
        let mut roll = self.rng.gen_range(0..total);
        let mut country = "US";
        for (c, w) in COUNTRIES {
            if roll < *w {
                country = c;
                break;
            }
            roll -= w;
        }
        let in_country: Vec<&City> = CITIES.iter().filter(|c| c.country == country).collect();
        let city: &City = match in_country.as_slice() {
            [] => &CITIES[0],
            list => list[self.rng.gen_range(0..list.len())],
        };
        // Size: most tenants small, a few large.
        let (scale, members_range, plans): (f64, (u32, u32), &[&str]) =
            match self.rng.gen_range(0..1000) {
                0..=619 => (0.3, (1, 3), &["free", "free", "starter", "starter", "pro"]),
                620..=899 => (1.1, (2, 6), &["starter", "pro", "pro", "free"]),
                900..=984 => (3.2, (5, 15), &["pro", "enterprise", "pro"]),
                _ => (14.0, (15, 60), &["enterprise", "enterprise", "pro"]),
            };
        let scale = scale * (0.3 * fake::normal(&mut self.rng)).exp();
        let plan = *pick(&mut self.rng, plans);
        let business = fake::uuid(&mut self.rng);
        let name = fake::business_name(&mut self.rng, country);
        let domain = fake::company_domain(&name, country);
        let created_day = self.rng.gen_range(FIRST_BUSINESS_DAY..=LAST_BUSINESS_DAY);
        let created = created_day * DAY + self.rng.gen_range(0..DAY);
        rows.w(Table::Businesses)
            .uuid(&business)
            .str(&name)
            .str(plan)
            .str(country)
            .ts(created);
        rows.w(Table::Businesses).end();
        // Activity starts when the business joined, at most two years back.
        let active_from = created.max(END - 730 * DAY);

        // --- members ----------------------------------------------------------
        let n_members = self.rng.gen_range(members_range.0..=members_range.1);
        let mut members: Vec<Member> = Vec::with_capacity(n_members as usize + 1);
        let reuse_owner = !owners.is_empty() && self.rng.gen_bool(0.04);
        let (owner, owner_since) = if reuse_owner {
            *pick(&mut self.rng, owners)
        } else {
            let u = self.new_user(rows, city, Some(&domain), created);
            owners.push((u, created));
            (u, created)
        };
        members.push(Member {
            id: owner,
            role: ROLE_OWNER,
            staff: false,
            joined: created.max(owner_since),
        });
        for i in 1..n_members {
            let role = match self.rng.gen_range(0..100) {
                _ if i == 1 && self.rng.gen_bool(0.12) => ROLE_OWNER,
                0..=7 if n_members >= 4 => "admin",
                0..=24 => "manager",
                25..=29 => "accountant",
                _ => "employee",
            };
            // Most staff joined early; some later.
            let joined = if self.rng.gen_bool(0.6) {
                created + self.rng.gen_range(0..30 * DAY)
            } else {
                self.rng.gen_range(created..END - DAY)
            };
            let id = self.new_user(rows, city, Some(&domain), joined);
            members.push(Member {
                id,
                role,
                staff: role != ROLE_OWNER,
                joined,
            });
        }
        // An outside accountant, often one who serves other businesses too.
        if self.rng.gen_bool(0.3) {
            let acct = if !firm_accountants.is_empty() && self.rng.gen_bool(0.7) {
                *pick(&mut self.rng, firm_accountants)
            } else {
                // Signed up before Pluto's first business, serving many since.
                let since = FIRST_BUSINESS_DAY * DAY - self.rng.gen_range(DAY..365 * DAY);
                let u = self.new_user(rows, city, None, since);
                firm_accountants.push(u);
                u
            };
            let joined = created + self.rng.gen_range(0..60 * DAY);
            members.push(Member {
                id: acct,
                role: "accountant",
                staff: false,
                joined,
            });
        }
        for m in &members {
            rows.w(Table::Memberships)
                .uuid(&business)
                .uuid(&m.id)
                .str(m.role)
                .ts(m.joined);
            rows.w(Table::Memberships).end();
        }

        let staff: Vec<usize> = (0..members.len()).filter(|&i| members[i].staff).collect();
        let admins: Vec<usize> = (0..members.len())
            .filter(|&i| matches!(members[i].role, "owner" | "admin"))
            .collect();

        // --- banks --------------------------------------------------------------
        let mut accounts: Vec<Uuid> = Vec::new();
        let n_connections = if self.rng.gen_bool(0.12) {
            0
        } else {
            1 + (scale * self.rng.gen_range(0.0..0.8)) as u32
        };
        let institutions: &[&str] = match country {
            "US" => names::INSTITUTIONS_US,
            "GB" => names::INSTITUTIONS_GB,
            "CA" => names::INSTITUTIONS_CA,
            "AU" | "NZ" => names::INSTITUTIONS_AU,
            _ => names::INSTITUTIONS_EU,
        };
        for _ in 0..n_connections.min(6) {
            let id = fake::uuid(&mut self.rng);
            let by = members[*pick(&mut self.rng, &admins)].id;
            let mut item = [0u8; 16];
            self.rng.fill(&mut item);
            let status = match self.rng.gen_range(0..100) {
                0..=84 => "active",
                85..=94 => "login_required",
                _ => "revoked",
            };
            let at = self.rng.gen_range(created..(created + 60 * DAY).min(END));
            rows.w(Table::BankConnections)
                .uuid(&id)
                .uuid(&business)
                .uuid(&by)
                .str(fake::pick_str(&mut self.rng, institutions))
                .str(&format!("item-sandbox-{}", hex::encode(item)))
                .str(status)
                .ts(at)
                // Derived from the item, so the generator's random stream
                // (and so every other seeded value) is unchanged.
                .str(&format!(
                    "access-sandbox-{}",
                    hex::encode(&Sha256::digest(item)[..16])
                ));
            rows.w(Table::BankConnections).end();
            for _ in 0..self.rng.gen_range(1..=3) {
                let acc = fake::uuid(&mut self.rng);
                let (name, kind) = *pick(
                    &mut self.rng,
                    &[
                        ("Business Checking", "checking"),
                        ("Business Checking", "checking"),
                        ("Business Savings", "savings"),
                        ("Business Credit Card", "credit"),
                        ("Payroll Account", "checking"),
                    ],
                );
                rows.w(Table::BankAccounts)
                    .uuid(&acc)
                    .uuid(&business)
                    .uuid(&id)
                    .str(name)
                    .str(&format!("{:04}", self.rng.gen_range(0..10_000)))
                    .str(kind);
                rows.w(Table::BankAccounts).end();
                accounts.push(acc);
            }
        }

        let count = |rng: &mut R, mean: f64| -> u32 {
            let v = mean * scale * rng.gen_range(0.5..1.5);
            v.round() as u32
        };
        let when = |rng: &mut R| rng.gen_range(active_from..END);

        // --- transactions ---------------------------------------------------
        if !accounts.is_empty() {
            for _ in 0..count(&mut self.rng, 26.0) {
                let id = self.next_transaction;
                self.next_transaction += 1;
                let account = *pick(&mut self.rng, &accounts);
                let at = when(&mut self.rng);
                let (amount, merchant, description, category) = if self.rng.gen_bool(0.14) {
                    let amount = fake::amount_cents(&mut self.rng, 60_000.0, 1.0, 500, 50_000_000);
                    let (m, d) = match self.rng.gen_range(0..3) {
                        0 => ("Stripe".to_string(), "STRIPE TRANSFER PAYOUT".to_string()),
                        1 => ("Square".to_string(), "SQUARE INC DEPOSIT".to_string()),
                        _ => {
                            let p = fake::person(&mut self.rng).full_name();
                            let d = format!("ACH CREDIT {}", p.to_uppercase());
                            (p, d)
                        }
                    };
                    (amount, m, d, "Income")
                } else {
                    let (m, cat) = *pick(&mut self.rng, names::MERCHANTS);
                    let amount = fake::amount_cents(&mut self.rng, 3_500.0, 1.3, 99, 5_000_000);
                    let d = match self.rng.gen_range(0..3) {
                        0 => format!(
                            "POS DEBIT {} {:04} {}",
                            m.to_uppercase(),
                            self.rng.gen_range(0..10_000),
                            city.name.to_uppercase()
                        ),
                        1 => format!("CARD PURCHASE {}", m.to_uppercase()),
                        _ => format!("{} #{}", m, self.rng.gen_range(100..99_999)),
                    };
                    (-amount, m.to_string(), d, cat)
                };
                rows.w(Table::Transactions)
                    .int(id)
                    .uuid(&business)
                    .uuid(&account)
                    .ts(at)
                    .int(amount)
                    .str(&merchant)
                    .str(&description)
                    .str(category);
                rows.w(Table::Transactions).end();
            }
        }

        // --- receipts -------------------------------------------------------
        for _ in 0..count(&mut self.rng, 8.0) {
            let id = self.next_receipt;
            self.next_receipt += 1;
            let by = members[self.rng.gen_range(0..members.len())].id;
            let (merchant, _) = *pick(&mut self.rng, names::MERCHANTS);
            let at = when(&mut self.rng);
            let day = at.div_euclid(DAY);
            let full_card = self.rng.gen_bool(0.04);
            let cashier = if self.rng.gen_bool(0.1) {
                Some(fake::person(&mut self.rng).full_name())
            } else {
                None
            };
            let r = fake::receipt_ocr(
                &mut self.rng,
                merchant,
                city,
                civil_from_days(day),
                full_card,
                cashier.as_deref(),
            );
            let notes = self.receipt_note(city);
            let object = fake::uuid(&mut self.rng);
            let uploaded = (at + self.rng.gen_range(600..5 * DAY)).min(END - 1);
            rows.w(Table::Receipts)
                .int(id)
                .uuid(&business)
                .uuid(&by)
                .str(&format!("receipts/{business}/{object}.jpg"))
                .str(merchant)
                .int(r.total_cents)
                .date(day)
                .str(&r.ocr)
                .opt_str(notes.as_deref())
                .ts(uploaded);
            rows.w(Table::Receipts).end();
        }

        // --- invoices -------------------------------------------------------
        for k in 0..count(&mut self.rng, 5.0) {
            let id = self.next_invoice;
            self.next_invoice += 1;
            let (customer, email) = if self.rng.gen_bool(0.4) {
                let c = fake::business_name(&mut self.rng, country);
                let local = ["accounts", "billing", "ap", "info"][self.rng.gen_range(0..4)];
                let e = format!("{local}@{}", fake::company_domain(&c, country));
                (c, e)
            } else {
                let p = fake::person(&mut self.rng);
                let e = fake::email(&mut self.rng, &p, None);
                (p.full_name(), e)
            };
            let address = fake::address(&mut self.rng, city);
            let amount = fake::amount_cents(&mut self.rng, 85_000.0, 1.1, 1_000, 100_000_000);
            let at = when(&mut self.rng);
            let issued = at.div_euclid(DAY);
            let due = issued + [7, 14, 30, 30, 45, 60][self.rng.gen_range(0..6)];
            let status = if due >= END_DAY {
                if self.rng.gen_bool(0.2) {
                    "draft"
                } else {
                    "sent"
                }
            } else {
                match self.rng.gen_range(0..100) {
                    0..=74 => "paid",
                    75..=89 => "overdue",
                    90..=94 => "void",
                    _ => "sent",
                }
            };
            rows.w(Table::Invoices)
                .int(id)
                .uuid(&business)
                .str(&format!("INV-{:05}", k + 1))
                .str(&customer)
                .str(&email)
                .str(&address)
                .int(amount)
                .date(issued)
                .date(due)
                .str(status)
                .ts(at);
            rows.w(Table::Invoices).end();
        }

        // --- trips with GPS points -------------------------------------------
        if self.rng.gen_bool(0.35) {
            for _ in 0..count(&mut self.rng, 2.0).max(1) {
                let id = self.next_trip;
                self.next_trip += 1;
                let driver = members[self.rng.gen_range(0..members.len())].id;
                let n_points = self.rng.gen_range(18..90);
                let (points, distance) = fake::gps_trace(&mut self.rng, city, n_points);
                let duration = points.last().map(|p| p.t).unwrap_or(0);
                let start = self.rng.gen_range(active_from..END - DAY);
                let purpose = if self.rng.gen_bool(0.7) {
                    Some(*pick(&mut self.rng, names::TRIP_PURPOSES))
                } else {
                    None
                };
                rows.w(Table::Trips)
                    .int(id)
                    .uuid(&business)
                    .uuid(&driver)
                    .ts(start)
                    .ts(start + duration)
                    .int(distance.round() as i64)
                    .opt_str(purpose);
                rows.w(Table::Trips).end();
                let w = rows.w(Table::TripPoints);
                for (seq, p) in points.iter().enumerate() {
                    w.int(id)
                        .int(seq as i64)
                        .uuid(&business)
                        .ts(start + p.t)
                        .coord(p.lat)
                        .coord(p.lon);
                    w.end();
                }
            }
        }

        // --- shifts and payroll (staff only) -------------------------------------
        if !staff.is_empty() {
            for _ in 0..count(&mut self.rng, 7.0) {
                let id = self.next_shift;
                self.next_shift += 1;
                let who = &members[*pick(&mut self.rng, &staff)];
                let day = self.rng.gen_range(active_from.div_euclid(DAY)..END_DAY - 1);
                let starts = day * DAY + self.rng.gen_range(6 * 4..14 * 4) * 900;
                let ends = starts + self.rng.gen_range(4 * 4..10 * 4) * 900;
                let notes = if self.rng.gen_bool(0.15) {
                    Some(*pick(&mut self.rng, names::SHIFT_NOTES))
                } else {
                    None
                };
                rows.w(Table::Shifts)
                    .int(id)
                    .uuid(&business)
                    .uuid(&who.id)
                    .ts(starts)
                    .ts(ends)
                    .opt_str(notes);
                rows.w(Table::Shifts).end();
            }
            // Each employee has one tax id and one pay account.
            let pay: Vec<(String, String, i64)> = staff
                .iter()
                .map(|_| {
                    let tax = fake::tax_id(&mut self.rng);
                    let len = self.rng.gen_range(8..=12);
                    let acct = fake::digits(&mut self.rng, len);
                    let gross =
                        fake::amount_cents(&mut self.rng, 210_000.0, 0.45, 40_000, 2_500_000);
                    (tax, acct, gross)
                })
                .collect();
            let entries = count(&mut self.rng, 4.5) as usize;
            // Bi-weekly periods, newest first, each paying every employee.
            let mut period_end = END_DAY - 1 - self.rng.gen_range(0..14);
            let mut written = 0;
            'periods: while written < entries && period_end * DAY > active_from {
                for (i, &m) in staff.iter().enumerate() {
                    if written >= entries {
                        break 'periods;
                    }
                    let id = self.next_payroll;
                    self.next_payroll += 1;
                    let (tax, acct, gross) = &pay[i];
                    let gross = gross * self.rng.gen_range(90..111) / 100;
                    let net = gross * self.rng.gen_range(68..83) / 100;
                    rows.w(Table::PayrollEntries)
                        .int(id)
                        .uuid(&business)
                        .uuid(&members[m].id)
                        .date(period_end - 13)
                        .date(period_end)
                        .int(gross)
                        .int(net)
                        .str(tax)
                        .str(acct)
                        .ts((period_end + 1) * DAY + 9 * 3600);
                    rows.w(Table::PayrollEntries).end();
                    written += 1;
                }
                period_end -= 14;
            }
        }
    }

    /// A receipt note: often none, usually a short remark; sometimes with a
    /// phone number, an IBAN or a card number typed in, or pasted text with
    /// tabs, backslashes or a terminal escape sequence.
    fn receipt_note(&mut self, city: &City) -> Option<String> {
        let rng = &mut self.rng;
        let roll = rng.gen_range(0..1000);
        Some(match roll {
            0..=449 => return None,
            450..=849 => pick(rng, names::RECEIPT_NOTES).to_string(),
            850..=919 => {
                let p = fake::person(rng);
                format!(
                    "Call {} at {} about the refund",
                    p.first,
                    fake::phone(rng, city)
                )
            }
            920..=959 => format!("Customer paid back to IBAN {}", fake::iban(rng)),
            960..=989 => {
                let (brand, number) = fake::card_number(rng);
                format!(
                    "Paid with company {brand} {number}, exp 0{}/2{}",
                    rng.gen_range(1..10),
                    rng.gen_range(6..10)
                )
            }
            990..=995 => "Split:\tme 50%\tclient 50%\nsee C:\\Users\\scan\\receipt.jpg".to_string(),
            _ => "\u{1b}[31mURGENT\u{1b}[0m please reimburse\r\n".to_string(),
        })
    }
}

/// Days since 1970-01-01 of a civil date; re-exported for tests.
pub fn day(y: i64, m: u32, d: u32) -> i64 {
    days_from_civil(y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_instants_are_what_they_say() {
        assert_eq!(day(2026, 1, 1), END_DAY);
        assert_eq!(day(2018, 1, 1), FIRST_BUSINESS_DAY);
        assert_eq!(day(2025, 9, 30), LAST_BUSINESS_DAY);
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let run = |seed| {
            let mut rows = Rows::default();
            Generator::new(seed).tenants(120, &mut rows);
            rows.tables.map(|mut w| w.take().0)
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn fewer_tenants_are_a_prefix_of_more() {
        let run = |tenants| {
            let mut rows = Rows::default();
            Generator::new(5).tenants(tenants, &mut rows);
            rows.tables.map(|mut w| w.take().0)
        };
        let (small, large) = (run(73), run(180));
        for t in TABLES {
            let (s, l) = (&small[t.index()], &large[t.index()]);
            assert!(l.len() > s.len() && l.starts_with(s), "{}", t.name());
        }
    }

    #[test]
    fn about_a_hundred_rows_per_tenant() {
        let mut rows = Rows::default();
        Generator::new(1).tenants(5_000, &mut rows);
        let total: u64 = rows.tables.iter().map(|w| w.rows()).sum();
        let per_tenant = total as f64 / 5_000.0;
        for t in TABLES {
            println!("{:>16} {:>7}", t.name(), rows.tables[t.index()].rows());
        }
        assert!(
            (80.0..125.0).contains(&per_tenant),
            "{per_tenant} rows per tenant"
        );
        for t in TABLES {
            assert!(rows.tables[t.index()].rows() > 0, "{}", t.name());
        }
    }

    #[test]
    fn every_row_has_the_right_number_of_columns() {
        let mut rows = Rows::default();
        Generator::new(3).tenants(300, &mut rows);
        for t in TABLES {
            let cols = t
                .copy_statement()
                .split_once('(')
                .and_then(|(_, r)| r.split_once(')'))
                .map(|(c, _)| c.split(',').count())
                .unwrap();
            let (buf, n) = rows.tables[t.index()].take();
            let text = String::from_utf8(buf).unwrap();
            assert_eq!(text.lines().count() as u64, n, "{}", t.name());
            for line in text.lines() {
                assert_eq!(line.split('\t').count(), cols, "{}: {line}", t.name());
            }
        }
    }

    #[test]
    fn parents_come_first() {
        for (i, t) in TABLES.iter().enumerate() {
            assert_eq!(t.index(), i);
            for p in t.parents() {
                assert!(p.index() < i, "{} before {}", p.name(), t.name());
            }
        }
    }
}
