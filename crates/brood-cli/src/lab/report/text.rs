//! Text helpers of the terminal reports: the width to fill, the width a
//! string takes on screen (CJK characters take two columns), wrapping at
//! spaces without breaking a word, and the two languages' fixed strings.

use std::io::IsTerminal;

use crate::lab::claims::Lang;

/// The width used when stdout is not a terminal and `COLUMNS` is not set.
pub const DEFAULT_WIDTH: usize = 120;
/// Narrower than this, nothing lays out well; the report uses this instead.
pub const MIN_WIDTH: usize = 60;

/// The width to fill: `COLUMNS` if set, else the terminal's, else
/// [`DEFAULT_WIDTH`].
pub fn terminal_width() -> usize {
    let from_env = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|c| *c > 0);
    let from_tty = || {
        let out = std::io::stdout();
        if !out.is_terminal() {
            return None;
        }
        // A safe wrapper of the TIOCGWINSZ ioctl; 0 columns means unknown.
        rustix::termios::tcgetwinsize(&out)
            .ok()
            .map(|w| usize::from(w.ws_col))
            .filter(|c| *c > 0)
    };
    from_env
        .or_else(from_tty)
        .unwrap_or(DEFAULT_WIDTH)
        .max(MIN_WIDTH)
}

/// Columns `c` takes on a terminal: two for the wide (CJK) ranges.
fn char_width(c: char) -> usize {
    let u = c as u32;
    let wide = matches!(u,
        0x1100..=0x115F | 0x2E80..=0x303E | 0x3041..=0x33FF | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF | 0xA000..=0xA4CF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F | 0xFF00..=0xFF60 | 0xFFE0..=0xFFE6);
    if wide { 2 } else { 1 }
}

/// `s` without its colour escape sequences (`ESC [ … m`).
pub fn plain(s: &str) -> String {
    let mut out = String::new();
    let mut esc = false;
    for c in s.chars() {
        match (esc, c) {
            (false, '\x1b') => esc = true,
            (true, 'm') => esc = false,
            (true, _) => {}
            (false, c) => out.push(c),
        }
    }
    out
}

/// Columns `s` takes on a terminal (escape sequences not counted).
pub fn width(s: &str) -> usize {
    plain(s).chars().map(char_width).sum()
}

/// `s` padded with spaces to `w` columns.
pub fn pad(s: &str, w: usize) -> String {
    format!("{s}{}", " ".repeat(w.saturating_sub(width(s))))
}

/// Splits `text` into lines of at most `max` columns, at spaces (and, for
/// text without spaces such as Chinese, between characters); a word longer
/// than a line gets a line of its own, never cut.
pub fn wrap(text: &str, max: usize) -> Vec<String> {
    let max = max.max(1);
    let mut lines = vec![String::new()];
    for word in split_words(text) {
        let last = lines.last_mut().expect("one line at least");
        let len = width(last);
        if len > 0 && len + width(&word) > max {
            lines.push(word.trim_start().to_string());
        } else if len == 0 {
            last.push_str(word.trim_start());
        } else {
            last.push_str(&word);
        }
    }
    lines
}

/// Words with their leading space; each CJK character is a word of its own
/// (with no space before it), so Chinese text wraps between characters.
fn split_words(text: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        if c == ' ' {
            if !cur.trim().is_empty() {
                words.push(std::mem::take(&mut cur));
            }
            cur.push(' ');
        } else if char_width(c) == 2 {
            if !cur.trim().is_empty() {
                words.push(std::mem::take(&mut cur));
            }
            cur.push(c);
            words.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    if !cur.trim().is_empty() {
        words.push(cur);
    }
    words
}

/// The text in `lang`.
pub fn tr(lang: Lang, en: &'static str, zh: &'static str) -> &'static str {
    match lang {
        Lang::En => en,
        Lang::Zh => zh,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_at_spaces_and_between_cjk_characters() {
        assert_eq!(wrap("aa bb cc", 5), ["aa bb", "cc"]);
        assert_eq!(wrap("averylongword x", 4), ["averylongword", "x"]);
        assert_eq!(width("僵尸a"), 5);
        for l in wrap("子进程结束而主进程从未 wait/join，子进程成为僵尸", 10) {
            assert!(width(&l) <= 10, "{l}");
        }
        assert_eq!(width("\x1b[31m✗\x1b[0m"), 1);
    }
}
