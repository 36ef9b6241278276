//! A real IMAP server for the tests: Debian's Dovecot, started on a
//! loopback port with a throwaway user (`bounces`, password `IMAP_PASSWORD`)
//! whose Maildir lives in a temp dir; stopped when dropped. Messages are
//! appended and folders looked at over IMAP, with Python's `imaplib`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::{python, run};

pub const IMAP_USER: &str = "bounces";
pub const IMAP_PASSWORD: &str = "imap-test-password";

pub struct Dovecot {
    child: Child,
    pub port: u16,
    dir: TempDir,
}

/// What `id FLAG [USER]` prints (the user running the tests when `user`
/// is empty).
fn id_of(flag: &str, user: &str) -> String {
    let mut command = Command::new("id");
    command.arg(flag);
    if !user.is_empty() {
        command.arg(user);
    }
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "no user {user}: is dovecot-imapd installed?"
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

impl Dovecot {
    /// Starts Dovecot (`/usr/sbin/dovecot`, as scripts/test installs it).
    pub fn start() -> Dovecot {
        assert!(
            std::path::Path::new("/usr/sbin/dovecot").exists(),
            "the IMAP tests need Dovecot: apt-get install dovecot-imapd (scripts/test does)"
        );
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        for sub in ["run", "state", "home"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        // Dovecot refuses to run its login process as root, and mail as
        // uid 0: as root, use the users its package made; otherwise, the
        // user running the tests for all of it.
        let me = id_of("-un", "");
        let as_root = id_of("-u", "") == "0";
        let (internal, login, mail_user) = if as_root {
            ("dovecot", "dovenull", "dovecot")
        } else {
            (me.as_str(), me.as_str(), me.as_str())
        };
        let (uid, gid) = (id_of("-u", mail_user), id_of("-g", mail_user));
        if as_root {
            let status = Command::new("chown")
                .args(["-R", &format!("{uid}:{gid}")])
                .arg(root.join("home"))
                .status()
                .unwrap();
            assert!(status.success());
        }
        std::fs::write(
            root.join("passwd"),
            format!("{IMAP_USER}:{{PLAIN}}{IMAP_PASSWORD}\n"),
        )
        .unwrap();
        let root_text = root.display();
        let config = |greeting: &str, port: u16| {
            format!(
                "protocols = imap
login_greeting = {greeting}
listen = 127.0.0.1
base_dir = {root_text}/run
state_dir = {root_text}/state
log_path = {root_text}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {internal}
default_internal_group = {internal}
default_login_user = {login}
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root_text}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root_text}/home/%u
}}
mail_location = maildir:~/Maildir
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
  chroot =
}}
service anvil {{
  chroot =
}}
"
            )
        };
        // Dovecot binds its port itself, and another process may take the
        // number between our look and its bind: then it exits, or another
        // server answers there. Each try greets with a word of its own, so
        // only our Dovecot's greeting counts; otherwise, another port.
        for attempt in 0..10 {
            let greeting = format!("newsletter-test-{}-{attempt}", std::process::id());
            let port = super::server::free_port().number();
            std::fs::write(root.join("dovecot.conf"), config(&greeting, port)).unwrap();
            let mut child = Command::new("/usr/sbin/dovecot")
                .arg("-F")
                .arg("-c")
                .arg(root.join("dovecot.conf"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            match wait_for_greeting(&mut child, port, &greeting, &root) {
                Ok(()) => return Dovecot { child, port, dir },
                Err(seen) => {
                    eprintln!("Dovecot on port {port}: {seen}; trying another port");
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
        panic!(
            "Dovecot did not start on any of 10 ports:\n{}",
            std::fs::read_to_string(dir.path().join("dovecot.log")).unwrap_or_default()
        );
    }

    /// `bounces.imap` for this server's INBOX.
    pub fn url(&self) -> String {
        format!("imap://{IMAP_USER}@127.0.0.1:{}/INBOX", self.port)
    }

    /// Runs Python `code` with `m`, an imaplib connection logged in.
    fn python(&self, code: &str) -> String {
        let script = format!(
            "import imaplib, sys, json\nm = imaplib.IMAP4('127.0.0.1', {})\nm.login('{IMAP_USER}', '{IMAP_PASSWORD}')\n{code}\n",
            self.port
        );
        let out = run(Command::new(python()).args(["-c", &script]));
        assert_eq!(out.code, Some(0), "imaplib failed\n{out}");
        out.stdout
    }

    /// Appends each message to INBOX, as a mail server delivering them would.
    pub fn append(&self, messages: &[String]) {
        let dir = self.dir.path().join("to-append");
        std::fs::create_dir_all(&dir).unwrap();
        let mut files: Vec<PathBuf> = Vec::new();
        for (i, message) in messages.iter().enumerate() {
            let file = dir.join(format!("{i:06}.eml"));
            std::fs::write(&file, message).unwrap();
            files.push(file);
        }
        let list = serde_json::to_string(&files).unwrap();
        self.python(&format!(
            "for f in json.loads({list:?}):\n    m.append('INBOX', None, None, open(f, 'rb').read())"
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// `(messages, flagged)` in `folder` (0, 0 when there is no such folder).
    pub fn count(&self, folder: &str) -> (usize, usize) {
        let out = self.python(&format!(
            "typ, _ = m.select('{folder}')\nif typ != 'OK':\n    print(0, 0)\nelse:\n    a = m.search(None, 'ALL')[1][0].split()\n    f = m.search(None, 'FLAGGED')[1][0].split()\n    print(len(a), len(f))"
        ));
        let numbers: Vec<usize> = out.split_whitespace().map(|n| n.parse().unwrap()).collect();
        (numbers[0], numbers[1])
    }
}

/// Waits (60 s at most for the port, 30 s for the greeting) until the
/// Dovecot `child` greets on `port` with `greeting`; what went wrong
/// otherwise.
fn wait_for_greeting(
    child: &mut Child,
    port: u16,
    greeting: &str,
    root: &std::path::Path,
) -> Result<(), String> {
    use std::io::BufRead;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Err(format!("exited ({status})"));
        }
        if let Ok(stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            stream
                .set_read_timeout(Some(Duration::from_secs(30)))
                .unwrap();
            let mut line = String::new();
            let _ = std::io::BufReader::new(stream).read_line(&mut line);
            if line.contains(greeting) {
                return Ok(());
            }
            return Err(format!("another server answered: {line:?}"));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "not listening after 60 s:\n{}",
                std::fs::read_to_string(root.join("dovecot.log")).unwrap_or_default()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}
