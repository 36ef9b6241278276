//! Which posts a reader gets: the topics they chose (`[[topics]]`), and
//! the posts that belong to each.
//!
//! A reader's choice is stored as the keys they chose (`releases,events`),
//! or as nothing when they never chose: then they get every topic, those
//! added later too. A key no longer in the config is passed over. A post
//! belongs to the topics one of whose tags it carries; a post in no topic
//! goes to everyone.

use crate::config::{Config, Topic};

/// A set of topics, as bits in the order of `[[topics]]` (at most 64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Topics(pub u64);

impl Topics {
    /// Every topic of the config.
    pub fn all(config: &Config) -> Topics {
        match config.topics.len() {
            64 => Topics(u64::MAX),
            n => Topics((1u64 << n) - 1),
        }
    }

    /// A reader's topics from what the store holds: `None` (never chose)
    /// is every topic; keys no longer in the config are passed over.
    pub fn of_reader(config: &Config, stored: Option<&str>) -> Topics {
        match stored {
            None => Topics::all(config),
            Some(keys) => {
                let mut set = 0u64;
                for key in keys.split(',') {
                    if let Some(i) = config.topics.iter().position(|t| t.key == key) {
                        set |= 1 << i;
                    }
                }
                Topics(set)
            }
        }
    }

    /// The topics a post with these tags belongs to (none: it goes to
    /// every reader).
    pub fn of_post(config: &Config, tags: &[String]) -> Topics {
        let mut set = 0u64;
        for tag in tags {
            let tag = tag_key(tag);
            for (i, topic) in config.topics.iter().enumerate() {
                if topic.tags.contains(&tag) {
                    set |= 1 << i;
                }
            }
        }
        Topics(set)
    }

    /// Whether a reader with these topics gets a post that belongs to `post`.
    pub fn gets(self, post: Topics) -> bool {
        post.0 == 0 || self.0 & post.0 != 0
    }

    pub fn contains(self, i: usize) -> bool {
        i < 64 && self.0 & (1 << i) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The topics of the config in this set, in config order.
    pub fn iter(self, config: &Config) -> impl Iterator<Item = &Topic> {
        config
            .topics
            .iter()
            .enumerate()
            .filter(move |(i, _)| self.contains(*i))
            .map(|(_, t)| t)
    }

    /// What the store keeps for a reader who chose this set: `None` when
    /// it is every topic (so topics added later come too), else the keys.
    pub fn stored(self, config: &Config) -> Option<String> {
        if self == Topics::all(config) {
            return None;
        }
        Some(
            self.iter(config)
                .map(|t| t.key.as_str())
                .collect::<Vec<_>>()
                .join(","),
        )
    }
}

/// A tag as topics compare it: trimmed, in Unicode's composed form (NFC:
/// an `é` typed as `e` and an accent is the `é` typed as one), lowercase.
pub fn tag_key(tag: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    tag.trim().nfc().collect::<String>().to_lowercase()
}

/// Why a list of topic keys was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChoiceError {
    #[error("the site has no topics: add [[topics]] to the config first (see README.md)")]
    NoTopics,
    #[error("{key:?} is not a topic: use {known}")]
    Unknown { key: String, known: String },
    #[error("no topic chosen: choose at least one (to get nothing, unsubscribe)")]
    Empty,
}

/// The topics named by `keys` (as typed: `releases, events`), each one a
/// topic of the config; none at all is refused.
pub fn parse_keys<'k>(
    config: &Config,
    keys: impl IntoIterator<Item = &'k str>,
) -> Result<Topics, ChoiceError> {
    if config.topics.is_empty() {
        return Err(ChoiceError::NoTopics);
    }
    let mut set = 0u64;
    for key in keys {
        let key = key.trim();
        if key.is_empty() {
            continue;
        }
        match config.topics.iter().position(|t| t.key == key) {
            Some(i) => set |= 1 << i,
            None => {
                return Err(ChoiceError::Unknown {
                    key: key.to_string(),
                    known: config
                        .topics
                        .iter()
                        .map(|t| t.key.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
    }
    if set == 0 {
        return Err(ChoiceError::Empty);
    }
    Ok(Topics(set))
}

/// The keys in stored choices that the config no longer has: readers who
/// chose them get nothing for them (for a warning at `check`).
pub fn vanished_keys<'s>(
    config: &Config,
    stored: impl IntoIterator<Item = &'s str>,
) -> Vec<String> {
    let mut gone: Vec<String> = Vec::new();
    for keys in stored {
        for key in keys.split(',').filter(|k| !k.is_empty()) {
            if !config.topics.iter().any(|t| t.key == key) && !gone.iter().any(|g| g == key) {
                gone.push(key.to_string());
            }
        }
    }
    gone.sort();
    gone
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::parse(
            "[site]\nbase_url = \"https://x.org\"\n\
             [[topics]]\nkey = \"releases\"\nlabel = \"Releases\"\ntags = [\"release\"]\n\
             [[topics]]\nkey = \"events\"\nlabel = \"Events\"\ntags = [\"event\", \"meetup\"]\n\
             [[topics]]\nkey = \"docs\"\nlabel = \"Docs\"\ntags = [\"docs\"]\n",
            std::path::Path::new("config.toml"),
            std::path::Path::new("/site"),
        )
        .unwrap()
    }

    #[test]
    fn a_reader_gets_posts_of_their_topics_and_posts_of_none() {
        let config = config();
        let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let release = Topics::of_post(&config, &tags(&["Release", "go"]));
        // Composed or not, any case: one tag.
        assert_eq!(
            tag_key("E\u{301}VE\u{300}NEMENTS"),
            tag_key(" \u{e9}v\u{e8}nements")
        );
        let meetup = Topics::of_post(&config, &tags(&["meetup"]));
        let other = Topics::of_post(&config, &tags(&["go"]));
        assert_eq!(release, Topics(0b001));
        assert_eq!(meetup, Topics(0b010));
        assert!(other.is_empty());

        let everything = Topics::of_reader(&config, None);
        assert_eq!(everything, Topics(0b111));
        let events = Topics::of_reader(&config, Some("events,gone"));
        assert_eq!(events, Topics(0b010));
        assert!(events.gets(meetup) && events.gets(other) && !events.gets(release));
        assert!(everything.gets(release));
        // A reader whose every key is gone still gets the posts of no topic.
        let gone = Topics::of_reader(&config, Some("gone"));
        assert!(gone.gets(other) && !gone.gets(meetup));
    }

    #[test]
    fn choices_are_parsed_stored_and_checked() {
        let config = config();
        let set = parse_keys(&config, "docs, releases".split(',')).unwrap();
        assert_eq!(set.stored(&config).as_deref(), Some("releases,docs"));
        let all = parse_keys(&config, ["releases", "events", "docs"]).unwrap();
        assert_eq!(all.stored(&config), None);
        assert_eq!(parse_keys(&config, [""]), Err(ChoiceError::Empty));
        let err = parse_keys(&config, ["news"]).unwrap_err().to_string();
        assert!(
            err.contains("\"news\"") && err.contains("releases, events, docs"),
            "{err}"
        );
        assert_eq!(
            vanished_keys(&config, ["events,old", "old,older", "docs"]),
            ["old", "older"]
        );
    }
}
