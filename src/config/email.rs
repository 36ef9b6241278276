//! `[email]` and `[email.dkim]`: who digests come from and how they are signed.

use std::path::PathBuf;

use lettre::Address;
use lettre::message::Mailbox;
use serde::Deserialize;

use super::values::{OneOrMany, Section};
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
    /// The signing keys, in the order their signatures are written: none,
    /// one, or (say) an RSA key and an Ed25519 key signing each message.
    pub dkim: Vec<Dkim>,
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

/// One `[email.dkim]` key: sign messages as `selector._domainkey.domain`
/// with the private key in `key_file` (PEM, RSA or Ed25519).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dkim {
    pub selector: String,
    pub domain: String,
    pub key_file: PathBuf,
}

impl Section for Dkim {
    const NAME: &'static str = "email.dkim";
}

/// At most this many `[[email.dkim]]` keys: each signature costs a
/// signing per message, and two (RSA and Ed25519) is what receivers use.
pub const MAX_DKIM_KEYS: usize = 4;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawEmail {
    from: Option<String>,
    reply_to: Option<String>,
    unsubscribe_mailto: Option<String>,
    outbox: Option<PathBuf>,
    outbox_mode: Option<OutboxMode>,
    /// `[email.dkim]` (one key) or `[[email.dkim]]` (a key each).
    dkim: Option<OneOrMany<Dkim>>,
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
            // On one line (a title may hold a line break) and short: it is
            // a header.
            Some(crate::text::one_line_within(&site.title, 100)),
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
    for (key, mailbox) in [
        ("email.from", Some(&from)),
        ("email.reply_to", reply_to.as_ref()),
    ] {
        if let Some(mailbox) = mailbox
            && mailbox.to_string().len() > 300
        {
            return Err(source.invalid(
                key,
                format!(
                    "is {} characters long; at most 300 (it is a mail header, whose lines may not pass 998 octets)",
                    mailbox.to_string().len()
                ),
            ));
        }
    }
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
    let dkim = check_dkim(raw.dkim.unwrap_or_default().0, source)?;
    Ok(Email {
        from,
        reply_to,
        unsubscribe_mailto,
        outbox: source.resolve(raw.outbox.unwrap_or_else(|| PathBuf::from("outbox"))),
        outbox_mode: raw.outbox_mode.unwrap_or_default(),
        dkim,
    })
}

/// Checks the DKIM keys: each selector and domain a DNS name (the key is
/// looked up at `selector._domainkey.domain`), no two signing as the same
/// selector of the same domain, at most [`MAX_DKIM_KEYS`].
fn check_dkim(keys: Vec<Dkim>, source: &Source) -> Result<Vec<Dkim>, ConfigError> {
    if keys.len() > MAX_DKIM_KEYS {
        return Err(source.invalid(
            "email.dkim",
            format!(
                "has {} keys; at most {MAX_DKIM_KEYS} (one RSA and one Ed25519 key is what receivers check)",
                keys.len()
            ),
        ));
    }
    let mut checked: Vec<Dkim> = Vec::with_capacity(keys.len());
    for key in keys {
        if !key.domain.is_ascii() {
            return Err(source.invalid(
                "email.dkim.domain",
                format!(
                    "= {:?}: write the domain in its ASCII form{}",
                    key.domain,
                    idna::domain_to_ascii(&key.domain)
                        .map(|a| format!(" (\"{a}\")"))
                        .unwrap_or_default()
                ),
            ));
        }
        // A domain: a dot, and a last label that is not a number (an IP
        // address is no DKIM domain).
        let domain_ok = key.domain.contains('.')
            && !key
                .domain
                .rsplit('.')
                .next()
                .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()));
        for (name, value, ok) in [
            ("email.dkim.selector", &key.selector, true),
            ("email.dkim.domain", &key.domain, domain_ok),
        ] {
            if !ok || !is_dns_label_list(value) {
                return Err(source.invalid(
                    name,
                    format!(
                        "= {value:?} is not a DNS name (letters, digits, `-` and `_` in labels separated by dots): \
                         receivers look the key up at SELECTOR._domainkey.DOMAIN"
                    ),
                ));
            }
        }
        if checked.iter().any(|k| {
            k.selector.eq_ignore_ascii_case(&key.selector)
                && k.domain.eq_ignore_ascii_case(&key.domain)
        }) {
            return Err(source.invalid(
                "email.dkim.selector",
                format!(
                    "= {:?} is given twice for {}: each key needs a selector of its own, \
                     published at SELECTOR._domainkey.{}",
                    key.selector, key.domain, key.domain
                ),
            ));
        }
        checked.push(Dkim {
            key_file: source.resolve(&key.key_file),
            ..key
        });
    }
    Ok(checked)
}

/// A name DKIM can look up: ASCII labels of letters, digits, `-` and `_`,
/// 1 to 63 characters each, none starting or ending with `-`, 253 in all,
/// separated by single dots.
fn is_dns_label_list(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}
