//! charon through a real terminal: the binary (`$CHARON_E2E_BIN`, else the
//! one cargo built) runs in tmux on a seeded Pluto database and a migrated
//! console database, operators type Yubico OTPs as their key would, and
//! each flow is checked twice: on the captured screen, and in the databases
//! afterwards (audit rows, redacted values, erased rows, request state,
//! restore-test history). Every session ends with the terminal restored.
//!
//! The TUI learns who is at the keyboard from the OS account running it
//! (real uid, passwd database), never from a flag: the second compliance
//! officer of the erasure runs charon as another account, uid 65534 (a user
//! namespace mapping this account to it, else `setpriv` when root).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::cell::Cell;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use charon::core::audit::{self, AuditKey};
use charon::core::console::REVEAL_FOR;
use charon::core::operators;
use charon::core::records::Kind;
use charon::core::session::Role;
use charon::pluto::{SeedOptions, seed};
use common::cli::{Binary, TestOtpKey};
use common::tmux::{Tmux, WAIT, charon_bin, sh_quote};
use common::{TestDb, server_url};
use uuid::Uuid;

const MASTER: [u8; 32] = [0x5a; 32];
const AUDIT_KEY_HEX: &str = "abababababababababababababababababababababababababababababababab";

/// The first operator's key (the account running the tests).
const KEY_A: TestOtpKey = TestOtpKey {
    public_id: "cccccbhkevrt",
    aes: [0x31; 16],
    private_id: [1, 2, 3, 4, 5, 6],
};
/// The second operator's key (another OS account).
const KEY_B: TestOtpKey = TestOtpKey {
    public_id: "cccccbhkevru",
    aes: [0x42; 16],
    private_id: [6, 5, 4, 3, 2, 1],
};
/// Not the enrolled secret: its OTPs carry KEY_A's public id but fail to decrypt.
const WRONG_A: TestOtpKey = TestOtpKey {
    public_id: "cccccbhkevrt",
    aes: [0x99; 16],
    private_id: [1, 2, 3, 4, 5, 6],
};

/// A step-up is asked when the last touch is older than this; the tests
/// let it age on purpose so that every step-up is seen on screen.
const STEP_UP_WINDOW_SECS: u64 = 8;

/// The tenant and the person the flows look for (added to the seeded data).
const TENANT_NAME: &str = "Quokka Quay Provisions";
const SUBJECT_EMAIL: &str = "rita.quokka@example.org";
const SUBJECT_NAME: &str = "Rita Quokka";
const CARD: &str = "4111 1111 1111 1111";
const NOTES: &str = "paid with 4111 1111 1111 1111 thanks";
const OBJECT_KEY: &str = "receipts/e2e-quokka.jpg";

struct Fixture {
    tenant: Uuid,
    user: Uuid,
    receipt: i64,
}

/// Two fresh databases (Pluto seeded, console migrated), a configuration
/// for the binary, and the fixture tenant.
struct Setup {
    pluto: TestDb,
    console: TestDb,
    bin: Binary,
    fx: Fixture,
}

impl Setup {
    async fn new(prefix: &str) -> Setup {
        let pluto = TestDb::new(&format!("{prefix}_p")).await;
        seed(
            &pluto.pool,
            &SeedOptions {
                tenants: 12,
                seed: 9,
            },
            &|_| {},
        )
        .await
        .unwrap();
        let fx = add_fixture(&pluto).await;
        let console = TestDb::new(&format!("{prefix}_c")).await;
        charon::core::db::migrate_console(&console.pool)
            .await
            .unwrap();

        let bin = Binary::with_config(&pluto.url, &console.url, MASTER, "");
        let dir = bin.dir.path().to_path_buf();
        for d in ["objects/receipts", "dumps", "exports"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        std::fs::write(dir.join("objects").join(OBJECT_KEY), b"jpeg").unwrap();
        let extra = format!(
            "[mfa]\nstep_up_window_secs = {STEP_UP_WINDOW_SECS}\n\n\
             [erasure]\nexport_dir = \"{exports}\"\n\n\
             [erasure.systems.receipts_bucket]\nurl = \"file://{objects}\"\n\n\
             [restore]\nserver_url = \"{server}\"\nrpo_minutes = 60\nrto_minutes = 60\n\n\
             [backups.local]\nkind = \"dir\"\npath = \"{dumps}\"\n",
            exports = dir.join("exports").display(),
            objects = dir.join("objects").display(),
            server = server_url(),
            dumps = dir.join("dumps").display(),
        );
        let mut cfg = std::fs::read_to_string(&bin.cfg).unwrap();
        cfg.push_str(&extra);
        std::fs::write(&bin.cfg, cfg).unwrap();
        // The second operator may be another OS account (setpriv): it must
        // read the configuration (database URLs without passwords; the keys
        // are passed in the environment).
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&bin.cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
        Setup {
            pluto,
            console,
            bin,
            fx,
        }
    }

    /// An operator with `role` and an enrolled OTP key.
    async fn operator(&self, login: &str, role: Role, key: &TestOtpKey) {
        operators::add(&self.console.pool, "e2e", login, "E2E Operator", role)
            .await
            .unwrap();
        key.enroll(&self.console.pool, MASTER, login).await;
    }

    fn objects(&self) -> PathBuf {
        self.bin.dir.path().join("objects")
    }

    /// `charon tui` in tmux as the account running the tests.
    fn tui(&self, name: &str, key: &'static TestOtpKey, first_otp: u8) -> Term {
        Term::start(name, self, None, key, first_otp)
    }

    /// `charon tui` in tmux as the other account (`uid`).
    fn tui_as(&self, name: &str, uid: u32, key: &'static TestOtpKey, first_otp: u8) -> Term {
        Term::start(name, self, Some(uid), key, first_otp)
    }

    async fn audit_actions(&self, operator: &str) -> Vec<(String, String)> {
        sqlx::query_as("SELECT action, outcome FROM audit_log WHERE operator = $1 ORDER BY seq")
            .bind(operator)
            .fetch_all(&self.console.pool)
            .await
            .unwrap()
    }

    /// The gate's entries for `operator`: (outcome, error, details.result).
    async fn gate_entries(&self, operator: &str) -> Vec<(String, Option<String>, Option<String>)> {
        sqlx::query_as(
            "SELECT outcome, error, details->>'result' FROM audit_log
             WHERE operator = $1 AND action = 'mfa.verify' ORDER BY seq",
        )
        .bind(operator)
        .fetch_all(&self.console.pool)
        .await
        .unwrap()
    }

    /// The chain verifies with the audit key the binary used.
    async fn assert_chain_intact(&self) -> u64 {
        let key = AuditKey::from_hex(AUDIT_KEY_HEX).unwrap();
        match audit::verify(&self.console.pool, &key, None, None, |_| {})
            .await
            .unwrap()
        {
            audit::Verdict::Intact { entries, .. } => entries,
            other => panic!("audit chain broken: {other:?}"),
        }
    }
}

/// Adds a tenant with one member and one receipt whose note holds a card
/// number; the receipt's object is in the `file://` bucket.
async fn add_fixture(pluto: &TestDb) -> Fixture {
    let tenant = Uuid::new_v4();
    let user = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO businesses (id, name, plan, country, created_at) VALUES ($1, $2, 'pro', 'NZ', now())",
    )
    .bind(tenant)
    .bind(TENANT_NAME)
    .execute(&pluto.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO users (id, email, full_name, phone, created_at) VALUES ($1, $2, $3, $4, now())",
    )
    .bind(user)
    .bind(SUBJECT_EMAIL)
    .bind(SUBJECT_NAME)
    .bind("+64 21 555 0199")
    .execute(&pluto.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO memberships (business_id, user_id, role, created_at) VALUES ($1, $2, 'owner', now())",
    )
    .bind(tenant)
    .bind(user)
    .execute(&pluto.pool)
    .await
    .unwrap();
    let receipt: i64 = sqlx::query_scalar(
        "INSERT INTO receipts (id, business_id, uploaded_by, s3_key, merchant, amount_cents, receipt_date, ocr_text, notes, created_at)
         SELECT coalesce(max(id), 0) + 1, $1, $2, $3, 'Kiwi Fuel', 4200, current_date, 'TOTAL 42.00', $4, now() FROM receipts
         RETURNING id",
    )
    .bind(tenant)
    .bind(user)
    .bind(OBJECT_KEY)
    .bind(NOTES)
    .fetch_one(&pluto.pool)
    .await
    .unwrap();
    Fixture {
        tenant,
        user,
        receipt,
    }
}

/// The login of another OS account the second operator runs as, and its uid.
fn other_account() -> (String, u32) {
    let uid = 65534;
    let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .unwrap()
        .expect("uid 65534 (nobody) is in the passwd database");
    (user.name, uid)
}

/// The command prefix that runs a program as `uid`: a user namespace that
/// maps this account to `uid` (files stay reachable as they are for this
/// account), else, as root, `setpriv` to that account (which must then be
/// able to read the binary and the configuration).
fn run_as(uid: u32, bin: &std::path::Path, cfg: &std::path::Path) -> String {
    let works = |prefix: &str, check: &std::path::Path| {
        let mut words = prefix.split_whitespace();
        let program = words.next().unwrap();
        std::process::Command::new(program)
            .args(words)
            .arg("test")
            .arg("-r")
            .arg(check)
            .status()
            .is_ok_and(|s| s.success())
    };
    let userns = format!("unshare --user --map-user={uid} --map-group={uid}");
    if works(&userns, bin) {
        return userns;
    }
    let setpriv = format!("setpriv --reuid={uid} --regid={uid} --clear-groups");
    if nix::unistd::geteuid().is_root() && works(&setpriv, bin) && works(&setpriv, cfg) {
        return setpriv;
    }
    panic!(
        "cannot run charon as uid {uid} for the second operator: user namespaces are not \
         available, and setpriv needs root and a binary that uid can read \
         (set CHARON_E2E_BIN to such a path)"
    );
}

/// What the pane prints when charon has exited (then its exit code).
const EXITED: &str = "charon exited with";

/// charon's TUI in a tmux pane, and the key its operator touches.
struct Term {
    tmux: Tmux,
    key: &'static TestOtpKey,
    next_otp: Cell<u8>,
    last_touch: Cell<Option<Instant>>,
}

impl Term {
    fn start(
        name: &str,
        s: &Setup,
        uid: Option<u32>,
        key: &'static TestOtpKey,
        first_otp: u8,
    ) -> Term {
        let prefix = uid
            .map(|u| format!("{} ", run_as(u, &charon_bin(), &s.bin.cfg)))
            .unwrap_or_default();
        // The keys come from a file only this account reads (as a
        // deployment passes them), sourced before any change of account.
        let env = s.bin.dir.path().join("keys.env");
        std::fs::write(
            &env,
            format!(
                "export CHARON_AUDIT_KEY={AUDIT_KEY_HEX}\nexport CHARON_MASTER_KEY={}\n",
                hex::encode(MASTER)
            ),
        )
        .unwrap();
        std::fs::set_permissions(&env, std::fs::Permissions::from_mode(0o600)).unwrap();
        // After charon: its exit code and the terminal's modes, to prove the
        // terminal was handed back (no raw mode, no alternate screen).
        let cmd = format!(
            ". {}; {prefix}{} --config {} tui; echo \"{EXITED} $?\"; stty -a; read -r _done",
            sh_quote(&env.to_string_lossy()),
            sh_quote(&charon_bin().to_string_lossy()),
            sh_quote(&s.bin.cfg.to_string_lossy()),
        );
        let tmux = Tmux::start(name, &cmd, 140, 40);
        Term {
            tmux,
            key,
            next_otp: Cell::new(first_otp),
            last_touch: Cell::new(None),
        }
    }

    /// The key types its next OTP and Enter.
    fn touch(&self) {
        let n = self.next_otp.get();
        self.next_otp.set(n + 1);
        self.tmux.type_text(&self.key.otp(n));
        self.tmux.keys(&["Enter"]);
        self.last_touch.set(Some(Instant::now()));
    }

    /// Passes the gate; the search screen shows.
    fn pass_gate(&self, operator: &str, role: Role) {
        let screen = self.wait_for("touch your YubiKey");
        assert!(screen.contains("hardware-key gate"), "{screen}");
        assert!(!screen.contains("Find a tenant"), "{screen}");
        self.touch();
        let who = format!("{operator} ({role})");
        let screen = self.wait_until("the search screen", WAIT, |s| {
            s.contains("Find a tenant") && s.contains(&who)
        });
        assert!(!screen.contains("hardware-key gate"), "{screen}");
    }

    /// Waits until the last touch is older than the step-up window, so the
    /// next sensitive action asks for a fresh one.
    fn let_touch_age(&self) {
        if let Some(t) = self.last_touch.get() {
            let window = Duration::from_secs(STEP_UP_WINDOW_SECS + 1);
            if let Some(left) = window.checked_sub(t.elapsed()) {
                std::thread::sleep(left);
            }
        }
    }

    /// The step-up prompt for `what` is on screen: touch the key.
    fn step_up(&self, what: &str) {
        let screen = self.wait_for(&format!("confirm {what}"));
        assert!(screen.contains("step-up"), "{screen}");
        self.touch();
    }

    /// `:command` from the palette (leaves a text input first).
    fn palette(&self, command: &str) {
        self.tmux.keys(&["Escape", ":"]);
        self.wait_for(" Command ");
        self.tmux.type_text(command);
        self.tmux.keys(&["Enter"]);
    }

    fn wait_for(&self, what: &str) -> String {
        self.wait_until(&format!("`{what}`"), WAIT, |s| s.contains(what))
    }

    /// As [`Tmux::wait_until`], but fails at once when charon has exited.
    fn wait_until(&self, what: &str, timeout: Duration, done: impl Fn(&str) -> bool) -> String {
        let s = self
            .tmux
            .wait_until(what, timeout, |s| done(s) || s.contains(EXITED));
        assert!(done(&s), "charon exited before {what} appeared:\n{s}");
        s
    }

    /// Ctrl-C (it quits from every screen, also from a text field), then:
    /// charon exited 0, and the terminal is back in its normal modes
    /// (primary screen, cursor shown, cooked mode with echo).
    fn quit_and_check_terminal(&self) {
        self.tmux.keys(&["C-c"]);
        // The shell after charon prints its exit code and the terminal's
        // modes, then waits (a dead pane would not report its cursor).
        let screen = self.tmux.wait_for("icanon", WAIT);
        assert!(screen.contains(&format!("{EXITED} 0")), "{screen}");
        let words: Vec<&str> = screen.split_whitespace().collect();
        for mode in ["icanon", "echo", "isig", "opost"] {
            assert!(
                words.contains(&mode) && !words.contains(&format!("-{mode}").as_str()),
                "terminal mode {mode} not restored:\n{screen}"
            );
        }
        assert_eq!(
            self.tmux.format("#{alternate_on}"),
            "0",
            "still on the alternate screen"
        );
        assert_eq!(self.tmux.format("#{cursor_flag}"), "1", "cursor hidden");
        self.tmux.keys(&["Enter"]);
        self.tmux.wait_exit(WAIT);
        assert!(
            !screen.contains("Find a tenant") && !screen.contains("hardware-key gate"),
            "the console is still drawn:\n{screen}"
        );
    }
}

impl std::ops::Deref for Term {
    type Target = Tmux;
    fn deref(&self) -> &Tmux {
        &self.tmux
    }
}

/// Searches the fixture tenant by name, opens it, then its receipts and the
/// fixture receipt in full.
fn open_fixture_receipt(t: &Term, receipt: i64) {
    t.type_text("Quokka Quay");
    // The search's own result (matched by name), not the recent list.
    let screen = t.wait_until("the tenant found by name", WAIT, |s| {
        s.lines()
            .any(|l| l.contains(&format!("▶ {TENANT_NAME}")) && l.contains("name "))
    });
    assert!(screen.contains("read as name"), "{screen}");
    t.keys(&["Enter"]);
    let screen = t.wait_for(" Members 1/1 ");
    assert!(screen.contains(&format!(" {TENANT_NAME} ")), "{screen}");
    // The member is shown masked, never in full.
    assert!(!screen.contains(SUBJECT_EMAIL), "{screen}");
    assert!(!screen.contains(SUBJECT_NAME), "{screen}");
    t.keys(&["r"]);
    // The receipts tab, by its number.
    let n = Kind::ALL.iter().position(|k| *k == Kind::Receipts).unwrap() + 1;
    t.wait_for(&format!("{n} receipts"));
    t.keys(&[n.to_string().as_str()]);
    let screen = t.wait_for("Kiwi Fuel");
    assert!(
        !screen.contains(CARD),
        "the card number is on screen:\n{screen}"
    );
    t.keys(&["Enter"]);
    let screen = t.wait_for(&format!("receipts {receipt} "));
    assert!(screen.contains("notes"), "{screen}");
    assert!(
        !screen.contains(CARD),
        "the card number is on screen:\n{screen}"
    );
}

/// Selects `field` in the record detail: the selection is only a colour, so
/// the field's position is read from the screen (one line per field, from
/// the first one, which is selected when the record opens).
fn select_field(t: &Term, receipt: i64, field: &str) {
    let screen = t.screen();
    let names: Vec<&str> = screen
        .lines()
        .skip_while(|l| !l.contains(&format!("receipts {receipt} ")))
        .skip(1)
        .map(|l| l.trim_matches(|c: char| c == '│' || c.is_whitespace()))
        .skip_while(|l| l.is_empty())
        .take_while(|l| !l.is_empty() && !l.starts_with('└'))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let i = names
        .iter()
        .position(|n| *n == field)
        .unwrap_or_else(|| panic!("no field {field} in {names:?}:\n{screen}"));
    for _ in 0..i {
        t.keys(&["j"]);
    }
}

// ------------------------------------------------------------------ tests

#[tokio::test(flavor = "multi_thread")]
async fn gate_refuses_a_wrong_otp_and_opens_with_the_right_one() {
    let s = Setup::new("e2e_gate").await;
    let me = operators::os_account().unwrap();
    s.operator(&me, Role::Support, &KEY_A).await;

    let t = s.tui("gate", &KEY_A, 1);
    let screen = t.wait_for("touch your YubiKey");
    assert!(screen.contains(&format!("operator {me}")), "{screen}");
    // No role is claimed before the console database has been asked.
    assert!(
        screen.contains(&format!("{me} (not signed in)")),
        "{screen}"
    );
    // Before the gate, nothing else is reachable: `:` is just a character
    // in the OTP field (shown only as a count), not the command palette.
    t.keys(&[":"]);
    let screen = t.wait_for("OTP • 1/44");
    assert!(!screen.contains("Find a tenant"), "{screen}");
    t.keys(&["Escape"]);
    t.wait_for("OTP  0/44");

    // A wrong OTP: refused, counted, the gate stays.
    t.type_text(&WRONG_A.otp(1));
    let screen = t.wait_for("44/44");
    assert!(
        !screen.contains(&WRONG_A.otp(1)),
        "the OTP is echoed:\n{screen}"
    );
    t.keys(&["Enter"]);
    let screen = t.wait_for("4 attempts left before operator");
    assert!(screen.contains("key rejected"), "{screen}");
    assert!(!screen.contains("Find a tenant"), "{screen}");
    let failed: i32 = sqlx::query_scalar("SELECT failed_attempts FROM operators WHERE login = $1")
        .bind(&me)
        .fetch_one(&s.console.pool)
        .await
        .unwrap();
    assert_eq!(failed, 1);

    // The right one: the console opens, and the counter is reset.
    t.pass_gate(&me, Role::Support);
    let failed: i32 = sqlx::query_scalar("SELECT failed_attempts FROM operators WHERE login = $1")
        .bind(&me)
        .fetch_one(&s.console.pool)
        .await
        .unwrap();
    assert_eq!(failed, 0);
    t.quit_and_check_terminal();

    // Each try is entered before it is checked; the refusal is a second
    // entry, and so is the pass (naming the key that opened the gate).
    let verify = s.gate_entries(&me).await;
    assert_eq!(
        verify,
        [
            ("allowed".to_string(), None, None),
            ("failed".to_string(), Some("mfa_rejected".to_string()), None),
            ("allowed".to_string(), None, None),
            ("allowed".to_string(), None, Some("passed".to_string())),
        ],
        "{verify:?}"
    );
    s.assert_chain_intact().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gate_locks_the_operator_after_five_wrong_otps() {
    let s = Setup::new("e2e_lock").await;
    let me = operators::os_account().unwrap();
    s.operator(&me, Role::Support, &KEY_A).await;

    let t = s.tui("lock", &KEY_A, 1);
    t.wait_for("touch your YubiKey");
    for i in 1..=5u8 {
        t.type_text(&WRONG_A.otp(i));
        t.keys(&["Enter"]);
        // Each refusal is told (and counted) before the next try.
        if i < 5 {
            let left = 5 - i;
            t.wait_for(&format!(
                "{left} attempt{} left before operator",
                if left == 1 { "" } else { "s" }
            ));
        }
    }
    let screen = t.wait_for("is now locked after 5 failed attempts");
    assert!(!screen.contains("Find a tenant"), "{screen}");
    let status: String = sqlx::query_scalar("SELECT status FROM operators WHERE login = $1")
        .bind(&me)
        .fetch_one(&s.console.pool)
        .await
        .unwrap();
    assert_eq!(status, "locked");

    // Now even the right key does not open the console.
    t.touch();
    let screen = t.wait_for("is locked after 5 failed attempts");
    assert!(!screen.contains("Find a tenant"), "{screen}");
    t.quit_and_check_terminal();

    // Six tries, six refusals, no pass; the fifth locked the operator.
    let verify = s.gate_entries(&me).await;
    let refusals: Vec<&str> = verify
        .iter()
        .filter(|(o, _, _)| o == "failed")
        .map(|(_, e, _)| e.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(refusals.len(), 6, "{verify:?}");
    assert!(
        verify.iter().all(|(_, _, r)| r.is_none()),
        "the gate passed: {verify:?}"
    );
    s.assert_chain_intact().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn support_finds_a_tenant_opens_a_receipt_and_reveals_a_field_with_a_reason() {
    let s = Setup::new("e2e_reveal").await;
    let me = operators::os_account().unwrap();
    s.operator(&me, Role::Support, &KEY_A).await;

    let t = s.tui("reveal", &KEY_A, 1);
    t.pass_gate(&me, Role::Support);
    // By a member's e-mail (a prefix) and by phone (its last digits): the
    // tenant is found, the member shown masked.
    for (query, read_as, matched) in [
        ("rita.quokka@exam", "read as email", "member "),
        ("555 0199", "read as phone", "phone "),
    ] {
        t.type_text(query);
        let screen = t.wait_until(read_as, WAIT, |s| {
            s.contains(read_as)
                && s.lines()
                    .any(|l| l.contains(TENANT_NAME) && l.contains(matched))
        });
        assert!(!screen.contains(SUBJECT_EMAIL), "{screen}");
        assert!(!screen.contains("+64 21 555 0199"), "{screen}");
        for _ in query.chars() {
            t.keys(&["BSpace"]);
        }
    }
    open_fixture_receipt(&t, s.fx.receipt);
    select_field(&t, s.fx.receipt, "notes");
    t.let_touch_age();
    t.keys(&["v"]);
    t.wait_for("reason or ticket");
    t.type_text("TICKET-771 customer asked about a charge");
    t.keys(&["Enter"]);
    t.step_up("reveal of notes");
    let screen = t.wait_for("revealed, hides in");
    assert!(screen.contains(NOTES), "{screen}");
    // And it hides itself again when its time is up, without a key.
    let screen = t.wait_until(
        "the value hidden again",
        REVEAL_FOR + Duration::from_secs(30),
        |s| !s.contains("revealed, hides in"),
    );
    assert!(!screen.contains(NOTES), "{screen}");
    assert!(!screen.contains(CARD), "{screen}");
    t.quit_and_check_terminal();

    // The first try was refused for want of a fresh touch; after the
    // step-up the reveal ran, with its reason, the field and the row.
    type Reveal = (String, Option<String>, Vec<String>, Option<String>, bool);
    let reveals: Vec<Reveal> = sqlx::query_as(
        "SELECT outcome, reason, target_columns, target_pk, details ? 'step_up'
             FROM audit_log WHERE action = 'records.reveal' AND operator = $1 ORDER BY seq",
    )
    .bind(&me)
    .fetch_all(&s.console.pool)
    .await
    .unwrap();
    let outcomes: Vec<&str> = reveals.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(outcomes, ["denied", "allowed"], "{reveals:?}");
    let (_, reason, columns, pk, stepped) = &reveals[1];
    assert_eq!(
        reason.as_deref(),
        Some("TICKET-771 customer asked about a charge")
    );
    assert_eq!(columns, &["notes"]);
    assert!(
        pk.clone()
            .unwrap_or_default()
            .contains(&s.fx.receipt.to_string())
    );
    assert!(stepped, "{reveals:?}");
    let actions = s.audit_actions(&me).await;
    for a in [
        "tenant.search",
        "tenant.open",
        "records.list",
        "records.show",
        "mfa.step_up",
    ] {
        assert!(actions.iter().any(|(x, _)| x == a), "no {a} in {actions:?}");
    }
    // The audit log names the field, never the value.
    let leaked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE details::text LIKE '%4111%' OR coalesce(reason, '') LIKE '%4111%'",
    )
    .fetch_one(&s.console.pool)
    .await
    .unwrap();
    assert_eq!(leaked, 0);
    s.assert_chain_intact().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn compliance_redacts_a_card_number_typed_into_a_receipt() {
    let s = Setup::new("e2e_redact").await;
    let me = operators::os_account().unwrap();
    s.operator(&me, Role::Compliance, &KEY_A).await;

    let t = s.tui("redact", &KEY_A, 1);
    t.pass_gate(&me, Role::Compliance);
    open_fixture_receipt(&t, s.fx.receipt);
    select_field(&t, s.fx.receipt, "notes");
    t.keys(&["x"]);
    let screen = t.wait_for("how?");
    assert!(screen.contains("card numbers"), "{screen}");
    // Card numbers is the first choice.
    t.keys(&["Enter"]);
    let screen = t.wait_for("match(es)");
    assert!(screen.contains("1 match(es)"), "{screen}");
    assert!(
        !screen.contains(CARD),
        "the card number is on screen:\n{screen}"
    );
    t.let_touch_age();
    t.keys(&["y"]);
    t.wait_for("reason or ticket");
    t.type_text("DSR-88 card number in a note");
    t.keys(&["Enter"]);
    t.step_up("the redaction");
    t.wait_for("redacted 1 match(es)");
    t.quit_and_check_terminal();

    let notes: Option<String> = sqlx::query_scalar("SELECT notes FROM receipts WHERE id = $1")
        .bind(s.fx.receipt)
        .fetch_one(&s.pluto.pool)
        .await
        .unwrap();
    let notes = notes.unwrap();
    assert!(!notes.contains("4111"), "{notes}");
    assert!(
        notes.starts_with("paid with ") && notes.ends_with(" thanks"),
        "{notes}"
    );
    let (status, detector, matches, operator, reason): (
        String,
        Option<String>,
        i32,
        String,
        String,
    ) = sqlx::query_as(
        "SELECT status, detector, matches, operator, reason FROM redactions WHERE business_id = $1",
    )
    .bind(s.fx.tenant)
    .fetch_one(&s.console.pool)
    .await
    .unwrap();
    assert_eq!(status, "applied");
    assert_eq!(detector.as_deref(), Some("card"));
    assert_eq!(matches, 1);
    assert_eq!(operator, me);
    assert_eq!(reason, "DSR-88 card number in a note");
    let actions = s.audit_actions(&me).await;
    assert!(
        actions
            .iter()
            .any(|(a, o)| a == "redaction.apply" && o == "allowed"),
        "{actions:?}"
    );
    s.assert_chain_intact().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_compliance_officers_erase_a_subject() {
    let s = Setup::new("e2e_erase").await;
    let me = operators::os_account().unwrap();
    let (other, other_uid) = other_account();
    assert_ne!(me, other, "the tests must not run as {other}");
    s.operator(&me, Role::Compliance, &KEY_A).await;
    s.operator(&other, Role::Compliance, &KEY_B).await;

    // Officer A opens the request and plans it.
    let a = s.tui("erase-a1", &KEY_A, 1);
    a.pass_gate(&me, Role::Compliance);
    a.palette("erasure");
    a.wait_for("Data-subject requests");
    a.keys(&["n"]);
    // The form opens on the e-mails (kind erasure, regime gdpr are preset).
    a.wait_for("New data-subject request");
    a.type_text(SUBJECT_EMAIL);
    a.keys(&["Tab", "Tab", "Tab"]);
    a.type_text("DSR-4242");
    a.keys(&["Enter"]);
    a.wait_for("p to plan it");
    let id: Uuid = sqlx::query_scalar("SELECT id FROM erasure_requests")
        .fetch_one(&s.console.pool)
        .await
        .unwrap();
    // The form hands over to the request's own screen.
    a.wait_for(&format!("Data-subject request {id}"));
    a.keys(&["p"]);
    a.wait_for("the subject's identifiers");
    a.type_text(SUBJECT_EMAIL);
    a.keys(&["Enter"]);
    let screen = a.wait_for("then a to approve");
    assert!(screen.contains("receipts"), "{screen}");
    let sha: String = sqlx::query_scalar("SELECT plan_sha256 FROM erasure_requests WHERE id = $1")
        .bind(id)
        .fetch_one(&s.console.pool)
        .await
        .unwrap();
    assert!(screen.contains(&sha[..16]), "{screen}");
    // The creator cannot approve: a second officer must.
    a.let_touch_age();
    a.keys(&["a"]);
    a.wait_for("Approve the plan");
    a.keys(&["y"]);
    a.step_up("approval of erasure plan");
    a.wait_for("the officer who created a request cannot approve it");
    a.quit_and_check_terminal();
    drop(a);
    let state: String = sqlx::query_scalar("SELECT state FROM erasure_requests WHERE id = $1")
        .bind(id)
        .fetch_one(&s.console.pool)
        .await
        .unwrap();
    assert_eq!(state, "planned");

    // Officer B, at another account, approves exactly that plan.
    let b = s.tui_as("erase-b", other_uid, &KEY_B, 1);
    b.pass_gate(&other, Role::Compliance);
    b.palette("erasure");
    let screen = b.wait_for("DSR-4242");
    assert!(screen.contains("planned"), "{screen}");
    b.keys(&["Enter"]);
    b.wait_for(&format!("Data-subject request {id}"));
    b.let_touch_age();
    b.keys(&["a"]);
    let screen = b.wait_for("Approve the plan");
    assert!(screen.contains(&sha[..16]), "{screen}");
    b.keys(&["y"]);
    b.step_up("approval of erasure plan");
    b.wait_for("x to execute");
    b.quit_and_check_terminal();
    drop(b);

    // Officer A executes it: the Pluto rows go, the object goes, the
    // certificate is made.
    let a = s.tui("erase-a2", &KEY_A, 10);
    a.pass_gate(&me, Role::Compliance);
    a.palette("erasure");
    a.wait_for("DSR-4242");
    a.keys(&["Enter"]);
    a.wait_for(&format!("Data-subject request {id}"));
    a.let_touch_age();
    a.keys(&["x"]);
    a.wait_for("identifiers again");
    a.type_text(SUBJECT_EMAIL);
    a.keys(&["Enter"]);
    a.step_up("execution of the erasure");
    let (i, _) = a.wait_for_any(&["done — certificate", "not finished"], WAIT);
    if i == 1 {
        a.keys(&["u"]);
        a.wait_for("the request is done");
    }
    a.keys(&["c"]);
    let screen = a.wait_for("Certificate of request");
    assert!(screen.contains("SHA-256"), "{screen}");
    assert!(!screen.contains(SUBJECT_EMAIL), "{screen}");
    a.keys(&["Escape"]);
    a.quit_and_check_terminal();

    let (state, created, approved, executed): (String, String, Option<String>, Option<String>) =
        sqlx::query_as(
            "SELECT state, created_by, approved_by, executed_by FROM erasure_requests WHERE id = $1",
        )
        .bind(id)
        .fetch_one(&s.console.pool)
        .await
        .unwrap();
    assert_eq!(state, "done");
    assert_eq!(created, me);
    assert_eq!(approved.as_deref(), Some(other.as_str()));
    assert_eq!(executed.as_deref(), Some(me.as_str()));
    for (sql, what) in [
        ("SELECT count(*) FROM users WHERE id = $1", "user"),
        (
            "SELECT count(*) FROM memberships WHERE user_id = $1",
            "membership",
        ),
        (
            "SELECT count(*) FROM receipts WHERE uploaded_by = $1",
            "receipt",
        ),
    ] {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(s.fx.user)
            .fetch_one(&s.pluto.pool)
            .await
            .unwrap();
        assert_eq!(n, 0, "the subject's {what} rows are still there");
    }
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE email = $1")
        .bind(SUBJECT_EMAIL)
        .fetch_one(&s.pluto.pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
    assert!(
        !s.objects().join(OBJECT_KEY).exists(),
        "the receipt's object is still in the bucket"
    );
    let ledger: Vec<Uuid> =
        sqlx::query_scalar("SELECT user_ids FROM erasure_ledger WHERE request_id = $1")
            .bind(id)
            .fetch_one(&s.console.pool)
            .await
            .unwrap();
    assert_eq!(ledger, [s.fx.user]);
    let steps: Vec<(String, String)> =
        sqlx::query_as("SELECT system, state FROM erasure_external_queue WHERE request_id = $1")
            .bind(id)
            .fetch_all(&s.console.pool)
            .await
            .unwrap();
    assert_eq!(steps, [("receipts_bucket".to_string(), "done".to_string())]);
    // Who did what, in the audit log: each sensitive step first refused for
    // want of a fresh touch (denied), then run after the step-up; the
    // creator's own approval entered, then failed.
    let by: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT action, operator, outcome FROM audit_log
         WHERE action IN ('erasure.create', 'erasure.plan', 'erasure.approve', 'erasure.execute')
         ORDER BY seq",
    )
    .fetch_all(&s.console.pool)
    .await
    .unwrap();
    let expected: Vec<(String, String, String)> = [
        ("erasure.create", &me, "allowed"),
        ("erasure.plan", &me, "allowed"),
        ("erasure.approve", &me, "denied"),
        ("erasure.approve", &me, "allowed"),
        ("erasure.approve", &me, "failed"),
        ("erasure.approve", &other, "denied"),
        ("erasure.approve", &other, "allowed"),
        ("erasure.execute", &me, "denied"),
        ("erasure.execute", &me, "allowed"),
    ]
    .iter()
    .map(|(a, o, r)| (a.to_string(), o.to_string(), r.to_string()))
    .collect();
    assert_eq!(by, expected);
    s.assert_chain_intact().await;
}

/// `pg_dump -Fc` of the Pluto database into the `dir` source, with its sha256.
fn dump(s: &Setup, name: &str) -> PathBuf {
    let path = s.bin.dir.path().join("dumps").join(name);
    common::pg_dump_with_sha256(s.pluto.url.expose(), &path);
    path
}

async fn scratch_databases() -> Vec<String> {
    let pool = sqlx::PgPool::connect(&server_url()).await.unwrap();
    let names =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'charon_restore_%'")
            .fetch_all(&pool)
            .await
            .unwrap();
    pool.close().await;
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn sre_restore_tests_a_backup_from_the_backups_screen() {
    let s = Setup::new("e2e_restore").await;
    let me = operators::os_account().unwrap();
    s.operator(&me, Role::Sre, &KEY_A).await;
    let _ = dump(&s, "pluto-e2e.dump");

    let t = s.tui("restore", &KEY_A, 1);
    t.pass_gate(&me, Role::Sre);
    t.palette("backups");
    let screen = t.wait_for("pluto-e2e.dump");
    assert!(screen.contains("local (dir)"), "{screen}");
    assert!(screen.contains("sha256 on file"), "{screen}");
    t.keys(&["Enter"]);
    // pg_restore into a scratch database, the checks, the drop: minutes on
    // a busy machine.
    let screen = t.wait_until("a verdict", Duration::from_secs(300), |s| {
        s.contains("PASS pluto-e2e.dump")
            || s.contains("FAIL pluto-e2e.dump")
            || s.contains("not run:")
    });
    assert!(screen.contains("PASS pluto-e2e.dump"), "{screen}");
    t.quit_and_check_terminal();

    // One run in the history: pass, no check failed, the restore timed, the
    // scratch database named and dropped.
    type Row = (
        String,
        String,
        String,
        Option<i64>,
        Option<String>,
        i64,
        Vec<String>,
    );
    let (source, backup, verdict, restore_ms, scratch, failed, names): Row = sqlx::query_as(
        "SELECT source, backup_id, verdict, restore_ms, scratch_db,
                (SELECT count(*) FROM jsonb_array_elements(checks) c
                  WHERE NOT (c->>'passed')::boolean
                    AND NOT coalesce((c->>'skipped')::boolean, false)),
                ARRAY(SELECT c->>'name' FROM jsonb_array_elements(checks) c)
         FROM restore_tests",
    )
    .fetch_one(&s.console.pool)
    .await
    .unwrap();
    assert_eq!(
        (source.as_str(), backup.as_str(), verdict.as_str()),
        ("local", "pluto-e2e.dump", "pass")
    );
    assert!(restore_ms.is_some());
    assert_eq!(failed, 0, "{names:?}");
    assert!(names.iter().any(|n| n == "checksum"), "{names:?}");
    let scratch = scratch.expect("the scratch database is named");
    assert!(
        !scratch_databases().await.contains(&scratch),
        "{scratch} was not dropped"
    );
    let actions = s.audit_actions(&me).await;
    assert!(
        actions
            .iter()
            .any(|(a, o)| a == "restore.run" && o == "allowed"),
        "{actions:?}"
    );
    s.assert_chain_intact().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn auditor_reads_and_verifies_the_audit_log() {
    let s = Setup::new("e2e_audit").await;
    let me = operators::os_account().unwrap();
    s.operator(&me, Role::Auditor, &KEY_A).await;

    let t = s.tui("audit", &KEY_A, 1);
    t.pass_gate(&me, Role::Auditor);
    t.palette("audit");
    let screen = t.wait_for("Audit log (newest first)");
    assert!(screen.contains("mfa.verify"), "{screen}");
    t.keys(&["v"]);
    let screen = t.wait_for("chain intact");
    assert!(!screen.contains("BROKEN"), "{screen}");
    // One entry in full.
    t.keys(&["Enter"]);
    t.wait_for("seq");
    t.keys(&["Escape"]);
    // A filter: only the gate's entries stay.
    t.wait_for("Audit log (newest first)");
    t.keys(&["/"]);
    t.type_text("action:mfa.verify");
    t.keys(&["Enter"]);
    let others = ["console.open", "mfa.status", "audit.list", "audit.verify"];
    let screen = t.wait_until("the filtered list", WAIT, |s| {
        s.contains("mfa.verify") && !others.iter().any(|o| s.contains(o))
    });
    // Two entries for the gate's pass: the try and the pass.
    let rows = screen.lines().filter(|l| l.contains("mfa.verify")).count();
    assert_eq!(rows, 2, "{screen}");
    t.quit_and_check_terminal();

    let actions = s.audit_actions(&me).await;
    for a in ["mfa.verify", "audit.list", "audit.verify"] {
        assert!(
            actions.iter().any(|(x, o)| x == a && o == "allowed"),
            "no allowed {a} in {actions:?}"
        );
    }
    s.assert_chain_intact().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_text_in_the_data_never_reaches_the_terminal() {
    let s = Setup::new("e2e_hostile").await;
    let me = operators::os_account().unwrap();
    s.operator(&me, Role::Support, &KEY_A).await;
    // A tenant name that would set the terminal's title, clear the screen
    // and move the cursor home if it were written raw.
    let hostile = "Evil\u{1b}]2;PWNED\u{7} Corp\u{1b}[2J\u{1b}[H\u{9b}31m";
    sqlx::query(
        "INSERT INTO businesses (id, name, plan, country, created_at) VALUES ($1, $2, 'free', 'GB', now())",
    )
    .bind(Uuid::new_v4())
    .bind(hostile)
    .execute(&s.pluto.pool)
    .await
    .unwrap();

    let t = s.tui("hostile", &KEY_A, 1);
    let title_before = t.format("#{pane_title}");
    t.pass_gate(&me, Role::Support);
    t.type_text("Evil");
    let screen = t.wait_for(r"Evil\x1b]2;PWNED\x07 Corp\x1b[2J\x1b[H");
    assert!(screen.contains("Find a tenant"), "{screen}");
    t.keys(&["Enter"]);
    let screen = t.wait_for(" Members ");
    assert!(screen.contains(r"Evil\x1b]2;PWNED\x07 Corp"), "{screen}");
    // The frame is whole (nothing cleared it) and the title is untouched.
    assert!(screen.contains("support) │"), "{screen}");
    let title = t.format("#{pane_title}");
    assert!(
        !title.contains("PWNED"),
        "the terminal title was set: {title}"
    );
    assert_eq!(title, title_before);
    t.quit_and_check_terminal();
}
