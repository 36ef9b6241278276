//! Command-line interface: clap types and dispatch only.

use std::path::PathBuf;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::content;
use crate::email::deliver::Progress;
use crate::email::send::{self, SendOptions, SendReport};
use crate::publish::{self, Rebuilt, Scheduled};
use crate::store::{Status, Store};
use crate::subscribers;

/// Markdown posts → Atom, RSS and JSON feeds, and an email digest.
#[derive(Debug, Parser)]
#[command(name = "newsletter", version, about)]
pub struct Cli {
    /// The config file; relative paths in it are relative to its folder.
    #[arg(
        long,
        global = true,
        default_value = "config.toml",
        value_name = "PATH"
    )]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a new site in DIR: config.toml with every key listed, and
    /// content/ with one example post. Never overwrites a file.
    Init {
        /// The folder for the site (created if missing).
        #[arg(default_value = ".", value_name = "DIR")]
        dir: PathBuf,
        /// Also copy the built-in templates into DIR/templates/ to edit them;
        /// in a site that has its config.toml, copy only the templates, into
        /// its digest.templates folder.
        #[arg(long)]
        templates: bool,
        #[command(flatten)]
        clock: NowArg,
    },
    /// Write the Atom, RSS and JSON feeds of the posts published by now.
    Build {
        /// Write the feeds here instead of feeds.output_dir.
        #[arg(long, value_name = "DIR")]
        output: Option<PathBuf>,
        #[command(flatten)]
        clock: NowArg,
    },
    /// Read every post and report every problem as path:line: message.
    Check,
    /// Make the next digest of new posts and email it to every active
    /// subscriber; resume an unfinished one first.
    Send {
        /// Render everything and report who would get what; record and send nothing.
        #[arg(long, conflicts_with = "to")]
        dry_run: bool,
        /// Send the next digest to this one address as a test; record nothing.
        #[arg(long, value_name = "EMAIL")]
        to: Option<String>,
        /// With --to: send this post as a letter (sent whole, on its own) instead.
        #[arg(long, value_name = "PATH", requires = "to")]
        letter: Option<PathBuf>,
        #[command(flatten)]
        clock: NowArg,
    },
    /// Write the next digest as digest.html, digest.txt and digest.eml.
    Preview {
        #[arg(long, value_name = "DIR", default_value = "preview")]
        output: PathBuf,
        /// Write this post as the letter it would be (letter.html, letter.txt, letter.eml).
        #[arg(long, value_name = "PATH")]
        letter: Option<PathBuf>,
        #[command(flatten)]
        clock: NowArg,
    },
    /// One cron-friendly run: build the feeds with the posts due by now,
    /// then send the digest if the schedule says one is due (resuming an
    /// unfinished one first).
    Publish {
        /// Send the digest now whatever the schedule says.
        #[arg(long)]
        send: bool,
        #[command(flatten)]
        clock: NowArg,
    },
    /// Serve the feeds, sign-up and unsubscribe pages; publish scheduled
    /// posts and send digests on the schedule. Stops on SIGTERM or Ctrl-C.
    Serve {
        /// Address and port to listen on (default: server.listen).
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
        /// Log as JSON lines instead of text.
        #[arg(long)]
        log_json: bool,
        /// Start the server's clock at this RFC 3339 time (for trials).
        #[arg(long, env = "NEWSLETTER_NOW", value_name = "TIMESTAMP", value_parser = parse_now)]
        now: Option<DateTime<Utc>>,
    },
    /// Manage the subscribers in the store.
    #[command(subcommand)]
    Subscribers(SubscribersCommand),
    /// Read mail that came back: bounces, spam complaints, mailed
    /// unsubscribe requests.
    #[command(subcommand)]
    Bounces(BouncesCommand),
    /// What became of each digest: recipients, sent, failed, pending,
    /// bounces, complaints and unsubscribes since (tab-separated, newest
    /// first); `digests show N`: the addresses of digest N by outcome.
    Digests {
        #[command(subcommand)]
        show: Option<DigestsCommand>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DigestsCommand {
    /// The addresses of one digest, by outcome (tab-separated: outcome,
    /// address, detail).
    Show { id: i64 },
}

#[derive(Debug, Subcommand)]
pub enum BouncesCommand {
    /// Read messages and act on them: each PATH a message file, an mbox, a
    /// Maildir or a folder of message files; `-` (the default without
    /// --imap) one message from standard input, so an MTA can pipe to it. Reading the same
    /// message again changes nothing.
    Read {
        paths: Vec<PathBuf>,
        /// Also read the bounces.imap mailbox once: handled messages are
        /// moved to bounces.processed, the others flagged and left.
        #[arg(long)]
        imap: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SubscribersCommand {
    /// Add an address (active at once).
    Add {
        email: String,
        #[arg(long, default_value = "")]
        name: String,
        /// Queue a welcome mail for the new address; the next `send` or
        /// `publish` sends it (see `[welcome]`).
        #[arg(long)]
        welcome: bool,
        /// The topics they get, as `[[topics]]` keys: `releases,community`
        /// (default: every topic, those added later too). An address
        /// already there keeps its own.
        #[arg(long, value_name = "KEYS")]
        topics: Option<String>,
    },
    /// Show which topics an address gets; `--set` changes them.
    Topics {
        email: String,
        /// Their topics from now on, as `[[topics]]` keys:
        /// `releases,community`, or `all` for every topic, those added
        /// later too.
        #[arg(long, value_name = "KEYS")]
        set: Option<String>,
    },
    /// Unsubscribe an address; it is kept so it is never mailed again.
    Remove {
        email: String,
        /// Erase the address instead (GDPR): its row and delivery records
        /// are deleted; only a salted hash stays, so no import adds it again.
        #[arg(long)]
        forget: bool,
    },
    /// Make an address active again: one that bounced, complained or left,
    /// and that you know wants the mail now (the one way back besides their
    /// own new, confirmed sign-up).
    Reactivate { email: String },
    /// List subscribers: email, name, status, since (tab-separated).
    List {
        /// Only this status: active, pending, unsubscribed, bounced or complained.
        #[arg(long, value_parser = parse_status)]
        status: Option<Status>,
    },
    /// Import a CSV file: an export of this tool (email, name, status,
    /// created_at, key, topics; only email is required), or Mailchimp's or
    /// Substack's.
    Import { file: PathBuf },
    /// Write every subscriber as CSV to standard output.
    Export,
}

fn parse_status(text: &str) -> Result<Status, String> {
    Status::parse(text).ok_or_else(|| {
        format!("unknown status {text:?}; use active, pending, unsubscribed, bounced or complained")
    })
}

/// The moment that decides what is published (`--now`).
#[derive(Debug, clap::Args)]
pub struct NowArg {
    /// Treat this RFC 3339 time as now (scheduled posts up to it are published).
    #[arg(long, env = "NEWSLETTER_NOW", value_name = "TIMESTAMP", value_parser = parse_now)]
    pub now: Option<DateTime<Utc>>,
}

impl NowArg {
    /// The given time, else the real clock: the one place that reads it.
    pub fn now(&self) -> DateTime<Utc> {
        self.now.unwrap_or_else(Utc::now)
    }
}

fn parse_now(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{e}; write it like 2026-11-25T09:00:00Z"))
}

fn print_send_report(report: &SendReport) -> Exit {
    match report {
        SendReport::NothingToSend => {
            println!("nothing to send: every published post was in a digest already");
            Exit::Ok
        }
        SendReport::NoSubscribers => {
            println!(
                "nothing to send: there are no active subscribers (add one with `newsletter subscribers add EMAIL`)"
            );
            Exit::Ok
        }
        SendReport::DryRun {
            subject,
            posts,
            recipients,
        } => {
            for (email, subject) in recipients {
                println!("{email}\t{subject}");
            }
            println!(
                "dry run: {subject:?} ({}) would go to {}; nothing was sent or recorded",
                crate::text::count(*posts, "new post"),
                crate::text::count(recipients.len(), "subscriber")
            );
            Exit::Ok
        }
        SendReport::Test {
            to,
            reply,
            again,
            letter,
        } => {
            if *again {
                println!(
                    "no post is new: this is the latest digest again, rendered with the templates as they are now"
                );
            }
            let which = match (letter, again) {
                (true, _) => "letter",
                (false, true) => "latest digest",
                (false, false) => "next digest",
            };
            println!("sent a test of the {which} to {to} ({reply}); nothing was recorded");
            Exit::Ok
        }
        SendReport::OutboxTrial {
            subject,
            written,
            outbox,
            unfinished,
        } => {
            let which = if *unfinished {
                "the unfinished digest"
            } else {
                "the next digest"
            };
            println!(
                "trial: there is no [smtp] section, so {which} {subject:?} was written to {} as {written} .eml file{} (one per subscriber) and nothing was recorded: the digest is still due, and goes out for real at the first `send` after you add [smtp] (README.md, \"Start your own site\")",
                outbox.display(),
                if *written == 1 { "" } else { "s" }
            );
            Exit::Ok
        }
        SendReport::Delivered(mailings) => {
            for m in mailings {
                let skipped = match m.counts.skipped {
                    0 => String::new(),
                    n => format!(", {n} skipped (nothing new in their topics)"),
                };
                println!(
                    "{} {} {:?}: {} sent, {} failed, {} pending, {} cancelled{skipped} in {:.1} s",
                    m.kind.as_str(),
                    m.digest_id,
                    m.subject,
                    m.counts.sent,
                    m.counts.failed,
                    m.counts.pending,
                    m.counts.cancelled,
                    m.elapsed.as_secs_f64()
                );
            }
            let pending = report.pending();
            if pending > 0 {
                let are = if pending == 1 { "is" } else { "are" };
                eprintln!(
                    "{} {are} still pending: run `newsletter send` again to retry them",
                    crate::text::count(pending, "delivery")
                );
            }
            if pending > 0 || mailings.iter().any(|m| m.counts.failed > 0) {
                Exit::Problems
            } else {
                Exit::Ok
            }
        }
    }
}

fn print_scheduled(scheduled: &Scheduled) -> Exit {
    match scheduled {
        Scheduled::NoSchedule => {
            println!("no digest: [schedule] digest is not set (use --send to send one now)");
            Exit::Ok
        }
        Scheduled::NotDue { next } => {
            match next {
                Some(next) => println!("no digest due; the next slot is {}", next.to_rfc3339()),
                None => println!("no digest due; the schedule has no further slot"),
            }
            Exit::Ok
        }
        Scheduled::Busy => {
            println!("another `newsletter send` is delivering right now; this run sent nothing");
            Exit::Ok
        }
        Scheduled::Skipped { slot } => {
            println!(
                "skipped the digest slot of {}: missed by more than schedule.catch_up",
                slot.to_rfc3339()
            );
            Exit::Ok
        }
        Scheduled::Ran { slot, report } => {
            if let Some(slot) = slot {
                println!("digest slot {}", slot.to_rfc3339());
            }
            print_send_report(report)
        }
    }
}

/// A progress bar on a terminal; a log line every few seconds otherwise.
struct ProgressOutput {
    bar: Option<indicatif::ProgressBar>,
    done: std::sync::atomic::AtomicUsize,
    total: std::sync::atomic::AtomicUsize,
    last_line: std::sync::Mutex<std::time::Instant>,
}

impl ProgressOutput {
    fn new() -> ProgressOutput {
        use std::io::IsTerminal;
        ProgressOutput {
            bar: std::io::stderr()
                .is_terminal()
                .then(indicatif::ProgressBar::hidden),
            done: 0.into(),
            total: 0.into(),
            last_line: std::sync::Mutex::new(std::time::Instant::now()),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Progress for ProgressOutput {
    fn start(&self, mailing: &str, total: usize) {
        self.total
            .store(total, std::sync::atomic::Ordering::Relaxed);
        match &self.bar {
            Some(bar) => {
                bar.set_length(total as u64);
                bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                bar.set_message(mailing.to_string());
            }
            None => eprintln!("{mailing}: delivering {total} messages"),
        }
    }

    fn delivered(&self) {
        let done = self.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        match &self.bar {
            Some(bar) => bar.inc(1),
            None => {
                let mut last = self.last_line.lock().expect("not poisoned");
                if last.elapsed() >= std::time::Duration::from_secs(5) {
                    *last = std::time::Instant::now();
                    let total = self.total.load(std::sync::atomic::Ordering::Relaxed);
                    eprintln!("{done}/{total} messages delivered");
                }
            }
        }
    }

    fn warn(&self, message: &str) {
        match &self.bar {
            Some(bar) => bar.println(format!("warning: {message}")),
            None => eprintln!("warning: {message}"),
        }
    }
}

/// Prints a build's line, and the warning of a hub that was not told.
fn print_rebuilt(rebuilt: &Rebuilt) {
    println!("{}", rebuilt.report);
    if let Some(warning) = &rebuilt.report.archive_warning {
        eprintln!("warning: {warning}");
    }
    if let Some(e) = &rebuilt.hub_warning {
        eprintln!("warning: {e:#}");
    }
}

/// What `run` wants `main` to do on success.
pub enum Exit {
    Ok,
    /// Problems were reported; exit with failure.
    Problems,
}

/// Runs one command; errors come back to `main`, which prints them.
pub fn run(cli: Cli) -> Result<Exit> {
    match cli.command {
        // The one command that makes a config rather than reading one.
        Command::Init {
            dir,
            templates,
            clock,
        } => run_init(&dir, templates, clock.now()),
        command => run_with_config(command, Config::load(&cli.config)?),
    }
}

/// `newsletter init`: the files written, and the next step as a line a
/// shell runs as it is.
fn run_init(dir: &std::path::Path, templates: bool, now: DateTime<Utc>) -> Result<Exit> {
    // A site that has its config: only the templates, into the folder it
    // reads them from.
    let existing = dir.join("config.toml");
    if templates && existing.is_file() {
        let config = Config::load(&existing)?;
        for file in crate::init::copy_templates(&config.digest.templates)? {
            println!("wrote {}", file.display());
        }
        println!(
            "next: edit the templates you want and delete the others (those come from the binary); `newsletter check` renders them all"
        );
        return Ok(Exit::Ok);
    }
    let made = crate::init::init(dir, templates, now)?;
    for file in &made.files {
        println!("wrote {}", made.dir.join(file).display());
    }
    if made.kept_content {
        println!(
            "{} holds posts already: no example post was added to them",
            made.dir.join("content").display()
        );
    }
    let config = made.dir.join("config.toml");
    // A path that starts with `-` would read as an option.
    let config = match config.to_string_lossy() {
        path if path.starts_with('-') => format!("./{path}"),
        path => path.into_owned(),
    };
    let quoted = shlex::try_quote(&config).unwrap_or(std::borrow::Cow::Borrowed(config.as_str()));
    println!(
        "next: set site.base_url in {config}, then run `newsletter --config {quoted} build` (the feeds) and `preview` (the next digest); README.md, \"Start your own site\", goes on from there"
    );
    Ok(Exit::Ok)
}

/// Every command but `init`, with the config it reads.
fn run_with_config(command: Command, config: Config) -> Result<Exit> {
    match command {
        Command::Init { .. } => unreachable!("run() handles init"),
        Command::Build { output, clock } => {
            if let Some(dir) = &output {
                crate::config::layout::check_output_dir(&config, dir, "--output")?;
            }
            let output_dir = output.unwrap_or_else(|| config.feeds.output_dir.clone());
            let rebuilt = publish::rebuild(&config, &output_dir, clock.now())
                .context("the build stopped; feeds already written are intact")?;
            print_rebuilt(&rebuilt);
            Ok(Exit::Ok)
        }
        Command::Send {
            dry_run,
            to,
            letter,
            clock,
        } => {
            let options = SendOptions {
                dry_run,
                to,
                letter,
                cancel: None,
            };
            for warning in crate::links::link_warnings(&config) {
                eprintln!("warning: {warning}");
            }
            let progress = ProgressOutput::new();
            let now = clock.now();
            // A trial (`--dry-run`, `--to`) sends no welcome either.
            let welcomed =
                options.dry_run || options.to.is_some() || welcome_new_subscribers(&config, now);
            let report = send::send(&config, &options, now, &progress)?;
            progress.finish();
            let exit = match print_send_report(&report) {
                _ if !welcomed => Exit::Problems,
                exit => exit,
            };
            // After a real send only: a trial opens no store.
            let real = !options.dry_run && options.to.is_none() && config.delivers_mail();
            if real && let Some(store) = Store::open_existing(&config.store.path)? {
                for alert in crate::bounces::report::alerts(&store, &config, now)? {
                    eprintln!("warning: {alert}");
                }
            }
            Ok(exit)
        }
        Command::Publish { send, clock } => {
            if send {
                config.require_delivery("`publish --send`")?;
            } else if config.schedule.digest.is_some() {
                config.require_delivery("`publish` with `schedule.digest` set")?;
            }
            let now = clock.now();
            let rebuilt = publish::rebuild(&config, &config.feeds.output_dir, now)
                .context("nothing was published or sent; feeds already written are intact")?;
            print_rebuilt(&rebuilt);
            // Bounces first, so a digest about to go out skips addresses
            // that bounced since the last run. A mailbox that cannot be
            // read is a warning: the feeds and the digest still go out.
            if config.bounces.imap.is_some() {
                match read_bounce_mailbox(&config, now) {
                    Ok(summary) => println!("{summary}"),
                    Err(e) => eprintln!("warning: the bounce mailbox was not read: {e:#}"),
                }
            }
            let welcomed = welcome_new_subscribers(&config, now);
            let options = SendOptions {
                ..SendOptions::default()
            };
            let progress = ProgressOutput::new();
            let scheduled = publish::send_if_due(&config, &options, now, send, &progress)?;
            progress.finish();
            Ok(match print_scheduled(&scheduled) {
                _ if !welcomed => Exit::Problems,
                exit => exit,
            })
        }
        Command::Serve {
            listen,
            log_json,
            now,
        } => {
            if config.schedule.digest.is_some() {
                config.require_delivery("`serve` with `schedule.digest` set")?;
            }
            crate::serve::serve(
                config.clone(),
                crate::serve::ServeOptions {
                    listen: listen.unwrap_or(config.server.listen),
                    listen_given: listen.is_some(),
                    start: now,
                    json_logs: log_json,
                },
            )?;
            Ok(Exit::Ok)
        }
        Command::Preview {
            output,
            letter,
            clock,
        } => {
            match crate::email::preview::preview(&config, &output, letter.as_deref(), clock.now())?
            {
                Some(previewed) => {
                    if previewed.trial == crate::email::digest::Trial::Latest {
                        println!(
                            "no post is new: previewing digest {} again, rendered with the templates as they are now",
                            previewed.digest_id
                        );
                    }
                    for file in previewed.files {
                        println!("wrote {}", file.display());
                    }
                }
                None => println!(
                    "nothing to preview: no post is published yet (see `newsletter build` for drafts and scheduled posts)"
                ),
            }
            Ok(Exit::Ok)
        }
        Command::Bounces(BouncesCommand::Read { mut paths, imap }) => {
            let mut store = Store::open(&config.store.path)?;
            let mut unreadable = false;
            if imap {
                let pass =
                    crate::bounces::imap::read_mailbox_once(&mut store, &config, Utc::now())?;
                for place in &pass.tally.not_understood {
                    eprintln!(
                        "not a bounce, complaint or unsubscribe request (flagged, left as it is): {place}"
                    );
                }
                println!("{}", pass.summary(&config));
            } else if paths.is_empty() {
                paths.push(PathBuf::from("-"));
            }
            if !paths.is_empty() {
                let tally =
                    crate::bounces::intake::read_paths(&mut store, &config, &paths, Utc::now())?;
                for place in &tally.not_understood {
                    eprintln!(
                        "not a bounce, complaint or unsubscribe request (left as it is): {place}"
                    );
                }
                for file in &tally.unreadable {
                    eprintln!("error: {file} (skipped; the rest were read)");
                }
                if tally.moved > 0 {
                    eprintln!(
                        "note: {} messages were moved or deleted while being read (a mail client marking them seen?); run again to read them",
                        tally.moved
                    );
                }
                println!("{}", tally.summary());
                unreadable = !tally.unreadable.is_empty();
            }
            for alert in crate::bounces::report::alerts(&store, &config, Utc::now())? {
                eprintln!("warning: {alert}");
            }
            Ok(if unreadable { Exit::Problems } else { Exit::Ok })
        }
        Command::Digests { show } => {
            let store = match Store::open_existing(&config.store.path)? {
                Some(store) => store,
                None => Store::empty_in_memory(&config.store.path)?,
            };
            match show {
                None => print!(
                    "{}",
                    crate::bounces::report::table(&store.digest_reports()?)
                ),
                Some(DigestsCommand::Show { id }) => {
                    let Some(outcomes) = store.digest_outcomes(id)? else {
                        anyhow::bail!("there is no digest {id} (see `newsletter digests`)");
                    };
                    for (address, outcome, detail) in outcomes.rows {
                        // Old rows may hold a remote server's control characters.
                        let detail = crate::text::one_line(&detail);
                        println!("{outcome}\t{address}\t{detail}");
                    }
                }
            }
            Ok(Exit::Ok)
        }
        Command::Subscribers(command) => {
            let now = Utc::now();
            // Looking (list, export, topics), removing or reactivating
            // creates no store: there is no one to change in a store not made.
            let looking = matches!(
                command,
                SubscribersCommand::List { .. }
                    | SubscribersCommand::Export
                    | SubscribersCommand::Remove { .. }
                    | SubscribersCommand::Reactivate { .. }
                    | SubscribersCommand::Topics { .. }
            );
            let mut store = match Store::open_existing(&config.store.path)? {
                Some(store) => store,
                None if looking => Store::empty_in_memory(&config.store.path)?,
                None => Store::open(&config.store.path)?,
            };
            match command {
                SubscribersCommand::Add {
                    email,
                    name,
                    welcome,
                    topics,
                } => {
                    let new = subscribers::NewSubscriber {
                        email: &email,
                        name: &name,
                        topics: topics.as_deref(),
                        welcome,
                    };
                    println!("{}", subscribers::add(&mut store, &config, &new, now)?)
                }
                SubscribersCommand::Topics { email, set } => {
                    let shown = subscribers::show_topics(&store, &config, &email, set.as_deref())?;
                    print!("{shown}")
                }
                SubscribersCommand::Remove { email, forget } => {
                    println!("{}", subscribers::remove(&mut store, &email, forget, now)?)
                }
                SubscribersCommand::Reactivate { email } => {
                    println!("{}", subscribers::reactivate(&store, &email, now)?)
                }
                SubscribersCommand::List { status } => {
                    subscribers::list(&store, status, &mut std::io::stdout().lock())?;
                }
                SubscribersCommand::Export => {
                    subscribers::export(&store, &mut std::io::stdout().lock())?
                }
                SubscribersCommand::Import { file } => {
                    let report = subscribers::import(&mut store, &config, &file, now)?;
                    for problem in &report.problems {
                        eprintln!("{problem}");
                    }
                    for warning in &report.warnings {
                        eprintln!("warning: {warning}");
                    }
                    println!("read {} as {}", file.display(), report.format);
                    println!(
                        "imported {} new, {} already there, {} now unsubscribed or bounced as the file says, {} erased earlier (not imported), {} rows skipped",
                        report.added,
                        report.existing,
                        report.suppressed,
                        report.forgotten,
                        report.problems.len()
                    );
                    if !report.problems.is_empty() {
                        return Ok(Exit::Problems);
                    }
                }
            }
            Ok(Exit::Ok)
        }
        Command::Check => {
            for warning in crate::links::link_warnings(&config) {
                eprintln!("warning: {warning}");
            }
            let corpus = content::read_posts(&config);
            for problem in &corpus.problems {
                println!("{problem}");
            }
            // Every template renders with sample data, or the check fails.
            let folder = &config.digest.templates;
            if !folder.is_dir() {
                println!(
                    "no templates folder at {} (digest.templates): every template is built in",
                    folder.display()
                );
            }
            crate::email::digest::check_templates(&config)?;
            crate::email::welcome::check_templates(&config)?;
            crate::serve::check_templates(&config)?;
            crate::email::dkim::Signer::load(&config)?;
            for warning in store_warnings(&config) {
                eprintln!("warning: {warning}");
            }
            if corpus.problems.is_empty() {
                println!(
                    "checked {} and the templates: no problems",
                    crate::text::count(corpus.posts.len(), "post")
                );
                Ok(Exit::Ok)
            } else {
                eprintln!(
                    "{} in {} read",
                    crate::text::count(corpus.problems.len(), "problem"),
                    crate::text::count(corpus.files, "post file")
                );
                Ok(Exit::Problems)
            }
        }
    }
}

/// `send` and `publish`: the welcome mails still pending go first, under
/// their own lock (a digest in progress elsewhere holds them back not at
/// all). One line says what was done; a failure is a warning, so the
/// digest still goes out. False when they could not be sent.
fn welcome_new_subscribers(config: &Config, now: DateTime<Utc>) -> bool {
    match crate::email::welcome::deliver_pending(config, now, None) {
        Ok(welcomed) => {
            if welcomed.worth_saying() {
                println!("{welcomed}");
            }
            true
        }
        Err(e) => {
            eprintln!("warning: welcome mails were not sent: {e:#}");
            false
        }
    }
}

/// `check`'s warnings from the store: topics subscribers chose that the
/// config no longer has. The store is read as it is, never created or
/// migrated; one that cannot be read is a warning too.
fn store_warnings(config: &Config) -> Vec<String> {
    let store = match Store::open_read_only(&config.store.path) {
        Ok(Some(store)) => store,
        Ok(None) => return Vec::new(),
        Err(e) => {
            return vec![format!(
                "the topics subscribers chose were not checked: {e}"
            )];
        }
    };
    subscribers::vanished_topics(&store, config).unwrap_or_else(|e| {
        vec![format!(
            "the topics subscribers chose were not checked: {e:#}"
        )]
    })
}

/// One pass over `bounces.imap`, for `publish`.
fn read_bounce_mailbox(config: &Config, now: DateTime<Utc>) -> Result<String> {
    let mut store = Store::open(&config.store.path)?;
    let pass = crate::bounces::imap::read_mailbox_once(&mut store, config, now)?;
    Ok(pass.summary(config))
}
