//! Themes as data: `themes/*.toml` files with a `[palette]` of named colours
//! and `[styles]` keyed by meaning. Widgets ask the theme for a style by
//! meaning ([`Meaning`]) and never pick a colour themselves.
//!
//! ```toml
//! inherits = "dark"            # optional: start from another theme
//! [palette]
//! red = "#e06c75"              # hex `#rrggbb`, a ratatui colour name or an index
//! [styles]
//! danger = { fg = "red", modifiers = ["bold"] }
//! ```
//!
//! A style names palette entries (or colours directly). A meaning a theme does
//! not set falls back along [`Meaning::fallback`] and finally to the default
//! style. Unknown keys, bad colours and bad modifiers are errors naming the
//! theme file, the key and the value; `inherits` cycles are errors.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;

/// What a piece of the screen means; the theme maps each to a style.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Meaning {
    Text,
    Muted,
    Title,
    Border,
    BorderFocus,
    Header,
    Selection,
    Masked,
    Danger,
    Warning,
    Ok,
    Input,
    Prompt,
    Key,
    StatusBar,
    StatusEnv,
    StatusEnvProduction,
    StatusDemo,
    MessageError,
    MessageInfo,
    Overlay,
}

impl Meaning {
    pub const ALL: [Meaning; 21] = [
        Meaning::Text,
        Meaning::Muted,
        Meaning::Title,
        Meaning::Border,
        Meaning::BorderFocus,
        Meaning::Header,
        Meaning::Selection,
        Meaning::Masked,
        Meaning::Danger,
        Meaning::Warning,
        Meaning::Ok,
        Meaning::Input,
        Meaning::Prompt,
        Meaning::Key,
        Meaning::StatusBar,
        Meaning::StatusEnv,
        Meaning::StatusEnvProduction,
        Meaning::StatusDemo,
        Meaning::MessageError,
        Meaning::MessageInfo,
        Meaning::Overlay,
    ];

    /// The key of this meaning in a theme file's `[styles]` table.
    pub fn key(self) -> &'static str {
        match self {
            Meaning::Text => "text",
            Meaning::Muted => "muted",
            Meaning::Title => "title",
            Meaning::Border => "border",
            Meaning::BorderFocus => "border_focus",
            Meaning::Header => "header",
            Meaning::Selection => "selection",
            Meaning::Masked => "masked",
            Meaning::Danger => "danger",
            Meaning::Warning => "warning",
            Meaning::Ok => "ok",
            Meaning::Input => "input",
            Meaning::Prompt => "prompt",
            Meaning::Key => "key",
            Meaning::StatusBar => "status_bar",
            Meaning::StatusEnv => "status_env",
            Meaning::StatusEnvProduction => "status_env_production",
            Meaning::StatusDemo => "status_demo",
            Meaning::MessageError => "message_error",
            Meaning::MessageInfo => "message_info",
            Meaning::Overlay => "overlay",
        }
    }

    pub fn from_key(key: &str) -> Option<Meaning> {
        Meaning::ALL.into_iter().find(|m| m.key() == key)
    }

    /// The meaning used when a theme does not set this one.
    pub fn fallback(self) -> Option<Meaning> {
        match self {
            Meaning::Text => None,
            Meaning::Muted
            | Meaning::Title
            | Meaning::Border
            | Meaning::Danger
            | Meaning::Warning
            | Meaning::Ok
            | Meaning::Input
            | Meaning::Selection
            | Meaning::StatusBar
            | Meaning::Overlay => Some(Meaning::Text),
            Meaning::BorderFocus | Meaning::Header | Meaning::Key | Meaning::Prompt => {
                Some(Meaning::Title)
            }
            Meaning::Masked => Some(Meaning::Muted),
            Meaning::StatusEnv => Some(Meaning::StatusBar),
            Meaning::StatusEnvProduction | Meaning::StatusDemo | Meaning::MessageError => {
                Some(Meaning::Danger)
            }
            Meaning::MessageInfo => Some(Meaning::Ok),
        }
    }
}

/// A loaded theme: one resolved style per meaning.
#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    pub name: String,
    styles: BTreeMap<Meaning, Style>,
}

impl Theme {
    /// The style for a meaning, following fallbacks.
    pub fn style(&self, meaning: Meaning) -> Style {
        let mut m = Some(meaning);
        while let Some(cur) = m {
            if let Some(s) = self.styles.get(&cur) {
                return *s;
            }
            m = cur.fallback();
        }
        Style::default()
    }

    /// The built-in dark theme. It is bundled and tested, so it always loads;
    /// an empty theme (terminal defaults) is the last resort.
    pub fn fallback() -> Theme {
        ThemeSet::bundled_only()
            .load("dark")
            .map(|l| l.theme)
            .unwrap_or_else(|_| Theme {
                name: "default".into(),
                styles: BTreeMap::new(),
            })
    }
}

/// Why a theme could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThemeError {
    NotFound {
        name: String,
        available: Vec<String>,
    },
    Io {
        file: String,
        detail: String,
    },
    Parse {
        file: String,
        detail: String,
    },
    BadColour {
        file: String,
        key: String,
        value: String,
    },
    BadModifier {
        file: String,
        key: String,
        value: String,
    },
    UnknownStyle {
        file: String,
        key: String,
    },
    Cycle {
        chain: Vec<String>,
    },
}

impl fmt::Display for ThemeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThemeError::NotFound { name, available } => write!(
                f,
                "no theme named {name:?} (available: {})",
                available.join(", ")
            ),
            ThemeError::Io { file, detail } => write!(f, "{file}: {detail}"),
            ThemeError::Parse { file, detail } => write!(f, "{file}: {detail}"),
            ThemeError::BadColour { file, key, value } => {
                write!(
                    f,
                    "{file}: {key}: bad colour {value:?} (use #rrggbb, a colour name or a palette entry)"
                )
            }
            ThemeError::BadModifier { file, key, value } => {
                write!(f, "{file}: {key}: unknown modifier {value:?}")
            }
            ThemeError::UnknownStyle { file, key } => write!(
                f,
                "{file}: styles.{key}: unknown style (known: {})",
                Meaning::ALL.map(Meaning::key).join(", ")
            ),
            ThemeError::Cycle { chain } => {
                write!(f, "theme inherits in a cycle: {}", chain.join(" -> "))
            }
        }
    }
}

impl std::error::Error for ThemeError {}

/// A theme with the warnings its loading produced (e.g. unused palette
/// entries). Bundled themes load with none.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub theme: Theme,
    pub warnings: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTheme {
    inherits: Option<String>,
    #[serde(default)]
    palette: BTreeMap<String, String>,
    #[serde(default)]
    styles: BTreeMap<String, RawStyle>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStyle {
    fg: Option<String>,
    bg: Option<String>,
    #[serde(default)]
    modifiers: Vec<String>,
}

/// The themes shipped inside the binary.
pub const BUNDLED: [(&str, &str); 3] = [
    ("dark", include_str!("../../themes/dark.toml")),
    ("light", include_str!("../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.toml"),
    ),
];

/// Where themes come from: a directory (if given), then the bundled ones.
#[derive(Debug, Clone, Default)]
pub struct ThemeSet {
    dir: Option<PathBuf>,
    /// Themes given as text (name, TOML), before the directory: for the fuzz
    /// target and tests, which load themes without files.
    inline: Vec<(String, String)>,
}

impl ThemeSet {
    pub fn new(dir: Option<PathBuf>) -> ThemeSet {
        ThemeSet {
            dir,
            inline: Vec::new(),
        }
    }

    pub fn bundled_only() -> ThemeSet {
        ThemeSet::default()
    }

    /// A set of themes given as (name, TOML text), then the bundled ones.
    pub fn in_memory(themes: Vec<(String, String)>) -> ThemeSet {
        ThemeSet {
            dir: None,
            inline: themes,
        }
    }

    /// Every theme name available, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = BUNDLED.iter().map(|(n, _)| n.to_string()).collect();
        if let Some(dir) = &self.dir
            && let Ok(entries) = std::fs::read_dir(dir)
        {
            for e in entries.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "toml")
                    && let Some(stem) = p.file_stem().and_then(|s| s.to_str())
                {
                    names.push(stem.to_string());
                }
            }
        }
        names.sort();
        names.dedup();
        names
    }

    /// Loads a theme by name, following `inherits`.
    pub fn load(&self, name: &str) -> Result<Loaded, ThemeError> {
        let mut chain = Vec::new();
        let (palette, styles, file, mut warnings) = self.load_raw(name, &mut chain)?;
        let mut resolved = BTreeMap::new();
        let mut used = std::collections::BTreeSet::new();
        for (key, (raw, from)) in &styles {
            let Some(meaning) = Meaning::from_key(key) else {
                return Err(ThemeError::UnknownStyle {
                    file: from.clone(),
                    key: key.clone(),
                });
            };
            let style = resolve_style(raw, key, from, &palette, &mut used)?;
            resolved.insert(meaning, style);
        }
        for (entry, (_, from)) in &palette {
            if !used.contains(entry) && *from == file {
                warnings.push(format!("{from}: palette.{entry} is never used"));
            }
        }
        Ok(Loaded {
            theme: Theme {
                name: name.to_string(),
                styles: resolved,
            },
            warnings,
        })
    }

    fn source(&self, name: &str) -> Result<(String, String), ThemeError> {
        if let Some((n, text)) = self.inline.iter().find(|(n, _)| n == name) {
            return Ok((format!("{n}.toml"), text.clone()));
        }
        // A name is a file name in the themes directory, never a path: an
        // `inherits = "../../elsewhere"` must not read outside it.
        let plain = !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\', '\0']);
        if let Some(dir) = self.dir.as_ref().filter(|_| plain) {
            let path = dir.join(format!("{name}.toml"));
            if path.is_file() {
                let text = std::fs::read_to_string(&path).map_err(|e| ThemeError::Io {
                    file: path.display().to_string(),
                    detail: e.to_string(),
                })?;
                return Ok((path.display().to_string(), text));
            }
        }
        BUNDLED
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(n, src)| (format!("themes/{n}.toml (bundled)"), src.to_string()))
            .ok_or_else(|| ThemeError::NotFound {
                name: name.to_string(),
                available: self.names(),
            })
    }

    /// Palette and styles with the file each entry came from; child entries
    /// override the parent's.
    #[allow(clippy::type_complexity)]
    fn load_raw(
        &self,
        name: &str,
        chain: &mut Vec<String>,
    ) -> Result<
        (
            BTreeMap<String, (String, String)>,
            BTreeMap<String, (RawStyle, String)>,
            String,
            Vec<String>,
        ),
        ThemeError,
    > {
        if chain.iter().any(|n| n == name) {
            chain.push(name.to_string());
            return Err(ThemeError::Cycle {
                chain: chain.clone(),
            });
        }
        chain.push(name.to_string());
        let (file, text) = self.source(name)?;
        let raw: RawTheme = toml::from_str(&text).map_err(|e| ThemeError::Parse {
            file: file.clone(),
            detail: e.to_string().trim_end().to_string(),
        })?;
        let (mut palette, mut styles, mut warnings) = match &raw.inherits {
            Some(parent) => {
                let (p, s, _, w) = self.load_raw(parent, chain)?;
                (p, s, w)
            }
            None => (BTreeMap::new(), BTreeMap::new(), Vec::new()),
        };
        for (k, v) in raw.palette {
            // Check palette colours where they are written.
            if Color::from_str(&v).is_err() {
                return Err(ThemeError::BadColour {
                    file: file.clone(),
                    key: format!("palette.{k}"),
                    value: v,
                });
            }
            palette.insert(k, (v, file.clone()));
        }
        for (k, v) in raw.styles {
            styles.insert(k, (v, file.clone()));
        }
        if raw.inherits.is_none() && styles.is_empty() {
            warnings.push(format!("{file}: sets no styles"));
        }
        Ok((palette, styles, file, warnings))
    }
}

fn resolve_colour(
    value: &str,
    key: &str,
    file: &str,
    palette: &BTreeMap<String, (String, String)>,
    used: &mut std::collections::BTreeSet<String>,
) -> Result<Color, ThemeError> {
    if let Some((v, _)) = palette.get(value) {
        used.insert(value.to_string());
        if let Ok(c) = Color::from_str(v) {
            return Ok(c);
        }
    }
    Color::from_str(value).map_err(|_| ThemeError::BadColour {
        file: file.to_string(),
        key: key.to_string(),
        value: value.to_string(),
    })
}

fn resolve_style(
    raw: &RawStyle,
    key: &str,
    file: &str,
    palette: &BTreeMap<String, (String, String)>,
    used: &mut std::collections::BTreeSet<String>,
) -> Result<Style, ThemeError> {
    let mut style = Style::default();
    if let Some(fg) = &raw.fg {
        style = style.fg(resolve_colour(
            fg,
            &format!("styles.{key}.fg"),
            file,
            palette,
            used,
        )?);
    }
    if let Some(bg) = &raw.bg {
        style = style.bg(resolve_colour(
            bg,
            &format!("styles.{key}.bg"),
            file,
            palette,
            used,
        )?);
    }
    for m in &raw.modifiers {
        let modifier = match m.as_str() {
            "bold" => Modifier::BOLD,
            "dim" => Modifier::DIM,
            "italic" => Modifier::ITALIC,
            "underlined" | "underline" => Modifier::UNDERLINED,
            "reversed" | "reverse" => Modifier::REVERSED,
            "crossed_out" => Modifier::CROSSED_OUT,
            "slow_blink" => Modifier::SLOW_BLINK,
            _ => {
                return Err(ThemeError::BadModifier {
                    file: file.to_string(),
                    key: format!("styles.{key}.modifiers"),
                    value: m.clone(),
                });
            }
        };
        style = style.add_modifier(modifier);
    }
    Ok(style)
}

/// Loads a theme file directly (for checking a file outside any set).
pub fn load_file(path: &Path) -> Result<Loaded, ThemeError> {
    let dir = path.parent().map(Path::to_path_buf);
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_string();
    ThemeSet::new(dir).load(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_themes_load_without_warnings_and_set_every_meaning() {
        let set = ThemeSet::bundled_only();
        for (name, _) in BUNDLED {
            let loaded = set.load(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(loaded.warnings.is_empty(), "{name}: {:?}", loaded.warnings);
            for m in Meaning::ALL {
                assert!(
                    loaded.theme.styles.contains_key(&m),
                    "{name} does not set {}",
                    m.key()
                );
            }
        }
    }

    #[test]
    fn inherits_names_a_theme_never_a_path() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let themes = dir.path().join("themes");
        std::fs::create_dir(&themes).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(
            dir.path().join("outside.toml"),
            "[styles.title]\nfg = \"red\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(themes.join("x.toml"), "inherits = \"../outside\"\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let set = ThemeSet::new(Some(themes));
        assert!(matches!(set.load("x"), Err(ThemeError::NotFound { .. })));
        assert!(matches!(
            set.load("../outside"),
            Err(ThemeError::NotFound { .. })
        ));
    }

    #[test]
    fn fallbacks_end_at_text() {
        for m in Meaning::ALL {
            let mut cur = m;
            let mut steps = 0;
            while let Some(next) = cur.fallback() {
                cur = next;
                steps += 1;
                assert!(steps < 10, "{m:?} falls back in a loop");
            }
            assert_eq!(cur, Meaning::Text);
        }
    }

    #[test]
    fn missing_meanings_fall_back() {
        let theme = Theme {
            name: "t".into(),
            styles: BTreeMap::from([(Meaning::Danger, Style::default().fg(Color::Red))]),
        };
        assert_eq!(
            theme.style(Meaning::StatusEnvProduction).fg,
            Some(Color::Red)
        );
        assert_eq!(theme.style(Meaning::Title), Style::default());
    }
}
