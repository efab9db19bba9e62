//! The `?` overlay: every binding of the current screen, drawn from the same
//! keymap tables that resolve the keys.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use crate::tui::keymap::{self, Binding, Context, KeyAction, resolve};
use crate::tui::screen::{Command, KeymapSection, Msg, Screen};
use crate::tui::theme::{Meaning, Theme};
use crate::tui::widgets::centered;

pub struct HelpScreen {
    /// The screen's sections, then the global keys.
    sections: Vec<(String, &'static [Binding])>,
    scroll: u16,
}

impl HelpScreen {
    /// Help for a screen with these keymap sections.
    pub fn new(sections: Vec<KeymapSection>) -> HelpScreen {
        let mut all: Vec<(String, &'static [Binding])> = sections
            .into_iter()
            .map(|(ctx, table)| (ctx.title().to_string(), table))
            .collect();
        all.push(("Everywhere".to_string(), keymap::ALWAYS));
        all.push(("Every screen, when not typing".to_string(), keymap::GLOBAL));
        HelpScreen {
            sections: all,
            scroll: 0,
        }
    }

    /// The lines of the help, as (keys, description) rows under section
    /// titles. What is drawn is exactly this.
    pub fn lines(&self) -> Vec<(Option<String>, String)> {
        let mut out = Vec::new();
        for (title, table) in &self.sections {
            out.push((None, title.clone()));
            for b in *table {
                out.push((Some(b.keys_label()), b.desc.to_string()));
            }
        }
        out
    }
}

impl Screen for HelpScreen {
    fn name(&self) -> &'static str {
        "help"
    }

    fn update(&mut self, msg: &Msg) -> Vec<Command> {
        let Msg::Key(key) = msg else {
            return vec![];
        };
        match resolve(Context::Help, *key) {
            Some(KeyAction::Back) => vec![Command::Pop],
            Some(KeyAction::Down) => {
                self.scroll = self.scroll.saturating_add(1);
                vec![]
            }
            Some(KeyAction::Up) => {
                self.scroll = self.scroll.saturating_sub(1);
                vec![]
            }
            _ => vec![],
        }
    }

    fn render(&self, frame: &mut Frame, area: Rect, theme: &Theme) {
        let lines = self.lines();
        let key_w = lines
            .iter()
            .filter_map(|(k, _)| k.as_ref().map(|k| k.chars().count()))
            .max()
            .unwrap_or(0);
        let text: Vec<Line> = lines
            .iter()
            .map(|(keys, desc)| match keys {
                None => Line::styled(desc.clone(), theme.style(Meaning::Header)),
                Some(k) => Line::from(vec![
                    Span::styled(format!("  {k:<key_w$}  "), theme.style(Meaning::Key)),
                    Span::styled(desc.clone(), theme.style(Meaning::Text)),
                ]),
            })
            .collect();
        let width = lines
            .iter()
            .map(|(k, d)| k.as_ref().map_or(0, |_| key_w + 4) + d.chars().count())
            .max()
            .unwrap_or(0) as u16
            + 2;
        let rect = centered(area, width.max(30), text.len() as u16 + 2);
        frame.render_widget(Clear, rect);
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(theme.style(Meaning::BorderFocus))
            .style(theme.style(Meaning::Overlay))
            .title(Span::styled(" Keys ", theme.style(Meaning::Title)))
            .title_bottom(Line::styled(" Esc closes ", theme.style(Meaning::Muted)));
        frame.render_widget(
            Paragraph::new(text).block(block).scroll((self.scroll, 0)),
            rect,
        );
    }

    fn keymap(&self) -> Vec<KeymapSection> {
        vec![(Context::Help, keymap::HELP)]
    }

    fn context(&self) -> Context {
        Context::Help
    }

    fn is_overlay(&self) -> bool {
        true
    }
}
