//! `[server]`: where `newsletter serve` is reachable.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use super::values::{DAY, duration_within, number_within};
use super::{ConfigError, Source};

/// `[server]`: where `newsletter serve` is reachable.
#[derive(Debug, Clone)]
pub struct Server {
    /// The URL that links in emails point at; default `site.base_url`.
    pub public_url: Url,
    /// True when the config names `public_url` (so someone said that
    /// `newsletter serve` answers there), false when it is the default.
    pub public_url_set: bool,
    /// Where `newsletter serve` listens; `--listen` overrides it.
    pub listen: SocketAddr,
    /// How long a confirmation link works.
    pub confirm_ttl: Duration,
    /// Sign-ups accepted per client address per hour.
    pub signups_per_client: u32,
    /// Confirmation emails sent per address per hour.
    pub signups_per_email: u32,
    /// Take the client address from `X-Forwarded-For` (behind a reverse proxy).
    pub behind_proxy: bool,
    /// A request's headers must arrive, and its answer be ready, within this;
    /// an idle keep-alive connection is closed after it too; and a client
    /// that reads an answer slower than this between writes is dropped.
    pub request_timeout: Duration,
    /// Open connections at most, from everyone.
    pub max_connections: usize,
    /// Open connections at most from one client address (not applied
    /// `behind_proxy`, where every connection comes from the proxy).
    pub connections_per_client: usize,
    /// Behind a proxy: requests a second at most from one forwarded
    /// client (`X-Forwarded-For`), since connections cannot tell them apart.
    pub requests_per_client: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawServer {
    public_url: Option<String>,
    listen: String,
    confirm_ttl: String,
    signups_per_client: u32,
    signups_per_email: u32,
    behind_proxy: bool,
    request_timeout: String,
    max_connections: usize,
    connections_per_client: usize,
    requests_per_client: u32,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            public_url: None,
            listen: "127.0.0.1:8080".into(),
            confirm_ttl: "48h".into(),
            signups_per_client: 10,
            signups_per_email: 3,
            behind_proxy: false,
            request_timeout: "30s".into(),
            max_connections: 1024,
            connections_per_client: 64,
            requests_per_client: 50,
        }
    }
}

/// Checks `[server]`. `public_url` defaults to `base_url` (the checked
/// `site.base_url`): by default the blog and `serve` share one address.
pub(super) fn check(
    raw: RawServer,
    base_url: &Url,
    source: &Source,
) -> Result<Server, ConfigError> {
    let public_url_set = raw.public_url.is_some();
    let public_url = match raw.public_url {
        None => base_url.clone(),
        Some(text) => {
            let url = Url::parse(&text).map_err(|e| {
                source.invalid(
                    "server.public_url",
                    format!("= {text:?} is not an absolute URL ({e})"),
                )
            })?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(source.invalid(
                    "server.public_url",
                    format!("= {text:?} must be an http or https URL with a host"),
                ));
            }
            if !url.username().is_empty() || url.password().is_some() {
                return Err(source.invalid(
                    "server.public_url",
                    "must not carry a user name or password: every email would carry them".into(),
                ));
            }
            url
        }
    };
    // Links in mail headers (List-Unsubscribe) start with it, and a mail
    // line may not pass 998 octets; base_url too, when it stands in.
    if public_url.as_str().len() > 500 {
        return Err(source.invalid(
            "server.public_url",
            format!(
                "is {} characters long (or site.base_url, standing in for it); at most 500: \
                 unsubscribe links go in a mail header",
                public_url.as_str().len()
            ),
        ));
    }
    let listen: SocketAddr = raw.listen.parse().map_err(|_| {
        source.invalid(
            "server.listen",
            format!(
                "= {:?} is not an address and port; write it like \"127.0.0.1:8080\"",
                raw.listen
            ),
        )
    })?;
    let confirm_ttl = duration_within(
        source,
        "server.confirm_ttl",
        &raw.confirm_ttl,
        (60, 30 * DAY),
        "; give readers at least a few minutes",
    )?;
    let request_timeout = duration_within(
        source,
        "server.request_timeout",
        &raw.request_timeout,
        (1, 3600),
        " for readers on slow networks; use \"1s\" or more",
    )?;
    for (key, value) in [
        ("server.signups_per_client", raw.signups_per_client),
        ("server.signups_per_email", raw.signups_per_email),
    ] {
        number_within(source, key, value, (1, 100_000), " sign-ups an hour")?;
    }
    let max_connections = number_within(
        source,
        "server.max_connections",
        raw.max_connections,
        (16, 1_000_000),
        " open connections",
    )?;
    let connections_per_client = number_within(
        source,
        "server.connections_per_client",
        raw.connections_per_client,
        (1, max_connections),
        " open connections (at most server.max_connections)",
    )?;
    let requests_per_client = number_within(
        source,
        "server.requests_per_client",
        raw.requests_per_client,
        (1, 100_000),
        " requests a second",
    )?;
    Ok(Server {
        public_url,
        public_url_set,
        listen,
        confirm_ttl,
        signups_per_client: raw.signups_per_client,
        signups_per_email: raw.signups_per_email,
        behind_proxy: raw.behind_proxy,
        request_timeout,
        max_connections,
        connections_per_client,
        requests_per_client,
    })
}
