//! Merge tokens: a digest is rendered once for every subscriber, with a
//! placeholder wherever a subscriber's own value goes (their address, their
//! name, their unsubscribe link); [`personalize`] fills them in for each
//! message in one pass over the text.

use crate::html::escape_text;

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

/// One subscriber's copy of a rendered digest: their address, name and
/// unsubscribe link put in place of the merge tokens, HTML-escaped in the
/// HTML part and as they are in the subject and the text part.
pub fn personalize(
    digest: &super::digest::RenderedDigest,
    email: &str,
    name: &str,
    unsubscribe_url: &str,
) -> Personal {
    let plain = [email, name, unsubscribe_url];
    let escaped = plain.map(escape_text);
    let escaped = escaped.each_ref().map(String::as_str);
    Personal {
        subject: merge(&digest.subject, plain),
        html: merge(&digest.html, escaped),
        text: merge(&digest.text, plain),
    }
}

/// Replaces each merge token by its value (email, name, unsubscribe URL) in
/// one pass; anything else between the delimiters is left as it is.
fn merge(text: &str, values: [&str; 3]) -> String {
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
    use crate::email::digest::RenderedDigest;

    #[test]
    fn personalize_escapes_in_html_only() {
        let digest = RenderedDigest {
            subject: format!("Hi {NAME}"),
            html: format!("<p>{NAME} {EMAIL}</p><a href=\"{UNSUBSCRIBE_URL}\">u</a>"),
            text: format!("{NAME} <{EMAIL}>\n{UNSUBSCRIBE_URL}\n"),
            post_urls: vec![],
        };
        let mail = personalize(
            &digest,
            "o'neil@example.org",
            "Bob <b> & Co",
            "https://x.org/u/1?a=1&b=2",
        );
        assert_eq!(mail.subject, "Hi Bob <b> & Co");
        assert_eq!(
            mail.html,
            "<p>Bob &lt;b&gt; &amp; Co o&#39;neil@example.org</p><a href=\"https://x.org/u/1?a=1&amp;b=2\">u</a>"
        );
        assert_eq!(
            mail.text,
            "Bob <b> & Co <o'neil@example.org>\nhttps://x.org/u/1?a=1&b=2\n"
        );
    }

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
