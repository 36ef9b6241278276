//! What a message that came back is: a bounce (RFC 3464 delivery status
//! notification, or one of the older forms MTAs still write), a spam
//! complaint (RFC 5965 feedback report), an auto-reply (RFC 3834), a mailed
//! unsubscribe request (RFC 2369), or none of these; and whom it is about.
//!
//! MIME is mail-parser's; the report fields and the words of bounces that
//! follow no standard are read here (no kept crate parses them). The rules
//! lean one way: a bounce is hard (the address is taken off the list at
//! once) only when it says the address or its domain does not exist or has
//! moved; everything else that failed (a full mailbox, a policy refusal, a
//! timeout) is soft, and only soft bounces repeated over time take an
//! address off.

use std::sync::LazyLock;

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};
use regex::Regex;

/// What a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Delivery failed for [`Report::failures`].
    Bounce,
    /// Someone reported our message as spam.
    Complaint,
    /// An out-of-office or other automatic answer: not a bounce.
    AutoReply,
    /// A request to leave, mailed to `email.unsubscribe_mailto`.
    Unsubscribe,
    /// A status report that says the message was delivered or relayed.
    Delivered,
    /// None of these.
    Other,
}

/// A Message-ID of ours as found in a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OurId {
    pub digest: i64,
    pub subscriber: i64,
    pub store: String,
    /// Present in Message-IDs made since tags were added.
    pub tag: Option<String>,
}

/// One recipient a bounce is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The address that failed, as the report names it; `None` when it
    /// names none (the recipient is then found from our Message-ID).
    pub recipient: Option<String>,
    /// The enhanced status code (`5.1.1`), when the report gives one.
    pub status: Option<String>,
    /// The address is gone (unknown user or domain, moved): suppress now.
    pub hard: bool,
    /// What the remote server said, on one line, at most 300 characters.
    pub diagnostic: String,
    /// The report's `Original-Recipient`, when it differs (a forward):
    /// tried when `recipient` is no one on the list.
    pub original: Option<String>,
}

/// A message that came back, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub kind: Kind,
    /// For [`Kind::Bounce`]: each failed recipient (at least one).
    pub failures: Vec<Failure>,
    /// For [`Kind::Complaint`]: who complained, when the report says.
    pub complainant: Option<String>,
    /// The report's own Message-ID (without `<>`), which makes the same
    /// report read twice the same; `None` when it has none.
    pub message_id: Option<String>,
    /// One of our Message-IDs (`<digest-D.S.STORE.TAG@host>`) quoted in
    /// the report: to be trusted only once its store and tag are checked
    /// (see [`super::verp::message_tag`]).
    pub ours: Option<OurId>,
    /// For a report without a Message-ID (empty when it has one), a
    /// fingerprint of what it says (its date, subject and words, line ends
    /// and white space aside): the same report copied with LF or CRLF or an
    /// extra header is the same.
    pub fingerprint: String,
    /// Its `Date`, if it has one.
    pub date: Option<chrono::DateTime<chrono::Utc>>,
    /// Where the report was delivered (`To`, `Delivered-To`,
    /// `X-Original-To`, `Envelope-To`): a VERP address is one of these.
    pub delivered_to: Vec<String>,
    /// The report's `From` address (who asks, for an unsubscribe request).
    pub from: Option<String>,
    /// Its subject, on one line.
    pub subject: String,
}

/// Reads one message. Never fails: what cannot be parsed is [`Kind::Other`].
pub fn read(raw: &[u8]) -> Report {
    // mail-parser panics on some malformed MIME (a message/rfc822 part
    // holding only a Content-Type, found by an attack): such a message is
    // one we cannot make out, not the end of the run.
    let mut report = std::panic::catch_unwind(|| classify(raw)).unwrap_or_else(|_| empty(raw));
    // A report that failed for no one it can name (an empty status part,
    // an SES notification without recipients) is not a bounce to act on.
    if report.kind == Kind::Bounce && report.failures.is_empty() {
        report.kind = Kind::Other;
    }
    report
}

/// The report of a message that cannot be read: [`Kind::Other`].
fn empty(raw: &[u8]) -> Report {
    use sha2::Digest;
    Report {
        kind: Kind::Other,
        failures: Vec::new(),
        complainant: None,
        message_id: None,
        ours: None,
        fingerprint: hex::encode(sha2::Sha256::digest(raw)),
        date: None,
        delivered_to: Vec::new(),
        from: None,
        subject: String::new(),
    }
}

/// Headers read as values (see [`delivered_to`]); the rest that this
/// module reads (`Auto-Submitted`, `Return-Path`, ...) it reads raw, which
/// works for a header the parser skipped.
const DELIVERED_TO: [&str; 4] = [
    "Delivered-To",
    "X-Original-To",
    "Envelope-To",
    "X-Envelope-To",
];

/// The parser for reports: the MIME headers, `Date`, `Subject`, the
/// address headers, Message-IDs and [`DELIVERED_TO`] parsed, every other
/// header skipped. mail-parser's default parses every `Received` and
/// `DKIM-Signature` of the report and of the original it quotes, and copies
/// every other header, which no step here reads.
static PARSER: LazyLock<MessageParser> = LazyLock::new(|| {
    DELIVERED_TO.iter().fold(
        MessageParser::new()
            .with_minimal_headers()
            .with_message_ids()
            .default_header_ignore(),
        |parser, &name| parser.header_raw(name),
    )
});

fn classify(raw: &[u8]) -> Report {
    let Some(message) = PARSER.parse(raw) else {
        return empty(raw);
    };
    // Its words, made once: every step below reads them.
    let text = text_of(&message);
    let mut report = Report {
        kind: Kind::Other,
        failures: Vec::new(),
        complainant: None,
        message_id: message.message_id().map(str::to_string),
        ours: our_message_id(raw),
        fingerprint: match message.message_id() {
            Some(_) => String::new(),
            None => fingerprint(&message, &text),
        },
        date: message
            .date()
            .and_then(|d| chrono::DateTime::from_timestamp(d.to_timestamp(), 0)),
        delivered_to: delivered_to(&message),
        from: message
            .from()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .map(str::to_string),
        subject: one_line(message.subject().unwrap_or_default(), 200),
    };
    let report_type = message
        .content_type()
        .filter(|c| {
            c.ctype().eq_ignore_ascii_case("multipart")
                && c.subtype()
                    .is_some_and(|s| s.eq_ignore_ascii_case("report"))
        })
        .and_then(|c| c.attribute("report-type"))
        .map(str::to_ascii_lowercase);
    match report_type.as_deref() {
        Some("feedback-report") => {
            report.kind = Kind::Complaint;
            report.complainant = complainant(&message);
            return report;
        }
        Some("delivery-status") | Some("global-delivery-status") => {
            if let Some((kind, failures)) = delivery_status(&message, &text) {
                report.kind = kind;
                report.failures = failures;
                if kind != Kind::Bounce || !report.failures.is_empty() {
                    return report;
                }
            }
        }
        _ => {}
    }
    if let Some((kind, failures, complainant)) = ses_notification(&text) {
        report.kind = kind;
        report.failures = failures;
        report.complainant = complainant;
        return report;
    }
    if is_old_style_complaint(&message) {
        report.kind = Kind::Complaint;
        report.complainant = quoted_to(&message);
        return report;
    }
    // Bounces often say `Auto-Submitted: auto-replied` too (RFC 3834 asks
    // it of them), and so does every vacation responder: a vacation
    // subject, or those headers on a message that is not from a mailer
    // daemon with a status code in it, is an auto-reply; then the signs of
    // a bounce; then the other auto-reply headers.
    if has_vacation_subject(&message)
        || (is_auto_reply(&message) && !looks_like_daemon(&message, &text))
    {
        report.kind = Kind::AutoReply;
        return report;
    }
    if let Some(failures) = plain_bounce(&message, &text) {
        report.kind = Kind::Bounce;
        report.failures = failures;
        return report;
    }
    if is_auto_reply(&message) {
        report.kind = Kind::AutoReply;
        return report;
    }
    if asks_to_unsubscribe(&message) {
        report.kind = Kind::Unsubscribe;
    }
    report
}

/// Our Message-ID, `<digest-D.S.STORE.TAG@host>` (or, from before tags,
/// `<digest-D.S.STORE@host>`; or a welcome mail's
/// `<welcome-S.STORE.TAG@host>`, as digest 0), anywhere in the message (the quoted
/// original's headers, or its `In-Reply-To`/`References`).
fn our_message_id(raw: &[u8]) -> Option<OurId> {
    static OURS: LazyLock<regex::bytes::Regex> = LazyLock::new(|| {
        regex::bytes::Regex::new(
            r"<(?:digest-([0-9]{1,18})\.|welcome-)([0-9]{1,18})\.([0-9a-f]{8,64})(?:\.([0-9a-f]{12}))?@",
        )
        .expect("valid")
    });
    let found = OURS.captures(raw)?;
    let text = |i: usize| {
        found
            .get(i)
            .and_then(|m| std::str::from_utf8(m.as_bytes()).ok())
    };
    Some(OurId {
        // A welcome mail's (`<welcome-S.…>`) is digest 0, no digest.
        digest: match found.get(1) {
            Some(_) => text(1)?.parse().ok()?,
            None => 0,
        },
        subscriber: text(2)?.parse().ok()?,
        store: text(3)?.to_string(),
        tag: text(4).map(str::to_string),
    })
}

/// See [`Report::fingerprint`].
fn fingerprint(message: &Message, text: &str) -> String {
    use sha2::Digest;
    let mut hash = sha2::Sha256::new();
    hash.update(
        message
            .header_raw("Date")
            .unwrap_or_default()
            .trim()
            .as_bytes(),
    );
    hash.update(b"\n");
    hash.update(message.subject().unwrap_or_default().trim().as_bytes());
    hash.update(b"\n");
    for word in text.split_whitespace() {
        hash.update(word.as_bytes());
        hash.update(b" ");
    }
    hex::encode(hash.finalize())
}

fn delivered_to(message: &Message) -> Vec<String> {
    let mut found = Vec::new();
    for name in DELIVERED_TO {
        for value in message.header_values(name) {
            if let Some(text) = value.as_text() {
                found.extend(addresses_in(text));
            }
        }
    }
    if let Some(to) = message.to() {
        found.extend(to.iter().filter_map(|a| a.address()).map(str::to_string));
    }
    found.dedup();
    found
}

/// The message's text: its plain text parts, the parts of a nested
/// message left out; HTML turned into text (by mail-parser, which is slow)
/// only for a message with no plain text.
fn text_of(message: &Message) -> String {
    let mut text = String::new();
    for &i in &message.text_body {
        if let Some(PartType::Text(part)) = message.parts.get(i as usize).map(|p| &p.body) {
            text.push_str(part);
            text.push('\n');
        }
    }
    if text.is_empty() {
        for i in 0.. {
            match message.body_text(i) {
                Some(part) => {
                    text.push_str(&part);
                    text.push('\n');
                }
                None => break,
            }
        }
    }
    text
}

/// The body bytes of a part that is neither text nor a nested message
/// (a `message/delivery-status` or `message/feedback-report`).
fn part_bytes<'a>(
    message: &'a Message,
    part: &'a mail_parser::MessagePart,
) -> Option<std::borrow::Cow<'a, str>> {
    match &part.body {
        PartType::Text(t) => Some(std::borrow::Cow::Borrowed(t.as_ref())),
        PartType::Binary(b) | PartType::InlineBinary(b) => Some(String::from_utf8_lossy(b)),
        PartType::Message(_) => message
            .raw_message()
            .get(part.offset_body as usize..part.offset_end as usize)
            .map(String::from_utf8_lossy),
        _ => None,
    }
}

/// A part's content type, `type/subtype`, lower case.
fn mime_type(part: &mail_parser::MessagePart) -> String {
    part.content_type()
        .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or_default()).to_ascii_lowercase())
        .unwrap_or_default()
}

/// Field blocks of a report part (RFC 3464 §2.1, RFC 5965 §3.1): blocks
/// separated by blank lines, each `Name: value` lines, folded lines
/// joined. Names lower case.
fn field_blocks(text: &str) -> Vec<Vec<(String, String)>> {
    let mut blocks = Vec::new();
    let mut block: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !block.is_empty() {
                blocks.push(std::mem::take(&mut block));
            }
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = block.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            block.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    if !block.is_empty() {
        blocks.push(block);
    }
    blocks
}

fn field<'a>(block: &'a [(String, String)], name: &str) -> Option<&'a str> {
    block
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// An address field's address: `rfc822; ann@example.org` → `ann@example.org`.
fn typed_address(value: &str) -> Option<String> {
    let address = value.rsplit_once(';').map_or(value, |(_, a)| a);
    addresses_in(address).into_iter().next()
}

/// At most this many failures are read from one message: real bounces
/// name a few; a message naming thousands is no bounce of ours.
const MAX_FAILURES: usize = 1000;

/// The RFC 3464 report: a failure per recipient whose `Action` is `failed`
/// (or, with no `Action`, whose status is 5.x.x or 4.x.x). `delayed` is a
/// warning (the server keeps trying), not a failure: ignored, as are
/// `delivered`, `relayed` and `expanded`. `None` without a status part.
fn delivery_status(message: &Message, words: &str) -> Option<(Kind, Vec<Failure>)> {
    let part = message.parts.iter().find(|p| {
        matches!(
            mime_type(p).as_str(),
            "message/delivery-status" | "message/global-delivery-status"
        )
    })?;
    let text = part_bytes(message, part)?;
    let blocks = field_blocks(&text);
    // The human part, read once: it speaks for fields that are bare.
    let words_line = one_line(words, 300);
    let mut words_hard: Option<(Option<String>, bool)> = None;
    let mut failures = Vec::new();
    let mut not_failed = false;
    for block in blocks.iter() {
        let final_recipient = field(block, "final-recipient").and_then(typed_address);
        let original_recipient = field(block, "original-recipient").and_then(typed_address);
        let Some(recipient) = final_recipient
            .clone()
            .or_else(|| original_recipient.clone())
        else {
            continue;
        };
        let action = field(block, "action")
            .unwrap_or_default()
            .to_ascii_lowercase();
        let status = field(block, "status").and_then(status_code);
        let diagnostic = field(block, "diagnostic-code")
            .map(|d| d.split_once(';').map_or(d, |(_, t)| t))
            .unwrap_or_default();
        let failed = match action.split_whitespace().next().unwrap_or_default() {
            "failed" => true,
            "delayed" | "delivered" | "relayed" | "expanded" => false,
            _ => status.as_deref().is_some_and(|s| s.starts_with(['4', '5'])),
        };
        if !failed {
            not_failed = true;
            continue;
        }
        let hard = if diagnostic.trim().is_empty() {
            match &words_hard {
                Some((for_status, hard)) if *for_status == status => *hard,
                _ => {
                    let hard = is_hard(status.as_deref(), words);
                    words_hard = Some((status.clone(), hard));
                    hard
                }
            }
        } else {
            is_hard(status.as_deref(), diagnostic)
        };
        failures.push(Failure {
            original: original_recipient.filter(|o| !o.eq_ignore_ascii_case(&recipient)),
            recipient: Some(recipient),
            status,
            hard,
            diagnostic: if diagnostic.is_empty() {
                words_line.clone()
            } else {
                one_line(diagnostic, 300)
            },
        });
        if failures.len() >= MAX_FAILURES {
            break;
        }
    }
    if failures.is_empty() && not_failed {
        return Some((Kind::Delivered, failures));
    }
    Some((Kind::Bounce, failures))
}

/// Whether an SMTP refusal (`550 5.1.1 <ann@x.org>: user unknown`) says
/// the recipient's address is gone: an enhanced status 5.1.x (but not
/// 5.1.7 or 5.1.8, the sender's) or 5.2.x (but not 5.2.2, a full mailbox
/// in any words, nor 5.2.3, a message too large), whose words do not make
/// it passing or about us ("mailbox full", "temporarily", "sender", a
/// message size). Not a policy refusal (5.7.x), nor one without a status.
pub fn is_recipient_refusal(reply: &str) -> bool {
    let Some(status) = status_code(reply) else {
        return false;
    };
    let recipient_level = (status.starts_with("5.1.")
        && !matches!(status.as_str(), "5.1.7" | "5.1.8"))
        || (status.starts_with("5.2.") && !matches!(status.as_str(), "5.2.2" | "5.2.3"));
    recipient_level && !is_soft_in_words(reply) && !mentions_sender(reply)
}

/// The enhanced status code (`5.1.1`) in an SMTP reply or diagnostic.
pub fn status_of(text: &str) -> Option<String> {
    status_code(text)
}

/// `5.1.1` out of a Status field or a diagnostic.
fn status_code(text: &str) -> Option<String> {
    static STATUS: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\b([245])\.([0-9]{1,3})\.([0-9]{1,3})\b").expect("valid"));
    STATUS.find(text).map(|m| m.as_str().to_string())
}

/// Whether a failure means the address is gone. A status of 5.1.1 (bad
/// mailbox), 5.1.2 / 5.4.4 (no such domain), 5.1.6 (moved) or 5.1.10
/// (null MX) is, and so are words saying so; words that say the failure is
/// passing (a full mailbox, try later, a block or a policy) win over both.
fn is_hard(status: Option<&str>, text: &str) -> bool {
    static HARD: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r"(?ix) user\x20unknown | unknown\x20user | unknown\x20recipient | recipient\x20unknown
              | no\x20such\x20(user|mailbox|recipient|address|account|person|local\x20user)
              | (user|recipient|mailbox|address|account)\x20(is\x20)?not\x20found
              | (does|do)\x20not\x20exist | doesn'?t\x20exist | not\x20exist
              | invalid\x20(recipient|mailbox|address|user) | not\x20a\x20valid\x20(mailbox|user|recipient)
              | no\x20mailbox | mailbox\x20(unavailable|not\x20available|does\x20not)
              | unrouteable | unroutable | no\x20valid\x20recipients
              | host\x20(or\x20domain\x20name\x20)?not\x20found | domain\x20not\x20found | name\x20or\x20service\x20not\x20known
              | no\x20mx | null\x20mx | unknown\x20host | host\x20unknown | domain\x20does\x20not
              | has\x20moved | no\x20longer\x20(valid|available|active|in\x20use)
              | account\x20(has\x20been\x20)?(closed|removed|deleted|terminated)
              | no\x20such\x20domain | doesn'?t\x20have\x20an?\x20\S+\x20account | does\x20not\x20accept\x20mail
              | recipient\x20address\x20rejected:\x20access\x20denied | inactive\x20(email\x20)?address",
        )
        .expect("valid")
    });
    // Words count where they are near: the first 2,000 bytes.
    let text = &text[..floor_char_boundary(text, 2000)];
    // About the sender (5.1.7, 5.1.8) or a DNS failure, not the recipient.
    if status.is_some_and(|s| s.starts_with('4') || s == "5.1.7" || s == "5.1.8")
        || mentions_sender(text)
    {
        return false;
    }
    if is_soft_in_words(text) {
        return false;
    }
    HARD.is_match(text)
        || matches!(
            status,
            Some("5.1.1" | "5.1.2" | "5.1.3" | "5.1.6" | "5.1.10" | "5.4.4")
        )
}

/// Words that make a failure passing: a full mailbox, try later, a block,
/// a policy.
fn is_soft_in_words(text: &str) -> bool {
    static SOFT: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r"(?ix) quota | mailbox\x20is\x20full | mailbox\x20full | full\x20mailbox | storage | exceed
              | try\x20again | temporar | greylist | graylist | rate\x20limit | too\x20many
              | suspend | disabled | deactivated | blocked | blacklist | block\x20list | locked
              | spam | policy | reputation | dmarc | dkim | authenticat | open\x20relay",
        )
        .expect("valid")
    });
    SOFT.is_match(&text[..floor_char_boundary(text, 2000)])
}

/// Words that make a failure about the sender (or a DNS failure), not the
/// recipient.
fn mentions_sender(text: &str) -> bool {
    static SENDER: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)sender\s+(address|domain)|unroutable\s+sender|domain\s+of\s+sender|name\s+server\s+reply|sender\s+rejected")
            .expect("valid")
    });
    SENDER.is_match(&text[..floor_char_boundary(text, 2000)])
}

fn floor_char_boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// The complainant of a feedback report: `Original-Rcpt-To`, else the
/// `To` of the quoted original message (its headers or the whole message).
fn complainant(message: &Message) -> Option<String> {
    for part in &message.parts {
        let kind = mime_type(part);
        if kind == "message/feedback-report" {
            let text = part_bytes(message, part)?;
            for block in field_blocks(&text) {
                if let Some(to) = field(&block, "original-rcpt-to").and_then(typed_address) {
                    return Some(to);
                }
            }
        }
    }
    quoted_to(message)
}

/// The `To` address of the quoted original (a `message/rfc822` part or
/// `text/rfc822-headers`).
fn quoted_to(message: &Message) -> Option<String> {
    for part in &message.parts {
        match &part.body {
            PartType::Message(inner) => {
                if let Some(to) = inner.to().and_then(|a| a.first()).and_then(|a| a.address()) {
                    return Some(to.to_string());
                }
            }
            PartType::Text(text) if mime_type(part) == "text/rfc822-headers" => {
                let headers = PARSER.parse_headers(text.as_bytes())?;
                if let Some(to) = headers
                    .to()
                    .and_then(|a| a.first())
                    .and_then(|a| a.address())
                {
                    return Some(to.to_string());
                }
            }
            _ => {}
        }
    }
    None
}

/// An Amazon SES notification (its JSON, alone or inside an SNS
/// envelope's `Message`): a bounce (`Permanent` is hard, unless its
/// recipient's own status says otherwise), a complaint, or a delivery.
fn ses_notification(text: &str) -> Option<(Kind, Vec<Failure>, Option<String>)> {
    use serde_json::Value;
    let start = text.find('{')?;
    if !text.contains("notificationType") {
        return None;
    }
    let first = |json: &str| {
        serde_json::Deserializer::from_str(json)
            .into_iter::<Value>()
            .next()
            .and_then(Result::ok)
    };
    // Some relays wrap the JSON's long line: try it joined up too.
    let mut value = first(&text[start..]).or_else(|| {
        let joined: String = text[start..].split(['\r', '\n']).collect();
        first(&joined)
    })?;
    if let Some(inner) = value.get("Message").and_then(Value::as_str) {
        value = serde_json::from_str(inner).ok()?;
    }
    let str_of = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_string);
    match value.get("notificationType")?.as_str()? {
        "Bounce" => {
            let bounce = value.get("bounce")?;
            let permanent = str_of(bounce, "bounceType").as_deref() == Some("Permanent");
            let failures = bounce
                .get("bouncedRecipients")?
                .as_array()?
                .iter()
                .map(|r| {
                    let status = str_of(r, "status").as_deref().and_then(status_code);
                    let diagnostic = str_of(r, "diagnosticCode").unwrap_or_default();
                    Failure {
                        recipient: str_of(r, "emailAddress"),
                        hard: permanent && is_hard(status.as_deref(), &diagnostic)
                            || permanent && status.is_none() && diagnostic.is_empty(),
                        status,
                        diagnostic: one_line(&diagnostic, 300),
                        original: None,
                    }
                })
                .collect();
            Some((Kind::Bounce, failures, None))
        }
        "Complaint" => {
            let who = value
                .get("complaint")?
                .get("complainedRecipients")?
                .as_array()?
                .first()
                .and_then(|r| str_of(r, "emailAddress"));
            Some((Kind::Complaint, Vec::new(), who))
        }
        "Delivery" => Some((Kind::Delivered, Vec::new(), None)),
        _ => None,
    }
}

/// Hotmail's and others' complaints from before RFC 5965: the message
/// attached to "complaint about message from …".
fn is_old_style_complaint(message: &Message) -> bool {
    static SUBJECT: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)^\s*(complaint\s+about\s+message|abuse\s+report|spam\s+report)")
            .expect("valid")
    });
    SUBJECT.is_match(message.subject().unwrap_or_default())
}

/// A `To:` header line in the quoted original, when it is quoted as text.
fn quoted_to_in_text(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("To:").or_else(|| l.strip_prefix("to:")))
        .and_then(|v| addresses_in(v).into_iter().next())
}

/// RFC 3834 and the headers auto-responders use instead.
fn is_auto_reply(message: &Message) -> bool {
    let header = |name: &str| {
        message
            .header_raw(name)
            .map(|v| v.trim().to_ascii_lowercase())
    };
    if header("Auto-Submitted").is_some_and(|v| v.starts_with("auto-replied")) {
        return true;
    }
    if header("X-Autoreply").is_some() || header("X-Autorespond").is_some() {
        return true;
    }
    if header("Precedence").is_some_and(|v| v == "auto_reply") {
        return true;
    }
    has_vacation_subject(message)
}

/// From a mailer daemon (by its address or name), or with a bounce's
/// subject, or from no one with an SMTP status or reply code in its words:
/// how a bounce that also says `Auto-Submitted: auto-replied` differs from
/// a vacation message.
fn looks_like_daemon(message: &Message, text: &str) -> bool {
    static CODE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"\b[45][0-9][0-9]\b|\b[45]\.[0-9]{1,3}\.[0-9]{1,3}\b|\(#[45]\.[0-9]")
            .expect("valid")
    });
    let from = from_line(message);
    // Narrower than the subjects of `plain_bounce`: "rejected" or "bounce"
    // in a subject does not make an auto-reply a bounce.
    static BOUNCE_SUBJECT: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)undeliver|returned mail|mail delivery failed|delivery status notification|failure notice|delivery failure|could not be delivered|non-?delivery")
            .expect("valid")
    });
    DAEMON.is_match(&from)
        || BOUNCE_SUBJECT.is_match(message.subject().unwrap_or_default())
        || (from.trim().is_empty() && CODE.is_match(text))
}

/// A mailer daemon's name or address in a `From` line.
static DAEMON: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)mailer-daemon|postmaster|mail[ .]?delivery|mail[ .]?administrator|mdaemon|mail system")
        .expect("valid")
});

/// The `From` mailbox as one line, `NAME ADDRESS` (empty without one),
/// for the patterns that spot a mailer daemon by either.
fn from_line(message: &Message) -> String {
    message
        .from()
        .and_then(|a| a.first())
        .map(|a| {
            format!(
                "{} {}",
                a.name().unwrap_or_default(),
                a.address().unwrap_or_default()
            )
        })
        .unwrap_or_default()
}

/// A subject out-of-office answers use.
fn has_vacation_subject(message: &Message) -> bool {
    static SUBJECT: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)^\s*(auto(matic)?[ -]?(reply|response|antwort)|auto:|automatische antwort|out of (the )?office|vacation|abwesenheit|absence|autoreply|réponse automatique|on leave|away from)")
            .expect("valid")
    });
    SUBJECT.is_match(message.subject().unwrap_or_default())
}

/// A bounce without a status report: from a mailer daemon, or with a
/// subject bounces have, its recipients and words read from its text.
fn plain_bounce(message: &Message, text: &str) -> Option<Vec<Failure>> {
    static SUBJECT: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r"(?ix) undeliver | undelivered | returned\x20mail | delivery\x20(status\x20notification|failure|failed|has\x20failed|notification)
              | failure\x20notice | mail\x20delivery\x20(failed|failure|system|subsystem) | could\x20not\x20be\x20delivered
              | non(?:-|\x20)?deliver | nondeliverable | not\x20delivered | delivery\x20problem | mail\x20system\x20error
              | returned\x20to\x20sender | rejected | bounce | warning:\x20could\x20not | unzustellbar | message\x20blocked
              | delivery\x20report | permanent\x20error | mail\x20could\x20not",
        )
        .expect("valid")
    });
    let subject = message.subject().unwrap_or_default();
    let from = from_line(message);
    let null_sender = message
        .header_raw("Return-Path")
        .is_some_and(|v| v.trim() == "<>");
    // Here a `bounce@` or "Bounce Handler" sender counts too.
    let daemon = DAEMON.is_match(&from) || from.to_ascii_lowercase().contains("bounce");
    if !(SUBJECT.is_match(subject) || daemon || null_sender) {
        return None;
    }
    // The bounce's own words: up to where the original is quoted.
    static QUOTE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?im)^(-+ ?(original|undelivered|returned) message|-+ ?this is a copy|-+ ?below this line|content-type: message/rfc822|\s*the original message|\s*original message follows|--- The header of the original|\s*below is a copy|\s*a copy of the original|\s*original message headers|-+ ?forwarded message|begin forwarded message)")
            .expect("valid")
    });
    let own = QUOTE.find(text).map_or(text, |m| &text[..m.start()]);
    let sender = message
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let mut recipients: Vec<(String, usize)> = recipient_lines(own)
        .into_iter()
        .filter(|(a, _)| a.to_ascii_lowercase() != sender && !is_daemon_address(a))
        .take(MAX_FAILURES)
        .collect();
    if recipients.is_empty()
        && let Some(to) = quoted_to(message).or_else(|| quoted_to_in_text(&text[own.len()..]))
    {
        recipients.push((to, own.len()));
    }
    let status = status_code(own);
    let diagnostic = diagnostic_line(own);
    let hard = is_hard(status.as_deref(), own);
    // Each recipient's own words: from where it is named to where the
    // next one is, when the bounce lists several with their reasons.
    let mut starts: Vec<usize> = recipients.iter().map(|(_, at)| *at).collect();
    starts.sort_unstable();
    let mut failures: Vec<Failure> = recipients
        .iter()
        .map(|(r, start)| {
            let end = starts.partition_point(|&s| s <= *start).min(starts.len());
            let end = starts.get(end).copied().unwrap_or(own.len()).max(*start);
            // Bounded, so a message naming thousands stays linear.
            let end = end.min(floor_char_boundary(own, start + 2000)).max(*start);
            let segment = &own[*start..end];
            match (status_code(segment), diagnostic_line(segment)) {
                (Some(own_status), line) if !line.is_empty() => Failure {
                    recipient: Some(r.clone()),
                    hard: is_hard(Some(&own_status), segment),
                    status: Some(own_status),
                    diagnostic: line,
                    original: None,
                },
                _ => Failure {
                    recipient: Some(r.clone()),
                    status: status.clone(),
                    hard,
                    diagnostic: diagnostic.clone(),
                    original: None,
                },
            }
        })
        .collect();
    if failures.is_empty() {
        // Our Message-ID may still say whom it was for.
        failures.push(Failure {
            recipient: None,
            status,
            hard,
            diagnostic,
            original: None,
        });
    }
    Some(failures)
}

fn is_daemon_address(address: &str) -> bool {
    let local = address
        .split('@')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    matches!(
        local.as_str(),
        "mailer-daemon"
            | "postmaster"
            | "root"
            | "double-bounce"
            | "nobody"
            | "noreply"
            | "no-reply"
    )
}

/// An SMTP reply code (`550`) or enhanced status (`5.1.1`) in a bounce's words.
static REPLY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b[45][0-9][0-9]\b|\b[45]\.[0-9]{1,3}\.[0-9]{1,3}\b").expect("valid")
});

/// Addresses a bounce's text names as recipients, each with where it is
/// named: a line that is an address followed by `:`, `...` or `(`
/// (`<ann@example.org>:`, qmail's and Sendmail's forms), or an address alone
/// on its line when an SMTP reply follows within two lines (Exim's form; not
/// a contact address in the text), or one after `RCPT TO:`,
/// `Original-Recipient`, `Final-Recipient`, `To:`-like words or "delivery
/// to ... failed".
fn recipient_lines(text: &str) -> Vec<(String, usize)> {
    static LINE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r#"(?imx)
              ^[\x20\t]*<?([^\s<>@"()/:=?&]+@[^\s<>@"():;,]+)>?[\x20\t]*(:|\.\.\.|\(|\r?$)
            | rcpt\x20to:?\x20*<([^\s<>@]+@[^\s<>@]+)>
            | (final|original)-recipient:\x20*(rfc822;)?\x20*<?([^\s<>@;]+@[^\s<>@;]+)>?\s*$
            | (delivery\x20to|recipient|address|to)\x20*(the\x20following\x20(recipient|address)[^:]*:)?\x20*[:<]\x20*<?([^\s<>@"]+@[^\s<>@"(),;:]+)>?[\s,;:.)]
            "#,
        )
        .expect("valid")
    });
    let mut seen = std::collections::HashSet::new();
    let mut found = Vec::new();
    for captures in LINE.captures_iter(text) {
        let Some(m) = [1, 3, 6, 10].into_iter().find_map(|i| captures.get(i)) else {
            continue;
        };
        // An address alone on its line: a recipient only when an SMTP
        // reply follows, within the next two lines.
        if captures.get(1).is_some()
            && captures
                .get(2)
                .is_some_and(|t| t.as_str().trim().is_empty())
        {
            let after = &text[captures.get(0).map_or(m.end(), |w| w.end())..];
            let next: String = after.lines().take(3).collect::<Vec<_>>().join("\n");
            if !REPLY.is_match(&next) {
                continue;
            }
        }
        let address = m.as_str().trim_end_matches(['.', ',']).to_string();
        if address.contains('.') && seen.insert(address.to_ascii_lowercase()) {
            found.push((address, m.start()));
        }
    }
    found
}

/// The first line of a bounce's text that carries an SMTP reply or status.
fn diagnostic_line(text: &str) -> String {
    text.lines()
        .find(|l| REPLY.is_match(l))
        .map(|l| one_line(l, 300))
        .unwrap_or_default()
}

/// A mailed unsubscribe request: "unsubscribe" leads its subject (what
/// our `List-Unsubscribe` mailto sets) or is its body's first word.
fn asks_to_unsubscribe(message: &Message) -> bool {
    let first_word = |text: &str| {
        text.split(|c: char| !c.is_alphanumeric())
            .find(|w| !w.is_empty())
            .is_some_and(|w| w.eq_ignore_ascii_case("unsubscribe"))
    };
    first_word(message.subject().unwrap_or_default())
        || message.body_text(0).is_some_and(|b| first_word(&b))
}

/// Every address in `text` (RFC 5322 `local@domain`, loosely).
fn addresses_in(text: &str) -> Vec<String> {
    static ADDRESS: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+"#)
            .expect("valid")
    });
    ADDRESS
        .find_iter(text)
        .map(|m| m.as_str().to_string())
        .collect()
}

/// `text` on one line, white space squeezed, cut at `max` characters.
/// Control characters go too: the words of a report are the remote
/// server's, and `digests show` prints them to a terminal, where an escape
/// sequence would clear the screen, rewrite lines or set the clipboard.
fn one_line(text: &str, max: usize) -> String {
    let line = crate::text::one_line(text);
    match line.char_indices().nth(max) {
        Some((at, _)) => line[..at].to_string(),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DSN as Postfix writes one, for two recipients of our digest 7.
    const DSN: &str = "From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r
To: bounces@blog.example.org\r
Subject: Undelivered Mail Returned to Sender\r
Message-ID: <20261202.ABC@mx.example.net>\r
MIME-Version: 1.0\r
Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r
\r
--B\r
Content-Type: text/plain\r
\r
I'm sorry to have to inform you that your message could not be delivered.\r
\r
--B\r
Content-Type: message/delivery-status\r
\r
Reporting-MTA: dns; mx.example.net\r
\r
Final-Recipient: rfc822; gone@example.net\r
Action: failed\r
Status: 5.1.1\r
Diagnostic-Code: smtp; 550 5.1.1 <gone@example.net>: Recipient address\r
 rejected: User unknown in local recipient table\r
\r
Final-Recipient: rfc822; full@example.net\r
Action: failed\r
Status: 5.2.2\r
Diagnostic-Code: smtp; 552 5.2.2 Mailbox full\r
\r
--B\r
Content-Type: text/rfc822-headers\r
\r
From: Blog <blog@blog.example.org>\r
To: gone@example.net\r
Message-ID: <digest-7.42.0123456789abcdef@blog.example.org>\r
\r
--B--\r
";

    #[test]
    fn a_delivery_status_report_names_each_recipient_and_its_class() {
        let report = read(DSN.as_bytes());
        assert_eq!(report.kind, Kind::Bounce);
        assert_eq!(
            report.message_id.as_deref(),
            Some("20261202.ABC@mx.example.net")
        );
        let ours = report.ours.as_ref().unwrap();
        assert_eq!(
            (ours.digest, ours.subscriber, ours.store.as_str()),
            (7, 42, "0123456789abcdef")
        );
        assert_eq!(ours.tag, None, "a Message-ID from before tags");
        let got: Vec<(Option<&str>, Option<&str>, bool)> = report
            .failures
            .iter()
            .map(|f| (f.recipient.as_deref(), f.status.as_deref(), f.hard))
            .collect();
        assert_eq!(
            got,
            [
                (Some("gone@example.net"), Some("5.1.1"), true),
                (Some("full@example.net"), Some("5.2.2"), false)
            ]
        );
        assert!(
            report.failures[0]
                .diagnostic
                .contains("User unknown in local recipient table")
        );
    }

    #[test]
    fn a_welcome_mails_message_id_is_ours_as_digest_0() {
        let bounce = DSN.replace(
            "<digest-7.42.0123456789abcdef@",
            "<welcome-42.0123456789abcdef.b7b01fae980a@",
        );
        let ours = read(bounce.as_bytes()).ours.expect("ours");
        assert_eq!(
            (ours.digest, ours.subscriber, ours.store.as_str()),
            (0, 42, "0123456789abcdef")
        );
        assert_eq!(ours.tag.as_deref(), Some("b7b01fae980a"));
    }

    #[test]
    fn a_complaint_names_the_complainant() {
        let arf = "From: feedback@mail.example.com\r
Subject: FW: Digest\r
Content-Type: multipart/report; report-type=feedback-report; boundary=\"F\"\r
\r
--F\r
Content-Type: text/plain\r
\r
This is an email abuse report.\r
--F\r
Content-Type: message/feedback-report\r
\r
Feedback-Type: abuse\r
User-Agent: SomeGenerator/1.0\r
Version: 1\r
Original-Rcpt-To: <ann@example.com>\r
\r
--F--\r
";
        let report = read(arf.as_bytes());
        assert_eq!(report.kind, Kind::Complaint);
        assert_eq!(report.complainant.as_deref(), Some("ann@example.com"));
    }

    #[test]
    fn auto_replies_and_unsubscribe_requests_are_not_bounces() {
        let vacation = "From: Ann <ann@example.com>\r\nSubject: Out of Office: Digest\r\nAuto-Submitted: auto-replied\r\n\r\nI am away until Monday.\r\n";
        assert_eq!(read(vacation.as_bytes()).kind, Kind::AutoReply);
        let request = "From: Ann <ann@example.com>\r\nTo: leave@blog.example.org\r\nSubject: unsubscribe\r\n\r\n\r\n";
        let report = read(request.as_bytes());
        assert_eq!(report.kind, Kind::Unsubscribe);
        assert_eq!(report.from.as_deref(), Some("ann@example.com"));
        let letter = "From: Ann <ann@example.com>\r\nSubject: Re: Digest\r\n\r\nLoved the post; how do I unsubscribe my old address?\r\n";
        assert_eq!(read(letter.as_bytes()).kind, Kind::Other);
        assert_eq!(read(b"\xff\xfe not mail at all").kind, Kind::Other);
    }

    #[test]
    fn a_sender_problem_or_a_passing_one_is_never_hard() {
        for text in [
            "553 5.1.8 Domain of sender address bounces@x.org does not exist",
            "550 5.7.1 Recipient address rejected: User unknown; try again later",
            "452 4.2.2 Mailbox full",
            "550 5.7.26 Unauthenticated email from x.org is not accepted due to DMARC policy",
        ] {
            assert!(!is_hard(status_code(text).as_deref(), text), "{text}");
        }
        for text in [
            "550 5.1.1 User unknown",
            "550 No such user here",
            "550 Host unknown",
        ] {
            assert!(is_hard(status_code(text).as_deref(), text), "{text}");
        }
    }

    #[test]
    fn what_an_attack_sent_is_read_as_what_it_is() {
        // mail-parser panics on this one: not understood, not a crash.
        let panics = b"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nContent-Type: message/rfc822\r\n\r\n\r\n--b--\r\n";
        assert_eq!(read(panics).kind, Kind::Other);
        // A vacation responder's answer, from no mailer daemon: not a bounce.
        for subject in ["Auto: Digest", "Automatische Antwort: Digest", "Re: Digest"] {
            let vacation = format!(
                "From: Ann <ann@example.com>\r\nReturn-Path: <>\r\nSubject: {subject}\r\n\
                 Auto-Submitted: auto-replied (vacation)\r\n\r\nThis address is no longer available until March.\r\n"
            );
            assert_eq!(read(vacation.as_bytes()).kind, Kind::AutoReply, "{subject}");
        }
        // A delay warning is not a failure.
        let delayed = DSN.replace("Action: failed", "Action: delayed");
        assert_eq!(read(delayed.as_bytes()).kind, Kind::Delivered);
        // The same report without a Message-ID, LF or CRLF, with another
        // header: one fingerprint.
        let bare = DSN.replace("Message-ID: <20261202.ABC@mx.example.net>\r\n", "");
        let lf = bare.replace("\r\n", "\n");
        let more = format!("Delivered-To: x@y.org\r\n{bare}");
        let prints: Vec<String> = [bare.as_str(), &lf, &more]
            .iter()
            .map(|m| read(m.as_bytes()).fingerprint)
            .collect();
        assert_eq!(prints[0], prints[1]);
        assert_eq!(prints[0], prints[2]);
    }

    #[test]
    fn only_a_refusal_of_the_address_at_rcpt_is_a_bounce() {
        for reply in [
            "550 5.1.1 <a@x.org>: no such user",
            "550 5.2.1 account closed",
            "550 5.1.10 null MX",
        ] {
            assert!(is_recipient_refusal(reply), "{reply}");
        }
        for reply in [
            "550 5.7.1 relaying denied",
            "553 5.1.8 sender domain does not exist",
            "550 no such user",
            "554 5.3.4 message too big",
            // Found by an attack: passing, or about the message or sender.
            "552 5.2.2 Mailbox full, try again later",
            // 5.2.2 is a full mailbox, in any words.
            "552 5.2.2 <a@x.org>: Postfach voll",
            "550 5.2.1 Mailbox temporarily disabled",
            "552 5.2.3 Message size exceeds fixed maximum message size",
            "550 5.1.0 Sender address rejected",
        ] {
            assert!(!is_recipient_refusal(reply), "{reply}");
        }
    }

    #[test]
    fn recipients_named_in_words() {
        let found = |text: &str| -> Vec<String> {
            recipient_lines(text).into_iter().map(|(a, _)| a).collect()
        };
        assert_eq!(
            found("There was an error delivering your mail to <ann@example.org>.\n"),
            ["ann@example.org"]
        );
        // Exim's form: an address alone on its line, the reply under it.
        assert_eq!(
            found(
                "  gone@example.org\n    SMTP error from remote mail server after RCPT TO:<gone@example.org>:\n    550 5.1.1 User unknown\n"
            ),
            ["gone@example.org"]
        );
        // A contact address alone on its line is no recipient, LF or CRLF.
        for end in ["\n", "\r\n"] {
            let text =
                format!("Questions? Write to{end}   admin@example.net{end}{end}Thanks.{end}");
            assert!(found(&text).is_empty(), "{text:?}");
        }
    }
}
