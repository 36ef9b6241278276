//! `[digest]`: what a digest holds and how it is rendered.

use std::path::PathBuf;

use serde::Deserialize;

use super::values::number_within;
use super::{ConfigError, Source};

/// `[digest]`: what a digest holds and how it is rendered.
#[derive(Debug, Clone)]
pub struct Digest {
    /// A minijinja template string.
    pub subject: String,
    /// How many of the newest posts the very first digest carries.
    pub first_run_posts: usize,
    /// Above this, the rest are listed as linked titles only.
    pub max_posts: usize,
    /// The folder of the site's own templates; any template missing there
    /// (or the whole folder) is built in.
    pub templates: PathBuf,
}

/// The default digest subject: the newest post's title and how many more.
pub const DEFAULT_SUBJECT: &str = "{{ site.title }}: {{ posts[0].title }}{% if posts|length > 1 %} and {{ posts|length - 1 }} more{% endif %}";

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawDigest {
    subject: String,
    first_run_posts: usize,
    max_posts: usize,
    templates: PathBuf,
}

impl Default for RawDigest {
    fn default() -> Self {
        RawDigest {
            subject: DEFAULT_SUBJECT.into(),
            first_run_posts: 1,
            max_posts: 10,
            templates: PathBuf::from("templates"),
        }
    }
}

/// Checks `[digest]`. The subject template is checked when a digest is
/// rendered (`crate::digest`), not here.
pub(super) fn check(raw: RawDigest, source: &Source) -> Result<Digest, ConfigError> {
    number_within(
        source,
        "digest.max_posts",
        raw.max_posts,
        (1, 1000),
        " posts",
    )?;
    number_within(
        source,
        "digest.first_run_posts",
        raw.first_run_posts,
        (0, 1000),
        " posts",
    )?;
    let templates = source.resolve(raw.templates);
    // A missing folder is fine (every template is built in); a file where
    // the folder should be is a mistake.
    if templates.exists() && !templates.is_dir() {
        return Err(source.invalid(
            "digest.templates",
            format!(
                "{} is not a folder: point it at the folder of your templates, or leave the key out to use the built-in ones",
                templates.display()
            ),
        ));
    }
    Ok(Digest {
        subject: raw.subject,
        first_run_posts: raw.first_run_posts,
        max_posts: raw.max_posts,
        templates,
    })
}
