//! `newsletter send`: make the next digest and deliver it, exactly once per
//! subscriber, resuming whatever an earlier run left unfinished.
//!
//! The ledger in the store is the truth. A digest and a pending delivery for
//! every active subscriber are written in one transaction before the first
//! message goes out; each worker marks a delivery `sent` (or `failed`) in its
//! own transaction right after the server answers, before it takes the next
//! one. So a crash can leave at most one message per connection sent but not
//! recorded (it is sent again on the next run), and never skips anyone.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use lettre::message::dkim::DkimConfig;
use lettre::{FileTransport, Message, Transport};

use crate::config::Config;
use crate::content;
use crate::digest::{self, RenderedDigest};
use crate::mail::{self, MessageIds};
use crate::smtp;
use crate::store::{Counts, NewDigest, Outcome, Pending, Store, StoredDigest};
use crate::token::{self, Purpose};

/// Attempts per message in one run before it is left pending for the next.
pub const MAX_ATTEMPTS: u32 = 5;
/// Attempts per message over all runs before it is given up as failed, so
/// one address that is always "try again later" does not hold back every
/// later digest.
pub const MAX_TOTAL_ATTEMPTS: i64 = 20;
/// The first retry waits this long; each further one twice as long.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Pending deliveries read from the store at a time.
const BATCH: usize = 512;

/// What the caller asks of a run.
#[derive(Debug, Clone, Default)]
pub struct SendOptions {
    /// Render and report; record and send nothing.
    pub dry_run: bool,
    /// Send the next digest to this address only, as a test; record nothing.
    pub to: Option<String>,
    /// `NEWSLETTER_SMTP_PASSWORD`.
    pub smtp_password: Option<String>,
    /// `NEWSLETTER_SECRET`.
    pub secret: Option<String>,
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
        recipients: Vec<String>,
    },
    /// `--to`: one test message.
    Test {
        to: String,
        reply: String,
    },
    Delivered {
        digest_id: i64,
        subject: String,
        counts: Counts,
        elapsed: Duration,
    },
}

/// Progress of a delivery run, for a progress bar or log lines.
pub trait Progress: Sync {
    fn start(&self, digest_id: i64, total: usize);
    fn delivered(&self);
}

/// No progress output.
pub struct Quiet;

impl Progress for Quiet {
    fn start(&self, _: i64, _: usize) {}
    fn delivered(&self) {}
}

/// Runs `newsletter send` at `now`.
pub fn send(
    config: &Config,
    options: &SendOptions,
    now: DateTime<Utc>,
    progress: &dyn Progress,
) -> Result<SendReport> {
    if options.dry_run || options.to.is_some() {
        return preview_run(config, options, now);
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
    let mut store = Store::open(&config.store.path)?;
    let secret = store.secret(options.secret.as_deref())?;
    // Set up the transport (TLS files, the password) before a digest is made.
    let transport = Mailer::new(config, options.smtp_password.as_deref())?;

    let digest = match store.unfinished_digest()? {
        Some(digest) => digest,
        None if store.count(crate::store::Status::Active)? == 0 => {
            return Ok(SendReport::NoSubscribers);
        }
        None => match create_next_digest(config, &mut store, now)? {
            Some(digest) => digest,
            None => return Ok(SendReport::NothingToSend),
        },
    };
    let started = Instant::now();
    let stop = Stop {
        error: AtomicBool::new(false),
        asked: options.cancel.as_deref(),
    };
    deliver(
        config, &mut store, &digest, &transport, &secret, progress, &stop,
    )?;
    Ok(SendReport::Delivered {
        digest_id: digest.id,
        subject: digest.subject.clone(),
        counts: store.counts(digest.id)?,
        elapsed: started.elapsed(),
    })
}

/// The next digest's posts and rendering, or `None` when there is nothing new.
struct Next {
    rendered: RenderedDigest,
    posts: Vec<String>,
    skipped: Vec<String>,
}

fn next_digest(
    config: &Config,
    store: &Store,
    digest_id: i64,
    now: DateTime<Utc>,
) -> Result<Option<Next>> {
    let corpus = content::read_posts(config);
    if !corpus.problems.is_empty() {
        for problem in &corpus.problems {
            eprintln!("{problem}");
        }
        bail!(
            "{} problem(s) in the content; fix them and send again (nothing was sent)",
            corpus.problems.len()
        );
    }
    let announced = store.announced()?;
    let first = store.is_first_digest()?;
    let chosen = digest::choose_posts(&corpus.posts, &announced, first, config, now);
    if chosen.posts.is_empty() {
        return Ok(None);
    }
    let rendered = digest::render(config, &chosen.posts, digest_id)?;
    Ok(Some(Next {
        rendered,
        posts: chosen.posts.iter().map(|p| p.permalink.clone()).collect(),
        skipped: chosen.skipped.iter().map(|p| p.permalink.clone()).collect(),
    }))
}

fn create_next_digest(
    config: &Config,
    store: &mut Store,
    now: DateTime<Utc>,
) -> Result<Option<StoredDigest>> {
    let Some(next) = next_digest(config, store, store.next_digest_id()?, now)? else {
        return Ok(None);
    };
    let rendered = &next.rendered;
    let (id, _) = store.create_digest(
        &NewDigest {
            subject: &rendered.subject,
            html: &rendered.html,
            text: &rendered.text,
            posts: &next.posts,
            skipped: &next.skipped,
        },
        now,
    )?;
    Ok(store.digest(id)?)
}

/// `--dry-run` and `--to`: the digest that would go out next, recording nothing.
fn preview_run(config: &Config, options: &SendOptions, now: DateTime<Utc>) -> Result<SendReport> {
    let store = Store::open(&config.store.path)?;
    let secret = store.secret(options.secret.as_deref())?;
    let unfinished = store.unfinished_digest()?;
    let (digest, posts) = match &unfinished {
        Some(d) => (stored_rendering(d), store.digest_posts(d.id)?),
        None => match next_digest(config, &store, store.next_digest_id()?, now)? {
            Some(next) => {
                let n = next.posts.len();
                (next.rendered, n)
            }
            None => return Ok(SendReport::NothingToSend),
        },
    };
    if let Some(to) = &options.to {
        let email = crate::store::normalize_email(to).map_err(anyhow::Error::msg)?;
        let known = store.subscriber(&email)?;
        let (id, name) = known.map_or((0, String::new()), |s| (s.id, s.name));
        let transport = Mailer::new(config, options.smtp_password.as_deref())?;
        let message =
            Composer::new(config, &digest, 0, &secret)?.message(id, &email, &name, now)?;
        let reply = match transport.session().send(&message) {
            Attempt::Sent(reply) => reply,
            Attempt::Permanent(e) | Attempt::Transient { reason: e, .. } => bail!("{email}: {e}"),
            Attempt::Fatal(e) => return Err(e),
        };
        return Ok(SendReport::Test { to: email, reply });
    }
    // An unfinished digest goes to those still pending; a new one to every
    // active subscriber.
    let recipients = match &unfinished {
        Some(d) => store.pending_recipients(d.id)?,
        None => {
            let mut all = Vec::new();
            store.for_each_subscriber(Some(crate::store::Status::Active), |s| all.push(s.email))?;
            all
        }
    };
    Ok(SendReport::DryRun {
        subject: digest.subject,
        posts,
        recipients,
    })
}

/// `newsletter preview`: the next digest (or the unfinished one) as
/// `digest.html`, `digest.txt` and `digest.eml` in `output`, addressed to a
/// sample reader; records nothing.
pub fn preview(
    config: &Config,
    output: &Path,
    secret: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<Vec<PathBuf>>> {
    let store = Store::open(&config.store.path)?;
    let secret = store.secret(secret)?;
    let (digest, digest_id) = match store.unfinished_digest()? {
        Some(d) => (stored_rendering(&d), d.id),
        None => {
            let id = store.next_digest_id()?;
            match next_digest(config, &store, id, now)? {
                Some(next) => (next.rendered, id),
                None => return Ok(None),
            }
        }
    };
    let (email, name) = ("reader@example.org", "Reader");
    let token = token::sign(&secret, Purpose::Unsubscribe, 0, None);
    let personal =
        digest::personalize(&digest, email, name, &mail::unsubscribe_url(config, &token));
    let message =
        Composer::new(config, &digest, digest_id, &secret)?.message(0, email, name, now)?;
    std::fs::create_dir_all(output)
        .with_context(|| format!("cannot create {}", output.display()))?;
    let mut written = Vec::new();
    for (file, bytes) in [
        ("digest.html", personal.html.into_bytes()),
        ("digest.txt", personal.text.into_bytes()),
        ("digest.eml", message.formatted()),
    ] {
        let path = output.join(file);
        crate::build::stage_file(&path, |w| w.write_all(&bytes))?
            .map(|staged| staged.commit())
            .transpose()?;
        written.push(path);
    }
    Ok(Some(written))
}

fn stored_rendering(digest: &StoredDigest) -> RenderedDigest {
    RenderedDigest {
        subject: digest.subject.clone(),
        html: digest.html.clone(),
        text: digest.text.clone(),
        post_urls: Vec::new(),
    }
}

/// Makes each subscriber's message of one digest.
struct Composer<'a> {
    config: &'a Config,
    digest: &'a RenderedDigest,
    digest_id: i64,
    secret: &'a [u8],
    /// Read once: parsing the key per message would cost more than sending.
    dkim: Option<DkimConfig>,
}

impl<'a> Composer<'a> {
    fn new(
        config: &'a Config,
        digest: &'a RenderedDigest,
        digest_id: i64,
        secret: &'a [u8],
    ) -> Result<Composer<'a>> {
        Ok(Composer {
            config,
            digest,
            digest_id,
            secret,
            dkim: mail::dkim_signer(config)?,
        })
    }

    /// The message for one subscriber, with their own unsubscribe link.
    fn message(
        &self,
        subscriber_id: i64,
        email: &str,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<Message> {
        let token = token::sign(self.secret, Purpose::Unsubscribe, subscriber_id, None);
        let unsubscribe_url = mail::unsubscribe_url(self.config, &token);
        let personal = digest::personalize(self.digest, email, name, &unsubscribe_url);
        let address = email
            .parse()
            .with_context(|| format!("{email} is not a valid address"))?;
        let to = mail::recipient(address, name);
        let ids = MessageIds {
            digest_id: self.digest_id,
            subscriber_id,
        };
        Ok(mail::build_message(
            self.config,
            &personal,
            &to,
            ids,
            &unsubscribe_url,
            now,
            self.dkim.as_ref(),
        )?)
    }
}

/// Delivers every pending message of `digest` with `smtp.connections` workers.
///
/// A feeder thread reads pending deliveries from the store; workers render
/// and send; this thread records outcomes, committing whatever has arrived
/// in one transaction, and only then lets each worker take its next
/// message. So the messages sent but not yet recorded are at most one per
/// worker, whatever happens to the process.
fn deliver(
    config: &Config,
    store: &mut Store,
    digest: &StoredDigest,
    transport: &Mailer,
    secret: &[u8],
    progress: &dyn Progress,
    stop: &Stop<'_>,
) -> Result<()> {
    let rendering = stored_rendering(digest);
    let composer = Composer::new(config, &rendering, digest.id, secret)?;
    let workers = config.smtp.as_ref().map_or(1, |s| s.connections);
    let pace = Pace::new(config.smtp.as_ref().map_or(0.0, |s| s.rate));
    let breaker = Breaker::new(workers);
    progress.start(digest.id, store.counts(digest.id)?.pending);

    let (jobs, queue) = mpsc::sync_channel::<Pending>(workers);
    let queue = Mutex::new(queue);
    let (results, outcomes) = mpsc::channel::<Done>();
    let store_path = store.path().to_path_buf();
    std::thread::scope(|scope| -> Result<()> {
        let feeder = scope.spawn(|| feed(&store_path, digest.id, jobs, stop));
        for _ in 0..workers {
            let results = results.clone();
            let (queue, pace, composer, breaker, stop) = (&queue, &pace, &composer, &breaker, stop);
            scope.spawn(move || worker(composer, transport, queue, pace, breaker, stop, results));
        }
        drop(results);

        let mut fatal: Option<anyhow::Error> = None;
        // Outcomes the ledger refused. Once it has refused a batch (a locked
        // or full store), the outcomes still coming in are kept here rather
        // than each waiting out the busy timeout again, and all are tried
        // once more at the end: at most two busy timeouts in all.
        let mut unrecorded: Option<Vec<(i64, Outcome)>> = None;
        // Every outcome is acknowledged, recorded or not, so that no worker
        // waits for good; after an error, `stop` makes them all finish.
        while let Ok(first) = outcomes.recv() {
            let mut batch = vec![first];
            batch.extend(outcomes.try_iter());
            for done in &mut batch {
                if let Some(e) = done.fatal.take() {
                    stop.set();
                    fatal.get_or_insert(e);
                }
            }
            let recorded: Vec<(i64, Outcome)> = batch
                .iter()
                .filter_map(|d| d.outcome.clone().map(|o| (d.subscriber_id, o)))
                .collect();
            if let Some(unrecorded) = &mut unrecorded {
                unrecorded.extend(recorded);
            } else {
                match store.record(digest.id, &recorded, Utc::now()) {
                    Ok(()) => {
                        for _ in batch.iter().filter(|d| d.finished) {
                            progress.delivered();
                        }
                    }
                    Err(e) => {
                        stop.set();
                        fatal.get_or_insert(anyhow::Error::new(e).context("cannot record deliveries in the ledger"));
                        unrecorded = Some(recorded);
                    }
                }
            }
            for done in batch {
                let _ = done.ack.send(());
            }
        }
        // The last try: each outcome recorded now is one message fewer sent
        // again by the next run.
        if let Some(unrecorded) = unrecorded.filter(|u| !u.is_empty()) {
            let _ = store.record(digest.id, &unrecorded, Utc::now());
        }
        feeder.join().expect("the feeder does not panic")?;
        match fatal {
            Some(e) => Err(e),
            None => Ok(()),
        }
    })
    .with_context(|| {
        format!(
            "delivery of digest {} stopped; what was not sent stays pending for the next `newsletter send`",
            digest.id
        )
    })
}

/// Tells the feeder and workers to finish: after an error in this run, or
/// when the caller asks.
struct Stop<'a> {
    error: AtomicBool,
    asked: Option<&'a AtomicBool>,
}

impl Stop<'_> {
    fn set(&self) {
        self.error.store(true, Ordering::Relaxed);
    }

    fn is_set(&self) -> bool {
        self.error.load(Ordering::Relaxed) || self.asked.is_some_and(|a| a.load(Ordering::Relaxed))
    }
}

/// One worker's report: the outcome to record, then wait for `ack`.
struct Done {
    subscriber_id: i64,
    outcome: Option<Outcome>,
    /// True when this delivery is settled for this run (sent, failed, or out of attempts).
    finished: bool,
    fatal: Option<anyhow::Error>,
    ack: mpsc::SyncSender<()>,
}

/// Hands pending deliveries to the workers in subscriber order.
fn feed(
    store_path: &Path,
    digest_id: i64,
    jobs: mpsc::SyncSender<Pending>,
    stop: &Stop<'_>,
) -> Result<()> {
    let store = Store::open(store_path)?;
    let mut after = 0;
    loop {
        let batch = store.pending(digest_id, after, BATCH, Utc::now())?;
        let Some(last) = batch.last() else {
            return Ok(());
        };
        after = last.subscriber_id;
        for mut pending in batch {
            // Never block for good: the workers may all have stopped.
            loop {
                if stop.is_set() {
                    return Ok(());
                }
                match jobs.try_send(pending) {
                    Ok(()) => break,
                    Err(mpsc::TrySendError::Full(back)) => {
                        pending = back;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(mpsc::TrySendError::Disconnected(_)) => return Ok(()),
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn worker(
    composer: &Composer<'_>,
    transport: &Mailer,
    queue: &Mutex<mpsc::Receiver<Pending>>,
    pace: &Pace,
    breaker: &Breaker,
    stop: &Stop<'_>,
    results: mpsc::Sender<Done>,
) {
    let (ack, acked) = mpsc::sync_channel(1);
    let mut sender = transport.session();
    // Reports one outcome and waits until it is recorded; false: stop.
    let report = |subscriber_id, outcome, finished, fatal| {
        let done = Done {
            subscriber_id,
            outcome,
            finished,
            fatal,
            ack: ack.clone(),
        };
        results.send(done).is_ok() && acked.recv().is_ok()
    };
    loop {
        let next = queue.lock().expect("not poisoned").recv();
        let Ok(pending) = next else { return };
        if stop.is_set() {
            return;
        }
        let id = pending.subscriber_id;
        let message = match composer.message(id, &pending.email, &pending.name, Utc::now()) {
            Ok(message) => message,
            Err(e) => {
                if !report(id, Some(Outcome::Failed(format!("{e:#}"))), true, None) {
                    return;
                }
                continue;
            }
        };
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=MAX_ATTEMPTS {
            pace.wait();
            // The wait may have been long: do not start a message after a stop.
            if stop.is_set() {
                return;
            }
            let (outcome, finished, fatal) = match sender.send(&message) {
                Attempt::Sent(reply) => {
                    breaker.succeeded();
                    (Some(Outcome::Sent(reply)), true, None)
                }
                Attempt::Permanent(reason) => {
                    let fatal = breaker.refused(&reason);
                    (Some(Outcome::Failed(reason)), true, fatal)
                }
                Attempt::Transient { reason, connection } => {
                    let total = pending.attempts + i64::from(attempt);
                    match breaker.failed(connection, &reason) {
                        Some(fatal) => (Some(Outcome::Retry(reason)), false, Some(fatal)),
                        None if total >= MAX_TOTAL_ATTEMPTS => (
                            Some(Outcome::Failed(format!(
                                "gave up after {total} attempts: {reason}"
                            ))),
                            true,
                            None,
                        ),
                        None => (Some(Outcome::Retry(reason)), attempt == MAX_ATTEMPTS, None),
                    }
                }
                Attempt::Fatal(e) => (None, false, Some(e)),
            };
            let fatal_here = fatal.is_some();
            let retry = !finished && !fatal_here;
            if !report(id, outcome, finished, fatal) || fatal_here {
                return;
            }
            if !retry {
                break;
            }
            if stop.is_set() {
                return;
            }
            std::thread::sleep(backoff);
            backoff *= 2;
        }
    }
}

/// A message outside any digest (a confirmation request): sent at once,
/// over a connection of its own, and not recorded in the ledger.
pub struct OneOff {
    mailer: Mailer,
}

impl OneOff {
    pub fn new(config: &Config, smtp_password: Option<&str>) -> Result<OneOff> {
        Ok(OneOff {
            mailer: Mailer::new(config, smtp_password)?,
        })
    }

    /// The server's reply; on failure, whether trying again later may work.
    pub fn send(&self, message: &Message) -> Result<String, (bool, anyhow::Error)> {
        match self.mailer.session().send(message) {
            Attempt::Sent(reply) => Ok(reply),
            Attempt::Permanent(reason) => Err((false, anyhow::anyhow!(reason))),
            Attempt::Transient { reason, .. } => Err((true, anyhow::anyhow!(reason))),
            Attempt::Fatal(e) => Err((false, e)),
        }
    }
}

/// One try at sending a message.
enum Attempt {
    /// Accepted; the server's reply.
    Sent(String),
    /// Refused for good (5xx): recorded as failed.
    Permanent(String),
    /// Worth trying again (4xx); `connection` when there was no SMTP reply
    /// at all (a dropped connection, a timeout, a reply that is not SMTP).
    Transient { reason: String, connection: bool },
    /// Nothing will work until the setup is fixed (TLS, a full outbox disk).
    Fatal(anyhow::Error),
}

/// Replies that refuse the login, not the message.
const AUTH_CODES: [&str; 4] = ["530", "534", "535", "538"];

/// Where messages go: the SMTP server, or the outbox folder.
enum Mailer {
    Smtp(smtp::Client),
    Outbox(FileTransport, PathBuf),
}

impl Mailer {
    fn new(config: &Config, password: Option<&str>) -> Result<Mailer> {
        match &config.smtp {
            Some(settings) => Ok(Mailer::Smtp(smtp::Client::new(settings, password)?)),
            None => {
                let dir = &config.email.outbox;
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create the outbox {}", dir.display()))?;
                Ok(Mailer::Outbox(FileTransport::new(dir), dir.clone()))
            }
        }
    }

    /// A worker's own channel to the server.
    fn session(&self) -> Sender<'_> {
        match self {
            Mailer::Smtp(client) => Sender::Smtp(smtp::Session::new(client)),
            Mailer::Outbox(transport, dir) => Sender::Outbox(transport, dir),
        }
    }
}

/// One worker's sending end.
enum Sender<'a> {
    Smtp(smtp::Session<'a>),
    Outbox(&'a FileTransport, &'a Path),
}

impl Sender<'_> {
    fn send(&mut self, message: &Message) -> Attempt {
        match self {
            Sender::Smtp(session) => match session.send(message) {
                Ok(response) => Attempt::Sent(format!(
                    "{} {}",
                    response.code(),
                    response.message().collect::<Vec<_>>().join(" ")
                )),
                // A refused login is the sender's problem, not the recipient's.
                Err(smtp::Failure::Connect(e))
                    if e.status().is_some_and(|c| AUTH_CODES.contains(&c.to_string().as_str())) =>
                {
                    Attempt::Fatal(anyhow::Error::new(e).context(
                        "the SMTP server refused the login: check smtp.username and NEWSLETTER_SMTP_PASSWORD",
                    ))
                }
                // TLS, STARTTLS or login mechanisms the server lacks, or a
                // greeting that refuses us: nothing will go through.
                Err(smtp::Failure::Connect(e)) if e.is_tls() || e.is_client() || e.is_permanent() => {
                    Attempt::Fatal(anyhow::Error::new(e).context("the SMTP connection cannot be made"))
                }
                // While sending: a 5xx, or a message this server cannot take
                // (an address it cannot route without SMTPUTF8, say), is this
                // recipient's failure.
                Err(smtp::Failure::Message(e)) if e.is_permanent() || e.is_client() => {
                    Attempt::Permanent(e.to_string())
                }
                Err(smtp::Failure::Connect(e) | smtp::Failure::Message(e)) => Attempt::Transient {
                    connection: !e.is_transient(),
                    reason: session.describe(&e),
                },
            },
            Sender::Outbox(transport, dir) => match transport.send(message) {
                Ok(id) => Attempt::Sent(format!("written to {}", dir.join(format!("{id}.eml")).display())),
                Err(e) => Attempt::Fatal(anyhow::Error::new(e).context(format!("cannot write to the outbox {}", dir.display()))),
            },
        }
    }
}

/// Stops a run when the server fails every connection (unreachable, a
/// certificate that does not verify, replies that are not SMTP) instead of
/// retrying each subscriber in turn: after this many connection failures in
/// a row with no message accepted in between.
struct Breaker {
    limit: usize,
    in_a_row: std::sync::atomic::AtomicUsize,
    /// Permanent refusals before the first accepted message.
    refused_first: std::sync::atomic::AtomicUsize,
    accepted: std::sync::atomic::AtomicBool,
}

impl Breaker {
    fn new(workers: usize) -> Breaker {
        Breaker {
            limit: (2 * workers).max(6),
            in_a_row: 0.into(),
            refused_first: 0.into(),
            accepted: false.into(),
        }
    }

    fn succeeded(&self) {
        self.in_a_row.store(0, std::sync::atomic::Ordering::Relaxed);
        self.accepted
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Counts a permanent refusal. A server that refuses every message from
    /// the start (its greeting, the sender or the size, not a recipient)
    /// stops the run after a few, rather than failing the whole list.
    fn refused(&self, reason: &str) -> Option<anyhow::Error> {
        self.in_a_row.store(0, std::sync::atomic::Ordering::Relaxed);
        if self.accepted.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        let n = self
            .refused_first
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        (n >= self.limit).then(|| {
            anyhow::anyhow!(
                "the SMTP server refused each of the first {n} messages (last: {reason}); it refuses the sender or the message, not the recipients: check email.from and the server's limits"
            )
        })
    }

    /// Counts a transient failure; the error that stops the run, if it is time.
    fn failed(&self, connection: bool, reason: &str) -> Option<anyhow::Error> {
        if !connection {
            return None;
        }
        let n = self
            .in_a_row
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        (n >= self.limit).then(|| {
            anyhow::anyhow!(
                "the SMTP server failed {n} connections in a row (last: {reason}); check smtp.host, smtp.port, smtp.security and smtp.tls_ca_file"
            )
        })
    }
}

/// Spaces sends to `rate` per second across all workers (0: no limit).
struct Pace {
    interval: Option<Duration>,
    next: Mutex<Instant>,
}

impl Pace {
    fn new(rate: f64) -> Pace {
        Pace {
            interval: (rate > 0.0).then(|| Duration::from_secs_f64(1.0 / rate)),
            next: Mutex::new(Instant::now()),
        }
    }

    fn wait(&self) {
        let Some(interval) = self.interval else {
            return;
        };
        let slot = {
            let mut next = self.next.lock().expect("not poisoned");
            let slot = (*next).max(Instant::now());
            *next = slot + interval;
            slot
        };
        let now = Instant::now();
        if slot > now {
            std::thread::sleep(slot - now);
        }
    }
}

/// Held while a run delivers, so a second `send` (or the server's
/// scheduler) never delivers the same digest at the same time.
pub struct SendLock {
    _file: std::fs::File,
}

impl SendLock {
    /// The lock, or an error saying who holds it.
    pub fn acquire(store_path: &Path) -> Result<SendLock> {
        match SendLock::try_acquire(store_path)? {
            Some(lock) => Ok(lock),
            None => bail!(
                "another `newsletter send` is delivering right now (it holds {}.lock); nothing was sent: wait for it to finish",
                store_path.display()
            ),
        }
    }

    /// The lock, or `None` while another process holds it.
    pub fn try_acquire(store_path: &Path) -> Result<Option<SendLock>> {
        let mut path = store_path.as_os_str().to_owned();
        path.push(".lock");
        let path = PathBuf::from(path);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.create(true).truncate(false).write(true);
        // Private like the store: anyone who can open the file can hold
        // the lock, and so stop every send.
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options
            .open(&path)
            .with_context(|| format!("cannot open the lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(SendLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(anyhow::Error::new(e).context(format!("cannot lock {}", path.display())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn the_send_lock_is_a_private_file_held_by_one_at_a_time() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("n.db");
        let lock = SendLock::acquire(&store).unwrap();
        let mode = std::fs::metadata(dir.path().join("n.db.lock"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(SendLock::try_acquire(&store).unwrap().is_none());
        drop(lock);
        assert!(SendLock::try_acquire(&store).unwrap().is_some());
    }
}
