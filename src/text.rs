//! Plain-text helpers shared by mail headers, the digest's text part and
//! the templates' `wrap` filter.

/// Where the plain text of mail is folded.
pub const TEXT_WIDTH: usize = 72;

/// Folds each line longer than `width` at spaces, never inside a word (so
/// never inside a URL). Continuation lines keep the line's indentation,
/// quote marks (`> `) and the hanging indent of a list marker (`* `,
/// `1. `). Footnote lines (`[1]: URL`) are left whole.
pub fn wrap(text: &str, width: usize) -> String {
    let width = width.max(1);
    let mut out = String::with_capacity(text.len() + text.len() / 16);
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if line.chars().count() <= width || is_footnote(line) {
            out.push_str(line);
            continue;
        }
        let (first, rest) = line_prefixes(line);
        let body = &line[first.len()..];
        let mut current = first.to_string();
        let mut current_len = current.chars().count();
        let mut empty = true;
        for word in body.split(' ').filter(|w| !w.is_empty()) {
            let len = word.chars().count();
            if !empty && current_len + 1 + len > width {
                out.push_str(&current);
                out.push('\n');
                current = rest.clone();
                current_len = current.chars().count();
                empty = true;
            }
            if !empty {
                current.push(' ');
                current_len += 1;
            }
            current.push_str(word);
            current_len += len;
            empty = false;
        }
        out.push_str(current.trim_end());
    }
    out
}

fn is_footnote(line: &str) -> bool {
    line.strip_prefix('[')
        .and_then(|l| l.split_once("]: "))
        .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// A line's leading indentation, quote marks and list marker, and what a
/// continuation line starts with instead.
fn line_prefixes(line: &str) -> (&str, String) {
    let bytes = line.as_bytes();
    let mut at = 0;
    while at < bytes.len() && bytes[at] == b' ' {
        at += 1;
    }
    while line[at..].starts_with("> ") {
        at += 2;
    }
    let quoted = line[..at].to_string();
    let rest = &line[at..];
    let marker = if rest.starts_with("* ") || rest.starts_with("- ") || rest.starts_with("+ ") {
        2
    } else {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && rest[digits..].starts_with(". ") {
            digits + 2
        } else {
            0
        }
    };
    (
        &line[..at + marker],
        format!("{quoted}{}", " ".repeat(marker)),
    )
}

/// Text for one line (a subject, a header, a log line): whitespace and
/// control characters (CR and LF above all, which would start a new
/// header) become spaces, runs of spaces one, none at either end.
pub fn one_line(text: &str) -> String {
    text.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `text` on one line ([`one_line`]) and at most `max` characters, cut
/// with "…". For header values: a mail line may not pass 998 octets, and
/// one long word cannot be folded.
pub fn one_line_within(text: &str, max: usize) -> String {
    let line = one_line(text);
    match line.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", line[..at].trim_end()),
        None => line,
    }
}

/// `n` and the noun, plural but for one: "1 post", "2 posts",
/// "2 auto-replies".
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        return format!("1 {noun}");
    }
    match noun.strip_suffix('y') {
        Some(stem) if !stem.ends_with(['a', 'e', 'o', 'u']) => format!("{n} {stem}ies"),
        _ => format!("{n} {noun}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_is_plural_but_for_one() {
        assert_eq!(count(0, "post"), "0 posts");
        assert_eq!(count(1, "post file"), "1 post file");
        assert_eq!(count(2, "problem"), "2 problems");
        assert_eq!(count(3, "auto-reply"), "3 auto-replies");
        assert_eq!(count(0, "delivery report"), "0 delivery reports");
    }

    #[test]
    fn wrap_folds_prose_and_keeps_words_whole() {
        assert_eq!(wrap("aaa bbb ccc", 7), "aaa bbb\nccc");
        assert_eq!(
            wrap("aaa https://example.org/long bbb", 10),
            "aaa\nhttps://example.org/long\nbbb"
        );
        assert_eq!(wrap("* one two three", 9), "* one two\n  three");
        assert_eq!(wrap("12. one two three", 10), "12. one\n    two\n    three");
        assert_eq!(wrap("> > one two three", 11), "> > one two\n> > three");
        assert_eq!(
            wrap("[12]: https://example.org/a/long/url", 10),
            "[12]: https://example.org/a/long/url"
        );
        assert_eq!(wrap("short\n\nlines", 5), "short\n\nlines");
    }

    #[test]
    fn one_line_folds_line_breaks_and_runs_of_space() {
        assert_eq!(one_line(" a\r\nb\t\u{7}c  d "), "a b c d");
        assert_eq!(one_line("\n\n"), "");
    }
}
