//! Delivery: every pending message of a digest, exactly once per
//! subscriber, over `smtp.connections` workers, with retries, throttles
//! and the ledger.
//!
//! The ledger in the store is the truth. A digest and a pending delivery for
//! every active subscriber are written in one transaction before the first
//! message goes out; each worker's outcome is recorded (group-committed with
//! the other workers') right after the server answers, before that worker
//! takes the next one. So a crash can leave at most one message per
//! connection sent but not recorded (it is sent again on the next run), and
//! never skips anyone.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::Utc;

use super::compose::{Composer, Stamp};
use super::digest::RenderedDigest;
use super::transport::{Attempt, Transport};
use crate::config::Config;
use crate::store::{Outcome, Pending, Store, StoredDigest};

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

/// Delivers every pending message of `digest` with `smtp.connections` workers.
///
/// A feeder thread reads pending deliveries from the store; workers render
/// and send; this thread records outcomes, committing whatever has arrived
/// in one transaction, and only then lets each worker take its next
/// message. So the messages sent but not yet recorded are at most one per
/// worker, whatever happens to the process.
pub fn deliver(
    config: &Config,
    store: &mut Store,
    digest: &StoredDigest,
    transport: &dyn Transport,
    secret: &[u8],
    progress: &dyn Progress,
    cancel: Option<&AtomicBool>,
) -> Result<()> {
    let stop = &Stop {
        error: AtomicBool::new(false),
        asked: cancel,
    };
    let rendering = RenderedDigest::stored(digest);
    let stamp = Stamp::Delivery {
        store: store.instance_id()?,
    };
    let composer = Composer::new(config, &rendering, digest.id, secret, stamp)?;
    let workers = config.smtp.as_ref().map_or(1, |s| s.connections);
    let pace = Pace::new(config.smtp.as_ref().map_or(0.0, |s| s.rate));
    let breaker = Breaker::new(workers);
    progress.start(digest.id, store.counts(digest.id)?.pending);

    let (jobs, queue) = mpsc::sync_channel::<Pending>(workers);
    let queue = Mutex::new(queue);
    let (results, outcomes) = mpsc::channel::<Done>();
    let store_path = store.path().to_path_buf();
    std::thread::scope(|scope| -> Result<()> {
        let feeder = scope.spawn(|| queue_pending(&store_path, digest.id, jobs, stop));
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
fn queue_pending(
    store_path: &Path,
    digest_id: i64,
    jobs: mpsc::SyncSender<Pending>,
    stop: &Stop<'_>,
) -> Result<()> {
    let store = Store::open(store_path)?;
    let mut after = 0;
    loop {
        // Unsubscribes the server had to queue go first: none of those
        // readers gets this digest from a later batch.
        store.apply_queued_unsubscribes()?;
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
    transport: &dyn Transport,
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
        let message =
            match composer.message(id, &pending.key, &pending.email, &pending.name, Utc::now()) {
                Ok(message) => message,
                Err(e) => {
                    if !report(id, Some(Outcome::Failed(format!("{e:#}"))), true, None) {
                        return;
                    }
                    continue;
                }
            };
        let mut backoff = FIRST_BACKOFF;
        // Attempts that reached the server in this run.
        let mut charged: i64 = 0;
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
                    // The address refused at RCPT: a hard bounce, unless
                    // the run is stopping for a refusal of the sender.
                    let outcome = if fatal.is_none()
                        && crate::bounces::parse::is_recipient_refusal(&reason)
                    {
                        Outcome::Bounced(reason)
                    } else {
                        Outcome::Failed(reason)
                    };
                    (Some(outcome), true, fatal)
                }
                Attempt::Transient {
                    reason,
                    connection,
                    reached,
                } => {
                    if reached {
                        charged += 1;
                    }
                    let total = pending.attempts + charged;
                    // Keeps the delivery pending; counts an attempt only if
                    // the server was reached for it.
                    let again = |reason| {
                        if reached {
                            Outcome::Retry(reason)
                        } else {
                            Outcome::Unreached(reason)
                        }
                    };
                    match breaker.failed(connection, &reason) {
                        Some(fatal) => (Some(again(reason)), false, Some(fatal)),
                        None if reached && total >= MAX_TOTAL_ATTEMPTS => (
                            Some(Outcome::Failed(format!(
                                "gave up after {total} attempts: {reason}"
                            ))),
                            true,
                            None,
                        ),
                        None => (Some(again(reason)), attempt == MAX_ATTEMPTS, None),
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::email::transport::stub::{Answer, Scripted};
    use crate::store::{Counts, NewDigest, Status};

    fn now() -> chrono::DateTime<Utc> {
        "2026-11-25T09:00:00Z".parse().unwrap()
    }

    /// A store with `subscribers` active readers and a digest for them, and
    /// a config with two SMTP connections (the stub stands in for them).
    fn setup(subscribers: &[&str]) -> (tempfile::TempDir, Config, Store, StoredDigest) {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::parse(
            "[site]\nbase_url = \"https://blog.example.org\"\n[smtp]\nhost = \"127.0.0.1\"\nsecurity = \"none\"\nconnections = 2\n",
            Path::new("config.toml"),
            dir.path(),
        )
        .unwrap();
        let mut store = Store::open(&dir.path().join("n.db")).unwrap();
        for email in subscribers {
            store
                .add_subscriber(email, "", Status::Active, now())
                .unwrap();
        }
        let (id, _) = store
            .create_digest(
                &NewDigest {
                    subject: "Digest",
                    html: "<p>Hello</p>",
                    text: "Hello\n",
                    posts: &[crate::store::PostRef {
                        source: "a.md".into(),
                        permalink: "/a/".into(),
                        published: "2026-11-01T00:00:00+00:00".into(),
                    }],
                    skipped: &[],
                    adopted: &[],
                },
                now(),
            )
            .unwrap();
        let digest = store.digest(id).unwrap().unwrap();
        (dir, config, store, digest)
    }

    fn run(
        config: &Config,
        store: &mut Store,
        digest: &StoredDigest,
        transport: &Scripted,
    ) -> Result<Counts> {
        deliver(
            config,
            store,
            digest,
            transport,
            b"a-secret-of-16-bytes-or-more",
            &Quiet,
            None,
        )?;
        Ok(store.counts(digest.id)?)
    }

    fn counts(pending: usize, sent: usize, failed: usize) -> Counts {
        Counts {
            pending,
            sent,
            failed,
            cancelled: 0,
        }
    }

    #[test]
    fn a_transient_refusal_is_retried_until_accepted() {
        let (_dir, config, mut store, digest) = setup(&["a@example.org", "b@example.org"]);
        let stub =
            Scripted::new(Answer::Accept).script("a@example.org", &[Answer::Later, Answer::Later]);
        let counts = run(&config, &mut store, &digest, &stub).unwrap();
        assert_eq!(counts, self::counts(0, 2, 0));
        assert_eq!(stub.tries_at("a@example.org"), 3);
        assert_eq!(stub.tries_at("b@example.org"), 1);
    }

    #[test]
    fn a_permanent_refusal_fails_that_recipient_only() {
        let (_dir, config, mut store, digest) =
            setup(&["a@example.org", "b@example.org", "c@example.org"]);
        let stub = Scripted::new(Answer::Accept).script("b@example.org", &[Answer::Refuse]);
        let counts = run(&config, &mut store, &digest, &stub).unwrap();
        assert_eq!(counts, self::counts(0, 2, 1));
        assert_eq!(stub.tries_at("b@example.org"), 1, "a 5xx is not retried");
    }

    #[test]
    fn a_fatal_error_stops_the_run_with_the_rest_pending() {
        let (_dir, config, mut store, digest) = setup(&["a@example.org", "b@example.org"]);
        let stub = Scripted::new(Answer::Fatal);
        let error = run(&config, &mut store, &digest, &stub).unwrap_err();
        assert!(
            format!("{error:#}").contains("535 login refused"),
            "{error:#}"
        );
        assert_eq!(store.counts(digest.id).unwrap(), counts(2, 0, 0));
    }

    #[test]
    fn a_server_that_drops_every_connection_trips_the_breaker() {
        let emails: Vec<String> = (0..8).map(|i| format!("r{i}@example.org")).collect();
        let emails: Vec<&str> = emails.iter().map(String::as_str).collect();
        let (_dir, config, mut store, digest) = setup(&emails);
        let stub = Scripted::new(Answer::Drop);
        let error = run(&config, &mut store, &digest, &stub).unwrap_err();
        assert!(
            format!("{error:#}").contains("connections in a row"),
            "{error:#}"
        );
        // Nobody was skipped: all still pending, and the run gave up after
        // the breaker's limit (6 for two workers), not after trying each
        // subscriber five times.
        assert_eq!(store.counts(digest.id).unwrap(), counts(8, 0, 0));
        let tries = stub.tries.lock().unwrap().len();
        assert!((6..=8).contains(&tries), "{tries} tries");
        // An outage uses up nobody's attempts: the server was never reached.
        let pending = store.pending(digest.id, 0, 100, now()).unwrap();
        assert_eq!(pending.len(), 8);
        assert!(pending.iter().all(|p| p.attempts == 0), "{pending:?}");
    }

    #[test]
    fn a_server_that_refuses_every_message_from_the_start_stops_the_run() {
        let emails: Vec<String> = (0..10).map(|i| format!("r{i}@example.org")).collect();
        let emails: Vec<&str> = emails.iter().map(String::as_str).collect();
        let (_dir, config, mut store, digest) = setup(&emails);
        let stub = Scripted::new(Answer::Refuse);
        let error = run(&config, &mut store, &digest, &stub).unwrap_err();
        assert!(
            format!("{error:#}").contains("refused each of the first"),
            "{error:#}"
        );
        let counts = store.counts(digest.id).unwrap();
        assert!(counts.pending >= 2, "{counts:?}");
        assert_eq!(counts.failed + counts.pending, 10, "{counts:?}");
    }

    #[test]
    fn refusals_after_an_accepted_message_are_the_recipients_own() {
        let emails: Vec<String> = (0..10).map(|i| format!("r{i}@example.org")).collect();
        let mut with_first: Vec<&str> = vec!["a@example.org"];
        with_first.extend(emails.iter().map(String::as_str));
        let (_dir, mut config, mut store, digest) = setup(&with_first);
        // One worker, so the accepted message comes first.
        config.smtp.as_mut().unwrap().connections = 1;
        let stub = Scripted::new(Answer::Refuse).script("a@example.org", &[Answer::Accept]);
        let counts = run(&config, &mut store, &digest, &stub).unwrap();
        assert_eq!(counts, self::counts(0, 1, 10));
    }
}
