//! `[archive]`: the web archive of every mailing, written into the output folder.

use serde::Deserialize;

use super::{ConfigError, Source};

/// `[archive]`: the web archive of every digest and letter.
#[derive(Debug, Clone)]
pub struct Archive {
    /// Whether `build` and `send` write it.
    pub enabled: bool,
    /// Its folder inside `feeds.output_dir` (and its URL path under
    /// `site.base_url`), `/` between folders, no slash at either end.
    pub path: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawArchive {
    enabled: bool,
    path: String,
}

impl Default for RawArchive {
    fn default() -> Self {
        RawArchive {
            enabled: true,
            path: "archive".into(),
        }
    }
}

/// Checks `[archive]`: the path is a folder inside the output folder that
/// no feed file is written into.
pub(super) fn check(
    raw: RawArchive,
    feeds: &super::Feeds,
    source: &Source,
) -> Result<Archive, ConfigError> {
    let path = raw.path.trim_matches('/').to_string();
    let bad = path.is_empty()
        || path.contains('\\')
        || path
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == ".." || part.starts_with('.'));
    if bad {
        return Err(source.invalid(
            "archive.path",
            format!(
                "= {:?} must be a folder inside feeds.output_dir, like \"archive\" (no `..`, no hidden folder)",
                raw.path
            ),
        ));
    }
    let taken = [&feeds.atom, &feeds.rss, &feeds.json]
        .into_iter()
        .find(|name| **name == path || name.starts_with(&format!("{path}/")));
    let tags = feeds.per_tag && (path == "tags" || path.starts_with("tags/"));
    if let Some(name) = taken.map(String::as_str).or(tags.then_some("tags/")) {
        return Err(source.invalid(
            "archive.path",
            format!(
                "= {path:?} is where the feed {name:?} is written: choose another folder (the default is \"archive\")"
            ),
        ));
    }
    Ok(Archive {
        enabled: raw.enabled,
        path,
    })
}
