//! The `:` command palette: `:tenant <query>`, `:audit`, `:erasure`, `:theme <name>`, `:help`,
//! `:quit` (`:q`), with Tab completion of command names and arguments.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};
use tui_input::Input;

use crate::tui::keymap::{self, Context, Key, KeyAction, resolve};
use crate::tui::screen::{Command, KeymapSection, Msg, Screen};
use crate::tui::screens::search::input_key;
use crate::tui::theme::{Meaning, Theme};
use crate::tui::widgets::safe;

/// A palette command: name, whether it takes an argument, description.
pub struct PaletteCommand {
    pub name: &'static str,
    pub arg: Option<&'static str>,
    pub desc: &'static str,
}

pub const COMMANDS: &[PaletteCommand] = &[
    PaletteCommand {
        name: "tenant",
        arg: Some("<query>"),
        desc: "search tenants for a name, id, e-mail or phone",
    },
    PaletteCommand {
        name: "audit",
        arg: None,
        desc: "the audit log (roles auditor and admin)",
    },
    PaletteCommand {
        name: "erasure",
        arg: None,
        desc: "data-subject requests: erasure and access (compliance)",
    },
    PaletteCommand {
        name: "backups",
        arg: None,
        desc: "backups and restore tests (role sre)",
    },
    PaletteCommand {
        name: "theme",
        arg: Some("<name>"),
        desc: "switch the colour theme",
    },
    PaletteCommand {
        name: "help",
        arg: None,
        desc: "show the keys of this screen",
    },
    PaletteCommand {
        name: "quit",
        arg: None,
        desc: "quit charon (also :q)",
    },
];

/// The longest common prefix of some strings.
fn common_prefix(items: &[String]) -> String {
    let Some(first) = items.first() else {
        return String::new();
    };
    let mut end = first.len();
    for s in &items[1..] {
        end = first
            .char_indices()
            .zip(s.chars())
            .take_while(|((_, a), b)| a == b)
            .map(|((i, a), _)| i + a.len_utf8())
            .last()
            .unwrap_or(0)
            .min(end);
    }
    first[..end].to_string()
}

/// Completes a palette line (without the leading `:`). Returns the new
/// line and the candidates that matched (for display).
pub fn complete(line: &str, themes: &[String]) -> (String, Vec<String>) {
    let line = line.trim_start();
    match line.split_once(' ') {
        None => {
            let cands: Vec<String> = COMMANDS
                .iter()
                .filter(|c| c.name.starts_with(line))
                .map(|c| c.name.to_string())
                .collect();
            match cands.as_slice() {
                [] => (line.to_string(), cands),
                [one] => {
                    let takes_arg = COMMANDS.iter().any(|c| c.name == one && c.arg.is_some());
                    let completed = if takes_arg {
                        format!("{one} ")
                    } else {
                        one.clone()
                    };
                    (completed, cands)
                }
                _ => (common_prefix(&cands), cands),
            }
        }
        Some((cmd, arg)) => {
            let arg = arg.trim_start();
            if cmd != "theme" {
                return (line.to_string(), vec![]);
            }
            let cands: Vec<String> = themes
                .iter()
                .filter(|t| t.starts_with(arg))
                .cloned()
                .collect();
            let completed = match cands.as_slice() {
                [] => arg.to_string(),
                [one] => one.clone(),
                _ => common_prefix(&cands),
            };
            (format!("{cmd} {completed}"), cands)
        }
    }
}

/// What a palette line asks for.
pub fn parse(line: &str) -> Vec<Command> {
    let line = line.trim().trim_start_matches(':').trim();
    let (cmd, arg) = match line.split_once(' ') {
        Some((c, a)) => (c, a.trim()),
        None => (line, ""),
    };
    match (cmd, arg) {
        ("", _) => vec![Command::Pop],
        ("tenant" | "t", q) => vec![Command::Pop, Command::SearchFor(q.to_string())],
        ("theme", "") => vec![
            Command::Pop,
            Command::Error("usage: :theme <name> (Tab completes the name)".into()),
        ],
        ("theme", name) => vec![Command::Pop, Command::SetTheme(name.to_string())],
        ("help", _) => vec![Command::Pop, Command::Help],
        ("audit", _) => vec![Command::Pop, Command::OpenAudit],
        ("erasure" | "erase", _) => vec![Command::Pop, Command::OpenErasure],
        ("backups", _) => vec![Command::Pop, Command::OpenBackups],
        ("quit" | "q" | "q!" | "quit!", _) => vec![Command::Quit],
        (other, _) => vec![
            Command::Pop,
            Command::Error(format!(
                "unknown command :{} — try :tenant, :audit, :erasure, :backups, :theme, :help or :quit",
                safe(other)
            )),
        ],
    }
}

pub struct PaletteScreen {
    input: Input,
    themes: Vec<String>,
    candidates: Vec<String>,
}

impl PaletteScreen {
    /// A palette that completes theme names from `themes`.
    pub fn new(themes: Vec<String>) -> PaletteScreen {
        PaletteScreen {
            input: Input::default(),
            themes,
            candidates: Vec::new(),
        }
    }

    pub fn line(&self) -> &str {
        self.input.value()
    }

    pub fn candidates(&self) -> &[String] {
        &self.candidates
    }
}

impl Screen for PaletteScreen {
    fn name(&self) -> &'static str {
        "palette"
    }

    fn update(&mut self, msg: &Msg) -> Vec<Command> {
        let Msg::Key(key) = msg else {
            return vec![];
        };
        match resolve(Context::Palette, *key) {
            Some(KeyAction::Back) => vec![Command::Pop],
            Some(KeyAction::Open) => parse(self.input.value()),
            Some(KeyAction::Complete) => {
                let (line, cands) = complete(self.input.value(), &self.themes);
                self.input = Input::new(line);
                self.candidates = cands;
                vec![]
            }
            _ => {
                let key: Key = *key;
                // Backspace on an empty line closes the palette, as in vim.
                if key.code == crossterm::event::KeyCode::Backspace && self.input.value().is_empty()
                {
                    return vec![Command::Pop];
                }
                if input_key(&mut self.input, key) {
                    self.candidates.clear();
                }
                vec![]
            }
        }
    }

    fn render(&self, frame: &mut Frame, area: Rect, theme: &Theme) {
        if area.height == 0 || area.width == 0 {
            return;
        }
        let h = 3.min(area.height);
        let rect = Rect {
            x: area.x,
            y: area.y + area.height - h,
            width: area.width,
            height: h,
        };
        frame.render_widget(Clear, rect);
        let hint = if self.candidates.len() > 1 {
            self.candidates.join("  ")
        } else {
            let name = self.input.value().split(' ').next().unwrap_or_default();
            COMMANDS
                .iter()
                .find(|c| c.name == name)
                .map(|c| format!("{} {} — {}", c.name, c.arg.unwrap_or(""), c.desc))
                .unwrap_or_else(|| {
                    "tenant  audit  erasure  backups  theme  help  quit   (Tab completes)"
                        .to_string()
                })
        };
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(theme.style(Meaning::BorderFocus))
            .style(theme.style(Meaning::Overlay))
            .title(Span::styled(" Command ", theme.style(Meaning::Title)))
            .title_bottom(Line::styled(
                format!(" {} ", safe(&hint)),
                theme.style(Meaning::Muted),
            ));
        let inner = block.inner(rect);
        let width = inner.width.saturating_sub(1) as usize;
        let scroll = self.input.visual_scroll(width);
        frame.render_widget(
            Paragraph::new(Line::from(vec![
                Span::styled(":", theme.style(Meaning::Prompt)),
                Span::styled(
                    safe(self.input.value()).into_owned(),
                    theme.style(Meaning::Input),
                ),
            ]))
            .scroll((0, scroll as u16))
            .block(block),
            rect,
        );
        if inner.width > 1 && inner.height > 0 {
            let x = (self.input.visual_cursor().saturating_sub(scroll) as u16)
                .min(inner.width.saturating_sub(2));
            frame.set_cursor_position((inner.x + 1 + x, inner.y));
        }
    }

    fn keymap(&self) -> Vec<KeymapSection> {
        vec![(Context::Palette, keymap::PALETTE)]
    }

    fn context(&self) -> Context {
        Context::Palette
    }

    fn is_overlay(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn themes() -> Vec<String> {
        vec!["dark".into(), "high-contrast".into(), "light".into()]
    }

    #[test]
    fn completes_command_names() {
        assert_eq!(complete("th", &themes()).0, "theme ");
        assert_eq!(complete("te", &themes()).0, "tenant ");
        assert_eq!(complete("au", &themes()).0, "audit");
        assert_eq!(complete("er", &themes()).0, "erasure");
        assert_eq!(complete("qu", &themes()).0, "quit");
        let (line, cands) = complete("t", &themes());
        assert_eq!(line, "t");
        assert_eq!(cands, vec!["tenant", "theme"]);
        assert_eq!(complete("zz", &themes()).0, "zz");
    }

    #[test]
    fn completes_theme_names() {
        assert_eq!(complete("theme l", &themes()).0, "theme light");
        assert_eq!(complete("theme h", &themes()).0, "theme high-contrast");
        let (line, cands) = complete("theme ", &themes());
        assert_eq!(line, "theme ");
        assert_eq!(cands.len(), 3);
        assert_eq!(complete("tenant ac", &themes()).0, "tenant ac");
    }

    #[test]
    fn parses_commands() {
        assert!(matches!(
            parse("tenant acme co").as_slice(),
            [Command::Pop, Command::SearchFor(q)] if q == "acme co"
        ));
        assert!(matches!(
            parse(":theme light").as_slice(),
            [Command::Pop, Command::SetTheme(t)] if t == "light"
        ));
        assert!(matches!(parse("q").as_slice(), [Command::Quit]));
        assert!(matches!(parse("quit").as_slice(), [Command::Quit]));
        assert!(matches!(
            parse("help").as_slice(),
            [Command::Pop, Command::Help]
        ));
        assert!(matches!(
            parse("frobnicate").as_slice(),
            [Command::Pop, Command::Error(m)] if m.contains("unknown command :frobnicate")
        ));
    }

    #[test]
    fn common_prefix_of_words() {
        assert_eq!(common_prefix(&["tenant".into(), "theme".into()]), "t");
        assert_eq!(common_prefix(&["abc".into(), "abd".into()]), "ab");
        assert_eq!(common_prefix(&[]), "");
    }
}
