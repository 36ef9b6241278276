//! The welcome mail against a real SMTP server (aiosmtpd on loopback), read
//! back with Python's `email` parser: queued by `subscribers add
//! --welcome`, sent once by `send`, never held back by a digest in
//! progress, and sent once after a kill -9.

mod common;

use std::time::{Duration, Instant};

use common::mail_site::addresses;
use common::smtp::{Mail, SmtpServer, count_eml};
use common::{NOW, Run, Site, run};

const SECRET: &str = "test-secret-for-welcome-tokens";
/// The three latest posts of the fixture blog published at `NOW`, newest first.
const LATEST: [&str; 3] = [
    "Plain YAML: the usual kind",
    "A post with a summary key",
    "Deeply nested .markdown file",
];

fn site(server: &SmtpServer, smtp: &str, readers: &[String]) -> Site {
    Site::with_mail()
        .public_url("https://news.example.org/")
        .smtp(server.config(smtp))
        .subscribers(readers)
        .create()
}

fn cli(site: &Site, args: &[&str]) -> Run {
    run(site.newsletter(args).env("NEWSLETTER_SECRET", SECRET))
}

fn send(site: &Site) -> Run {
    cli(site, &["send", "--now", NOW])
}

fn add_welcomed(site: &Site, email: &str) -> Run {
    cli(site, &["subscribers", "add", email, "--welcome"]).success()
}

/// The welcome mails the server received.
fn welcomes(server: &SmtpServer) -> Vec<Mail> {
    server
        .messages()
        .into_iter()
        .filter(|m| m.header("Subject") == "Welcome to Fixture Blog")
        .collect()
}

/// The recipients of the welcome mails, sorted, one entry per copy.
fn welcomed(server: &SmtpServer) -> Vec<String> {
    let mut all: Vec<String> = welcomes(server)
        .into_iter()
        .flat_map(|m| m.envelope.rcpt_tos)
        .collect();
    all.sort();
    all
}

#[test]
fn an_address_added_with_welcome_gets_one_welcome_at_the_next_send_and_never_another() {
    let server = SmtpServer::start(&[]);
    let readers = addresses(2);
    let site = site(&server, "", &readers);
    let added = add_welcomed(&site, "new@example.net");
    assert!(added.stdout.contains("welcome mail goes out"), "{added}");
    // Nothing is sent by `add` itself.
    assert_eq!(count_eml(&server.maildir), 0);

    let out = send(&site).success();
    assert!(out.stdout.contains("welcomed 1 new subscriber\n"), "{out}");
    // The imported readers get the digest, not a welcome.
    assert_eq!(welcomed(&server), ["new@example.net"]);
    let mail = welcomes(&server).remove(0);
    assert!(mail.defects.is_empty(), "{:?}", mail.defects);
    let text = mail.part("text/plain");
    let html = mail.part("text/html");
    let mut at = 0;
    for title in LATEST {
        let found = text[at..]
            .find(title)
            .unwrap_or_else(|| panic!("{title:?} (newest first) not in:\n{text}"));
        at += found + title.len();
        assert!(html.contains(&title.replace('"', "&quot;")), "{title:?}");
    }
    // Only `welcome.posts` (3) of them: the fourth latest is not there.
    assert!(!text.contains("Zola: TOML front matter"), "{text}");
    let unsubscribe = mail
        .html_links
        .iter()
        .find(|l| l.starts_with("https://news.example.org/unsubscribe/"))
        .unwrap_or_else(|| panic!("no unsubscribe link: {:?}", mail.html_links));
    assert!(text.contains(unsubscribe.as_str()), "{text}");
    assert!(
        mail.header("List-Unsubscribe")
            .contains(unsubscribe.as_str()),
        "{}",
        mail.header("List-Unsubscribe")
    );
    assert_eq!(
        mail.header("List-Unsubscribe-Post"),
        "List-Unsubscribe=One-Click"
    );
    assert!(mail.header("List-Id").contains("blog.example.org"));
    assert!(
        mail.html_links
            .iter()
            .any(|l| l == "https://blog.example.org/archive/"),
        "the archive link: {:?}",
        mail.html_links
    );
    let message_id = mail.header("Message-ID");
    assert!(
        message_id.starts_with("<welcome-") && message_id.ends_with("@blog.example.org>"),
        "{message_id}"
    );

    // A second send welcomes no one again (nor a third after a new post).
    let again = send(&site).success();
    assert!(!again.stdout.contains("welcomed"), "{again}");
    let third = cli(&site, &["publish", "--now", NOW]).success();
    assert!(!third.stdout.contains("welcomed"), "{third}");
    assert_eq!(welcomed(&server), ["new@example.net"]);

    // Added again (already there): no second welcome either.
    let twice = add_welcomed(&site, "new@example.net");
    assert!(twice.stdout.contains("no welcome mail"), "{twice}");
    send(&site).success();
    assert_eq!(welcomed(&server), ["new@example.net"]);
}

#[test]
fn welcomes_go_out_while_a_digest_send_holds_its_lock() {
    let readers = addresses(40);
    // About 0.1 s a message over one connection: the digest takes 4 s or more.
    let server = SmtpServer::start(&["--delay", "0.1"]);
    let site = site(&server, "connections = 1", &readers);
    let mut digest = site.spawn_send(SECRET);
    server.wait_for(1, Duration::from_secs(30));
    add_welcomed(&site, "late@example.net");

    // `publish` runs while the digest goes out: it sends the welcome at
    // once, and leaves the digest to the send that holds its lock.
    let started = Instant::now();
    let out = cli(&site, &["publish", "--now", NOW]).success();
    assert!(out.stdout.contains("welcomed 1 new subscriber"), "{out}");
    assert!(out.stdout.contains("another `newsletter send`"), "{out}");
    assert!(
        digest.try_wait().unwrap().is_none(),
        "the digest send finished first ({:?}): the test proves nothing",
        started.elapsed()
    );
    assert_eq!(welcomed(&server), ["late@example.net"]);

    // So does a second `send`, which then refuses the digest as ever.
    add_welcomed(&site, "later@example.net");
    let second = send(&site).failure();
    assert!(
        second.stdout.contains("welcomed 1 new subscriber"),
        "{second}"
    );
    assert!(
        second.stderr.contains("another `newsletter send`"),
        "{second}"
    );
    assert!(
        digest.try_wait().unwrap().is_none(),
        "the digest finished first"
    );

    assert!(digest.wait().unwrap().success());
    let mut digest_readers: Vec<String> = server
        .messages()
        .into_iter()
        .filter(|m| m.header("Subject") != "Welcome to Fixture Blog")
        .flat_map(|m| m.envelope.rcpt_tos)
        .collect();
    digest_readers.sort();
    assert_eq!(digest_readers, readers);
    assert_eq!(welcomed(&server), ["late@example.net", "later@example.net"]);
}

#[test]
fn a_welcome_run_in_progress_does_not_make_send_refuse() {
    let server = SmtpServer::start(&[]);
    let readers = addresses(3);
    let site = site(&server, "", &readers);
    add_welcomed(&site, "new@example.net");
    // Another process holds the welcome lock (as a long welcome run would).
    let lock = std::fs::File::create(site.path("newsletter.db.welcome.lock")).unwrap();
    lock.lock().unwrap();
    let out = send(&site).success();
    assert!(
        out.stdout
            .contains("another process is sending the welcome mails"),
        "{out}"
    );
    // The digest goes to the three readers and the new subscriber.
    assert!(out.stdout.contains("4 sent, 0 failed"), "{out}");
    assert!(welcomed(&server).is_empty());
    drop(lock);
    let out = send(&site).success();
    assert!(out.stdout.contains("welcomed 1 new subscriber"), "{out}");
    assert_eq!(welcomed(&server), ["new@example.net"]);
}

#[test]
fn a_killed_welcome_run_resends_at_most_the_one_in_flight() {
    let newcomers = addresses(12);
    let server = SmtpServer::start(&["--delay", "0.1"]);
    let site = site(&server, "", &[]);
    for email in &newcomers {
        add_welcomed(&site, email);
    }
    let mut child = site.spawn_send(SECRET);
    server.wait_for(4, Duration::from_secs(30));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = count_eml(&server.maildir);
    assert!(before < newcomers.len(), "the run finished before the kill");

    let out = send(&site).success();
    assert!(out.stdout.contains("welcomed "), "{out}");
    let received = welcomed(&server);
    let mut unique = received.clone();
    unique.dedup();
    assert_eq!(unique, newcomers, "someone was not welcomed");
    assert!(
        received.len() - unique.len() <= 1,
        "{} duplicates: more than the one welcome in flight",
        received.len() - unique.len()
    );
    // And never again.
    send(&site).success();
    assert_eq!(welcomed(&server).len(), received.len());
}

#[test]
fn with_welcome_off_no_welcome_is_queued_or_sent() {
    let server = SmtpServer::start(&[]);
    let site = site(&server, "", &[]);
    // Queued while it was on, then turned off: cancelled, not sent.
    add_welcomed(&site, "early@example.net");
    site.append_config("[welcome]\nenabled = false");
    let added = add_welcomed(&site, "new@example.net");
    assert!(added.stdout.contains("no welcome mail"), "{added}");
    let out = send(&site).success();
    assert!(out.stdout.contains("1 pending welcome cancelled"), "{out}");
    assert!(welcomed(&server).is_empty());
    // The digest still goes to both.
    assert_eq!(
        server.recipients(),
        ["early@example.net", "new@example.net"]
    );
}

#[test]
fn a_refused_address_fails_its_welcome_and_is_bounced() {
    let server = SmtpServer::start(&["--permfail", "gone@example.net"]);
    let site = site(&server, "", &[]);
    add_welcomed(&site, "gone@example.net");
    add_welcomed(&site, "here@example.net");
    let out = send(&site).success();
    assert!(
        out.stdout
            .contains("welcomed 1 new subscriber, 1 welcome refused"),
        "{out}"
    );
    assert_eq!(welcomed(&server), ["here@example.net"]);
    let list = cli(&site, &["subscribers", "list"]).success().stdout;
    assert!(
        list.lines()
            .any(|l| l.starts_with("gone@example.net\t") && l.contains("\tbounced\t")),
        "{list}"
    );
}

#[test]
fn without_smtp_a_trial_sends_no_welcome_and_keeps_it_pending() {
    let site = Site::with_mail().outbox_trial().create();
    add_welcomed(&site, "new@example.net");
    let out = send(&site).success();
    assert!(
        out.stdout
            .contains("1 welcome mail waits: there is no [smtp] section"),
        "{out}"
    );
    let outbox: Vec<Mail> = common::smtp::eml_files(&site.path("outbox"))
        .iter()
        .map(|f| common::smtp::mail_file(f))
        .filter(|m| m.header("Subject") == "Welcome to Fixture Blog")
        .collect();
    assert!(outbox.is_empty(), "a welcome in the trial outbox");
    // Once mail can be delivered, it goes out.
    let server = SmtpServer::start(&[]);
    site.append_config(&server.config(""));
    let out = send(&site).success();
    assert!(out.stdout.contains("welcomed 1 new subscriber"), "{out}");
    assert_eq!(welcomed(&server), ["new@example.net"]);
}

#[test]
fn a_subscriber_who_leaves_while_welcomes_go_out_gets_none() {
    // About 0.5 s a message: the leaving happens while earlier ones go out.
    let server = SmtpServer::start(&["--delay", "0.5"]);
    let site = site(&server, "connections = 1", &[]);
    let readers = [
        "w1@example.net",
        "w2@example.net",
        "w3@example.net",
        "w4@example.net",
    ];
    for reader in readers {
        add_welcomed(&site, reader).success();
    }
    let mut welcoming = site.spawn_send(SECRET);
    server.wait_for(1, Duration::from_secs(30));
    cli(&site, &["subscribers", "remove", "w3@example.net"]).success();
    cli(
        &site,
        &["subscribers", "remove", "w4@example.net", "--forget"],
    )
    .success();
    assert!(welcoming.wait().unwrap().success());
    let got = welcomed(&server);
    assert!(
        !got.iter()
            .any(|a| a == "w3@example.net" || a == "w4@example.net"),
        "mailed after they left: {got:?}"
    );
    assert!(got.contains(&"w1@example.net".to_string()), "{got:?}");
}

/// A relay that refuses the sender (here: over its daily sending limit,
/// `550 5.4.5`) refuses every welcome alike. Each welcome is sent once
/// ever, and such a refusal made it `failed` for good: every subscriber
/// who confirmed during the outage, or while `email.from` was wrong, was
/// never welcomed. It now stays pending (an attempt counted, up to the
/// digest's 20), and goes out once the relay takes mail again.
#[test]
fn a_relay_refusing_the_sender_leaves_the_welcomes_pending() {
    let limit = "550 5.4.5 Daily user sending limit exceeded\r\n";
    let refusing = common::scripted_smtp::ScriptedSmtp::with_limit(0, limit);
    let site = Site::with_mail()
        .public_url("https://news.example.org/")
        .smtp(refusing.config(""))
        .create();
    add_welcomed(&site, "new1@example.net");
    add_welcomed(&site, "new2@example.net");
    let out = send(&site);
    assert!(
        out.stdout
            .contains("welcomed 0 new subscribers, 2 still pending"),
        "{out}"
    );
    let server = SmtpServer::start(&[]);
    site.replace_in_config(
        &format!("port = {}", refusing.port),
        &format!("port = {}", server.port),
    );
    let out = send(&site).success();
    assert!(out.stdout.contains("welcomed 2 new subscribers"), "{out}");
    assert_eq!(welcomed(&server), ["new1@example.net", "new2@example.net"]);
}
