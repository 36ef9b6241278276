//! `newsletter send` against a real SMTP server (aiosmtpd on loopback, with
//! STARTTLS and AUTH), read back with Python's `email` parser.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::mail_site::{MailSite, addresses};
use common::smtp::{Hold, SmtpServer, count_eml, held_config, loopback_config, mail_file};
use common::{NOW, Run, Site, finish_within, run};

const SECRET: &str = "test-secret-for-tokens";
const PASSWORD: &str = "s3cret-pass";

/// The fixture blog with mail settings whose links these tests check: an
/// unsubscribe mailto, and the server's URL on a host of its own.
fn mail_site() -> MailSite {
    Site::with_mail()
        .email("unsubscribe_mailto = \"leave@blog.example.org\"")
        .public_url("https://news.example.org/")
}

trait RunExt {
    fn success_run(&mut self) -> Run;
}

impl RunExt for std::process::Command {
    fn success_run(&mut self) -> Run {
        run(self).success()
    }
}

fn send(site: &Site) -> Run {
    run(site
        .newsletter(["send", "--now", NOW])
        .env("NEWSLETTER_SMTP_PASSWORD", PASSWORD)
        .env("NEWSLETTER_SECRET", SECRET))
}

/// `newsletter send --now NOW` started in the background, its output kept
/// for [`finish_within`].
fn send_in_background(site: &Site) -> std::process::Child {
    site.newsletter(["send", "--now", NOW])
        .env("NEWSLETTER_SECRET", SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn each_active_subscriber_gets_one_digest_over_starttls_with_auth() {
    let server = SmtpServer::start_tls(&[]);
    let readers = addresses(5);
    let site = mail_site()
        .smtp(server.config(""))
        .subscribers(&readers)
        .create();
    site.newsletter(["subscribers", "add", "pending@example.net"])
        .success_run();
    site.newsletter(["subscribers", "remove", "pending@example.net"])
        .success_run();

    let out = send(&site).success();
    assert!(out.stdout.contains("5 sent, 0 failed, 0 pending"), "{out}");
    assert_eq!(server.recipients(), readers);

    let export = site
        .newsletter(["subscribers", "export"])
        .success_run()
        .stdout;
    let keys: std::collections::HashMap<&str, String> = export
        .lines()
        .skip(1)
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            (cells[0], cells[4].to_string())
        })
        .collect();
    let mut ids = Vec::new();
    let mut stores = Vec::new();
    for mail in server.messages() {
        assert!(mail.envelope.tls, "{}: not sent over STARTTLS", mail.file);
        assert_eq!(mail.envelope.auth_user.as_deref(), Some("newsletter"));
        assert!(mail.defects.is_empty(), "{}: {:?}", mail.file, mail.defects);
        assert!(
            mail.content_type.starts_with("multipart/alternative"),
            "{}",
            mail.content_type
        );
        let text = mail.part("text/plain");
        let html = mail.part("text/html");
        assert!(mail.header("From").contains("news@blog.example.org"));
        let to = mail.header("To");
        assert!(
            mail.envelope
                .rcpt_tos
                .iter()
                .all(|r| to.contains(r.as_str())),
            "{to}"
        );
        assert!(
            mail.header("Subject").starts_with("Fixture Blog: "),
            "{}",
            mail.header("Subject")
        );
        assert!(!mail.header("Date").is_empty());
        assert_eq!(
            mail.header("List-Unsubscribe-Post"),
            "List-Unsubscribe=One-Click"
        );
        assert!(
            mail.header("List-Id").contains("blog.example.org"),
            "{}",
            mail.header("List-Id")
        );

        // Message-ID <digest-1.ID.STORE.TAG@blog.example.org>, ID the
        // subscriber's, STORE the store's own (16 hex digits), TAG an HMAC
        // (12 hex digits).
        let message_id = mail.header("Message-ID");
        let (id, store, tag) = message_id
            .strip_prefix("<digest-1.")
            .and_then(|rest| rest.strip_suffix("@blog.example.org>"))
            .and_then(|rest| {
                let mut parts = rest.split('.');
                Some((parts.next()?, parts.next()?, parts.next()?, parts.next()))
            })
            .and_then(|(id, store, tag, none)| {
                none.is_none()
                    .then(|| Some((id.parse::<i64>().ok()?, store.to_string(), tag.to_string())))?
            })
            .unwrap_or_else(|| panic!("unexpected Message-ID {message_id}"));
        assert!(
            store.len() == 16 && store.bytes().all(|b| b.is_ascii_hexdigit()),
            "{message_id}"
        );
        assert!(
            tag.len() == 12 && tag.bytes().all(|b| b.is_ascii_hexdigit()),
            "{message_id}"
        );
        stores.push(store);
        ids.push(id);

        // One-click unsubscribe: an https URL whose token is this subscriber's.
        let unsubscribe = mail.header("List-Unsubscribe");
        assert!(
            unsubscribe.contains("<mailto:leave@blog.example.org"),
            "{unsubscribe}"
        );
        let url = unsubscribe
            .split(['<', '>'])
            .find(|part| part.starts_with("https://"))
            .unwrap_or_else(|| panic!("no https URL in {unsubscribe}"));
        let token = url
            .strip_prefix("https://news.example.org/unsubscribe/")
            .unwrap_or_else(|| panic!("{url}"));
        // The token names the recipient by their key (as exported).
        let purpose = newsletter::token::Purpose::Unsubscribe;
        let recipient = &mail.envelope.rcpt_tos[0];
        assert_eq!(
            newsletter::token::verify(SECRET.as_bytes(), purpose, token, 0).as_ref(),
            Ok(&keys[recipient.as_str()]),
            "{recipient}"
        );
        let forged =
            newsletter::token::sign(b"another secret", purpose, &keys[recipient.as_str()], None);
        assert!(newsletter::token::verify(SECRET.as_bytes(), purpose, &forged, 0).is_err());
        assert!(
            html.contains(url) && text.contains(url),
            "{}: the unsubscribe URL is not in both parts",
            mail.file
        );

        for link in &mail.html_links {
            assert!(
                link.starts_with("https://") || link.starts_with("mailto:"),
                "{}: relative or odd link {link}",
                mail.file
            );
        }
        for tag in ["script", "iframe", "style", "object", "embed"] {
            assert!(
                !mail.html_tags.iter().any(|t| t == tag),
                "{}: <{tag}> in the HTML",
                mail.file
            );
        }
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 5, "each message has its subscriber's own id");
    stores.dedup();
    assert_eq!(stores.len(), 1, "one store, one id: {stores:?}");

    // Another site (another store) mailing the same digest number to the
    // same subscriber number uses another Message-ID.
    let other_server = SmtpServer::start(&[]);
    let other = mail_site()
        .smtp(other_server.config(""))
        .subscribers(&readers[..1])
        .create();
    send(&other).success();
    let theirs = other_server.messages()[0].header("Message-ID").to_string();
    assert!(theirs.starts_with("<digest-1.1."), "{theirs}");
    assert!(
        !theirs.contains(&stores[0]),
        "{theirs} reuses {}",
        stores[0]
    );

    // Nothing new: nothing sent, no digest made.
    let again = send(&site).success();
    assert!(again.stdout.contains("nothing to send"), "{again}");
    assert_eq!(server.messages().len(), 5);
}

#[test]
fn temporary_refusals_are_retried_and_a_permanent_one_is_recorded_as_failed() {
    let readers = addresses(6);
    let server = SmtpServer::start(&[
        "--tempfail",
        &readers[1],
        &readers[3],
        "--tempfail-times",
        "2",
        "--permfail",
        &readers[4],
    ]);
    let site = mail_site()
        .smtp(server.config("connections = 2"))
        .subscribers(&readers)
        .create();
    let out = send(&site).exit_code(1);
    assert!(out.stdout.contains("5 sent, 1 failed, 0 pending"), "{out}");
    let mut expected = readers.clone();
    expected.remove(4);
    assert_eq!(server.recipients(), expected);
    // The failed one is not tried again by the next run.
    let again = send(&site).success();
    assert!(again.stdout.contains("nothing to send"), "{again}");
    assert_eq!(server.recipients(), expected);
    // "550 5.1.1" at RCPT is a hard bounce: that reader is bounced (and
    // so gets no later digest); those refused for a while are not.
    let bounced = common::run(&mut site.newsletter(["subscribers", "list", "--status", "bounced"]))
        .success()
        .stdout;
    let bounced: Vec<&str> = bounced
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(bounced, [readers[4].as_str()]);
}

#[test]
fn dropped_connections_lose_no_one_and_duplicate_no_one() {
    let readers = addresses(12);
    let server = SmtpServer::start(&["--drop-every", "4"]);
    let site = mail_site()
        .smtp(server.config("connections = 3"))
        .subscribers(&readers)
        .create();
    let out = send(&site).success();
    assert!(out.stdout.contains("12 sent, 0 failed, 0 pending"), "{out}");
    assert_eq!(server.recipients(), readers);
}

/// A `send` killed mid-run (SIGKILL, while it provably still runs) is
/// resumed by the next: nobody skipped, and only the messages in flight
/// at the kill (at most one per connection) sent twice.
#[test]
fn a_killed_send_resumes_and_sends_each_message_once_but_for_those_in_flight() {
    use std::os::unix::process::ExitStatusExt;
    // After the 6th message, 194 more at 30 ms each over 2 connections:
    // the run has about 3 s of the server's delays alone still to go when
    // the kill is due, which lands within a few polls of 20 ms.
    let readers = addresses(200);
    let connections = 2;
    let server = SmtpServer::start(&["--delay", "0.03"]);
    let site = mail_site()
        .smtp(server.config(&format!("connections = {connections}")))
        .subscribers(&readers)
        .create();
    let mut child = site.spawn_send(SECRET);
    server.wait_for(6, Duration::from_secs(60));
    let _ = child.kill(); // SIGKILL
    let status = child.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "the run ended ({status}) before it was killed"
    );
    server.wait_until_idle();
    let before = count_eml(&server.maildir);
    assert!(before < readers.len(), "{before} messages");

    let out = send(&site).success();
    assert!(out.stdout.contains("0 failed, 0 pending"), "{out}");
    let received = server.recipients();
    let mut unique = received.clone();
    unique.dedup();
    assert_eq!(unique, readers, "someone was skipped");
    assert!(
        received.len() - unique.len() <= connections,
        "{} duplicates, more than the {connections} messages that can be in flight",
        received.len() - unique.len()
    );
}

/// A second `send` while one is delivering refuses at once, sending
/// nothing; the first goes on and nobody gets two copies.
#[test]
fn a_second_send_while_one_runs_refuses_and_nobody_gets_two() {
    let readers = addresses(20);
    // The server holds the first message until the second send is done:
    // the first run is mid-message, holding the lock, all that time.
    let hold = Hold::new();
    hold.on();
    let server = SmtpServer::start(&["--hold-file", &hold.arg()]);
    let site = mail_site()
        .smtp(held_config(server.port, 1))
        .subscribers(&readers)
        .create();
    let first = send_in_background(&site);
    server.wait_for_logged("fault=hold", 1);
    let second = send_in_background(&site);
    // A second run that got past the lock would be held at the server too.
    let second = finish_within(second, Duration::from_secs(60), "the second send").failure();
    assert!(
        second.stderr.contains("another `newsletter send`")
            && second.stderr.contains("nothing was sent"),
        "{second}"
    );
    assert_eq!(server.logged(" rcpt peer="), 1, "the second run sent");
    hold.off();
    let first = first.wait_with_output().unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert_eq!(server.recipients(), readers);
}

#[test]
fn an_unreachable_server_stops_the_run_quickly_and_keeps_everything_pending() {
    // Held (bound, never listening) for the whole test: connections are
    // refused, and no other process can take the port meanwhile.
    let held = common::server::free_port();
    let port = held.number();
    let site = mail_site()
        .smtp(loopback_config(port, "timeout = 2"))
        .subscribers(&addresses(50))
        .create();
    let started = std::time::Instant::now();
    let out = send(&site).failure();
    assert!(out.stderr.contains("stays pending"), "{out}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );

    // Once the server is back, the same digest goes out, to everyone.
    let server = SmtpServer::start(&[]);
    site.replace_in_config(
        &format!("port = {port}"),
        &format!("port = {}", server.port),
    );
    let out = send(&site).success();
    assert!(
        out.stdout.contains("digest 1 ") && out.stdout.contains("50 sent"),
        "{out}"
    );
    assert_eq!(server.recipients(), addresses(50));
}

#[test]
fn an_outage_uses_up_nobodys_attempts_but_a_refusal_of_the_recipient_does() {
    // Held, never listening: connections are refused for the whole test.
    let held = common::server::free_port();
    let closed = held.number();
    let readers = addresses(2);
    let site = mail_site()
        .smtp(loopback_config(closed, "connections = 2\ntimeout = 2"))
        .subscribers(&readers)
        .create();
    let attempts = || -> Vec<i64> {
        let db = rusqlite::Connection::open(site.path("newsletter.db")).unwrap();
        let mut query = db
            .prepare("SELECT attempts FROM deliveries ORDER BY subscriber_id")
            .unwrap();
        query
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    // Nothing listening: three runs, no attempt charged.
    for _ in 0..3 {
        send(&site).failure();
    }
    assert_eq!(attempts(), [0, 0]);

    // A server going away (421 to every MAIL FROM): still none, and the
    // run stops as it does for a server that cannot be reached.
    let closing = SmtpServer::start(&["--closing"]);
    site.replace_in_config(
        &format!("port = {closed}"),
        &format!("port = {}", closing.port),
    );
    let out = send(&site).exit_code(1);
    assert!(
        out.stderr.contains("closed 6 connections in a row")
            && out.stderr.contains("stays pending"),
        "{out}"
    );
    assert_eq!(attempts(), [0, 0]);

    // A 4xx to one recipient is that recipient's: it counts.
    let server = SmtpServer::start(&["--tempfail", &readers[0], "--tempfail-times", "1"]);
    site.replace_in_config(
        &format!("port = {}", closing.port),
        &format!("port = {}", server.port),
    );
    let out = send(&site).success();
    assert!(out.stdout.contains("2 sent"), "{out}");
    assert_eq!(attempts(), [2, 1]);
}

#[test]
fn without_smtp_send_writes_the_outbox_as_a_trial_and_uses_nothing_up() {
    let site = mail_site()
        .outbox_trial()
        .subscribers(&addresses(3))
        .create();
    let outbox = site.path("outbox");
    for run in 1..=2 {
        let out = send(&site).success();
        assert!(
            out.stdout.contains("trial")
                && out.stdout.contains("as 3 .eml files")
                && out.stdout.contains("nothing was recorded")
                && out.stdout.contains("written to outbox as"),
            "{out}"
        );
        assert_eq!(
            count_eml(&outbox),
            3 * run,
            "each trial writes every message"
        );
    }
    let dry = send_with(&site, &["--dry-run"]).success();
    assert!(dry.stdout.contains("would go to 3 subscribers"), "{dry}");

    // Nothing sends digests on its own without a way to deliver them.
    site.append_config("[schedule]\ndigest = \"0 9 * * MON\"\n");
    for (args, what) in [
        (
            &["publish", "--now", NOW][..],
            "`publish` with `schedule.digest` set",
        ),
        (
            &["serve", "--listen", "127.0.0.1:0"][..],
            "`serve` with `schedule.digest` set",
        ),
    ] {
        let refused = run(&mut site.newsletter(args)).exit_code(1);
        assert!(
            refused.stderr.contains(what)
                && refused.stderr.contains("no [smtp] section")
                && refused.stderr.contains("email.outbox_mode"),
            "{refused:?}"
        );
    }
    site.replace_in_config("digest = \"0 9 * * MON\"", "");
    let refused = run(&mut site.newsletter(["publish", "--send", "--now", NOW])).exit_code(1);
    assert!(refused.stderr.contains("`publish --send`"), "{refused:?}");
    assert!(!site.path("public").exists(), "refused before building");

    // The real server gets the whole digest at the first real send.
    let server = SmtpServer::start(&[]);
    site.append_config(&server.config(""));
    let out = send(&site).success();
    assert!(out.stdout.contains("3 sent, 0 failed"), "{out}");
    assert_eq!(server.recipients().len(), 3);
    assert_eq!(count_eml(&outbox), 6);
}

#[test]
fn an_outbox_in_deliver_mode_is_a_pickup_folder_and_records_what_it_took() {
    let site = mail_site().subscribers(&addresses(3)).create();
    let out = send(&site).success();
    assert!(out.stdout.contains("3 sent"), "{out}");
    let again = send(&site).success();
    assert!(again.stdout.contains("nothing to send"), "{again}");
    let outbox = site.path("outbox");
    assert_eq!(count_eml(&outbox), 3);
    let file = std::fs::read_dir(&outbox)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mail = mail_file(&file);
    assert!(mail.content_type.starts_with("multipart/alternative"));
    assert!(
        mail.part("text/plain")
            .contains("https://news.example.org/unsubscribe/")
    );
}

#[test]
fn dry_run_and_to_record_nothing() {
    let server = SmtpServer::start(&[]);
    let site = mail_site()
        .smtp(server.config(""))
        .subscribers(&addresses(3))
        .create();
    let dry = send_with(&site, &["--dry-run"]).success();
    assert!(dry.stdout.contains("would go to 3 subscribers"), "{dry}");
    for address in addresses(3) {
        assert!(dry.stdout.contains(&address), "{dry}");
    }
    assert_eq!(server.messages().len(), 0);

    // A test to a subscriber: a Message-ID of its own, so their mail
    // server does not drop the real digest later as a duplicate.
    let test = send_with(&site, &["--to", &addresses(3)[0]]).success();
    assert!(test.stdout.contains(&addresses(3)[0]), "{test}");
    assert_eq!(server.recipients(), [addresses(3)[0].clone()]);

    // The real run still sends the digest to everyone.
    let out = send(&site).success();
    assert!(out.stdout.contains("3 sent"), "{out}");
    let mails = server.messages();
    assert_eq!(mails.len(), 4);
    let ids: std::collections::BTreeSet<&str> =
        mails.iter().map(|m| m.header("Message-ID")).collect();
    assert_eq!(ids.len(), 4, "{ids:?}");
    assert_eq!(ids.iter().filter(|id| id.starts_with("<trial-")).count(), 1);
}

fn send_with(site: &Site, args: &[&str]) -> Run {
    let mut all = vec!["send", "--now", NOW];
    all.extend_from_slice(args);
    run(site
        .newsletter(all)
        .env("NEWSLETTER_SMTP_PASSWORD", PASSWORD)
        .env("NEWSLETTER_SECRET", SECRET))
}

#[test]
fn with_no_subscribers_no_post_is_used_up() {
    let site = mail_site().create();
    let out = send(&site).success();
    assert!(out.stdout.contains("no active subscribers"), "{out}");
    // The first subscriber still gets the newest posts (first_run_posts = 2).
    site.subscribe(&addresses(1));
    let out = send(&site).success();
    assert!(out.stdout.contains("1 sent"), "{out}");
    let outbox = site.path("outbox");
    let file = std::fs::read_dir(&outbox)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mail = mail_file(&file);
    assert!(
        mail.header("Subject").contains("and 1 more"),
        "{}",
        mail.header("Subject")
    );
}

#[test]
fn security_tls_speaks_tls_from_the_first_byte() {
    let server = SmtpServer::start(&[
        "--tls-dir",
        "{tls}",
        "--implicit-tls",
        "--auth",
        "newsletter:s3cret-pass",
    ]);
    let config = server
        .config("")
        .replace("security = \"starttls\"", "security = \"tls\"");
    let site = mail_site().smtp(config).subscribers(&addresses(2)).create();
    let out = send(&site).success();
    assert!(out.stdout.contains("2 sent"), "{out}");
    for mail in server.messages() {
        assert!(mail.envelope.tls, "{}: not over TLS", mail.file);
        assert_eq!(mail.envelope.auth_user.as_deref(), Some("newsletter"));
    }
    assert_eq!(server.recipients(), addresses(2));
}

#[test]
fn a_certificate_that_does_not_verify_stops_the_run_and_sends_nothing() {
    let server = SmtpServer::start_tls(&[]);
    // The server's CA is not trusted: no tls_ca_file.
    let config: String = server
        .config("")
        .lines()
        .filter(|l| !l.starts_with("tls_ca_file"))
        .map(|l| format!("{l}\n"))
        .collect();
    let site = mail_site().smtp(config).subscribers(&addresses(3)).create();
    let out = send(&site).failure();
    assert!(out.stderr.contains("stays pending"), "{out}");
    assert!(server.messages().is_empty());
}

/// When the server received each message (`received_at` in the envelope
/// it saved beside it), in seconds, earliest first.
fn received_at(server: &SmtpServer) -> Vec<f64> {
    let mut times: Vec<f64> = std::fs::read_dir(&server.maildir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let envelope: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            let at = envelope["received_at"].as_str().unwrap();
            chrono::DateTime::parse_from_rfc3339(at)
                .unwrap()
                .timestamp_millis() as f64
                / 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times
}

/// `smtp.rate` spaces the messages as the server receives them.
#[test]
fn smtp_rate_spaces_the_messages() {
    // Eleven messages at ten a second, over three connections.
    const RATE: f64 = 10.0;
    let readers = addresses(11);
    let server = SmtpServer::start(&[]);
    let site = mail_site()
        .smtp(server.config(&format!("connections = 3\nrate = {RATE}")))
        .subscribers(&readers)
        .create();
    send(&site).success();
    assert_eq!(server.recipients(), readers);
    // The run starts a message every 1/RATE s whatever the connections,
    // so the k-th message the server gets comes at least k/RATE after the
    // first, less what the first took longer to arrive than the k-th
    // (its connection was new): one interval is left for that. A lower
    // bound only, from the server's own clock.
    let times = received_at(&server);
    let first = times[0];
    for (k, at) in times.iter().enumerate().skip(1) {
        let after = at - first;
        assert!(
            after >= (k as f64 - 1.0) / RATE,
            "message {k} came {after:.3} s after the first, sooner than rate = {RATE} \
             allows: {times:?}"
        );
    }
}

#[test]
fn an_address_the_server_cannot_take_fails_alone_and_does_not_stop_the_run() {
    let server = SmtpServer::start(&["--no-smtputf8"]);
    let mut readers = addresses(4);
    readers.insert(1, "jörg@example.org".to_string());
    let site = mail_site()
        .smtp(server.config("connections = 2"))
        .subscribers(&readers)
        .create();
    let out = send(&site).exit_code(1);
    assert!(out.stdout.contains("4 sent, 1 failed, 0 pending"), "{out}");
    assert_eq!(server.recipients(), addresses(4));
    // The failure is final: the next run has nothing left to do.
    let again = send(&site).success();
    assert!(again.stdout.contains("nothing to send"), "{again}");
}

#[test]
fn dry_run_of_an_unfinished_digest_lists_only_who_is_still_pending() {
    let readers = addresses(5);
    let server = SmtpServer::start(&["--tempfail", &readers[2], "--tempfail-times", "1000"]);
    let site = mail_site()
        .smtp(server.config("connections = 2"))
        .subscribers(&readers)
        .create();
    let out = send(&site).exit_code(1);
    assert!(out.stdout.contains("4 sent, 0 failed, 1 pending"), "{out}");
    let dry = send_with(&site, &["--dry-run"]).success();
    assert!(dry.stdout.contains("would go to 1 subscriber;"), "{dry}");
    assert!(dry.stdout.contains(&readers[2]), "{dry}");
    assert!(!dry.stdout.contains(&readers[0]), "{dry}");
}

#[test]
fn trial_files_are_named_so_and_a_pickup_folder_refuses_them() {
    let site = mail_site()
        .outbox_trial()
        .subscribers(&addresses(2))
        .create();
    send(&site).success();
    let outbox = site.path("outbox");
    let names = |dir: &std::path::Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let trials = names(&outbox);
    assert_eq!(trials.len(), 2);
    assert!(
        trials
            .iter()
            .all(|n| n.starts_with("trial-") && n.ends_with(".eml")),
        "{trials:?}"
    );

    // Made a pickup folder with the trials still there: refused, nothing recorded.
    site.replace_in_config("[email]\n", "[email]\noutbox_mode = \"deliver\"\n");
    let refused = send(&site).exit_code(1);
    assert!(
        refused.stderr.contains("2 trial messages written before")
            && refused.stderr.contains("trial-"),
        "{refused}"
    );
    for name in &trials {
        std::fs::remove_file(outbox.join(name)).unwrap();
    }
    let out = send(&site).success();
    assert!(out.stdout.contains("2 sent"), "{out}");
    let delivered = names(&outbox);
    assert_eq!(
        delivered.len(),
        2,
        "whole files only, no temporary one left: {delivered:?}"
    );
    assert!(
        delivered
            .iter()
            .all(|n| !n.starts_with('.') && !n.starts_with("trial-"))
    );
}

#[test]
fn a_trial_after_everyone_pending_left_shows_the_next_digest() {
    let readers = addresses(2);
    let server = SmtpServer::start(&["--tempfail", &readers[1], "--tempfail-times", "1000"]);
    let site = mail_site()
        .smtp(server.config(""))
        .subscribers(&readers)
        .create();
    send(&site).exit_code(1);
    // The SMTP section goes; a new post; the one still pending leaves.
    let config = site.read_text("config.toml");
    let without = &config[..config.find("[smtp]").unwrap()];
    site.write("config.toml", without);
    site.write(
        "content/2026-11-24-later.md",
        "---\ntitle: A later post\ncreated_at: 2026-11-24\n---\nLater.\n",
    );
    run(&mut site.newsletter(["subscribers", "remove", &readers[1]])).success();
    let trial = send(&site).success();
    assert!(
        trial.stdout.contains("the next digest") && trial.stdout.contains("A later post"),
        "{trial}"
    );
    assert_eq!(count_eml(&site.path("outbox")), 1);
}

/// `[smtp]` turned into one `[[smtp]]` relay of a list.
fn relay(table: String) -> String {
    table.replacen("[smtp]", "[[smtp]]", 1)
}

#[test]
fn several_relays_share_a_digest_by_weight_and_each_reader_gets_one_copy() {
    let plain = SmtpServer::start(&[]);
    let tls = SmtpServer::start_tls(&[]);
    let readers = addresses(40);
    let relays = relay(plain.config("connections = 1\nweight = 1"))
        + &relay(tls.config("connections = 2\nweight = 3\npassword_env = \"RELAY_B_PASSWORD\""));
    let site = mail_site().smtp(relays).subscribers(&readers).create();

    // The second relay's password is in its own variable, and only there.
    let without = send(&site).failure();
    assert!(
        without.stderr.contains("RELAY_B_PASSWORD is not"),
        "{without}"
    );
    let out = run(site
        .newsletter(["send", "--now", NOW])
        .env("RELAY_B_PASSWORD", PASSWORD)
        .env("NEWSLETTER_SECRET", SECRET))
    .success();
    assert!(out.stdout.contains("40 sent, 0 failed, 0 pending"), "{out}");

    let (by_plain, by_tls) = (plain.recipients(), tls.recipients());
    assert_eq!((by_plain.len(), by_tls.len()), (10, 30), "spread 1:3");
    let mut all = [by_plain, by_tls].concat();
    all.sort();
    assert_eq!(
        all, readers,
        "each reader once, over one relay or the other"
    );
    assert!(tls.messages().iter().all(|m| m.envelope.tls));
}

#[test]
fn a_relay_that_is_down_is_set_aside_and_the_others_take_its_messages() {
    let up = SmtpServer::start(&[]);
    let closed = common::hub::closed_port();
    let readers = addresses(30);
    let relays = relay(loopback_config(closed, "timeout = 2\nconnections = 2"))
        + &relay(up.config("connections = 2"));
    let site = mail_site().smtp(relays).subscribers(&readers).create();

    let out = send(&site).success();
    assert!(out.stdout.contains("30 sent, 0 failed, 0 pending"), "{out}");
    assert!(
        out.stderr
            .contains(&format!("SMTP relay 127.0.0.1:{closed} set aside for 30s")),
        "{out}"
    );
    assert_eq!(
        up.recipients(),
        readers,
        "everyone, once, by the relay that is up"
    );

    // With every relay down, the run stops and names each; nobody is lost.
    let down = relay(loopback_config(closed, "timeout = 2"))
        + &relay(loopback_config(common::hub::closed_port(), "timeout = 2"));
    let site = mail_site().smtp(down).subscribers(&readers[..3]).create();
    let out = send(&site).failure();
    assert!(out.stderr.contains("every SMTP relay failed"), "{out}");
    let digests = site.newsletter(["digests"]).success_run().stdout;
    let row: Vec<&str> = digests
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split('\t')
        .collect();
    // digest, date, recipients, sent, failed, pending
    assert_eq!(row.get(2..6), Some(&["3", "0", "0", "3"][..]), "{digests}");
}

#[test]
fn a_relay_that_refuses_every_reader_bounces_no_one_when_another_takes_them() {
    let readers = addresses(12);
    let mut refusing_args = vec!["--permfail"];
    refusing_args.extend(readers.iter().map(String::as_str));
    refusing_args.push("editor@example.net");
    // A relay whose recipient table is wrong: 550 5.1.1 for everyone.
    let refusing = SmtpServer::start(&refusing_args);
    let good = SmtpServer::start(&[]);
    let relays = relay(refusing.config("connections = 2")) + &relay(good.config("connections = 2"));
    let site = mail_site().smtp(relays).subscribers(&readers).create();

    let out = send(&site).success();
    assert!(out.stdout.contains("12 sent, 0 failed, 0 pending"), "{out}");
    assert_eq!(
        good.recipients(),
        readers,
        "each reader once, by the relay that takes them"
    );
    let list = site
        .newsletter(["subscribers", "list", "--status", "bounced"])
        .success_run()
        .stdout;
    assert!(!list.contains("@example"), "nobody is bounced: {list}");

    // `send --to` goes on to the next relay too.
    let test = run(site
        .newsletter(["send", "--to", "editor@example.net", "--now", NOW])
        .env("NEWSLETTER_SECRET", SECRET))
    .success();
    assert!(
        good.recipients()
            .contains(&"editor@example.net".to_string()),
        "{test}"
    );
}

/// When the server logged each line containing `needle`, in seconds of
/// its clock (the log gives the time of day to the millisecond).
fn logged_at(server: &SmtpServer, needle: &str) -> Vec<f64> {
    let mut day = 0.0;
    let mut last = 0.0;
    let mut times = Vec::new();
    for line in server.log().lines().filter(|l| l.contains(needle)) {
        // smtp_server HH:MM:SS.mmm ...
        let time = line.split(' ').nth(1).unwrap();
        let seconds = time
            .split(':')
            .map(|part| part.parse::<f64>().unwrap())
            .fold(0.0, |total, part| total * 60.0 + part);
        if seconds + day < last {
            day += 86_400.0; // past midnight
        }
        last = seconds + day;
        times.push(last);
    }
    times
}

/// The delivery of the only digest to `email`: its status, attempts and reply.
fn delivery(site: &Site, email: &str) -> (String, i64, String) {
    let db = rusqlite::Connection::open(site.path("newsletter.db")).unwrap();
    db.query_row(
        "SELECT d.status, d.attempts, coalesce(d.reply, '') FROM deliveries d \
         JOIN subscribers s ON s.id = d.subscriber_id WHERE s.email = ?1",
        [email],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .unwrap()
}

/// A reader the server refuses for now (4xx) is tried 5 times a run with
/// 0.5, 1, 2 and 4 s between, the attempts add up over the runs, and at
/// 20 the delivery is failed and tried no more (README: `send`).
#[test]
fn a_reader_refused_for_now_is_retried_with_backoff_and_failed_after_20_attempts_over_all_runs() {
    let readers = addresses(2);
    let deferred = &readers[1];
    let server = SmtpServer::start(&["--tempfail", deferred, "--tempfail-times", "1000"]);
    let site = mail_site()
        .smtp(server.config("connections = 1"))
        .subscribers(&readers)
        .create();
    let tries = "fault=tempfail";

    // A run tries it 5 times, waiting 0.5, 1, 2 and 4 s in between, as the
    // server's clock shows (lower bounds: a busy machine only adds).
    let out = send(&site).exit_code(1);
    assert!(out.stdout.contains("1 sent, 0 failed, 1 pending"), "{out}");
    let times = logged_at(&server, tries);
    assert_eq!(times.len(), 5, "{}", server.log());
    for (i, wait) in [0.5, 1.0, 2.0, 4.0].into_iter().enumerate() {
        let waited = times[i + 1] - times[i];
        assert!(
            waited >= wait - 0.005,
            "retry {} came {waited:.3} s after the try before, not after {wait} s: {times:?}",
            i + 1
        );
    }
    assert_eq!(delivery(&site, deferred).0, "pending");
    assert_eq!(delivery(&site, deferred).1, 5);

    // The attempts add up over the runs: 10, 15, then at 20 it is given up.
    for run in 2..=3 {
        let out = send(&site).exit_code(1);
        assert!(out.stdout.contains("0 failed, 1 pending"), "{out}");
        assert_eq!(server.logged(tries), 5 * run);
        assert_eq!(delivery(&site, deferred).1, 5 * run as i64);
    }
    let out = send(&site).exit_code(1);
    assert!(out.stdout.contains("1 sent, 1 failed, 0 pending"), "{out}");
    assert_eq!(server.logged(tries), 20);
    let (status, attempts, reply) = delivery(&site, deferred);
    assert_eq!((status.as_str(), attempts), ("failed", 20), "{reply}");
    assert!(reply.contains("gave up after 20 attempts"), "{reply}");

    // Given up: the next run does not try it again.
    let again = send(&site).success();
    assert!(again.stdout.contains("nothing to send"), "{again}");
    assert_eq!(server.logged(tries), 20);
    assert_eq!(server.recipients(), [readers[0].clone()]);
}

/// A server that refuses (5xx) every message: the run stops after the
/// first `2 × connections, at least 6` refusals with the rest pending, and
/// a working server then gets each of those once. The refused ones are
/// recorded as refused, as the server gave them (README: `send`).
fn refusing_every_message_stops_the_run(connections: usize, stops_after: usize) {
    let readers = addresses(30);
    let mut args = vec!["--permfail"];
    args.extend(readers.iter().map(String::as_str));
    let refusing = SmtpServer::start(&args);
    let site = mail_site()
        .smtp(refusing.config(&format!("connections = {connections}")))
        .subscribers(&readers)
        .create();
    let out = send(&site).failure();
    assert!(
        out.stderr.contains(&format!(
            "the SMTP server refused each of the first {stops_after} messages"
        )) && out.stderr.contains("stays pending"),
        "{out}"
    );
    // The workers finish the message each has under way when it stops.
    let refused = refusing.logged("fault=permfail");
    assert!(
        (stops_after..stops_after + connections).contains(&refused),
        "{refused} refused\n{out}"
    );
    let statuses: Vec<String> = readers.iter().map(|r| delivery(&site, r).0).collect();
    let pending = statuses.iter().filter(|s| *s == "pending").count();
    assert_eq!(pending, readers.len() - refused, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| s == "pending" || s == "failed"),
        "{statuses:?}"
    );
    assert_eq!(count_eml(&refusing.maildir), 0);

    let server = SmtpServer::start(&[]);
    site.replace_in_config(
        &format!("port = {}", refusing.port),
        &format!("port = {}", server.port),
    );
    // Exit 1: the refused ones stay failed.
    let out = send(&site).exit_code(1);
    assert!(
        out.stdout
            .contains(&format!("{pending} sent, {refused} failed, 0 pending")),
        "{out}"
    );
    let expected: Vec<String> = readers
        .iter()
        .zip(&statuses)
        .filter(|(_, s)| *s == "pending")
        .map(|(r, _)| r.clone())
        .collect();
    assert_eq!(server.recipients(), expected);
}

/// One connection: the run stops at the 6th refusal, the least there is.
#[test]
fn a_server_refusing_every_message_stops_the_run_after_6_and_the_rest_stay_pending() {
    refusing_every_message_stops_the_run(1, 6);
}

/// Five connections: twice as many refusals, 10, stop the run.
#[test]
fn with_5_connections_a_server_refusing_every_message_stops_the_run_after_10() {
    refusing_every_message_stops_the_run(5, 10);
}

/// RFC 3463's 5.2.2 is "mailbox full": a relay refusing a reader with it
/// at RCPT says the mailbox is full, whatever its words (here the ones
/// Gmail's refusal has, and words no list of English phrases holds).
/// That reader was made `bounced` on the first digest and never mailed
/// again; the refusal is now a failed delivery, the reader stays active.
/// A 5.1.1 still bounces its reader.
#[test]
fn a_full_mailbox_refused_at_rcpt_bounces_no_one_whatever_its_words() {
    let full = "552-5.2.2 The email account that you tried to reach is over its\r\n\
                552-5.2.2 limit. Please direct the recipient to\r\n\
                552 5.2.2 https://support.example/mail/?p=NoRoom\r\n";
    let voll = "552 5.2.2 <voll@example.net>: Postfach voll\r\n";
    let gone = "550 5.1.1 <gone@example.net>: Recipient address rejected: User unknown\r\n";
    let server = common::scripted_smtp::ScriptedSmtp::start(&[
        ("full@example.net", full),
        ("voll@example.net", voll),
        ("gone@example.net", gone),
    ]);
    let readers = [
        "full@example.net",
        "voll@example.net",
        "gone@example.net",
        "fine@example.net",
    ];
    let site = mail_site()
        .smtp(server.config("connections = 1"))
        .subscribers(&readers)
        .create();
    let out = send(&site).exit_code(1);
    assert!(out.stdout.contains("1 sent, 3 failed"), "{out}");
    assert_eq!(server.accepted(), ["fine@example.net"]);
    let statuses: std::collections::BTreeMap<String, String> =
        common::server::statuses(&site).into_iter().collect();
    assert_eq!(statuses["full@example.net"], "active", "{statuses:?}");
    assert_eq!(statuses["voll@example.net"], "active", "{statuses:?}");
    assert_eq!(statuses["gone@example.net"], "bounced", "{statuses:?}");
    assert_eq!(delivery(&site, "full@example.net").0, "failed");
}

/// Deliveries are read a batch (512) ahead: a reader who unsubscribed, or
/// was erased (`remove --forget`), while earlier messages of the digest
/// went out was still mailed from the batch in memory, the erased one
/// after their erasure, and the summary counted neither. Each message now
/// looks at its reader once more just before it goes: a reader who left
/// is not mailed and their delivery is cancelled.
#[test]
fn a_reader_who_leaves_while_a_digest_goes_out_is_not_mailed_after() {
    let readers = addresses(6);
    let hold = Hold::new();
    hold.on();
    let server = SmtpServer::start(&["--hold-file", &hold.arg()]);
    let site = mail_site()
        .smtp(held_config(server.port, 1))
        .subscribers(&readers)
        .create();
    let sending = send_in_background(&site);
    // The first message is at the server; the rest are read and waiting.
    server.wait_for_logged("fault=hold", 1);
    site.newsletter(["subscribers", "remove", &readers[2]])
        .success_run();
    site.newsletter(["subscribers", "remove", "--forget", &readers[3]])
        .success_run();
    hold.off();
    let sent = finish_within(sending, Duration::from_secs(60), "the send").success();
    let still = [&readers[0], &readers[1], &readers[4], &readers[5]].map(String::as_str);
    assert_eq!(server.recipients(), still, "{sent}");
    assert!(
        sent.stdout
            .contains("4 sent, 0 failed, 0 pending, 1 cancelled"),
        "{sent}"
    );
}

/// A relay that reaches its sending limit mid-run (Gmail: `550 5.4.5 Daily
/// user sending limit exceeded`, to every MAIL FROM) refuses every message
/// after it. Only a server refusing the first messages stopped the run:
/// here every reader after the limit was recorded failed in a blink, and
/// never got the digest. Now a relay refusing, in a row, as many messages
/// as its breaker allows (6 here), for reasons not about the recipient,
/// stops the run with the rest pending, and the next run sends them.
#[test]
fn a_relay_that_reaches_its_sending_limit_mid_run_leaves_the_rest_pending() {
    let limit = "550-5.4.5 Daily user sending limit exceeded. For more information on\r\n\
                 550 5.4.5 sending limits go to https://support.example/answer/166852\r\n";
    let server = common::scripted_smtp::ScriptedSmtp::with_limit(3, limit);
    let readers = addresses(20);
    let site = mail_site()
        .smtp(server.config("connections = 1"))
        .subscribers(&readers)
        .create();
    let out = send(&site).failure();
    assert!(
        out.stderr.contains("refused each of the last 6 messages")
            && out.stderr.contains("what was not sent stays pending"),
        "{out}"
    );
    assert_eq!(server.accepted(), readers[..3]);
    let statuses = |status: &str| {
        readers
            .iter()
            .filter(|r| delivery(&site, r).0 == status)
            .count()
    };
    assert_eq!(
        (statuses("sent"), statuses("failed"), statuses("pending")),
        (3, 6, 11)
    );
    // The next day's limit: the next run sends the rest.
    let fresh = common::scripted_smtp::ScriptedSmtp::start(&[]);
    site.replace_in_config(
        &format!("port = {}", server.port),
        &format!("port = {}", fresh.port),
    );
    let out = send(&site).exit_code(1);
    assert!(out.stdout.contains("14 sent, 6 failed, 0 pending"), "{out}");
    assert_eq!(fresh.accepted(), readers[9..]);
}

/// A relay's reply is the server's words, and can carry a remote server's
/// (a recipient's domain is anyone's): `digests show` printed the escape
/// sequences in it to the operator's terminal (clear the screen, retitle
/// it, rewrite lines). The ledger now keeps replies without control
/// characters.
#[test]
fn a_reply_with_terminal_escapes_is_kept_without_them() {
    let server = common::scripted_smtp::ScriptedSmtp::start(&[(
        "evil@example.net",
        "550 5.7.1 denied \u{1b}]0;owned\u{7}\u{1b}[2J\u{1b}[1A\r\n",
    )]);
    let site = mail_site()
        .smtp(server.config("connections = 1"))
        .subscribers(&["evil@example.net", "fine@example.net"])
        .create();
    send(&site).exit_code(1);
    let shown = run(&mut site.newsletter(["digests", "show", "1"])).success();
    assert!(shown.stdout.contains("5.7.1 denied"), "{shown}");
    assert!(
        !shown.stdout.contains(['\u{1b}', '\u{7}']),
        "{:?}",
        shown.stdout
    );

    // A reply stored before the store cleaned them is cleaned when shown.
    let script = "import sqlite3, sys\n\
                  db = sqlite3.connect(sys.argv[1])\n\
                  db.execute(\"UPDATE deliveries SET reply = '550 old \\x1b]0;owned\\x07\\x1b[2J' WHERE reply LIKE '%denied%'\")\n\
                  db.commit()\n";
    run(std::process::Command::new(common::python())
        .arg("-c")
        .arg(script)
        .arg(site.path("newsletter.db")))
    .success();
    let shown = run(&mut site.newsletter(["digests", "show", "1"])).success();
    assert!(shown.stdout.contains("550 old"), "{shown}");
    assert!(
        !shown.stdout.contains(['\u{1b}', '\u{7}']),
        "{:?}",
        shown.stdout
    );
}

/// A relay answering 421 to every message ("try again later, closing
/// connection": in maintenance, or throttling the sender) charges no one,
/// but it did not stop the run either: each reader waited out 5 tries
/// (7.5 s), so 30 readers took 225 s and 5,000 would hold the send lock
/// for ten hours, sending nothing. A 421 now counts as a failed
/// connection: the run stops after a few, the rest pending, as it does
/// for a server that cannot be reached.
#[test]
fn a_relay_closing_every_connection_with_421_stops_the_run_quickly() {
    let server = SmtpServer::start(&["--closing"]);
    let readers = addresses(30);
    let site = mail_site()
        .smtp(server.config("connections = 2"))
        .subscribers(&readers)
        .create();
    let sending = send_in_background(&site);
    // Bounds a hang only: stopping takes one reader's retries (7.5 s).
    let out = finish_within(sending, Duration::from_secs(60), "the send").exit_code(1);
    assert!(
        out.stderr.contains("closed 6 connections in a row"),
        "{out}"
    );
    // Nobody mailed, nobody charged an attempt.
    for reader in &readers {
        let (status, attempts, _) = delivery(&site, reader);
        assert_eq!((status.as_str(), attempts), ("pending", 0), "{reader}");
    }
}

/// Full mailboxes are about their recipients: six readers in a row whose
/// mailboxes are full (an old list, a company's abandoned accounts sorted
/// together) after the relay took a message are not a relay that refuses
/// everything now. They stopped the run as a sending limit does, with the
/// rest pending and an error blaming the sender; now each is a failed
/// delivery and the rest of the list gets the digest in the same run.
#[test]
fn readers_with_full_mailboxes_in_a_row_do_not_stop_the_run() {
    let full = "552 5.2.2 Mailbox full\r\n";
    let readers: Vec<String> = std::iter::once("first@example.net".to_string())
        .chain((1..=6).map(|i| format!("full{i}@example.net")))
        .chain((1..=3).map(|i| format!("fine{i}@example.net")))
        .collect();
    let script: Vec<(&str, &str)> = readers[1..7].iter().map(|r| (r.as_str(), full)).collect();
    let server = common::scripted_smtp::ScriptedSmtp::start(&script);
    let site = mail_site()
        .smtp(server.config("connections = 1"))
        .subscribers(&readers)
        .create();
    let out = send(&site).exit_code(1);
    assert!(!out.stderr.contains("refused each of the last"), "{out}");
    assert!(out.stdout.contains("4 sent, 6 failed, 0 pending"), "{out}");
    assert_eq!(
        server.accepted(),
        [
            "first@example.net",
            "fine1@example.net",
            "fine2@example.net",
            "fine3@example.net"
        ]
    );
}

/// A relay that answers one reader's RCPT with 421 (a limit on their
/// domain, say) while it takes everyone else's is not closing for every
/// message: the reader's attempts count, so after 20 they fail and the
/// digest is finished. Uncounted, that delivery stayed pending for ever,
/// and with a digest unfinished no new one is ever made.
#[test]
fn a_reader_refused_with_421_while_others_get_through_is_charged() {
    let readers = ["a@example.net", "b@example.com", "c@example.net"];
    // A first run against a relay closing for all makes the digest and
    // charges no one.
    let closing = SmtpServer::start(&["--closing"]);
    let site = mail_site()
        .smtp(closing.config("connections = 2"))
        .subscribers(&readers)
        .create();
    send(&site).exit_code(1);
    assert_eq!(delivery(&site, "b@example.com").1, 0);
    // As if earlier runs had charged b 19 attempts.
    rusqlite::Connection::open(site.path("newsletter.db"))
        .unwrap()
        .execute(
            "UPDATE deliveries SET attempts = 19 WHERE subscriber_id = 2",
            [],
        )
        .unwrap();
    assert_eq!(delivery(&site, "b@example.com").1, 19);

    let busy = "421 4.7.0 Too many messages to example.com, try again later\r\n";
    let server = common::scripted_smtp::ScriptedSmtp::start(&[("b@example.com", busy)]);
    site.replace_in_config(
        &format!("port = {}", closing.port),
        &format!("port = {}", server.port),
    );
    let out = send(&site).exit_code(1);
    assert!(out.stdout.contains("2 sent, 1 failed, 0 pending"), "{out}");
    assert_eq!(delivery(&site, "b@example.com").0, "failed", "{out}");
}

/// Two readers in a row whose domain the relay throttles with 421 while
/// it takes everyone else's mail: each was tried 5 times, their 421s
/// added up to 6 "closed connections" in a row, and the run stopped
/// ("it takes no mail for now") before the readers after them, in every
/// run, as they come first among those pending. Now each is tried once a
/// run, charged, and the run goes on.
#[test]
fn readers_throttled_with_421_do_not_stop_the_run_for_the_rest() {
    let busy = "421 4.7.0 Too many messages to example.com, try again later\r\n";
    let server = common::scripted_smtp::ScriptedSmtp::start(&[
        ("b1@example.com", busy),
        ("b2@example.com", busy),
    ]);
    let readers = [
        "a@example.net",
        "b1@example.com",
        "b2@example.com",
        "c@example.net",
        "d@example.net",
    ];
    let site = mail_site()
        .smtp(server.config("connections = 1"))
        .subscribers(&readers)
        .create();
    let out = send(&site).exit_code(1);
    assert!(!out.stderr.contains("in a row"), "{out}");
    assert!(out.stdout.contains("3 sent, 0 failed, 2 pending"), "{out}");
    assert_eq!(
        server.accepted(),
        ["a@example.net", "c@example.net", "d@example.net"]
    );
    assert_eq!(delivery(&site, "b1@example.com").1, 1);
}
