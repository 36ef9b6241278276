//! `newsletter send`: resume an unfinished digest or make the next one,
//! then deliver it ([`super::deliver`]); `--dry-run` and `--to` show the
//! next digest without recording anything.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use chrono::{DateTime, Utc};

use super::compose::{Composer, Stamp};
use super::deliver::{Progress, deliver};
use super::digest::{Trial, create_next_digest, digest_to_try, letter_to_try, next_digest};
use super::lock::SendLock;
use super::transport::{self, Attempt};
use crate::config::Config;
use crate::content;
use crate::store::{Choice, Counts, Kind, Status, Store};

/// What the caller asks of a run.
#[derive(Debug, Clone, Default)]
pub struct SendOptions {
    /// Render and report; record and send nothing.
    pub dry_run: bool,
    /// Send the next digest to this address only, as a test; record nothing.
    pub to: Option<String>,
    /// With `to`: send the post at this path as a letter instead.
    pub letter: Option<std::path::PathBuf>,
    /// Set by the caller to stop a delivery early (a server shutting down):
    /// messages in flight finish, the rest stay pending.
    pub cancel: Option<Arc<AtomicBool>>,
}

/// What a run did.
#[derive(Debug, Clone)]
pub enum SendReport {
    NothingToSend,
    /// No active subscriber: no digest is made, so no post is used up.
    NoSubscribers,
    /// `--dry-run`: the digest that would go out and who would get it.
    DryRun {
        subject: String,
        posts: usize,
        /// Each address it would go to, with the subject of their copy
        /// (with topics, readers with nothing new are left out).
        recipients: Vec<(String, String)>,
    },
    /// `--to`: one test message; `again` when no post was new and it is
    /// the latest digest rendered again.
    Test {
        to: String,
        reply: String,
        again: bool,
        /// `--letter`: the message was that post as a letter.
        letter: bool,
    },
    /// No `[smtp]` section (and `email.outbox_mode = "trial"`): every
    /// message written to the outbox, nothing recorded.
    OutboxTrial {
        subject: String,
        written: usize,
        outbox: std::path::PathBuf,
        /// The digest an earlier run left unfinished (to its pending
        /// recipients), not the next one.
        unfinished: bool,
    },
    /// The mailings this run delivered or resumed, in order: an
    /// unfinished one first, then each letter, then the digest.
    Delivered(Vec<Delivered>),
}

/// One mailing a run delivered (or resumed).
#[derive(Debug, Clone)]
pub struct Delivered {
    pub digest_id: i64,
    pub kind: Kind,
    pub subject: String,
    pub counts: Counts,
    pub elapsed: Duration,
}

impl SendReport {
    /// Deliveries still pending after the run (to retry).
    pub fn pending(&self) -> usize {
        match self {
            SendReport::Delivered(mailings) => mailings.iter().map(|m| m.counts.pending).sum(),
            _ => 0,
        }
    }
}

/// Runs `newsletter send` at `now`.
pub fn send(
    config: &Config,
    options: &SendOptions,
    now: DateTime<Utc>,
    progress: &dyn Progress,
) -> Result<SendReport> {
    // A key that cannot sign is found before anything is recorded, and
    // by the dry run too.
    crate::email::dkim::Signer::load(config)?;
    if options.dry_run || options.to.is_some() {
        return preview_run(config, options, now);
    }
    if !config.delivers_mail() {
        return outbox_trial(config, now);
    }
    let lock = SendLock::acquire(&config.store.path)?;
    send_locked(config, options, now, progress, &lock)
}

/// [`send`] for a caller that already holds the lock (and has decided,
/// under it, that a digest is due).
pub fn send_locked(
    config: &Config,
    options: &SendOptions,
    now: DateTime<Utc>,
    progress: &dyn Progress,
    _lock: &SendLock,
) -> Result<SendReport> {
    if config.smtp.is_empty() {
        // A pickup folder: what another program finds there, it sends.
        let trials = transport::Outbox::trials_left(&config.email.outbox);
        if let Some(first) = trials.first() {
            bail!(
                "{} holds {} written before email.outbox_mode = \"deliver\" was set \
                 (e.g. {}): delete them, or the program that sends from the outbox would mail them; \
                 nothing was sent",
                config.email.outbox.display(),
                crate::text::count(trials.len(), "trial message"),
                first.display()
            );
        }
    }
    let mut store = Store::open(&config.store.path)?;
    let secret = store.secret(config.secrets.token_secret.as_deref())?;
    // Unsubscribes the server queued while the store was busy count first.
    store.apply_queued_unsubscribes()?;
    // Set up the transport (TLS files, the password) and read the DKIM
    // keys before a digest is made.
    let relays = transport::open(config)?;
    crate::email::dkim::Signer::load(config)?;

    // An unfinished mailing is finished, and that is the run (as a
    // schedule slot is one run). Else one new mailing after another, each
    // made in its own transaction (letters, then the digest), until one is
    // left with pending deliveries.
    let mut delivered = Vec::new();
    let mut titles = None;
    let run = Instant::now();
    loop {
        let mut resumed = false;
        let digest = match store.unfinished_digest()? {
            Some(digest) if delivered.is_empty() => {
                resumed = true;
                digest
            }
            Some(_) => break,
            None if store.count(Status::Active)? == 0 => {
                if delivered.is_empty() {
                    return Ok(SendReport::NoSubscribers);
                }
                break;
            }
            // Each mailing its own moment: the archive's feed dates them.
            None => match create_next_digest(config, &mut store, now + run.elapsed())? {
                Some(digest) => digest,
                None => break,
            },
        };
        if config.archive.enabled {
            // Before the first message, so its "View in browser" link works.
            // A page that cannot be written holds back no one's mail: the
            // next build or send writes it.
            let titles = titles
                .get_or_insert_with(|| crate::archive::titles(&content::read_posts(config).posts));
            if let Err(e) = crate::archive::write(config, &config.feeds.output_dir, &store, titles)
            {
                progress.warn(&format!(
                    "the web archive was not written ({:#}); the mail goes out without it, and the next build writes it",
                    anyhow::Error::from(e)
                ));
            }
        }
        let started = Instant::now();
        deliver(
            config,
            &mut store,
            &digest,
            &relays,
            &secret,
            progress,
            options.cancel.as_deref(),
        )?;
        let counts = store.counts(digest.id)?;
        if counts.pending == 0 {
            store.forget_choices(digest.id)?;
        }
        delivered.push(Delivered {
            digest_id: digest.id,
            kind: digest.kind,
            subject: digest.subject.clone(),
            counts,
            elapsed: started.elapsed(),
        });
        let stopping = options
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(std::sync::atomic::Ordering::SeqCst));
        if counts.pending > 0 || stopping || resumed {
            break;
        }
    }
    if delivered.is_empty() {
        return Ok(SendReport::NothingToSend);
    }
    Ok(SendReport::Delivered(delivered))
}

/// `send` with nothing to deliver to: each message the digest would make,
/// written to the outbox, and nothing recorded, so the digest is still
/// due when an `[smtp]` section is added. Creates no store.
fn outbox_trial(config: &Config, now: DateTime<Utc>) -> Result<SendReport> {
    let Some(store) = Store::open_existing(&config.store.path)? else {
        return Ok(SendReport::NoSubscribers);
    };
    // The links in the trial mail work: the secret is the one real mail will use.
    let secret = store.secret(config.secrets.token_secret.as_deref())?;
    let (mut digest, mut id, trial) = match digest_to_try(config, Some(&store), now)? {
        Some((_, _, Trial::Latest)) | None => return Ok(SendReport::NothingToSend),
        Some(found) => found,
    };
    let mut unfinished = trial == Trial::Unfinished;
    let mut recipients = Vec::new();
    store.for_each_subscriber(Some(Status::Active), |s| recipients.push(s))?;
    if recipients.is_empty() {
        return Ok(SendReport::NoSubscribers);
    }
    if unfinished {
        let pending: std::collections::HashSet<String> = store
            .pending_recipients(id)?
            .into_iter()
            .map(|(e, _)| e)
            .collect();
        let still: Vec<_> = recipients
            .iter()
            .filter(|s| pending.contains(&s.email))
            .cloned()
            .collect();
        if still.is_empty() {
            // Everyone it was pending for has left: a real send would
            // finish it at once and go on to the next one.
            unfinished = false;
            id = store.next_digest_id()?;
            digest = match next_digest(config, Some(&store), id, now)? {
                Some(next) => next.rendered,
                None => return Ok(SendReport::NothingToSend),
            };
        } else {
            recipients = still;
        }
    }
    // With topics, each reader's copy of the next mailing, as `send` would
    // fix it (an unfinished one is shown whole); `None`: nothing for them.
    let whole = vec![Some(None); recipients.len()];
    let copies: Vec<Option<Option<Choice>>> = match unfinished || config.topics.is_empty() {
        true => whole,
        false => match next_digest(config, Some(&store), id, now)? {
            Some(next) => next
                .readers
                .copies(config, &recipients)?
                .into_iter()
                .map(|copy| copy.map(Some))
                .collect(),
            None => whole,
        },
    };
    let outbox = transport::Outbox::create(config.email.outbox.clone(), true)?;
    let composer = Composer::new(config, &digest, id, &secret, Stamp::Trial)?;
    let mut session = transport::Transport::session(&outbox);
    let mut written = 0;
    for (subscriber, copy) in recipients.iter().zip(&copies) {
        let Some(choice) = copy else { continue };
        written += 1;
        let message = composer.message(
            subscriber.id,
            &subscriber.key,
            &subscriber.email,
            &subscriber.name,
            choice.as_ref(),
            now,
        )?;
        match session.send(&message) {
            Attempt::Sent(_) => {}
            Attempt::Fatal(e) => return Err(e),
            Attempt::Permanent(e) | Attempt::Transient { reason: e, .. } => {
                bail!("{}: {e}", subscriber.email)
            }
        }
    }
    Ok(SendReport::OutboxTrial {
        subject: digest.subject,
        written,
        outbox: config.email.outbox.clone(),
        unfinished,
    })
}

/// `--dry-run` and `--to`: the digest that would go out next, recording
/// nothing. A dry run with no store yet creates none.
fn preview_run(config: &Config, options: &SendOptions, now: DateTime<Utc>) -> Result<SendReport> {
    if let Some(to) = &options.to {
        return send_test(config, to, options.letter.as_deref(), now);
    }
    let store = Store::open_existing(&config.store.path)?;
    known_secret(store.as_ref(), config)?;
    let unfinished = match &store {
        Some(store) => store.unfinished_digest()?,
        None => None,
    };
    let (subject, posts, recipients) = match (&store, &unfinished) {
        // An unfinished digest goes to those still pending.
        (Some(store), Some(d)) => (
            d.subject.clone(),
            store.digest_posts(d.id)?,
            store.pending_recipients(d.id)?,
        ),
        // A new one to every active subscriber.
        _ => {
            let id = match &store {
                Some(store) => store.next_digest_id()?,
                None => 1,
            };
            let Some(next) = next_digest(config, store.as_ref(), id, now)? else {
                return Ok(SendReport::NothingToSend);
            };
            let mut all = Vec::new();
            if let Some(store) = &store {
                store.for_each_subscriber(Some(Status::Active), |s| all.push(s))?;
            }
            let copies = next.readers.copies(config, &all)?;
            let recipients = all
                .into_iter()
                .zip(copies)
                .filter_map(|(s, copy)| copy.map(|c| (s.email, c.subject)))
                .collect();
            (next.rendered.subject, next.posts.len(), recipients)
        }
    };
    Ok(SendReport::DryRun {
        subject,
        posts,
        recipients,
    })
}

/// `--to`: the next (or unfinished) digest to one address, recording nothing.
/// Creates no store where there is none yet.
fn send_test(
    config: &Config,
    to: &str,
    letter: Option<&std::path::Path>,
    now: DateTime<Utc>,
) -> Result<SendReport> {
    let email = crate::store::normalize_email(to).map_err(anyhow::Error::msg)?;
    let store = Store::open_existing(&config.store.path)?;
    let secret = known_secret(store.as_ref(), config)?;
    let (digest, trial) = match letter {
        Some(path) => (letter_to_try(config, store.as_ref(), path)?.0, Trial::Next),
        None => match digest_to_try(config, store.as_ref(), now)? {
            Some((digest, _, trial)) => (digest, trial),
            None => return Ok(SendReport::NothingToSend),
        },
    };
    let known = match &store {
        Some(store) => store.subscriber(&email)?,
        None => None,
    };
    let (id, key, name) = known.map_or((0, String::from("test"), String::new()), |s| {
        (s.id, s.key, s.name)
    });
    let relays = transport::OneOff::new(config)?;
    let message = Composer::new(config, &digest, 0, &secret, Stamp::Trial)?
        .message(id, &key, &email, &name, None, now)?;
    let reply = relays
        .send(&message)
        .map_err(|(_, e)| e.context(email.clone()))?;
    Ok(SendReport::Test {
        to: email,
        reply,
        again: trial == Trial::Latest,
        letter: letter.is_some(),
    })
}

/// The token secret for a run that records nothing: `NEWSLETTER_SECRET`,
/// else the store's; a random one used once when there is neither (the
/// links of such a trial name nobody anyway). A secret too short, or a
/// damaged stored one, is refused as `send` would refuse it.
pub fn known_secret(store: Option<&Store>, config: &Config) -> Result<Vec<u8>> {
    let from_env = config.secrets.token_secret.as_deref();
    let found = match store {
        Some(store) => store.existing_secret(from_env)?,
        None => crate::store::env_secret(from_env)?,
    };
    Ok(found.unwrap_or_else(|| {
        let mut bytes = vec![0u8; 32];
        getrandom::fill(&mut bytes).expect("the OS has a random source");
        bytes
    }))
}
