//! Where messages go: the SMTP server ([`smtp`]) or the outbox folder
//! ([`Outbox`]).
//!
//! The seam is two small traits of our own, [`Transport`] (hands each
//! worker a [`Session`]) and [`Session`] (one try at one message, answered
//! as an [`Attempt`]). lettre's `Transport` trait does not fit here: the
//! delivery loop needs each worker's own connection (with TCP_NODELAY, see
//! [`smtp`]) and must tell a refused login, a refused recipient, a dropped
//! connection and a full disk apart, which lettre's trait (one error type,
//! and its `StubTransport` that answers only "ok" or one fixed error) cannot
//! say. The outbox writes its files itself (see [`Outbox`]); tests script
//! a stub of their own (`stub`).

pub mod smtp;
#[cfg(test)]
pub mod stub;

use std::path::PathBuf;

use crate::email::compose::Outgoing;
use anyhow::{Context, Result};

use crate::config::Config;

/// One try at sending a message.
#[derive(Debug)]
pub enum Attempt {
    /// Accepted; the server's reply.
    Sent(String),
    /// Refused for good (5xx): recorded as failed.
    Permanent(String),
    /// Worth trying again (4xx); `connection` when there was no SMTP reply
    /// at all (a dropped connection, a timeout, a reply that is not SMTP);
    /// `reached` when the server took part in this message's transaction
    /// (a 4xx to it, a connection lost while sending it), not when the
    /// connection, TLS or login failed before it: only those count against
    /// the recipient's attempts.
    Transient {
        reason: String,
        connection: bool,
        reached: bool,
    },
    /// Nothing will work until the setup is fixed (TLS, a full outbox disk).
    Fatal(anyhow::Error),
}

/// Where messages go. Shared by the workers of a delivery run.
pub trait Transport: Send + Sync {
    /// A worker's own channel: for SMTP, one connection, opened on first
    /// use and again after a failure.
    fn session(&self) -> Box<dyn Session + '_>;
}

/// One worker's sending end.
pub trait Session {
    /// Tries to send `message` once.
    fn send(&mut self, message: &Outgoing) -> Attempt;
}

/// One way out for a delivery run: a relay of `[[smtp]]`, or the outbox,
/// with the workers and pace it gets.
pub struct Relay {
    /// `host:port`, or the outbox's folder: for messages.
    pub name: String,
    pub transport: Box<dyn Transport>,
    /// Workers, each with a connection of its own: messages in flight at most.
    pub connections: usize,
    /// Messages per second over all its connections; 0 = unlimited.
    pub rate: f64,
    /// Its share of the messages, against the other relays'.
    pub weight: u32,
}

/// The relays `config` asks for: each `[smtp]` server, else the outbox
/// folder (`email.outbox`, created if missing). Reads the TLS files and
/// checks the passwords (each relay's `password_env`, read with the
/// config) here, before any digest is made.
pub fn open(config: &Config) -> Result<Vec<Relay>> {
    if config.smtp.is_empty() {
        let dir = config.email.outbox.clone();
        return Ok(vec![Relay {
            name: dir.display().to_string(),
            transport: Box::new(Outbox::create(dir, false)?),
            connections: 1,
            rate: 0.0,
            weight: 1,
        }]);
    }
    config
        .smtp
        .iter()
        .map(|settings| {
            let password = config.secrets.smtp_password(&settings.password_env);
            let client = smtp::Client::new(settings, password)
                .with_context(|| format!("SMTP relay {}", settings.name()))?;
            Ok(Relay {
                name: settings.name(),
                transport: Box::new(client),
                connections: settings.connections,
                rate: settings.rate,
                weight: settings.weight,
            })
        })
        .collect()
}

/// A message outside any digest (a confirmation request, `send --to`):
/// sent at once, over a connection of its own, and not recorded in the
/// ledger. With several relays, the next is tried when one cannot be
/// reached or cannot be used.
pub struct OneOff {
    relays: Vec<Relay>,
}

impl OneOff {
    pub fn new(config: &Config) -> Result<OneOff> {
        Ok(OneOff {
            relays: open(config)?,
        })
    }

    /// The server's reply; on failure, whether trying again later may work.
    /// Every relay is tried, a refusal too: one relay may refuse the
    /// sender (a policy, a quota) where another takes the message. The
    /// error is the first relay's.
    pub fn send(&self, message: &Outgoing) -> Result<String, (bool, anyhow::Error)> {
        let several = self.relays.len() > 1;
        let mut first = None;
        for relay in &self.relays {
            let failed = match relay.transport.session().send(message) {
                Attempt::Sent(reply) => return Ok(reply),
                Attempt::Permanent(reason) => (false, anyhow::anyhow!(reason)),
                Attempt::Transient { reason, .. } => (true, anyhow::anyhow!(reason)),
                Attempt::Fatal(e) => (false, e),
            };
            let failed = match several {
                true => (
                    failed.0,
                    failed.1.context(format!("SMTP relay {}", relay.name)),
                ),
                false => failed,
            };
            first.get_or_insert(failed);
        }
        Err(first.expect("there is always a relay or the outbox"))
    }
}

/// The outbox: each message as an `.eml` file in a folder, for a site with
/// no SMTP server configured. The messages carry working unsubscribe links,
/// so the folder is made 0700 and each file 0600, whatever the umask. With
/// `email.outbox_mode = "deliver"` the folder is a pickup folder another
/// program sends from, so a file appears whole or not at all: it is written
/// under a hidden name, flushed to disk and renamed (lettre's
/// `FileTransport` writes in place, where a reader may find it half done).
pub struct Outbox {
    dir: PathBuf,
    /// Names files `trial-….eml`: a trial's, which a pickup folder must
    /// never hold (see [`Outbox::trials_left`]).
    trial: bool,
}

impl Outbox {
    /// The outbox in `dir`, created if missing; `trial` for `send` without
    /// a way to deliver.
    pub fn create(dir: PathBuf, trial: bool) -> Result<Outbox> {
        crate::atomic::create_private_dir(&dir)
            .with_context(|| format!("cannot create the outbox {}", dir.display()))?;
        Ok(Outbox { dir, trial })
    }

    /// The trials' files in `dir`, which must go before it is used as a
    /// pickup folder: another program would send them.
    pub fn trials_left(dir: &std::path::Path) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut found: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("trial-") && n.ends_with(".eml"))
            })
            .collect();
        found.sort();
        found
    }

    fn write(&self, message: &Outgoing) -> std::io::Result<PathBuf> {
        use std::io::Write;
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).expect("the OS has a random source");
        let prefix = if self.trial { "trial-" } else { "" };
        let name = format!("{prefix}{}.eml", hex::encode(id));
        let staging = self.dir.join(format!(".{name}.tmp"));
        let file = self.dir.join(&name);
        let written = (|| {
            let mut out = crate::atomic::private_options()
                .truncate(true)
                .open(&staging)?;
            out.write_all(message.formatted())?;
            out.sync_all()?;
            std::fs::rename(&staging, &file)?;
            // The rename itself on disk too, before the ledger says sent.
            std::fs::File::open(&self.dir)?.sync_all()
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&staging);
        }
        written.map(|()| file)
    }
}

impl Transport for Outbox {
    fn session(&self) -> Box<dyn Session + '_> {
        Box::new(self)
    }
}

impl Session for &Outbox {
    fn send(&mut self, message: &Outgoing) -> Attempt {
        match self.write(message) {
            Ok(file) => Attempt::Sent(format!("written to {}", file.display())),
            Err(e) => Attempt::Fatal(
                anyhow::Error::new(e)
                    .context(format!("cannot write to the outbox {}", self.dir.display())),
            ),
        }
    }
}
