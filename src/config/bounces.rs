//! `[bounces]`: what mail that comes back does to the list.

use std::time::Duration;

use lettre::Address;
use serde::Deserialize;

use super::values::{duration_within, number_within};
use super::{ConfigError, Source};

/// `[bounces]`: when soft bounces take an address off, when to warn.
#[derive(Debug, Clone)]
pub struct Bounces {
    /// The VERP base (`bounces@example.org`): each message's envelope
    /// sender becomes `bounces+TOKEN@example.org`. `None`: `email.from`.
    pub address: Option<Address>,
    /// This many soft bounces in `soft_window`, with no message taken in
    /// between, make an address bounced.
    pub soft_limit: u32,
    pub soft_window: Duration,
    /// Warn when a digest's bounces pass this share of its recipients.
    pub alert_rate: f64,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawBounces {
    address: Option<String>,
    soft_limit: Option<u32>,
    soft_window: Option<String>,
    alert_rate: Option<f64>,
}

/// Checks `[bounces]`; every value ranged.
pub(super) fn check(raw: RawBounces, source: &Source) -> Result<Bounces, ConfigError> {
    let address = raw
        .address
        .as_deref()
        .map(|text| {
            let address: Address = text.trim().parse().map_err(|e| {
                source.invalid(
                    "bounces.address",
                    format!("= {text:?} is not an email address ({e}); write it like \"bounces@example.org\""),
                )
            })?;
            if address.user().contains('+') {
                return Err(source.invalid(
                    "bounces.address",
                    format!(
                        "= {text:?} already has a `+`: give the plain address (\"bounces@…\"); \
                         newsletter adds `+TOKEN` to it"
                    ),
                ));
            }
            Ok(address)
        })
        .transpose()?;
    let soft_limit = number_within(
        source,
        "bounces.soft_limit",
        raw.soft_limit.unwrap_or(3),
        (1, 100),
        " soft bounces",
    )?;
    let soft_window = duration_within(
        source,
        "bounces.soft_window",
        raw.soft_window.as_deref().unwrap_or("30days"),
        (3600, 366 * 86_400),
        ": at least 1h",
    )?;
    let alert_rate = number_within(
        source,
        "bounces.alert_rate",
        raw.alert_rate.unwrap_or(0.05),
        (0.0, 1.0),
        " (a share: 0.05 is 5 %)",
    )?;
    Ok(Bounces {
        address,
        soft_limit,
        soft_window,
        alert_rate,
    })
}
