//! `config.toml`: the site, where content lives and how feeds are written.
//!
//! Every section has defaults except `site.base_url`, unknown keys are
//! refused, and relative paths are resolved against the config file's folder.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use lettre::Address;
use lettre::message::Mailbox;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde::Deserialize;
use url::Url;

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
    /// `None`: messages go to `email.outbox` as `.eml` files.
    pub smtp: Option<Smtp>,
    pub server: Server,
    pub schedule: Schedule,
}

/// `[email]`: who digests come from and how readers leave.
#[derive(Debug, Clone)]
pub struct Email {
    pub from: Mailbox,
    pub reply_to: Option<Mailbox>,
    /// Also offered in `List-Unsubscribe` when set.
    pub unsubscribe_mailto: Option<Address>,
    /// Where messages go when there is no `[smtp]` section.
    pub outbox: PathBuf,
    pub dkim: Option<Dkim>,
}

/// `[email.dkim]`: sign messages (the key file is PEM, RSA or Ed25519).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dkim {
    pub selector: String,
    pub domain: String,
    pub key_file: PathBuf,
}

/// `[digest]`: what a digest holds and how it is rendered.
#[derive(Debug, Clone)]
pub struct Digest {
    /// A minijinja template string.
    pub subject: String,
    /// How many of the newest posts the very first digest carries.
    pub first_run_posts: usize,
    /// Above this, the rest are listed as linked titles only.
    pub max_posts: usize,
    /// The folder with digest.html and digest.txt.
    pub templates: PathBuf,
}

/// `[store]`: the SQLite file with subscribers and the delivery ledger.
#[derive(Debug, Clone)]
pub struct Store {
    pub path: PathBuf,
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Plain connection upgraded with STARTTLS (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only to a loopback host.
    None,
}

/// `[smtp]`: the server digests are sent through.
#[derive(Debug, Clone)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub username: Option<String>,
    /// Connections in the pool, and messages in flight at most.
    pub connections: usize,
    /// Messages per second; 0 = unlimited.
    pub rate: f64,
    /// Seconds to wait for the server at each step.
    pub timeout: u64,
    /// Extra trusted certificates (PEM); certificates are always verified.
    pub tls_ca_file: Option<PathBuf>,
}

/// `[server]`: where `newsletter serve` is reachable.
#[derive(Debug, Clone)]
pub struct Server {
    /// The URL that links in emails point at; default `site.base_url`.
    pub public_url: Url,
    /// Where `newsletter serve` listens; `--listen` overrides it.
    pub listen: SocketAddr,
    /// How long a confirmation link works.
    pub confirm_ttl: Duration,
    /// Sign-ups accepted per client address per hour.
    pub signups_per_client: u32,
    /// Confirmation emails sent per address per hour.
    pub signups_per_email: u32,
    /// Take the client address from `X-Forwarded-For` (behind a reverse proxy).
    pub behind_proxy: bool,
    /// A request's headers must arrive, and its answer be ready, within this;
    /// an idle keep-alive connection is closed after it too.
    pub request_timeout: Duration,
}

/// `[schedule]`: when `serve` and `publish` send digests.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// A cron expression in `site.timezone`; `None`: digests only by `send`.
    pub digest: Option<String>,
    /// A missed slot younger than this is caught up once; older ones are skipped.
    pub catch_up: Duration,
}

/// `[site]`: what the blog is and where it lives.
#[derive(Debug, Clone)]
pub struct Site {
    pub title: String,
    /// Absolute http(s) URL with no trailing slash in its path.
    pub base_url: Url,
    pub description: String,
    /// Fallback author for posts that name none.
    pub author: String,
    pub language: String,
    /// Zone for dates written without an offset. Permalinks use the date as
    /// the post wrote it.
    pub timezone: Tz,
}

/// `[content]`: where posts are and how their URLs look.
#[derive(Debug, Clone)]
pub struct Content {
    pub dir: PathBuf,
    pub permalink: String,
}

/// What feeds do with `<iframe>` elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IframePolicy {
    /// Replace each iframe by a link to what it showed.
    Link,
    /// Keep iframes as written.
    Keep,
}

/// `[feeds]`: which feeds are written where.
#[derive(Debug, Clone)]
pub struct Feeds {
    pub output_dir: PathBuf,
    /// Most entries per feed; 0 means all.
    pub limit: usize,
    pub full_content: bool,
    pub per_tag: bool,
    pub iframes: IframePolicy,
    /// File names of the feeds inside `output_dir`; also their URL paths under `base_url`.
    pub atom: String,
    pub rss: String,
    pub json: String,
    /// A WebSub hub: feeds link to it and the hub is told when they change.
    pub hub: Option<Url>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    site: RawSite,
    #[serde(default)]
    content: RawContent,
    #[serde(default)]
    feeds: RawFeeds,
    #[serde(default)]
    email: RawEmail,
    #[serde(default)]
    digest: RawDigest,
    #[serde(default)]
    store: RawStore,
    smtp: Option<RawSmtp>,
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    schedule: RawSchedule,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawEmail {
    from: Option<String>,
    reply_to: Option<String>,
    unsubscribe_mailto: Option<String>,
    outbox: Option<PathBuf>,
    dkim: Option<Dkim>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawDigest {
    subject: String,
    first_run_posts: usize,
    max_posts: usize,
    templates: PathBuf,
}

impl Default for RawDigest {
    fn default() -> Self {
        RawDigest {
            subject: DEFAULT_SUBJECT.into(),
            first_run_posts: 1,
            max_posts: 10,
            templates: PathBuf::from("templates"),
        }
    }
}

/// The default digest subject: the newest post's title and how many more.
pub const DEFAULT_SUBJECT: &str = "{{ site.title }}: {{ posts[0].title }}{% if posts|length > 1 %} and {{ posts|length - 1 }} more{% endif %}";

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawStore {
    path: PathBuf,
}

impl Default for RawStore {
    fn default() -> Self {
        RawStore {
            path: PathBuf::from("newsletter.db"),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    host: String,
    port: Option<u16>,
    #[serde(default = "default_security")]
    security: Security,
    username: Option<String>,
    #[serde(default = "default_connections")]
    connections: usize,
    #[serde(default)]
    rate: f64,
    #[serde(default = "default_timeout")]
    timeout: u64,
    tls_ca_file: Option<PathBuf>,
}

fn default_security() -> Security {
    Security::Starttls
}

fn default_connections() -> usize {
    4
}

fn default_timeout() -> u64 {
    30
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawServer {
    public_url: Option<String>,
    listen: String,
    confirm_ttl: String,
    signups_per_client: u32,
    signups_per_email: u32,
    behind_proxy: bool,
    request_timeout: String,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            public_url: None,
            listen: "127.0.0.1:8080".into(),
            confirm_ttl: "48h".into(),
            signups_per_client: 10,
            signups_per_email: 3,
            behind_proxy: false,
            request_timeout: "30s".into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSchedule {
    digest: Option<String>,
    catch_up: String,
}

impl Default for RawSchedule {
    fn default() -> Self {
        RawSchedule {
            digest: None,
            catch_up: "6h".into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSite {
    #[serde(default = "default_title")]
    title: String,
    base_url: Option<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    author: Option<String>,
    #[serde(default = "default_language")]
    language: String,
    #[serde(default = "default_timezone")]
    timezone: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawContent {
    dir: PathBuf,
    permalink: String,
}

impl Default for RawContent {
    fn default() -> Self {
        RawContent {
            dir: PathBuf::from("content"),
            permalink: "/blog/:year/:month/:day/:slug/".into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawFeeds {
    output_dir: PathBuf,
    limit: usize,
    full_content: bool,
    per_tag: bool,
    iframes: IframePolicy,
    atom: String,
    rss: String,
    json: String,
    hub: Option<String>,
}

impl Default for RawFeeds {
    fn default() -> Self {
        RawFeeds {
            output_dir: PathBuf::from("public"),
            limit: 20,
            full_content: true,
            per_tag: false,
            iframes: IframePolicy::Link,
            atom: "atom.xml".into(),
            rss: "rss.xml".into(),
            json: "feed.json".into(),
            hub: None,
        }
    }
}

fn default_title() -> String {
    "Blog".into()
}

fn default_language() -> String {
    "en".into()
}

fn default_timezone() -> String {
    "UTC".into()
}

/// What a URL path cannot carry as it is; `/` and `%` stay.
const PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// The placeholders a permalink pattern may use.
pub const PERMALINK_TOKENS: [&str; 4] = [":year", ":month", ":day", ":slug"];

impl Config {
    /// Reads and validates the config file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let folder = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, path, folder)
    }

    /// Parses config text; `path` names it in errors, relative paths are joined to `folder`.
    pub fn parse(text: &str, path: &Path, folder: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let invalid = |key: &'static str, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            message,
        };

        let base = raw.site.base_url.ok_or_else(|| {
            invalid(
                "site.base_url",
                "is missing: set it to the blog's absolute URL, e.g. \"https://example.org\""
                    .into(),
            )
        })?;
        let mut base_url = Url::parse(&base).map_err(|e| {
            invalid(
                "site.base_url",
                format!(
                    "= {base:?} is not an absolute URL ({e}); write it like \"https://example.org\""
                ),
            )
        })?;
        if !matches!(base_url.scheme(), "http" | "https") || base_url.host_str().is_none() {
            return Err(invalid(
                "site.base_url",
                format!("= {base:?} must be an http or https URL with a host"),
            ));
        }
        let trimmed = base_url.path().trim_end_matches('/').to_string();
        base_url.set_path(&trimmed);
        base_url.set_query(None);
        base_url.set_fragment(None);

        let timezone: Tz = raw.site.timezone.parse().map_err(|_| {
            invalid(
                "site.timezone",
                format!(
                    "= {:?} is not a time zone name; use an IANA name such as \"UTC\" or \"Europe/Berlin\"",
                    raw.site.timezone
                ),
            )
        })?;

        let language = raw.site.language;
        let valid_language = !language.is_empty()
            && language.len() <= 35
            && language
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !valid_language {
            return Err(invalid(
                "site.language",
                format!("= {language:?} is not a language tag; write one like \"en\" or \"pt-BR\""),
            ));
        }
        for (key, text) in [
            ("site.title", &raw.site.title),
            ("site.description", &raw.site.description),
            (
                "site.author",
                raw.site.author.as_ref().unwrap_or(&String::new()),
            ),
        ] {
            if text
                .chars()
                .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
            {
                return Err(invalid(
                    key,
                    "contains a control character; remove it".into(),
                ));
            }
        }

        let permalink = raw.content.permalink;
        if !permalink.starts_with('/') || !permalink.contains(":slug") {
            return Err(invalid(
                "content.permalink",
                format!(
                    "= {permalink:?} must start with '/' and contain :slug (placeholders: {})",
                    PERMALINK_TOKENS.join(", ")
                ),
            ));
        }

        let feeds = raw.feeds;
        for (key, name) in [
            ("feeds.atom", &feeds.atom),
            ("feeds.rss", &feeds.rss),
            ("feeds.json", &feeds.json),
        ] {
            let bad = name.is_empty()
                || name.starts_with('/')
                || name.split('/').any(|part| part.is_empty() || part == "..");
            if bad {
                return Err(invalid(
                    key,
                    format!("= {name:?} must be a relative file path inside feeds.output_dir"),
                ));
            }
        }
        if feeds.atom == feeds.rss || feeds.atom == feeds.json || feeds.rss == feeds.json {
            return Err(invalid(
                "feeds.atom",
                "feeds.atom, feeds.rss and feeds.json must be different files".into(),
            ));
        }

        let site_host = base_url.host_str().unwrap_or("localhost").to_string();
        let email = raw.email;
        let mailbox = |key: &'static str, text: &str| {
            text.parse::<Mailbox>().map_err(|e| {
                invalid(
                    key,
                    format!("= {text:?} is not an email address ({e}); write it like \"Blog <blog@example.org>\""),
                )
            })
        };
        let from = match &email.from {
            Some(text) => mailbox("email.from", text)?,
            None => Mailbox::new(
                Some(raw.site.title.clone()),
                format!("newsletter@{site_host}").parse().map_err(|e| {
                    invalid(
                        "email.from",
                        format!("is missing and cannot be made from the site's host ({e}); set it"),
                    )
                })?,
            ),
        };
        let reply_to = email
            .reply_to
            .as_deref()
            .map(|t| mailbox("email.reply_to", t))
            .transpose()?;
        let unsubscribe_mailto = email
            .unsubscribe_mailto
            .as_deref()
            .map(|t| {
                t.trim_start_matches("mailto:")
                    .parse::<Address>()
                    .map_err(|e| {
                        invalid(
                            "email.unsubscribe_mailto",
                            format!("= {t:?} is not an email address ({e})"),
                        )
                    })
            })
            .transpose()?;
        let dkim = email.dkim.map(|d| Dkim {
            key_file: folder.join(d.key_file),
            ..d
        });

        let digest = raw.digest;
        if digest.max_posts == 0 {
            return Err(invalid("digest.max_posts", "must be at least 1".into()));
        }

        let smtp = match raw.smtp {
            None => None,
            Some(smtp) => {
                if smtp.security == Security::None && !is_loopback(&smtp.host) {
                    return Err(invalid(
                        "smtp.security",
                        format!(
                            "= \"none\" sends passwords and addresses in clear text; it is only allowed to a loopback host, not {:?}: use \"starttls\" or \"tls\"",
                            smtp.host
                        ),
                    ));
                }
                if smtp.connections == 0 {
                    return Err(invalid("smtp.connections", "must be at least 1".into()));
                }
                if !(smtp.rate >= 0.0 && smtp.rate.is_finite()) {
                    return Err(invalid(
                        "smtp.rate",
                        "must be 0 (unlimited) or a positive number of messages per second".into(),
                    ));
                }
                Some(Smtp {
                    port: smtp.port.unwrap_or(match smtp.security {
                        Security::Starttls => 587,
                        Security::Tls => 465,
                        Security::None => 25,
                    }),
                    host: smtp.host,
                    security: smtp.security,
                    username: smtp.username.filter(|u| !u.is_empty()),
                    connections: smtp.connections,
                    rate: smtp.rate,
                    timeout: smtp.timeout.max(1),
                    tls_ca_file: smtp
                        .tls_ca_file
                        .filter(|p| !p.as_os_str().is_empty())
                        .map(|p| folder.join(p)),
                })
            }
        };

        let public_url = match raw.server.public_url {
            None => base_url.clone(),
            Some(text) => {
                let url = Url::parse(&text).map_err(|e| {
                    invalid(
                        "server.public_url",
                        format!("= {text:?} is not an absolute URL ({e})"),
                    )
                })?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(invalid(
                        "server.public_url",
                        format!("= {text:?} must be an http or https URL"),
                    ));
                }
                url
            }
        };

        let duration = |key: &'static str, text: &str| {
            humantime::parse_duration(text.trim()).map_err(|e| {
                invalid(
                    key,
                    format!("= {text:?} is not a duration ({e}); write it like \"48h\" or \"30m\""),
                )
            })
        };
        let listen: SocketAddr = raw.server.listen.parse().map_err(|_| {
            invalid(
                "server.listen",
                format!(
                    "= {:?} is not an address and port; write it like \"127.0.0.1:8080\"",
                    raw.server.listen
                ),
            )
        })?;
        // A duration that must be at least `least`; `advice` says why.
        let at_least = |key: &'static str, text: &str, least: u64, advice: &str| {
            let value = duration(key, text)?;
            if value < Duration::from_secs(least) {
                return Err(invalid(key, format!("= {text:?} is too short{advice}")));
            }
            Ok(value)
        };
        let confirm_ttl = at_least(
            "server.confirm_ttl",
            &raw.server.confirm_ttl,
            60,
            "; give readers at least a few minutes",
        )?;
        let request_timeout = at_least(
            "server.request_timeout",
            &raw.server.request_timeout,
            1,
            " for readers on slow networks; use \"1s\" or more",
        )?;
        for (key, value) in [
            ("server.signups_per_client", raw.server.signups_per_client),
            ("server.signups_per_email", raw.server.signups_per_email),
        ] {
            if value == 0 {
                return Err(invalid(
                    key,
                    "= 0 would refuse every sign-up; use 1 or more".into(),
                ));
            }
        }
        let catch_up = duration("schedule.catch_up", &raw.schedule.catch_up)?;
        let digest_schedule = raw.schedule.digest.filter(|d| !d.trim().is_empty());
        if let Some(cron) = &digest_schedule {
            crate::schedule::Slots::parse(cron, timezone)
                .map_err(|message| invalid("schedule.digest", format!("= {cron:?}: {message}")))?;
        }
        let hub = match feeds.hub.filter(|h| !h.trim().is_empty()) {
            None => None,
            Some(text) => {
                let url = Url::parse(&text)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
                Some(url.ok_or_else(|| {
                    invalid(
                        "feeds.hub",
                        format!("= {text:?} is not an http(s) URL; write it like \"https://pubsubhubbub.appspot.com/\""),
                    )
                })?)
            }
        };

        Ok(Config {
            email: Email {
                from,
                reply_to,
                unsubscribe_mailto,
                outbox: folder.join(email.outbox.unwrap_or_else(|| PathBuf::from("outbox"))),
                dkim,
            },
            digest: Digest {
                subject: digest.subject,
                first_run_posts: digest.first_run_posts,
                max_posts: digest.max_posts,
                templates: folder.join(digest.templates),
            },
            store: Store {
                path: folder.join(raw.store.path),
            },
            smtp,
            server: Server {
                public_url,
                listen,
                confirm_ttl,
                signups_per_client: raw.server.signups_per_client,
                signups_per_email: raw.server.signups_per_email,
                behind_proxy: raw.server.behind_proxy,
                request_timeout,
            },
            schedule: Schedule {
                digest: digest_schedule,
                catch_up,
            },
            site: Site {
                title: raw.site.title,
                author: raw.site.author.unwrap_or_else(|| "Anonymous".into()),
                base_url,
                description: raw.site.description,
                language,
                timezone,
            },
            content: Content {
                dir: folder.join(raw.content.dir),
                permalink,
            },
            feeds: Feeds {
                output_dir: folder.join(feeds.output_dir),
                limit: feeds.limit,
                full_content: feeds.full_content,
                per_tag: feeds.per_tag,
                iframes: feeds.iframes,
                atom: feeds.atom,
                rss: feeds.rss,
                json: feeds.json,
                hub,
            },
        })
    }
}

/// True for `localhost` and loopback IP addresses.
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Site {
    /// The absolute URL of a site path such as `/blog/x/` or `atom.xml`;
    /// spaces and non-ASCII characters in the path are percent-encoded
    /// (a `%` is taken as already encoded).
    pub fn url_for(&self, path: &str) -> String {
        let base = self.base_url.as_str().trim_end_matches('/');
        let path = utf8_percent_encode(path.trim_start_matches('/'), PATH);
        format!("{base}/{path}")
    }

    /// The host name, for `tag:` URIs and message ids.
    pub fn host(&self) -> &str {
        self.base_url.host_str().unwrap_or("localhost")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
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
    fn base_url_under_a_path_keeps_it() {
        let config = parse("[site]\nbase_url = \"https://example.org/blog/\"\n").unwrap();
        assert_eq!(
            config.site.url_for("atom.xml"),
            "https://example.org/blog/atom.xml"
        );
    }

    #[test]
    fn missing_or_relative_base_url_names_the_key() {
        let err = parse("[site]\ntitle = \"x\"\n").unwrap_err().to_string();
        assert!(
            err.contains("site.base_url") && err.contains("missing"),
            "{err}"
        );
        let err = parse("[site]\nbase_url = \"/blog\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("site.base_url") && err.contains("absolute"),
            "{err}"
        );
        let err = parse("[site]\nbase_url = \"ftp://x.org\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("site.base_url"), "{err}");
    }

    #[test]
    fn unknown_key_is_named() {
        let err = parse("[site]\nbase_url = \"https://x.org\"\n[feeds]\nlimt = 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("config.toml") && err.contains("limt"), "{err}");
    }

    #[test]
    fn bad_timezone_and_permalink_are_named() {
        let err = parse("[site]\nbase_url = \"https://x.org\"\ntimezone = \"Mars/Base\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("site.timezone"), "{err}");
        let err =
            parse("[site]\nbase_url = \"https://x.org\"\n[content]\npermalink = \"/:year/\"\n")
                .unwrap_err()
                .to_string();
        assert!(err.contains("content.permalink"), "{err}");
    }

    #[test]
    fn language_and_control_characters_are_checked() {
        let err = parse("[site]\nbase_url = \"https://x.org\"\nlanguage = \"en us\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("site.language"), "{err}");
        let err = parse("[site]\nbase_url = \"https://x.org\"\nauthor = \"Bad\\u0001\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("site.author") && err.contains("control"),
            "{err}"
        );
    }

    #[test]
    fn email_defaults_and_smtp_security() {
        let config = parse("[site]\ntitle = \"T\"\nbase_url = \"https://x.org\"\n").unwrap();
        assert_eq!(config.email.from.to_string(), "T <newsletter@x.org>");
        assert!(config.smtp.is_none());
        assert_eq!(config.email.outbox, Path::new("/site/outbox"));
        assert_eq!(config.server.public_url.as_str(), "https://x.org/");
        let config = parse(
            "[site]\nbase_url = \"https://x.org\"\n[smtp]\nhost = \"127.0.0.1\"\nsecurity = \"none\"\n",
        )
        .unwrap();
        assert_eq!(config.smtp.unwrap().port, 25);
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
    fn feed_paths_stay_inside_the_output_dir() {
        let err = parse("[site]\nbase_url = \"https://x.org\"\n[feeds]\natom = \"../x.xml\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("feeds.atom"), "{err}");
    }
}
