//! Merge tokens: a mailing is rendered once for every subscriber, with a
//! placeholder wherever a subscriber's own value goes (their address, their
//! name, their links, the preheader of their copy); [`merge`] fills them in
//! for each message in one pass over the text (see `digest::personalize`).
//!
//! With topics, readers get different posts of one mailing: each post's
//! part is rendered once, between region marks, and [`select`] keeps the
//! parts one reader's [`Choice`] names.

use std::borrow::Cow;

pub use crate::store::Choice;

/// Merge tokens are a key between these two private-use characters, which
/// nothing from a post or the config can carry (they are removed from it).
pub(crate) const OPEN: char = '\u{E000}';
pub(crate) const CLOSE: char = '\u{E001}';
pub(crate) const EMAIL: &str = "\u{E000}email\u{E001}";
pub(crate) const NAME: &str = "\u{E000}name\u{E001}";
pub(crate) const UNSUBSCRIBE_URL: &str = "\u{E000}unsubscribe_url\u{E001}";
pub(crate) const PREFERENCES_URL: &str = "\u{E000}preferences_url\u{E001}";
pub(crate) const PREHEADER: &str = "\u{E000}preheader\u{E001}";
pub(crate) const SUBJECT: &str = "\u{E000}subject\u{E001}";
/// The keys of the tokens above, in the order [`merge`] takes values.
const KEYS: [&str; 6] = [
    "email",
    "name",
    "unsubscribe_url",
    "preferences_url",
    "preheader",
    "subject",
];

/// A subscriber's values for the merge tokens, in the order of [`KEYS`].
pub type Values<'a> = [&'a str; 6];

/// One subscriber's copy of a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Personal {
    pub subject: String,
    pub html: String,
    pub text: String,
}

/// Replaces each merge token by its value (see [`Values`]) in one pass;
/// anything else between the delimiters is left as it is.
pub fn merge(text: &str, values: Values<'_>) -> String {
    let extra: usize = values.iter().map(|v| v.len()).sum();
    let mut out = String::with_capacity(text.len() + 2 * extra);
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        out.push_str(&rest[..start]);
        let after = &rest[start + OPEN.len_utf8()..];
        let token = after.find(CLOSE).and_then(|end| {
            let key = &after[..end];
            // Case-blind, so `|upper` in a template does not lose the value.
            KEYS.iter()
                .position(|k| k.eq_ignore_ascii_case(key))
                .map(|i| (i, end))
        });
        match token {
            Some((i, end)) => {
                out.push_str(values[i]);
                rest = &after[end + CLOSE.len_utf8()..];
            }
            None => {
                out.push(OPEN);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Text from a post or the config without the merge-token delimiters, so
/// nothing in a post can pose as a subscriber's value.
pub(crate) fn clean(text: &str) -> String {
    text.replace([OPEN, CLOSE], "")
}

/// A part of a mailing that not every reader gets: a post shown whole,
/// a post listed as "Also new", or the whole "Also new" list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Region {
    Post(usize),
    MorePost(usize),
    More,
}

/// Region marks are HTML comments (so an HTML parser leaves them where
/// they are, even between table rows) holding a key between the merge
/// delimiters.
const MARK_OPEN: &str = "<!--\u{E000}";
const MARK_CLOSE: &str = "\u{E001}-->";

impl Region {
    /// The mark a region begins with.
    pub fn begin(self) -> String {
        match self {
            Region::Post(i) => format!("{MARK_OPEN}post {i}{MARK_CLOSE}"),
            Region::MorePost(i) => format!("{MARK_OPEN}more-post {i}{MARK_CLOSE}"),
            Region::More => format!("{MARK_OPEN}more{MARK_CLOSE}"),
        }
    }

    /// The mark a region ends with.
    pub fn end(self) -> String {
        let key = match self {
            Region::Post(_) => "/post",
            Region::MorePost(_) => "/more-post",
            Region::More => "/more",
        };
        format!("{MARK_OPEN}{key}{MARK_CLOSE}")
    }

    fn parse(key: &str) -> Option<Mark> {
        let number = |rest: &str| rest.parse::<usize>().ok();
        Some(match key {
            "/post" | "/more-post" | "/more" => Mark::End,
            "more" => Mark::Begin(Region::More),
            _ => match key.split_once(' ')? {
                ("post", n) => Mark::Begin(Region::Post(number(n)?)),
                ("more-post", n) => Mark::Begin(Region::MorePost(number(n)?)),
                _ => return None,
            },
        })
    }
}

enum Mark {
    Begin(Region),
    End,
}

impl Choice {
    /// Whether this reader's copy has the region.
    fn keeps(&self, region: Region) -> bool {
        let rank = |i| self.posts.iter().position(|&p| p == i);
        match region {
            Region::Post(i) => rank(i).is_some_and(|r| r < self.cards),
            Region::MorePost(i) => rank(i).is_some_and(|r| r >= self.cards),
            Region::More => self.posts.len() > self.cards,
        }
    }
}

/// Where the next region mark (or anything that starts like one) is: a
/// search for its private-use character (memchr), then a look behind.
fn find_mark(text: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(at) = text[from..].find(OPEN) {
        let at = from + at;
        if text[..at].ends_with("<!--") {
            return Some(at - "<!--".len());
        }
        from = at + OPEN.len_utf8();
    }
    None
}

/// `text` with the regions `choice` does not name taken out, and every
/// region mark gone (a mark alone on its line with its line break). Text
/// without marks (a mailing made before topics) is returned as it is.
pub fn select<'t>(text: &'t str, choice: &Choice) -> Cow<'t, str> {
    if !text.contains(MARK_OPEN) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    // Whether each open region is kept; text shows while none is dropped.
    let mut open: Vec<bool> = Vec::new();
    let mut dropped = 0usize;
    let mut line_start = true;
    let mut rest = text;
    while let Some(at) = find_mark(rest) {
        let before = &rest[..at];
        if dropped == 0 {
            out.push_str(before);
        }
        if !before.is_empty() {
            line_start = before.ends_with('\n');
        }
        let after = &rest[at + MARK_OPEN.len()..];
        let mark = after
            .find(MARK_CLOSE)
            .and_then(|end| Region::parse(&after[..end]).map(|mark| (mark, end)));
        let Some((mark, end)) = mark else {
            // Not a mark of ours: text like any other.
            if dropped == 0 {
                out.push_str(MARK_OPEN);
            }
            line_start = false;
            rest = after;
            continue;
        };
        rest = &after[end + MARK_CLOSE.len()..];
        if line_start {
            rest = rest
                .strip_prefix("\r\n")
                .or_else(|| rest.strip_prefix('\n'))
                .unwrap_or(rest);
        }
        match mark {
            Mark::Begin(region) => {
                let keep = choice.keeps(region);
                dropped += usize::from(!keep);
                open.push(keep);
            }
            Mark::End => {
                if open.pop() == Some(false) {
                    dropped -= 1;
                }
            }
        }
    }
    if dropped == 0 {
        out.push_str(rest);
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_tokens_survive_case_filters_and_unknown_ones_stay() {
        let values = ["e", "n", "u", "p", "h", "s"];
        assert_eq!(merge("\u{E000}EMAIL\u{E001}!", values), "e!");
        assert_eq!(
            merge("a\u{E000}other\u{E001}b", values),
            "a\u{E000}other\u{E001}b"
        );
        assert_eq!(merge("a\u{E000}name", values), "a\u{E000}name");
        assert_eq!(merge("\u{E000}\u{E000}name\u{E001}", values), "\u{E000}n");
    }

    #[test]
    fn a_reader_gets_the_posts_of_their_choice_and_no_marks() {
        let card = |i| {
            format!(
                "{}\ncard {i}\n{}\n",
                Region::Post(i).begin(),
                Region::Post(i).end()
            )
        };
        let item = |i| {
            format!(
                "{}\nitem {i}\n{}\n",
                Region::MorePost(i).begin(),
                Region::MorePost(i).end()
            )
        };
        let text = format!(
            "head\n{}{}{}{}\nAlso new\n{}{}{}{}\nfoot\n",
            card(0),
            card(1),
            card(2),
            Region::More.begin(),
            item(0),
            item(1),
            item(2),
            Region::More.end()
        );
        let choice = |posts: &[usize], cards| Choice {
            posts: posts.to_vec(),
            cards,
            ..Default::default()
        };
        assert_eq!(
            select(&text, &choice(&[0, 2], 2)),
            "head\ncard 0\ncard 2\nfoot\n"
        );
        assert_eq!(
            select(&text, &choice(&[0, 1, 2], 1)),
            "head\ncard 0\nAlso new\nitem 1\nitem 2\nfoot\n"
        );
        assert_eq!(select(&text, &choice(&[], 0)), "head\nfoot\n");
        // Marks inline (HTML) go without taking anything else.
        let html = format!(
            "<tr>{}<td>a</td>{}</tr>",
            Region::Post(0).begin(),
            Region::Post(0).end()
        );
        assert_eq!(select(&html, &choice(&[0], 1)), "<tr><td>a</td></tr>");
        assert_eq!(select(&html, &choice(&[1], 1)), "<tr></tr>");
        // A comment that only looks like a mark stays.
        let odd = "a<!--\u{E000}other\u{E001}-->b";
        assert_eq!(select(odd, &choice(&[0], 1)), odd);
        assert!(matches!(select("plain", &choice(&[], 0)), Cow::Borrowed(_)));
    }
}
