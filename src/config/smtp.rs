//! `[smtp]`: the server digests are sent through.

use std::path::PathBuf;

use serde::Deserialize;

use super::values::number_within;
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
}

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
}

fn default_security() -> Security {
    Security::Starttls
}

fn default_connections() -> usize {
    4
}

fn default_timeout() -> u64 {
    30
}

/// Checks `[smtp]`; the password is not here but in `Secrets`.
pub(super) fn check(raw: RawSmtp, source: &Source) -> Result<Smtp, ConfigError> {
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
    })
}
