//! Command-line interface: clap types and dispatch only.

use std::path::PathBuf;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};

use crate::build::{self, BuildError};
use crate::config::Config;
use crate::content;
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
    /// Write the Atom, RSS and JSON feeds of the posts published by now.
    Build {
        /// Write the feeds here instead of feeds.output_dir.
        #[arg(long, value_name = "DIR")]
        output: Option<PathBuf>,
        #[command(flatten)]
        clock: Clock,
    },
    /// Read every post and report every problem as path:line: message.
    Check,
    /// Manage the subscribers in the store.
    #[command(subcommand)]
    Subscribers(SubscribersCommand),
}

#[derive(Debug, Subcommand)]
pub enum SubscribersCommand {
    /// Add an address (active at once).
    Add {
        email: String,
        #[arg(long, default_value = "")]
        name: String,
    },
    /// Unsubscribe an address; it is kept so it is never mailed again.
    Remove { email: String },
    /// List subscribers: email, name, status, since (tab-separated).
    List {
        /// Only this status: active, pending, unsubscribed or bounced.
        #[arg(long, value_parser = parse_status)]
        status: Option<Status>,
    },
    /// Import a CSV file with an `email` column (and optionally `name`).
    Import { file: PathBuf },
    /// Write every subscriber as CSV to standard output.
    Export,
}

fn parse_status(text: &str) -> Result<Status, String> {
    Status::parse(text).ok_or_else(|| {
        format!("unknown status {text:?}; use active, pending, unsubscribed or bounced")
    })
}

/// The moment that decides what is published.
#[derive(Debug, clap::Args)]
pub struct Clock {
    /// Treat this RFC 3339 time as now (scheduled posts up to it are published).
    #[arg(long, env = "NEWSLETTER_NOW", value_name = "TIMESTAMP", value_parser = parse_now)]
    pub now: Option<DateTime<Utc>>,
}

impl Clock {
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

/// What `run` wants `main` to do on success.
pub enum Outcome {
    Ok,
    /// Problems were reported; exit with failure.
    Problems,
}

/// Runs one command; errors come back to `main`, which prints them.
pub fn run(cli: Cli) -> Result<Outcome> {
    let config = Config::load(&cli.config)?;
    match cli.command {
        Command::Build { output, clock } => {
            let output_dir = output.unwrap_or_else(|| config.feeds.output_dir.clone());
            match build::build(&config, &output_dir, clock.now()) {
                Ok(report) => {
                    println!("{report}");
                    Ok(Outcome::Ok)
                }
                Err(BuildError::Content(problems)) => {
                    for problem in &problems {
                        eprintln!("{problem}");
                    }
                    Err(BuildError::Content(problems).into())
                }
                Err(e) => Err(e).context("the build stopped; feeds already written are intact"),
            }
        }
        Command::Subscribers(command) => {
            let mut store = Store::open(&config.store.path)?;
            let now = Utc::now();
            match command {
                SubscribersCommand::Add { email, name } => {
                    println!("{}", subscribers::add(&store, &email, &name, now)?)
                }
                SubscribersCommand::Remove { email } => {
                    println!("{}", subscribers::remove(&store, &email, now)?)
                }
                SubscribersCommand::List { status } => {
                    subscribers::list(&store, status, &mut std::io::stdout().lock())?;
                }
                SubscribersCommand::Export => {
                    subscribers::export(&store, &mut std::io::stdout().lock())?
                }
                SubscribersCommand::Import { file } => {
                    let report = subscribers::import(&mut store, &file, now)?;
                    for problem in &report.problems {
                        eprintln!("{problem}");
                    }
                    println!(
                        "imported {} new, {} already subscribed, {} rows skipped",
                        report.added,
                        report.existing,
                        report.problems.len()
                    );
                    if !report.problems.is_empty() {
                        return Ok(Outcome::Problems);
                    }
                }
            }
            Ok(Outcome::Ok)
        }
        Command::Check => {
            let corpus = content::read_posts(&config);
            for problem in &corpus.problems {
                println!("{problem}");
            }
            if corpus.problems.is_empty() {
                println!("checked {} posts: no problems", corpus.posts.len());
                Ok(Outcome::Ok)
            } else {
                eprintln!(
                    "{} problem(s) in {} post file(s) read",
                    corpus.problems.len(),
                    corpus.files
                );
                Ok(Outcome::Problems)
            }
        }
    }
}
