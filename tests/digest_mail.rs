//! The digest as its readers' software sees it: DKIM signatures checked by
//! dkimpy (`tests/dkim_verify.py`), headers and MIME parts read by Python's
//! `email` package (`tests/mail_dump.py`), the HTML part read by lxml. Each
//! test builds its own site in a temp dir and runs the real binary with
//! `--now`.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::mail_site::MailSite;
use common::smtp::{Mail, SmtpServer, count_eml, mail_file};
use common::{NOW, Run, Site, corpus_dir, manifest_dir, python, run};
use serde::Deserialize;

const SECRET: &str = "digest-mail-test-secret";
const BASE: &str = "https://blog.example.org";
const SITE_TITLE: &str = "Fixture Blog";

// ---------------------------------------------------------------------------
// Sites, posts, subscribers, runs
// ---------------------------------------------------------------------------

/// The fixture blog with mail settings but none of its posts: base URL
/// https://blog.example.org, permalinks `/posts/:year/:month/:day/:slug/`,
/// the project's templates, every post a test writes new on the first run.
fn mail_site() -> MailSite {
    Site::with_mail().without_posts().first_run_posts(10)
}

/// Writes `content/<name>.md`: YAML front matter `front` (lines), then `body`.
fn post(site: &Site, name: &str, front: &str, body: &str) {
    site.write(
        &format!("content/{name}.md"),
        format!("---\n{front}\n---\n\n{body}\n"),
    );
}

/// Copies a post of the Prometheus blog into the site's content.
fn corpus_post(site: &Site, file: &str) {
    let text = std::fs::read(corpus_dir().join(file))
        .unwrap_or_else(|e| panic!("corpus post {file}: {e}"));
    site.write(&format!("content/{file}"), text);
}

fn permalink(date: &str, slug: &str) -> String {
    format!("{BASE}/posts/{}/{slug}/", date.replace('-', "/"))
}

/// `newsletter ARGS --now NOW` with a fixed token secret.
fn newsletter_at(site: &Site, args: &[&str]) -> Run {
    let mut all = args.to_vec();
    all.extend(["--now", NOW]);
    run(site.newsletter(all).env("NEWSLETTER_SECRET", SECRET))
}

fn send(site: &Site) -> Run {
    newsletter_at(site, &["send"])
}

/// The `.eml` files in `dir`, sorted by name.
fn eml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Every message in the site's outbox, parsed by `tests/mail_dump.py`.
fn outbox(site: &Site) -> Vec<Mail> {
    eml_files(&site.path("outbox"))
        .iter()
        .map(|f| mail_file(f))
        .collect()
}

/// Panics unless Python's `email` parser (policy.default) found no defect in
/// the message at `path` (a file, or a maildir of them) nor in any of its
/// header values.
#[track_caller]
fn assert_no_defects(path: &Path) {
    let mut command = Command::new(python());
    command.arg(manifest_dir().join("tests/mail_dump.py"));
    if path.is_dir() {
        command.arg(path);
    } else {
        command.arg("--file").arg(path);
    }
    let out = run(&mut command);
    assert_eq!(out.code, Some(0), "mail_dump.py failed\n{out}");
    let value: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    let mails = match value {
        serde_json::Value::Array(mails) => mails,
        one => vec![one],
    };
    assert!(!mails.is_empty(), "no message at {}", path.display());
    for mail in &mails {
        let file = mail["file"].as_str().unwrap_or("?");
        let defects = mail["defects"].as_array().expect("defects");
        assert!(defects.is_empty(), "{file}: {defects:?}");
        for (name, values) in mail["headers"].as_object().expect("headers") {
            for value in values.as_array().unwrap() {
                let defects = value["defects"].as_array().expect("header defects");
                assert!(
                    defects.is_empty(),
                    "{file}: header {name}: {:?}: {defects:?}",
                    value["raw"]
                );
            }
        }
    }
}

/// The address in each message's `To` (`Name <address>` or `address`), sorted.
fn addressees(mails: &[Mail]) -> Vec<String> {
    let mut to: Vec<String> = mails
        .iter()
        .map(|m| {
            let to = m.header("To");
            to.rsplit_once('<')
                .and_then(|(_, rest)| rest.strip_suffix('>'))
                .unwrap_or(to)
                .to_string()
        })
        .collect();
    to.sort();
    to
}

/// The https link in a message's List-Unsubscribe header.
#[track_caller]
fn unsubscribe_url(mail: &Mail) -> String {
    let header = mail.header("List-Unsubscribe");
    header
        .split(['<', '>'])
        .find(|part| part.starts_with("https://"))
        .unwrap_or_else(|| panic!("{}: no https URL in {header}", mail.file))
        .to_string()
}

/// The raw header section of a message file (up to the first empty line).
fn raw_header_section(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| bytes.windows(2).position(|w| w == b"\n\n"))
        .unwrap_or_else(|| panic!("{}: no end of headers", path.display()));
    bytes[..end].to_vec()
}

// ---------------------------------------------------------------------------
// DKIM with dkimpy
// ---------------------------------------------------------------------------

/// What `tests/dkim_verify.py verify` says of one message.
#[derive(Debug, Deserialize)]
struct Verified {
    file: String,
    /// One per `DKIM-Signature`, top first.
    signatures: Vec<Signature>,
}

/// dkimpy's verdict on one signature.
#[derive(Debug, Deserialize)]
struct Signature {
    verified: bool,
    error: Option<String>,
    tags: BTreeMap<String, String>,
    signed_headers: Vec<String>,
    lookups: Vec<String>,
}

/// Writes a new key pair for `kind` ("rsa" or "ed25519"): the private key
/// to `STEM.pem` in the site, its DNS TXT record to `STEM.txt`.
fn dkim_genkey(site: &Site, kind: &str, stem: &str) {
    let out = run(Command::new(python())
        .arg(manifest_dir().join("tests/dkim_verify.py"))
        .args(["genkey", "--type", kind, "--private"])
        .arg(site.path(&format!("{stem}.pem")))
        .arg("--record")
        .arg(site.path(&format!("{stem}.txt"))));
    assert_eq!(out.code, Some(0), "dkim_verify.py genkey failed\n{out}");
}

/// dkimpy's verdict on each message, the DNS answering for each
/// `(selector, stem)` of `keys` the record in the site's `STEM.txt` at
/// SELECTOR._domainkey.blog.example.org.
fn dkim_verify(site: &Site, keys: &[(&str, &str)], files: &[PathBuf]) -> Vec<Verified> {
    assert!(!files.is_empty(), "no message to verify");
    let mut command = Command::new(python());
    command
        .arg(manifest_dir().join("tests/dkim_verify.py"))
        .args(["verify", "--domain", "blog.example.org"]);
    for (selector, stem) in keys {
        command.arg("--key").arg(format!(
            "{selector}={}",
            site.path(&format!("{stem}.txt")).display()
        ));
    }
    let out = run(command.args(files));
    assert_eq!(out.code, Some(0), "dkim_verify.py verify failed\n{out}");
    let results: Vec<Verified> = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("dkim_verify.py printed bad JSON ({e})\n{out}"));
    assert_eq!(results.len(), files.len(), "one result per message\n{out}");
    results
}

/// The headers every signature covers, each listed once more than the
/// message has it (over-signed), so one added in transit breaks it.
const OVER_SIGNED: [&str; 10] = [
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "mime-version",
    "content-type",
];

/// Checks a message's good signatures: as many as `expected`, each
/// verified, made by its `(selector, algorithm)` for the site's domain,
/// its key looked up where a receiver would, over-signing [`OVER_SIGNED`].
#[track_caller]
fn assert_good_signatures(result: &Verified, expected: &[(&str, &str)]) {
    let made: Vec<(&str, &str)> = result
        .signatures
        .iter()
        .map(|s| {
            (
                s.tags.get("s").map_or("", String::as_str),
                s.tags.get("a").map_or("", String::as_str),
            )
        })
        .collect();
    assert_eq!(made, expected, "{}: {result:#?}", result.file);
    for (signature, (selector, _)) in result.signatures.iter().zip(expected) {
        assert!(
            signature.verified,
            "{}: dkimpy rejected the {selector} signature: {:?}\n{result:#?}",
            result.file, signature.error
        );
        assert_eq!(
            signature.tags.get("d").map(String::as_str),
            Some("blog.example.org")
        );
        assert_eq!(
            signature
                .lookups
                .iter()
                .map(|l| l.trim_end_matches('.'))
                .collect::<Vec<_>>(),
            [format!("{selector}._domainkey.blog.example.org")]
        );
        for header in OVER_SIGNED {
            let times = signature
                .signed_headers
                .iter()
                .filter(|h| *h == header)
                .count();
            assert_eq!(
                times, 2,
                "{}: h= lists {header} {times} times, not twice: {:?}",
                result.file, signature.signed_headers
            );
        }
    }
}

/// Whether any signature of the message verified.
fn any_verified(result: &Verified) -> bool {
    result.signatures.iter().any(|s| s.verified)
}

/// A copy of the message at `from`, written to `to` in the site, with one
/// byte changed in the value of the header `name` (at `offset` bytes into
/// the value). Returns the header line before and after.
fn tamper_header(from: &Path, to: &Path, name: &str, offset: usize) -> (String, String) {
    let mut bytes = std::fs::read(from).unwrap();
    let needle = format!("\n{name}: ");
    let header_end = raw_header_section(from).len();
    let start = bytes[..header_end]
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
        .unwrap_or_else(|| panic!("{}: no {name} header", from.display()))
        + needle.len();
    let line_end = start + bytes[start..].iter().position(|&b| b == b'\r').unwrap();
    let before = String::from_utf8_lossy(&bytes[start..line_end]).into_owned();
    let at = start + offset;
    assert!(at < line_end, "{name}: {before:?} is shorter than {offset}");
    bytes[at] = if bytes[at] == b'X' { b'Y' } else { b'X' };
    let after = String::from_utf8_lossy(&bytes[start..line_end]).into_owned();
    std::fs::write(to, bytes).unwrap();
    (before, after)
}

#[test]
fn rsa_dkim_signatures_verify_with_dkimpy_and_cover_list_unsubscribe() {
    let server = SmtpServer::start(&[]);
    let site = mail_site()
        .email("reply_to = \"editor@blog.example.org\"")
        .email("unsubscribe_mailto = \"leave@blog.example.org\"")
        .dkim("mail", "blog.example.org", "dkim.pem")
        .smtp(server.config(""))
        .create();
    dkim_genkey(&site, "rsa", "dkim");
    assert!(
        site.read_text("dkim.pem")
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
    post(
        &site,
        "2026-11-20-signed",
        "title: \"Signed and sealed\"",
        "A post in a signed digest, with a [link](/about/).\n\n<!-- more -->\n\nThe rest.",
    );
    post(
        &site,
        "2026-11-19-grusse",
        "title: \"Grüße – «newsletter» 🚀\"",
        "Non-ASCII in the body too: naïve café, 日本語.",
    );
    let readers = ["ann@example.net", "bob@example.net", "cy@example.com"];
    site.subscribe(&readers);

    let out = send(&site).success();
    assert!(out.stdout.contains("3 sent, 0 failed, 0 pending"), "{out}");
    assert_eq!(server.recipients(), readers);

    let files = eml_files(&server.maildir);
    assert_eq!(files.len(), 3);
    let results = dkim_verify(&site, &[("mail", "dkim")], &files);
    assert_eq!(results.len(), 3);
    for result in &results {
        assert_good_signatures(result, &[("mail", "rsa-sha256")]);
        let reply_to = result.signatures[0]
            .signed_headers
            .iter()
            .filter(|h| *h == "reply-to")
            .count();
        assert_eq!(
            reply_to, 2,
            "{}: Reply-To is set but not over-signed",
            result.file
        );
    }

    // An untouched copy still verifies; a copy with one byte of the
    // List-Unsubscribe header changed (the unsubscribe token) does not, nor
    // one whose body changed.
    let copy = site.path("copy.eml");
    std::fs::copy(&files[0], &copy).unwrap();
    let tampered = site.path("tampered.eml");
    let (before, after) = tamper_header(&files[0], &tampered, "List-Unsubscribe", 40);
    assert_ne!(before, after);
    assert!(before.starts_with("<https://blog.example.org/unsubscribe/"));
    let body = site.path("body.eml");
    {
        let mut bytes = std::fs::read(&files[0]).unwrap();
        let body_start = raw_header_section(&files[0]).len();
        let at = body_start
            + bytes[body_start..]
                .windows(13)
                .position(|w| w == b"signed digest")
                .expect("the excerpt in the body");
        bytes[at] = b'S';
        std::fs::write(&body, bytes).unwrap();
    }
    let results = dkim_verify(&site, &[("mail", "dkim")], &[copy, tampered, body]);
    assert_good_signatures(&results[0], &[("mail", "rsa-sha256")]);
    assert!(
        !any_verified(&results[1]),
        "a List-Unsubscribe changed after signing ({before:?} -> {after:?}) still verifies"
    );
    assert!(results[1].signatures[0].error.is_some());
    assert!(
        !any_verified(&results[2]),
        "a body changed after signing still verifies"
    );
}

#[test]
fn ed25519_dkim_signatures_verify_in_the_outbox_and_in_the_preview() {
    let site = mail_site()
        .dkim("mail", "blog.example.org", "dkim.pem")
        .create();
    dkim_genkey(&site, "ed25519", "dkim");
    post(
        &site,
        "2026-11-20-edwards",
        "title: \"Curves ahead\"",
        "Signed with Ed25519.",
    );
    site.subscribe(&["ann@example.net", "bob@example.net"]);

    newsletter_at(&site, &["preview", "--output", "pv"]).success();
    let preview = site.path("pv/digest.eml");
    let out = send(&site).success();
    assert!(out.stdout.contains("2 sent"), "{out}");
    let mut files = eml_files(&site.path("outbox"));
    assert_eq!(files.len(), 2);
    files.push(preview);
    let results = dkim_verify(&site, &[("mail", "dkim")], &files);
    assert_eq!(results.len(), 3);
    for result in &results {
        assert_good_signatures(result, &[("mail", "ed25519-sha256")]);
    }

    let tampered = site.path("tampered.eml");
    let (before, after) = tamper_header(&files[0], &tampered, "List-Unsubscribe-Post", 20);
    assert_eq!(before, "List-Unsubscribe=One-Click");
    let results = dkim_verify(&site, &[("mail", "dkim")], &[tampered]);
    assert!(
        !any_verified(&results[0]),
        "List-Unsubscribe-Post changed after signing ({after:?}) still verifies"
    );
}

#[test]
fn an_rsa_and_an_ed25519_key_both_sign_every_message() {
    let server = SmtpServer::start(&[]);
    let site = mail_site()
        .dkim("rsa", "blog.example.org", "rsa.pem")
        .dkim("ed", "blog.example.org", "ed.pem")
        .smtp(server.config(""))
        .create();
    dkim_genkey(&site, "rsa", "rsa");
    dkim_genkey(&site, "ed25519", "ed");
    post(
        &site,
        "2026-11-20-both",
        "title: \"Belt and braces\"",
        "Signed twice: receivers that check only RSA still pass it.",
    );
    site.subscribe(&["ann@example.net", "bob@example.net"]);
    let out = send(&site).success();
    assert!(out.stdout.contains("2 sent"), "{out}");
    newsletter_at(&site, &["preview", "--output", "pv"]).success();
    let mut files = eml_files(&server.maildir);
    assert_eq!(files.len(), 2);
    files.push(site.path("pv/digest.eml"));
    let keys = [("rsa", "rsa"), ("ed", "ed")];
    for result in dkim_verify(&site, &keys, &files) {
        assert_good_signatures(&result, &[("rsa", "rsa-sha256"), ("ed", "ed25519-sha256")]);
    }
    // A receiver that knows only one of the keys still finds a signature
    // that verifies.
    for key in keys {
        let results = dkim_verify(&site, &[key], &files[..1]);
        let verified: Vec<&str> = results[0]
            .signatures
            .iter()
            .filter(|s| s.verified)
            .map(|s| s.tags["s"].as_str())
            .collect();
        assert_eq!(verified, [key.0]);
    }
}

#[test]
fn the_confirmation_request_from_serve_is_signed_by_both_keys_too() {
    let port = common::server::free_port();
    let site = Site::with_mail()
        .served_at(&port)
        .dkim("rsa", "blog.example.org", "rsa.pem")
        .dkim("ed", "blog.example.org", "ed.pem")
        .create();
    dkim_genkey(&site, "rsa", "rsa");
    dkim_genkey(&site, "ed25519", "ed");
    let server = common::server::start(&site, port);
    let answer = common::server::client()
        .post(server.url("/subscribe"))
        .form(&[("email", "ann@example.net")])
        .send()
        .unwrap();
    assert_eq!(answer.status(), 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let files = loop {
        let files = eml_files(&site.path("outbox"));
        if !files.is_empty() {
            break files;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no confirmation request"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let results = dkim_verify(&site, &[("rsa", "rsa"), ("ed", "ed")], &files);
    assert_good_signatures(
        &results[0],
        &[("rsa", "rsa-sha256"), ("ed", "ed25519-sha256")],
    );
    for signature in &results[0].signatures {
        let auto = signature
            .signed_headers
            .iter()
            .filter(|h| *h == "auto-submitted")
            .count();
        assert_eq!(auto, 2, "Auto-Submitted not over-signed: {signature:?}");
    }
}

/// The number of digests in the site's store (Python's sqlite3).
fn digests_in_store(site: &Site) -> String {
    let out = run(Command::new(python())
        .args([
            "-c",
            "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT count(*) FROM digests').fetchone()[0])",
        ])
        .arg(site.path("newsletter.db")));
    assert_eq!(out.code, Some(0), "{out}");
    out.stdout.trim().to_string()
}

#[test]
fn a_key_that_cannot_sign_is_found_before_anything_is_recorded() {
    let site = mail_site()
        .dkim("mail", "blog.example.org", "dkim.pem")
        .create();
    post(&site, "2026-11-20-keyed", "title: \"Keyed\"", "A post.");
    site.subscribe(&["ann@example.net"]);
    site.write("dkim.pem", "junk\n");
    for args in [&["check"][..], &["send", "--dry-run"], &["send"]] {
        let out = if args == ["check"] {
            run(&mut site.newsletter(["check"]))
        } else {
            newsletter_at(&site, args)
        };
        assert_eq!(out.code, Some(1), "{args:?}\n{out}");
        assert!(out.stderr.contains("dkim.pem"), "{args:?}\n{out}");
    }
    assert_eq!(digests_in_store(&site), "0", "a digest was recorded");
    assert_eq!(count_eml(&site.path("outbox")), 0);

    // Fixed, the digest goes out as if nothing had happened.
    dkim_genkey(&site, "ed25519", "dkim");
    let out = send(&site).success();
    assert!(out.stdout.contains("1 sent"), "{out}");
    assert_eq!(digests_in_store(&site), "1");
}

#[test]
fn long_names_and_titles_never_make_a_line_a_relay_would_break() {
    let long = "W".repeat(2000);
    let site = mail_site()
        .site_title(&long)
        .dkim("mail", "blog.example.org", "dkim.pem")
        .create();
    dkim_genkey(&site, "rsa", "dkim");
    post(
        &site,
        "2026-11-20-long",
        &format!("title: \"{long}\""),
        "A post.",
    );
    site.write(
        "readers.csv",
        format!("email,name\nann@example.net,{long}\n"),
    );
    run(&mut site.newsletter(["subscribers", "import", "readers.csv"])).success();
    send(&site).success();
    let files = eml_files(&site.path("outbox"));
    assert_eq!(files.len(), 1);
    let head = raw_header_section(&files[0]);
    for line in head.split(|&b| b == b'\n') {
        assert!(
            line.len() <= 999,
            "a header line of {} octets: {}",
            line.len(),
            String::from_utf8_lossy(&line[..80])
        );
    }
    // The subject whole (encoded, so that it folds), the name cut.
    let mail = mail_file(&files[0]);
    assert!(
        mail.header("Subject").contains(&long),
        "{}",
        mail.header("Subject")
    );
    let to = mail.header("To");
    assert!(to.contains('…') && to.matches('W').count() == 100, "{to}");
    let results = dkim_verify(&site, &[("mail", "dkim")], &files);
    assert_good_signatures(&results[0], &[("mail", "rsa-sha256")]);
}

#[test]
fn check_warns_when_no_key_signs_for_the_from_domain() {
    let site = mail_site()
        .dkim("mail", "elsewhere.example.net", "dkim.pem")
        .create();
    dkim_genkey(&site, "ed25519", "dkim");
    let out = run(&mut site.newsletter(["check"])).success();
    assert!(
        out.stderr
            .contains("no [email.dkim] key signs for blog.example.org"),
        "{out}"
    );
    let aligned = mail_site().dkim("mail", "example.org", "dkim.pem").create();
    dkim_genkey(&aligned, "ed25519", "dkim");
    let out = run(&mut aligned.newsletter(["check"])).success();
    assert!(!out.stderr.contains("[email.dkim]"), "{out}");
}

/// A copy of the message at `from`, written to `to`, with `line` put on
/// top of its headers, as a relay (or an attacker replaying it) could.
fn header_on_top(from: &Path, to: &Path, line: &str) {
    let mut bytes = format!("{line}\r\n").into_bytes();
    bytes.extend(std::fs::read(from).unwrap());
    std::fs::write(to, bytes).unwrap();
}

#[test]
fn a_header_added_or_changed_in_transit_breaks_both_signatures() {
    let site = mail_site()
        .dkim("rsa", "blog.example.org", "rsa.pem")
        .dkim("ed", "blog.example.org", "ed.pem")
        .create();
    dkim_genkey(&site, "rsa", "rsa");
    dkim_genkey(&site, "ed25519", "ed");
    post(
        &site,
        "2026-11-20-sealed",
        "title: \"Sealed\"",
        "Nobody adds a header to this.",
    );
    site.subscribe(&["ann@example.net"]);
    send(&site).success();
    let signed = eml_files(&site.path("outbox")).remove(0);
    let raw = String::from_utf8(std::fs::read(&signed).unwrap()).unwrap();
    assert!(
        raw.contains("\r\nContent-Type: multipart/alternative;"),
        "{raw}"
    );

    let mut attacks: Vec<(String, PathBuf)> = Vec::new();
    for (i, line) in [
        "From: \"Blog security team\" <security@evil.example>",
        "Subject: Your subscription expires today: renew at https://evil.example/",
        "To: everyone@evil.example",
        "Reply-To: refunds@evil.example",
        "Content-Type: text/html; charset=utf-8",
        "MIME-Version: 1.0",
        "List-Unsubscribe: <https://evil.example/unsubscribe>",
    ]
    .into_iter()
    .enumerate()
    {
        let to = site.path(&format!("added-{i}.eml"));
        header_on_top(&signed, &to, line);
        attacks.push((format!("added on top: {line}"), to));
    }
    // Content-Type changed in place: the parts read as attachments.
    let changed = site.path("content-type.eml");
    std::fs::write(
        &changed,
        raw.replacen(
            "\r\nContent-Type: multipart/alternative;",
            "\r\nContent-Type: multipart/mixed;",
            1,
        ),
    )
    .unwrap();
    attacks.push(("Content-Type changed to multipart/mixed".into(), changed));

    let mut files = vec![signed.clone()];
    files.extend(attacks.iter().map(|(_, f)| f.clone()));
    let results = dkim_verify(&site, &[("rsa", "rsa"), ("ed", "ed")], &files);
    assert_good_signatures(
        &results[0],
        &[("rsa", "rsa-sha256"), ("ed", "ed25519-sha256")],
    );
    for ((attack, _), result) in attacks.iter().zip(&results[1..]) {
        assert_eq!(result.signatures.len(), 2, "{attack}");
        for signature in &result.signatures {
            assert!(
                !signature.verified,
                "{attack}: the {} signature still verifies",
                signature.tags["s"]
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Subject and headers
// ---------------------------------------------------------------------------

#[test]
fn a_non_ascii_title_gives_an_rfc_2047_subject_that_decodes_exactly() {
    // No email.from: the default From carries the (non-ASCII) site title.
    let site = mail_site()
        .site_title("Café «Blog»")
        .without_from()
        .create();
    let title = "Grüße – «newsletter» 🚀";
    post(
        &site,
        "2026-11-20-grusse",
        &format!("title: \"{title}\""),
        "Hallo.",
    );
    site.subscribe(&["ann@example.net"]);
    send(&site).success();

    let files = eml_files(&site.path("outbox"));
    assert_eq!(files.len(), 1);
    let headers = raw_header_section(&files[0]);
    assert!(
        headers.is_ascii(),
        "the header section is not ASCII:\n{}",
        String::from_utf8_lossy(&headers)
    );
    let mail = mail_file(&files[0]);
    let raw_subject = &mail.headers_named("Subject")[0].raw;
    assert!(
        raw_subject.to_ascii_lowercase().contains("=?utf-8?"),
        "not RFC 2047: {raw_subject}"
    );
    assert_eq!(mail.header("Subject"), format!("Café «Blog»: {title}"));
    let from = mail.header("From");
    assert!(
        from.contains("Café «Blog»") && from.ends_with("<newsletter@blog.example.org>"),
        "{from}"
    );
    assert!(mail.part("text/html").contains(title));
    assert!(mail.part("text/plain").contains(title));
    assert_no_defects(&files[0]);
}

#[test]
fn line_breaks_in_titles_cannot_add_headers_or_recipients() {
    let server = SmtpServer::start(&[]);
    let site = mail_site()
        .digest("subject = \"{{ posts[0].title }} | {{ posts[1].title }}\"")
        .smtp(server.config(""))
        .create();
    // YAML escapes: a real CR LF, and bare LFs with an empty line (which
    // would end the header section).
    post(
        &site,
        "2026-11-20-crlf",
        r#"title: "Hi\r\nBcc: evil@example.com""#,
        "First.",
    );
    post(
        &site,
        "2026-11-19-lf",
        r#"title: "Hello\nCc: evil2@example.com\n\nX-Injected: yes""#,
        "Second.",
    );
    let readers = ["ann@example.net", "bob@example.net"];
    site.subscribe(&readers);
    let out = send(&site).success();
    assert!(out.stdout.contains("2 sent"), "{out}");

    assert_eq!(server.recipients(), readers, "someone else got mail");
    let mails = server.messages();
    assert_eq!(mails.len(), 2);
    for mail in &mails {
        assert_eq!(mail.envelope.rcpt_tos.len(), 1, "{}", mail.file);
        for name in ["Bcc", "Cc", "X-Injected"] {
            assert!(
                mail.headers_named(name).is_empty(),
                "{}: a {name} header: {:?}",
                mail.file,
                mail.headers_named(name)
            );
        }
        let to = mail.header("To");
        assert_eq!(to.matches('@').count(), 1, "{}: To: {to}", mail.file);
        assert!(to.contains(&mail.envelope.rcpt_tos[0]), "{to}");
        let subject = mail.header("Subject");
        assert!(
            !subject.contains(['\r', '\n']) && subject.starts_with("Hi"),
            "{}: {subject:?}",
            mail.file
        );
        assert!(subject.contains("Hello"), "{subject:?}");
        assert!(mail.content_type.starts_with("multipart/alternative"));
    }
    assert_no_defects(&server.maildir);
}

// ---------------------------------------------------------------------------
// The digest's content
// ---------------------------------------------------------------------------

/// What lxml sees in an HTML part.
#[derive(Debug, Deserialize)]
struct HtmlFacts {
    /// Every element's tag name, lower case, sorted, once each.
    tags: Vec<String>,
    /// Every URL-valued attribute: (tag, attribute, value).
    urls: Vec<(String, String, String)>,
    /// Every `<img>`: (src, alt), alt `None` when missing.
    imgs: Vec<(String, Option<String>)>,
    /// Every `<a>`: (href, its text with white space collapsed).
    links: Vec<(String, String)>,
    /// Every attribute whose name starts with "on": (tag, attribute).
    event_attrs: Vec<(String, String)>,
    /// The document's text, white space collapsed.
    text: String,
}

const HTML_FACTS: &str = r#"
import json, sys
import lxml.html

doc = lxml.html.document_fromstring(sys.stdin.buffer.read())
URL_ATTRS = ("href", "src", "srcset", "poster", "cite", "action", "background", "longdesc")
def words(s):
    return " ".join(s.split())
tags, urls, imgs, links, events = set(), [], [], [], []
for el in doc.iter():
    if not isinstance(el.tag, str):
        continue  # comments, processing instructions
    tag = el.tag.lower()
    tags.add(tag)
    for name, value in el.attrib.items():
        name = name.lower()
        if name.startswith("on"):
            events.append([tag, name])
        if name in URL_ATTRS:
            if name == "srcset":
                for candidate in value.split(","):
                    if candidate.strip():
                        urls.append([tag, name, candidate.split()[0]])
            else:
                urls.append([tag, name, value])
    if tag == "img":
        imgs.append([el.get("src", ""), el.get("alt")])
    if tag == "a":
        links.append([el.get("href", ""), words(el.text_content())])
json.dump({"tags": sorted(tags), "urls": urls, "imgs": imgs, "links": links,
           "event_attrs": events, "text": words(doc.text_content())}, sys.stdout)
"#;

fn html_facts(html: &str) -> HtmlFacts {
    let mut child = Command::new(python())
        .args(["-c", HTML_FACTS])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(html.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "lxml could not read the HTML: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// Permalinks of the posts of [`content_site`], newest first.
fn content_posts() -> Vec<(&'static str, String)> {
    vec![
        (
            "Tweets, pictures & <script>alert(1)</script>",
            permalink("2026-11-20", "embeds"),
        ),
        (
            "PromCon 2017 Recap",
            permalink("2017-09-04", "promcon-2017-recap"),
        ),
        (
            "Interview with Life360",
            permalink("2016-03-23", "interview-with-life360"),
        ),
    ]
}

/// A site with two Prometheus posts (a YouTube iframe before the marker;
/// root-relative images, one without alt) and one of ours with a tweet and
/// its script, a style block, a Vimeo iframe, relative links and images,
/// event handlers and a `javascript:` link before the marker, and a script
/// tag in its title. Sends to one reader and returns the message.
fn content_digest() -> (Site, Mail) {
    let site = mail_site().create();
    corpus_post(&site, "2017-09-04-promcon-2017-recap.md");
    corpus_post(&site, "2016-03-23-interview-with-life360.md");
    post(
        &site,
        "2026-11-20-embeds",
        "title: \"Tweets, pictures & <script>alert(1)</script>\"",
        r#"Our setup, in a picture: ![Architecture diagram](/img/diagram.png "The diagram")
and a sketch <img src="sketch.png"> from [our notes](notes/) and [about us](/about/).

<blockquote class="twitter-tweet" data-lang="en"><p lang="en" dir="ltr">Hello from a tweet <a href="https://twitter.com/hashtag/PromCon?src=hash">#PromCon</a></p>&mdash; Someone (@someone) <a href="https://twitter.com/someone/status/1234567890">November 19, 2026</a></blockquote>
<script async src="//platform.twitter.com/widgets.js" charset="utf-8"></script>

<style>p { color: red }</style>

<iframe src="https://player.vimeo.com/video/76979871" width="640" height="360"></iframe>

<p onclick="alert(3)">Click <a href="javascript:alert(2)" onmouseover="alert(4)">here</a>.</p>

<!-- more -->

SECRET-REST-OF-THE-POST, never in a digest."#,
    );
    site.subscribe(&["ann@example.net"]);
    let out = send(&site).success();
    assert!(out.stdout.contains("1 sent"), "{out}");
    let mut mails = outbox(&site);
    assert_eq!(mails.len(), 1);
    (site, mails.remove(0))
}

#[test]
fn the_html_part_is_safe_for_mail_clients_with_absolute_links_and_read_more() {
    let (_site, mail) = content_digest();
    assert!(mail.defects.is_empty(), "{:?}", mail.defects);
    let html = mail.part("text/html");
    let facts = html_facts(html);

    for tag in ["script", "style", "iframe", "object", "embed"] {
        assert!(
            !facts.tags.iter().any(|t| t == tag),
            "<{tag}> in the HTML part"
        );
    }
    assert!(
        facts.event_attrs.is_empty(),
        "event handlers: {:?}",
        facts.event_attrs
    );
    assert!(
        !html.to_ascii_lowercase().contains("javascript:"),
        "a javascript: URL survived"
    );
    for (tag, attr, url) in &facts.urls {
        assert!(
            url.starts_with("https://") || url.starts_with("http://") || url.starts_with("mailto:"),
            "<{tag} {attr}={url:?}> is not absolute"
        );
    }

    // The title with a script tag is text, not markup.
    assert!(
        facts
            .text
            .contains("Tweets, pictures & <script>alert(1)</script>"),
        "the escaped title is not shown as text"
    );

    // Each post: its title links to it, and a "Read more" link does too.
    for (title, url) in content_posts() {
        assert!(
            facts
                .links
                .iter()
                .any(|(href, text)| href == &url && text.contains("Read more")),
            "no \"Read more\" link to {url} ({title}); links: {:#?}",
            facts.links
        );
        assert!(
            facts
                .links
                .iter()
                .any(|(href, text)| href == &url && text == title),
            "the title {title:?} does not link to {url}"
        );
    }

    // The YouTube embed before the marker became a watch link.
    assert!(
        facts.links.iter().any(|(href, text)| href
            == "https://www.youtube.com/watch?v=4Pr-z8-r1eo"
            && text.contains("Watch the video")),
        "no \"Watch the video\" link to the YouTube video; links: {:#?}",
        facts.links
    );
    // The Vimeo iframe became a link to it.
    assert!(
        facts
            .urls
            .iter()
            .any(|(tag, _, url)| tag == "a" && url == "https://player.vimeo.com/video/76979871"),
        "the Vimeo iframe did not become a link"
    );
    // The tweet is a quote with its links; its script is gone.
    assert!(facts.text.contains("Hello from a tweet"));
    assert!(
        facts
            .links
            .iter()
            .any(|(href, _)| href == "https://twitter.com/someone/status/1234567890")
    );
    // Relative URLs resolved: root-relative against the base URL,
    // document-relative against the post's permalink.
    let embeds = permalink("2026-11-20", "embeds");
    for (tag, url) in [
        ("img", format!("{BASE}/img/diagram.png")),
        ("img", format!("{embeds}sketch.png")),
        ("a", format!("{embeds}notes/")),
        ("a", format!("{BASE}/about/")),
        (
            "img",
            format!("{BASE}/assets/blog/2016-03-23/life360_horizontal_logo_gradient_rgb.png"),
        ),
    ] {
        assert!(
            facts.urls.iter().any(|(t, _, u)| t == tag && u == &url),
            "no <{tag}> with {url}; URLs: {:#?}",
            facts.urls
        );
    }
    assert!(
        facts
            .imgs
            .iter()
            .any(|(src, alt)| src.ends_with("/img/diagram.png")
                && alt.as_deref() == Some("Architecture diagram")),
        "the Markdown image lost its alt: {:?}",
        facts.imgs
    );
    // Only the excerpt: nothing after the marker.
    assert!(!html.contains("SECRET-REST-OF-THE-POST"));
}

#[test]
fn every_image_in_the_html_part_has_a_non_empty_alt() {
    let (_site, mail) = content_digest();
    let facts = html_facts(mail.part("text/html"));
    assert!(facts.imgs.len() >= 3, "{:?}", facts.imgs);
    let bare: Vec<_> = facts
        .imgs
        .iter()
        .filter(|(_, alt)| alt.as_deref().is_none_or(|a| a.trim().is_empty()))
        .collect();
    assert!(bare.is_empty(), "images without alt text: {bare:#?}");
}

#[test]
fn the_text_part_has_every_post_url_and_the_unsubscribe_url_at_the_bottom() {
    let (_site, mail) = content_digest();
    let text = mail.part("text/plain");
    let mut last_post_url = 0;
    for (title, url) in content_posts() {
        let at = text
            .rfind(&url)
            .unwrap_or_else(|| panic!("{url} ({title}) not in the text part:\n{text}"));
        last_post_url = last_post_url.max(at);
    }
    assert!(text.contains("https://www.youtube.com/watch?v=4Pr-z8-r1eo"));
    assert!(!text.contains("SECRET-REST-OF-THE-POST"));
    assert!(
        !text.contains("platform.twitter.com"),
        "the tweet script leaked"
    );

    let unsubscribe = unsubscribe_url(&mail);
    let at = text
        .find(&unsubscribe)
        .unwrap_or_else(|| panic!("{unsubscribe} not in the text part:\n{text}"));
    assert!(
        at > last_post_url,
        "the unsubscribe link comes before the posts"
    );
    let tail: Vec<&str> = text
        .lines()
        .rev()
        .filter(|l| !l.trim().is_empty())
        .take(4)
        .collect();
    assert!(
        tail.iter().any(|l| l.contains(&unsubscribe)),
        "the unsubscribe link is not among the last lines: {tail:#?}"
    );
}

#[test]
fn posts_beyond_max_posts_are_linked_titles_without_excerpts() {
    let site = mail_site().digest("max_posts = 2").create();
    let posts = [
        ("2026-11-21", "one", "Post one"),
        ("2026-11-22", "two", "Post two"),
        ("2026-11-23", "three", "Post three"),
        ("2026-11-24", "four", "Post four"),
    ];
    for (date, slug, title) in posts {
        post(
            &site,
            &format!("{date}-{slug}"),
            &format!("title: \"{title}\""),
            &format!(
                "Excerpt-of-{slug} is what the digest shows.\n\n<!-- more -->\n\nRest-of-{slug}."
            ),
        );
    }
    site.subscribe(&["ann@example.net"]);
    send(&site).success();
    let mails = outbox(&site);
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(
        mail.header("Subject"),
        format!("{SITE_TITLE}: Post four and 3 more")
    );
    let html = mail.part("text/html");
    let text = mail.part("text/plain");
    let facts = html_facts(html);

    for (date, slug, title) in posts {
        let url = permalink(date, slug);
        assert!(
            facts
                .links
                .iter()
                .any(|(href, text)| href == &url && text == title),
            "{title} is not a link to {url}: {:#?}",
            facts.links
        );
        assert!(text.contains(&url), "{url} not in the text part");
        let excerpt = format!("Excerpt-of-{slug}");
        let shown = matches!(slug, "four" | "three");
        for (part, body) in [("HTML", html), ("text", text)] {
            assert_eq!(
                body.contains(&excerpt),
                shown,
                "{part} part: the excerpt of {title} should {}be there",
                if shown { "" } else { "not " }
            );
        }
        assert!(!html.contains(&format!("Rest-of-{slug}")));
        let read_more = facts
            .links
            .iter()
            .any(|(href, text)| href == &url && text.contains("Read more"));
        assert_eq!(read_more, shown, "Read more link to {title}");
    }
}

// ---------------------------------------------------------------------------
// preview
// ---------------------------------------------------------------------------

#[test]
fn preview_writes_three_files_and_records_nothing() {
    let site = mail_site().create();
    post(&site, "2026-11-20-first", "title: \"First post\"", "One.");
    post(&site, "2026-11-21-second", "title: \"Second post\"", "Two.");
    let readers = ["ann@example.net", "bob@example.net", "cy@example.com"];
    site.subscribe(&readers);

    let out = newsletter_at(&site, &["preview", "--output", "pv"]).success();
    for file in ["digest.html", "digest.txt", "digest.eml"] {
        assert!(
            site.path("pv").join(file).is_file(),
            "{file} missing\n{out}"
        );
        assert!(out.stdout.contains(file), "{out}");
    }
    let eml = site.path("pv/digest.eml");
    let mail = mail_file(&eml);
    assert!(
        mail.content_type.starts_with("multipart/alternative"),
        "{}",
        mail.content_type
    );
    let types: Vec<&str> = mail.parts.iter().map(|p| p.content_type.as_str()).collect();
    assert_eq!(types, ["text/plain", "text/html"]);
    assert_no_defects(&eml);
    let subject = mail.header("Subject").to_string();
    assert_eq!(subject, format!("{SITE_TITLE}: Second post and 1 more"));
    let normalize = |s: &str| {
        s.replace("\r\n", "\n")
            .lines()
            .map(str::trim_end)
            .collect::<Vec<_>>()
            .join("\n")
            .trim()
            .to_string()
    };
    assert_eq!(
        normalize(mail.part("text/html")),
        normalize(&site.read_text("pv/digest.html")),
        "digest.eml's HTML part is not digest.html"
    );
    assert_eq!(
        normalize(mail.part("text/plain")),
        normalize(&site.read_text("pv/digest.txt")),
        "digest.eml's text part is not digest.txt"
    );
    // Both posts are in both parts, not only the same in each.
    for (date, slug) in [("2026-11-21", "second"), ("2026-11-20", "first")] {
        for file in ["pv/digest.txt", "pv/digest.html"] {
            assert!(
                site.read_text(file).contains(&permalink(date, slug)),
                "{file} has no link to {slug}"
            );
        }
    }
    assert_eq!(count_eml(&site.path("outbox")), 0, "preview sent mail");

    // A second preview shows the same digest: the first recorded nothing.
    let first_text = site.read_text("pv/digest.txt");
    newsletter_at(&site, &["preview", "--output", "pv"]).success();
    assert_eq!(site.read_text("pv/digest.txt"), first_text);

    // The real send still sends that digest, as digest 1, to everyone.
    let out = send(&site).success();
    assert!(
        out.stdout.contains("digest 1 ") && out.stdout.contains("3 sent, 0 failed"),
        "{out}"
    );
    let mails = outbox(&site);
    assert_eq!(addressees(&mails), readers);
    for mail in &mails {
        assert_eq!(mail.header("Subject"), subject);
    }

    // Now the digest is recorded: nothing new, so the preview shows the
    // latest digest again, and says so.
    let again = newsletter_at(&site, &["preview", "--output", "pv2"]).success();
    assert!(
        again
            .stdout
            .contains("no post is new: previewing digest 1 again"),
        "{again}"
    );
    assert!(site.path("pv2/digest.eml").exists());
}

// ---------------------------------------------------------------------------
// A broken template
// ---------------------------------------------------------------------------

#[test]
fn a_broken_template_fails_the_send_naming_file_and_line_and_sends_nothing() {
    let site = mail_site().templates("my-templates").create();
    let good_html = std::fs::read_to_string(manifest_dir().join("templates/digest.html")).unwrap();
    let good_text = std::fs::read_to_string(manifest_dir().join("templates/digest.txt")).unwrap();
    site.write("my-templates/digest.txt", &good_text);
    // Line 8 of the copy (the end of the posts' loop) becomes a tag the parser rejects.
    let broken_line = 8;
    let mut lines: Vec<&str> = good_html.lines().collect();
    assert!(lines.len() > broken_line, "the template got short");
    lines[broken_line - 1] = "<p>{{ site.title | }}</p>";
    site.write("my-templates/digest.html", lines.join("\n") + "\n");

    post(
        &site,
        "2026-11-20-only",
        "title: \"The only post\"",
        "Text.",
    );
    let readers = ["ann@example.net", "bob@example.net"];
    site.subscribe(&readers);

    let failed = send(&site).failure();
    let needle = format!("digest.html:{broken_line}:");
    assert!(
        failed.stderr.contains(&needle),
        "the error does not name digest.html line {broken_line}\n{failed}"
    );
    assert!(!failed.stderr.contains("panicked"), "{failed}");
    assert_eq!(count_eml(&site.path("outbox")), 0, "something was sent");
    // --dry-run fails the same way: the template, not the run, is wrong.
    newsletter_at(&site, &["send", "--dry-run"]).failure();

    // Fixed, the next send sends digest 1 to everyone.
    site.write("my-templates/digest.html", &good_html);
    let out = send(&site).success();
    assert!(
        out.stdout.contains("digest 1 ") && out.stdout.contains("2 sent, 0 failed"),
        "{out}"
    );
    assert_eq!(addressees(&outbox(&site)), readers);
}

/// Python's own HMAC over a token's fields, as README and `src/token.rs`
/// describe tokens: `KEY.EXPIRES.` then HMAC-SHA256, keyed with the secret's
/// bytes, of `PURPOSE:KEY:EXPIRES`, in lower-case hex.
const PYTHON_TOKEN: &str = "import hashlib, hmac, sys
secret, purpose, key, expires = sys.argv[1:]
mac = hmac.new(secret.encode(), f'{purpose}:{key}:{expires}'.encode(), hashlib.sha256)
print(f'{key}.{expires}.{mac.hexdigest()}')";

/// The token Python computes for these fields.
fn python_token(secret: &str, purpose: &str, key: &str, expires: i64) -> String {
    let mut command = Command::new(python());
    command
        .args(["-c", PYTHON_TOKEN, secret, purpose, key])
        .arg(expires.to_string());
    run(&mut command).success().stdout.trim().to_string()
}

/// The token at the end of the one link in `text` that starts with `prefix`.
#[track_caller]
fn token_in(text: &str, prefix: &str) -> String {
    let links: Vec<&str> = text
        .split_whitespace()
        .filter(|w| w.starts_with(prefix))
        .collect();
    assert_eq!(links.len(), 1, "links to {prefix} in:\n{text}");
    links[0][prefix.len()..].to_string()
}

/// `token` with one character changed in its key, its expiry and its MAC.
fn altered(token: &str) -> [String; 3] {
    let swap = |c: char| if c == '0' { '1' } else { '0' };
    let mut first = token.chars();
    let key_changed = format!("{}{}", swap(first.next().unwrap()), first.as_str());
    let (head, tail) = token.split_at(token.find('.').unwrap() + 1);
    let mut expiry = tail.chars();
    let expiry_changed = format!("{head}{}{}", swap(expiry.next().unwrap()), expiry.as_str());
    let mut mac = token.to_string();
    let last = mac.pop().unwrap();
    mac.push(swap(last));
    [key_changed, expiry_changed, mac]
}

/// The tokens in a digest's unsubscribe and preference links and in a
/// sign-up's confirmation link are exactly those Python's `hmac` computes
/// from the secret, the purpose, the reader's key and the expiry, so a
/// change of format or key handling (which would void every link already
/// mailed) cannot pass unseen; and the server refuses each with one
/// character changed, and changes nobody's status for it.
#[test]
fn tokens_are_the_hmac_python_computes_and_one_changed_character_is_refused() {
    use common::server::{SECRET, cli, client, free_port, start};
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/");
    let site = Site::with_mail().public_url(&url).create();
    // With a topic, the mail links the preference page too.
    site.append_config("[[topics]]\nkey = \"rust\"\nlabel = \"Rust\"\ntags = [\"rust\"]");
    let key = "0a1b2c3d4e5f60718293";
    site.write(
        "readers.csv",
        format!("email,name,key\nann@example.net,Ann,{key}\n"),
    );
    cli(&site, &["subscribers", "import", "readers.csv"]).success();
    cli(&site, &["send", "--now", NOW]).success();

    let digest = outbox(&site);
    assert_eq!(addressees(&digest), ["ann@example.net"]);
    let text = digest[0].part("text/plain");
    let unsubscribe = token_in(text, &format!("{url}unsubscribe/"));
    let preferences = token_in(text, &format!("{url}preferences/"));
    assert_eq!(
        unsubscribe,
        python_token(SECRET, "unsubscribe", key, 0),
        "the unsubscribe token"
    );
    assert_eq!(
        preferences,
        python_token(SECRET, "preferences", key, 0),
        "the preference token"
    );
    assert!(
        digest[0]
            .header("List-Unsubscribe")
            .contains(&format!("<{url}unsubscribe/{unsubscribe}>")),
        "{:?}",
        digest[0].header("List-Unsubscribe")
    );

    // A sign-up's confirmation: its key is in the export, its expiry is
    // confirm_ttl (48 hours) after the server's clock, which starts at NOW.
    let server = start(&site, port);
    let http = client();
    let answer = http
        .post(server.url("/subscribe"))
        .form(&[("email", "bob@example.net")])
        .send()
        .unwrap();
    assert_eq!(answer.status(), 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let confirmation = loop {
        let mails = outbox(&site);
        if let Some(mail) = mails
            .into_iter()
            .find(|m| m.header("To") == "bob@example.net")
        {
            break mail;
        }
        assert!(std::time::Instant::now() < deadline, "no confirmation mail");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let confirm = token_in(confirmation.part("text/plain"), &format!("{url}confirm/"));
    let export = cli(&site, &["subscribers", "export"]).success().stdout;
    let mut rows = export.lines().map(|l| l.split(',').collect::<Vec<_>>());
    let header = rows.next().unwrap();
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let bob = rows
        .find(|r| r[column("email")] == "bob@example.net")
        .unwrap_or_else(|| panic!("bob is not in the export:\n{export}"));
    let bob_key = bob[column("key")];
    let expires: i64 = confirm.split('.').nth(1).unwrap().parse().unwrap();
    // 2026-11-27T00:00:00Z, 48 hours after NOW; the clock has run a little since.
    let due = 1_795_737_600;
    assert!(
        (due..due + 600).contains(&expires),
        "the confirmation expires at {expires}, not 48 hours after {NOW}"
    );
    assert_eq!(
        confirm,
        python_token(SECRET, "confirm", bob_key, expires),
        "the confirmation token"
    );

    for (route, token) in [
        ("unsubscribe", &unsubscribe),
        ("preferences", &preferences),
        ("confirm", &confirm),
    ] {
        for changed in altered(token) {
            for post in [false, true] {
                let link = server.url(&format!("/{route}/{changed}"));
                let answer = if post {
                    http.post(&link).body("List-Unsubscribe=One-Click")
                } else {
                    http.get(&link)
                }
                .send()
                .unwrap();
                assert_eq!(answer.status(), 400, "{route}/{changed} (POST: {post})");
                assert!(answer.text().unwrap().contains("not valid"));
            }
        }
        let genuine = http
            .get(server.url(&format!("/{route}/{token}")))
            .send()
            .unwrap();
        assert_eq!(genuine.status(), 200, "{route}/{token}");
    }
    assert_eq!(
        common::server::statuses(&site),
        [
            ("ann@example.net".to_string(), "active".to_string()),
            ("bob@example.net".to_string(), "pending".to_string())
        ]
    );
}
