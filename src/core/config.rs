//! Configuration, parsed twice: a raw serde layer that rejects unknown keys,
//! resolved into [`Config`] with no `Option`s left for call sites. Every error
//! names the file, the line and the key.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::core::audit::AuditKey;
use crate::core::{Error, Result};

/// A database URL. Debug and Display hide the password.
#[derive(Clone, PartialEq, Eq)]
pub struct DbUrl(String);

impl DbUrl {
    pub fn parse(s: &str) -> std::result::Result<DbUrl, String> {
        if !(s.starts_with("postgres://") || s.starts_with("postgresql://")) {
            return Err("must be a postgres:// or postgresql:// URL".into());
        }
        Ok(DbUrl(s.to_string()))
    }

    /// The URL itself, for connecting. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `dbname@host` for the status bar (no user, no password).
    pub fn display_name(&self) -> String {
        let rest = self.0.split_once("://").map(|(_, r)| r).unwrap_or("");
        let (authority_path, query) = rest.split_once('?').unwrap_or((rest, ""));
        // The user info (and a password that holds a raw `/` or `@`) ends
        // at the last `@`.
        let host_path = authority_path
            .rsplit_once('@')
            .map(|(_, h)| h)
            .unwrap_or(authority_path);
        let (host, path) = host_path.split_once('/').unwrap_or((host_path, ""));
        let host = if host.is_empty() || host == "localhost" {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix("host="))
                .map(|_| "local socket")
                .unwrap_or(if host.is_empty() { "localhost" } else { host })
        } else {
            host
        };
        let db = if path.is_empty() { "(default)" } else { path };
        format!("{db}@{host}")
    }
}

impl fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DbUrl({})", self)
    }
}

impl fmt::Display for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // postgres://user:secret@host/db → postgres://user:***@host/db. The
        // last `@` ends the user info: a password may hold a raw `@`.
        match self.0.split_once("://") {
            Some((scheme, rest)) => match rest.rsplit_once('@') {
                Some((userinfo, tail)) => {
                    let user = userinfo.split(':').next().unwrap_or("");
                    if userinfo.contains(':') {
                        write!(f, "{scheme}://{user}:***@{tail}")
                    } else {
                        write!(f, "{scheme}://{user}@{tail}")
                    }
                }
                None => write!(f, "{}", self.0),
            },
            None => f.write_str("***"),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    environment: Option<Spanned<String>>,
    pluto_url: Spanned<String>,
    pluto_read_url: Option<Spanned<String>>,
    console_url: Spanned<String>,
    theme: Option<Spanned<String>>,
    themes_dir: Option<PathBuf>,
    #[serde(default)]
    timeouts: RawTimeouts,
    #[serde(default)]
    mfa: RawMfa,
    #[serde(default)]
    audit: RawAudit,
    #[serde(default)]
    records: RawRecords,
    #[serde(default)]
    erasure: RawErasure,
    #[serde(default)]
    restore: RawRestore,
    #[serde(default)]
    backups: std::collections::BTreeMap<String, Spanned<RawBackup>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawErasure {
    max_attempts: Option<Spanned<u32>>,
    export_dir: Option<Spanned<String>>,
    #[serde(default)]
    systems: std::collections::BTreeMap<String, Spanned<RawSystem>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSystem {
    url: Spanned<String>,
    #[serde(default)]
    options: std::collections::BTreeMap<String, String>,
    client_id: Option<String>,
    secret_file: Option<Spanned<String>>,
}

/// The `[erasure]` section: where the external systems of the data map
/// live (object storage by URL, Plaid with its client id and secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasureConfig {
    /// Tries an external step gets before it is marked failed.
    pub max_attempts: u32,
    /// Where access requests write their archives (mode 0600). Default:
    /// `$XDG_DATA_HOME/charon/exports`.
    pub export_dir: Option<PathBuf>,
    pub systems: std::collections::BTreeMap<String, SystemConfig>,
}

impl ErasureConfig {
    pub fn export_dir(&self) -> PathBuf {
        self.export_dir.clone().unwrap_or_else(|| {
            dirs::data_dir()
                .unwrap_or_else(std::env::temp_dir)
                .join("charon")
                .join("exports")
        })
    }
}

impl Default for ErasureConfig {
    fn default() -> Self {
        ErasureConfig {
            max_attempts: 8,
            export_dir: None,
            systems: Default::default(),
        }
    }
}

/// One external system: `file:///dir` or `s3://bucket/prefix` (with
/// object_store `options` such as `endpoint`, `region`, `allow_http`;
/// credentials from the usual AWS_* variables) for object storage;
/// `https://production.plaid.com` with `client_id` and `secret_file` for Plaid.
#[derive(Clone, PartialEq, Eq)]
pub struct SystemConfig {
    pub url: url::Url,
    pub options: std::collections::BTreeMap<String, String>,
    pub client_id: Option<String>,
    pub secret_file: Option<PathBuf>,
}

impl std::fmt::Debug for SystemConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Options may hold keys (e.g. aws_secret_access_key): names only.
        f.debug_struct("SystemConfig")
            .field("url", &self.url.as_str())
            .field("options", &self.options.keys().collect::<Vec<_>>())
            .field("client_id", &self.client_id)
            .field("secret_file", &self.secret_file)
            .finish()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRestore {
    server_url: Option<Spanned<String>>,
    rpo_minutes: Option<Spanned<u64>>,
    rto_minutes: Option<Spanned<u64>>,
    jobs: Option<Spanned<u32>>,
    row_tolerance: Option<Spanned<f64>>,
    object_store_url: Option<Spanned<String>>,
    pg_bin_dir: Option<Spanned<String>>,
}

/// One `[backups.NAME]` table: the keys of every kind, checked per kind.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackup {
    kind: Spanned<String>,
    path: Option<Spanned<String>>,
    host: Option<Spanned<String>>,
    port: Option<Spanned<u16>>,
    user: Option<Spanned<String>>,
    identity_file: Option<Spanned<String>>,
    known_hosts: Option<Spanned<String>>,
    connect_timeout_secs: Option<Spanned<u64>>,
    stanza: Option<Spanned<String>>,
    config: Option<Spanned<String>>,
    database: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecords {
    support_may_redact: Option<bool>,
}

/// The `[records]` section, resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordsConfig {
    /// Support engineers may redact too (by default only compliance may).
    pub support_may_redact: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMfa {
    master_key_file: Option<Spanned<PathBuf>>,
    allow_software_keys: Option<Spanned<bool>>,
    step_up_window_secs: Option<Spanned<u64>>,
    touch_timeout_secs: Option<Spanned<u64>>,
    validation_url: Option<Spanned<String>>,
    validation_client_id: Option<Spanned<String>>,
    validation_api_key_file: Option<Spanned<PathBuf>>,
}

/// A YubiKey validation server (protocol 2.0) for OTP keys enrolled without
/// a stored secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationServer {
    /// `http://host:port/wsapi/2.0/verify`.
    pub url: String,
    /// The numeric client id the server issued.
    pub client_id: String,
    /// File holding the base64 API key, mode 0600 or 0400.
    pub api_key_file: PathBuf,
}

/// The `[mfa]` section, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaConfig {
    /// File holding the 64-hex-digit master key (mode 0600/0400) that seals
    /// OTP secrets in the console database; else `CHARON_MASTER_KEY`.
    pub master_key_file: Option<PathBuf>,
    /// Software keys are for the demo and tests; never in production.
    pub allow_software_keys: bool,
    /// Reveal, redact, erasure and admin actions ask for a fresh touch when
    /// the last one is older than this.
    pub step_up_window: Duration,
    /// How long to wait for the touch on a security key.
    pub touch_timeout: Duration,
    pub validation: Option<ValidationServer>,
}

impl Default for MfaConfig {
    fn default() -> Self {
        MfaConfig {
            master_key_file: None,
            allow_software_keys: false,
            step_up_window: Duration::from_secs(120),
            touch_timeout: Duration::from_secs(30),
            validation: None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    key_file: Option<Spanned<String>>,
    mirror_jsonl: Option<Spanned<String>>,
}

/// Where the audit HMAC key comes from. Never the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditKeySource {
    /// `[audit] key_file`: a file holding the key in hex, mode 0600 or 0400.
    File(PathBuf),
    /// The environment variable `CHARON_AUDIT_KEY` (hex), when no key file is configured.
    Env,
    /// A random key made at start: `charon demo` and tests only (not reachable
    /// from a configuration file).
    Ephemeral,
}

/// The `[audit]` section, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditConfig {
    pub key: AuditKeySource,
    /// `[audit] mirror_jsonl`: also append each entry as a JSON line here.
    pub mirror_jsonl: Option<PathBuf>,
}

impl AuditConfig {
    /// Loads the key from its source (checking a key file's mode).
    pub fn load_key(&self) -> Result<AuditKey> {
        match &self.key {
            AuditKeySource::File(p) => AuditKey::from_file(p),
            AuditKeySource::Env => AuditKey::from_env()?.ok_or_else(|| {
                Error::Config(format!(
                    "no audit key: set `key_file` in the [audit] section of the configuration, or the environment variable {}",
                    crate::core::audit::key::KEY_ENV
                ))
            }),
            AuditKeySource::Ephemeral => AuditKey::generate(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimeouts {
    connect_secs: Option<Spanned<u64>>,
    statement_ms: Option<Spanned<u64>>,
    idle_minutes: Option<Spanned<u64>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeouts {
    /// How long to wait for a database connection.
    pub connect: Duration,
    /// PostgreSQL `statement_timeout` for every query charon runs.
    pub statement: Duration,
    /// A session with no key press for this long goes back to the gate.
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            statement: Duration::from_millis(5_000),
            idle: Duration::from_secs(15 * 60),
        }
    }
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it was read from (for messages).
    pub source: PathBuf,
    /// Environment name shown in the status bar; `production` is drawn in the
    /// theme's danger colour.
    pub environment: String,
    pub pluto_url: DbUrl,
    /// Read-only replica for lookups; the primary when absent.
    pub pluto_read_url: DbUrl,
    pub console_url: DbUrl,
    pub theme: String,
    /// Extra theme files, searched before the bundled ones.
    pub themes_dir: Option<PathBuf>,
    pub timeouts: Timeouts,
    pub mfa: MfaConfig,
    pub audit: AuditConfig,
    pub records: RecordsConfig,
    pub erasure: ErasureConfig,
    pub restore: RestoreConfig,
}

/// The `[restore]` section and the `[backups.NAME]` sources, resolved.
#[derive(Debug, Clone)]
pub struct RestoreConfig {
    /// A database on the server where scratch databases are created and
    /// dropped (`dir` and `ssh` sources). `None`: restore tests of those
    /// sources are refused (never the live server by default).
    pub server_url: Option<DbUrl>,
    pub rpo: Duration,
    pub rto: Duration,
    pub jobs: u32,
    pub row_tolerance: f64,
    /// Object storage holding the receipts' objects (`file:///path`,
    /// `s3://bucket/prefix`), for the business-invariant check.
    pub object_store_url: Option<String>,
    pub pg_bin_dir: Option<PathBuf>,
    /// The backup sources, by name (sorted).
    pub sources: Vec<crate::core::restore::Source>,
}

impl Default for RestoreConfig {
    fn default() -> Self {
        RestoreConfig {
            server_url: None,
            rpo: Duration::from_secs(15 * 60),
            rto: Duration::from_secs(4 * 3600),
            jobs: 2,
            row_tolerance: 0.05,
            object_store_url: None,
            pg_bin_dir: None,
            sources: Vec::new(),
        }
    }
}

impl RestoreConfig {
    /// The source with this name.
    pub fn source(&self, name: &str) -> Result<&crate::core::restore::Source> {
        self.sources
            .iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = self.sources.iter().map(|s| s.name()).collect();
                Error::NotFound(format!(
                    "no backup source `{name}` in the configuration (configured: {})",
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                ))
            })
    }
}

impl Config {
    /// The configuration a demo run uses: both databases given by the caller.
    pub fn demo(pluto_url: DbUrl, console_url: DbUrl) -> Config {
        Config {
            source: PathBuf::from("(demo)"),
            environment: "demo".into(),
            pluto_read_url: pluto_url.clone(),
            pluto_url,
            console_url,
            theme: "dark".into(),
            themes_dir: None,
            timeouts: Timeouts::default(),
            mfa: MfaConfig {
                allow_software_keys: true,
                ..MfaConfig::default()
            },
            audit: AuditConfig {
                key: AuditKeySource::Ephemeral,
                mirror_jsonl: None,
            },
            records: RecordsConfig::default(),
            erasure: ErasureConfig::default(),
            restore: RestoreConfig::default(),
        }
    }

    pub fn is_production(&self) -> bool {
        self.environment.eq_ignore_ascii_case("production")
    }

    /// Parses a configuration file's text. `source` names it in errors.
    pub fn parse(text: &str, source: &Path) -> Result<Config> {
        let at = |span: std::ops::Range<usize>| {
            format!("{}:{}", source.display(), line_of(text, span.start))
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let place = e
                .span()
                .map(at)
                .unwrap_or_else(|| source.display().to_string());
            Error::Config(format!("{place}: {}", e.message().trim()))
        })?;
        let bad = |span: std::ops::Range<usize>, key: &str, why: &str| {
            Error::Config(format!("{}: key `{key}`: {why}", at(span)))
        };
        let url = |v: &Spanned<String>, key: &str| {
            DbUrl::parse(v.get_ref()).map_err(|why| bad(v.span(), key, &why))
        };
        let pluto_url = url(&raw.pluto_url, "pluto_url")?;
        let pluto_read_url = match &raw.pluto_read_url {
            Some(v) => url(v, "pluto_read_url")?,
            None => pluto_url.clone(),
        };
        let console_url = url(&raw.console_url, "console_url")?;
        if console_url == pluto_url {
            return Err(bad(
                raw.console_url.span(),
                "console_url",
                "must name a different database than pluto_url (a restore of Pluto must never roll back the audit log)",
            ));
        }
        let environment = match raw.environment {
            Some(v) if v.get_ref().trim().is_empty() => {
                return Err(bad(v.span(), "environment", "must not be empty"));
            }
            Some(v) => v.into_inner(),
            None => "default".to_string(),
        };
        let theme = match raw.theme {
            Some(v) if !valid_theme_name(v.get_ref()) => {
                return Err(bad(
                    v.span(),
                    "theme",
                    "must be a theme name such as `dark` (letters, digits, - and _)",
                ));
            }
            Some(v) => v.into_inner(),
            None => "dark".to_string(),
        };
        let mut timeouts = Timeouts::default();
        let positive = |v: &Spanned<u64>, key: &str| {
            if *v.get_ref() == 0 {
                Err(bad(v.span(), key, "must be greater than 0"))
            } else {
                Ok(*v.get_ref())
            }
        };
        if let Some(v) = &raw.timeouts.connect_secs {
            timeouts.connect = Duration::from_secs(positive(v, "timeouts.connect_secs")?);
        }
        if let Some(v) = &raw.timeouts.statement_ms {
            timeouts.statement = Duration::from_millis(positive(v, "timeouts.statement_ms")?);
        }
        if let Some(v) = &raw.timeouts.idle_minutes {
            timeouts.idle = Duration::from_secs(60 * positive(v, "timeouts.idle_minutes")?);
        }
        let mfa = resolve_mfa(raw.mfa, &environment, &bad, &positive)?;
        // Relative paths are read from the configuration file's directory.
        let base = source.parent().unwrap_or(Path::new(""));
        let path = |v: &Spanned<String>, key: &str| {
            if v.get_ref().trim().is_empty() {
                Err(bad(v.span(), key, "must not be empty"))
            } else {
                Ok(base.join(v.get_ref()))
            }
        };
        let audit = AuditConfig {
            key: match &raw.audit.key_file {
                Some(v) => AuditKeySource::File(path(v, "audit.key_file")?),
                None => AuditKeySource::Env,
            },
            mirror_jsonl: raw
                .audit
                .mirror_jsonl
                .as_ref()
                .map(|v| path(v, "audit.mirror_jsonl"))
                .transpose()?,
        };
        let mut erasure = ErasureConfig::default();
        if let Some(v) = &raw.erasure.max_attempts {
            if *v.get_ref() == 0 {
                return Err(bad(
                    v.span(),
                    "erasure.max_attempts",
                    "must be greater than 0",
                ));
            }
            erasure.max_attempts = *v.get_ref();
        }
        if let Some(v) = &raw.erasure.export_dir {
            erasure.export_dir = Some(path(v, "erasure.export_dir")?);
        }
        for (name, sys) in raw.erasure.systems {
            let key = format!("erasure.systems.{name}.url");
            let sys = sys.into_inner();
            let parsed = url::Url::parse(sys.url.get_ref().trim())
                .map_err(|e| bad(sys.url.span(), &key, &format!("not a URL: {e}")))?;
            if !matches!(
                parsed.scheme(),
                "file" | "s3" | "s3a" | "http" | "https" | "memory"
            ) {
                return Err(bad(
                    sys.url.span(),
                    &key,
                    "expected file:///dir or s3://bucket (object storage), https://... (Plaid)",
                ));
            }
            let secret_file = sys
                .secret_file
                .as_ref()
                .map(|v| path(v, &format!("erasure.systems.{name}.secret_file")))
                .transpose()?;
            erasure.systems.insert(
                name,
                SystemConfig {
                    url: parsed,
                    options: sys.options,
                    client_id: sys.client_id,
                    secret_file,
                },
            );
        }
        let restore = resolve_restore(&raw.restore, &raw.backups, &bad, &path)?;
        Ok(Config {
            source: source.to_path_buf(),
            environment,
            pluto_url,
            pluto_read_url,
            console_url,
            theme,
            themes_dir: raw.themes_dir,
            timeouts,
            mfa,
            audit,
            records: RecordsConfig {
                support_may_redact: raw.records.support_may_redact.unwrap_or(false),
            },
            erasure,
            restore,
        })
    }

    /// Reads the configuration from `--config`, then `CHARON_CONFIG`, then
    /// `$XDG_CONFIG_HOME/charon/config.toml`.
    pub fn load(explicit: Option<&Path>) -> Result<Config> {
        let path = locate(
            explicit,
            std::env::var_os("CHARON_CONFIG").map(PathBuf::from),
        )?;
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::Config(format!("{}: cannot read: {e}", path.display())))?;
        Config::parse(&text, &path)
    }
}

fn resolve_mfa(
    raw: RawMfa,
    environment: &str,
    bad: &dyn Fn(std::ops::Range<usize>, &str, &str) -> Error,
    positive: &dyn Fn(&Spanned<u64>, &str) -> Result<u64>,
) -> Result<MfaConfig> {
    let mut mfa = MfaConfig::default();
    if let Some(v) = raw.master_key_file {
        if v.get_ref().as_os_str().is_empty() {
            return Err(bad(v.span(), "mfa.master_key_file", "must not be empty"));
        }
        mfa.master_key_file = Some(v.into_inner());
    }
    if let Some(v) = raw.allow_software_keys {
        if *v.get_ref() && environment.eq_ignore_ascii_case("production") {
            return Err(bad(
                v.span(),
                "mfa.allow_software_keys",
                "software keys are for the demo and tests; a production environment never accepts them",
            ));
        }
        mfa.allow_software_keys = *v.get_ref();
    }
    if let Some(v) = &raw.step_up_window_secs {
        mfa.step_up_window = Duration::from_secs(positive(v, "mfa.step_up_window_secs")?);
    }
    if let Some(v) = &raw.touch_timeout_secs {
        mfa.touch_timeout = Duration::from_secs(positive(v, "mfa.touch_timeout_secs")?);
    }
    mfa.validation = match (
        raw.validation_url,
        raw.validation_client_id,
        raw.validation_api_key_file,
    ) {
        (None, None, None) => None,
        (Some(url), Some(id), Some(key_file)) => {
            // The client checks the URL and the id; the API key is read when
            // the authenticator is built (it is a secret file).
            crate::core::mfa::otp::validation::ValidationClient::new(
                url.get_ref(),
                id.get_ref(),
                "",
            )
            .map_err(|e| match e {
                crate::core::mfa::MfaError::BadServerUrl { reason, .. } => {
                    bad(url.span(), "mfa.validation_url", &reason)
                }
                other => bad(id.span(), "mfa.validation_client_id", &other.to_string()),
            })?;
            if key_file.get_ref().as_os_str().is_empty() {
                return Err(bad(
                    key_file.span(),
                    "mfa.validation_api_key_file",
                    "must not be empty",
                ));
            }
            Some(ValidationServer {
                url: url.into_inner(),
                client_id: id.into_inner(),
                api_key_file: key_file.into_inner(),
            })
        }
        (url, id, key_file) => {
            let (span, key) = url
                .as_ref()
                .map(|v| (v.span(), "mfa.validation_url"))
                .or_else(|| id.as_ref().map(|v| (v.span(), "mfa.validation_client_id")))
                .or_else(|| {
                    key_file
                        .as_ref()
                        .map(|v| (v.span(), "mfa.validation_api_key_file"))
                })
                .unwrap_or((0..0, "mfa"));
            let missing: Vec<&str> = [
                ("mfa.validation_url", url.is_none()),
                ("mfa.validation_client_id", id.is_none()),
                ("mfa.validation_api_key_file", key_file.is_none()),
            ]
            .into_iter()
            .filter_map(|(k, m)| m.then_some(k))
            .collect();
            return Err(bad(
                span,
                key,
                &format!(
                    "a validation server needs validation_url, validation_client_id and validation_api_key_file together; missing: {}",
                    missing.join(", ")
                ),
            ));
        }
    };
    Ok(mfa)
}

type Bad<'a> = dyn Fn(std::ops::Range<usize>, &str, &str) -> Error + 'a;
type PathOf<'a> = dyn Fn(&Spanned<String>, &str) -> Result<PathBuf> + 'a;

fn resolve_restore(
    raw: &RawRestore,
    backups: &std::collections::BTreeMap<String, Spanned<RawBackup>>,
    bad: &Bad<'_>,
    path: &PathOf<'_>,
) -> Result<RestoreConfig> {
    use crate::core::restore::{DirSource, PgBackRestSource, Source, SshSource};
    let mut r = RestoreConfig::default();
    if let Some(v) = &raw.server_url {
        r.server_url = Some(
            DbUrl::parse(v.get_ref()).map_err(|why| bad(v.span(), "restore.server_url", &why))?,
        );
    }
    let minutes = |v: &Spanned<u64>, key: &str| {
        if *v.get_ref() == 0 {
            Err(bad(v.span(), key, "must be greater than 0"))
        } else {
            Ok(Duration::from_secs(60 * v.get_ref()))
        }
    };
    if let Some(v) = &raw.rpo_minutes {
        r.rpo = minutes(v, "restore.rpo_minutes")?;
    }
    if let Some(v) = &raw.rto_minutes {
        r.rto = minutes(v, "restore.rto_minutes")?;
    }
    if let Some(v) = &raw.jobs {
        if !(1..=64).contains(v.get_ref()) {
            return Err(bad(v.span(), "restore.jobs", "must be between 1 and 64"));
        }
        r.jobs = *v.get_ref();
    }
    if let Some(v) = &raw.row_tolerance {
        if !(0.0..=1.0).contains(v.get_ref()) {
            return Err(bad(
                v.span(),
                "restore.row_tolerance",
                "must be between 0 and 1 (a fraction)",
            ));
        }
        r.row_tolerance = *v.get_ref();
    }
    if let Some(v) = &raw.object_store_url {
        let ok = url::Url::parse(v.get_ref())
            .ok()
            .is_some_and(|u| matches!(u.scheme(), "file" | "s3" | "memory"));
        if !ok {
            return Err(bad(
                v.span(),
                "restore.object_store_url",
                "must be a file:///path or s3://bucket/prefix URL",
            ));
        }
        r.object_store_url = Some(v.get_ref().clone());
    }
    if let Some(v) = &raw.pg_bin_dir {
        r.pg_bin_dir = Some(path(v, "restore.pg_bin_dir")?);
    }
    for (name, spanned) in backups {
        let b = spanned.get_ref();
        let key = |k: &str| format!("backups.{name}.{k}");
        if !valid_source_name(name) {
            return Err(bad(
                spanned.span(),
                &format!("backups.{name}"),
                "a source name is letters, digits, - and _ (at most 64)",
            ));
        }
        let need = |v: &Option<Spanned<String>>, k: &str| match v {
            Some(v) if !v.get_ref().trim().is_empty() => Ok(v.get_ref().clone()),
            Some(v) => Err(bad(v.span(), &key(k), "must not be empty")),
            None => Err(bad(
                spanned.span(),
                &key(k),
                &format!("a `{}` source needs `{k}`", b.kind.get_ref()),
            )),
        };
        // Keys that belong to another kind are errors, not silently ignored.
        let only = |allowed: &[&str]| -> Result<()> {
            let present: [(&str, Option<std::ops::Range<usize>>); 10] = [
                ("path", b.path.as_ref().map(|v| v.span())),
                ("host", b.host.as_ref().map(|v| v.span())),
                ("port", b.port.as_ref().map(|v| v.span())),
                ("user", b.user.as_ref().map(|v| v.span())),
                ("identity_file", b.identity_file.as_ref().map(|v| v.span())),
                ("known_hosts", b.known_hosts.as_ref().map(|v| v.span())),
                (
                    "connect_timeout_secs",
                    b.connect_timeout_secs.as_ref().map(|v| v.span()),
                ),
                ("stanza", b.stanza.as_ref().map(|v| v.span())),
                ("config", b.config.as_ref().map(|v| v.span())),
                ("database", b.database.as_ref().map(|v| v.span())),
            ];
            for (k, span) in present {
                if let Some(span) = span
                    && !allowed.contains(&k)
                {
                    return Err(bad(
                        span,
                        &key(k),
                        &format!("not a key of a `{}` source", b.kind.get_ref()),
                    ));
                }
            }
            Ok(())
        };
        let source = match b.kind.get_ref().as_str() {
            "dir" => {
                only(&["path"])?;
                let p = b.path.as_ref().ok_or_else(|| {
                    bad(spanned.span(), &key("path"), "a `dir` source needs `path`")
                })?;
                let mut s = DirSource::new(name, path(p, &key("path"))?);
                s.pg_bin_dir = r.pg_bin_dir.clone();
                Source::Dir(s)
            }
            "ssh" => {
                only(&[
                    "path",
                    "host",
                    "port",
                    "user",
                    "identity_file",
                    "known_hosts",
                    "connect_timeout_secs",
                ])?;
                let host = need(&b.host, "host")?;
                if host.starts_with('-') || host.contains(['@', ' ', '/']) {
                    return Err(bad(
                        b.host.as_ref().map(|v| v.span()).unwrap_or(0..0),
                        &key("host"),
                        "must be a host name or address",
                    ));
                }
                let user = need(&b.user, "user")?;
                if user.starts_with('-') || user.contains(['@', ' ', ':']) {
                    return Err(bad(
                        b.user.as_ref().map(|v| v.span()).unwrap_or(0..0),
                        &key("user"),
                        "must be a user name",
                    ));
                }
                let remote = need(&b.path, "path")?;
                let identity = b.identity_file.as_ref().ok_or_else(|| {
                    bad(
                        spanned.span(),
                        &key("identity_file"),
                        "an `ssh` source needs `identity_file`",
                    )
                })?;
                let known = b.known_hosts.as_ref().ok_or_else(|| {
                    bad(
                        spanned.span(),
                        &key("known_hosts"),
                        "an `ssh` source needs `known_hosts` (host keys are always checked)",
                    )
                })?;
                let timeout = match &b.connect_timeout_secs {
                    Some(v) if *v.get_ref() == 0 => {
                        return Err(bad(
                            v.span(),
                            &key("connect_timeout_secs"),
                            "must be greater than 0",
                        ));
                    }
                    Some(v) => Duration::from_secs(*v.get_ref()),
                    None => Duration::from_secs(10),
                };
                Source::Ssh(SshSource {
                    name: name.clone(),
                    host,
                    port: b.port.as_ref().map(|v| *v.get_ref()).unwrap_or(22),
                    user,
                    identity_file: path(identity, &key("identity_file"))?,
                    known_hosts: path(known, &key("known_hosts"))?,
                    path: remote,
                    connect_timeout: timeout,
                    pg_bin_dir: r.pg_bin_dir.clone(),
                })
            }
            "pgbackrest" => {
                only(&["stanza", "config", "database"])?;
                let stanza = need(&b.stanza, "stanza")?;
                if !valid_source_name(&stanza) {
                    return Err(bad(
                        b.stanza.as_ref().map(|v| v.span()).unwrap_or(0..0),
                        &key("stanza"),
                        "letters, digits, - and _",
                    ));
                }
                let database = match &b.database {
                    Some(_) => need(&b.database, "database")?,
                    None => "pluto".to_string(),
                };
                Source::PgBackRest(PgBackRestSource {
                    name: name.clone(),
                    stanza,
                    config: b
                        .config
                        .as_ref()
                        .map(|v| path(v, &key("config")))
                        .transpose()?,
                    database,
                    pg_bin_dir: r.pg_bin_dir.clone(),
                })
            }
            other => {
                return Err(bad(
                    b.kind.span(),
                    &key("kind"),
                    &format!("`{other}` is not a source kind: dir, ssh or pgbackrest"),
                ));
            }
        };
        r.sources.push(source);
    }
    Ok(r)
}

fn valid_source_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Where the configuration file is, by precedence.
pub fn locate(explicit: Option<&Path>, from_env: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = from_env.filter(|p| !p.as_os_str().is_empty()) {
        return Ok(p);
    }
    let xdg = dirs::config_dir().map(|d| d.join("charon").join("config.toml"));
    match xdg {
        Some(p) if p.exists() => Ok(p),
        Some(p) => Err(Error::Config(format!(
            "no configuration: pass --config PATH, set CHARON_CONFIG, or create {} (see config.example.toml); `charon demo` needs none",
            p.display()
        ))),
        None => Err(Error::Config(
            "no configuration: pass --config PATH or set CHARON_CONFIG".into(),
        )),
    }
}

/// `url` with its database path replaced by `database` (query string kept).
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let start = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[start..].find('/') {
        Some(i) => &base[..start + i],
        None => base,
    };
    format!("{base}/{database}{query}")
}

pub fn valid_theme_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// 1-based line number of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset.min(text.len()))
        .map(|t| t.matches('\n').count() + 1)
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
environment = "production"
pluto_url = "postgres://charon:s3cret@db.internal/pluto"
console_url = "postgres://charon@db.internal/charon"
theme = "light"

[timeouts]
statement_ms = 2000
"#;

    fn parse(text: &str) -> Result<Config> {
        Config::parse(text, Path::new("/etc/charon/config.toml"))
    }

    #[test]
    fn parses_and_resolves_defaults() -> Result<()> {
        let c = parse(GOOD)?;
        assert!(c.is_production());
        assert_eq!(c.theme, "light");
        assert_eq!(c.pluto_read_url, c.pluto_url);
        assert_eq!(c.timeouts.statement, Duration::from_millis(2000));
        assert_eq!(c.timeouts.connect, Duration::from_secs(5));
        Ok(())
    }

    #[test]
    fn urls_never_print_their_password() -> Result<()> {
        let c = parse(GOOD)?;
        let shown = format!("{:?} {}", c, c.pluto_url);
        assert!(!shown.contains("s3cret"), "{shown}");
        assert_eq!(c.pluto_url.display_name(), "pluto@db.internal");
        Ok(())
    }

    fn err(text: &str) -> String {
        match parse(text) {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let e = err(&format!("{GOOD}\n[timeouts2]\nx = 1\n"));
        assert!(e.starts_with("/etc/charon/config.toml:10"), "{e}");
        assert!(e.contains("timeouts2"), "{e}");
    }

    #[test]
    fn bad_values_name_line_and_key() {
        let e = err(&GOOD.replace("postgres://charon@db", "mysql://charon@db"));
        assert!(e.contains("config.toml:4: key `console_url`"), "{e}");
        let e = err(&GOOD.replace("statement_ms = 2000", "statement_ms = 0"));
        assert!(e.contains(":8: key `timeouts.statement_ms`"), "{e}");
        let e = err(&GOOD.replace("statement_ms = 2000", "statement_ms = \"fast\""));
        assert!(e.contains(":8:"), "{e}");
        let e = err(&GOOD.replace("\"light\"", "\"../../etc\""));
        assert!(e.contains(":5: key `theme`"), "{e}");
    }

    #[test]
    fn missing_required_key_is_named() {
        let e = err("console_url = \"postgres://x/y\"\n");
        assert!(e.contains("pluto_url"), "{e}");
    }

    #[test]
    fn same_database_twice_is_refused() {
        let e = err("pluto_url = \"postgres://h/p\"\nconsole_url = \"postgres://h/p\"\n");
        assert!(e.contains("console_url"), "{e}");
    }

    #[test]
    fn with_database_keeps_host_and_query() {
        assert_eq!(
            with_database("postgres://u@h:5/postgres?sslmode=disable", "x"),
            "postgres://u@h:5/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
    }

    #[test]
    fn mfa_defaults() -> Result<()> {
        let c = parse(GOOD)?;
        assert_eq!(c.mfa, MfaConfig::default());
        assert!(!c.mfa.allow_software_keys);
        assert_eq!(c.mfa.step_up_window, Duration::from_secs(120));
        assert_eq!(c.mfa.touch_timeout, Duration::from_secs(30));
        assert!(c.mfa.master_key_file.is_none());
        assert!(c.mfa.validation.is_none());
        Ok(())
    }

    const STAGING: &str = r#"environment = "staging"
pluto_url = "postgres://h/p"
console_url = "postgres://h/c"

[mfa]
master_key_file = "/etc/charon/master.key"
allow_software_keys = true
step_up_window_secs = 60
touch_timeout_secs = 20
validation_url = "http://127.0.0.1:8080/wsapi/2.0/verify"
validation_client_id = "42"
validation_api_key_file = "/etc/charon/yubico.key"
"#;

    #[test]
    fn mfa_section_resolves() -> Result<()> {
        let c = parse(STAGING)?;
        assert_eq!(
            c.mfa.master_key_file.as_deref(),
            Some(Path::new("/etc/charon/master.key"))
        );
        assert!(c.mfa.allow_software_keys);
        assert_eq!(c.mfa.step_up_window, Duration::from_secs(60));
        assert_eq!(c.mfa.touch_timeout, Duration::from_secs(20));
        let v = c
            .mfa
            .validation
            .as_ref()
            .map(|v| (v.client_id.as_str(), v.url.as_str()));
        assert_eq!(v, Some(("42", "http://127.0.0.1:8080/wsapi/2.0/verify")));
        Ok(())
    }

    #[test]
    fn audit_section_resolves_paths_against_the_config_dir() -> Result<()> {
        let c = parse(&format!(
            "{GOOD}\n[audit]\nkey_file = \"audit.key\"\nmirror_jsonl = \"/var/log/charon/audit.jsonl\"\n"
        ))?;
        assert_eq!(
            c.audit.key,
            AuditKeySource::File(PathBuf::from("/etc/charon/audit.key"))
        );
        assert_eq!(
            c.audit.mirror_jsonl,
            Some(PathBuf::from("/var/log/charon/audit.jsonl"))
        );
        Ok(())
    }

    #[test]
    fn audit_key_defaults_to_the_environment_and_no_mirror() -> Result<()> {
        let c = parse(GOOD)?;
        assert_eq!(c.audit.key, AuditKeySource::Env);
        assert_eq!(c.audit.mirror_jsonl, None);
        Ok(())
    }

    #[test]
    fn mfa_errors_name_line_and_key() {
        let e = err(&STAGING.replace("step_up_window_secs = 60", "step_up_window_secs = 0"));
        assert!(
            e.contains("config.toml:8: key `mfa.step_up_window_secs`"),
            "{e}"
        );
        let e = err(&STAGING.replace("http://127", "https://127"));
        assert!(e.contains(":10: key `mfa.validation_url`"), "{e}");
        assert!(e.contains("https is not supported"), "{e}");
        let e = err(&STAGING.replace("\"42\"", "\"abc\""));
        assert!(e.contains(":11: key `mfa.validation_client_id`"), "{e}");
        let e = err(&STAGING.replace("validation_client_id = \"42\"\n", ""));
        assert!(e.contains(":10: key `mfa.validation_url`"), "{e}");
        assert!(e.contains("missing: mfa.validation_client_id"), "{e}");
        let e = err(&STAGING.replace("allow_software_keys = true", "allow_software_key = true"));
        assert!(e.contains(":7:") && e.contains("allow_software_key"), "{e}");
        let e = err(&STAGING.replace("true", "\"yes\""));
        assert!(e.contains(":7:"), "{e}");
    }

    #[test]
    fn production_never_allows_software_keys() {
        let e = err(&STAGING.replace("\"staging\"", "\"production\""));
        assert!(e.contains(":7: key `mfa.allow_software_keys`"), "{e}");
        let ok = STAGING
            .replace("\"staging\"", "\"production\"")
            .replace("allow_software_keys = true", "allow_software_keys = false");
        assert!(parse(&ok).is_ok());
        assert!(
            Config::demo(
                DbUrl("postgres://h/p".into()),
                DbUrl("postgres://h/c".into())
            )
            .mfa
            .allow_software_keys
        );
    }

    #[test]
    fn audit_section_errors_name_line_and_key() {
        let e = err(&format!("{GOOD}\n[audit]\nkey_file = \"\"\n"));
        assert!(e.contains(":11: key `audit.key_file`"), "{e}");
        let e = err(&format!("{GOOD}\n[audit]\nkey = \"00\"\n"));
        assert!(e.contains(":11") && e.contains("key"), "{e}");
        let e = err(&format!("{GOOD}\n[audit]\nmirror_jsonl = 3\n"));
        assert!(e.contains(":11"), "{e}");
    }

    #[test]
    fn missing_key_file_is_named_when_loading() {
        let c = AuditConfig {
            key: AuditKeySource::File(PathBuf::from("/nonexistent/charon-audit.key")),
            mirror_jsonl: None,
        };
        let e = c.load_key().unwrap_err().to_string();
        assert!(e.contains("/nonexistent/charon-audit.key"), "{e}");
    }

    const SOURCES: &str = r#"
[restore]
server_url = "postgres://charon@restore/postgres"
rpo_minutes = 30
jobs = 4
object_store_url = "file:///srv/receipts"

[backups.local]
kind = "dir"
path = "dumps"

[backups.offsite]
kind = "ssh"
host = "backup.internal"
user = "charon"
identity_file = "/etc/charon/id"
known_hosts = "/etc/charon/known_hosts"
path = "/srv/b"

[backups.wal]
kind = "pgbackrest"
stanza = "pluto"
"#;

    #[test]
    fn backup_sources_resolve_by_name() -> Result<()> {
        let c = parse(&format!("{GOOD}{SOURCES}"))?;
        let r = &c.restore;
        assert_eq!(r.rpo, Duration::from_secs(1800));
        assert_eq!(r.rto, Duration::from_secs(4 * 3600));
        assert_eq!(r.jobs, 4);
        let names: Vec<(&str, &str)> = r.sources.iter().map(|s| (s.name(), s.kind())).collect();
        assert_eq!(
            names,
            [("local", "dir"), ("offsite", "ssh"), ("wal", "pgbackrest")]
        );
        match r.source("local")? {
            crate::core::restore::Source::Dir(d) => {
                assert_eq!(d.path, PathBuf::from("/etc/charon/dumps"))
            }
            other => panic!("{other:?}"),
        }
        match r.source("offsite")? {
            crate::core::restore::Source::Ssh(s) => assert_eq!(s.port, 22),
            other => panic!("{other:?}"),
        }
        assert!(
            r.source("nope")
                .unwrap_err()
                .to_string()
                .contains("local, offsite, wal")
        );
        Ok(())
    }

    #[test]
    fn backup_source_errors_name_line_and_key() {
        let text = format!("{GOOD}{SOURCES}");
        let e = err(&text.replace("kind = \"dir\"", "kind = \"tape\""));
        assert!(
            e.contains(":17: key `backups.local.kind`") && e.contains("tape"),
            "{e}"
        );
        let e = err(&text.replace("known_hosts = \"/etc/charon/known_hosts\"\n", ""));
        assert!(e.contains("backups.offsite.known_hosts"), "{e}");
        let e = err(&text.replace("stanza = \"pluto\"", "stanza = \"pluto\"\nhost = \"x\""));
        assert!(
            e.contains("key `backups.wal.host`: not a key of a `pgbackrest` source"),
            "{e}"
        );
        let e = err(&text.replace("jobs = 4", "jobs = 0"));
        assert!(e.contains(":13: key `restore.jobs`"), "{e}");
        let e = err(&text.replace("file:///srv/receipts", "ftp://x"));
        assert!(e.contains("restore.object_store_url"), "{e}");
    }

    #[test]
    fn explicit_path_wins_over_environment() -> Result<()> {
        let p = locate(Some(Path::new("/a.toml")), Some(PathBuf::from("/b.toml")))?;
        assert_eq!(p, PathBuf::from("/a.toml"));
        let p = locate(None, Some(PathBuf::from("/b.toml")))?;
        assert_eq!(p, PathBuf::from("/b.toml"));
        Ok(())
    }
}
