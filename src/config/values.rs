//! Value checks more than one section uses: durations and loopback hosts.

use std::time::Duration;

use super::{ConfigError, Source};

/// Parses a duration such as "48h" or "30m" at `key`.
pub(super) fn duration(
    source: &Source,
    key: &'static str,
    text: &str,
) -> Result<Duration, ConfigError> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        source.invalid(
            key,
            format!("= {text:?} is not a duration ({e}); write it like \"48h\" or \"30m\""),
        )
    })
}

/// A duration that must be at least `least` seconds; `advice` ends the
/// message and says why.
pub(super) fn duration_at_least(
    source: &Source,
    key: &'static str,
    text: &str,
    least: u64,
    advice: &str,
) -> Result<Duration, ConfigError> {
    let value = duration(source, key, text)?;
    if value < Duration::from_secs(least) {
        return Err(source.invalid(key, format!("= {text:?} is too short{advice}")));
    }
    Ok(value)
}

/// True for `localhost` and loopback IP addresses.
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
