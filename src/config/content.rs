//! `[content]`: where posts are and how their URLs look.

use std::path::PathBuf;

use serde::Deserialize;

use super::{ConfigError, Source};

/// `[content]`: where posts are and how their URLs look.
#[derive(Debug, Clone)]
pub struct Content {
    pub dir: PathBuf,
    pub permalink: String,
}

/// The placeholders a permalink pattern may use.
pub const PERMALINK_TOKENS: [&str; 4] = [":year", ":month", ":day", ":slug"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawContent {
    dir: PathBuf,
    permalink: String,
}

impl Default for RawContent {
    fn default() -> Self {
        RawContent {
            dir: PathBuf::from("content"),
            permalink: "/blog/:year/:month/:day/:slug/".into(),
        }
    }
}

/// Checks `[content]`: the permalink pattern must give each post its own path.
pub(super) fn check(raw: RawContent, source: &Source) -> Result<Content, ConfigError> {
    let permalink = raw.permalink;
    if !permalink.starts_with('/') || !permalink.contains(":slug") {
        return Err(source.invalid(
            "content.permalink",
            format!(
                "= {permalink:?} must start with '/' and contain :slug (placeholders: {})",
                PERMALINK_TOKENS.join(", ")
            ),
        ));
    }
    Ok(Content {
        dir: source.resolve(raw.dir),
        permalink,
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
