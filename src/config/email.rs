//! `[email]` and `[email.dkim]`: who digests come from and how they are signed.

use std::path::PathBuf;

use lettre::Address;
use lettre::message::Mailbox;
use serde::Deserialize;

use super::{ConfigError, Site, Source};

/// `[email]`: who digests come from and how readers leave.
#[derive(Debug, Clone)]
pub struct Email {
    pub from: Mailbox,
    pub reply_to: Option<Mailbox>,
    /// Also offered in `List-Unsubscribe` when set.
    pub unsubscribe_mailto: Option<Address>,
    /// Where messages go when there is no `[smtp]` section.
    pub outbox: PathBuf,
    /// What writing to the outbox means when there is no `[smtp]` section.
    pub outbox_mode: OutboxMode,
    pub dkim: Option<Dkim>,
}

/// `email.outbox_mode`: what a message written to the outbox counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboxMode {
    /// A look at what would go out: `send` writes every subscriber's
    /// message and records nothing, so the digest is still due when an
    /// `[smtp]` section is added.
    #[default]
    Trial,
    /// The outbox is a pickup folder that another program sends from: a
    /// message written there is delivered, and recorded as sent.
    Deliver,
}

/// `[email.dkim]`: sign messages (the key file is PEM, RSA or Ed25519).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dkim {
    pub selector: String,
    pub domain: String,
    pub key_file: PathBuf,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawEmail {
    from: Option<String>,
    reply_to: Option<String>,
    unsubscribe_mailto: Option<String>,
    outbox: Option<PathBuf>,
    outbox_mode: Option<OutboxMode>,
    dkim: Option<Dkim>,
}

/// Checks `[email]`. It needs the checked `[site]`: without `email.from`,
/// digests come from `newsletter@` the site's host, named by its title.
pub(super) fn check(raw: RawEmail, site: &Site, source: &Source) -> Result<Email, ConfigError> {
    let mailbox = |key: &'static str, text: &str| {
        text.parse::<Mailbox>().map_err(|e| {
            source.invalid(
                key,
                format!("= {text:?} is not an email address ({e}); write it like \"Blog <blog@example.org>\""),
            )
        })
    };
    let from = match &raw.from {
        Some(text) => mailbox("email.from", text)?,
        None if site.base_url.domain().is_none() => {
            return Err(source.invalid(
                "email.from",
                "is missing and cannot be made from site.base_url, whose host is an IP address: \
                 set it, like \"Blog <blog@example.org>\""
                    .into(),
            ));
        }
        None => Mailbox::new(
            Some(site.title.clone()),
            format!("newsletter@{}", site.host()).parse().map_err(|e| {
                source.invalid(
                    "email.from",
                    format!("is missing and cannot be made from the site's host ({e}); set it"),
                )
            })?,
        ),
    };
    let reply_to = raw
        .reply_to
        .as_deref()
        .map(|t| mailbox("email.reply_to", t))
        .transpose()?;
    let unsubscribe_mailto = raw
        .unsubscribe_mailto
        .as_deref()
        .map(|t| {
            t.trim_start_matches("mailto:")
                .parse::<Address>()
                .map_err(|e| {
                    source.invalid(
                        "email.unsubscribe_mailto",
                        format!("= {t:?} is not an email address ({e})"),
                    )
                })
        })
        .transpose()?;
    let dkim = raw.dkim.map(|d| Dkim {
        key_file: source.resolve(d.key_file),
        ..d
    });
    Ok(Email {
        from,
        reply_to,
        unsubscribe_mailto,
        outbox: source.resolve(raw.outbox.unwrap_or_else(|| PathBuf::from("outbox"))),
        outbox_mode: raw.outbox_mode.unwrap_or_default(),
        dkim,
    })
}
