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
        let (authority, path) = authority_path
            .split_once('/')
            .unwrap_or((authority_path, ""));
        let host = authority
            .rsplit_once('@')
            .map(|(_, h)| h)
            .unwrap_or(authority);
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
        // postgres://user:secret@host/db → postgres://user:***@host/db
        match self.0.split_once("://") {
            Some((scheme, rest)) => match rest.split_once('@') {
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
    audit: RawAudit,
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
    pub audit: AuditConfig,
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
            audit: AuditConfig {
                key: AuditKeySource::Ephemeral,
                mirror_jsonl: None,
            },
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
        Ok(Config {
            source: source.to_path_buf(),
            environment,
            pluto_url,
            pluto_read_url,
            console_url,
            theme,
            themes_dir: raw.themes_dir,
            timeouts,
            audit,
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

    #[test]
    fn explicit_path_wins_over_environment() -> Result<()> {
        let p = locate(Some(Path::new("/a.toml")), Some(PathBuf::from("/b.toml")))?;
        assert_eq!(p, PathBuf::from("/a.toml"));
        let p = locate(None, Some(PathBuf::from("/b.toml")))?;
        assert_eq!(p, PathBuf::from("/b.toml"));
        Ok(())
    }
}
