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

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::Utc;

use super::compose::{Composer, Stamp};
use super::digest::RenderedDigest;
use super::transport::{Attempt, Relay};
use crate::config::Config;
use crate::store::{Outcome, Pending, Status, Store, StoredDigest};

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
    /// `mailing` names it as `digests` lists it: "digest 3", "letter 4".
    fn start(&self, mailing: &str, total: usize);
    fn delivered(&self);
    /// Something the sender should know that does not stop the run (a
    /// relay set aside).
    fn warn(&self, message: &str);
}

/// No progress output; warnings go to the log.
pub struct Quiet;

impl Progress for Quiet {
    fn start(&self, _: &str, _: usize) {}
    fn delivered(&self) {}
    fn warn(&self, message: &str) {
        tracing::warn!("{message}");
    }
}

/// A relay whose queue has stayed full this long (a server that hangs, or
/// one far slower than its weight asks) is passed over for the message at
/// hand, which goes to another relay: one slow relay does not hold back
/// the rest.
const STUCK: Duration = Duration::from_secs(1);

/// A relay set aside is tried again after this long, then twice as long
/// each further time, up to [`LONGEST_SET_ASIDE`].
pub const FIRST_SET_ASIDE: Duration = Duration::from_secs(30);
pub const LONGEST_SET_ASIDE: Duration = Duration::from_secs(600);

/// Delivers every pending message of `digest` over `relays`, each with its
/// `connections` workers.
///
/// A feeder thread reads pending deliveries from the store and hands each
/// to a relay, spread by the relays' weights; the relay's workers render and
/// send; this thread records outcomes, committing whatever has arrived in
/// one transaction, and only then lets each worker take its next message.
/// So the messages sent but not yet recorded are at most one per worker
/// (the sum of the relays' connections), whatever happens to the process.
///
/// A relay that fails its connections (or refuses the login, or every
/// message from the start) is set aside: the messages its workers hold go
/// back to the feeder, unsent and uncharged, and on to the other relays; it
/// is tried again after [`FIRST_SET_ASIDE`], twice as long each further
/// time. When no relay is left the run stops, with the rest pending.
pub fn deliver(
    config: &Config,
    store: &mut Store,
    digest: &StoredDigest,
    relays: &[Relay],
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
    progress.start(
        &format!("{} {}", digest.kind.as_str(), digest.id),
        store.counts(digest.id)?.pending,
    );

    let (senders, lanes): (Vec<_>, Vec<_>) = relays
        .iter()
        .map(|relay| {
            let (jobs, queue) = mpsc::sync_channel::<Job>(relay.connections);
            (jobs, Lane::new(relay, queue, relays.len() > 1))
        })
        .unzip();
    let handback = &Handback::default();
    let (results, outcomes) = mpsc::channel::<Done>();
    let store_path = store.path().to_path_buf();
    let still = &Still(Mutex::new(Store::open(&store_path).with_context(|| {
        format!(
            "delivery of digest {} did not start; everything stays pending for the next `newsletter send`",
            digest.id
        )
    })?));
    let delivered = std::thread::scope(|scope| -> Result<()> {
        let lanes = &lanes;
        let feeder = scope.spawn(|| feed(&store_path, digest.id, lanes, senders, handback, stop));
        for (me, lane) in lanes.iter().enumerate() {
            for _ in 0..lane.relay.connections {
                let results = results.clone();
                let composer = &composer;
                let here = Here { lanes, me };
                scope.spawn(move || {
                    worker(composer, here, handback, stop, progress, still, results)
                });
            }
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
            let recorded: Vec<(i64, Outcome)> = batch
                .iter()
                .map(|d| (d.subscriber_id, d.outcome.clone()))
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
        let fed = feeder.join().expect("the feeder does not panic");
        match fatal {
            Some(e) => Err(e),
            None => fed,
        }
    })
    .with_context(|| {
        format!(
            "delivery of digest {} stopped; what was not sent stays pending for the next `newsletter send`",
            digest.id
        )
    });
    // Readers who left after the feeder last looked were passed over by
    // the workers: their deliveries are cancelled now, not left pending
    // for the next run. Best effort: the next run's first read of pending
    // deliveries cancels them as well.
    if delivered.is_ok() {
        let _ = store.cancel_departed(digest.id, Utc::now());
    }
    delivered
}

/// A second look at the store, just before a message goes out: the
/// deliveries were read up to a batch ahead, and a reader may have left
/// (unsubscribed, been bounced or erased) since.
struct Still(Mutex<Store>);

impl Still {
    /// Whether subscriber `id` has left. A store that cannot answer now
    /// (busy) leaves the message to go, as it would have.
    fn left(&self, id: i64) -> bool {
        let store = self.0.lock().expect("not poisoned");
        match store.subscriber_by_id(id) {
            Ok(Some(subscriber)) => subscriber.status != Status::Active,
            Ok(None) => true,
            Err(_) => false,
        }
    }
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
    outcome: Outcome,
    /// True when this delivery is settled for this run (sent, failed, or out of attempts).
    finished: bool,
    ack: mpsc::SyncSender<()>,
}

/// A delivery on its way, and the relays that could not take it in this
/// run (bit `i` for relay `i`; at most [`crate::config::MAX_RELAYS`]).
struct Job {
    pending: Pending,
    tried: u32,
}

/// Deliveries the workers gave back (their relay set aside, or unable to
/// take this one), for the feeder to hand to another relay, and how many
/// deliveries the workers hold: the feeder is done only when the store has
/// no more, none came back and none are held.
#[derive(Default)]
struct Handback {
    returned: Mutex<VecDeque<Job>>,
    held: AtomicUsize,
}

impl Handback {
    /// The feeder hands a delivery to a relay's workers.
    fn hand_out(&self) {
        self.held.fetch_add(1, Ordering::SeqCst);
    }

    /// A worker is done with a delivery: settled for this run, or left pending.
    fn finished(&self) {
        self.held.fetch_sub(1, Ordering::SeqCst);
    }

    /// A worker gives a delivery back, unsent, for another relay.
    fn give_back(&self, job: Job) {
        self.returned.lock().expect("not poisoned").push_back(job);
        self.held.fetch_sub(1, Ordering::SeqCst);
    }

    fn take(&self) -> Option<Job> {
        self.returned.lock().expect("not poisoned").pop_front()
    }

    fn idle(&self) -> bool {
        self.held.load(Ordering::SeqCst) == 0
            && self.returned.lock().expect("not poisoned").is_empty()
    }
}

/// One relay in a run: its queue, pace and breaker, and whether it is set aside.
struct Lane<'r> {
    relay: &'r Relay,
    queue: Mutex<mpsc::Receiver<Job>>,
    pace: Pace,
    breaker: Breaker,
    /// Whether there are other relays to turn to (and so to warn of this one).
    several: bool,
    aside: Mutex<Aside>,
}

struct Aside {
    /// Set aside until then.
    until: Option<Instant>,
    /// For the rest of the run (a refused login, a TLS setup that fails).
    for_good: bool,
    /// How long the next set-aside lasts.
    next: Duration,
    /// Why it was last set aside: the run's error if no relay is left.
    why: Option<anyhow::Error>,
}

impl<'r> Lane<'r> {
    fn new(relay: &'r Relay, queue: mpsc::Receiver<Job>, several: bool) -> Lane<'r> {
        Lane {
            relay,
            queue: Mutex::new(queue),
            pace: Pace::new(relay.rate),
            breaker: Breaker::new(relay.connections),
            several,
            aside: Mutex::new(Aside {
                until: None,
                for_good: false,
                next: FIRST_SET_ASIDE,
                why: None,
            }),
        }
    }

    /// Whether messages may go to this relay now.
    fn usable(&self) -> bool {
        let aside = self.aside.lock().expect("not poisoned");
        !aside.for_good && aside.until.is_none_or(|until| Instant::now() >= until)
    }

    /// Sets the relay aside, for a while or for the rest of the run; the
    /// first failure after it comes back sets it aside again.
    fn set_aside(&self, why: anyhow::Error, for_good: bool, progress: &dyn Progress) {
        let mut aside = self.aside.lock().expect("not poisoned");
        if aside.for_good || aside.until.is_some_and(|until| Instant::now() < until) {
            return; // another worker of this relay was first
        }
        let pause = aside.next;
        aside.until = Some(Instant::now() + pause);
        aside.for_good = for_good;
        aside.next = (pause * 2).min(LONGEST_SET_ASIDE);
        self.breaker.half_open();
        if self.several {
            let when = if for_good {
                "for the rest of this run".to_string()
            } else {
                format!("for {}", humantime::format_duration(pause))
            };
            progress.warn(&format!(
                "SMTP relay {} set aside {when}: {why:#}",
                self.relay.name
            ));
        }
        aside.why = Some(why);
    }
}

/// Hands pending deliveries to the relays in subscriber order, spread by
/// weight (smooth weighted round robin), those given back first and each
/// to a relay that has not failed it yet if one is left.
fn feed(
    store_path: &Path,
    digest_id: i64,
    lanes: &[Lane<'_>],
    senders: Vec<mpsc::SyncSender<Job>>,
    handback: &Handback,
    stop: &Stop<'_>,
) -> Result<()> {
    let store = Store::open(store_path)?;
    let mut after = 0;
    let mut read_all = false;
    let mut batch: VecDeque<Pending> = VecDeque::new();
    let mut current = vec![0i64; lanes.len()];
    // Since when each relay's queue has been full.
    let mut full_since: Vec<Option<Instant>> = vec![None; lanes.len()];
    loop {
        if stop.is_set() {
            return Ok(());
        }
        let next = handback
            .take()
            .or_else(|| batch.pop_front().map(|pending| Job { pending, tried: 0 }));
        let Some(mut job) = next else {
            if !read_all {
                // Unsubscribes the server had to queue go first: none of
                // those readers gets this digest from a later batch.
                store.apply_queued_unsubscribes()?;
                let more = store.pending(digest_id, after, BATCH, Utc::now())?;
                match more.last() {
                    Some(last) => after = last.subscriber_id,
                    None => read_all = true,
                }
                batch.extend(more);
            } else if handback.idle() {
                return Ok(());
            } else {
                // Workers still hold some, which may come back.
                std::thread::sleep(Duration::from_millis(1));
            }
            continue;
        };
        handback.hand_out();
        let mut lane = None;
        // Relays passed over for this message: their queues stuck full.
        let mut stuck = 0u32;
        // Never block for good: the workers may all have stopped.
        loop {
            if stop.is_set() {
                return Ok(());
            }
            let i = match lane.filter(|&i: &usize| lanes[i].usable()) {
                Some(i) => i,
                None => match choose(lanes, &mut current, job.tried | stuck).or_else(|| {
                    // Back to a relay that has had it: that one keeps it
                    // (retries with backoff) rather than handing it on again.
                    job.tried = u32::MAX;
                    choose(lanes, &mut current, stuck)
                }) {
                    Some(i) => i,
                    // Every relay left is stuck: wait for one.
                    None if stuck != 0 => {
                        stuck = 0;
                        std::thread::sleep(Duration::from_millis(1));
                        continue;
                    }
                    None => {
                        stop.set();
                        return Err(no_relay_left(lanes));
                    }
                },
            };
            lane = Some(i);
            match senders[i].try_send(job) {
                Ok(()) => {
                    full_since[i] = None;
                    break;
                }
                Err(mpsc::TrySendError::Full(back)) => {
                    job = back;
                    let since = *full_since[i].get_or_insert_with(Instant::now);
                    if lanes.len() > 1 && since.elapsed() >= STUCK {
                        stuck |= 1 << i;
                        lane = None;
                    } else {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                Err(mpsc::TrySendError::Disconnected(_)) => return Ok(()),
            }
        }
    }
}

/// The next relay by smooth weighted round robin among those usable now
/// and not in `avoid` (bit `i` for relay `i`).
fn choose(lanes: &[Lane<'_>], current: &mut [i64], avoid: u32) -> Option<usize> {
    let mut total = 0;
    let mut best: Option<usize> = None;
    for (i, lane) in lanes.iter().enumerate() {
        if avoid & (1 << i) != 0 || !lane.usable() {
            continue;
        }
        let weight = i64::from(lane.relay.weight);
        current[i] += weight;
        total += weight;
        if best.is_none_or(|b| current[i] > current[b]) {
            best = Some(i);
        }
    }
    let best = best?;
    current[best] -= total;
    Some(best)
}

/// The run's error when every relay is set aside: the one relay's own
/// error, or each relay's.
fn no_relay_left(lanes: &[Lane<'_>]) -> anyhow::Error {
    let mut whys: Vec<(String, anyhow::Error)> = lanes
        .iter()
        .map(|lane| {
            let why = lane.aside.lock().expect("not poisoned").why.take();
            let why = why.unwrap_or_else(|| anyhow::anyhow!("set aside"));
            (lane.relay.name.clone(), why)
        })
        .collect();
    if whys.len() == 1 {
        return whys.pop().expect("one").1;
    }
    let each: Vec<String> = whys
        .iter()
        .map(|(name, why)| format!("{name}: {why:#}"))
        .collect();
    anyhow::anyhow!(
        "every SMTP relay failed; check each [[smtp]] relay: {}",
        each.join("; ")
    )
}

/// A worker's relay among all of a run's.
#[derive(Clone, Copy)]
struct Here<'a, 'r> {
    lanes: &'a [Lane<'r>],
    me: usize,
}

impl<'r> Here<'_, 'r> {
    fn lane(&self) -> &Lane<'r> {
        &self.lanes[self.me]
    }

    /// Whether another relay, usable now, has not failed this delivery yet.
    fn elsewhere(&self, job: &Job) -> bool {
        let tried = job.tried | (1 << self.me);
        self.lanes
            .iter()
            .enumerate()
            .any(|(i, lane)| tried & (1 << i) == 0 && lane.usable())
    }
}

fn worker(
    composer: &Composer<'_>,
    here: Here<'_, '_>,
    handback: &Handback,
    stop: &Stop<'_>,
    progress: &dyn Progress,
    still: &Still,
    results: mpsc::Sender<Done>,
) {
    let lane = here.lane();
    let (ack, acked) = mpsc::sync_channel(1);
    let mut sender = lane.relay.transport.session();
    // Reports one outcome and waits until it is recorded; false: stop.
    let report = |subscriber_id, outcome, finished| {
        let done = Done {
            subscriber_id,
            outcome,
            finished,
            ack: ack.clone(),
        };
        results.send(done).is_ok() && acked.recv().is_ok()
    };
    'next: loop {
        let next = lane.queue.lock().expect("not poisoned").recv();
        let Ok(mut job) = next else { return };
        if stop.is_set() {
            return;
        }
        let id = job.pending.subscriber_id;
        let message = match composer.message(
            id,
            &job.pending.key,
            &job.pending.email,
            &job.pending.name,
            job.pending.choice.as_ref(),
            Utc::now(),
        ) {
            Ok(message) => message,
            Err(e) => {
                if !report(id, Outcome::Failed(format!("{e:#}")), true) {
                    return;
                }
                handback.finished();
                continue;
            }
        };
        let mut backoff = FIRST_BACKOFF;
        // Attempts that reached the server in this run.
        let mut charged: i64 = 0;
        for attempt in 1..=MAX_ATTEMPTS {
            if lane.usable() {
                lane.pace.wait(stop);
            }
            // The wait may have been long: do not start a message after a stop.
            if stop.is_set() {
                return;
            }
            // Nor one to a reader who left since the feeder read it: the
            // delivery is cancelled at the feeder's next read, or at the end.
            if attempt == 1 && still.left(id) {
                handback.finished();
                progress.delivered();
                continue 'next;
            }
            // Set aside meanwhile (by another worker of this relay): the
            // message goes to another relay, its attempts so far with it.
            if !lane.usable() {
                job.pending.attempts += charged;
                handback.give_back(job);
                continue 'next;
            }
            // With several relays, what this one could not do another may:
            // the message goes there, and the failure counts against this
            // relay only, not against the reader.
            let mut hand_over = false;
            let (outcome, finished) = match sender.send(&message) {
                Attempt::Sent(reply) => {
                    lane.breaker.succeeded();
                    (Outcome::Sent(reply), true)
                }
                Attempt::Permanent(reason) => {
                    let refuses_all = lane.breaker.refused(&reason);
                    let believed = refuses_all.is_none();
                    if let Some(why) = refuses_all {
                        lane.set_aside(why, true, progress);
                    }
                    // Another relay may take what this one refuses (its
                    // table or policy gone wrong, even after it took some
                    // mail): a refusal is recorded only from the last relay
                    // that could try the message.
                    if here.elsewhere(&job) {
                        hand_over = true;
                        (
                            Outcome::Unreached(format!("{}: {reason}", lane.relay.name)),
                            false,
                        )
                    } else if believed && crate::bounces::parse::is_recipient_refusal(&reason) {
                        // The address refused at RCPT (by the last relay to
                        // try it): a hard bounce, unless the relay is being
                        // set aside for refusing everything.
                        (Outcome::Bounced(reason), true)
                    } else {
                        (Outcome::Failed(reason), true)
                    }
                }
                Attempt::Transient {
                    reason,
                    connection,
                    reached,
                } => {
                    // A 421 from a relay that took other mail in this run
                    // is about this message (a limit on its recipient's
                    // domain), not the relay closing for all: it counts,
                    // or the delivery would stay pending for ever, and its
                    // digest unfinished, so no new one is ever made.
                    // It is not tried again in this run either: retried,
                    // its 421s would add up to a closed relay's and stop
                    // the run, every run, before the readers after it. A
                    // relay closing for all trips the breaker after as
                    // many messages, each tried once.
                    let throttled = reason.contains("(421)") && lane.breaker.has_accepted();
                    let reached = reached || throttled;
                    // With several relays, another that has not tried it
                    // takes the message at once, charging the reader
                    // nothing: one run costs a reader at most the attempts
                    // one relay would, however many relays there are. Only
                    // failed connections count against the relay (a 4xx
                    // for one reader, a full mailbox, says nothing of it).
                    let tripped = match lane.breaker.failed(connection, &reason) {
                        Some(why) => {
                            lane.set_aside(why, false, progress);
                            true
                        }
                        None => false,
                    };
                    if here.elsewhere(&job) {
                        hand_over = true;
                        (
                            Outcome::Unreached(format!("{}: {reason}", lane.relay.name)),
                            false,
                        )
                    } else {
                        if reached {
                            charged += 1;
                        }
                        let total = job.pending.attempts + charged;
                        // Keeps the delivery pending; counts an attempt
                        // only if the server was reached for it.
                        let again = |reason| {
                            if reached {
                                Outcome::Retry(reason)
                            } else {
                                Outcome::Unreached(reason)
                            }
                        };
                        match tripped {
                            true => (again(reason), false),
                            false if reached && total >= MAX_TOTAL_ATTEMPTS => (
                                Outcome::Failed(format!(
                                    "gave up after {total} attempts: {reason}"
                                )),
                                true,
                            ),
                            false => (again(reason), throttled || attempt == MAX_ATTEMPTS),
                        }
                    }
                }
                Attempt::Fatal(e) => {
                    // Nothing goes through this relay until its setup is
                    // fixed: the message goes to another, if any.
                    lane.set_aside(e, true, progress);
                    job.pending.attempts += charged;
                    handback.give_back(job);
                    continue 'next;
                }
            };
            if !report(id, outcome, finished) {
                return;
            }
            if hand_over {
                job.pending.attempts += charged;
                job.tried |= 1 << here.me;
                handback.give_back(job);
                continue 'next;
            }
            if finished || attempt == MAX_ATTEMPTS {
                handback.finished();
                continue 'next;
            }
            if stop.is_set() {
                return;
            }
            if lane.usable() {
                std::thread::sleep(backoff);
                backoff *= 2;
            }
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
    /// Permanent refusals in a row, since the last message accepted, that
    /// are not about their recipient (a sending limit reached mid-run).
    refused_since: std::sync::atomic::AtomicUsize,
    accepted: std::sync::atomic::AtomicBool,
}

/// Whether a permanent refusal is about its recipient: their address gone
/// (what bounces them), or their mailbox full (5.2.2, whatever its words,
/// which bounces no one). A run of these says nothing of the relay.
fn about_the_recipient(reason: &str) -> bool {
    use crate::bounces::parse::{is_recipient_refusal, status_of};
    is_recipient_refusal(reason) || status_of(reason).is_some_and(|s| s == "5.2.2")
}

impl Breaker {
    fn new(workers: usize) -> Breaker {
        Breaker {
            limit: (2 * workers).max(6),
            in_a_row: 0.into(),
            refused_first: 0.into(),
            refused_since: 0.into(),
            accepted: false.into(),
        }
    }

    /// After a set-aside: the first connection failure sets it aside again.
    fn half_open(&self) {
        self.in_a_row
            .store(self.limit - 1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the relay took a message in this run.
    fn has_accepted(&self) -> bool {
        self.accepted.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn succeeded(&self) {
        self.in_a_row.store(0, std::sync::atomic::Ordering::Relaxed);
        self.refused_since
            .store(0, std::sync::atomic::Ordering::Relaxed);
        self.accepted
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Counts a permanent refusal. A server that refuses every message from
    /// the start (its greeting, the sender or the size, not a recipient)
    /// stops the run after a few, rather than failing the whole list; so
    /// does one that turns to refusing every message after taking some (a
    /// daily sending limit reached: `550 5.4.5 Daily user sending limit
    /// exceeded`), counting only refusals that are not of the recipient.
    fn refused(&self, reason: &str) -> Option<anyhow::Error> {
        self.in_a_row.store(0, std::sync::atomic::Ordering::Relaxed);
        if self.accepted.load(std::sync::atomic::Ordering::Relaxed) {
            if about_the_recipient(reason) {
                self.refused_since
                    .store(0, std::sync::atomic::Ordering::Relaxed);
                return None;
            }
            let n = self
                .refused_since
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                + 1;
            return (n >= self.limit).then(|| {
                anyhow::anyhow!(
                    "the SMTP server refused each of the last {n} messages (last: {reason}) after taking earlier ones: it refuses the sender or the message now, not the recipients (a sending limit reached?)"
                )
            });
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

    /// Counts a transient failure (only one of the connection counts);
    /// the error that stops the run (or sets the relay aside), if it is time.
    fn failed(&self, connection: bool, reason: &str) -> Option<anyhow::Error> {
        if !connection {
            return None;
        }
        let n = self
            .in_a_row
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        (n >= self.limit).then(|| match reason.contains("(421)") {
            // It answers, and says it is closing: the setup is not at fault.
            true => anyhow::anyhow!(
                "the SMTP server closed {n} connections in a row (last: {reason}): it takes no mail for now"
            ),
            false => anyhow::anyhow!(
                "the SMTP server failed {n} connections in a row (last: {reason}); check smtp.host, smtp.port, smtp.security and smtp.tls_ca_file"
            ),
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

    /// Waits for this worker's turn; returns early when `stop` is set,
    /// so a low rate never keeps a stopping run (SIGTERM to `serve`)
    /// waiting for slots it will not use.
    fn wait(&self, stop: &Stop<'_>) {
        let Some(interval) = self.interval else {
            return;
        };
        let slot = {
            let mut next = self.next.lock().expect("not poisoned");
            let slot = (*next).max(Instant::now());
            *next = slot + interval;
            slot
        };
        loop {
            let now = Instant::now();
            if slot <= now || stop.is_set() {
                return;
            }
            std::thread::sleep((slot - now).min(Duration::from_millis(100)));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use std::sync::Arc;

    use super::*;
    use crate::email::transport::stub::{Answer, Scripted};
    use crate::store::{Counts, NewDigest, Plan, Status};

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
                    kind: Default::default(),
                    page: "",
                    subject: "Digest",
                    html: "<p>Hello</p>",
                    text: "Hello\n",
                    posts: &[crate::store::PostRef {
                        source: "a.md".into(),
                        permalink: "/a/".into(),
                        published: "2026-11-01T00:00:00+00:00".into(),
                        title: "A".into(),
                        email_only: false,
                    }],
                    skipped: &[],
                    adopted: &[],
                },
                Plan::everyone,
                now(),
            )
            .unwrap();
        let digest = store.digest(id).unwrap().unwrap();
        (dir, config, store, digest)
    }

    /// A relay of `connections` workers that answers as `stub` does.
    fn relay(name: &str, stub: &Arc<Scripted>, connections: usize, weight: u32) -> Relay {
        Relay {
            name: name.into(),
            transport: Box::new(Arc::clone(stub)),
            connections,
            rate: 0.0,
            weight,
        }
    }

    /// [`setup`] with `n` readers, `r0@example.org` on, and their addresses.
    fn setup_readers(n: usize) -> (tempfile::TempDir, Config, Store, StoredDigest, Vec<String>) {
        let emails: Vec<String> = (0..n).map(|i| format!("r{i}@example.org")).collect();
        let refs: Vec<&str> = emails.iter().map(String::as_str).collect();
        let (dir, config, store, digest) = setup(&refs);
        (dir, config, store, digest, emails)
    }

    fn run_over(
        config: &Config,
        store: &mut Store,
        digest: &StoredDigest,
        relays: &[Relay],
    ) -> Result<Counts> {
        deliver(
            config,
            store,
            digest,
            relays,
            b"a-secret-of-16-bytes-or-more",
            &Quiet,
            None,
        )?;
        Ok(store.counts(digest.id)?)
    }

    /// One relay with the config's connections.
    fn run(
        config: &Config,
        store: &mut Store,
        digest: &StoredDigest,
        stub: &Arc<Scripted>,
    ) -> Result<Counts> {
        let relays = [relay("stub", stub, config.smtp[0].connections, 1)];
        run_over(config, store, digest, &relays)
    }

    fn counts(pending: usize, sent: usize, failed: usize) -> Counts {
        Counts {
            pending,
            sent,
            failed,
            cancelled: 0,
            skipped: 0,
        }
    }

    #[test]
    fn a_transient_refusal_is_retried_until_accepted() {
        let (_dir, config, mut store, digest) = setup(&["a@example.org", "b@example.org"]);
        let stub = Arc::new(
            Scripted::new(Answer::Accept).script("a@example.org", &[Answer::Later, Answer::Later]),
        );
        let counts = run(&config, &mut store, &digest, &stub).unwrap();
        assert_eq!(counts, self::counts(0, 2, 0));
        assert_eq!(stub.tries_at("a@example.org"), 3);
        assert_eq!(stub.tries_at("b@example.org"), 1);
    }

    #[test]
    fn a_permanent_refusal_fails_that_recipient_only() {
        let (_dir, config, mut store, digest) =
            setup(&["a@example.org", "b@example.org", "c@example.org"]);
        let stub =
            Arc::new(Scripted::new(Answer::Accept).script("b@example.org", &[Answer::Refuse]));
        let counts = run(&config, &mut store, &digest, &stub).unwrap();
        assert_eq!(counts, self::counts(0, 2, 1));
        assert_eq!(stub.tries_at("b@example.org"), 1, "a 5xx is not retried");
    }

    #[test]
    fn a_fatal_error_stops_the_run_with_the_rest_pending() {
        let (_dir, config, mut store, digest) = setup(&["a@example.org", "b@example.org"]);
        let stub = Arc::new(Scripted::new(Answer::Fatal));
        let error = run(&config, &mut store, &digest, &stub).unwrap_err();
        assert!(
            format!("{error:#}").contains("535 login refused"),
            "{error:#}"
        );
        assert_eq!(store.counts(digest.id).unwrap(), counts(2, 0, 0));
    }

    #[test]
    fn a_server_that_drops_every_connection_trips_the_breaker() {
        let (_dir, config, mut store, digest, _) = setup_readers(8);
        let stub = Arc::new(Scripted::new(Answer::Drop));
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
        let (_dir, config, mut store, digest, _) = setup_readers(10);
        let stub = Arc::new(Scripted::new(Answer::Refuse));
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
        config.smtp[0].connections = 1;
        let stub =
            Arc::new(Scripted::new(Answer::Refuse).script("a@example.org", &[Answer::Accept]));
        let counts = run(&config, &mut store, &digest, &stub).unwrap();
        assert_eq!(counts, self::counts(0, 1, 10));
    }

    #[test]
    fn messages_are_spread_over_relays_by_weight() {
        let (_dir, config, mut store, digest, _) = setup_readers(40);
        let (one, three) = (
            Arc::new(Scripted::new(Answer::Accept)),
            Arc::new(Scripted::new(Answer::Accept)),
        );
        let relays = [relay("one", &one, 2, 1), relay("three", &three, 2, 3)];
        let counts = run_over(&config, &mut store, &digest, &relays).unwrap();
        assert_eq!(counts, self::counts(0, 40, 0));
        let tries = |s: &Scripted| s.tries.lock().unwrap().len();
        assert_eq!((tries(&one), tries(&three)), (10, 30));
    }

    #[test]
    fn a_relay_that_fails_its_connections_is_set_aside_and_nobody_is_lost() {
        let (_dir, config, mut store, digest, _) = setup_readers(60);
        let (down, up) = (
            Arc::new(Scripted::new(Answer::Drop)),
            Arc::new(Scripted::new(Answer::Accept)),
        );
        let relays = [relay("down", &down, 2, 1), relay("up", &up, 2, 1)];
        let counts = run_over(&config, &mut store, &digest, &relays).unwrap();
        assert_eq!(counts, self::counts(0, 60, 0));
        // Each reader was sent once, by the relay that works; the other
        // was tried only until its breaker tripped (6 for two workers).
        let sent: std::collections::HashSet<String> = up
            .tries
            .lock()
            .unwrap()
            .iter()
            .map(|(to, _)| to.clone())
            .collect();
        assert_eq!(sent.len(), 60);
        assert_eq!(up.tries.lock().unwrap().len(), 60);
        let tried = down.tries.lock().unwrap().len();
        assert!(
            (6..=8).contains(&tried),
            "{tried} tries at the relay that is down"
        );
    }

    #[test]
    fn a_relay_that_refuses_the_login_is_set_aside_for_the_run() {
        let (_dir, config, mut store, digest, _) = setup_readers(20);
        let (refusing, up) = (
            Arc::new(Scripted::new(Answer::Fatal)),
            Arc::new(Scripted::new(Answer::Accept)),
        );
        let relays = [relay("refusing", &refusing, 2, 5), relay("up", &up, 1, 1)];
        let counts = run_over(&config, &mut store, &digest, &relays).unwrap();
        assert_eq!(counts, self::counts(0, 20, 0));
        assert!(refusing.tries.lock().unwrap().len() <= 2);
    }

    #[test]
    fn when_every_relay_fails_the_run_stops_naming_each() {
        let (_dir, config, mut store, digest) = setup(&["a@example.org", "b@example.org"]);
        let (a, b) = (
            Arc::new(Scripted::new(Answer::Drop)),
            Arc::new(Scripted::new(Answer::Fatal)),
        );
        let relays = [
            relay("relay-a:25", &a, 2, 1),
            relay("relay-b:587", &b, 1, 1),
        ];
        let error = run_over(&config, &mut store, &digest, &relays).unwrap_err();
        let error = format!("{error:#}");
        assert!(
            error.contains("relay-a:25: the SMTP server failed")
                && error.contains("relay-b:587: 535 login refused"),
            "{error}"
        );
        assert_eq!(store.counts(digest.id).unwrap(), counts(2, 0, 0));
    }

    /// Forty readers over a relay that answers `bad` to everything and one
    /// that accepts: what the second relay took, and the counts.
    fn beside_a_good_relay(bad: Answer, connections: usize) -> (Counts, usize, usize) {
        let (_dir, config, mut store, digest, _) = setup_readers(40);
        let (bad, good) = (
            Arc::new(Scripted::new(bad)),
            Arc::new(Scripted::new(Answer::Accept)),
        );
        let relays = [
            relay("bad", &bad, connections, 1),
            relay("good", &good, 2, 1),
        ];
        let counts = run_over(&config, &mut store, &digest, &relays).unwrap();
        let bounced = store
            .digest_reports()
            .unwrap()
            .first()
            .map_or(0, |d| d.hard + d.soft);
        let good_tries = good.tries.lock().unwrap().len();
        (counts, good_tries, bounced)
    }

    #[test]
    fn a_relay_that_refuses_every_recipient_bounces_no_one_when_another_takes_them() {
        let (counts, good, bounced) = beside_a_good_relay(Answer::Refuse, 2);
        assert_eq!(counts, self::counts(0, 40, 0));
        assert_eq!((good, bounced), (40, 0));
    }

    #[test]
    fn a_relay_that_defers_everything_hands_its_messages_over() {
        let (counts, good, _) = beside_a_good_relay(Answer::Later, 2);
        assert_eq!(counts, self::counts(0, 40, 0));
        assert_eq!(good, 40);
    }

    #[test]
    fn a_relay_down_with_one_connection_strands_no_one() {
        let (counts, good, _) = beside_a_good_relay(Answer::Drop, 1);
        assert_eq!(counts, self::counts(0, 40, 0));
        assert_eq!(good, 40);
    }

    #[test]
    fn a_slow_relay_does_not_hold_back_the_others() {
        let (_dir, config, mut store, digest, _) = setup_readers(400);
        let (slow, fast) = (
            Arc::new(Scripted::new(Answer::Slow)),
            Arc::new(Scripted::new(Answer::Accept)),
        );
        // Equal weights: waiting on the slow relay's turn would give it
        // half the list; its queue stuck full, the fast one takes the rest.
        let relays = [relay("slow", &slow, 1, 1), relay("fast", &fast, 2, 1)];
        let counts = run_over(&config, &mut store, &digest, &relays).unwrap();
        assert_eq!(counts, self::counts(0, 400, 0));
        let slow_sent = slow.tries.lock().unwrap().len();
        assert!(slow_sent < 40, "the slow relay sent {slow_sent} of 400");
    }

    #[test]
    fn a_reader_deferred_by_every_relay_is_charged_as_by_one() {
        let (_dir, config, mut store, digest, _) = setup_readers(8);
        let stubs: Vec<Arc<Scripted>> = (0..4)
            .map(|_| {
                Arc::new(
                    Scripted::new(Answer::Accept).script("r3@example.org", &[Answer::Later; 10]),
                )
            })
            .collect();
        let relays: Vec<Relay> = stubs
            .iter()
            .enumerate()
            .map(|(i, s)| relay(&format!("relay{i}"), s, 1, 1))
            .collect();
        let counts = run_over(&config, &mut store, &digest, &relays).unwrap();
        assert_eq!(counts, self::counts(1, 7, 0));
        let pending = store.pending(digest.id, 0, 10, now()).unwrap();
        assert_eq!(pending.len(), 1);
        assert!(pending[0].attempts <= MAX_ATTEMPTS as i64, "{pending:?}");
    }

    #[test]
    fn readers_deferred_everywhere_do_not_set_healthy_relays_aside() {
        let (_dir, config, mut store, digest, emails) = setup_readers(20);
        // The first eight readers have a full mailbox: 4xx at both relays,
        // more in a row than a relay's breaker allows for failed connections.
        let script = |stub: Scripted| {
            emails[..8]
                .iter()
                .fold(stub, |stub, e| stub.script(e, &[Answer::Later; 10]))
        };
        let (a, b) = (
            Arc::new(script(Scripted::new(Answer::Accept))),
            Arc::new(script(Scripted::new(Answer::Accept))),
        );
        let relays = [relay("a", &a, 2, 1), relay("b", &b, 2, 1)];
        let counts = run_over(&config, &mut store, &digest, &relays).unwrap();
        assert_eq!(counts, self::counts(8, 12, 0));
        // None bounced between the relays without end: five tries at one
        // relay, at most one at the other.
        for e in &emails[..8] {
            let tries = a.tries_at(e) + b.tries_at(e);
            assert!((5..=6).contains(&tries), "{e}: {tries} tries");
        }
    }

    #[test]
    fn a_relay_that_turns_to_refusing_everyone_bounces_no_one_beside_a_good_one() {
        let (_dir, config, mut store, digest, _) = setup_readers(30);
        // The first relay takes its first message, then refuses everyone.
        let (turning, good) = (
            Arc::new(Scripted::new(Answer::Refuse).script("r0@example.org", &[Answer::Accept])),
            Arc::new(Scripted::new(Answer::Accept)),
        );
        let relays = [relay("turning", &turning, 1, 1), relay("good", &good, 1, 1)];
        let counts = run_over(&config, &mut store, &digest, &relays).unwrap();
        assert_eq!(counts, self::counts(0, 30, 0));
        let report = &store.digest_reports().unwrap()[0];
        assert_eq!(report.hard + report.soft, 0, "{report:?}");
    }
}
