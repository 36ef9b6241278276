//! A stand-in WebSub hub (`tests/hub_server.py`, Python's own HTTP server)
//! on loopback, and the publish requests it received.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command};

use serde::Deserialize;
use tempfile::TempDir;

use super::{manifest_dir, python};

/// A running test hub; stopped when dropped.
pub struct HubServer {
    child: Child,
    pub port: u16,
    log: PathBuf,
    _tmp: TempDir,
}

impl HubServer {
    /// A hub that accepts every publish request (204).
    pub fn start() -> HubServer {
        HubServer::start_with(&[])
    }

    /// A hub that answers every publish request with `status`.
    pub fn answering(status: u16) -> HubServer {
        HubServer::start_with(&["--status", &status.to_string()])
    }

    fn start_with(args: &[&str]) -> HubServer {
        let tmp = tempfile::Builder::new().prefix("hub-").tempdir().unwrap();
        let log = tmp.path().join("requests.jsonl");
        let (child, port) = super::start_helper(
            Command::new(python())
                .arg(manifest_dir().join("tests/hub_server.py"))
                .arg(&log)
                .args(args),
            &tmp.path().join("server.log"),
        );
        HubServer {
            child,
            port,
            log,
            _tmp: tmp,
        }
    }

    /// The hub's URL, as `feeds.hub` names it.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// The `[feeds]` line that points a site at this hub.
    pub fn config_line(&self) -> String {
        format!("hub = \"{}\"", self.url())
    }

    /// Every POST received so far, in order. The server records a request
    /// before answering it, so once `newsletter` has exited all are here.
    pub fn requests(&self) -> Vec<HubRequest> {
        let Ok(text) = std::fs::read_to_string(&self.log) else {
            return Vec::new();
        };
        text.lines()
            .map(|line| serde_json::from_str(line).expect("hub_server.py logs JSON lines"))
            .collect()
    }
}

impl Drop for HubServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One POST as `tests/hub_server.py` recorded it.
#[derive(Debug, Clone, Deserialize)]
pub struct HubRequest {
    pub path: String,
    pub content_type: Option<String>,
    pub user_agent: Option<String>,
    pub body: String,
}

impl HubRequest {
    /// The body decoded as an HTML form: every name and value, in order.
    pub fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(self.body.as_bytes())
            .into_owned()
            .collect()
    }
}

/// A loopback port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
