//! A real SMTP server (aiosmtpd, `tests/smtp_server.py`) on loopback for the
//! delivery tests, and what it received as Python's `email` package parses
//! it (`tests/mail_dump.py`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tempfile::TempDir;

use super::{manifest_dir, python};

/// A running test SMTP server; stopped when dropped.
pub struct SmtpServer {
    child: Child,
    pub port: u16,
    pub maildir: PathBuf,
    /// Holds `ca.pem` when the server offers STARTTLS.
    pub tls_dir: PathBuf,
    /// The server's log: one line per connection, reply and fault.
    pub log: PathBuf,
    _tmp: TempDir,
}

impl SmtpServer {
    /// Starts `tests/smtp_server.py` with `args` (e.g. `--tls-dir` is added
    /// by [`SmtpServer::start_tls`]) and waits for it to listen.
    pub fn start(args: &[&str]) -> SmtpServer {
        let tmp = tempfile::Builder::new().prefix("smtp-").tempdir().unwrap();
        SmtpServer::start_in(tmp, args)
    }

    /// [`SmtpServer::start`] with the maildir in memory (in `/dev/shm`
    /// when there is one), for tests that send thousands of messages: on a
    /// slow disk the server's fsyncs, and deleting the files afterwards,
    /// would take longer than the test itself.
    pub fn start_in_memory(args: &[&str]) -> SmtpServer {
        let shm = Path::new("/dev/shm");
        let mut builder = tempfile::Builder::new();
        builder.prefix("smtp-");
        let tmp = if shm.is_dir() {
            builder.tempdir_in(shm)
        } else {
            builder.tempdir()
        };
        SmtpServer::start_in(tmp.unwrap(), args)
    }

    fn start_in(tmp: TempDir, args: &[&str]) -> SmtpServer {
        let maildir = tmp.path().join("mail");
        let tls_dir = tmp.path().join("tls");
        let log = tmp.path().join("server.log");
        let (child, port) = super::start_helper(
            Command::new(python())
                .arg(manifest_dir().join("tests/smtp_server.py"))
                .args(["--port", "0", "--maildir"])
                .arg(&maildir)
                .args(
                    args.iter()
                        .map(|a| a.replace("{tls}", &tls_dir.display().to_string())),
                ),
            &log,
        );
        SmtpServer {
            child,
            port,
            maildir,
            tls_dir,
            log,
            _tmp: tmp,
        }
    }

    /// A server that requires STARTTLS (certificate signed by its own CA)
    /// and AUTH with `user`/`pass`, plus `extra` options.
    pub fn start_tls(extra: &[&str]) -> SmtpServer {
        let mut args = vec!["--tls-dir", "{tls}", "--auth", "newsletter:s3cret-pass"];
        args.extend_from_slice(extra);
        SmtpServer::start(&args)
    }

    /// The `[smtp]` table for a config pointing at this server.
    pub fn config(&self, extra: &str) -> String {
        let tls = self.tls_dir.join("ca.pem");
        if tls.exists() {
            format!(
                "[smtp]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"starttls\"\nusername = \"newsletter\"\n\
                 tls_ca_file = {:?}\ntimeout = 10\n{extra}\n",
                self.port,
                tls.display().to_string()
            )
        } else {
            loopback_config(self.port, &format!("timeout = 10\n{extra}"))
        }
    }

    /// Every message received so far, parsed.
    pub fn messages(&self) -> Vec<Mail> {
        if !self.maildir.exists() {
            return Vec::new();
        }
        mail_dump(&[self.maildir.as_os_str()])
    }

    /// The recipients of every message received, one entry per copy.
    pub fn recipients(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .messages()
            .into_iter()
            .flat_map(|m| m.envelope.rcpt_tos)
            .collect();
        all.sort();
        all
    }

    /// The recipients of every message received so far, one entry per
    /// copy, read from the envelopes the server saved beside the messages
    /// (quicker than parsing thousands of messages).
    pub fn envelope_recipients(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.maildir) else {
            return Vec::new();
        };
        let mut all = Vec::new();
        for entry in entries.filter_map(|e| e.ok()) {
            let path = entry.path();
            // The `.eml` is renamed into place after its `.json`.
            if path.extension().is_none_or(|x| x != "eml") {
                continue;
            }
            let json = std::fs::read(path.with_extension("json"))
                .unwrap_or_else(|e| panic!("{}: no envelope: {e}", path.display()));
            let envelope: Envelope = serde_json::from_slice(&json).expect("an envelope");
            all.extend(envelope.rcpt_tos);
        }
        all.sort();
        all
    }

    /// Waits until the server has saved `n` messages.
    pub fn wait_for(&self, n: usize, timeout: Duration) {
        let start = Instant::now();
        while count_eml(&self.maildir) < n {
            assert!(
                start.elapsed() < timeout,
                "the SMTP server got fewer than {n} messages"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl SmtpServer {
    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_else(|e| panic!("{}: {e}", self.log.display()))
    }

    /// How many times the log has `needle` so far.
    pub fn logged(&self, needle: &str) -> usize {
        self.log().matches(needle).count()
    }

    /// Waits until the log has `needle` at least `n` times.
    #[track_caller]
    pub fn wait_for_logged(&self, needle: &str, n: usize) {
        let start = Instant::now();
        while self.logged(needle) < n {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the SMTP server did not log {needle:?} {n} times:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits until the server has seen every connection close (after its
    /// client is gone): then it has saved whatever was in flight, and
    /// saves nothing more, since a message whose client hung up before
    /// the reply is dropped.
    #[track_caller]
    pub fn wait_until_idle(&self) {
        let start = Instant::now();
        loop {
            let log = self.log();
            let opened = log.matches(" connect peer=").count();
            let closed = log.matches(" disconnect peer=").count();
            if opened == closed {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{} of the SMTP server's connections still open after a minute:\n{log}",
                opened - closed
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// A file that, while it exists, holds every message at the SMTP server
/// before its reply (`tests/smtp_server.py --hold-file`): a `send` stays
/// mid-message, provably running, for as long as a test needs.
pub struct Hold {
    dir: TempDir,
}

impl Hold {
    pub fn new() -> Hold {
        Hold {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("hold")
    }

    /// The server's `--hold-file` argument.
    pub fn arg(&self) -> String {
        self.path().display().to_string()
    }

    /// Holds the messages that reach DATA from now on.
    pub fn on(&self) {
        std::fs::write(self.path(), "").unwrap();
    }

    /// Lets every held message go on.
    pub fn off(&self) {
        std::fs::remove_file(self.path()).unwrap();
    }
}

impl Default for Hold {
    fn default() -> Hold {
        Hold::new()
    }
}

/// The `[smtp]` table for a server without TLS on 127.0.0.1:`port` with
/// `connections`, and a timeout longer than any [`Hold`].
pub fn held_config(port: u16, connections: usize) -> String {
    loopback_config(port, &format!("timeout = 120\nconnections = {connections}"))
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `[smtp]` table for a server without TLS on 127.0.0.1:`port`, plus
/// `keys` (TOML lines, e.g. `timeout = 2`): for a port nothing listens on,
/// or one a broken server does.
pub fn loopback_config(port: u16, keys: &str) -> String {
    format!("[smtp]\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"none\"\n{keys}\n")
}

/// How many `.eml` files a folder holds.
pub fn count_eml(dir: &Path) -> usize {
    eml_files(dir).len()
}

/// The whole `.eml` files in a folder, by name: not the hidden
/// `.NAME.eml.tmp` a writer renames into place when it is done.
pub fn eml_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir).map_or(Vec::new(), |entries| {
        entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect()
    });
    files.sort();
    files
}

/// One message as `tests/mail_dump.py` reports it.
#[derive(Debug, Deserialize)]
pub struct Mail {
    pub file: String,
    /// Absent (null) for a single `.eml` file.
    #[serde(default, deserialize_with = "null_as_default")]
    pub envelope: Envelope,
    pub headers: BTreeMap<String, Vec<HeaderValue>>,
    pub defects: Vec<String>,
    pub content_type: String,
    pub parts: Vec<Part>,
    pub html_links: Vec<String>,
    pub html_tags: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Envelope {
    #[serde(default)]
    pub mail_from: String,
    #[serde(default)]
    pub rcpt_tos: Vec<String>,
    #[serde(default)]
    pub tls: bool,
    #[serde(default)]
    pub auth_user: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct HeaderValue {
    pub raw: String,
    pub decoded: String,
    /// For an address header, the address of each mailbox in it.
    #[serde(default)]
    pub addresses: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
pub struct Part {
    pub content_type: String,
    pub charset: Option<String>,
    pub content: Option<String>,
}

impl Mail {
    /// The decoded value of the only header called `name` (any case).
    #[track_caller]
    pub fn header(&self, name: &str) -> &str {
        let values = self.headers_named(name);
        assert_eq!(values.len(), 1, "{}: {name} headers: {values:?}", self.file);
        &values[0].decoded
    }

    pub fn headers_named(&self, name: &str) -> Vec<&HeaderValue> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v)
            .collect()
    }

    /// The decoded text of the part with this content type.
    #[track_caller]
    pub fn part(&self, content_type: &str) -> &str {
        self.parts
            .iter()
            .find(|p| p.content_type == content_type)
            .and_then(|p| p.content.as_deref())
            .unwrap_or_else(|| panic!("{}: no {content_type} part", self.file))
    }
}

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Runs `tests/mail_dump.py` with `args`.
pub fn mail_dump(args: &[&std::ffi::OsStr]) -> Vec<Mail> {
    let out = Command::new(python())
        .arg(manifest_dir().join("tests/mail_dump.py"))
        .args(args)
        .output()
        .expect("run tests/mail_dump.py");
    assert!(
        out.status.success(),
        "mail_dump.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("mail_dump.py prints JSON")
}

/// One `.eml` file, parsed.
pub fn mail_file(path: &Path) -> Mail {
    let out = Command::new(python())
        .arg(manifest_dir().join("tests/mail_dump.py"))
        .arg("--file")
        .arg(path)
        .output()
        .expect("run tests/mail_dump.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("mail_dump.py prints JSON")
}
