//! `newsletter serve` started for a test on a loopback port, with its JSON
//! log lines collected, driven by a real HTTP client (reqwest).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{NOW, Run, Site, run};

/// The token secret of the served test sites.
pub const SECRET: &str = "test-secret-for-serve-tokens";

/// `newsletter serve` on `site` at `--now NOW`, signing with [`SECRET`].
pub fn start(site: &Site, port: Port) -> Server {
    Server::start(
        site,
        port,
        &["--now", NOW],
        &[("NEWSLETTER_SECRET", SECRET)],
    )
}

/// `newsletter ARGS` on `site`, with the server's secret.
pub fn cli(site: &Site, args: &[&str]) -> Run {
    run(site.newsletter(args).env("NEWSLETTER_SECRET", SECRET))
}

/// `email<TAB>status` of every subscriber.
pub fn statuses(site: &Site) -> Vec<(String, String)> {
    cli(site, &["subscribers", "list"])
        .success()
        .stdout
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].to_string(), f[2].to_string())
        })
        .collect()
}

/// A running server; killed when dropped.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub port: u16,
    logs: Arc<Mutex<Vec<String>>>,
}

/// A loopback port held for a server: a socket bound to 127.0.0.1:0 and
/// kept, so no other process can take the port before the server listens
/// on it ([`Server::start`] hands the socket over, the systemd way).
/// Clones share the socket: a server restarted on the same port. Until a
/// server listens on it, the port refuses connections (nothing there).
#[derive(Clone)]
pub struct Port {
    socket: Arc<socket2::Socket>,
    number: u16,
}

impl Port {
    pub fn number(&self) -> u16 {
        self.number
    }
}

impl std::fmt::Display for Port {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.number)
    }
}

/// A loopback port, held until a server listens on it (for a config that
/// must name the server's URL before it starts).
pub fn free_port() -> Port {
    use socket2::{Domain, Socket, Type};
    // Bound, not yet listening, and without SO_REUSEADDR: no one else can
    // bind the port, and a connection to it is refused.
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket
        .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    let number = socket
        .local_addr()
        .unwrap()
        .as_socket()
        .expect("an IP socket")
        .port();
    Port {
        socket: Arc::new(socket),
        number,
    }
}

impl Server {
    /// `newsletter serve --log-json ARGS` in the site's folder, with `env`,
    /// on `port`'s socket (file descriptor 3, `LISTEN_FDS=1`: no moment
    /// when the port is free); waits until it listens.
    pub fn start(site: &Site, port: Port, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut command = site.newsletter(["serve", "--log-json"]);
        command.args(args);
        let server = Server::launch(command, port, env);
        let listening = server.wait_for_log("\"listening\"", Duration::from_secs(1));
        // It serves on the socket handed over, and says so.
        assert!(
            listening.contains(&format!("\"address\":\"127.0.0.1:{}\"", server.port))
                && listening.contains("\"passed_in\":true"),
            "not serving on the socket passed in: {listening}"
        );
        server
    }

    /// `command` (a `newsletter serve --log-json`) with `port`'s socket as
    /// file descriptor 3 and `LISTEN_FDS=1`, and `env`; waits until it
    /// says it listens, wherever that is.
    pub fn launch(mut command: std::process::Command, port: Port, env: &[(&str, &str)]) -> Server {
        port.socket.listen(1024).unwrap();
        command
            .env("NEWSLETTER_LOG", "info")
            // No LISTEN_PID: the child's pid is not known before it starts.
            .env("LISTEN_FDS", "1")
            .env_remove("LISTEN_PID")
            .env_remove("LISTEN_FDS_FIRST_FD")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let fd = port.socket.as_raw_fd();
        // SAFETY: only dup2 and fcntl, which are async-signal-safe, run
        // between fork and exec.
        unsafe {
            command.pre_exec(move || {
                // dup2 leaves the copy open across exec; a socket that is
                // already 3 only needs its close-on-exec flag cleared.
                let done = if fd == 3 {
                    libc::fcntl(3, libc::F_SETFD, 0)
                } else {
                    libc::dup2(fd, 3)
                };
                if done == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command.spawn().expect("start newsletter serve");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (ready, listening) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let collected = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let listening = line.contains("\"listening\"");
                collected.lock().unwrap().push(line);
                if listening {
                    let _ = ready.send(());
                }
            }
            let _ = ready.send(());
        });
        let _ = listening.recv_timeout(Duration::from_secs(60));
        let number = port.number();
        let server = Server {
            child,
            base: format!("http://127.0.0.1:{number}"),
            port: number,
            logs,
        };
        assert!(
            server.log_has("\"listening\""),
            "the server did not start:\n{}",
            server.logs().join("\n")
        );
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    pub fn log_has(&self, needle: &str) -> bool {
        self.logs.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    /// Waits until a log line contains `needle`; returns it.
    #[track_caller]
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            if let Some(line) = self
                .logs
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(needle))
            {
                return line.clone();
            }
            assert!(
                start.elapsed() < timeout,
                "no log line with {needle:?} within {timeout:?}:\n{}",
                self.logs().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits (at most `timeout`) for the exit.
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        let pid = self.child.id().to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < timeout,
                "the server did not stop within {timeout:?} of SIGTERM:\n{}",
                self.logs().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// One raw HTTP/1.1 request line as written (no URL normalisation, as
    /// an attacker would send it); the status code and body.
    pub fn raw_get(&self, target: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client that follows no redirects and keeps no cookies.
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// The subscriber `email` as the store of `site` (`newsletter.db`) holds them.
pub fn stored_subscriber(site: &Site, email: &str) -> newsletter::store::Subscriber {
    let store = newsletter::store::Store::open(&site.path("newsletter.db")).unwrap();
    store
        .subscriber(email)
        .unwrap()
        .unwrap_or_else(|| panic!("{email} is not in the store"))
}

/// A token for the subscriber `email`, signed as the server and `send`
/// sign theirs: with [`SECRET`] and the subscriber's key.
pub fn token_for(site: &Site, email: &str, purpose: newsletter::token::Purpose) -> String {
    let key = stored_subscriber(site, email).key;
    newsletter::token::sign(SECRET.as_bytes(), purpose, &key, None)
}

/// The preference page of the subscriber `email` on `server`.
pub fn preferences_url(site: &Site, server: &Server, email: &str) -> String {
    let token = token_for(site, email, newsletter::token::Purpose::Preferences);
    server.url(&format!("/preferences/{token}"))
}
