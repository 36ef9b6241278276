//! `[schedule]`: when `serve` and `publish` send digests.

use std::time::Duration;

use chrono_tz::Tz;
use serde::Deserialize;

use super::values::{DAY, duration_within};
use super::{ConfigError, Source};

/// `[schedule]`: when `serve` and `publish` send digests.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// A cron expression in `site.timezone`; `None`: digests only by `send`.
    pub digest: Option<String>,
    /// A missed slot younger than this is caught up once; older ones are skipped.
    pub catch_up: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawSchedule {
    digest: Option<String>,
    catch_up: String,
}

impl Default for RawSchedule {
    fn default() -> Self {
        RawSchedule {
            digest: None,
            catch_up: "6h".into(),
        }
    }
}

/// Checks `[schedule]`. The cron expression is read in `timezone` (the
/// checked `site.timezone`), so it is parsed as it will be used.
pub(super) fn check(
    raw: RawSchedule,
    timezone: Tz,
    source: &Source,
) -> Result<Schedule, ConfigError> {
    let catch_up = duration_within(
        source,
        "schedule.catch_up",
        &raw.catch_up,
        (0, 366 * DAY),
        "",
    )?;
    let digest = raw.digest.filter(|d| !d.trim().is_empty());
    if let Some(cron) = &digest {
        crate::schedule::Slots::parse(cron, timezone).map_err(|message| {
            source.invalid("schedule.digest", format!("= {cron:?}: {message}"))
        })?;
    }
    Ok(Schedule { digest, catch_up })
}
