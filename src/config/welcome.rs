//! `[welcome]`: the mail a new subscriber gets.

use serde::Deserialize;

use super::values::number_within;
use super::{ConfigError, Source};

/// `[welcome]`: the mail a subscriber gets when they confirm (or are added
/// with `subscribers add --welcome`).
#[derive(Debug, Clone)]
pub struct Welcome {
    pub enabled: bool,
    /// How many of the latest posts it shows, with their excerpts.
    pub posts: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawWelcome {
    enabled: bool,
    posts: usize,
}

impl Default for RawWelcome {
    fn default() -> Self {
        RawWelcome {
            enabled: true,
            posts: 3,
        }
    }
}

/// Checks `[welcome]`.
pub(super) fn check(raw: RawWelcome, source: &Source) -> Result<Welcome, ConfigError> {
    number_within(source, "welcome.posts", raw.posts, (0, 50), " posts")?;
    Ok(Welcome {
        enabled: raw.enabled,
        posts: raw.posts,
    })
}
