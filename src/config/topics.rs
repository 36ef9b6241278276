//! `[[topics]]`: what readers may choose to get.

use serde::Deserialize;

use super::{ConfigError, Source};

/// The most topics a site may have: a reader's choice is kept as a set
/// of up to this many.
pub const MAX_TOPICS: usize = 64;

/// One `[[topics]]` entry: a post belongs to it when one of its tags (or
/// categories) is one of `tags`, compared without regard to case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic {
    /// What the store, the CLI and forms name it by: `releases`.
    pub key: String,
    /// What readers see: `Release announcements`.
    pub label: String,
    /// Lowercased.
    pub tags: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTopic {
    key: String,
    label: String,
    tags: Vec<String>,
}

/// True for a topic key: 1 to 40 of `a`–`z`, `0`–`9`, `-` and `_`,
/// starting with a letter or digit (it is typed in `--topics a,b` and
/// sent in forms); not `all`, which the CLI reads as every topic.
pub fn is_topic_key(key: &str) -> bool {
    key != "all"
        && (1..=40).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && !key.starts_with(['-', '_'])
}

/// Checks every `[[topics]]` entry.
pub(super) fn check(raw: Vec<RawTopic>, source: &Source) -> Result<Vec<Topic>, ConfigError> {
    if raw.len() > MAX_TOPICS {
        return Err(source.invalid(
            "topics",
            format!(
                "has {} entries: a site may have at most {MAX_TOPICS}; merge some",
                raw.len()
            ),
        ));
    }
    let mut topics: Vec<Topic> = Vec::with_capacity(raw.len());
    for (n, raw) in raw.into_iter().enumerate() {
        let which = format!("(topic {}, {:?})", n + 1, raw.key);
        if !is_topic_key(&raw.key) {
            return Err(source.invalid(
                "topics.key",
                format!(
                    "{which} is not a key: use 1 to 40 lowercase letters, digits, `-` and `_`, \
                     e.g. \"releases\" (not \"all\", which means every topic)"
                ),
            ));
        }
        if topics.iter().any(|t| t.key == raw.key) {
            return Err(source.invalid(
                "topics.key",
                format!("{which} is given twice: each topic needs a key of its own"),
            ));
        }
        let label = crate::text::one_line(&raw.label);
        if label.is_empty() || label.chars().count() > 100 {
            return Err(source.invalid(
                "topics.label",
                format!(
                    "{which} must be 1 to 100 characters: what readers see beside its checkbox"
                ),
            ));
        }
        let mut tags: Vec<String> = Vec::new();
        for tag in &raw.tags {
            let tag = crate::topics::tag_key(tag);
            if tag.is_empty() {
                return Err(source.invalid(
                    "topics.tags",
                    format!("{which} has an empty tag; remove it"),
                ));
            }
            if !tags.contains(&tag) {
                tags.push(tag);
            }
        }
        if tags.is_empty() {
            return Err(source.invalid(
                "topics.tags",
                format!(
                    "{which} has no tags, so no post would belong to it: list the tags or \
                     categories of its posts, e.g. tags = [\"release\"]"
                ),
            ));
        }
        topics.push(Topic {
            key: raw.key,
            label,
            tags,
        });
    }
    Ok(topics)
}

#[cfg(test)]
mod tests {
    use crate::config::tests::parse;

    const SITE: &str = "[site]\nbase_url = \"https://x.org\"\n";

    #[test]
    fn topics_are_read_and_their_mistakes_named() {
        let config = parse(&format!(
            "{SITE}[[topics]]\nkey = \"releases\"\nlabel = \"Release announcements\"\n\
             tags = [\"Release\", \"releases\", \"release\"]\n\
             [[topics]]\nkey = \"community\"\nlabel = \"Community\"\ntags = [\"events\"]\n"
        ))
        .unwrap();
        assert_eq!(config.topics.len(), 2);
        assert_eq!(config.topics[0].tags, ["release", "releases"]);
        assert!(parse(SITE).unwrap().topics.is_empty());

        let topic = |key: &str, label: &str, tags: &str| {
            format!("[[topics]]\nkey = {key:?}\nlabel = {label:?}\ntags = {tags}\n")
        };
        for (topics, says) in [
            (topic("Releases", "R", "[\"r\"]"), "topics.key"),
            (topic("", "R", "[\"r\"]"), "topics.key"),
            (topic("a,b", "R", "[\"r\"]"), "topics.key"),
            (topic("all", "R", "[\"r\"]"), "topics.key"),
            (
                topic("a", "R", "[\"r\"]") + &topic("a", "S", "[\"s\"]"),
                "given twice",
            ),
            (topic("a", " ", "[\"r\"]"), "topics.label"),
            (topic("a", "R", "[]"), "no tags"),
            (topic("a", "R", "[\" \"]"), "empty tag"),
            (
                "[[topics]]\nkey = \"a\"\nlabel = \"A\"\n".to_string(),
                "tags",
            ),
            (
                (0..65)
                    .map(|i| topic(&format!("t{i}"), "T", "[\"t\"]"))
                    .collect(),
                "at most 64",
            ),
        ] {
            let err = parse(&format!("{SITE}{topics}")).unwrap_err().to_string();
            assert!(err.contains(says), "{topics}: {err}");
        }
    }
}
