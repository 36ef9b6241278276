//! The welcome mail: what a subscriber gets once, when they confirm (or are
//! added with `subscribers add --welcome`): the latest posts with their
//! excerpts, the archive and the unsubscribe link.
//!
//! It has a ledger of its own in the store (`welcomes`, see
//! `store::welcomes`) and a lock of its own ([`WelcomeLock`]), so it goes
//! out while a digest is being sent, and never makes `send` refuse to
//! start one. It is composed like a digest ([`Composer`]: the same
//! headers, DKIM, VERP) and goes through the same relays.
//!
//! # Template variables
//!
//! `welcome.html` (which extends the mailings' frame, `_mail.html`) and
//! `welcome.txt` see the digest's variables (see [`super::digest`]) but
//! `more_posts`, `digest.id` and `archive_url` (a welcome has no archive
//! page):
//!
//! | variable | what it is |
//! | --- | --- |
//! | `site.*` | from `[site]`, as in the digest |
//! | `posts` | the latest `welcome.posts` posts published, newest first, each with the digest's `post.*` (`title`, `url`, `date`, `date_iso`, `author`, `tags`, `excerpt_html`, `excerpt_text`); empty on a site with no post yet |
//! | `archive_index_url` | the web archive's index, or empty when `[archive] enabled = false` |
//! | `subscriber.email`, `subscriber.name`, `unsubscribe_url` | as in the digest: placeholders filled in per message, to print only |
//! | `preheader` | the line inbox lists show after the subject |
//!
//! The subject is `Welcome to {site.title}`.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;
use chrono::{DateTime, Utc};
use minijinja::context;

use super::body::email_excerpt;
use super::compose::{Composer, Outgoing, Stamp};
use super::deliver::MAX_TOTAL_ATTEMPTS;
use super::digest::{
    DigestError, RenderedDigest, mailing_context, post_value, render_parts, sample_post,
};
use super::lock::WelcomeLock;
use super::merge::clean;
use super::transport::{self, Attempt, Relay, Session};
use crate::config::Config;
use crate::content::{self, Mailing, Post, PostStatus};
use crate::store::{Outcome, Store};
use crate::templates;
use crate::text::one_line;

/// The HTML template's name (in `digest.templates`, else built in).
pub const HTML_TEMPLATE: &str = "welcome.html";
/// The plain-text template's name (in `digest.templates`, else built in).
pub const TEXT_TEMPLATE: &str = "welcome.txt";

/// Pending welcomes read from the store at a time: one, so a subscriber
/// who leaves (or is erased) while earlier welcomes go out is never mailed
/// after that (each read cancels the welcomes of those no longer active).
/// Welcomes come a few at a time; the query costs nothing beside SMTP.
const BATCH: usize = 1;

/// The welcome mail's subject: `Welcome to {site.title}`.
pub fn subject(config: &Config) -> String {
    one_line(&format!("Welcome to {}", clean(&config.site.title)))
}

/// The latest `welcome.posts` posts published at `now`, newest first. A
/// post file that cannot be read is left out (`check`, `build` and `send`
/// report it): it holds back no one's welcome.
pub fn latest_posts(config: &Config, now: DateTime<Utc>) -> Vec<Post> {
    content::read_posts(config)
        .posts
        .into_iter()
        // An email-only post is for those who were subscribed then.
        .filter(|p| p.status(now) == PostStatus::Published && p.mailing != Mailing::Only)
        .take(config.welcome.posts)
        .collect()
}

/// Renders the welcome mail of `posts` (newest first) once for every
/// subscriber, with merge tokens where each one's values go, like a
/// digest ([`super::digest::personalize`] fills them in).
pub fn render(config: &Config, posts: &[&Post]) -> Result<RenderedDigest, DigestError> {
    let mut values = Vec::with_capacity(posts.len());
    for post in posts {
        let excerpt = email_excerpt(config, post).map_err(DigestError::Post)?;
        values.push(post_value(config, post, Some(excerpt)));
    }
    let preheader = match posts.first() {
        Some(first) => one_line(&format!("The latest: {}", clean(&first.title))),
        None => String::new(),
    };
    let subject = subject(config);
    let env = templates::environment(config);
    let mut rendered = render_parts(
        config,
        &env,
        [HTML_TEMPLATE, TEXT_TEMPLATE],
        |archive| {
            context! {
                posts => values.clone(),
                ..mailing_context(config, None, &subject, preheader.clone(), archive)
            }
        },
        subject.clone(),
        None,
    )?;
    rendered.post_urls = posts
        .iter()
        .map(|p| config.site.url_for(&p.permalink))
        .collect();
    Ok(rendered)
}

/// Renders the welcome templates once with a sample post and once with
/// none, so a broken one is reported by `check` and when `serve` starts.
pub fn check_templates(config: &Config) -> Result<(), DigestError> {
    let post = sample_post(config)?;
    render(config, &[&post])?;
    render(config, &[]).map(|_| ())
}

/// What a run of [`deliver_pending`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Welcomed {
    /// Nothing was pending (or there is no store yet).
    Nothing,
    /// `[welcome] enabled = false`: nothing sent; the welcomes still
    /// pending (queued while it was on) are cancelled.
    Disabled { cancelled: usize },
    /// Another process (or the server's welcome thread) is delivering
    /// welcomes right now: it sends these too.
    Busy,
    /// No `[smtp]` and the outbox a trial (`email.outbox_mode = "trial"`):
    /// nothing sent, nothing recorded; the welcomes wait, and go out at
    /// the first run that can deliver.
    Waiting { pending: usize },
    /// A run: how many welcomes were sent, refused for good, and left
    /// pending (a temporary failure, or the server not reachable).
    Ran {
        sent: usize,
        failed: usize,
        pending: usize,
    },
}

impl std::fmt::Display for Welcomed {
    /// One line for the command output and the log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::text::count;
        match self {
            Welcomed::Nothing => write!(f, "no welcome mail to send"),
            Welcomed::Disabled { cancelled } => write!(
                f,
                "welcome mails are off ([welcome] enabled = false): {} cancelled",
                count(*cancelled, "pending welcome")
            ),
            Welcomed::Busy => write!(
                f,
                "another process is sending the welcome mails right now; it sends the new ones too"
            ),
            Welcomed::Waiting { pending } => {
                let (wait, go) = if *pending == 1 {
                    ("waits", "it goes")
                } else {
                    ("wait", "they go")
                };
                write!(
                    f,
                    "{} {wait}: there is no [smtp] section (email.outbox_mode is \"trial\"); {go} out at the first `send` after you add one",
                    count(*pending, "welcome mail")
                )
            }
            Welcomed::Ran {
                sent,
                failed,
                pending,
            } => {
                write!(f, "welcomed {}", count(*sent, "new subscriber"))?;
                if *failed > 0 {
                    write!(f, ", {} refused", count(*failed, "welcome"))?;
                }
                if *pending > 0 {
                    write!(
                        f,
                        ", {pending} still pending (tried again at the next `send` or `publish`)"
                    )?;
                }
                Ok(())
            }
        }
    }
}

impl Welcomed {
    /// True when something is to be said: a welcome sent, refused, waiting
    /// or given up for now.
    pub fn worth_saying(&self) -> bool {
        !matches!(
            self,
            Welcomed::Nothing | Welcomed::Disabled { cancelled: 0 }
        )
    }

    /// Welcomes left pending by a run that tried them: worth another try later.
    pub fn left_pending(&self) -> bool {
        matches!(self, Welcomed::Ran { pending, .. } if *pending > 0) || *self == Welcomed::Busy
    }
}

/// Sends every pending welcome at `now`, one at a time, under the welcome
/// lock (not the digest's: see the module documentation). Each outcome is
/// recorded as soon as the server has answered, so a run stopped half way
/// (a crash, a kill) resends at most the one welcome in flight. A
/// temporary failure leaves the welcome pending, one attempt more, until
/// [`MAX_TOTAL_ATTEMPTS`]; when the server cannot be reached, the run
/// stops and nobody's attempts are used up. `cancel` stops it between two
/// messages (a server shutting down).
///
/// Creates no store where there is none.
pub fn deliver_pending(
    config: &Config,
    now: DateTime<Utc>,
    cancel: Option<&AtomicBool>,
) -> Result<Welcomed> {
    // Neither a store nor a lock file is made where there is no store yet.
    if !config.store.path.exists() {
        return Ok(Welcomed::Nothing);
    }
    let Some(lock) = WelcomeLock::try_acquire(&config.store.path)? else {
        return Ok(Welcomed::Busy);
    };
    let Some(mut store) = Store::open_existing(&config.store.path)? else {
        return Ok(Welcomed::Nothing);
    };
    if !config.welcome.enabled {
        let cancelled = store.cancel_pending_welcomes(now)?;
        return Ok(Welcomed::Disabled { cancelled });
    }
    let first = store.pending_welcomes(0, 1, now)?;
    if first.is_empty() {
        return Ok(Welcomed::Nothing);
    }
    if !config.delivers_mail() {
        return Ok(Welcomed::Waiting {
            pending: store.welcome_counts()?.pending,
        });
    }
    let secret = store.secret(config.secrets.token_secret.as_deref())?;
    let instance = store.instance_id()?;
    let posts = latest_posts(config, now);
    let rendered = render(config, &posts.iter().collect::<Vec<_>>())?;
    let relays = transport::open(config)?;
    let composer = Composer::new(
        config,
        &rendered,
        0,
        &secret,
        Stamp::Welcome { store: instance },
    )?;
    let mut sessions: Vec<Box<dyn Session + '_>> =
        relays.iter().map(|r| r.transport.session()).collect();
    let (mut sent, mut failed, mut pending) = (0, 0, 0);
    let mut after = 0;
    'run: loop {
        let batch = store.pending_welcomes(after, BATCH, now)?;
        if batch.is_empty() {
            break;
        }
        for (i, welcome) in batch.iter().enumerate() {
            if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                pending += batch.len() - i;
                break 'run;
            }
            after = welcome.subscriber_id;
            let outcome = match composer.message(
                welcome.subscriber_id,
                &welcome.key,
                &welcome.email,
                &welcome.name,
                None,
                now,
            ) {
                Ok(message) => send_one(&relays, &mut sessions, &message, welcome.attempts)?,
                Err(e) => Outcome::Failed(format!("{e:#}")),
            };
            store.record_welcome(welcome.subscriber_id, &outcome, now)?;
            match outcome {
                Outcome::Sent(_) => sent += 1,
                Outcome::Failed(_) | Outcome::Bounced(_) => failed += 1,
                Outcome::Retry(_) => pending += 1,
                Outcome::Unreached(reason) => {
                    // Nothing gets through: the rest wait for the next run.
                    tracing::warn!("welcome mails: {reason}");
                    pending += batch.len() - i;
                    break 'run;
                }
            }
        }
    }
    drop(lock);
    // Those queued meanwhile, behind the cursor, count as pending too.
    let waiting = store.welcome_counts()?.pending;
    Ok(Welcomed::Ran {
        sent,
        failed,
        pending: pending.max(waiting),
    })
}

/// One try at one welcome, relay after relay until one takes it; the
/// outcome the ledger records: the last relay's when none did. A relay
/// whose setup is broken (a TLS file, a full outbox disk) is an error, as
/// it is for a digest.
fn send_one(
    relays: &[Relay],
    sessions: &mut [Box<dyn Session + '_>],
    message: &Outgoing,
    attempts: i64,
) -> Result<Outcome> {
    let several = relays.len() > 1;
    let mut last = None;
    for (relay, session) in relays.iter().zip(sessions.iter_mut()) {
        let named = |reason: String| match several {
            true => format!("{}: {reason}", relay.name),
            false => reason,
        };
        let outcome = match session.send(message) {
            Attempt::Sent(reply) => return Ok(Outcome::Sent(reply)),
            Attempt::Permanent(reason) if crate::bounces::parse::is_recipient_refusal(&reason) => {
                Outcome::Bounced(named(reason))
            }
            // Not about the recipient (a relay over its sending limit, or
            // refusing the sender): it refuses every welcome alike, and a
            // welcome is sent once ever, so it stays pending, an attempt
            // counted, until the attempts run out.
            Attempt::Permanent(reason) if attempts + 1 >= MAX_TOTAL_ATTEMPTS => Outcome::Failed(
                named(format!("gave up after {} attempts: {reason}", attempts + 1)),
            ),
            Attempt::Permanent(reason) => Outcome::Retry(named(reason)),
            Attempt::Transient {
                reason,
                reached: true,
                ..
            } if attempts + 1 >= MAX_TOTAL_ATTEMPTS => Outcome::Failed(named(format!(
                "gave up after {} attempts: {reason}",
                attempts + 1
            ))),
            Attempt::Transient {
                reason,
                reached: true,
                ..
            } => Outcome::Retry(named(reason)),
            Attempt::Transient { reason, .. } => Outcome::Unreached(named(reason)),
            Attempt::Fatal(e) if !several => {
                return Err(e.context("welcome mails: nothing was sent"));
            }
            Attempt::Fatal(e) => Outcome::Unreached(named(format!("{e:#}"))),
        };
        last = Some(outcome);
    }
    Ok(last.expect("there is always a relay or the outbox"))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::content::parse_post;
    use crate::email::digest::personalize;

    fn site(extra: &str) -> Config {
        Config::parse(
            &format!(
                "[site]\ntitle = \"Tëst & <Blog>\"\nbase_url = \"https://blog.example.org/\"\n{extra}"
            ),
            Path::new("config.toml"),
            Path::new(env!("CARGO_MANIFEST_DIR")),
        )
        .unwrap()
    }

    fn post(config: &Config, name: &str, title: &str, body: &str) -> Post {
        parse_post(
            &format!("---\ntitle: {title}\n---\n{body}"),
            Path::new(name),
            config,
        )
        .unwrap()
    }

    #[test]
    fn the_welcome_shows_the_posts_the_archive_and_the_unsubscribe_link() {
        let config = site("");
        let posts = [
            post(&config, "2024-05-03-c.md", "Third <one>", "Third excerpt."),
            post(&config, "2024-05-02-b.md", "Second", "Second excerpt."),
        ];
        let rendered = render(&config, &posts.iter().collect::<Vec<_>>()).unwrap();
        assert_eq!(rendered.subject, "Welcome to Tëst & <Blog>");
        let personal = personalize(
            &rendered,
            None,
            "ann@example.org",
            "Ann",
            "https://blog.example.org/unsubscribe/t0k",
            "https://blog.example.org/preferences/t0k",
        );
        for part in [&personal.html, &personal.text] {
            assert!(part.contains("Second excerpt."), "{part}");
            assert!(part.contains("https://blog.example.org/unsubscribe/t0k"));
            assert!(part.contains("https://blog.example.org/archive/"), "{part}");
            assert!(part.contains("ann@example.org"));
            let third = part.find("Third").unwrap();
            assert!(third < part.find("Second").unwrap(), "newest first");
        }
        assert!(
            personal.html.contains("Third &lt;one&gt;"),
            "{}",
            personal.html
        );
        // The CSS is inlined, as in the digest.
        assert!(!personal.html.contains("<style"), "{}", personal.html);
        assert!(personal.html.contains("style=\""));

        let off = site("[archive]\nenabled = false\n");
        let rendered = render(&off, &[]).unwrap();
        assert!(!rendered.html.contains("/archive/"), "{}", rendered.html);
        assert!(!rendered.text.contains("/archive/"), "{}", rendered.text);
    }

    #[test]
    fn the_built_in_templates_pass_the_check_and_a_broken_one_is_named() {
        check_templates(&site("")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("welcome.txt"), "{{ posts[0].nope }").unwrap();
        let broken = Config::parse(
            &format!(
                "[site]\nbase_url = \"https://x.org/\"\n[digest]\ntemplates = {:?}\n",
                dir.path().display().to_string()
            ),
            Path::new("config.toml"),
            Path::new("."),
        )
        .unwrap();
        let error = check_templates(&broken).unwrap_err().to_string();
        assert!(error.contains("welcome.txt"), "{error}");
    }

    #[test]
    fn the_latest_posts_are_the_published_ones_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let content = dir.path().join("content");
        std::fs::create_dir(&content).unwrap();
        for (file, front) in [
            ("2024-05-01-a.md", "title: A"),
            ("2024-05-02-b.md", "title: B"),
            ("2024-05-03-c.md", "title: C\ndraft: true"),
            ("2024-05-04-d.md", "title: D"),
            ("2024-07-01-later.md", "title: Later"),
        ] {
            std::fs::write(content.join(file), format!("---\n{front}\n---\nText.\n")).unwrap();
        }
        let config = Config::parse(
            "[site]\nbase_url = \"https://x.org/\"\n[welcome]\nposts = 2\n",
            Path::new("config.toml"),
            dir.path(),
        )
        .unwrap();
        let now: DateTime<Utc> = "2024-06-01T00:00:00Z".parse().unwrap();
        let titles: Vec<String> = latest_posts(&config, now)
            .into_iter()
            .map(|p| p.title)
            .collect();
        assert_eq!(titles, ["D", "B"]);
    }
}
