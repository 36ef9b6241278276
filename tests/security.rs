//! Mail security, against the real binary and the real SMTP server: no
//! post field or subscriber name can add a header or a recipient; SMTP in
//! clear text only to a loopback host; the SMTP password and the token
//! secret never appear in any output, log or error; the store is private.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::server::{Server, client, free_port};
use common::smtp::{Mail, SmtpServer};
use common::{NOW, Run, Site, bin, run};

const PASSWORD: &str = "pw-7Hq2ZxVv-never-print";
const WRONG_PASSWORD: &str = "pw-wrong-Kd93Lq-never-print";
const SECRET: &str = "secret-M4rK9wQe-never-print";
const SHORT_SECRET: &str = "tiny-Sekr3t";

/// Characters that end a line somewhere: in SMTP, in Python's `email`
/// package, or in Unicode.
const LINE_BREAKS: [char; 7] = [
    '\r', '\n', '\u{0B}', '\u{0C}', '\u{85}', '\u{2028}', '\u{2029}',
];

/// The headers a digest has, each once.
const DIGEST_HEADERS: [&str; 10] = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "MIME-Version",
    "Content-Type",
];

/// What an attacker puts in a field (as TOML escapes), one per hostile post.
const PAYLOADS: [&str; 6] = [
    r"\r\nBcc: crlf@evil.example",
    r"\nCc: lf@evil.example\n\nX-Injected: lf",
    r"\rX-Injected: cr",
    r"\u2028Bcc: ls@evil.example",
    r"\u0085Bcc: nel@evil.example",
    r"\u2029X-Injected: ps",
];

/// Runs `command`, killing it if it has not finished after `limit`.
fn run_for(command: &mut Command, limit: Duration) -> Run {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[track_caller]
fn assert_one_line(mail: &Mail) {
    for (name, values) in &mail.headers {
        for value in values {
            assert!(
                !value.decoded.contains(LINE_BREAKS),
                "{}: {name} carries a line break: {:?}",
                mail.file,
                value.decoded
            );
        }
    }
}

#[test]
fn no_post_field_or_subscriber_name_can_add_a_header_or_a_recipient() {
    let server = SmtpServer::start(&[]);
    // The subject shows every post's title, authors and tags; the site's
    // title is in List-Id.
    let site = Site::with_mail()
        .site_title("Fixture\r\nBcc: site@evil.example")
        .first_run_posts(20)
        .digest(
            "subject = \"{% for p in posts %}{{ p.title }} by \
             {{ p.author }} in {{ p.tags|join(', ') }}; {% endfor %}\"",
        )
        .smtp(server.config(""))
        .create();
    for (i, payload) in PAYLOADS.iter().enumerate() {
        site.write(
            &format!("content/2026-11-2{i}-hostile-{i}.md"),
            format!(
                "+++\ntitle = \"Title {i}{payload}\"\nauthors = [\"Author {i}{payload}\", \
                 \"Second\"]\ntags = [\"tag {i}{payload}\", \"plain\"]\n+++\n\nBody {i}.\n"
            ),
        );
    }
    // Names with line breaks: through an import, through `subscribers
    // add`, and written straight into the store (by an older version, or
    // by hand), which only the message builder stands between.
    let mut csv = String::from("email,name\n");
    for (i, name) in [
        "Eve\r\nBcc: csv@evil.example",
        "Nel\u{85}Bcc: nel@evil.example",
        "Ls\u{2028}Cc: ls@evil.example\u{2028}\u{2028}X-Injected: ls",
    ]
    .iter()
    .enumerate()
    {
        csv.push_str(&format!("csv{i}@example.net,\"{name}\"\n"));
    }
    site.write("list.csv", csv);
    run(&mut site.newsletter(["subscribers", "import", "list.csv"])).success();
    run(&mut site.newsletter([
        "subscribers",
        "add",
        "added@example.net",
        "--name",
        "Mal\r\nBcc: add@evil.example\u{2028}X-Injected: add",
    ]))
    .success();
    let conn = rusqlite::Connection::open(site.path("newsletter.db")).unwrap();
    conn.execute(
        "INSERT INTO subscribers (email, name, status, created_at, updated_at) VALUES \
         ('raw@example.net', ?1, 'active', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')",
        ["Raw\r\nBcc: raw@evil.example\r\n\r\nX-Injected: raw"],
    )
    .unwrap();
    drop(conn);

    let out = run(site
        .newsletter(["send", "--now", NOW])
        .env("NEWSLETTER_SECRET", SECRET));
    let readers = [
        "added@example.net",
        "csv0@example.net",
        "csv1@example.net",
        "csv2@example.net",
        "raw@example.net",
    ];
    assert!(out.stdout.contains("5 sent, 0 failed"), "{out}");
    assert_eq!(server.recipients(), readers, "someone else got mail");
    let mails = server.messages();
    assert_eq!(mails.len(), readers.len());
    for mail in &mails {
        let mut names: Vec<&str> = mail.headers.keys().map(String::as_str).collect();
        names.sort_by_key(|n| n.to_ascii_lowercase());
        let mut expected = DIGEST_HEADERS.to_vec();
        expected.sort_by_key(|n| n.to_ascii_lowercase());
        assert_eq!(names, expected, "{}: the header set", mail.file);
        for (name, values) in &mail.headers {
            assert_eq!(values.len(), 1, "{}: {name} twice", mail.file);
        }
        assert_one_line(mail);
        assert!(mail.defects.is_empty(), "{}: {:?}", mail.file, mail.defects);
        let rcpt = &mail.envelope.rcpt_tos;
        assert_eq!(rcpt.len(), 1, "{}: {rcpt:?}", mail.file);
        let to = &mail.headers_named("To")[0];
        assert_eq!(to.addresses.as_ref(), Some(rcpt), "{}: {to:?}", mail.file);
        // What was meant as a header stays visible, as text.
        let subject = mail.header("Subject");
        assert!(
            subject.contains("Title 0 Bcc: crlf@evil.example by Author 0 Bcc: crlf@evil.example")
                && subject.contains("tag 5 X-Injected: ps"),
            "{subject}"
        );
    }
}

#[test]
fn clear_text_smtp_is_refused_for_every_host_but_loopback() {
    for host in [
        "smtp.example.org",
        "localhost.evil.example",
        "127.0.0.1.nip.io",
        "10.0.0.1",
        "0.0.0.0",
    ] {
        let site = Site::with_mail()
            .smtp(format!("[smtp]\nhost = {host:?}\nsecurity = \"none\"\n"))
            .create();
        for args in [
            vec!["check"],
            vec!["build", "--now", NOW],
            vec!["send", "--now", NOW],
            vec!["send", "--dry-run", "--now", NOW],
            vec!["serve", "--listen", "127.0.0.1:0"],
        ] {
            let out = run_for(&mut site.newsletter(&args), Duration::from_secs(20)).failure();
            assert!(
                out.stderr.contains("smtp.security")
                    && out.stderr.contains("loopback")
                    && out.stderr.contains(host),
                "{host} {args:?}: {out}"
            );
        }
    }
    for host in ["127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"] {
        let site = Site::with_mail()
            .smtp(format!("[smtp]\nhost = {host:?}\nsecurity = \"none\"\n"))
            .create();
        let out = run(&mut site.newsletter(["check"]));
        assert_eq!(out.code, Some(0), "{host}: {out}");
    }
}

/// Standard base64, with or without padding, and the URL-safe alphabet.
fn base64_forms(bytes: &[u8]) -> Vec<String> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut text = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                text.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                text.push('=');
            }
        }
    }
    let bare = text.trim_end_matches('=').to_string();
    let url = bare.replace('+', "-").replace('/', "_");
    vec![text, bare, url]
}

/// Every form a secret could leak in: as is, hex, base64.
fn leak_forms(secret: &str) -> Vec<String> {
    let mut forms = vec![
        secret.to_string(),
        hex::encode(secret),
        hex::encode_upper(secret),
    ];
    forms.extend(base64_forms(secret.as_bytes()));
    forms
}

/// What a user saw, by where it came from.
#[derive(Default)]
struct Seen(Vec<(String, String)>);

impl Seen {
    fn add(&mut self, what: impl Into<String>, text: impl Into<String>) {
        self.0.push((what.into(), text.into()));
    }

    fn run(&mut self, what: &str, run: Run) -> Run {
        self.add(what, format!("{}\n{}", run.stdout, run.stderr));
        run
    }

    /// Every file under `dir`, as text.
    fn files(&mut self, dir: &Path) {
        for entry in walkdir::WalkDir::new(dir)
            .into_iter()
            .filter_map(|e| e.ok())
        {
            if entry.file_type().is_file() {
                let bytes = std::fs::read(entry.path()).unwrap();
                self.add(
                    entry.path().display().to_string(),
                    String::from_utf8_lossy(&bytes),
                );
            }
        }
    }

    #[track_caller]
    fn assert_none_contains(&self, forbidden: &[String]) {
        assert!(self.0.len() > 5, "too little output checked");
        eprintln!(
            "checked {} outputs ({} bytes) for {} forbidden strings",
            self.0.len(),
            self.0.iter().map(|(_, t)| t.len()).sum::<usize>(),
            forbidden.len()
        );
        for (what, text) in &self.0 {
            for secret in forbidden {
                assert!(
                    !text.contains(secret.as_str()),
                    "{what} shows {secret:?}:\n{text}"
                );
            }
        }
    }
}

/// `newsletter serve` on `site` with `env`; a feed request, a sign-up
/// (which mails a confirmation) and a bad link; its log lines.
fn serve_briefly(site: &Site, env: &[(&str, &str)], wait_for: &str) -> String {
    let port = free_port();
    let mut server = Server::start(site, port, &["--now", NOW], env);
    let http = client();
    assert!(
        http.get(server.url("/atom.xml"))
            .send()
            .unwrap()
            .status()
            .is_success()
    );
    http.post(server.url("/subscribe"))
        .form(&[("email", "signup@example.net"), ("name", "Sign Up")])
        .send()
        .unwrap();
    let _ = http
        .get(server.url("/unsubscribe/forged.token"))
        .send()
        .unwrap();
    server.wait_for_log(wait_for, Duration::from_secs(20));
    server.terminate(Duration::from_secs(20));
    server.logs().join("\n")
}

#[test]
fn the_smtp_password_and_the_token_secret_never_appear_in_any_output() {
    let server = SmtpServer::start(&[
        "--tls-dir",
        "{tls}",
        "--auth",
        &format!("newsletter:{PASSWORD}"),
    ]);
    let site = Site::with_mail().smtp(server.config("")).create();
    let mut seen = Seen::default();
    let with = |args: &[&str], password: &str, secret: &str| {
        let mut command = site.newsletter(args);
        command
            .env("NEWSLETTER_SMTP_PASSWORD", password)
            .env("NEWSLETTER_SECRET", secret)
            .env("NEWSLETTER_LOG", "debug");
        run(&mut command)
    };
    let ok = |args: &[&str]| with(args, PASSWORD, SECRET);

    let csv = "email,name\nann@example.net,Ann\nbob@example.net,Bob\n";
    site.write("list.csv", csv);
    seen.run(
        "import",
        ok(&["subscribers", "import", "list.csv"]).success(),
    );
    seen.run("check", ok(&["check"]).success());
    seen.run("build", ok(&["build", "--now", NOW]).success());
    seen.run("list", ok(&["subscribers", "list"]).success());
    seen.run("export", ok(&["subscribers", "export"]).success());
    seen.run(
        "dry run",
        ok(&["send", "--dry-run", "--now", NOW]).success(),
    );
    seen.run("preview", ok(&["preview", "--now", NOW]).success());
    seen.files(&site.path("preview"));
    seen.run(
        "send --to",
        ok(&["send", "--to", "editor@example.net", "--now", NOW]).success(),
    );
    seen.run("send", ok(&["send", "--now", NOW]).success());
    site.write(
        "content/2026-11-24-late.md",
        "---\ntitle: Late\n---\n\nA late post.\n",
    );
    seen.run(
        "publish",
        ok(&["publish", "--send", "--now", NOW]).success(),
    );
    assert_eq!(server.messages().len(), 1 + 2 + 2);

    // Failing: a wrong password, a short secret, no password, a bad config.
    site.write(
        "content/2026-11-24-later.md",
        "---\ntitle: Later\n---\n\nAnother.\n",
    );
    let wrong = with(
        &["send", "--to", "editor@example.net", "--now", NOW],
        WRONG_PASSWORD,
        SECRET,
    );
    let wrong = seen.run("wrong password", wrong.failure());
    assert!(wrong.stderr.contains("refused the login"), "{wrong}");
    let wrong = seen.run(
        "send, wrong password",
        with(&["send", "--now", NOW], WRONG_PASSWORD, SECRET).failure(),
    );
    assert!(wrong.stderr.contains("refused the login"), "{wrong}");
    let short = seen.run(
        "short secret",
        with(&["send", "--dry-run", "--now", NOW], PASSWORD, SHORT_SECRET).failure(),
    );
    assert!(
        short.stderr.contains("NEWSLETTER_SECRET is shorter"),
        "{short}"
    );
    seen.run(
        "short secret, preview",
        with(&["preview", "--now", NOW], PASSWORD, SHORT_SECRET).failure(),
    );
    let mut command = site.newsletter(["send", "--to", "editor@example.net", "--now", NOW]);
    command
        .env_remove("NEWSLETTER_SMTP_PASSWORD")
        .env("NEWSLETTER_SECRET", SECRET);
    seen.run("no password", run(&mut command).failure());
    site.write(
        "bad.toml",
        site.read_text("config.toml") + "\n[oops]\nkey = 1\n",
    );
    // The site's own `--config config.toml` is not given: a second one is a
    // usage error, not the bad config this is about.
    let mut command = common::newsletter(site.root(), ["--config", "bad.toml", "check"]);
    command
        .env("NEWSLETTER_SMTP_PASSWORD", PASSWORD)
        .env("NEWSLETTER_SECRET", SECRET)
        .env("NEWSLETTER_LOG", "debug");
    let bad = seen.run("bad config", run(&mut command).failure());
    assert!(bad.stderr.contains("oops"), "{bad}");

    // The server, with a request or two and a confirmation email, then
    // with the wrong password (the confirmation cannot be sent).
    let env = [
        ("NEWSLETTER_SMTP_PASSWORD", PASSWORD),
        ("NEWSLETTER_SECRET", SECRET),
        ("NEWSLETTER_LOG", "debug"),
    ];
    seen.add("serve", serve_briefly(&site, &env, "confirmation sent"));
    let env = [
        ("NEWSLETTER_SMTP_PASSWORD", WRONG_PASSWORD),
        ("NEWSLETTER_SECRET", SECRET),
        ("NEWSLETTER_LOG", "debug"),
    ];
    let logs = serve_briefly(&site, &env, "refused the login");
    seen.add("serve, wrong password", logs);

    let mut forbidden = Vec::new();
    for secret in [PASSWORD, WRONG_PASSWORD, SECRET, SHORT_SECRET] {
        forbidden.extend(leak_forms(secret));
    }
    // AUTH PLAIN's payload.
    for password in [PASSWORD, WRONG_PASSWORD] {
        forbidden.extend(base64_forms(format!("\0newsletter\0{password}").as_bytes()));
    }
    seen.assert_none_contains(&forbidden);
}

#[test]
fn a_generated_token_secret_never_appears_in_any_output() {
    let site = Site::with_mail().create();
    let mut seen = Seen::default();
    let plain = |args: &[&str]| {
        let mut command = site.newsletter(args);
        command
            .env_remove("NEWSLETTER_SECRET")
            .env("NEWSLETTER_LOG", "debug");
        run(&mut command)
    };
    site.write("list.csv", "email,name\nann@example.net,Ann\n");
    seen.run(
        "import",
        plain(&["subscribers", "import", "list.csv"]).success(),
    );
    seen.run(
        "dry run",
        plain(&["send", "--dry-run", "--now", NOW]).success(),
    );
    seen.run("preview", plain(&["preview", "--now", NOW]).success());
    seen.files(&site.path("preview"));
    let stored_secret = || -> Option<String> {
        rusqlite::Connection::open(site.path("newsletter.db"))
            .unwrap()
            .query_row("SELECT value FROM settings WHERE key = 'secret'", [], |r| {
                r.get(0)
            })
            .ok()
    };
    // Looking records nothing, not even a secret.
    assert_eq!(stored_secret(), None, "a dry run or preview made a secret");
    seen.run(
        "send --to",
        plain(&["send", "--to", "ed@example.net", "--now", NOW]).success(),
    );
    assert_eq!(stored_secret(), None, "a test message made a secret");
    seen.run("send", plain(&["send", "--now", NOW]).success());
    let stored = stored_secret().expect("send makes the secret");
    let bytes = hex::decode(&stored).unwrap();
    seen.files(&site.path("outbox"));
    seen.run("list", plain(&["subscribers", "list"]).success());
    seen.run("export", plain(&["subscribers", "export"]).success());
    seen.add(
        "serve",
        serve_briefly(&site, &[("NEWSLETTER_LOG", "debug")], "confirmation sent"),
    );

    let mut forbidden = vec![stored.clone(), stored.to_uppercase()];
    forbidden.extend(base64_forms(&bytes));
    seen.assert_none_contains(&forbidden);
}

/// Runs the binary with `args` under umask 000, so a mode it does not set
/// itself shows as world-writable.
fn under_open_umask(site: &Site, args: &[&str]) -> Command {
    let mut command = Command::new("sh");
    command
        .current_dir(site.root())
        .args([
            "-c",
            "umask 000 && exec \"$0\" \"$@\"",
            bin(),
            "--config",
            "config.toml",
        ])
        .args(args)
        .env("NEWSLETTER_SECRET", SECRET)
        .env_remove("NEWSLETTER_NOW");
    command
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn the_store_and_its_files_are_private_whatever_the_umask() {
    let server = SmtpServer::start(&["--delay", "0.05"]);
    let site = Site::with_mail()
        .store("data/newsletter.db")
        .smtp(server.config(""))
        .create();
    let mut csv = String::from("email\n");
    for i in 0..50 {
        csv.push_str(&format!("reader{i}@example.net\n"));
    }
    site.write("list.csv", csv);
    run(&mut under_open_umask(
        &site,
        &["subscribers", "import", "list.csv"],
    ))
    .success();
    let store = site.path("data/newsletter.db");
    assert_eq!(mode(&store), 0o600, "the store");

    // Killed while delivering: the write-ahead log, its index and the send
    // lock are all there to look at.
    let mut child = under_open_umask(&site, &["send", "--now", NOW])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    server.wait_for(2, Duration::from_secs(30));
    let _ = child.kill();
    child.wait().unwrap();
    for suffix in ["", "-wal", "-shm", ".lock"] {
        let path = site.path(&format!("data/newsletter.db{suffix}"));
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
}

#[test]
fn outbox_messages_carry_live_links_so_they_are_private_whatever_the_umask() {
    let site = Site::with_mail()
        .email("outbox = \"mail/outbox\"")
        .subscribers(&["ann@example.org", "bob@example.org"])
        .create();
    for args in [
        &["send", "--to", "ed@example.org", "--now", NOW][..],
        &["send", "--now", NOW][..],
    ] {
        run(&mut under_open_umask(&site, args)).success();
    }
    let outbox = site.path("mail/outbox");
    assert_eq!(mode(&outbox), 0o700, "the outbox folder");
    let files: Vec<_> = std::fs::read_dir(&outbox)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 3);
    for file in files {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
}

#[test]
fn public_urls_with_credentials_are_refused_and_cleartext_ones_lose_one_click() {
    let with_password = Site::with_mail()
        .public_url("https://admin:hunter2@news.example.org/")
        .create();
    let in_base_url = Site::with_mail().create();
    in_base_url.replace_in_config(
        "base_url = \"https://blog.example.org\"",
        "base_url = \"https://admin:hunter2@blog.example.org\"",
    );
    for (site, key) in [
        (&with_password, "server.public_url"),
        (&in_base_url, "site.base_url"),
    ] {
        let out = run(&mut site.newsletter(["check"])).exit_code(1);
        assert!(
            out.stderr.contains(&format!("`{key}`")) && !out.stderr.contains("hunter2"),
            "{out}"
        );
    }

    // http:// off loopback: a warning, and mail without the one-click header.
    let site = Site::with_mail()
        .public_url("http://news.example.org/")
        .subscribers(&["ann@example.org"])
        .create();
    let check = run(&mut site.newsletter(["check"])).success();
    assert!(
        check.stderr.contains("clear text") && check.stderr.contains("List-Unsubscribe-Post"),
        "{check}"
    );
    let sent = run(&mut site.newsletter(["send", "--now", NOW])).success();
    assert!(sent.stderr.contains("clear text"), "{sent}");
    let file = std::fs::read_dir(site.path("outbox"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mail = common::smtp::mail_file(&file);
    assert!(
        mail.header("List-Unsubscribe")
            .contains("http://news.example.org/unsubscribe/"),
        "{mail:?}"
    );
    assert!(
        mail.headers_named("List-Unsubscribe-Post").is_empty(),
        "{mail:?}"
    );
}

#[test]
fn no_layout_publishes_the_store_the_config_or_the_key() {
    let site = Site::with_mail().subscribers(&["ann@example.org"]).create();
    #[cfg(unix)]
    std::os::unix::fs::symlink(site.root(), site.path("site-link")).unwrap();
    for (output, names) in [
        (".", "the store"),
        ("./public/..", "the store"),
        ("site-link", "the store"),
    ] {
        site.replace_in_config(
            "output_dir = \"public\"",
            &format!("output_dir = {output:?}"),
        );
        for args in [vec!["check"], vec!["serve", "--listen", "127.0.0.1:0"]] {
            let out = run(&mut site.newsletter(&args)).exit_code(1);
            assert!(
                out.stderr.contains("`feeds.output_dir`") && out.stderr.contains(names),
                "{output}: {out}"
            );
        }
        site.replace_in_config(
            &format!("output_dir = {output:?}"),
            "output_dir = \"public\"",
        );
    }
    let out = run(&mut site.newsletter(["build", "--output", ".", "--now", NOW])).exit_code(1);
    assert!(out.stderr.contains("`--output`"), "{out}");
    assert!(!site.path("atom.xml").exists());

    // A DKIM key or templates kept in the output folder.
    site.write("public/keys/dkim.pem", "not a key");
    site.append_config(
        "[email.dkim]\nselector = \"s\"\ndomain = \"blog.example.org\"\nkey_file = \"public/keys/dkim.pem\"\n",
    );
    let out = run(&mut site.newsletter(["check"])).exit_code(1);
    assert!(out.stderr.contains("DKIM private key"), "{out}");
}

#[test]
fn serve_never_answers_the_store_even_through_a_hard_link() {
    let port = free_port();
    let site = Site::with_mail()
        .served_at(&port)
        .subscribers(&["ann@example.org"])
        .create();
    site.build();
    std::fs::hard_link(site.path("newsletter.db"), site.path("public/backup.db")).unwrap();
    std::fs::hard_link(site.path("config.toml"), site.path("public/settings.txt")).unwrap();
    let server = common::server::start(&site, port);
    let http = client();
    for path in ["/backup.db", "/settings.txt"] {
        let answer = http.get(server.url(path)).send().unwrap();
        assert_eq!(answer.status(), 404, "{path}");
    }
    assert_eq!(
        http.get(server.url("/atom.xml")).send().unwrap().status(),
        200
    );
}

#[test]
fn a_store_behind_a_dangling_link_or_an_outbox_in_the_output_folder_is_refused() {
    let port = free_port();
    let site = Site::with_mail().served_at(&port).create();
    site.build();
    // The store's path a link to a file not there yet, in the output folder.
    std::os::unix::fs::symlink("public/data.db", site.path("newsletter.db")).unwrap();
    let out = run(&mut site.newsletter(["check"])).exit_code(1);
    assert!(out.stderr.contains("the store"), "{out}");
    let out = run(&mut site.newsletter(["serve", "--listen", "127.0.0.1:0"])).exit_code(1);
    assert!(out.stderr.contains("the store"), "{out}");
    assert!(!site.path("public/data.db-wal").exists());
    std::fs::remove_file(site.path("newsletter.db")).unwrap();

    site.replace_in_config("[email]\n", "[email]\noutbox = \"public/outbox\"\n");
    let out = run(&mut site.newsletter(["check"])).exit_code(1);
    assert!(out.stderr.contains("the outbox"), "{out}");
}
