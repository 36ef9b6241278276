//! WebSub (<https://www.w3.org/TR/websub/>): tell the hub (`feeds.hub`)
//! which feeds changed, so that readers subscribed through it hear of a new
//! post at once rather than at their next poll.

use std::fmt;
use std::io::Read;
use std::time::Duration;

use anyhow::Context;
use reqwest::blocking::{Client, Response};
use reqwest::redirect;
use url::Url;

use crate::build::BuildReport;
use crate::config::{Config, Feeds};
use crate::text::one_line;

/// How long one publish request may take, connecting included.
const TIMEOUT: Duration = Duration::from_secs(10);

/// How much of a refusing hub's answer a warning quotes.
const BODY_EXCERPT: usize = 200;

/// After a build: notifies the hub of every feed the build changed.
/// Returns the feed URLs the hub was told about.
///
/// Does nothing, and touches no network, without `feeds.hub` or when no feed
/// changed. Otherwise sends one publish request per changed feed (see
/// [`notify()`]); the feeds are already written, so callers should treat an
/// error as a warning.
///
/// This blocks (reqwest's blocking client, which must not run on a tokio
/// runtime's thread): async callers run it in `tokio::task::spawn_blocking`.
pub fn after_build(config: &Config, report: &BuildReport) -> anyhow::Result<Vec<String>> {
    let Some(hub) = &config.feeds.hub else {
        return Ok(Vec::new());
    };
    let topics = changed_topics(config, &report.changed);
    if topics.is_empty() {
        return Ok(Vec::new());
    }
    notify(hub, &topics)
}

/// The public URLs of the feeds among `changed` (paths relative to the
/// output folder, which are also the feeds' paths under `site.base_url`).
pub fn changed_topics(config: &Config, changed: &[String]) -> Vec<String> {
    changed
        .iter()
        .filter(|path| is_feed_file(&config.feeds, path))
        .map(|path| config.site.url_for(path))
        .collect()
}

/// True for a file the build writes as a feed: one of the three configured
/// file names, at its configured place or in a tag's folder. Anything else a
/// build may one day write is no WebSub topic.
fn is_feed_file(feeds: &Feeds, path: &str) -> bool {
    let name = file_name(path);
    [&feeds.atom, &feeds.rss, &feeds.json]
        .into_iter()
        .any(|feed| file_name(feed) == name)
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Tells `hub` that each of `topics` changed: one WebSub publish request
/// (`hub.mode=publish&hub.url=TOPIC`, form-encoded) per topic; any 2xx
/// answer is success. Every topic is tried even when one is refused, and
/// all refusals come back in one [`PublishError`]; once the hub cannot be
/// reached at all, the remaining topics are reported unsent rather than
/// each waiting out the timeout.
///
/// Blocking, like [`after_build`].
pub fn notify(hub: &Url, topics: &[String]) -> anyhow::Result<Vec<String>> {
    let client = Client::builder()
        .timeout(TIMEOUT)
        .user_agent(concat!("newsletter/", env!("CARGO_PKG_VERSION")))
        // Following a 301 or 302 would turn the POST into a GET that drops
        // the form, and its 2xx would look like success.
        .redirect(redirect::Policy::none())
        .build()
        .with_context(|| format!("cannot set up an HTTP client for the WebSub hub {hub}"))?;
    let mut told = Vec::new();
    let mut failures = Vec::new();
    let mut pending = topics.iter();
    for topic in pending.by_ref() {
        match publish_one(&client, hub, topic) {
            Ok(()) => told.push(topic.clone()),
            Err(refusal) => {
                let stop = matches!(refusal, Refusal::NoAnswer(_));
                failures.push(Failure {
                    topic: topic.clone(),
                    reason: refusal.to_string(),
                });
                if stop {
                    break;
                }
            }
        }
    }
    let unsent: Vec<String> = pending.cloned().collect();
    if failures.is_empty() {
        Ok(told)
    } else {
        Err(PublishError {
            hub: hub.clone(),
            topics: topics.len(),
            failures,
            unsent,
        }
        .into())
    }
}

/// Why the hub was not told of one topic.
#[derive(Debug)]
enum Refusal {
    /// No connection or no answer in time: the next topic would fare the same.
    NoAnswer(String),
    /// The hub answered, but not with a 2xx, or the request broke midway.
    Failed(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NoAnswer(why) | Refusal::Failed(why) => f.write_str(why),
        }
    }
}

/// Sends one publish request for `topic`.
fn publish_one(client: &Client, hub: &Url, topic: &str) -> Result<(), Refusal> {
    let sent = client
        .post(hub.clone())
        .form(&[("hub.mode", "publish"), ("hub.url", topic)])
        .send();
    let response = match sent {
        Ok(response) => response,
        Err(e) if e.is_timeout() => {
            return Err(Refusal::NoAnswer(format!(
                "no answer within {} s",
                TIMEOUT.as_secs()
            )));
        }
        Err(e) if e.is_connect() => {
            return Err(Refusal::NoAnswer(format!(
                "cannot connect: {}",
                root_cause(&e)
            )));
        }
        // The hub's URL is already in the warning's first line.
        Err(e) => return Err(Refusal::Failed(error_chain(&e.without_url()))),
    };
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let detail = if status.is_redirection() {
        redirect_advice(&response)
    } else {
        body_excerpt(response)
            .map(|body| format!(": {body:?}"))
            .unwrap_or_default()
    };
    Err(Refusal::Failed(format!("HTTP {status}{detail}")))
}

/// An error and its causes on one line, as `anyhow`'s `{:#}` prints them.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The innermost cause of an error, which says what went wrong in the
/// fewest words ("Connection refused", a DNS failure).
fn root_cause(error: &dyn std::error::Error) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

/// Where a hub that answered with a redirect points, as advice.
fn redirect_advice(response: &Response) -> String {
    response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|location| location.to_str().ok())
        .map(|location| format!(" to {location}; set feeds.hub to that URL"))
        .unwrap_or_default()
}

/// The start of a refusal's body, on one line with no control characters
/// (a hub's error page should not be able to rewrite the user's terminal);
/// `None` when the body is empty or cannot be read.
fn body_excerpt(response: Response) -> Option<String> {
    let mut bytes = Vec::new();
    response
        .take(BODY_EXCERPT as u64 + 1)
        .read_to_end(&mut bytes)
        .ok()?;
    let cut = bytes.len() > BODY_EXCERPT;
    bytes.truncate(BODY_EXCERPT);
    let excerpt = one_line(&String::from_utf8_lossy(&bytes));
    match (excerpt.is_empty(), cut) {
        (true, _) => None,
        (false, true) => Some(format!("{excerpt}…")),
        (false, false) => Some(excerpt),
    }
}

/// The hub was not told of some of the feeds a build changed.
#[derive(Debug)]
pub struct PublishError {
    pub hub: Url,
    /// How many topics there were to tell.
    pub topics: usize,
    pub failures: Vec<Failure>,
    /// Topics not sent because the hub could not be reached.
    pub unsent: Vec<String>,
}

/// One feed the hub was not told of, and why.
#[derive(Debug, Clone)]
pub struct Failure {
    pub topic: String,
    pub reason: String,
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the WebSub hub {} was not told of {} of {} changed feed(s), so readers \
             subscribed through it may see the change late (check feeds.hub and that \
             the hub is up):",
            self.hub,
            self.failures.len() + self.unsent.len(),
            self.topics
        )?;
        for failure in &self.failures {
            write!(f, "\n  {}: {}", failure.topic, failure.reason)?;
        }
        if !self.unsent.is_empty() {
            write!(
                f,
                "\n  and {} more, not sent as the hub could not be reached",
                self.unsent.len()
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for PublishError {}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config(feeds: &str) -> Config {
        let text = format!(
            "[site]\ntitle = \"T\"\nbase_url = \"https://example.org/blog\"\n\n[feeds]\n{feeds}\n"
        );
        Config::parse(&text, Path::new("config.toml"), Path::new(".")).expect("a valid config")
    }

    fn report(changed: &[&str]) -> BuildReport {
        BuildReport {
            read: 0,
            published: 0,
            drafts: 0,
            scheduled: 0,
            expired: 0,
            written: changed.len(),
            unchanged: 0,
            removed: Vec::new(),
            output_dir: "public".into(),
            elapsed: Duration::ZERO,
            changed: changed.iter().map(|c| c.to_string()).collect(),
            next_scheduled: None,
            archive_warning: None,
        }
    }

    #[test]
    fn topics_are_the_public_urls_of_the_changed_feeds() {
        let config = config("json = \"feeds/all.json\"");
        let changed = [
            "atom.xml",
            "feeds/all.json",
            "tags/c-sharp/rss.xml",
            "tags/zürich/all.json",
            "index.html",
        ]
        .map(String::from);
        assert_eq!(
            changed_topics(&config, &changed),
            [
                "https://example.org/blog/atom.xml",
                "https://example.org/blog/feeds/all.json",
                "https://example.org/blog/tags/c-sharp/rss.xml",
                "https://example.org/blog/tags/z%C3%BCrich/all.json",
            ]
        );
    }

    #[test]
    fn without_a_hub_or_a_change_nothing_is_sent() {
        // A hub that would refuse every connection: reaching it would be an error.
        let hub = "hub = \"http://127.0.0.1:1/\"";
        let told = |feeds: &str, changed: &[&str]| {
            after_build(&config(feeds), &report(changed)).expect("nothing to send")
        };
        assert!(told("", &["atom.xml"]).is_empty());
        assert!(told(hub, &[]).is_empty());
        assert!(told(hub, &["index.html"]).is_empty());
    }

    #[test]
    fn a_hub_body_is_quoted_on_one_line() {
        assert_eq!(
            one_line("  <h1>Bad\r\n\tgateway</h1>\u{1b}[2J\u{7}  "),
            "<h1>Bad gateway</h1> [2J"
        );
    }

    #[test]
    fn the_warning_names_the_hub_and_each_feed() {
        let error = PublishError {
            hub: Url::parse("https://hub.example/").unwrap(),
            topics: 4,
            failures: vec![
                Failure {
                    topic: "https://example.org/atom.xml".into(),
                    reason: "HTTP 500 Internal Server Error".into(),
                },
                Failure {
                    topic: "https://example.org/rss.xml".into(),
                    reason: "no answer within 10 s".into(),
                },
            ],
            unsent: vec!["https://example.org/feed.json".into()],
        };
        let text = error.to_string();
        assert!(
            text.starts_with("the WebSub hub https://hub.example/ was not told of 3 of 4"),
            "{text}"
        );
        assert!(
            text.ends_with(
                ":\n  https://example.org/atom.xml: HTTP 500 Internal Server Error\
                 \n  https://example.org/rss.xml: no answer within 10 s\
                 \n  and 1 more, not sent as the hub could not be reached"
            ),
            "{text}"
        );
    }
}
