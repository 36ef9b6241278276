//! Signed tokens for unsubscribe (and, later, confirmation) links.
//!
//! A token is `KEY.EXPIRES.MAC`: the subscriber's key (random, kept with
//! them in an export; the row id for rows from before keys, which is what
//! tokens of earlier versions carry, so their links keep working), a Unix
//! time after which it is void (0: never), and HMAC-SHA256 over the
//! purpose, key and expiry with the store's secret. It cannot be forged or
//! guessed without the secret, and it is checked in constant time.

use hmac::{KeyInit, Mac};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// What a token is for: a token for one purpose never works for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Unsubscribe,
    Confirm,
    /// The preference page: a reader's topics and name.
    Preferences,
}

impl Purpose {
    fn label(self) -> &'static str {
        match self {
            Purpose::Unsubscribe => "unsubscribe",
            Purpose::Confirm => "confirm",
            Purpose::Preferences => "preferences",
        }
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the link is not valid")]
    Invalid,
    #[error("the link has expired")]
    Expired,
}

fn mac(secret: &[u8], purpose: Purpose, key: &str, expires: i64) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(format!("{}:{key}:{expires}", purpose.label()).as_bytes());
    mac
}

/// A token for the subscriber `key` (see [`crate::store::is_key`]), void
/// after `expires` (Unix seconds; `None`: never).
pub fn sign(secret: &[u8], purpose: Purpose, key: &str, expires: Option<i64>) -> String {
    let expires = expires.unwrap_or(0);
    let tag = mac(secret, purpose, key, expires).finalize().into_bytes();
    format!("{key}.{expires}.{}", hex::encode(tag))
}

/// The subscriber key a token was made for, if it is genuine and not
/// expired at `now` (Unix seconds).
pub fn verify(
    secret: &[u8],
    purpose: Purpose,
    token: &str,
    now: i64,
) -> Result<String, TokenError> {
    let mut parts = token.split('.');
    let (Some(key), Some(expires), Some(tag), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Invalid);
    };
    if !crate::store::is_key(key) {
        return Err(TokenError::Invalid);
    }
    // Only as `sign` writes it (lower-case hex, the expiry's plain digits):
    // `redact` takes tokens out of the log by that form, so no other
    // spelling of a genuine token (`+1796…`, a MAC in capitals) may work.
    let expires_text = expires;
    let expires: i64 = expires.parse().map_err(|_| TokenError::Invalid)?;
    if expires.to_string() != expires_text
        || !tag
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(TokenError::Invalid);
    }
    let tag = hex::decode(tag).map_err(|_| TokenError::Invalid)?;
    mac(secret, purpose, key, expires)
        .verify_slice(&tag)
        .map_err(|_| TokenError::Invalid)?;
    if expires != 0 && now > expires {
        return Err(TokenError::Expired);
    }
    Ok(key.to_string())
}

/// The expiry (Unix seconds; 0: never) a token carries. Only meaningful
/// once [`verify`] has accepted the token.
pub fn expiry(token: &str) -> Option<i64> {
    token.split('.').nth(1)?.parse().ok()
}

/// `text` with every token in it (`KEY.EXPIRES.MAC`, the MAC 64 hex
/// digits) replaced by `…`: the last guard of the log, whatever crate
/// wrote the line (an HTML parser tracing a confirmation mail it reads
/// logs the link's token as text).
pub fn redact(text: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let is_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    let mut redacted: Option<Vec<u8>> = None;
    let mut copied = 0;
    let mut at = 0;
    while at < text.len() {
        if !is_hex(text[at]) {
            at += 1;
            continue;
        }
        let start = at;
        while at < text.len() && is_hex(text[at]) {
            at += 1;
        }
        if at - start != 64 || start < 4 || text[start - 1] != b'.' {
            continue;
        }
        // Back over `EXPIRES.` and `KEY`.
        let expiry_end = start - 1;
        let mut expiry = expiry_end;
        while expiry > 0 && text[expiry - 1].is_ascii_digit() {
            expiry -= 1;
        }
        if expiry == expiry_end || expiry < 2 || text[expiry - 1] != b'.' {
            continue;
        }
        let key_end = expiry - 1;
        let mut key = key_end;
        while key > 0 && is_hex(text[key - 1]) {
            key -= 1;
        }
        if key == key_end {
            continue;
        }
        // Tokens run together (`KEY.EXPIRES.MAC.EXPIRES.MAC`): this one's
        // key is the last one's MAC, already left out.
        let key = key.max(copied);
        let out = redacted.get_or_insert_with(|| Vec::with_capacity(text.len()));
        out.extend_from_slice(&text[copied..key]);
        out.extend_from_slice("…".as_bytes());
        copied = at;
    }
    match redacted {
        Some(mut out) => {
            out.extend_from_slice(&text[copied..]);
            std::borrow::Cow::Owned(out)
        }
        None => std::borrow::Cow::Borrowed(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_genuine_token_verifies() {
        let token = sign(SECRET, Purpose::Unsubscribe, "42", None);
        assert_eq!(
            verify(SECRET, Purpose::Unsubscribe, &token, 1_900_000_000).as_deref(),
            Ok("42")
        );
        let token = sign(SECRET, Purpose::Unsubscribe, "0a1b2c3d4e5f60718293", None);
        assert_eq!(
            verify(SECRET, Purpose::Unsubscribe, &token, 0).as_deref(),
            Ok("0a1b2c3d4e5f60718293")
        );
    }

    #[test]
    fn forged_truncated_or_repurposed_tokens_fail() {
        let token = sign(SECRET, Purpose::Unsubscribe, "42", None);
        let forged = token.replacen("42.", "43.", 1);
        assert_eq!(
            verify(SECRET, Purpose::Unsubscribe, &forged, 0),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            verify(SECRET, Purpose::Unsubscribe, &token[..token.len() - 2], 0),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            verify(b"other secret", Purpose::Unsubscribe, &token, 0),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            verify(SECRET, Purpose::Confirm, &token, 0),
            Err(TokenError::Invalid)
        );
        let (rest, mac) = token.rsplit_once('.').unwrap();
        for respelled in [
            format!("{rest}.{}", mac.to_ascii_uppercase()),
            token.replacen(".0.", ".+0.", 1),
            token.replacen(".0.", ".00.", 1),
        ] {
            assert_eq!(
                verify(SECRET, Purpose::Unsubscribe, &respelled, 0),
                Err(TokenError::Invalid),
                "{respelled}"
            );
        }
        for junk in ["", "x", "1.2", "1.2.3.4", "A.0.00", "-1.0.00", "1.0.zz"] {
            assert_eq!(
                verify(SECRET, Purpose::Unsubscribe, junk, 0),
                Err(TokenError::Invalid),
                "{junk}"
            );
        }
    }

    #[test]
    fn redact_removes_every_token_and_nothing_else() {
        let unsubscribe = sign(SECRET, Purpose::Unsubscribe, "0a1b2c3d4e5f60718293", None);
        let confirm = sign(SECRET, Purpose::Confirm, "7", Some(1_796_205_602));
        let line = format!(
            "TRACE got characters \"{confirm}\" then https://x.org/unsubscribe/{unsubscribe}\n"
        );
        assert_eq!(
            String::from_utf8(redact(line.as_bytes()).into_owned()).unwrap(),
            "TRACE got characters \"…\" then https://x.org/unsubscribe/…\n"
        );
        let mac = unsubscribe.rsplit_once('.').unwrap().1;
        let digits = "0".repeat(64);
        for (run_together, left) in [
            (format!("/x/a.1.{mac}.1.{mac}"), "/x/……"),
            (format!("/x/a.1.{digits}.{digits}"), "/x/……"),
            (format!("{confirm}.{confirm} end"), "….… end"),
        ] {
            let redacted = redact(run_together.as_bytes());
            assert_eq!(
                std::str::from_utf8(&redacted).unwrap(),
                left,
                "{run_together}"
            );
        }
        for kept in [
            "no token here at all".to_string(),
            format!("a SHA-256 {mac} on its own"),
            format!("version 1.2.{mac}0"),
            "1.0.00".to_string(),
        ] {
            assert!(
                matches!(redact(kept.as_bytes()), std::borrow::Cow::Borrowed(_)),
                "{kept}"
            );
        }
    }

    #[test]
    fn an_expired_token_fails_even_though_genuine() {
        let token = sign(SECRET, Purpose::Confirm, "7", Some(1000));
        assert_eq!(
            verify(SECRET, Purpose::Confirm, &token, 999).as_deref(),
            Ok("7")
        );
        assert_eq!(
            verify(SECRET, Purpose::Confirm, &token, 1001),
            Err(TokenError::Expired)
        );
        let moved = token.replacen(".1000.", ".5000.", 1);
        assert_eq!(
            verify(SECRET, Purpose::Confirm, &moved, 1001),
            Err(TokenError::Invalid)
        );
    }
}
