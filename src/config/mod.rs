//! `config.toml`: the site, where content lives and how feeds are written.
//!
//! Every section has defaults except `site.base_url`, unknown keys are
//! refused, and relative paths are resolved against the config file's folder.
//! Each section lives in its own file with its raw (as written) form, its
//! defaults and its check; [`Config::parse`] runs the checks in turn.
//! Secrets never come from the file: [`Config::load`] reads them from the
//! environment, once.

use std::path::{Path, PathBuf};

use serde::Deserialize;

mod archive;
mod bounces;
mod content;
mod digest;
mod email;
mod feeds;
pub mod layout;
mod schedule;
mod secrets;
mod server;
mod site;
mod smtp;
mod store;
mod topics;
mod values;
mod welcome;

pub use archive::Archive;
pub use bounces::{Bounces, Imap};
pub use content::{Content, PERMALINK_TOKENS, UrlDate, foreign_placeholder};
pub use digest::{DEFAULT_SUBJECT, Digest};
pub use email::{Dkim, Email, OutboxMode};
pub use feeds::{Feeds, IframePolicy, RssGuid};
pub use schedule::Schedule;
pub use secrets::Secrets;
pub use server::Server;
pub use site::Site;
pub use smtp::{MAX_RELAYS, PASSWORD_ENV, Security, Smtp};
pub use store::Store;
pub use topics::{MAX_TOPICS, Topic, is_topic_key};
pub use values::is_loopback;
pub use welcome::Welcome;

/// A configuration problem, always naming the key or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path} (pass --config PATH, or create it: see README.md)")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{path}: `{key}` {message}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        message: String,
    },
    #[error(
        "{what} would send digests, but there is no [smtp] section: each would only be written to \
         the outbox as a trial and never reach anyone. Add an [smtp] section (see README.md), or set \
         email.outbox_mode = \"deliver\" if another program sends the mail in the outbox"
    )]
    NoDelivery { what: String },
    #[error(
        "`{key}` = {dir:?} holds {what} ({file:?}), which anything serving that folder would publish: \
         put the feeds in a folder of their own (e.g. \"public\"), away from the store, the outbox, \
         the config, the DKIM key and the templates"
    )]
    Published {
        key: &'static str,
        dir: PathBuf,
        file: PathBuf,
        what: &'static str,
    },
}

/// The whole configuration, after validation.
#[derive(Debug, Clone)]
pub struct Config {
    pub site: Site,
    pub content: Content,
    pub feeds: Feeds,
    pub email: Email,
    pub digest: Digest,
    pub store: Store,
    /// The relays (`[smtp]`, or each `[[smtp]]`); none: messages go to
    /// `email.outbox` as `.eml` files.
    pub smtp: Vec<Smtp>,
    pub server: Server,
    pub schedule: Schedule,
    pub bounces: Bounces,
    pub archive: Archive,
    pub welcome: Welcome,
    /// `[[topics]]`, in the order written; none: every reader gets every post.
    pub topics: Vec<Topic>,
    /// The config file itself.
    pub path: PathBuf,
    /// From the environment by [`Config::load`]; all `None` after [`Config::parse`].
    pub secrets: Secrets,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    site: site::RawSite,
    #[serde(default)]
    content: content::RawContent,
    #[serde(default)]
    feeds: feeds::RawFeeds,
    #[serde(default)]
    email: email::RawEmail,
    #[serde(default)]
    digest: digest::RawDigest,
    #[serde(default)]
    store: store::RawStore,
    #[serde(default)]
    smtp: smtp::RawRelays,
    #[serde(default)]
    server: server::RawServer,
    #[serde(default)]
    schedule: schedule::RawSchedule,
    #[serde(default)]
    bounces: bounces::RawBounces,
    #[serde(default)]
    archive: archive::RawArchive,
    #[serde(default)]
    welcome: welcome::RawWelcome,
    #[serde(default)]
    topics: Vec<topics::RawTopic>,
}

/// Where the text being checked came from: the file its errors name, and the
/// folder its relative paths are resolved against.
struct Source<'a> {
    path: &'a Path,
    folder: &'a Path,
}

impl Source<'_> {
    /// The error for a bad value at `key`; `message` says what to write instead.
    fn invalid(&self, key: &'static str, message: String) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            key,
            message,
        }
    }

    /// A path from the file, relative to the file's folder (absolute ones stay).
    fn resolve(&self, path: impl AsRef<Path>) -> PathBuf {
        self.folder.join(path)
    }
}

impl Config {
    /// Reads and validates the config file at `path`, and the secrets from
    /// the environment (the one place config reads it).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let folder = path.parent().unwrap_or(Path::new("."));
        let config = Config::parse(&text, path, folder)?;
        let password_envs: Vec<&str> = config
            .smtp
            .iter()
            .map(|s| s.password_env.as_str())
            .collect();
        Ok(Config {
            secrets: Secrets::from_env(&password_envs),
            ..config
        })
    }

    /// Parses config text; `path` names it in errors, relative paths are joined to `folder`.
    /// Reads no environment: `secrets` are all `None`.
    pub fn parse(text: &str, path: &Path, folder: &Path) -> Result<Config, ConfigError> {
        let mut raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let source = Source { path, folder };

        // One section after another: with several mistakes in a file, the
        // first in this order is reported. Later sections may use earlier ones.
        let site = site::check(raw.site, &source)?;
        let content = content::check(raw.content, &source)?;
        let hub = raw.feeds.hub.take();
        let mut feeds = feeds::check(raw.feeds, &source)?;
        // email.from defaults to newsletter@ the site's host, named by its title.
        let email = email::check(raw.email, &site, &source)?;
        let digest = digest::check(raw.digest, &source)?;
        let store = store::check(raw.store, &source);
        let smtp = smtp::check(raw.smtp, &source)?;
        // server.public_url defaults to site.base_url.
        let server = server::check(raw.server, &site.base_url, &source)?;
        // schedule.digest is a cron expression in site.timezone.
        let schedule = schedule::check(raw.schedule, site.timezone, &source)?;
        let bounces = bounces::check(raw.bounces, &source)?;
        // feeds.hub has always been checked last; see feeds::check_hub.
        feeds.hub = feeds::check_hub(hub, &source)?;
        let archive = archive::check(raw.archive, &feeds, &source)?;
        let welcome = welcome::check(raw.welcome, &source)?;
        let topics = topics::check(raw.topics, &source)?;

        let config = Config {
            site,
            content,
            feeds,
            email,
            digest,
            store,
            smtp,
            server,
            schedule,
            bounces,
            archive,
            welcome,
            topics,
            path: path.to_path_buf(),
            secrets: Secrets::default(),
        };
        layout::check_output_dir(&config, &config.feeds.output_dir, "feeds.output_dir")?;
        Ok(config)
    }

    /// Whether `send` delivers: to the `[smtp]` server, or to an outbox
    /// that `email.outbox_mode = "deliver"` makes a pickup folder. When it
    /// does not, `send` writes the outbox as a trial and records nothing.
    pub fn delivers_mail(&self) -> bool {
        !self.smtp.is_empty() || self.email.outbox_mode == OutboxMode::Deliver
    }

    /// Refuses, with the key to fix, a command that would send digests on
    /// its own (`what`: `serve` or `publish` with a digest schedule, or
    /// `publish --send`) when nothing would deliver them: every run would
    /// write the outbox again as a trial.
    pub fn require_delivery(&self, what: &str) -> Result<(), ConfigError> {
        if self.delivers_mail() {
            return Ok(());
        }
        Err(ConfigError::NoDelivery {
            what: what.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `text` as `/site/config.toml`.
    pub(super) fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("config.toml"), Path::new("/site"))
    }

    #[test]
    fn defaults_fill_everything_but_base_url() {
        let config = parse("[site]\nbase_url = \"https://example.org/\"\n").unwrap();
        assert_eq!(config.site.base_url.as_str(), "https://example.org/");
        assert_eq!(config.content.dir, Path::new("/site/content"));
        assert_eq!(config.feeds.output_dir, Path::new("/site/public"));
        assert_eq!(config.feeds.limit, 20);
        assert_eq!(config.feeds.iframes, IframePolicy::Link);
        assert_eq!(
            config.site.url_for("/blog/a/"),
            "https://example.org/blog/a/"
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let err = parse("[site]\nbase_url = \"https://x.org\"\n[feeds]\nlimt = 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("config.toml") && err.contains("limt"), "{err}");
    }

    #[test]
    fn dkim_is_one_table_or_several() {
        const SITE: &str = "[site]\nbase_url = \"https://x.org\"\n";
        let one = parse(&format!(
            "{SITE}[email.dkim]\nselector = \"s\"\ndomain = \"x.org\"\nkey_file = \"k.pem\"\n"
        ))
        .unwrap();
        assert_eq!(one.email.dkim.len(), 1);
        assert_eq!(one.email.dkim[0].key_file, Path::new("/site/k.pem"));
        let key = |s: &str| {
            format!(
                "[[email.dkim]]\nselector = \"{s}\"\ndomain = \"x.org\"\nkey_file = \"{s}.pem\"\n"
            )
        };
        let two = parse(&format!("{SITE}{}{}", key("rsa"), key("ed"))).unwrap();
        let selectors: Vec<&str> = two.email.dkim.iter().map(|k| k.selector.as_str()).collect();
        assert_eq!(selectors, ["rsa", "ed"]);
        assert!(parse(SITE).unwrap().email.dkim.is_empty());

        for (dkim, says) in [
            // A mistake inside a table is reported as itself.
            (
                "[email.dkim]\nselector = \"s\"\ndomain = \"x.org\"\nkeyfile = \"k.pem\"\n"
                    .to_string(),
                "keyfile",
            ),
            (
                "[email.dkim]\nselector = \"s\"\nkey_file = \"k.pem\"\n".to_string(),
                "domain",
            ),
            (format!("{}{}", key("a"), key("a")), "given twice"),
            (
                "[email.dkim]\nselector = \"a b\"\ndomain = \"x.org\"\nkey_file = \"k.pem\"\n"
                    .to_string(),
                "email.dkim.selector",
            ),
            (
                "[email.dkim]\nselector = \"s\"\ndomain = \"x..org\"\nkey_file = \"k.pem\"\n"
                    .to_string(),
                "email.dkim.domain",
            ),
            (["a", "b", "c", "d", "e"].map(key).concat(), "at most 4"),
            ("[email]\ndkim = 3\n".to_string(), "email.dkim"),
            (
                "[email.dkim]\nselector = \"s\"\ndomain = \"org\"\nkey_file = \"k.pem\"\n".to_string(),
                "email.dkim.domain",
            ),
            (
                "[email.dkim]\nselector = \"s\"\ndomain = \"1.2.3.4\"\nkey_file = \"k.pem\"\n".to_string(),
                "email.dkim.domain",
            ),
            (
                "[email.dkim]\nselector = \"-s\"\ndomain = \"x.org\"\nkey_file = \"k.pem\"\n".to_string(),
                "email.dkim.selector",
            ),
            (
                "[email.dkim]\nselector = \"s\"\ndomain = \"bücher.example\"\nkey_file = \"k.pem\"\n".to_string(),
                "xn--bcher-kva.example",
            ),
        ] {
            let err = parse(&format!("{SITE}{dkim}")).unwrap_err().to_string();
            assert!(
                err.contains("config.toml") && err.contains(says),
                "{dkim}: {err}"
            );
        }
    }

    #[test]
    fn bounces_defaults_and_ranges() {
        const SITE: &str = "[site]\nbase_url = \"https://x.org\"\n";
        let config = parse(SITE).unwrap();
        assert_eq!(config.bounces.soft_limit, 3);
        assert_eq!(
            config.bounces.soft_window,
            std::time::Duration::from_secs(30 * 86_400)
        );
        assert_eq!(config.bounces.alert_rate, 0.05);
        assert!(config.bounces.address.is_none());
        let imap = parse(&format!(
            "{SITE}[bounces]\nimap = \"imaps://b%40x@mail.example.org/Bounces\"\n"
        ))
        .unwrap()
        .bounces
        .imap
        .unwrap();
        assert_eq!(
            (
                imap.tls,
                imap.host.as_str(),
                imap.port,
                imap.user.as_str(),
                imap.folder.as_str(),
                imap.processed.as_str()
            ),
            (true, "mail.example.org", 993, "b@x", "Bounces", "Processed")
        );
        for (bounces, key) in [
            ("soft_limit = 0", "bounces.soft_limit"),
            ("soft_limit = 101", "bounces.soft_limit"),
            ("soft_window = \"10s\"", "bounces.soft_window"),
            ("soft_window = \"2years\"", "bounces.soft_window"),
            ("alert_rate = 1.5", "bounces.alert_rate"),
            ("alert_rate = nan", "bounces.alert_rate"),
            ("address = \"bounces+x@x.org\"", "bounces.address"),
            ("address = \"not an address\"", "bounces.address"),
            ("imap = \"imap://u@mail.example.org/INBOX\"", "bounces.imap"),
            ("imap = \"imaps://u:p@mail.example.org/\"", "bounces.imap"),
            ("imap = \"imaps://mail.example.org/\"", "bounces.imap"),
            ("imap = \"pop3://u@mail.example.org/\"", "bounces.imap"),
            (
                "imap = \"imaps://u@h.org/Bounces\"\nprocessed = \"bounces\"",
                "bounces.processed",
            ),
            ("poll = \"1s\"", "bounces.poll"),
        ] {
            let err = parse(&format!("{SITE}[bounces]\n{bounces}\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{bounces}: {err}");
        }
    }

    #[test]
    fn email_defaults_and_smtp_security() {
        let config = parse("[site]\ntitle = \"T\"\nbase_url = \"https://x.org\"\n").unwrap();
        assert_eq!(config.email.from.to_string(), "T <newsletter@x.org>");
        assert!(config.smtp.is_empty());
        assert_eq!(config.email.outbox, Path::new("/site/outbox"));
        assert_eq!(config.server.public_url.as_str(), "https://x.org/");
        let config = parse(
            "[site]\nbase_url = \"https://x.org\"\n[smtp]\nhost = \"127.0.0.1\"\nsecurity = \"none\"\n",
        )
        .unwrap();
        assert_eq!(config.smtp[0].port, 25);
        let err = parse(
            "[site]\nbase_url = \"https://x.org\"\n[smtp]\nhost = \"mail.x.org\"\nsecurity = \"none\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("smtp.security") && err.contains("loopback"),
            "{err}"
        );
        let err =
            parse("[site]\nbase_url = \"https://x.org\"\n[email]\nfrom = \"not an address\"\n")
                .unwrap_err()
                .to_string();
        assert!(err.contains("email.from"), "{err}");
    }

    #[test]
    fn several_relays_each_with_its_weight_and_password_variable() {
        let site = "[site]\nbase_url = \"https://x.org\"\n";
        let config = parse(&format!(
            "{site}[[smtp]]\nhost = \"a.x.org\"\nconnections = 8\n\
             [[smtp]]\nhost = \"b.x.org\"\nusername = \"u\"\npassword_env = \"RELAY_B_PASSWORD\"\nweight = 2\n"
        ))
        .unwrap();
        let relays: Vec<(String, u32, &str)> = config
            .smtp
            .iter()
            .map(|r| (r.name(), r.weight, r.password_env.as_str()))
            .collect();
        assert_eq!(
            relays,
            [
                ("a.x.org:587".to_string(), 8, "NEWSLETTER_SMTP_PASSWORD"),
                ("b.x.org:587".to_string(), 2, "RELAY_B_PASSWORD"),
            ]
        );
        // A mistake says which relay it is in.
        let err = parse(&format!(
            "{site}[[smtp]]\nhost = \"a.x.org\"\n[[smtp]]\nhost = \"b.x.org\"\nweight = 0\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("smtp.weight") && err.contains("relay 2"),
            "{err}"
        );
        let err = parse(&format!(
            "{site}[[smtp]]\nhost = \"a.x.org\"\npassword_env = \"hunter2\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("smtp.password_env") && !err.contains("relay 1"),
            "{err}"
        );
        let err = parse(&format!(
            "{site}[[smtp]]\nhost = \"a.x.org\"\n[[smtp]]\nhost = \"a.x.org\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("same server"), "{err}");
        let err = parse(&format!("{site}[[smtp]]\nhost = \"a.x.org\"\nhots = 1\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `hots`"), "{err}");
    }
}
