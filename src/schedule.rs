//! Digest schedule: cron slots in the site's time zone, and the catch-up rule.

use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// The slots of a cron expression, in a time zone.
#[derive(Debug, Clone)]
pub struct Slots {
    text: String,
    timezone: Tz,
}

impl Slots {
    /// Parses a five-field cron expression (`"0 9 * * MON"`).
    pub fn parse(text: &str, timezone: Tz) -> Result<Slots, String> {
        Ok(Slots {
            text: text.to_string(),
            timezone,
        })
    }

    /// The first slot strictly after `t`.
    pub fn next_after(&self, _t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        todo!("{} {}", self.text, self.timezone)
    }

    /// The latest slot at or before `t`.
    pub fn latest_at_or_before(&self, _t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        todo!()
    }
}

/// What to do about the schedule at some moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// The latest slot is already handled (or there is none yet).
    NotDue,
    /// Send the digest for this slot.
    Send(DateTime<Utc>),
    /// This slot was missed by more than `catch_up`: record it handled, send nothing.
    Skip(DateTime<Utc>),
}

/// The catch-up rule.
pub fn due(
    _slots: &Slots,
    _last_handled: Option<DateTime<Utc>>,
    _now: DateTime<Utc>,
    _catch_up: Duration,
) -> Due {
    todo!()
}
