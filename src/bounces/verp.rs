//! VERP (variable envelope return path): each message's envelope sender
//! names its mailing and recipient, so a bounce tells whom it is about by
//! the address it comes back to, even when it quotes nothing of the
//! original.
//!
//! With `bounces.address = "bounces@example.org"`, the digest D sent to
//! subscriber S goes out with MAIL FROM `bounces+dD.S.TAG@example.org`,
//! TAG the first 48 bits (12 hex digits) of HMAC-SHA256 over `verp:dD.S`
//! with the store's secret: a bounce to a forged or damaged address names
//! no one. A relay that rewrites the envelope sender (most ESPs do) makes
//! this moot; the report's own fields and our Message-ID still work there.

use hmac::{KeyInit, Mac};
use lettre::Address;

use crate::config::Config;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Hex digits of the tag: 48 bits, enough that a guess is right once in
/// 2^48 tries, short enough for a local part (64 octets at most).
const TAG_HEX: usize = 12;

fn mac(secret: &[u8], mailing: &str) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(format!("verp:{mailing}").as_bytes());
    mac
}

/// The tag in our Message-IDs (`<digest-D.S.STORE.TAG@host>`): 12 hex
/// digits of HMAC-SHA256 over `mid:dD.S`, so that a report quoting one can
/// be believed about whom it concerns, and a forged one names no one.
pub fn message_tag(secret: &[u8], digest: i64, subscriber: i64) -> String {
    let tag = mac(secret, &format!("mid:d{digest}.{subscriber}"))
        .finalize()
        .into_bytes();
    hex::encode(tag)[..TAG_HEX].to_string()
}

/// `(digest, subscriber)` of a Message-ID of ours found in a report, if it
/// is genuine: made by this store (`store` is its instance id) with a tag
/// that checks. Untagged ones (from before tags) and forged ones: `None`.
pub fn check_message_id(
    secret: &[u8],
    store: &str,
    found: &super::parse::OurId,
) -> Option<(i64, i64)> {
    if found.store != store {
        return None;
    }
    let tag = hex::decode(found.tag.as_deref()?).ok()?;
    mac(
        secret,
        &format!("mid:d{}.{}", found.digest, found.subscriber),
    )
    .verify_truncated_left(&tag)
    .ok()?;
    Some((found.digest, found.subscriber))
}

/// The envelope sender for `subscriber`'s copy of digest `digest`, or
/// `None` without `bounces.address`.
pub fn sender(config: &Config, secret: &[u8], digest: i64, subscriber: i64) -> Option<Address> {
    let base = config.bounces.address.as_ref()?;
    let mailing = format!("d{digest}.{subscriber}");
    let tag = hex::encode(mac(secret, &mailing).finalize().into_bytes());
    Address::new(
        format!("{}+{mailing}.{}", base.user(), &tag[..TAG_HEX]),
        base.domain(),
    )
    .ok()
}

/// `(digest, subscriber)` from one of our VERP addresses, if `address`
/// is one with a genuine tag.
pub fn decode(config: &Config, secret: &[u8], address: &str) -> Option<(i64, i64)> {
    let base = config.bounces.address.as_ref()?;
    let (local, domain) = address.trim().rsplit_once('@')?;
    if !domain.eq_ignore_ascii_case(base.domain()) {
        return None;
    }
    let (user, token) = local.split_once('+')?;
    if !user.eq_ignore_ascii_case(base.user()) {
        return None;
    }
    let token = token.to_ascii_lowercase();
    let (mailing, tag) = token.rsplit_once('.')?;
    let (digest, subscriber) = mailing.strip_prefix('d')?.split_once('.')?;
    let (digest, subscriber): (i64, i64) = (digest.parse().ok()?, subscriber.parse().ok()?);
    if tag.len() != TAG_HEX {
        return None;
    }
    let tag = hex::decode(tag).ok()?;
    mac(secret, mailing).verify_truncated_left(&tag).ok()?;
    Some((digest, subscriber))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config(bounces: &str) -> Config {
        Config::parse(
            &format!("[site]\nbase_url = \"https://x.org\"\n{bounces}"),
            Path::new("config.toml"),
            Path::new("."),
        )
        .unwrap()
    }

    #[test]
    fn the_address_round_trips_and_a_forged_one_names_no_one() {
        let c = config("[bounces]\naddress = \"bounces@x.org\"\n");
        let secret = b"0123456789abcdef0123456789abcdef";
        let address = sender(&c, secret, 12, 3456).unwrap().to_string();
        assert!(
            address.starts_with("bounces+d12.3456.") && address.ends_with("@x.org"),
            "{address}"
        );
        assert!(address.split('@').next().unwrap().len() <= 64);
        assert_eq!(decode(&c, secret, &address), Some((12, 3456)));
        // Case changed by a relay: still ours.
        assert_eq!(
            decode(&c, secret, &address.to_ascii_uppercase()),
            Some((12, 3456))
        );
        // Another subscriber with the same tag, another secret, a damaged
        // tag, another domain: no one.
        let tag = address
            .split('.')
            .nth(2)
            .unwrap()
            .split('@')
            .next()
            .unwrap()
            .to_string();
        for forged in [
            format!("bounces+d12.3457.{tag}@x.org"),
            format!("bounces+d12.3456.{}@x.org", "0".repeat(12)),
            address.replace("@x.org", "@y.org"),
            "bounces@x.org".to_string(),
        ] {
            assert_eq!(decode(&c, secret, &forged), None, "{forged}");
        }
        assert_eq!(
            decode(&c, b"another secret of 32 bytes......", &address),
            None
        );
        // Without bounces.address: no VERP.
        assert!(sender(&config(""), secret, 1, 1).is_none());
    }
}
