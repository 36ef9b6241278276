//! `[feeds]`: which feeds are written where.

use std::path::PathBuf;

use serde::Deserialize;
use url::Url;

use super::{ConfigError, Source};

/// What feeds do with `<iframe>` elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IframePolicy {
    /// Replace each iframe by a link to what it showed.
    Link,
    /// Keep iframes as written.
    Keep,
}

/// What an RSS item's `<guid>` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RssGuid {
    /// The entry's `tag:` id (`isPermaLink="false"`), the same as Atom's: a
    /// move to https or to a new path keeps it.
    Tag,
    /// The permalink (`isPermaLink="true"`), as Hugo and Zola write it and
    /// as newsletter did before: a move changes every guid.
    Permalink,
}

/// `[feeds]`: which feeds are written where.
#[derive(Debug, Clone)]
pub struct Feeds {
    pub output_dir: PathBuf,
    /// Most entries per feed; 0 means all.
    pub limit: usize,
    pub full_content: bool,
    pub per_tag: bool,
    pub iframes: IframePolicy,
    pub rss_guid: RssGuid,
    /// File names of the feeds inside `output_dir`; also their URL paths under `base_url`.
    pub atom: String,
    pub rss: String,
    pub json: String,
    /// A WebSub hub: feeds link to it and the hub is told when they change.
    pub hub: Option<Url>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawFeeds {
    output_dir: PathBuf,
    limit: usize,
    full_content: bool,
    per_tag: bool,
    iframes: IframePolicy,
    rss_guid: RssGuid,
    atom: String,
    rss: String,
    json: String,
    /// Taken out by `Config::parse` and given to [`check_hub`] (see there).
    pub(super) hub: Option<String>,
}

impl Default for RawFeeds {
    fn default() -> Self {
        RawFeeds {
            output_dir: PathBuf::from("public"),
            limit: 20,
            full_content: true,
            per_tag: false,
            iframes: IframePolicy::Link,
            rss_guid: RssGuid::Tag,
            atom: "atom.xml".into(),
            rss: "rss.xml".into(),
            json: "feed.json".into(),
            hub: None,
        }
    }
}

/// Checks `[feeds]` but for `hub`, which [`check_hub`] checks; the result's
/// `hub` is `None`.
pub(super) fn check(raw: RawFeeds, source: &Source) -> Result<Feeds, ConfigError> {
    // The feed names are paths under output_dir and under base_url: they
    // must not climb out of it, nor overwrite one another.
    for (key, name) in [
        ("feeds.atom", &raw.atom),
        ("feeds.rss", &raw.rss),
        ("feeds.json", &raw.json),
    ] {
        let bad = name.is_empty()
            || name.starts_with('/')
            || name.split('/').any(|part| part.is_empty() || part == "..");
        if bad {
            return Err(source.invalid(
                key,
                format!("= {name:?} must be a relative file path inside feeds.output_dir"),
            ));
        }
    }
    if raw.atom == raw.rss || raw.atom == raw.json || raw.rss == raw.json {
        return Err(source.invalid(
            "feeds.atom",
            "feeds.atom, feeds.rss and feeds.json must be different files".into(),
        ));
    }
    Ok(Feeds {
        output_dir: source.resolve(raw.output_dir),
        limit: super::values::number_within(
            source,
            "feeds.limit",
            raw.limit,
            (0, 1_000_000),
            " entries (0: all)",
        )?,
        full_content: raw.full_content,
        per_tag: raw.per_tag,
        iframes: raw.iframes,
        rss_guid: raw.rss_guid,
        atom: raw.atom,
        rss: raw.rss,
        json: raw.json,
        hub: None,
    })
}

/// Checks `feeds.hub`; blank means no hub.
///
/// Kept apart from [`check`] because `Config::parse` has always checked the
/// hub last: a file with several mistakes reports the same one first as
/// before the split into sections.
pub(super) fn check_hub(hub: Option<String>, source: &Source) -> Result<Option<Url>, ConfigError> {
    match hub.filter(|h| !h.trim().is_empty()) {
        None => Ok(None),
        Some(text) => {
            let url = Url::parse(&text)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
            Ok(Some(url.ok_or_else(|| {
                source.invalid(
                    "feeds.hub",
                    format!("= {text:?} is not an http(s) URL; write it like \"https://pubsubhubbub.appspot.com/\""),
                )
            })?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::parse;

    #[test]
    fn feed_paths_stay_inside_the_output_dir() {
        let err = parse("[site]\nbase_url = \"https://x.org\"\n[feeds]\natom = \"../x.xml\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("feeds.atom"), "{err}");
    }
}
