//! Composing messages: one lettre [`Message`] per subscriber, with the headers
//! bulk mail needs (List-Id, one-click List-Unsubscribe) and a DKIM
//! signature that covers them.
//!
//! Everything here is a pure function of its arguments (the clock is passed
//! in), except that lettre stamps a DKIM signature with the real time and
//! picks a random MIME boundary.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context;
use chrono::{DateTime, Utc};
use email_encoding::headers::writer::EmailWriter;
use lettre::Message;
use lettre::message::dkim::{
    DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm,
    DkimSigningKey,
};
use lettre::message::header::{HeaderName, HeaderValue, MessageId};
use lettre::message::{Mailbox, MessageBuilder, MultiPart};

use super::digest::{RenderedDigest, personalize};
use super::merge::Personal;
use crate::config::Config;
use crate::links;
use crate::text::one_line;
use crate::token::{self, Purpose};

/// How a composer names its messages (`Message-ID`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stamp {
    /// A delivery of the ledger: `<digest-D.S.STORE@host>`, with the
    /// store's own random id ([`crate::store::Store::instance_id`]), so the
    /// message sent again after a crash has the same id (a receiver drops
    /// the duplicate, a bounce is matched) while two sites, or a store made
    /// anew, never reuse one for different mail.
    Delivery { store: String },
    /// A trial (`preview`, `send --to`, the outbox as a trial): a new id
    /// every time, so a receiver never drops the real message later as a
    /// duplicate of the trial.
    Trial,
}

/// Why a message could not be made.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("cannot read the DKIM key {path}: {source} (check email.dkim.key_file)")]
    DkimKeyRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}: {message} (email.dkim.key_file must be an unencrypted PEM RSA or Ed25519 private key)"
    )]
    DkimKey { path: PathBuf, message: String },
    #[error("cannot build the message to {to}: {source}")]
    Build {
        to: String,
        source: lettre::error::Error,
    },
}

const LIST_ID: HeaderName = HeaderName::new_from_ascii_str("List-Id");
const LIST_UNSUBSCRIBE: HeaderName = HeaderName::new_from_ascii_str("List-Unsubscribe");
const AUTO_SUBMITTED: HeaderName = HeaderName::new_from_ascii_str("Auto-Submitted");
const LIST_UNSUBSCRIBE_POST: HeaderName = HeaderName::new_from_ascii_str("List-Unsubscribe-Post");

/// Makes each subscriber's message of one digest.
pub struct Composer<'a> {
    config: &'a Config,
    digest: &'a RenderedDigest,
    digest_id: i64,
    secret: &'a [u8],
    stamp: Stamp,
    /// Read once: parsing the key per message would cost more than sending.
    dkim: Option<DkimConfig>,
}

impl<'a> Composer<'a> {
    pub fn new(
        config: &'a Config,
        digest: &'a RenderedDigest,
        digest_id: i64,
        secret: &'a [u8],
        stamp: Stamp,
    ) -> anyhow::Result<Composer<'a>> {
        Ok(Composer {
            config,
            digest,
            digest_id,
            secret,
            stamp,
            dkim: dkim_signer(config)?,
        })
    }

    /// The message for one subscriber, with their own unsubscribe link.
    pub fn message(
        &self,
        subscriber_id: i64,
        key: &str,
        email: &str,
        name: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Message> {
        let token = token::sign(self.secret, Purpose::Unsubscribe, key, None);
        let unsubscribe_url = links::unsubscribe_url(self.config, &token);
        let personal = personalize(self.digest, email, name, &unsubscribe_url);
        let address = email
            .parse()
            .with_context(|| format!("{email} is not a valid address"))?;
        let to = recipient(address, name);
        let message_id = match &self.stamp {
            Stamp::Delivery { store } => {
                digest_message_id(self.config, self.digest_id, subscriber_id, store)
            }
            Stamp::Trial => trial_message_id(self.config, "trial"),
        };
        Ok(build_message(
            self.config,
            &personal,
            &to,
            message_id,
            &unsubscribe_url,
            now,
            self.dkim.as_ref(),
        )?)
    }
}

/// A recipient's mailbox: the address, with the name on one line (or no
/// name when it is empty). Names are cleaned when they are stored, but one
/// stored another way (by hand, by an older version) may hold a line
/// break, and lettre panics writing a `To` header with one.
pub fn recipient(address: lettre::Address, name: &str) -> Mailbox {
    let name = one_line(name);
    Mailbox::new((!name.is_empty()).then_some(name), address)
}

/// The `Message-ID` of a digest to a subscriber, sent from the store
/// `store` ([`Stamp::Delivery`]): `<digest-D.S.STORE@host>`.
pub fn digest_message_id(
    config: &Config,
    digest_id: i64,
    subscriber_id: i64,
    store: &str,
) -> String {
    format!(
        "<digest-{digest_id}.{subscriber_id}.{store}@{}>",
        config.site.host()
    )
}

/// A `Message-ID` never made before: `<KIND-RANDOM@host>`.
pub fn trial_message_id(config: &Config, kind: &str) -> String {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).expect("the OS has a random source");
    format!("<{kind}-{}@{}>", hex::encode(bytes), config.site.host())
}

/// Builds a subscriber's digest message, signed with `dkim` when given
/// (load the key once with [`dkim_signer`]): multipart/alternative
/// with the text part then the HTML part, and the headers `From`,
/// `Reply-To` (when set), `To`, `Subject` (on one line, whatever the title
/// held), `Date` (from `now`), `Message-ID` (see [`Stamp`]), `List-Id`,
/// `List-Unsubscribe` (the https link, and a mailto when
/// `email.unsubscribe_mailto` is set) and `List-Unsubscribe-Post` (RFC 8058).
pub fn build_message(
    config: &Config,
    personal: &Personal,
    to: &Mailbox,
    message_id: String,
    unsubscribe_url: &str,
    now: DateTime<Utc>,
    dkim: Option<&DkimConfig>,
) -> Result<Message, MailError> {
    let email = &config.email;
    let mut unsubscribe = format!("<{}>", one_line(unsubscribe_url));
    if let Some(mailto) = &email.unsubscribe_mailto {
        unsubscribe.push_str(&format!(", <mailto:{mailto}?subject=unsubscribe>"));
    }
    let mut builder = head(config, to, &personal.subject, now, message_id)
        .raw_header(HeaderValue::new(LIST_ID, list_id(config)))
        .raw_header(HeaderValue::new(LIST_UNSUBSCRIBE, unsubscribe));
    // RFC 8058: one click only over https (see `links::one_click`).
    if links::one_click(config) {
        builder = builder.raw_header(HeaderValue::new(
            LIST_UNSUBSCRIBE_POST,
            "List-Unsubscribe=One-Click".into(),
        ));
    }
    finish(
        builder,
        to,
        personal.text.clone(),
        personal.html.clone(),
        dkim,
    )
}

/// The headers every message has: `From`, `To`, `Subject` (on one line),
/// `Date`, `Message-ID`, and `Reply-To` when set.
fn head(
    config: &Config,
    to: &Mailbox,
    subject: &str,
    now: DateTime<Utc>,
    message_id: String,
) -> MessageBuilder {
    let subject = one_line(subject);
    // The name on one line too: lettre panics on a line break in a display
    // name, and a store filled by hand or by another tool can hold one.
    let name = to.name.as_deref().map(one_line).filter(|n| !n.is_empty());
    let builder = Message::builder()
        .from(config.email.from.clone())
        .to(Mailbox::new(name, to.email.clone()));
    let mut builder = if subject.contains("=?") {
        builder.raw_header(encoded_subject(subject))
    } else {
        builder.subject(subject)
    };
    builder = builder
        .date(SystemTime::from(now))
        .header(MessageId::from(message_id));
    if let Some(reply_to) = &config.email.reply_to {
        builder = builder.reply_to(reply_to.clone());
    }
    builder
}

/// A `Subject` encoded whole per RFC 2047. lettre leaves each ASCII word as
/// it is, so a title holding `=?utf-8?q?...?=` would reach the reader as
/// whatever that encoded word decodes to.
fn encoded_subject(subject: String) -> HeaderValue {
    let name = HeaderName::new_from_ascii_str("Subject");
    let mut encoded = String::new();
    let mut writer = EmailWriter::new(&mut encoded, name.len() + ": ".len(), 0, false);
    email_encoding::headers::rfc2047::encode(&subject, &mut writer)
        .expect("writing to a String cannot fail");
    drop(writer);
    HeaderValue::dangerous_new_pre_encoded(name, subject, encoded)
}

/// The text and HTML parts (multipart/alternative), then the signature.
fn finish(
    builder: MessageBuilder,
    to: &Mailbox,
    text: String,
    html: String,
    dkim: Option<&DkimConfig>,
) -> Result<Message, MailError> {
    let mut message = builder
        .multipart(MultiPart::alternative_plain_html(text, html))
        .map_err(|source| MailError::Build {
            to: to.email.to_string(),
            source,
        })?;
    if let Some(dkim) = dkim {
        message.sign(dkim);
    }
    Ok(message)
}

/// Builds a message that is not a digest (a confirmation request): text
/// and HTML parts, `Auto-Submitted: auto-generated` (RFC 3834: sent by a
/// program, not in reply to a message, so no autoresponder answers it),
/// signed with `dkim` when given.
#[allow(clippy::too_many_arguments)]
pub fn build_notice(
    config: &Config,
    to: &Mailbox,
    subject: &str,
    text: String,
    html: String,
    message_id: String,
    now: DateTime<Utc>,
    dkim: Option<&DkimConfig>,
) -> Result<Message, MailError> {
    let builder = head(config, to, subject, now, message_id)
        .raw_header(HeaderValue::new(AUTO_SUBMITTED, "auto-generated".into()));
    finish(builder, to, text, html, dkim)
}

/// `List-Id: Site Title <newsletter.host>` (RFC 2919). A plain ASCII title
/// is a quoted string; in a title with other characters, whose words lettre
/// encodes per RFC 2047, the ASCII punctuation a phrase cannot hold goes.
fn list_id(config: &Config) -> String {
    let title = one_line(&config.site.title);
    let phrase = if title.is_ascii() {
        format!("\"{}\"", title.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        title
            .split(' ')
            .map(|word| {
                if word.is_ascii() {
                    word.chars()
                        .filter(|c| !"()<>[]:;@\\,.\"".contains(*c))
                        .collect()
                } else {
                    word.to_string()
                }
            })
            .filter(|w: &String| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!("{phrase} <newsletter.{}>", config.site.host())
        .trim_start()
        .to_string()
}

/// The DKIM signer of `[email.dkim]`, or `None` when there is none. The key
/// file is PEM: PKCS#8 (`BEGIN PRIVATE KEY`, RSA or Ed25519, as
/// `openssl genpkey` writes) or PKCS#1 (`BEGIN RSA PRIVATE KEY`); a bare
/// base64 Ed25519 seed works too. The signature (relaxed/relaxed) covers
/// From, To, Subject, Date, Message-ID, Reply-To, the List-* headers and
/// MIME-Version. Not Content-Type: lettre writes it with the body, after
/// signing, so listing it would make every signature fail to verify.
pub fn dkim_signer(config: &Config) -> Result<Option<DkimConfig>, MailError> {
    let Some(dkim) = &config.email.dkim else {
        return Ok(None);
    };
    let path = &dkim.key_file;
    let text = std::fs::read_to_string(path).map_err(|source| MailError::DkimKeyRead {
        path: path.clone(),
        source,
    })?;
    let key = signing_key(&text, path)?;
    let mut headers = vec![
        HeaderName::new_from_ascii_str("From"),
        HeaderName::new_from_ascii_str("To"),
        HeaderName::new_from_ascii_str("Subject"),
        HeaderName::new_from_ascii_str("Date"),
        HeaderName::new_from_ascii_str("Message-ID"),
    ];
    if config.email.reply_to.is_some() {
        headers.push(HeaderName::new_from_ascii_str("Reply-To"));
    }
    headers.extend([
        LIST_ID,
        LIST_UNSUBSCRIBE,
        LIST_UNSUBSCRIBE_POST,
        HeaderName::new_from_ascii_str("MIME-Version"),
    ]);
    Ok(Some(DkimConfig::new(
        dkim.selector.clone(),
        dkim.domain.clone(),
        key,
        headers,
        DkimCanonicalization {
            header: DkimCanonicalizationType::Relaxed,
            body: DkimCanonicalizationType::Relaxed,
        },
    )))
}

/// Object identifiers of the two key types, as DER content bytes.
const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const ED25519: &[u8] = &[0x2b, 0x65, 0x70];

/// lettre takes RSA keys as PKCS#1 PEM and Ed25519 keys as the base64 of
/// the 32-byte seed; this turns what key files hold into those.
fn signing_key(text: &str, path: &Path) -> Result<DkimSigningKey, MailError> {
    let bad = |message: &str| MailError::DkimKey {
        path: path.to_path_buf(),
        message: message.into(),
    };
    let Some((label, der)) = pem_block(text) else {
        let seed = base64_decode(text.trim()).filter(|seed| seed.len() == 32);
        return match seed {
            Some(seed) => DkimSigningKey::new(&base64_encode(&seed), DkimSigningAlgorithm::Ed25519)
                .map_err(|e| bad(&format!("not an Ed25519 key ({e})"))),
            None => Err(bad("no PEM block (-----BEGIN ...-----) in it")),
        };
    };
    let der = der.ok_or_else(|| bad("its PEM block is not valid base64"))?;
    match label.as_str() {
        "RSA PRIVATE KEY" => rsa_key(&der).map_err(|e| bad(&e)),
        "PRIVATE KEY" => {
            let (algorithm, key) =
                pkcs8(&der).ok_or_else(|| bad("not a valid PKCS#8 private key"))?;
            if algorithm == RSA_ENCRYPTION {
                rsa_key(key).map_err(|e| bad(&e))
            } else if algorithm == ED25519 {
                // The key is an OCTET STRING holding the 32-byte seed.
                let seed = der_read(key)
                    .filter(|(tag, seed, _)| *tag == 0x04 && seed.len() == 32)
                    .map(|(_, seed, _)| seed)
                    .ok_or_else(|| bad("not a valid Ed25519 private key"))?;
                DkimSigningKey::new(&base64_encode(seed), DkimSigningAlgorithm::Ed25519)
                    .map_err(|e| bad(&format!("not a valid Ed25519 key ({e})")))
            } else {
                Err(bad("the key is neither RSA nor Ed25519"))
            }
        }
        "ENCRYPTED PRIVATE KEY" => Err(bad(
            "the key is encrypted; decrypt it with `openssl pkey -in KEY -out KEY.pem`",
        )),
        "OPENSSH PRIVATE KEY" => Err(bad(
            "an OpenSSH key; convert it with `ssh-keygen -p -m PEM -f KEY`",
        )),
        other => Err(bad(&format!("a PEM \"{other}\", not a private key"))),
    }
}

fn rsa_key(pkcs1_der: &[u8]) -> Result<DkimSigningKey, String> {
    let mut pem = String::from("-----BEGIN RSA PRIVATE KEY-----\n");
    for line in base64_encode(pkcs1_der).as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END RSA PRIVATE KEY-----\n");
    DkimSigningKey::new(&pem, DkimSigningAlgorithm::Rsa)
        .map_err(|e| format!("not a valid RSA private key ({e})"))
}

/// The label and DER bytes of the first PEM block; `None` bytes when its
/// body is not base64 (or it has headers, as old encrypted keys do).
fn pem_block(text: &str) -> Option<(String, Option<Vec<u8>>)> {
    let start = text.find("-----BEGIN ")?;
    let rest = &text[start + "-----BEGIN ".len()..];
    let label_end = rest.find("-----")?;
    let label = rest[..label_end].trim().to_string();
    let body = &rest[label_end + 5..];
    let end = body.find("-----END ")?;
    let body = &body[..end];
    let der = if body.contains(':') {
        None
    } else {
        base64_decode(body)
    };
    Some((label, der))
}

/// PKCS#8 `PrivateKeyInfo`: the algorithm's OID and the private key's bytes.
fn pkcs8(der: &[u8]) -> Option<(&[u8], &[u8])> {
    let (tag, info, _) = der_read(der)?;
    if tag != 0x30 {
        return None;
    }
    let (version, _, rest) = der_read(info)?;
    let (algorithm, identifier, rest) = der_read(rest)?;
    let (key_tag, key, _) = der_read(rest)?;
    let (oid_tag, oid, _) = der_read(identifier)?;
    (version == 0x02 && algorithm == 0x30 && oid_tag == 0x06 && key_tag == 0x04)
        .then_some((oid, key))
}

/// One DER element: its tag, its content and the bytes after it.
fn der_read(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| acc << 8 | b as usize);
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64, whitespace ignored; `None` when it is not base64.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut bits, mut count, mut padding) = (0u32, 0u32, 0usize);
    for c in text.bytes().filter(|c| !c.is_ascii_whitespace()) {
        if c == b'=' {
            padding += 1;
            continue;
        }
        if padding > 0 {
            return None;
        }
        let value = BASE64.iter().position(|&b| b == c)? as u32;
        bits = bits << 6 | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    (padding <= 2 && !out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::email::digest::RenderedDigest;

    const SITE: &str =
        "[site]\ntitle = \"Prometheus Blog\"\nbase_url = \"https://prometheus.io/blog/\"\n";

    fn config(extra: &str) -> Config {
        Config::parse(
            &format!("{SITE}{extra}"),
            Path::new("config.toml"),
            Path::new(env!("CARGO_MANIFEST_DIR")),
        )
        .unwrap()
    }

    fn now() -> DateTime<Utc> {
        "2026-11-25T09:00:00Z".parse().unwrap()
    }

    fn personal(subject: &str) -> Personal {
        let digest = RenderedDigest {
            subject: subject.into(),
            html: "<p>Héllo <a href=\"\u{E000}unsubscribe_url\u{E001}\">unsubscribe</a></p>".into(),
            text: "Héllo\n\nUnsubscribe: \u{E000}unsubscribe_url\u{E001}\n".into(),
            post_urls: vec![],
        };
        personalize(&digest, "ann@example.org", "Ann", UNSUBSCRIBE)
    }

    const UNSUBSCRIBE: &str = "https://prometheus.io/unsubscribe/abc123";
    const STORE: &str = "0123456789abcdef";

    /// The message for `to()`, signed when the config has a DKIM key.
    fn build(config: &Config, personal: &Personal) -> Result<Message, MailError> {
        let dkim = dkim_signer(config)?;
        build_message(
            config,
            personal,
            &to(),
            digest_message_id(config, 7, 42, STORE),
            UNSUBSCRIBE,
            now(),
            dkim.as_ref(),
        )
    }

    fn to() -> Mailbox {
        "Ann Example <ann@example.org>".parse().unwrap()
    }

    fn formatted(config: &Config, subject: &str) -> String {
        let message = build(config, &personal(subject)).unwrap();
        String::from_utf8(message.formatted()).unwrap()
    }

    /// The message's top-level headers, unfolded, in order.
    fn headers(raw: &str) -> Vec<(String, String)> {
        let head = &raw[..raw.find("\r\n\r\n").expect("a blank line ends the headers")];
        let mut out: Vec<(String, String)> = Vec::new();
        for line in head.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                out.last_mut().expect("a header to continue").1 += line;
            } else {
                let (name, value) = line.split_once(':').expect("name: value");
                out.push((name.to_string(), value.trim_start().to_string()));
            }
        }
        out
    }

    fn header(raw: &str, name: &str) -> Option<String> {
        headers(raw)
            .into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    #[test]
    fn headers_for_bulk_mail() {
        let c = config(
            "[email]\nfrom = \"Prometheus Blog <blog@prometheus.io>\"\nreply_to = \"team@prometheus.io\"\nunsubscribe_mailto = \"unsubscribe@prometheus.io\"\n",
        );
        let raw = formatted(&c, "Prometheus Blog: Hello");
        let h = |name| header(&raw, name).unwrap_or_else(|| panic!("no {name} in\n{raw}"));
        assert_eq!(h("From"), "\"Prometheus Blog\" <blog@prometheus.io>");
        assert_eq!(h("Reply-To"), "team@prometheus.io");
        assert_eq!(h("To"), "\"Ann Example\" <ann@example.org>");
        assert_eq!(h("Subject"), "Prometheus Blog: Hello");
        assert_eq!(h("Date"), "Wed, 25 Nov 2026 09:00:00 +0000");
        assert_eq!(
            h("Message-ID"),
            "<digest-7.42.0123456789abcdef@prometheus.io>"
        );
        assert_eq!(
            h("List-Id"),
            "\"Prometheus Blog\" <newsletter.prometheus.io>"
        );
        assert_eq!(
            h("List-Unsubscribe"),
            "<https://prometheus.io/unsubscribe/abc123>, <mailto:unsubscribe@prometheus.io?subject=unsubscribe>"
        );
        assert_eq!(h("List-Unsubscribe-Post"), "List-Unsubscribe=One-Click");
        assert_eq!(h("MIME-Version"), "1.0");
        assert!(h("Content-Type").starts_with("multipart/alternative;"));
        assert!(header(&raw, "DKIM-Signature").is_none());
        assert!(header(&raw, "Bcc").is_none());

        // Without the optional ones.
        let raw = formatted(&config(""), "S");
        assert!(header(&raw, "Reply-To").is_none());
        assert_eq!(
            header(&raw, "List-Unsubscribe").unwrap(),
            "<https://prometheus.io/unsubscribe/abc123>"
        );
        assert_eq!(
            header(&raw, "From").unwrap(),
            "\"Prometheus Blog\" <newsletter@prometheus.io>"
        );
    }

    #[test]
    fn text_then_html_in_utf8() {
        let raw = formatted(&config(""), "S");
        let text = raw.find("Content-Type: text/plain; charset=utf-8").unwrap();
        let html = raw.find("Content-Type: text/html; charset=utf-8").unwrap();
        assert!(text < html, "{raw}");
        // Non-ASCII bodies are transfer-encoded: the message is 7-bit.
        assert!(raw.is_ascii(), "{raw}");
        assert!(raw.contains("Content-Transfer-Encoding: "));
    }

    #[test]
    fn message_id_is_the_same_for_the_same_digest_and_subscriber() {
        let c = config("");
        let a = build(&c, &personal("S")).unwrap();
        let b = build(&c, &personal("S")).unwrap();
        assert_eq!(
            header(&String::from_utf8(a.formatted()).unwrap(), "Message-ID"),
            header(&String::from_utf8(b.formatted()).unwrap(), "Message-ID")
        );
        let other = digest_message_id(&c, 7, 43, STORE);
        assert_eq!(other, "<digest-7.43.0123456789abcdef@prometheus.io>");
        let trials = [trial_message_id(&c, "trial"), trial_message_id(&c, "trial")];
        assert_ne!(trials[0], trials[1]);
        assert!(trials[0].starts_with("<trial-") && trials[0].ends_with("@prometheus.io>"));
    }

    #[test]
    fn a_title_with_a_newline_never_makes_another_header() {
        for evil in [
            "News\r\nBcc: evil@example.com",
            "News\nBcc: evil@example.com",
            "News\rBcc: evil@example.com",
            "Nëws\r\nBcc: evil@example.com",
        ] {
            let raw = formatted(&config(""), evil);
            let names: Vec<String> = headers(&raw).into_iter().map(|(n, _)| n).collect();
            assert!(
                !names.iter().any(|n| n.eq_ignore_ascii_case("Bcc")),
                "{names:?}\n{raw}"
            );
            // Every header line is a header or a folded continuation.
            let head = &raw[..raw.find("\r\n\r\n").unwrap()];
            for line in head.split("\r\n") {
                assert!(
                    line.starts_with([' ', '\t']) || line.contains(": "),
                    "{line:?}"
                );
            }
            let message = build(&config(""), &personal(evil)).unwrap();
            assert_eq!(
                message.envelope().to(),
                [to().email],
                "only the subscriber is a recipient"
            );
        }
        let raw = formatted(&config(""), "News\r\nBcc: evil@example.com");
        assert_eq!(
            header(&raw, "Subject").unwrap(),
            "News Bcc: evil@example.com"
        );
    }

    /// Found by the `digest` fuzz target (fuzz/artifacts/digest/name-with-line-break).
    #[test]
    fn a_name_with_a_line_break_is_put_on_one_line() {
        for name in ["E\n?", "Eve\r\nBcc: evil@example.com", "\r\n"] {
            let to = Mailbox::new(Some(name.into()), "eve@example.org".parse().unwrap());
            let c = config("");
            let message = build_message(
                &c,
                &personal("S"),
                &to,
                digest_message_id(&c, 7, 42, STORE),
                UNSUBSCRIBE,
                now(),
                None,
            )
            .unwrap();
            let raw = String::from_utf8(message.formatted()).unwrap();
            assert!(header(&raw, "Bcc").is_none(), "{raw}");
            let to_header = header(&raw, "To").unwrap();
            assert!(to_header.contains("eve@example.org"), "{to_header}");
            assert!(!to_header.contains(['\r', '\n']), "{to_header:?}");
        }
    }

    #[test]
    fn a_name_with_a_line_break_stays_in_the_to_header() {
        let address: lettre::Address = "ann@example.org".parse().unwrap();
        for evil in ["Ann\r\nBcc: evil@example.com", "Ann\u{2028}\rX: y", "\r\n"] {
            let to = recipient(address.clone(), evil);
            // lettre panicked writing this header before the name was cleaned.
            let message = build_message(
                &config(""),
                &personal("S"),
                &to,
                digest_message_id(&config(""), 7, 42, STORE),
                "https://prometheus.io/unsubscribe/t",
                "2026-11-25T09:00:00Z".parse().unwrap(),
                None,
            )
            .unwrap();
            let raw = String::from_utf8(message.formatted()).unwrap();
            assert!(
                header(&raw, "Bcc").is_none() && header(&raw, "X").is_none(),
                "{raw}"
            );
            assert_eq!(message.envelope().to(), std::slice::from_ref(&address));
        }
        assert_eq!(recipient(address.clone(), " \r\n ").name, None);
        assert_eq!(
            recipient(address, "Ann\r\nBcc: x").name.as_deref(),
            Some("Ann Bcc: x")
        );
    }

    #[test]
    fn non_ascii_subject_and_list_id_are_encoded() {
        let c = Config::parse(
            "[site]\ntitle = \"Blög: news, \\\"quotes\\\"\"\nbase_url = \"https://x.org\"\n",
            Path::new("config.toml"),
            Path::new("."),
        )
        .unwrap();
        let raw = formatted(&c, "Grüße aus Köln");
        let subject = header(&raw, "Subject").unwrap();
        assert!(subject.contains("=?utf-8?b?"), "{subject}");
        assert!(raw.is_ascii());
        let list_id = header(&raw, "List-Id").unwrap();
        assert!(
            list_id.ends_with(" news quotes <newsletter.x.org>"),
            "{list_id}"
        );
        assert!(list_id.starts_with("=?utf-8?b?"), "{list_id}");

        let c = Config::parse(
            "[site]\ntitle = \"A \\\"B\\\" \\\\ C\"\nbase_url = \"https://x.org\"\n",
            Path::new("config.toml"),
            Path::new("."),
        )
        .unwrap();
        assert_eq!(list_id_of(&c), "\"A \\\"B\\\" \\\\ C\" <newsletter.x.org>");
    }

    #[test]
    fn a_title_that_looks_encoded_is_encoded_and_reads_back_as_written() {
        for title in [
            "=?utf-8?q?Free_money?=",
            "Old =?iso-8859-1?b?QQ==?= news, and a long tail of words to fold the header line twice over",
        ] {
            let raw = formatted(&config(""), title);
            let message = mail_parser::MessageParser::default()
                .parse(raw.as_bytes())
                .unwrap();
            assert_eq!(message.subject(), Some(title), "{raw}");
            let subject = header(&raw, "Subject").unwrap();
            assert!(subject.starts_with("=?utf-8?b?"), "{subject}");
            assert!(raw.is_ascii());
        }
        // Other ASCII subjects stay readable as they are.
        assert_eq!(
            header(&formatted(&config(""), "A = B?"), "Subject").unwrap(),
            "A = B?"
        );
    }

    fn list_id_of(c: &Config) -> String {
        list_id(c)
    }

    #[test]
    fn personal_values_arrive_in_both_parts() {
        let c = config("");
        let message = build(&c, &personal("S")).unwrap();
        let raw = String::from_utf8(message.formatted()).unwrap();
        // Quoted-printable or base64: decode loosely by looking for the URL
        // in either encoding.
        let qp = raw.replace("=\r\n", "");
        assert!(
            qp.contains(UNSUBSCRIBE) || raw.contains(&base64_encode(b"https://")),
            "{raw}"
        );
    }

    const ED25519_PKCS8: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIFUFKTcu9u/TwJeyQr2EXiL2ZRwznEiS5Hu38oRbwmU4
-----END PRIVATE KEY-----
";

    /// Test keys only (1024 bits to keep the tests fast); the same key as
    /// PKCS#8 and as PKCS#1.
    const RSA_PKCS8: &str = "-----BEGIN PRIVATE KEY-----
MIICdgIBADANBgkqhkiG9w0BAQEFAASCAmAwggJcAgEAAoGBANoflwnducm3u/zW
hx1XomjM0imYI4SnvrucTsXcVjrv17DEqDC/SCw4OMn1i6h3b/0XevTUYwpzhTth
zQiwq4SyVoA4Fhf1r4E3kcYs9ZckB2ZaVuVeJ0cSTOO47XJfdSXHmMWzPvbPsfao
gk7fczgLrEO2Mf0Ap63VXAiwPhYBAgMBAAECgYA9qnCo+WZtAOTEtmG8ieoAdudz
mu9vsXzazXX3ujMmtmfkMbTbEzj0R3DGqASzvBCNHPZGAUV+zun7v8qXilryw1Fx
KiM/VyH6NmmiITbc7tP13+0KamydhExrZ0QLny72ZHF5h4iIWGvuteLKyBT4ulLk
7KIq2UjCNY4pAQ8oAQJBAPIV5QC4XeXsQLWaa2lzEaUSfwY6BpNamFCRF6V0HaO/
Hpd/4NpLZp1aXZ2fjrYzF7G8ASbNyoQ1V+NqJ/H9JckCQQDmqRxh+MmdOtUsIzrH
lgBVKXQY01T2QNst68YOZZ2kWjTnCQE9uzEfffcxjWh3g1IaHArbV34nugZiBctP
Ymp5AkA5evth/WTGOB9xP1YrtpfE8yxYBSUUjdlGn/zWW0jCXZnc7Q8tpeOajx9V
UtJm7qC8oeBAH3Lri2Lv63/KlIoJAkBts2Y1Tj6NEcsKx+KPw856slFt8SyKRcQ4
LdcvR7LW1LQuYUD+3AV75cvn/En/9SvaERY0xYLRYA7jFcBhC/x5AkEAkmuqjRuX
7Qgewf1PzUb1ZryjlK24bQzc87Y2ghJQacvOi75eYnWxv72wSEGk+1Xt4vsfI6bf
fze1lG3zAa3ypA==
-----END PRIVATE KEY-----
";

    const RSA_PKCS1: &str = "-----BEGIN RSA PRIVATE KEY-----
MIICXAIBAAKBgQDaH5cJ3bnJt7v81ocdV6JozNIpmCOEp767nE7F3FY679ewxKgw
v0gsODjJ9Yuod2/9F3r01GMKc4U7Yc0IsKuEslaAOBYX9a+BN5HGLPWXJAdmWlbl
XidHEkzjuO1yX3Ulx5jFsz72z7H2qIJO33M4C6xDtjH9AKet1VwIsD4WAQIDAQAB
AoGAPapwqPlmbQDkxLZhvInqAHbnc5rvb7F82s1197ozJrZn5DG02xM49EdwxqgE
s7wQjRz2RgFFfs7p+7/Kl4pa8sNRcSojP1ch+jZpoiE23O7T9d/tCmpsnYRMa2dE
C58u9mRxeYeIiFhr7rXiysgU+LpS5OyiKtlIwjWOKQEPKAECQQDyFeUAuF3l7EC1
mmtpcxGlEn8GOgaTWphQkReldB2jvx6Xf+DaS2adWl2dn462MxexvAEmzcqENVfj
aifx/SXJAkEA5qkcYfjJnTrVLCM6x5YAVSl0GNNU9kDbLevGDmWdpFo05wkBPbsx
H333MY1od4NSGhwK21d+J7oGYgXLT2JqeQJAOXr7Yf1kxjgfcT9WK7aXxPMsWAUl
FI3ZRp/81ltIwl2Z3O0PLaXjmo8fVVLSZu6gvKHgQB9y64ti7+t/ypSKCQJAbbNm
NU4+jRHLCsfij8POerJRbfEsikXEOC3XL0ey1tS0LmFA/twFe+XL5/xJ//Ur2hEW
NMWC0WAO4xXAYQv8eQJBAJJrqo0bl+0IHsH9T81G9Wa8o5StuG0M3PO2NoISUGnL
zou+XmJ1sb+9sEhBpPtV7eL7HyOm3383tZRt8wGt8qQ=
-----END RSA PRIVATE KEY-----
";

    fn dkim_config(key: &str) -> (tempfile::TempDir, Config) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("dkim.pem"), key).unwrap();
        let c = Config::parse(
            &format!(
                "{SITE}[email]\nfrom = \"Blog <blog@prometheus.io>\"\n[email.dkim]\nselector = \"mail\"\ndomain = \"prometheus.io\"\nkey_file = \"dkim.pem\"\n"
            ),
            Path::new("config.toml"),
            dir.path(),
        )
        .unwrap();
        (dir, c)
    }

    #[test]
    fn dkim_signs_every_key_format_and_covers_list_unsubscribe() {
        for (key, algorithm) in [
            (RSA_PKCS8, "rsa-sha256"),
            (RSA_PKCS1, "rsa-sha256"),
            (ED25519_PKCS8, "ed25519-sha256"),
            (
                "VQUpNy72799Al7JCvYReIvZlHDOcSJLke7fyhFvCZTg=\n",
                "ed25519-sha256",
            ),
        ] {
            let (_dir, c) = dkim_config(key);
            let raw = formatted(&c, "Signed");
            let signature = header(&raw, "DKIM-Signature").expect("a signature");
            assert!(signature.contains(&format!("a={algorithm}")), "{signature}");
            assert!(
                signature.contains("d=prometheus.io; s=mail;"),
                "{signature}"
            );
            assert!(signature.contains("c=relaxed/relaxed"), "{signature}");
            let signed: String = signature
                .split("h=")
                .nth(1)
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .split_whitespace()
                .collect();
            assert_eq!(
                signed,
                "from:to:subject:date:message-id:list-id:list-unsubscribe:list-unsubscribe-post:mime-version"
            );
        }
    }

    #[test]
    fn pkcs8_rsa_is_unwrapped_to_pkcs1() {
        let (_, der8) = pem_block(RSA_PKCS8).unwrap();
        let (_, der1) = pem_block(RSA_PKCS1).unwrap();
        let (oid, key) = pkcs8(der8.as_ref().unwrap()).unwrap();
        assert_eq!(oid, RSA_ENCRYPTION);
        assert_eq!(key, der1.unwrap().as_slice());
    }

    #[test]
    fn dkim_key_problems_name_the_file() {
        let (dir, c) = dkim_config(RSA_PKCS8);
        std::fs::remove_file(dir.path().join("dkim.pem")).unwrap();
        let err = dkim_signer(&c).unwrap_err().to_string();
        assert!(
            err.contains("dkim.pem") && err.contains("email.dkim.key_file"),
            "{err}"
        );
        let err = build(&c, &personal("S")).unwrap_err().to_string();
        assert!(err.contains("dkim.pem"), "{err}");

        for (key, says) in [
            ("not a key", "no PEM block"),
            (
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                "PKCS#8",
            ),
            (
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
                "encrypted",
            ),
            (
                "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
                "not a private key",
            ),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAK==\n-----END RSA PRIVATE KEY-----\n",
                "RSA",
            ),
        ] {
            let (_dir, c) = dkim_config(key);
            let err = dkim_signer(&c).unwrap_err().to_string();
            assert!(err.contains("dkim.pem") && err.contains(says), "{err}");
        }
        assert!(dkim_signer(&config("")).unwrap().is_none());
    }

    #[test]
    fn base64_round_trips() {
        for bytes in [&b""[..], b"f", b"fo", b"foo", b"foob", b"fooba", b"foobar"] {
            let encoded = base64_encode(bytes);
            if !bytes.is_empty() {
                assert_eq!(base64_decode(&encoded).unwrap(), bytes);
            }
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert!(base64_decode("Zm9v!").is_none());
        assert!(base64_decode("Zm=9v").is_none());
    }
}
