//! Composing messages: one [`Outgoing`] message per subscriber, built with
//! lettre, with the headers bulk mail needs (List-Id, one-click
//! List-Unsubscribe) and DKIM signatures ([`super::dkim`]) that cover them.
//!
//! Everything here is a pure function of its arguments (the clock is passed
//! in), except that a DKIM signature is stamped with the real time and
//! lettre picks a random MIME boundary.

use std::time::SystemTime;

use anyhow::Context;
use chrono::{DateTime, Utc};
use email_encoding::headers::writer::EmailWriter;
use lettre::Message;
use lettre::address::Envelope;
use lettre::message::header::ContentTransferEncoding;
use lettre::message::header::{HeaderName, HeaderValue, MessageId};
use lettre::message::{Body, Mailbox, MessageBuilder, MultiPart};

use super::digest::{RenderedDigest, personalize};
use super::dkim::{DkimError, Signer};
use super::merge::{Choice, Personal};
use crate::config::Config;
use crate::links;
use crate::text::{one_line, one_line_within};
use crate::token::{self, Purpose};

/// How a composer names its messages (`Message-ID`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stamp {
    /// A delivery of the ledger: `<digest-D.S.STORE.TAG@host>` (TAG: see
    /// [`crate::bounces::verp::message_tag`]), with the
    /// store's own random id ([`crate::store::Store::instance_id`]), so the
    /// message sent again after a crash has the same id (a receiver drops
    /// the duplicate, a bounce is matched) while two sites, or a store made
    /// anew, never reuse one for different mail.
    Delivery { store: String },
    /// A welcome mail of the welcome ledger: `<welcome-S.STORE.TAG@host>`,
    /// the same again for the same subscriber, like a delivery's (TAG: the
    /// digest tag of "digest 0", which is never a digest), with the VERP
    /// sender of digest 0 when `bounces.address` is set: a bounce names
    /// the subscriber and no digest.
    Welcome { store: String },
    /// A trial (`preview`, `send --to`, the outbox as a trial): a new id
    /// every time, so a receiver never drops the real message later as a
    /// duplicate of the trial.
    Trial,
}

/// Why a message could not be made.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error(transparent)]
    Dkim(#[from] DkimError),
    #[error(
        "the message to {to} would have a {header} header line of {length} octets, over the 998 \
         that mail allows (a relay would break it, and its signature): shorten it (see email.from, \
         server.public_url)"
    )]
    LongLine {
        to: String,
        header: String,
        length: usize,
    },
    #[error("cannot build the message to {to}: {source}")]
    Build {
        to: String,
        source: lettre::error::Error,
    },
}

/// The longest display name put in a header, in characters (the sign-up
/// form's limit): a line of mail may not pass 998 octets, and a relay that
/// breaks a longer one breaks the DKIM signature with it. A subject is kept
/// whole: one with a word too long to fold is encoded (RFC 2047), whose
/// encoded words fold.
const NAME_MAX: usize = 100;

/// Longer words than this in a subject cannot be folded onto lines of
/// mail as they are.
const LONGEST_PLAIN_WORD: usize = 70;

/// The longest header line a message may have (RFC 5322 §2.1.1).
const LINE_MAX: usize = 998;

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
    dkim: Option<Signer>,
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
            dkim: Signer::load(config)?,
        })
    }

    /// The message for one subscriber, with their own links, carrying
    /// the posts of their `choice` (`None`: the whole mailing).
    pub fn message(
        &self,
        subscriber_id: i64,
        key: &str,
        email: &str,
        name: &str,
        choice: Option<&Choice>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Outgoing> {
        let (unsubscribe_url, preferences_url) = reader_links(self.config, self.secret, key);
        let personal = personalize(
            self.digest,
            choice,
            email,
            name,
            &unsubscribe_url,
            &preferences_url,
        );
        let address = email
            .parse()
            .with_context(|| format!("{email} is not a valid address"))?;
        let to = recipient(address, name);
        let message_id = match &self.stamp {
            Stamp::Delivery { store } => digest_message_id(
                self.config,
                self.digest_id,
                subscriber_id,
                store,
                self.secret,
            ),
            Stamp::Welcome { store } => {
                welcome_message_id(self.config, subscriber_id, store, self.secret)
            }
            Stamp::Trial => trial_message_id(self.config, "trial"),
        };
        let mut message = build_message(
            self.config,
            &personal,
            &to,
            message_id,
            &unsubscribe_url,
            now,
            self.dkim.as_ref(),
        )?;
        // VERP for the real deliveries: a bounce names its recipient.
        if let Stamp::Delivery { .. } | Stamp::Welcome { .. } = self.stamp
            && let Some(sender) = crate::bounces::verp::sender(
                self.config,
                self.secret,
                self.digest_id,
                subscriber_id,
            )
        {
            message.set_sender(sender);
        }
        Ok(message)
    }
}

/// A reader's unsubscribe link and preference page link, each signed for
/// its own purpose.
pub fn reader_links(config: &Config, secret: &[u8], key: &str) -> (String, String) {
    let unsubscribe = token::sign(secret, Purpose::Unsubscribe, key, None);
    let preferences = token::sign(secret, Purpose::Preferences, key, None);
    (
        links::unsubscribe_url(config, &unsubscribe),
        links::preferences_url(config, &preferences),
    )
}

/// A recipient's mailbox: the address, with the name on one line (or no
/// name when it is empty). Names are cleaned when they are stored, but one
/// stored another way (by hand, by an older version) may hold a line
/// break, and lettre panics writing a `To` header with one.
pub fn recipient(address: lettre::Address, name: &str) -> Mailbox {
    let name = one_line_within(name, NAME_MAX);
    Mailbox::new((!name.is_empty()).then_some(name), address)
}

/// The `Message-ID` of a digest to a subscriber, sent from the store
/// `store` ([`Stamp::Delivery`]): `<digest-D.S.STORE@host>`.
pub fn digest_message_id(
    config: &Config,
    digest_id: i64,
    subscriber_id: i64,
    store: &str,
    secret: &[u8],
) -> String {
    let tag = crate::bounces::verp::message_tag(secret, digest_id, subscriber_id);
    format!(
        "<digest-{digest_id}.{subscriber_id}.{store}.{tag}@{}>",
        config.site.host()
    )
}

/// The `Message-ID` of a subscriber's welcome mail ([`Stamp::Welcome`]):
/// `<welcome-S.STORE.TAG@host>`, read back by the bounce parser as
/// digest 0.
pub fn welcome_message_id(
    config: &Config,
    subscriber_id: i64,
    store: &str,
    secret: &[u8],
) -> String {
    let tag = crate::bounces::verp::message_tag(secret, 0, subscriber_id);
    format!(
        "<welcome-{subscriber_id}.{store}.{tag}@{}>",
        config.site.host()
    )
}

/// A `Message-ID` never made before: `<KIND-RANDOM@host>`.
pub fn trial_message_id(config: &Config, kind: &str) -> String {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).expect("the OS has a random source");
    format!("<{kind}-{}@{}>", hex::encode(bytes), config.site.host())
}

/// A message ready to go: its envelope, and its bytes as they are sent
/// (signed when there are DKIM keys).
#[derive(Debug, Clone)]
pub struct Outgoing {
    envelope: Envelope,
    bytes: Vec<u8>,
}

impl Outgoing {
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// The whole message, CRLF line ends, as written to the wire or a file.
    pub fn formatted(&self) -> &[u8] {
        &self.bytes
    }

    /// Sends it with `sender` as the envelope sender (MAIL FROM: where
    /// bounces go) instead of `email.from`.
    pub fn set_sender(&mut self, sender: lettre::Address) {
        if let Ok(envelope) = Envelope::new(Some(sender), self.envelope.to().to_vec()) {
            self.envelope = envelope;
        }
    }
}

/// Builds a subscriber's digest message, signed by `dkim` when given
/// (load the keys once with [`Signer::load`]): multipart/alternative
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
    dkim: Option<&Signer>,
) -> Result<Outgoing, MailError> {
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
        body(&personal.text),
        body(&personal.html),
        dkim,
    )
}

/// A part's body, encoded as lettre would choose (7bit when it can be,
/// else quoted-printable or base64, whichever is shorter), with its line
/// endings made CRLF on the way. lettre does the same for a `String`, but
/// inserts each `\r` in place (moving the rest of the text once per line,
/// and a digest part has hundreds), which took a tenth of a send's time.
fn body(text: &str) -> Body {
    use email_encoding::body::Encoding;
    let text = crlf(text);
    match Encoding::choose(text.as_str(), false) {
        Encoding::SevenBit => {
            Body::dangerous_pre_encoded(text.into_bytes(), ContentTransferEncoding::SevenBit)
        }
        Encoding::QuotedPrintable => Body::dangerous_pre_encoded(
            quoted_printable::encode(text.as_bytes()),
            ContentTransferEncoding::QuotedPrintable,
        ),
        Encoding::EightBit | Encoding::Base64 => {
            let mut out =
                String::with_capacity(email_encoding::body::base64::encoded_len(text.len()));
            email_encoding::body::base64::encode(text.as_bytes(), &mut out)
                .expect("base64 into a String does not fail");
            Body::dangerous_pre_encoded(out.into_bytes(), ContentTransferEncoding::Base64)
        }
    }
}

/// `text` with every line ending CRLF, as mail has them.
fn crlf(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 32);
    for line in text.split_inclusive('\n') {
        match line.strip_suffix('\n') {
            Some(body) if !body.ends_with('\r') => {
                out.push_str(body);
                out.push_str("\r\n");
            }
            _ => out.push_str(line),
        }
    }
    out
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
    let name = to
        .name
        .as_deref()
        .map(|n| one_line_within(n, NAME_MAX))
        .filter(|n| !n.is_empty());
    let builder = Message::builder()
        .from(config.email.from.clone())
        .to(Mailbox::new(name, to.email.clone()));
    let mut builder =
        if subject.contains("=?") || subject.split(' ').any(|w| w.len() > LONGEST_PLAIN_WORD) {
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

/// The text and HTML parts (multipart/alternative), then the signatures,
/// over the message as formatted (see [`super::dkim`]).
fn finish(
    builder: MessageBuilder,
    to: &Mailbox,
    text: Body,
    html: Body,
    dkim: Option<&Signer>,
) -> Result<Outgoing, MailError> {
    let message: Message = builder
        .multipart(MultiPart::alternative_plain_html(text, html))
        .map_err(|source| MailError::Build {
            to: to.email.to_string(),
            source,
        })?;
    let bytes = message.formatted();
    let head_end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(bytes.len());
    if let Some(line) = bytes[..head_end]
        .split(|&b| b == b'\n')
        .find(|line| line.len() > LINE_MAX + 1)
    {
        let header = String::from_utf8_lossy(line.split(|&b| b == b':').next().unwrap_or_default())
            .trim()
            .to_string();
        return Err(MailError::LongLine {
            to: to.email.to_string(),
            header,
            length: line.len() - 1,
        });
    }
    let bytes = match dkim {
        Some(signer) => signer.sign(&bytes)?,
        None => bytes,
    };
    Ok(Outgoing {
        envelope: message.envelope().clone(),
        bytes,
    })
}

/// Builds a message that is not a digest (a confirmation request): text
/// and HTML parts, `Auto-Submitted: auto-generated` (RFC 3834: sent by a
/// program, not in reply to a message, so no autoresponder answers it),
/// signed by `dkim` when given.
#[allow(clippy::too_many_arguments)]
pub fn build_notice(
    config: &Config,
    to: &Mailbox,
    subject: &str,
    text: String,
    html: String,
    message_id: String,
    now: DateTime<Utc>,
    dkim: Option<&Signer>,
) -> Result<Outgoing, MailError> {
    let builder = head(config, to, subject, now, message_id)
        .raw_header(HeaderValue::new(AUTO_SUBMITTED, "auto-generated".into()));
    finish(builder, to, body(&text), body(&html), dkim)
}

/// `List-Id: Site Title <newsletter.host>` (RFC 2919). A plain ASCII title
/// is a quoted string; in a title with other characters, whose words lettre
/// encodes per RFC 2047, the ASCII punctuation a phrase cannot hold goes.
fn list_id(config: &Config) -> String {
    let title = one_line_within(&config.site.title, NAME_MAX);
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

#[cfg(test)]
mod tests {
    use std::path::Path;

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
            page: String::new(),
            post_urls: vec![],
            whole: None,
        };
        personalize(&digest, None, "ann@example.org", "Ann", UNSUBSCRIBE, "")
    }

    const UNSUBSCRIBE: &str = "https://prometheus.io/unsubscribe/abc123";
    const STORE: &str = "0123456789abcdef";
    const SECRET: &[u8] = b"a secret of thirty-two bytes....";

    /// The message for `to()`, signed when the config has a DKIM key.
    fn build(config: &Config, personal: &Personal) -> Result<Outgoing, MailError> {
        let dkim = Signer::load(config)?;
        build_message(
            config,
            personal,
            &to(),
            digest_message_id(config, 7, 42, STORE, SECRET),
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
        String::from_utf8(message.formatted().to_vec()).unwrap()
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
            "<digest-7.42.0123456789abcdef.b7b01fae980a@prometheus.io>"
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
            header(std::str::from_utf8(a.formatted()).unwrap(), "Message-ID"),
            header(std::str::from_utf8(b.formatted()).unwrap(), "Message-ID")
        );
        let other = digest_message_id(&c, 7, 43, STORE, SECRET);
        assert_eq!(
            other,
            "<digest-7.43.0123456789abcdef.efc71bf9086f@prometheus.io>"
        );
        // The tag is the store's to make: another secret, another tag.
        assert_ne!(
            other,
            digest_message_id(&c, 7, 43, STORE, b"another secret")
        );
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
                digest_message_id(&c, 7, 42, STORE, SECRET),
                UNSUBSCRIBE,
                now(),
                None,
            )
            .unwrap();
            let raw = String::from_utf8(message.formatted().to_vec()).unwrap();
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
                digest_message_id(&config(""), 7, 42, STORE, SECRET),
                "https://prometheus.io/unsubscribe/t",
                "2026-11-25T09:00:00Z".parse().unwrap(),
                None,
            )
            .unwrap();
            let raw = String::from_utf8(message.formatted().to_vec()).unwrap();
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
        let parsed = mail_parser::MessageParser::default()
            .parse(message.formatted())
            .unwrap();
        let text = parsed.body_text(0).unwrap();
        let html = parsed.body_html(0).unwrap();
        assert!(text.contains(UNSUBSCRIBE), "{text}");
        assert!(html.contains(UNSUBSCRIBE), "{html}");
    }
}
