//! Merge tokens: a digest is rendered once for every subscriber, with a
//! placeholder wherever a subscriber's own value goes (their address, their
//! name, their unsubscribe link); [`merge`] fills them in for each
//! message in one pass over the text (see `digest::personalize`).

/// Merge tokens are a key between these two private-use characters, which
/// nothing from a post or the config can carry (they are removed from it).
pub(crate) const OPEN: char = '\u{E000}';
pub(crate) const CLOSE: char = '\u{E001}';
pub(crate) const EMAIL: &str = "\u{E000}email\u{E001}";
pub(crate) const NAME: &str = "\u{E000}name\u{E001}";
pub(crate) const UNSUBSCRIBE_URL: &str = "\u{E000}unsubscribe_url\u{E001}";
/// The keys of the tokens above, in the order [`merge`] takes values.
const KEYS: [&str; 3] = ["email", "name", "unsubscribe_url"];

/// One subscriber's copy of a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Personal {
    pub subject: String,
    pub html: String,
    pub text: String,
}

/// Replaces each merge token by its value (email, name, unsubscribe URL) in
/// one pass; anything else between the delimiters is left as it is.
pub fn merge(text: &str, values: [&str; 3]) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_tokens_survive_case_filters_and_unknown_ones_stay() {
        let values = ["e", "n", "u"];
        assert_eq!(merge("\u{E000}EMAIL\u{E001}!", values), "e!");
        assert_eq!(
            merge("a\u{E000}other\u{E001}b", values),
            "a\u{E000}other\u{E001}b"
        );
        assert_eq!(merge("a\u{E000}name", values), "a\u{E000}name");
        assert_eq!(merge("\u{E000}\u{E000}name\u{E001}", values), "\u{E000}n");
    }
}
