//! `[smtp]`: the server digests are sent through, or `[[smtp]]`: several
//! relays they are spread over.

use std::path::PathBuf;

use serde::Deserialize;

use super::values::{OneOrMany, Section, number_within};
use super::{ConfigError, Source, is_loopback};

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Plain connection upgraded with STARTTLS (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only to a loopback host.
    None,
}

/// `[smtp]`: the server digests are sent through.
#[derive(Debug, Clone)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub username: Option<String>,
    /// Connections in the pool, and messages in flight at most.
    pub connections: usize,
    /// Messages per second; 0 = unlimited.
    pub rate: f64,
    /// Seconds to wait for the server at each step.
    pub timeout: u64,
    /// Extra trusted certificates (PEM); certificates are always verified.
    pub tls_ca_file: Option<PathBuf>,
    /// This relay's share of the messages, against the other relays'.
    pub weight: u32,
    /// The environment variable that holds the password for `username`.
    pub password_env: String,
}

impl Smtp {
    /// The relay in words, for messages: `host:port`.
    pub fn name(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// At most this many `[[smtp]]` relays.
pub const MAX_RELAYS: usize = 16;

/// The variable that holds a relay's password unless `password_env` names another.
pub const PASSWORD_ENV: &str = "NEWSLETTER_SMTP_PASSWORD";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSmtp {
    host: String,
    port: Option<u16>,
    #[serde(default = "default_security")]
    security: Security,
    username: Option<String>,
    #[serde(default = "default_connections")]
    connections: usize,
    #[serde(default)]
    rate: f64,
    #[serde(default = "default_timeout")]
    timeout: u64,
    tls_ca_file: Option<PathBuf>,
    weight: Option<u32>,
    password_env: Option<String>,
}

impl Section for RawSmtp {
    const NAME: &'static str = "smtp";
}

/// `[smtp]` (one relay) or `[[smtp]]` (a relay each).
pub(super) type RawRelays = OneOrMany<RawSmtp>;

fn default_security() -> Security {
    Security::Starttls
}

fn default_connections() -> usize {
    4
}

fn default_timeout() -> u64 {
    30
}

/// Checks `[smtp]` or each `[[smtp]]` relay; the passwords are not here
/// but in `Secrets`.
pub(super) fn check(raw: RawRelays, source: &Source) -> Result<Vec<Smtp>, ConfigError> {
    if raw.0.len() > MAX_RELAYS {
        return Err(source.invalid(
            "smtp",
            format!("has {} [[smtp]] relays; at most {MAX_RELAYS}", raw.0.len()),
        ));
    }
    let several = raw.0.len() > 1;
    let mut relays: Vec<Smtp> = Vec::with_capacity(raw.0.len());
    for (i, relay) in raw.0.into_iter().enumerate() {
        let relay = check_one(relay, source).map_err(|e| match e {
            // Which of the relays: the key alone does not say.
            ConfigError::Invalid { path, key, message } if several => ConfigError::Invalid {
                path,
                key,
                message: format!("{message} (in [[smtp]] relay {} of the file)", i + 1),
            },
            e => e,
        })?;
        if let Some(same) = relays
            .iter()
            .find(|r| r.host == relay.host && r.port == relay.port && r.username == relay.username)
        {
            return Err(source.invalid(
                "smtp.host",
                format!(
                    "= {:?}: relay {} is the same server ({}) with the same user as an earlier one; give it more connections instead",
                    relay.host,
                    i + 1,
                    same.name()
                ),
            ));
        }
        relays.push(relay);
    }
    Ok(relays)
}

fn check_one(raw: RawSmtp, source: &Source) -> Result<Smtp, ConfigError> {
    if raw.security == Security::None && !is_loopback(&raw.host) {
        return Err(source.invalid(
            "smtp.security",
            format!(
                "= \"none\" sends passwords and addresses in clear text; it is only allowed to a loopback host, not {:?}: use \"starttls\" or \"tls\"",
                raw.host
            ),
        ));
    }
    number_within(
        source,
        "smtp.connections",
        raw.connections,
        (1, 64),
        " connections at once",
    )?;
    // By default a relay's share follows its connections.
    let weight = raw.weight.unwrap_or(raw.connections as u32);
    number_within(source, "smtp.weight", weight, (1, 1000), "")?;
    let password_env = raw.password_env.unwrap_or_else(|| PASSWORD_ENV.to_string());
    let is_name = |n: &str| {
        n.starts_with(|c: char| c.is_ascii_uppercase() || c == '_')
            && n.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    };
    if !is_name(&password_env) {
        return Err(source.invalid(
            "smtp.password_env",
            format!(
                "= {password_env:?} is not the name of an environment variable; write it like \"RELAY2_PASSWORD\" (the password itself never goes in this file)"
            ),
        ));
    }
    // 0 is unlimited; else from one message every 100 s to 100,000 a second.
    if !(raw.rate == 0.0 || (0.01..=100_000.0).contains(&raw.rate)) {
        return Err(source.invalid(
            "smtp.rate",
            format!(
                "= {} is out of range: use 0 (unlimited) or 0.01 to 100000 messages per second",
                raw.rate
            ),
        ));
    }
    number_within(source, "smtp.timeout", raw.timeout, (1, 3600), " seconds")?;
    if let Some(port) = raw.port {
        number_within(source, "smtp.port", port, (1, u16::MAX), "")?;
    }
    Ok(Smtp {
        port: raw.port.unwrap_or(match raw.security {
            Security::Starttls => 587,
            Security::Tls => 465,
            Security::None => 25,
        }),
        host: raw.host,
        security: raw.security,
        username: raw.username.filter(|u| !u.is_empty()),
        connections: raw.connections,
        rate: raw.rate,
        timeout: raw.timeout,
        tls_ca_file: raw
            .tls_ca_file
            .filter(|p| !p.as_os_str().is_empty())
            .map(|p| source.resolve(p)),
        weight,
        password_env,
    })
}
