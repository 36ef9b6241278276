//! The SMTP transport: lettre's SMTP client, one
//! connection per worker, kept open between messages and made anew after an
//! error.
//!
//! lettre 0.11.23 writes a message's body and its closing `.` in two writes
//! and never sets TCP_NODELAY, so on every message Nagle's algorithm holds
//! the closing `.` until the server's delayed ACK, 40 ms later: a connection
//! then carries about 22 messages a second (lettre pull request #1159, merged
//! upstream, not yet released). Each new connection here gets TCP_NODELAY
//! set on its socket; drop this once a lettre release sets it itself.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use crate::email::compose::Outgoing;
use anyhow::{Context, Result, bail};
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{Certificate, SmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::Response;

use super::{Attempt, Session, Transport};
use crate::config::{Security, Smtp};

/// How to reach the SMTP server; makes connections.
pub struct Client {
    host: String,
    port: u16,
    security: Security,
    timeout: Duration,
    tls: Option<TlsParameters>,
    credentials: Option<Credentials>,
    hello: ClientId,
}

impl Client {
    /// Reads the TLS settings (`smtp.tls_ca_file`) and the password.
    pub fn new(smtp: &Smtp, password: Option<&str>) -> Result<Client> {
        let tls = match smtp.security {
            Security::None => None,
            Security::Starttls | Security::Tls => {
                let mut builder = TlsParameters::builder(smtp.host.clone());
                if let Some(file) = &smtp.tls_ca_file {
                    let pem = std::fs::read(file).with_context(|| {
                        format!("cannot read smtp.tls_ca_file {}", file.display())
                    })?;
                    let certificate = Certificate::from_pem(&pem).with_context(|| {
                        format!(
                            "smtp.tls_ca_file {} is not a PEM certificate",
                            file.display()
                        )
                    })?;
                    builder = builder.add_root_certificate(certificate);
                }
                Some(
                    builder
                        .build()
                        .context("cannot set up TLS for the SMTP connection")?,
                )
            }
        };
        let credentials = match (&smtp.username, password) {
            (None, _) => None,
            (Some(user), Some(password)) => {
                Some(Credentials::new(user.clone(), password.to_string()))
            }
            (Some(_), None) => bail!(
                "smtp.username is set but {} is not: export the password in that variable",
                smtp.password_env
            ),
        };
        Ok(Client {
            host: smtp.host.clone(),
            port: smtp.port,
            security: smtp.security,
            timeout: Duration::from_secs(smtp.timeout),
            tls,
            credentials,
            hello: ClientId::default(),
        })
    }

    /// A new connection: greeted, encrypted and logged in as configured.
    pub fn connect(&self) -> Result<SmtpConnection, SmtpError> {
        let server = (self.host.as_str(), self.port);
        let wrapper = match self.security {
            Security::Tls => self.tls.as_ref(),
            _ => None,
        };
        let mut connection =
            SmtpConnection::connect(server, Some(self.timeout), &self.hello, wrapper, None)?;
        set_nodelay_to(server);
        if self.security == Security::Starttls {
            let tls = self.tls.as_ref().expect("starttls has TLS parameters");
            connection.starttls(tls, &self.hello)?;
        }
        if let Some(credentials) = &self.credentials {
            connection.auth(DEFAULT_MECHANISMS, credentials)?;
        }
        Ok(connection)
    }
}

/// Why a message was not sent.
#[derive(Debug)]
pub enum Failure {
    /// Making the connection failed (greeting, TLS, login).
    Connect(SmtpError),
    /// The server refused or lost this message.
    Message(SmtpError),
}

/// One worker's connection, opened on first use and after a failure.
pub struct SmtpSession<'a> {
    client: &'a Client,
    /// Boxed: a connection with its TLS state is large.
    connection: Option<Box<SmtpConnection>>,
}

impl<'a> SmtpSession<'a> {
    pub fn new(client: &'a Client) -> SmtpSession<'a> {
        SmtpSession {
            client,
            connection: None,
        }
    }

    /// Sends one message; a connection that failed is dropped, so the next
    /// message (or the retry) goes over a fresh one. Errors say whether they
    /// came while connecting (they concern every message) or while sending
    /// this one.
    pub fn try_send(&mut self, message: &Outgoing) -> Result<Response, Failure> {
        let connection = match &mut self.connection {
            Some(connection) => connection,
            None => {
                let connection = self.client.connect().map_err(Failure::Connect)?;
                self.connection.insert(Box::new(connection))
            }
        };
        let result = connection
            .send(message.envelope(), message.formatted())
            .map_err(Failure::Message);
        if (result.is_err() || connection.has_broken())
            && let Some(mut connection) = self.connection.take()
        {
            connection.abort();
        }
        result
    }
}

impl SmtpSession<'_> {
    /// The error in words. A read or write that ran out of `smtp.timeout`
    /// fails with EAGAIN ("Resource temporarily unavailable"), which
    /// lettre's `is_timeout` does not count as a timeout: say what it was.
    pub fn describe(&self, error: &SmtpError) -> String {
        if error.is_timeout() || is_would_block(error) {
            format!(
                "no answer within smtp.timeout ({} s): {error}",
                self.client.timeout.as_secs()
            )
        } else {
            error.to_string()
        }
    }
}

impl Transport for Client {
    fn session(&self) -> Box<dyn Session + '_> {
        Box::new(SmtpSession::new(self))
    }
}

/// Replies that refuse the login, not the message.
const AUTH_CODES: [&str; 4] = ["530", "534", "535", "538"];

/// A server's words as the ledger keeps them: without control characters,
/// since `digests show` prints them to a terminal (a relay's reply can
/// carry a remote server's words, escape sequences and all).
fn printable(text: String) -> String {
    crate::text::one_line(&text)
}

impl Session for SmtpSession<'_> {
    fn send(&mut self, message: &Outgoing) -> Attempt {
        match self.try_send(message) {
                Ok(response) => Attempt::Sent(printable(format!(
                    "{} {}",
                    response.code(),
                    response.message().collect::<Vec<_>>().join(" ")
                ))),
                // A refused login is the sender's problem, not the recipient's.
                Err(Failure::Connect(e))
                    if e.status().is_some_and(|c| AUTH_CODES.contains(&c.to_string().as_str())) =>
                {
                    Attempt::Fatal(anyhow::Error::new(e).context(
                        "the SMTP server refused the login: check smtp.username and its password (smtp.password_env)",
                    ))
                }
                // TLS, STARTTLS or login mechanisms the server lacks, or a
                // greeting that refuses us: nothing will go through.
                Err(Failure::Connect(e)) if e.is_tls() || e.is_client() || e.is_permanent() => {
                    Attempt::Fatal(anyhow::Error::new(e).context("the SMTP connection cannot be made"))
                }
                // While sending: a 5xx, or a message this server cannot take
                // (an address it cannot route without SMTPUTF8, say), is this
                // recipient's failure.
                Err(Failure::Message(e)) if e.is_permanent() || e.is_client() => {
                    Attempt::Permanent(printable(e.to_string()))
                }
                // A 421 greeting is the server closing for now: a failed
                // connection, as one refused is.
                Err(Failure::Connect(e)) => Attempt::Transient {
                    connection: !e.is_transient() || closes(&e),
                    reason: printable(self.describe(&e)),
                    reached: false,
                },
                // 421 closes the channel for every message (RFC 5321 4.2.3):
                // the server is going away, not refusing this recipient. It
                // counts as a failed connection, so a server answering 421
                // to everything stops the run as one that cannot be reached
                // does, instead of each reader waiting out the retries.
                Err(Failure::Message(e)) => Attempt::Transient {
                    connection: !e.is_transient() || closes(&e),
                    reached: !closes(&e),
                    reason: printable(self.describe(&e)),
                },
        }
    }
}

/// A 421: the server closes the connection, for every message.
fn closes(error: &SmtpError) -> bool {
    error.status().is_some_and(|c| c.to_string() == "421")
}

fn is_would_block(error: &SmtpError) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::WouldBlock;
        }
        source = e.source();
    }
    false
}

impl Drop for SmtpSession<'_> {
    fn drop(&mut self) {
        if let Some(mut connection) = self.connection.take() {
            let _ = connection.quit();
        }
    }
}

/// Sets TCP_NODELAY on every socket of this process connected to `server`
/// (all of them are this module's connections). lettre does not hand out
/// its socket, so the sockets are found by their peer address.
fn set_nodelay_to(server: (&str, u16)) {
    let Ok(peers) = server.to_socket_addrs() else {
        return;
    };
    let peers: Vec<SocketAddr> = peers.collect();
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    for entry in fds.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        // SAFETY: the descriptor is only used for getpeername and
        // setsockopt; if another thread closed it meanwhile, both fail or
        // touch a socket of ours, which is harmless.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let socket = socket2::SockRef::from(&fd);
        let peer = socket.peer_addr().ok().and_then(|a| a.as_socket());
        if peer.is_some_and(|p| peers.contains(&p)) {
            let _ = socket.set_tcp_nodelay(true);
        }
    }
}
