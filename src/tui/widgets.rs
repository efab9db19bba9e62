//! Small pieces shared by screens: safe text, list selection, dates, layout.

use std::borrow::Cow;
use std::cell::Cell;

use chrono::{DateTime, Utc};
use ratatui::layout::Rect;

use crate::core::sanitize::sanitize;
use crate::tui::keymap::KeyAction;

/// Text from the database made safe to draw. Every database string goes
/// through here (or [`crate::core::sanitize::sanitize`]) before a widget
/// sees it.
pub fn safe(s: &str) -> Cow<'_, str> {
    sanitize(s)
}

/// An owned safe string, for widgets that want `'static` text.
pub fn safe_owned(s: &str) -> String {
    sanitize(s).into_owned()
}

pub fn date(d: &DateTime<Utc>) -> String {
    d.format("%Y-%m-%d").to_string()
}

pub fn opt_date(d: Option<&DateTime<Utc>>) -> String {
    d.map(date).unwrap_or_else(|| "—".to_string())
}

/// A selection in a list of `len` items, with the scroll offset the last
/// render used. The viewport height is remembered from rendering (a `Cell`,
/// the only state a render touches) so Ctrl-d/u move by half a page.
#[derive(Debug, Default, Clone)]
pub struct ListNav {
    pub selected: usize,
    offset: Cell<usize>,
    viewport: Cell<usize>,
}

impl ListNav {
    /// Applies a movement. Returns true when the key was a movement.
    pub fn apply(&mut self, action: KeyAction, len: usize) -> bool {
        let last = len.saturating_sub(1);
        let half = (self.viewport.get() / 2).max(1);
        self.selected = match action {
            KeyAction::Up => self.selected.saturating_sub(1),
            KeyAction::Down => (self.selected + 1).min(last),
            KeyAction::Top => 0,
            KeyAction::Bottom => last,
            KeyAction::HalfPageDown => (self.selected + half).min(last),
            KeyAction::HalfPageUp => self.selected.saturating_sub(half),
            _ => return false,
        };
        true
    }

    /// Keeps the selection inside a list that changed length.
    pub fn clamp(&mut self, len: usize) {
        self.selected = self.selected.min(len.saturating_sub(1));
    }

    /// The selection, if the list is not empty.
    pub fn get(&self, len: usize) -> Option<usize> {
        (len > 0).then(|| self.selected.min(len - 1))
    }

    /// The first row to draw so the selection is visible in `height` rows;
    /// remembers the height for half-page moves.
    pub fn offset_for(&self, height: usize) -> usize {
        self.viewport.set(height);
        let mut offset = self.offset.get();
        if height == 0 {
            return offset;
        }
        if self.selected < offset {
            offset = self.selected;
        } else if self.selected >= offset + height {
            offset = self.selected + 1 - height;
        }
        self.offset.set(offset);
        offset
    }
}

/// A rectangle of at most `w` x `h` centred in `area` (clipped to it).
pub fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_stay_in_bounds() {
        let mut nav = ListNav::default();
        nav.apply(KeyAction::Up, 5);
        assert_eq!(nav.selected, 0);
        nav.apply(KeyAction::Bottom, 5);
        assert_eq!(nav.selected, 4);
        nav.apply(KeyAction::Down, 5);
        assert_eq!(nav.selected, 4);
        nav.offset_for(4);
        nav.apply(KeyAction::HalfPageUp, 5);
        assert_eq!(nav.selected, 2);
        nav.apply(KeyAction::Top, 5);
        nav.apply(KeyAction::HalfPageDown, 5);
        assert_eq!(nav.selected, 2);
        nav.apply(KeyAction::Down, 0);
        assert_eq!(nav.selected, 0);
        assert_eq!(nav.get(0), None);
    }

    #[test]
    fn offset_follows_selection() {
        let mut nav = ListNav::default();
        nav.apply(KeyAction::Bottom, 20);
        assert_eq!(nav.offset_for(5), 15);
        nav.apply(KeyAction::Top, 20);
        assert_eq!(nav.offset_for(5), 0);
    }

    #[test]
    fn centered_clips() {
        let r = centered(Rect::new(0, 0, 1, 1), 40, 10);
        assert_eq!(r, Rect::new(0, 0, 1, 1));
    }
}
