//! The web archive of every mailing, and letters: what a reader of the
//! archive sees (feedparser and the Atom RELAX NG schema on its feed, lxml
//! on its pages, through `tests/archive_check.py`), what subscribers get
//! (Python's `email` on every message), and that no archive file names a
//! subscriber. Each test builds its own site and runs the real binary.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::mail_site::{MailSite, addresses};
use common::smtp::{Mail, SmtpServer, count_eml, eml_files, mail_file};
use common::{NOW, Run, Site, atom_schema, manifest_dir, python, run};
use serde::Deserialize;

const SECRET: &str = "archive-test-secret";
const BASE: &str = "https://blog.example.org";

#[derive(Debug, Deserialize)]
struct Archive {
    feed: Option<ArchiveFeed>,
    pages: std::collections::BTreeMap<String, Page>,
}

#[derive(Debug, Deserialize)]
struct ArchiveFeed {
    bozo: bool,
    error: Option<String>,
    valid: bool,
    errors: Vec<String>,
    links: Vec<FeedLink>,
    entries: Vec<ArchiveEntry>,
}

#[derive(Debug, Deserialize)]
struct FeedLink {
    rel: Option<String>,
    href: String,
}

#[derive(Debug, Deserialize)]
struct ArchiveEntry {
    title: String,
    link: String,
    id: String,
    summary: String,
}

#[derive(Debug, Deserialize)]
struct Page {
    title: Option<String>,
    text: String,
    links: Vec<Option<String>>,
    alternates: Vec<Alternate>,
}

#[derive(Debug, Deserialize)]
struct Alternate {
    #[serde(rename = "type")]
    mime: Option<String>,
    href: String,
}

impl Page {
    fn links_to(&self, url: &str) -> bool {
        self.links.iter().flatten().any(|l| l == url)
    }
}

fn read_archive(dir: &Path) -> Archive {
    let out = run(Command::new(python())
        .arg(manifest_dir().join("tests/archive_check.py"))
        .arg(dir)
        .arg(atom_schema()));
    assert_eq!(out.code, Some(0), "archive_check.py failed\n{out}");
    serde_json::from_str(&out.stdout).expect("JSON from archive_check.py")
}

/// The fixture blog with mail settings and none of its posts; every post
/// a test writes is new on the first run.
fn new_site() -> MailSite {
    Site::with_mail().without_posts().first_run_posts(10)
}

fn newsletter_at(site: &Site, args: &[&str]) -> Run {
    let mut all = args.to_vec();
    all.extend(["--now", NOW]);
    run(site.newsletter(all).env("NEWSLETTER_SECRET", SECRET))
}

fn post(site: &Site, name: &str, front: &str, body: &str) {
    site.write(
        &format!("content/{name}.md"),
        format!("---\n{front}\n---\n\n{body}\n"),
    );
}

/// Two posts for the digest, a letter and an email-only letter, all new.
fn posts(site: &Site) {
    post(
        site,
        "2026-11-20-first",
        "title: First news",
        "The first excerpt.\n\n<!-- more -->\n\nThe rest of the first.",
    );
    post(
        site,
        "2026-11-21-second",
        "title: Second news",
        "The second excerpt.\n\n<!-- more -->\n\nThe rest of the second.",
    );
    post(
        site,
        "2026-11-22-note",
        "title: A note from the team\nemail: letter",
        "Dear readers, the opening.\n\n<!-- more -->\n\nThe whole letter goes on: a closing paragraph only a letter carries.",
    );
    post(
        site,
        "2026-11-23-private",
        "title: Only for subscribers\nemail: only",
        "A message in no feed.\n\n<!-- more -->\n\nIts second half.",
    );
}

fn outbox(site: &Site) -> Vec<Mail> {
    eml_files(&site.path("outbox"))
        .iter()
        .map(|f| mail_file(f))
        .collect()
}

fn to_address(mail: &Mail) -> String {
    let to = mail.header("To");
    to.rsplit_once('<')
        .and_then(|(_, rest)| rest.strip_suffix('>'))
        .unwrap_or(to)
        .to_string()
}

/// Every file under `dir`, as (path, bytes).
fn files_under(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(here) = stack.pop() {
        for entry in std::fs::read_dir(&here).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    found
}

#[test]
fn letters_and_the_digest_go_out_once_each_and_the_archive_shows_them_naming_nobody() {
    let readers = addresses(3);
    let site = new_site().subscribers(&readers).create();
    posts(&site);

    let out = newsletter_at(&site, &["send"]).success();
    // Letters first, the oldest first, each a mailing of its own; then the digest.
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].starts_with("letter 1 \"A note from the team\": 3 sent"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("letter 2 \"Only for subscribers\": 3 sent"),
        "{out}"
    );
    assert!(lines[2].starts_with("digest 3 "), "{out}");
    // The progress lines name each mailing as the summary does.
    for progress in [
        "letter 1: delivering 3 messages",
        "letter 2: delivering 3 messages",
        "digest 3: delivering 3 messages",
    ] {
        assert!(out.stderr.contains(progress), "{out}");
    }

    let mails = outbox(&site);
    assert_eq!(mails.len(), 9, "three mailings to three readers");
    for reader in &readers {
        let mut subjects: Vec<&str> = mails
            .iter()
            .filter(|m| to_address(m) == *reader)
            .map(|m| m.header("Subject"))
            .collect();
        subjects.sort();
        assert_eq!(subjects.len(), 3, "{reader}: {subjects:?}");
        assert!(subjects.contains(&"A note from the team"), "{subjects:?}");
        assert!(subjects.contains(&"Only for subscribers"), "{subjects:?}");
    }
    let letter = mails
        .iter()
        .find(|m| m.header("Subject") == "A note from the team")
        .unwrap();
    // A letter is the whole post, not an excerpt.
    for part in ["text/plain", "text/html"] {
        let body = letter.part(part);
        assert!(body.contains("Dear readers, the opening."), "{body}");
        assert!(
            body.contains("a closing paragraph only a letter carries"),
            "{body}"
        );
    }
    let digest = mails
        .iter()
        .find(|m| m.header("Subject").contains("Second news"))
        .expect("the digest, named by its newest post");
    let digest_text = digest.part("text/plain");
    assert!(digest_text.contains("The first excerpt."), "{digest_text}");
    assert!(
        !digest_text.contains("The rest of the first."),
        "{digest_text}"
    );
    // Letters are not listed again in the digest.
    assert!(
        !digest_text.contains("A note from the team"),
        "{digest_text}"
    );
    assert!(
        !digest_text.contains("Only for subscribers"),
        "{digest_text}"
    );
    // Its "View in browser" link is its archive page, in both parts.
    let page_url = format!("{BASE}/archive/3/");
    assert!(
        digest_text.contains(&format!("View in browser: {page_url}")),
        "{digest_text}"
    );
    let html = digest.part("text/html");
    assert!(
        html.contains(&format!("href=\"{page_url}\"")) && html.contains("View in browser"),
        "{html}"
    );
    // The email-only letter links its archive page, not a permalink no page has.
    let private = mails
        .iter()
        .find(|m| m.header("Subject") == "Only for subscribers")
        .unwrap();
    assert!(
        private
            .part("text/html")
            .contains(&format!("{BASE}/archive/2/"))
    );

    // The archive, as feed readers and browsers see it.
    let archive = read_archive(&site.path("public/archive"));
    let feed = archive.feed.as_ref().expect("archive/atom.xml");
    assert!(!feed.bozo, "{:?}", feed.error);
    assert!(feed.valid, "the Atom schema refuses it: {:?}", feed.errors);
    let self_link = feed.links.iter().find(|l| l.rel.as_deref() == Some("self"));
    assert_eq!(
        self_link.map(|l| l.href.as_str()),
        Some(format!("{BASE}/archive/atom.xml").as_str())
    );
    let titles: Vec<&str> = feed.entries.iter().map(|e| e.title.as_str()).collect();
    assert_eq!(
        titles[1..],
        ["Only for subscribers", "A note from the team"]
    );
    assert!(titles[0].contains("Second news"), "{titles:?}");
    for (entry, n) in feed.entries.iter().zip([3, 2, 1]) {
        assert_eq!(entry.link, format!("{BASE}/archive/{n}/"));
        assert!(
            entry.id.starts_with("tag:blog.example.org,"),
            "{}",
            entry.id
        );
    }
    assert!(feed.entries[0].summary.contains("First news"));

    let index = &archive.pages["index.html"];
    for n in 1..=3 {
        assert!(index.links_to(&format!("{BASE}/archive/{n}/")), "{index:?}");
    }
    assert!(index.text.contains("First news") && index.text.contains("Second news"));
    assert!(
        index
            .alternates
            .iter()
            .any(|a| a.mime.as_deref() == Some("application/atom+xml")
                && a.href == format!("{BASE}/archive/atom.xml"))
    );
    let page = &archive.pages["3/index.html"];
    assert_eq!(page.title.as_deref(), Some(digest.header("Subject")));
    assert!(page.text.contains("The first excerpt."), "{page:?}");
    assert!(!page.text.contains("View in browser"), "{page:?}");
    // The unsubscribe line is a link to the sign-up form.
    assert!(page.links_to(&format!("{BASE}/subscribe")), "{page:?}");
    assert!(
        !page
            .links
            .iter()
            .flatten()
            .any(|l| l.contains("/unsubscribe/"))
    );
    let letter_page = &archive.pages["1/index.html"];
    assert!(
        letter_page
            .text
            .contains("a closing paragraph only a letter carries")
    );

    // No archive file holds any subscriber's address, name or token.
    let mut secrets: Vec<String> = Vec::new();
    for mail in &mails {
        secrets.push(to_address(mail));
        let unsubscribe = mail.header("List-Unsubscribe");
        let token = unsubscribe
            .split("/unsubscribe/")
            .nth(1)
            .and_then(|rest| rest.split('>').next())
            .expect("an unsubscribe link");
        secrets.push(token.to_string());
    }
    secrets.extend((0..readers.len()).map(|i| format!("Reader {i}")));
    for (path, bytes) in files_under(&site.path("public/archive")) {
        let text = String::from_utf8_lossy(&bytes);
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "{} holds {secret}",
                path.display()
            );
        }
    }

    // The feeds carry the letter but not the email-only post; rebuilding
    // changes no byte, and the manifest lists the archive.
    site.build_at(NOW).success();
    let atom = site.read_text("public/atom.xml");
    assert!(atom.contains("A note from the team"));
    assert!(!atom.contains("Only for subscribers"));
    let before = site.snapshot("public");
    let again = site.build_at(NOW).success();
    assert!(again.stdout.contains("wrote 0 files"), "{again}");
    assert_eq!(before, site.snapshot("public"));
    let manifest = site.read_text("public/.newsletter.manifest");
    for file in [
        "archive/index.html",
        "archive/atom.xml",
        "archive/3/index.html",
    ] {
        assert!(manifest.lines().any(|l| l == file), "{manifest}");
    }

    // The email-only post keeps its archive page as its link in the
    // archive's feed after its file is gone.
    std::fs::remove_file(site.path("content/2026-11-23-private.md")).unwrap();
    site.build_at(NOW).success();
    let archive = read_archive(&site.path("public/archive"));
    let only = &archive.feed.as_ref().unwrap().entries[1];
    assert!(
        only.summary.contains(&format!(
            "<a href=\"{BASE}/archive/2/\">Only for subscribers</a>"
        )),
        "{}",
        only.summary
    );

    // Everything went out once: the next send has nothing to send.
    let out = newsletter_at(&site, &["send"]).success();
    assert!(out.stdout.contains("nothing to send"), "{out}");
    assert_eq!(count_eml(&site.path("outbox")), 9);
}

/// A SQLite file's `PRAGMA user_version`, set first when `set` says so
/// (with Python's sqlite3: no code of ours).
fn user_version(db: &Path, set: Option<i64>) -> i64 {
    let script = "import sqlite3, sys\n\
                  db = sqlite3.connect(sys.argv[1])\n\
                  if sys.argv[2]:\n\
                  \x20   db.execute('PRAGMA user_version = ' + str(int(sys.argv[2])))\n\
                  \x20   db.commit()\n\
                  print(db.execute('PRAGMA user_version').fetchone()[0])\n";
    let set = set.map(|v| v.to_string()).unwrap_or_default();
    let out = run(Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(db)
        .arg(set))
    .success();
    out.stdout.trim().parse().expect("a version")
}

#[test]
fn a_build_without_a_store_leaves_the_archive_and_creates_no_store() {
    let site = new_site().subscribers(&addresses(1)).create();
    posts(&site);
    newsletter_at(&site, &["send"]).success();
    site.build_at(NOW).success();
    let archive = site.snapshot("public/archive");
    assert!(archive.len() >= 5, "{:?}", archive.keys());

    // A checkout that builds only the feeds: no store there.
    std::fs::rename(site.path("newsletter.db"), site.path("elsewhere.db")).unwrap();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(site.path(&format!("newsletter.db{suffix}")));
    }
    post(&site, "2026-11-24-later", "title: Later", "Later.");
    site.build_at(NOW).success();
    assert!(!site.path("newsletter.db").exists(), "build made a store");
    assert_eq!(site.snapshot("public/archive"), archive);
    // And the build after it still keeps the archive in its manifest.
    site.build_at(NOW).success();
    assert_eq!(site.snapshot("public/archive"), archive);

    // A store this build cannot read as it is (an older schema): the build
    // upgrades nothing, says why, and keeps the archive.
    std::fs::rename(site.path("elsewhere.db"), site.path("newsletter.db")).unwrap();
    let db = site.path("newsletter.db");
    let current = user_version(&db, None);
    user_version(&db, Some(9));
    post(&site, "2026-11-24-later2", "title: Later still", "Later.");
    let out = site.build_at(NOW).success();
    assert!(
        out.stderr.contains("the web archive was left as it is"),
        "{out}"
    );
    assert!(out.stderr.contains("schema 9"), "{out}");
    assert_eq!(user_version(&db, None), 9, "build upgraded the store");
    assert_eq!(site.snapshot("public/archive"), archive);
    user_version(&db, Some(current));

    // [archive] enabled = false: the build no longer writes it, and takes
    // away what it wrote.
    site.append_config("\n[archive]\nenabled = false\n");
    site.build_at(NOW).success();
    assert!(!site.path("public/archive/index.html").exists());
}

#[test]
fn preview_and_a_test_send_show_a_letter_and_record_nothing() {
    let server = SmtpServer::start(&[]);
    let site = new_site()
        .smtp(server.config(""))
        .subscribers(&addresses(2))
        .create();
    posts(&site);
    let letter = site.path("content/2026-11-22-note.md");
    let letter = letter.to_str().unwrap();

    newsletter_at(&site, &["preview", "--letter", letter, "--output", "look"]).success();
    let html = site.read_text("look/letter.html");
    assert!(
        html.contains("a closing paragraph only a letter carries"),
        "{html}"
    );
    let eml = mail_file(&site.path("look/letter.eml"));
    assert_eq!(eml.header("Subject"), "A note from the team");

    newsletter_at(
        &site,
        &["send", "--to", "author@example.org", "--letter", letter],
    )
    .success();
    let got = server.messages();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header("Subject"), "A note from the team");
    assert!(
        got[0]
            .part("text/plain")
            .contains("a closing paragraph only a letter carries")
    );

    // Nothing was recorded: the real send still sends the letter to everyone.
    let out = newsletter_at(&site, &["send"]).success();
    assert!(
        out.stdout
            .contains("letter 1 \"A note from the team\": 2 sent"),
        "{out}"
    );
    // --letter without --to is a usage error.
    let usage = newsletter_at(&site, &["send", "--letter", letter]);
    assert_eq!(usage.code, Some(2), "{usage}");
}

#[test]
fn a_letter_killed_mid_delivery_resumes_with_no_duplicate_beyond_those_in_flight() {
    let readers = addresses(30);
    let connections = 2;
    let server = SmtpServer::start(&["--delay", "0.05"]);
    let site = new_site()
        .smtp(server.config(&format!("connections = {connections}")))
        .subscribers(&readers)
        .create();
    post(
        &site,
        "2026-11-22-note",
        "title: A note from the team\nemail: letter",
        "The whole letter.",
    );
    post(&site, "2026-11-21-news", "title: News", "News.");
    let mut child = site.spawn_send(SECRET);
    server.wait_for(6, Duration::from_secs(30));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = server.messages();
    assert!(
        before.len() < readers.len()
            && before
                .iter()
                .all(|m| m.header("Subject") == "A note from the team"),
        "the kill did not land inside the letter's delivery"
    );

    // The rerun finishes the letter; the next one sends the digest.
    let out = newsletter_at(&site, &["send"]).success();
    assert!(out.stdout.contains("letter 1 "), "{out}");
    let out = newsletter_at(&site, &["send"]).success();
    assert!(out.stdout.contains("digest 2 "), "{out}");
    let mails = server.messages();
    for (subject, limit) in [
        ("A note from the team", connections),
        ("Fixture Blog: News", 0),
    ] {
        let mut got: Vec<String> = mails
            .iter()
            .filter(|m| m.header("Subject") == subject)
            .map(to_address)
            .collect();
        got.sort();
        let total = got.len();
        got.dedup();
        assert_eq!(got, readers, "{subject}: someone was skipped");
        assert!(
            total - got.len() <= limit,
            "{subject}: {} duplicates, more than the {limit} in flight",
            total - got.len()
        );
    }
}

#[test]
fn a_bad_email_key_names_the_file_and_line() {
    let site = Site::with_mail().without_posts().create();
    post(
        &site,
        "2026-11-22-note",
        "title: A note\nemail: leter",
        "Text.",
    );
    let out = site.check();
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stdout
            .contains("content/2026-11-22-note.md:3: `email: leter` is not a way to mail a post"),
        "{out}"
    );
    assert!(out.stdout.contains("write `email: letter`"), "{out}");
}

#[test]
fn an_archive_that_cannot_be_written_holds_back_no_mail() {
    let readers = addresses(2);
    let site = new_site().subscribers(&readers).create();
    post(&site, "2026-11-21-news", "title: News", "News.");
    // A file where the archive's folder goes: no page can be written.
    site.write("public/archive", "not a folder");
    let out = newsletter_at(&site, &["send"]).success();
    assert!(out.stdout.contains("digest 1 "), "{out}");
    assert!(out.stdout.contains("2 sent, 0 failed"), "{out}");
    assert!(
        out.stderr.contains("the web archive was not written"),
        "{out}"
    );
    assert_eq!(count_eml(&site.path("outbox")), 2);
    // Once the folder can be made, the next build writes the page.
    std::fs::remove_file(site.path("public/archive")).unwrap();
    site.build_at(NOW).success();
    assert!(site.path("public/archive/1/index.html").is_file());
}

#[test]
fn an_archive_lock_held_by_someone_else_delays_mail_by_moments_not_for_ever() {
    let readers = addresses(2);
    let site = new_site().subscribers(&readers).create();
    post(&site, "2026-11-21-news", "title: News", "News.");
    std::fs::create_dir_all(site.path("public")).unwrap();
    // Another process holds the archive's lock (and keeps it for a minute).
    let mut holder = Command::new(python())
        .arg("-c")
        .arg(
            "import fcntl, os, sys, time\n\
             fd = os.open(sys.argv[1], os.O_RDONLY | os.O_CREAT)\n\
             fcntl.flock(fd, fcntl.LOCK_EX)\n\
             print('held', flush=True)\n\
             time.sleep(60)\n",
        )
        .arg(site.path("public/.newsletter.archive.lock"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "held");
    let out = newsletter_at(&site, &["send"]);
    holder.kill().unwrap();
    holder.wait().unwrap();
    let out = out.success();
    assert!(out.stdout.contains("2 sent, 0 failed"), "{out}");
    assert!(
        out.stderr.contains("the web archive was not written"),
        "{out}"
    );
    assert!(
        out.stderr.contains("another process has held this lock"),
        "{out}"
    );
    assert_eq!(count_eml(&site.path("outbox")), 2);
}

#[test]
fn a_letter_path_that_is_no_file_is_refused_at_once() {
    let site = Site::with_mail().without_posts().create();
    for path in ["/dev/zero", "content"] {
        let out = newsletter_at(&site, &["preview", "--letter", path]);
        assert_eq!(out.code, Some(1), "{out}");
        assert!(
            out.stderr
                .contains(&format!("{path}: is not a post's file")),
            "{out}"
        );
    }
}

/// A mailing is known to feed readers by the id README gives it,
/// `tag:HOST,DAY:mailings/N`, which stays when the site moves from http to
/// https and when the archive moves to another folder.
#[test]
fn archive_ids_survive_a_move_to_https_and_a_new_archive_path() {
    let site = new_site().subscribers(&addresses(1)).create();
    site.replace_in_config(
        "base_url = \"https://blog.example.org\"",
        "base_url = \"http://blog.example.org\"",
    );
    posts(&site);
    newsletter_at(&site, &["send"]).success();
    site.build_at(NOW).success();
    let ids = |dir: &str| -> Vec<(String, String)> {
        let archive = read_archive(&site.path(dir));
        let feed = archive.feed.expect("the archive's feed");
        feed.entries
            .iter()
            .map(|e| (e.id.clone(), e.link.clone()))
            .collect()
    };
    let expected = |base: &str, path: &str| -> Vec<(String, String)> {
        (1..=3)
            .rev()
            .map(|n| {
                (
                    format!("tag:blog.example.org,2026-11-25:mailings/{n}"),
                    format!("{base}/{path}/{n}/"),
                )
            })
            .collect()
    };
    assert_eq!(
        ids("public/archive"),
        expected("http://blog.example.org", "archive")
    );

    site.replace_in_config("http://blog.example.org", "https://blog.example.org");
    site.build_at(NOW).success();
    assert_eq!(
        ids("public/archive"),
        expected("https://blog.example.org", "archive")
    );

    site.append_config("[archive]\npath = \"issues\"");
    site.build_at(NOW).success();
    assert_eq!(
        ids("public/issues"),
        expected("https://blog.example.org", "issues")
    );
}
