//! A digest of fuzzed posts to a subscriber with a fuzzed name, rendered
//! with the project's templates, personalised, made into a message and
//! formatted. Parsed back (mail-parser), the message has exactly the headers
//! a digest has (nothing from a title or name started a header line of its
//! own) and its Subject decodes to the subject that was rendered. Its
//! HTML part runs no script.
//!
//! The input, cut at 0xFF: the subscriber's name, then (title, body) for
//! up to three posts.

#![no_main]

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use lettre::message::Mailbox;
use libfuzzer_sys::fuzz_target;
use mail_parser::MessageParser;
use newsletter::config::Config;
use newsletter::content::{Post, parse_post};
use newsletter::email::compose::{build_message, digest_message_id};
use newsletter::email::digest::{personalize, render};
use newsletter_fuzz::{fields, script_in};

/// The subject prints the subscriber's name too, so it reaches a header.
const SETTINGS: &str = r#"
[email]
from = "Fuzz Blog <news@blog.example.org>"
reply_to = "team@blog.example.org"
unsubscribe_mailto = "leave@blog.example.org"

[digest]
subject = "{{ site.title }} for {{ subscriber.name }}: {{ posts[0].title }}{% if posts|length > 1 %} and {{ posts|length - 1 }} more{% endif %}"
max_posts = 2
"#;

/// The headers of every digest message with the settings above.
const HEADERS: [&str; 11] = [
    "content-type",
    "date",
    "from",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "message-id",
    "mime-version",
    "reply-to",
    "subject",
    "to",
];

const EMAIL: &str = "reader@example.org";
const UNSUBSCRIBE: &str = "https://blog.example.org/sub/unsubscribe/t0k3n";
const PREFERENCES: &str = "https://blog.example.org/preferences/t0k3n";

/// The project's own templates, from the folder above this crate.
static CONFIG: LazyLock<Config> = LazyLock::new(|| {
    newsletter_fuzz::config(SETTINGS, &Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
});

fuzz_target!(|data: &[u8]| {
    let config = &*CONFIG;
    let fields = fields(data, 7);
    let (name, posts) = fields
        .split_first()
        .expect("splitn gives one field at least");
    let mut list: Vec<Post> = Vec::new();
    for (i, pair) in posts.chunks(2).enumerate() {
        let body = pair.get(1).map_or("", String::as_str);
        let file = format!("2024-01-0{}-post-{i}.md", 3 - i);
        let mut post = parse_post(
            &format!("---\ntitle: x\n---\n{body}"),
            Path::new(&file),
            config,
        )
        .expect("a post with a title and a dated file name");
        // Set after parsing: a title is whatever text a post's front matter can hold.
        if !pair[0].is_empty() {
            post.title = pair[0].clone();
        }
        list.push(post);
    }
    if list.is_empty() {
        return;
    }
    let refs: Vec<&Post> = list.iter().collect();
    let Ok(digest) = render(config, &refs, 7) else {
        return;
    };
    let personal = personalize(&digest, None, EMAIL, name, UNSUBSCRIBE, PREFERENCES);
    if let Some(found) = script_in(&personal.html) {
        panic!("the digest runs script: {found}\n{}", personal.html);
    }
    let to = Mailbox::new(
        (!name.is_empty()).then(|| name.clone()),
        EMAIL.parse().unwrap(),
    );
    let now: DateTime<Utc> = "2024-06-01T09:00:00Z".parse().unwrap();
    let id = digest_message_id(
        config,
        7,
        42,
        "0123456789abcdef",
        b"a fuzzing secret of 32 bytes....",
    );
    let Ok(message) = build_message(config, &personal, &to, id, UNSUBSCRIBE, now, None) else {
        return;
    };
    let raw = message.formatted();

    let parsed = MessageParser::default()
        .parse(&raw[..])
        .unwrap_or_else(|| panic!("mail-parser cannot read\n{}", String::from_utf8_lossy(&raw)));
    let names: BTreeSet<String> = parsed
        .headers()
        .iter()
        .map(|h| h.name().to_ascii_lowercase())
        .collect();
    let expected: BTreeSet<String> = HEADERS.iter().map(|h| h.to_string()).collect();
    assert_eq!(
        names,
        expected,
        "headers of\n{}",
        String::from_utf8_lossy(&raw)
    );
    let subject = one_line(&personal.subject);
    assert_eq!(
        parsed.subject(),
        Some(subject.as_str()),
        "the Subject of\n{}",
        String::from_utf8_lossy(&raw)
    );
    let to = parsed
        .to()
        .and_then(|to| to.first())
        .and_then(|a| a.address());
    assert_eq!(to, Some(EMAIL), "To of\n{}", String::from_utf8_lossy(&raw));
});

/// The subject as `build_message` writes it: whitespace and control
/// characters folded into single spaces (README: line breaks in titles removed).
fn one_line(text: &str) -> String {
    text.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}
