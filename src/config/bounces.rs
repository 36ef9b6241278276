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
    /// The IMAP mailbox bounces come to (`bounces.imap`), if any.
    pub imap: Option<Imap>,
    /// How often `serve` reads it.
    pub poll: Duration,
}

/// `bounces.imap = "imaps://user@host:993/INBOX"` and `bounces.processed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imap {
    /// `imaps://` (TLS from the start); `imap://` is plain text, allowed
    /// only to this machine.
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub user: String,
    /// The folder read (`INBOX` when the URL names none).
    pub folder: String,
    /// Where handled messages are moved (created when missing).
    pub processed: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawBounces {
    address: Option<String>,
    soft_limit: Option<u32>,
    soft_window: Option<String>,
    alert_rate: Option<f64>,
    imap: Option<String>,
    poll: Option<String>,
    processed: Option<String>,
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
            // The token goes after it in a local part of at most 64 octets:
            // `+dDIGEST.SUBSCRIBER.TAG` takes up to 33.
            let user = address.user();
            if user.len() > 30
                || !user
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            {
                return Err(source.invalid(
                    "bounces.address",
                    format!(
                        "= {text:?}: the part before @ must be at most 30 letters, digits, `.`, `_` or `-`, \
                         so that the VERP token fits after it (like \"bounces@example.org\")"
                    ),
                ));
            }
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
    let imap = raw
        .imap
        .as_deref()
        .map(|text| imap_url(text, raw.processed.as_deref(), source))
        .transpose()?;
    let poll = duration_within(
        source,
        "bounces.poll",
        raw.poll.as_deref().unwrap_or("5m"),
        (10, 86_400),
        ": at least 10s, so the mail server is not asked all the time",
    )?;
    Ok(Bounces {
        address,
        soft_limit,
        soft_window,
        alert_rate,
        imap,
        poll,
    })
}

/// Checks `bounces.imap` (and `bounces.processed`).
fn imap_url(text: &str, processed: Option<&str>, source: &Source) -> Result<Imap, ConfigError> {
    let bad = |message: String| source.invalid("bounces.imap", message);
    let url = url::Url::parse(text.trim())
        .map_err(|e| bad(format!("= {text:?} is not a URL ({e}); write it like \"imaps://bounces@mail.example.org/INBOX\"")))?;
    let tls = match url.scheme() {
        "imaps" => true,
        "imap" => false,
        other => {
            return Err(bad(format!(
                "= {text:?}: the scheme is {other:?}; use imaps:// (or imap:// to this machine)"
            )));
        }
    };
    let host = url
        .host_str()
        .ok_or_else(|| bad(format!("= {text:?} has no host")))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    if !tls && !super::values::is_loopback(&host) {
        return Err(bad(format!(
            "= {text:?} would send the password in clear text to {host}: use imaps://"
        )));
    }
    if url.password().is_some() {
        return Err(bad(
            "must not carry a password: set NEWSLETTER_IMAP_PASSWORD instead".into(),
        ));
    }
    let user = percent_encoding::percent_decode_str(url.username())
        .decode_utf8_lossy()
        .into_owned();
    if user.is_empty() {
        return Err(bad(format!(
            "= {text:?} names no user: imaps://USER@{host}/INBOX"
        )));
    }
    let folder = percent_encoding::percent_decode_str(url.path().trim_start_matches('/'))
        .decode_utf8_lossy()
        .into_owned();
    let folder = if folder.is_empty() {
        "INBOX".to_string()
    } else {
        folder
    };
    let processed = processed.unwrap_or("Processed").trim().to_string();
    if processed.is_empty() || processed.eq_ignore_ascii_case(&folder) {
        return Err(source.invalid(
            "bounces.processed",
            format!("= {processed:?}: name a folder other than the one read ({folder})"),
        ));
    }
    Ok(Imap {
        tls,
        host,
        port: url.port().unwrap_or(if tls { 993 } else { 143 }),
        user,
        folder,
        processed,
    })
}
