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
    // Plain URL-safe names: the path is a folder and a URL path both.
    let plain = |part: &str| {
        !part.is_empty()
            && !part.starts_with('.')
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    };
    if !path.split('/').all(plain) {
        return Err(source.invalid(
            "archive.path",
            format!(
                "= {:?} must be a folder inside feeds.output_dir, like \"archive\" or \"news/issues\": \
                 letters, digits, `-`, `_`, `.` and `~` between slashes, no hidden folder, no `..`",
                raw.path
            ),
        ));
    }
    // `serve` answers these paths itself: the archive would be out of reach.
    let first = path.split('/').next().unwrap_or_default();
    if [
        "subscribe",
        "confirm",
        "unsubscribe",
        "healthz",
        "preferences",
    ]
    .contains(&first)
    {
        return Err(source.invalid(
            "archive.path",
            format!("= {path:?} is a path `newsletter serve` answers itself: choose another folder (the default is \"archive\")"),
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

#[cfg(test)]
mod tests {
    use super::super::tests::parse;

    #[test]
    fn the_archive_path_is_a_plain_folder_no_feed_or_route_uses() {
        let path = |value: &str| {
            parse(&format!(
                "[site]\nbase_url = \"https://x.org/\"\n[archive]\npath = {value:?}\n"
            ))
            .map(|c| c.archive.path)
        };
        assert_eq!(path("/news/issues/").unwrap(), "news/issues");
        for bad in [
            "",
            "..",
            "a/../b",
            ".hidden",
            "my issues",
            "a%20b",
            "subscribe",
            "confirm/x",
            "atom.xml",
        ] {
            let error = path(bad).expect_err(bad).to_string();
            assert!(error.contains("archive.path"), "{bad}: {error}");
        }
    }
}
