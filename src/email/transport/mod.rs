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
//! say. The outbox itself is lettre's `FileTransport`, used through
//! lettre's trait; tests script a stub of their own (`stub`).

pub mod smtp;
#[cfg(test)]
pub mod stub;

use std::path::PathBuf;

use anyhow::{Context, Result};
use lettre::{FileTransport, Message};

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
    fn send(&mut self, message: &Message) -> Attempt;
}

/// The transport `config` asks for: its `[smtp]` server, else the outbox
/// folder (`email.outbox`, created if missing). Reads the TLS files and
/// checks the password (`NEWSLETTER_SMTP_PASSWORD`, read with the config)
/// here, before any digest is made.
pub fn open(config: &Config) -> Result<Box<dyn Transport>> {
    let password = config.secrets.smtp_password.as_deref();
    match &config.smtp {
        Some(settings) => Ok(Box::new(smtp::Client::new(settings, password)?)),
        None => Ok(Box::new(Outbox::create(config.email.outbox.clone())?)),
    }
}

/// A message outside any digest (a confirmation request): sent at once,
/// over a connection of its own, and not recorded in the ledger.
pub struct OneOff {
    transport: Box<dyn Transport>,
}

impl OneOff {
    pub fn new(config: &Config) -> Result<OneOff> {
        Ok(OneOff {
            transport: open(config)?,
        })
    }

    /// The server's reply; on failure, whether trying again later may work.
    pub fn send(&self, message: &Message) -> Result<String, (bool, anyhow::Error)> {
        match self.transport.session().send(message) {
            Attempt::Sent(reply) => Ok(reply),
            Attempt::Permanent(reason) => Err((false, anyhow::anyhow!(reason))),
            Attempt::Transient { reason, .. } => Err((true, anyhow::anyhow!(reason))),
            Attempt::Fatal(e) => Err((false, e)),
        }
    }
}

/// The outbox: each message as an `.eml` file in a folder, for a site with
/// no SMTP server configured. The messages carry working unsubscribe links,
/// so the folder is made 0700 and each file 0600, whatever the umask.
pub struct Outbox {
    transport: FileTransport,
    dir: PathBuf,
}

impl Outbox {
    /// The outbox in `dir`, created if missing.
    pub fn create(dir: PathBuf) -> Result<Outbox> {
        crate::atomic::create_private_dir(&dir)
            .with_context(|| format!("cannot create the outbox {}", dir.display()))?;
        Ok(Outbox {
            transport: FileTransport::new(&dir),
            dir,
        })
    }
}

impl Transport for Outbox {
    fn session(&self) -> Box<dyn Session + '_> {
        Box::new(self)
    }
}

impl Session for &Outbox {
    fn send(&mut self, message: &Message) -> Attempt {
        match lettre::Transport::send(&self.transport, message) {
            Ok(id) => {
                let file = self.dir.join(format!("{id}.eml"));
                if let Err(e) = crate::atomic::make_private(&file) {
                    return Attempt::Fatal(
                        anyhow::Error::new(e)
                            .context(format!("cannot make {} private", file.display())),
                    );
                }
                Attempt::Sent(format!("written to {}", file.display()))
            }
            Err(e) => Attempt::Fatal(
                anyhow::Error::new(e)
                    .context(format!("cannot write to the outbox {}", self.dir.display())),
            ),
        }
    }
}
