//! `[content]`: where posts are and how their URLs look.

use std::path::PathBuf;

use serde::Deserialize;

use super::{ConfigError, Source};

/// `[content]`: where posts are and how their URLs look.
#[derive(Debug, Clone)]
pub struct Content {
    pub dir: PathBuf,
    pub permalink: String,
    pub url_date: UrlDate,
}

/// `content.url_date`: which date fills `:year`, `:month` and `:day`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UrlDate {
    /// As the generator the post was written for: the file name's date for
    /// a nanoc post (one dated by `created_at`, as the Prometheus site's
    /// `Rules` do), the front-matter date for Jekyll, Hugo and Zola posts.
    #[default]
    Auto,
    /// The file name's date whenever the file name has one.
    File,
    /// Always the post's own date.
    Post,
}

/// The placeholders a permalink pattern may use.
pub const PERMALINK_TOKENS: [&str; 6] = [":year", ":month", ":day", ":slug", ":title", ":section"];

/// The first `:word` in a permalink pattern that is not one of
/// [`PERMALINK_TOKENS`] (Jekyll's `:categories`, a typo such as `:yaer`):
/// left in, it would be part of every post's URL as written.
fn unknown_placeholder(pattern: &str) -> Option<&str> {
    colon_words(pattern).find(|word| !PERMALINK_TOKENS.contains(word))
}

/// Placeholders that Jekyll or Hugo know and this tool does not.
const FOREIGN_TOKENS: [&str; 30] = [
    ":categories",
    ":slugified_categories",
    ":output_ext",
    ":name",
    ":path",
    ":collection",
    ":basename",
    ":i_month",
    ":i_day",
    ":y_day",
    ":w_year",
    ":week",
    ":w_day",
    ":short_year",
    ":short_month",
    ":long_month",
    ":short_day",
    ":long_day",
    ":hour",
    ":minute",
    ":second",
    ":monthname",
    ":weekday",
    ":weekdayname",
    ":yearday",
    ":sections",
    ":filename",
    ":slugorfilename",
    ":contentbasename",
    ":slugorcontentbasename",
];

/// The first `:word` in a post's own permalink that Jekyll or Hugo would
/// fill in and this tool cannot (`:categories`): the page is not where the
/// link would say. Any other word after a colon is part of the path as
/// written (`/talks/re:invent/`, `/cpp/std::optional/`), as Hugo writes
/// `url:` and Jekyll leaves what is not a placeholder.
pub fn foreign_placeholder(pattern: &str) -> Option<&str> {
    colon_words(pattern).find(|word| FOREIGN_TOKENS.contains(word))
}

/// Each `:word` in `pattern` (letters, digits and `_` after a colon).
fn colon_words(pattern: &str) -> impl Iterator<Item = &str> {
    pattern.match_indices(':').filter_map(|(at, _)| {
        let rest = &pattern[at + 1..];
        let len = rest
            .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .unwrap_or(rest.len());
        (len > 0).then(|| &pattern[at..at + 1 + len])
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawContent {
    dir: PathBuf,
    permalink: String,
    url_date: UrlDate,
}

impl Default for RawContent {
    fn default() -> Self {
        RawContent {
            dir: PathBuf::from("content"),
            permalink: "/blog/:year/:month/:day/:slug/".into(),
            url_date: UrlDate::Auto,
        }
    }
}

/// Checks `[content]`: the permalink pattern must give each post its own path.
pub(super) fn check(raw: RawContent, source: &Source) -> Result<Content, ConfigError> {
    let permalink = raw.permalink;
    if !permalink.starts_with('/') || !(permalink.contains(":slug") || permalink.contains(":title"))
    {
        return Err(source.invalid(
            "content.permalink",
            format!(
                "= {permalink:?} must start with '/' and contain :slug or :title (placeholders: {})",
                PERMALINK_TOKENS.join(", ")
            ),
        ));
    }
    if let Some(word) = unknown_placeholder(&permalink) {
        return Err(source.invalid(
            "content.permalink",
            format!(
                "= {permalink:?} has `{word}`, which is not a placeholder; use {}",
                PERMALINK_TOKENS.join(", ")
            ),
        ));
    }
    Ok(Content {
        dir: source.resolve(raw.dir),
        permalink,
        url_date: raw.url_date,
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::parse;

    #[test]
    fn bad_permalink_is_named() {
        let err =
            parse("[site]\nbase_url = \"https://x.org\"\n[content]\npermalink = \"/:year/\"\n")
                .unwrap_err()
                .to_string();
        assert!(err.contains("content.permalink"), "{err}");
    }
}
