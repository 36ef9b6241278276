//! `newsletter bounces read`: messages from files, mboxes, Maildirs or
//! standard input, read ([`super::parse`]) and recorded in the store.
//!
//! Messages are recorded in batches, one transaction each: a run killed
//! part way and started again counts every report once (each is kept by
//! its identity, see [`crate::store::Incoming`]).

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};

use super::parse::{Kind, Report, read};
use crate::config::Config;
use crate::store::{Event, Incoming, Recorded, Rules, Status, Store};

/// How many messages are read at once, on all cores.
const PARALLEL: usize = 256;

/// A message larger than this is no bounce (they are a few KB, with the
/// original at most): left unread, like the IMAP intake leaves it.
pub const MAX_MESSAGE: u64 = 4 * 1024 * 1024;

/// A batch goes to be read once it holds this many bytes, whatever its
/// count: memory stays bounded with large messages too.
const BATCH_BYTES: usize = 32 * 1024 * 1024;

/// A message taken from a mailbox: its bytes (or why not), and the place
/// that names it.
type Taken = (Result<Vec<u8>, Unread>, String);

/// Why a message in a mailbox was not read.
#[derive(Debug)]
enum Unread {
    /// Gone since the folder was listed (a mail client moved it from
    /// `new/` to `cur/`): the next run finds it.
    Moved,
    /// Could not be read, or too large: named, and the run goes on.
    Failed(String),
}

/// A message file's bytes, unless it is too large or cannot be read.
fn read_message(file: &Path) -> Result<Vec<u8>, Unread> {
    let failed = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => Unread::Moved,
        _ => Unread::Failed(format!("cannot be read ({e})")),
    };
    let opened = std::fs::File::open(file).map_err(failed)?;
    let mut raw = Vec::new();
    opened
        .take(MAX_MESSAGE + 1)
        .read_to_end(&mut raw)
        .map_err(failed)?;
    too_large(raw).map_err(Unread::Failed)
}

/// `raw`, unless it is over [`MAX_MESSAGE`].
fn too_large(raw: Vec<u8>) -> Result<Vec<u8>, String> {
    if raw.len() as u64 > MAX_MESSAGE {
        return Err(format!(
            "over {} MB, no bounce is that large: not read",
            MAX_MESSAGE >> 20
        ));
    }
    Ok(raw)
}

/// Whether `error` is about reading a file (skipped and named), not about
/// the store (which ends the run).
fn is_read_error(error: &anyhow::Error) -> bool {
    error
        .root_cause()
        .downcast_ref::<std::io::Error>()
        .is_some()
}

/// The message files of a Maildir, in `new` then `cur`, by name: regular
/// files only (a symlink to one counts), no hidden ones.
fn maildir_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut all = Vec::new();
    for folder in ["new", "cur"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path.join(folder))?
            .filter_map(|entry| entry.ok())
            .filter(|entry| !entry.file_name().to_string_lossy().starts_with('.'))
            .map(|entry| entry.path())
            .filter(|file| file.is_file())
            .collect();
        files.sort();
        all.extend(files);
    }
    Ok(all)
}

/// How many messages go into one transaction.
const BATCH: usize = 1000;

/// What one run read and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    pub messages: usize,
    pub hard: usize,
    pub soft: usize,
    pub complaints: usize,
    pub unsubscribes: usize,
    pub auto_replies: usize,
    pub delivered: usize,
    /// Reports read before (not counted again).
    pub again: usize,
    /// Reports about an address that is not on the list.
    pub no_one: usize,
    /// Subscribers whose status this run changed, by their new status.
    pub now_bounced: usize,
    pub now_complained: usize,
    pub now_unsubscribed: usize,
    /// Where each message that is none of the above is (path, or path and
    /// its number in an mbox).
    pub not_understood: Vec<String>,
    /// Message files that could not be read (`PATH: why`), skipped.
    pub unreadable: Vec<String>,
    /// Maildir messages gone since the folder was listed (moved to `cur/`
    /// by a mail client): read by the next run.
    pub moved: usize,
}

impl Tally {
    /// The run in one paragraph, for the terminal and the log.
    pub fn summary(&self) -> String {
        use crate::text::count;
        format!(
            "read {}: {}, {}, {}, {}, {} and {} (ignored), {} not understood; {} read before, \
             {} about addresses not on the list; now bounced: {}, complained: {}, unsubscribed: {}",
            count(self.messages, "message"),
            count(self.hard, "hard bounce"),
            count(self.soft, "soft bounce"),
            count(self.complaints, "complaint"),
            count(self.unsubscribes, "unsubscribe request"),
            count(self.auto_replies, "auto-reply"),
            count(self.delivered, "delivery report"),
            self.not_understood.len(),
            self.again,
            self.no_one,
            self.now_bounced,
            self.now_complained,
            self.now_unsubscribed
        )
    }
}

/// Reads every message at `paths` (`-` is standard input, one message)
/// and records what they say.
pub fn read_paths(
    store: &mut Store,
    config: &Config,
    paths: &[PathBuf],
    now: DateTime<Utc>,
) -> Result<Tally> {
    let mut run = Run::new(store, config, now)?;
    let read = paths.iter().try_for_each(|path| {
        if path == Path::new("-") {
            // One message as an MTA pipes it, or an mbox (`zcat old.mbox.gz
            // | newsletter bounces read`): every message of it, not the
            // first alone.
            run.stream(std::io::stdin(), "standard input", false)
        } else {
            run.path_or_skip(path)
        }
    });
    // What was read before an error is recorded all the same: a rerun
    // finds it read before.
    let recorded = run.flush();
    read.and(recorded)?;
    run.finish()
}

/// One run of reading: messages in, reports recorded in batches.
pub struct Run<'a> {
    config: &'a Config,
    /// The store's token secret and instance id, to check VERP addresses
    /// and our Message-IDs.
    secret: Vec<u8>,
    store_id: String,
    store: &'a mut Store,
    rules: Rules,
    now: DateTime<Utc>,
    tally: Tally,
    batch: Vec<Incoming>,
    in_batch: usize,
}

impl<'a> Run<'a> {
    pub fn new(store: &'a mut Store, config: &'a Config, now: DateTime<Utc>) -> Result<Run<'a>> {
        let rules = Rules {
            soft_limit: config.bounces.soft_limit,
            soft_window: config.bounces.soft_window,
        };
        let secret = store.secret(config.secrets.token_secret.as_deref())?;
        let store_id = store.instance_id()?;
        Ok(Run {
            config,
            secret,
            store_id,
            store,
            rules,
            now,
            tally: Tally::default(),
            batch: Vec::new(),
            in_batch: 0,
        })
    }

    /// Records what is left and says what the run did.
    pub fn finish(mut self) -> Result<Tally> {
        self.flush()?;
        Ok(self.tally)
    }

    /// [`Run::path`], with a file that cannot be read named and skipped:
    /// one bad file must not stop every run at the same place.
    fn path_or_skip(&mut self, path: &Path) -> Result<()> {
        match self.path(path) {
            Err(e) if is_read_error(&e) => {
                self.tally.unreadable.push(format!("{e:#}"));
                Ok(())
            }
            done => done,
        }
    }

    /// A message file, an mbox, a Maildir, or a folder of message files.
    fn path(&mut self, path: &Path) -> Result<()> {
        let cannot = || format!("cannot read {}", path.display());
        if path.is_dir() {
            if path.join("cur").is_dir() && path.join("new").is_dir() {
                let files = maildir_files(path).with_context(cannot)?;
                // A file that cannot be read is skipped and named, not the
                // end of the run: it would stop every run at the same place.
                let messages = files.into_iter().map(|file| {
                    let place = file.display().to_string();
                    Ok((read_message(&file), place))
                });
                return self.many(messages);
            }
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(cannot)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            files.sort();
            for file in files {
                self.path_or_skip(&file)?;
            }
            return Ok(());
        }
        let file = std::fs::File::open(path).with_context(cannot)?;
        self.stream(file, &path.display().to_string(), true)
    }

    /// An mbox or one message, read from `input` (a file, a pipe, standard
    /// input) once, and named `name`. An mbox's messages are each held to
    /// [`MAX_MESSAGE`], and so is one message when `limited` (standard
    /// input, as an MTA pipes one, is not).
    fn stream(&mut self, mut input: impl Read + Send, name: &str, limited: bool) -> Result<()> {
        let cannot = || format!("cannot read {name}");
        // The first bytes are put back in front: a pipe (`<(zcat
        // mail.mbox.gz)`, standard input) cannot be read twice.
        let mut start = Vec::with_capacity(5);
        (&mut input)
            .take(5)
            .read_to_end(&mut start)
            .with_context(cannot)?;
        let mut whole = std::io::Cursor::new(start).chain(input);
        if whole.get_ref().0.get_ref().as_slice() == b"From " {
            let reader = std::io::BufReader::new(FromLines::new(std::io::BufReader::new(whole)));
            let messages = mail_parser::mailbox::mbox::MessageIterator::new(reader)
                .enumerate()
                .map(|(i, message)| {
                    let message = message.with_context(cannot)?;
                    let place = format!("{name}, message {}", i + 1);
                    Ok((
                        too_large(message.unwrap_contents()).map_err(Unread::Failed),
                        place,
                    ))
                });
            return self.many(messages);
        }
        let mut raw = Vec::new();
        if !limited {
            whole.read_to_end(&mut raw).with_context(cannot)?;
            return self.message(&raw, name).map(drop);
        }
        whole
            .take(MAX_MESSAGE + 1)
            .read_to_end(&mut raw)
            .with_context(cannot)?;
        match too_large(raw) {
            Ok(raw) => self.message(&raw, name).map(drop),
            Err(why) => {
                self.tally.unreadable.push(format!("{name}: {why}"));
                Ok(())
            }
        }
    }

    /// Reads one message (`place` names it in messages) and queues what it
    /// reports; recorded at the next [`Run::flush`] (at most 1,000 later).
    /// Its kind, so a mailbox can tell handled messages from the rest.
    pub fn message(&mut self, raw: &[u8], place: &str) -> Result<Kind> {
        self.report(read(raw), place)
    }

    /// The messages of a mailbox (each with the place that names it), in
    /// three stages that overlap: a thread takes them from the disk,
    /// [`PARALLEL`] at a time; another reads each batch on all cores
    /// (reading is most of the work); this one queues what they report, in
    /// their order. The first error stops all three.
    fn many<I>(&mut self, messages: I) -> Result<()>
    where
        I: Iterator<Item = Result<Taken>> + Send,
    {
        use rayon::prelude::*;
        type Batch = Vec<Taken>;
        let (batches, taken) = mpsc::sync_channel::<Result<Batch>>(2);
        let (reports, read_ones) = mpsc::sync_channel::<Result<(Vec<Option<Report>>, Batch)>>(2);
        std::thread::scope(|scope| {
            scope.spawn(move || {
                let mut batch = Vec::with_capacity(PARALLEL);
                let mut bytes = 0;
                for message in messages {
                    let full = match message {
                        Ok(message) => {
                            bytes += message.0.as_ref().map_or(0, Vec::len);
                            batch.push(message);
                            batch.len() >= PARALLEL || bytes >= BATCH_BYTES
                        }
                        Err(e) => {
                            // The messages before it are read and recorded first.
                            if !batch.is_empty() {
                                let _ = batches.send(Ok(std::mem::take(&mut batch)));
                            }
                            let _ = batches.send(Err(e));
                            return;
                        }
                    };
                    // A send fails when the run has stopped on an error.
                    if full {
                        bytes = 0;
                        if batches.send(Ok(std::mem::take(&mut batch))).is_err() {
                            return;
                        }
                    }
                }
                let _ = batches.send(Ok(batch));
            });
            scope.spawn(move || {
                for batch in taken {
                    let read_batch = batch.map(|batch| {
                        let read: Vec<Option<Report>> = batch
                            .par_iter()
                            .map(|(raw, _)| raw.as_ref().ok().map(|raw| read(raw)))
                            .collect();
                        (read, batch)
                    });
                    if reports.send(read_batch).is_err() {
                        return;
                    }
                }
            });
            for read_batch in read_ones {
                let (read, batch) = read_batch?;
                for (report, (raw, place)) in read.into_iter().zip(&batch) {
                    match (report, raw) {
                        (Some(report), _) => {
                            self.report(report, place)?;
                        }
                        (None, Err(Unread::Failed(why))) => {
                            self.tally.unreadable.push(format!("{place}: {why}"))
                        }
                        (None, Err(Unread::Moved)) => self.tally.moved += 1,
                        (None, Ok(_)) => unreachable!("every message read is reported"),
                    }
                }
            }
            Ok(())
        })
    }

    fn report(&mut self, report: Report, place: &str) -> Result<Kind> {
        self.tally.messages += 1;
        // Whom it is about, by what only we can make: a VERP address it
        // came back to, else a tagged Message-ID of ours it quotes.
        let ours = report
            .delivered_to
            .iter()
            .find_map(|to| super::verp::decode(self.config, &self.secret, to))
            .or_else(|| {
                report
                    .ours
                    .as_ref()
                    .and_then(|o| super::verp::check_message_id(&self.secret, &self.store_id, o))
            });
        // Without a Message-ID, what it says (not its bytes, which differ
        // between an LF and a CRLF copy, or one with another header).
        let base = match &report.message_id {
            Some(id) => format!("<{id}>"),
            None => report.fingerprint.clone(),
        };
        match report.kind {
            Kind::Bounce => {
                for (i, failure) in report.failures.iter().enumerate() {
                    if failure.hard {
                        self.tally.hard += 1;
                    } else {
                        self.tally.soft += 1;
                    }
                    self.batch.push(Incoming {
                        identity: identity(&base, failure.recipient.as_deref(), i),
                        event: if failure.hard {
                            Event::Hard
                        } else {
                            Event::Soft
                        },
                        recipient: failure.recipient.clone(),
                        alternate: failure.original.clone(),
                        ours,
                        at: report.date,
                        status: failure.status.clone().unwrap_or_default(),
                        detail: failure.diagnostic.clone(),
                    });
                }
            }
            Kind::Complaint => {
                self.tally.complaints += 1;
                self.batch.push(single(
                    &report,
                    &base,
                    Event::Complaint,
                    report.complainant.clone(),
                    ours,
                ));
            }
            Kind::Unsubscribe => {
                self.tally.unsubscribes += 1;
                self.batch.push(single(
                    &report,
                    &base,
                    Event::Unsubscribe,
                    report.from.clone(),
                    ours,
                ));
            }
            Kind::AutoReply => self.tally.auto_replies += 1,
            Kind::Delivered => self.tally.delivered += 1,
            Kind::Other => self.tally.not_understood.push(place.to_string()),
        }
        self.in_batch += 1;
        if self.in_batch >= BATCH {
            self.flush()?;
        }
        Ok(report.kind)
    }

    /// Records the batch in one transaction.
    pub fn flush(&mut self) -> Result<()> {
        let mut batch = std::mem::take(&mut self.batch);
        self.in_batch = 0;
        if batch.is_empty() {
            return Ok(());
        }
        for report in &mut batch {
            self.scrub_if_forgotten(report)?;
        }
        for recorded in self.store.record_reports(&batch, self.rules, self.now)? {
            match recorded {
                Recorded::Again => self.tally.again += 1,
                Recorded::NoOne => self.tally.no_one += 1,
                Recorded::Counted { now, .. } => match now {
                    Some(Status::Bounced) => self.tally.now_bounced += 1,
                    Some(Status::Complained) => self.tally.now_complained += 1,
                    Some(Status::Unsubscribed) => self.tally.now_unsubscribed += 1,
                    _ => {}
                },
            }
        }
        Ok(())
    }
}

impl Run<'_> {
    /// A report about an address erased with `subscribers remove --forget`
    /// (a bounce arriving late, a complaint after the request) is kept
    /// without it: only so that it counts once, under a hash of its
    /// identity, naming no one and saying nothing. Recorded as it came, it
    /// wrote the erased address back into the store three times.
    fn scrub_if_forgotten(&self, report: &mut Incoming) -> Result<()> {
        let mut erased = false;
        for address in [&report.recipient, &report.alternate].into_iter().flatten() {
            let canonical =
                crate::store::normalize_email(address).unwrap_or_else(|_| address.clone());
            erased |= self.store.is_forgotten(&canonical)?;
        }
        if erased {
            use sha2::Digest;
            let hash = hex::encode(sha2::Sha256::digest(report.identity.as_bytes()));
            report.identity = format!("erased {hash}");
            report.recipient = None;
            report.alternate = None;
            report.detail = String::new();
        }
        Ok(())
    }
}

/// A report about one address (a complaint, a mailed unsubscribe).
fn single(
    report: &Report,
    base: &str,
    event: Event,
    recipient: Option<String>,
    ours: Option<(i64, i64)>,
) -> Incoming {
    Incoming {
        identity: identity(base, recipient.as_deref(), 0),
        event,
        recipient,
        alternate: None,
        ours,
        at: report.date,
        status: String::new(),
        detail: report.subject.clone(),
    }
}

/// A report's identity for one of its recipients.
fn identity(base: &str, recipient: Option<&str>, index: usize) -> String {
    match recipient {
        Some(r) => format!("{base} {}", r.to_ascii_lowercase()),
        None => format!("{base} #{index}"),
    }
}

/// An mbox as `mail_parser` reads it, with each "From " line that does not
/// start a message quoted (`>From `, which it unquotes): a message an MTA
/// pipes to a command (Postfix's `local`, Exim's `pipe`) starts with a
/// "From " line, and its body's lines that start "From " are not quoted as
/// in an mbox file, so each would start a message of its own. A "From "
/// line starts a message when it is the first line or a header line
/// follows it.
struct FromLines<R> {
    input: R,
    /// Bytes ready to be read.
    out: Vec<u8>,
    at: usize,
    /// A "From " line waiting for the next line to say what it is.
    held: Option<Vec<u8>>,
    first: bool,
    done: bool,
}

impl<R: BufRead> FromLines<R> {
    fn new(input: R) -> Self {
        FromLines {
            input,
            out: Vec::new(),
            at: 0,
            held: None,
            first: true,
            done: false,
        }
    }

    /// Moves the next line (or the end) into `out`.
    fn fill(&mut self) -> std::io::Result<()> {
        self.out.clear();
        self.at = 0;
        let mut line = Vec::new();
        if self.input.read_until(b'\n', &mut line)? == 0 {
            self.done = true;
            if let Some(held) = self.held.take() {
                self.out.push(b'>');
                self.out.extend_from_slice(&held);
            }
            return Ok(());
        }
        if let Some(held) = self.held.take() {
            if !is_header_line(&line) {
                self.out.push(b'>');
            }
            self.out.extend_from_slice(&held);
        }
        if line.starts_with(b"From ") && !std::mem::take(&mut self.first) {
            self.held = Some(line);
        } else {
            self.first = false;
            self.out.extend_from_slice(&line);
        }
        Ok(())
    }
}

/// Whether `line` is a header field's first line (`Name: ...`).
fn is_header_line(line: &[u8]) -> bool {
    let name = line.iter().take_while(|&&b| b != b':').count();
    name > 0 && name < line.len() && line[..name].iter().all(|b| (b'!'..=b'~').contains(b))
}

impl<R: BufRead> Read for FromLines<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.out.len() {
            if self.done {
                return Ok(0);
            }
            self.fill()?;
        }
        let n = buf.len().min(self.out.len() - self.at);
        buf[..n].copy_from_slice(&self.out[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
