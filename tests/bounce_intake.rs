//! `newsletter bounces read` on a site: reports read from files, an mbox,
//! a Maildir and standard input change subscribers as they say, once.

mod common;

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::Stdio;
use std::time::Duration;

use common::server::{SECRET, statuses};
use common::smtp::SmtpServer;
use common::{NOW, Run, Site, run};

/// A delivery status report (as Postfix writes one) about `recipient`,
/// with `status` and `diagnostic`, known by `id`.
fn dsn(id: &str, recipient: &str, status: &str, diagnostic: &str) -> String {
    format!(
        "From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r
To: newsletter@blog.example.org\r
Subject: Undelivered Mail Returned to Sender\r
Message-ID: <{id}@mx.example.net>\r
MIME-Version: 1.0\r
Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r
\r
--B\r
Content-Type: text/plain\r
\r
Your message could not be delivered.\r
\r
--B\r
Content-Type: message/delivery-status\r
\r
Reporting-MTA: dns; mx.example.net\r
\r
Final-Recipient: rfc822; {recipient}\r
Action: failed\r
Status: {status}\r
Diagnostic-Code: smtp; {diagnostic}\r
\r
--B--\r
"
    )
}

fn hard(id: &str, recipient: &str) -> String {
    dsn(id, recipient, "5.1.1", "550 5.1.1 User unknown")
}

fn soft(id: &str, recipient: &str) -> String {
    dsn(id, recipient, "5.2.2", "552 5.2.2 Mailbox full")
}

fn complaint(id: &str, recipient: &str) -> String {
    format!(
        "From: feedback@mail.example.com\r
Message-ID: <{id}@mail.example.com>\r
Subject: complaint\r
Content-Type: multipart/report; report-type=feedback-report; boundary=\"F\"\r
\r
--F\r
Content-Type: message/feedback-report\r
\r
Feedback-Type: abuse\r
Version: 1\r
Original-Rcpt-To: <{recipient}>\r
\r
--F--\r
"
    )
}

/// An mbox of `messages` (each line starting "From " in them escaped).
fn mbox(messages: &[String]) -> String {
    let mut out = String::new();
    for message in messages {
        writeln!(out, "From MAILER-DAEMON Wed Dec  2 08:00:00 2026").unwrap();
        for line in message.split("\r\n") {
            if line.starts_with("From ") {
                out.push('>');
            }
            writeln!(out, "{line}").unwrap();
        }
    }
    out
}

/// `bounces read ARGS`, whatever its exit status.
fn bounces_read(site: &Site, args: &[&str]) -> Run {
    let mut all = vec!["bounces", "read"];
    all.extend(args);
    run(site.newsletter(all).env("NEWSLETTER_SECRET", SECRET))
}

/// `bounces read ARGS`, which must succeed.
fn read(site: &Site, args: &[&str]) -> Run {
    bounces_read(site, args).success()
}

fn status(site: &Site, email: &str) -> String {
    statuses(site)
        .into_iter()
        .find(|(e, _)| e == email)
        .map(|(_, s)| s)
        .unwrap_or_else(|| panic!("{email} is not on the list"))
}

/// Sends a digest (to the outbox) and returns each subscriber's
/// Message-ID, as the copy mailed to them carries it.
fn sent_ids(site: &Site) -> std::collections::BTreeMap<String, String> {
    let out = run(site
        .newsletter(["send", "--now", NOW])
        .env("NEWSLETTER_SECRET", SECRET))
    .success();
    assert!(out.stdout.contains("sent"), "{out}");
    std::fs::read_dir(site.path("outbox"))
        .unwrap()
        .map(|e| common::smtp::mail_file(&e.unwrap().path()))
        .map(|m| {
            let to = m.header("To");
            let address = to
                .rsplit('<')
                .next()
                .unwrap()
                .trim_end_matches('>')
                .to_string();
            (address, m.header("Message-ID").to_string())
        })
        .collect()
}

/// `report` as it comes back quoting `id` (our Message-ID), the way a
/// bounce quotes the original's headers.
fn quoting(report: String, id: &str) -> String {
    format!("References: {id}\r\n{report}")
}

/// `report` with a `Date` `days` ago.
fn dated(report: String, days: i64) -> String {
    let date = (chrono::Utc::now() - chrono::Duration::days(days)).to_rfc2822();
    format!("Date: {date}\r\n{report}")
}

#[test]
fn every_kind_of_report_does_what_it_says_and_counts_once() {
    let site = Site::with_mail().create();
    site.subscribe(&[
        "gone@example.net",
        "full@example.net",
        "spam@example.net",
        "leave@example.net",
        "away@example.net",
        "stay@example.net",
    ]);
    let ids = sent_ids(&site);
    // A file, an mbox of two soft bounces on two days, a Maildir with a
    // complaint; the hard bounce and the complaint quote our Message-ID.
    site.write(
        "hard.eml",
        quoting(hard("h1", "gone@example.net"), &ids["gone@example.net"]),
    );
    site.write(
        "soft.mbox",
        mbox(&[
            dated(soft("s1", "full@example.net"), 3),
            dated(soft("s2", "full@example.net"), 2),
        ]),
    );
    site.write(
        "Maildir/new/1.eml",
        quoting(
            complaint("c1", "spam@example.net"),
            &ids["spam@example.net"],
        ),
    );
    std::fs::create_dir_all(site.path("Maildir/cur")).unwrap();
    std::fs::create_dir_all(site.path("Maildir/tmp")).unwrap();
    site.write(
        "reports/away.eml",
        "From: Away <away@example.net>\r\nSubject: Out of office\r\nAuto-Submitted: auto-replied\r\n\r\nBack Monday.\r\n",
    );
    site.write(
        "reports/letter.eml",
        "From: Stay <stay@example.net>\r\nSubject: Thanks\r\n\r\nLovely digest.\r\n",
    );
    // Forgeries: anyone can write these. A complaint naming Stay, and a
    // hard bounce for Away quoting a Message-ID whose tag is not ours.
    site.write("forged/complaint.eml", complaint("f1", "stay@example.net"));
    let forged_id = {
        let (local, host) = ids["away@example.net"].split_once('@').unwrap();
        let flipped = if local.ends_with('0') { '1' } else { '0' };
        format!("{}{flipped}@{host}", &local[..local.len() - 1])
    };
    site.write(
        "forged/hard.eml",
        quoting(hard("f2", "away@example.net"), &forged_id),
    );

    let out = read(
        &site,
        &["hard.eml", "soft.mbox", "Maildir", "reports", "forged"],
    );
    assert!(
        out.stdout
            .contains("read 8 messages: 2 hard bounces, 2 soft bounces, 2 complaints")
            && out.stdout.contains("1 auto-reply and")
            && out.stdout.contains("1 not understood")
            && out.stdout.contains("now bounced: 1, complained: 1"),
        "{out}"
    );
    assert!(out.stderr.contains("reports/letter.eml"), "{out}");

    // A mailed unsubscribe request, piped in as an MTA would.
    let mut child = site
        .newsletter(["bounces", "read", "-"])
        .env("NEWSLETTER_SECRET", SECRET)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"From: Leave <leave@example.net>\r\nTo: leave@blog.example.org\r\nMessage-ID: <u1@example.net>\r\nSubject: unsubscribe\r\n\r\n")
        .unwrap();
    assert!(child.wait().unwrap().success());

    for (email, want) in [
        ("gone@example.net", "bounced"),
        ("full@example.net", "active"),
        ("spam@example.net", "complained"),
        ("leave@example.net", "unsubscribed"),
        // The forged hard bounce counted as one soft bounce; the forged
        // complaint changed nothing.
        ("away@example.net", "active"),
        ("stay@example.net", "active"),
    ] {
        assert_eq!(status(&site, email), want, "{email}");
    }

    // The same reports again: nothing counts twice (two soft bounces read
    // twice would be four, past the limit of three); nor does an LF copy
    // of a report without a Message-ID.
    let again = read(
        &site,
        &["hard.eml", "soft.mbox", "Maildir", "reports", "forged"],
    );
    assert!(again.stdout.contains("6 read before"), "{again}");
    assert_eq!(status(&site, "full@example.net"), "active");

    // A third soft bounce, on a third day, is past bounces.soft_limit.
    site.write("soft3.eml", dated(soft("s3", "full@example.net"), 1));
    let third = read(&site, &["soft3.eml"]);
    assert!(third.stdout.contains("now bounced: 1"), "{third}");
    assert_eq!(status(&site, "full@example.net"), "bounced");
    // Reactivated, the slate is clean: one new soft bounce is not three.
    run(&mut site.newsletter(["subscribers", "reactivate", "full@example.net"])).success();
    site.write("soft4.eml", soft("s4", "full@example.net"));
    read(&site, &["soft4.eml"]);
    assert_eq!(status(&site, "full@example.net"), "active");

    // Suppressed addresses stay so: add says why, import changes nothing.
    let add = run(&mut site.newsletter(["subscribers", "add", "gone@example.net"])).success();
    assert!(add.stdout.contains("is bounced and stays so"), "{add}");
    site.subscribe(&["spam@example.net"]);
    assert_eq!(status(&site, "spam@example.net"), "complained");
}

#[test]
fn a_run_killed_part_way_counts_each_report_once() {
    let site = Site::with_mail().create();
    // Two soft bounces for each of 3,000 readers: read once, none is
    // bounced (the limit is 3); a report counted twice would bounce them.
    let readers: Vec<String> = (0..3000).map(|i| format!("r{i:04}@example.net")).collect();
    site.subscribe(&readers);
    let mut messages = Vec::new();
    for round in 0..2 {
        for reader in &readers {
            messages.push(soft(&format!("m{round}-{reader}"), reader));
        }
    }
    site.write("reports.mbox", mbox(&messages));

    let mut child = site
        .newsletter(["bounces", "read", "reports.mbox"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Aimed: killed once the first batch of reports is recorded, with
    // more of them still to come (a batch is 1,000 of the 6,000).
    let db = rusqlite::Connection::open(site.path("newsletter.db")).unwrap();
    let recorded = || -> i64 {
        db.query_row("SELECT count(*) FROM bounces", [], |row| row.get(0))
            .unwrap_or(0)
    };
    let started = std::time::Instant::now();
    while recorded() == 0 && child.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no report recorded within 120 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    let killed_while_running = child.wait().unwrap().code().is_none();
    let at_kill = recorded();
    assert!(
        (1..6000).contains(&at_kill),
        "{at_kill} reports recorded when killed"
    );
    drop(db);

    read(&site, &["reports.mbox"]);
    let last = read(&site, &["reports.mbox"]);
    assert!(last.stdout.contains("6000 read before"), "{last}");
    let statuses = statuses(&site);
    assert_eq!(statuses.len(), 3000);
    let bounced = statuses.into_iter().filter(|(_, s)| s != "active").count();
    assert_eq!(bounced, 0, "a report was counted twice");
    assert!(
        killed_while_running,
        "the first run finished before it was killed: make the mbox larger"
    );
}

#[test]
fn verp_names_the_recipient_even_when_the_bounce_names_no_one() {
    let server = SmtpServer::start(&[]);
    let site = Site::with_mail().smtp(server.config("")).create();
    site.append_config("[bounces]\naddress = \"bounces@blog.example.org\"\n");
    site.subscribe(&["ann@example.net", "bob@example.net"]);
    let out = run(site
        .newsletter(["send", "--now", NOW])
        .env("NEWSLETTER_SECRET", SECRET))
    .success();
    assert!(out.stdout.contains("2 sent"), "{out}");
    let mut senders: Vec<(String, String)> = server
        .messages()
        .into_iter()
        .map(|m| (m.envelope.rcpt_tos[0].clone(), m.envelope.mail_from.clone()))
        .collect();
    senders.sort();
    for (to, from) in &senders {
        assert!(
            from.starts_with("bounces+d1.") && from.ends_with("@blog.example.org"),
            "MAIL FROM for {to}: {from}"
        );
    }
    assert_ne!(
        senders[0].1, senders[1].1,
        "each recipient has an address of their own"
    );
    // A bounce sent back to Bob's address that names someone else (a
    // forward) and quotes nothing; and one to a forged address.
    let bob_verp = &senders[1].1;
    let bounce = |id: &str, to: &str| {
        format!(
            "From: MAILER-DAEMON@mx.example.net\r\nTo: {to}\r\nMessage-ID: <{id}@mx.example.net>\r\n\
             Subject: Undelivered Mail Returned to Sender\r\n\r\n\
             <bob.forwarded@elsewhere.example>: host mx.elsewhere.example said: 550 5.1.1 User unknown\r\n"
        )
    };
    site.write("verp.eml", bounce("v1", bob_verp));
    let forged = bob_verp.replace("bounces+d1.", "bounces+d1.9");
    site.write("forged.eml", bounce("v2", &forged));
    let out = read(&site, &["verp.eml", "forged.eml"]);
    assert!(out.stdout.contains("now bounced: 1"), "{out}");
    assert!(
        out.stdout.contains("1 about addresses not on the list"),
        "{out}"
    );
    assert_eq!(status(&site, "bob@example.net"), "bounced");
    assert_eq!(status(&site, "ann@example.net"), "active");
}

/// A bounce's words are the remote server's (anyone's, for a reader on
/// their own domain): `digests show` printed the escape sequences in them
/// to the operator's terminal. They are kept without control characters.
#[test]
fn a_bounce_with_terminal_escapes_is_kept_without_them() {
    let site = Site::with_mail().create();
    site.subscribe(&["evil@example.net"]);
    let ids = sent_ids(&site);
    let words = "552 5.2.2 full \u{1b}]0;owned\u{7}\u{1b}[2J\u{1b}[1A";
    site.write(
        "escapes.eml",
        quoting(
            dsn("e1", "evil@example.net", "5.2.2", words),
            &ids["evil@example.net"],
        ),
    );
    let out = read(&site, &["escapes.eml"]);
    assert!(out.stdout.contains("1 soft bounce,"), "{out}");
    let shown = run(&mut site.newsletter(["digests", "show", "1"])).success();
    assert!(shown.stdout.contains("552 5.2.2 full"), "{shown}");
    assert!(
        !shown.stdout.contains(['\u{1b}', '\u{7}']),
        "{:?}",
        shown.stdout
    );
}

#[test]
fn digests_reports_each_outcome_and_warns_past_the_alert_rates() {
    let server = SmtpServer::start(&["--permfail", "gone@example.net"]);
    let site = Site::with_mail().smtp(server.config("")).create();
    site.append_config("[bounces]\naddress = \"bounces@blog.example.org\"\n");
    site.subscribe(&[
        "ann@example.net",
        "bob@example.net",
        "cy@example.net",
        "gone@example.net",
    ]);
    let out = run(site
        .newsletter(["send", "--now", NOW])
        .env("NEWSLETTER_SECRET", SECRET));
    assert!(out.stdout.contains("3 sent, 1 failed"), "{out}");
    // The 5.1.1 at RCPT alone is 25 % bounced: past the 5 % alert rate.
    assert!(
        out.stderr.contains("digest 1") && out.stderr.contains("bounced for 1 of 4"),
        "{out}"
    );
    let verp_of = |to: &str| {
        server
            .messages()
            .into_iter()
            .find(|m| m.envelope.rcpt_tos[0] == to)
            .unwrap()
            .envelope
            .mail_from
    };
    // A soft bounce to Bob's VERP address, a complaint quoting Cy's.
    site.write(
        "soft.eml",
        dsn(
            "late1",
            "bob@example.net",
            "4.2.2",
            "452 4.2.2 Mailbox full",
        )
        .replace(
            "To: newsletter@blog.example.org",
            &format!("To: {}", verp_of("bob@example.net")),
        ),
    );
    site.write(
        "complaint.eml",
        complaint("c9", "cy@example.net").replace(
            "Subject: complaint",
            &format!("To: {}\r\nSubject: complaint", verp_of("cy@example.net")),
        ),
    );
    let out = read(&site, &["soft.eml", "complaint.eml"]);
    assert!(
        out.stderr
            .contains("drew 1 spam complaints from 4 recipients"),
        "{out}"
    );

    let table = run(site
        .newsletter(["digests"])
        .env("NEWSLETTER_SECRET", SECRET))
    .success();
    let row: Vec<&str> = table.stdout.lines().nth(1).unwrap().split('\t').collect();
    // digest, date, recipients, sent, failed, pending, hard, soft,
    // complaints, unsubscribes, subject
    assert_eq!(&row[..1], ["1"], "{table}");
    assert_eq!(
        &row[2..10],
        ["4", "3", "1", "0", "1", "1", "1", "0"],
        "{table}"
    );
    let show = run(site
        .newsletter(["digests", "show", "1"])
        .env("NEWSLETTER_SECRET", SECRET))
    .success();
    for line in [
        "hard\tgone@example.net",
        "soft\tbob@example.net",
        "complaint\tcy@example.net",
        "sent\tann@example.net",
        "failed\tgone@example.net",
    ] {
        assert!(show.stdout.contains(line), "{line:?} in\n{show}");
    }
    let missing = run(site
        .newsletter(["digests", "show", "9"])
        .env("NEWSLETTER_SECRET", SECRET));
    assert_eq!(missing.code, Some(1));
    assert!(missing.stderr.contains("there is no digest 9"), "{missing}");
}

#[test]
fn bounces_read_imap_moves_what_it_handled_and_flags_the_rest() {
    use common::imap::{Dovecot, IMAP_PASSWORD};
    let dovecot = Dovecot::start();
    let site = Site::with_mail().create();
    site.append_config(&format!("[bounces]\nimap = \"{}\"\n", dovecot.url()));
    site.subscribe(&["gone@example.net", "spam@example.net", "stay@example.net"]);
    let ids = sent_ids(&site);
    dovecot.append(&[
        quoting(hard("i1", "gone@example.net"), &ids["gone@example.net"]),
        quoting(complaint("i2", "spam@example.net"), &ids["spam@example.net"]),
        "From: Stay <stay@example.net>\r\nSubject: Thanks\r\nMessage-ID: <i3@example.net>\r\n\r\nLovely.\r\n".to_string(),
        // 5 MB: no bounce is that large; flagged without being fetched.
        format!(
            "From: someone@example.org\r\nSubject: Undelivered Mail Returned to Sender\r\n\r\n{}\r\n",
            "x".repeat(5 << 20)
        ),
    ]);
    let read = |site: &Site| {
        run(site
            .newsletter(["bounces", "read", "--imap"])
            .env("NEWSLETTER_SECRET", SECRET)
            .env("NEWSLETTER_IMAP_PASSWORD", IMAP_PASSWORD))
    };
    let out = read(&site).success();
    assert!(
        out.stdout.contains("read 3 messages: 1 hard bounce,")
            && out.stdout.contains("moved 2 to Processed, flagged 2"),
        "{out}"
    );
    assert!(
        out.stderr.contains("UID 3") && out.stderr.contains("UID 4 (over 4 MB"),
        "{out}"
    );
    assert_eq!(status(&site, "gone@example.net"), "bounced");
    assert_eq!(status(&site, "spam@example.net"), "complained");
    assert_eq!(status(&site, "stay@example.net"), "active");
    // The mailbox as described: the two handled in Processed, the letter
    // flagged in INBOX, nothing deleted.
    assert_eq!(dovecot.count("INBOX"), (2, 2));
    assert_eq!(dovecot.count("Processed"), (2, 0));
    // A second pass finds nothing new (the flagged one is left alone).
    let again = read(&site).success();
    assert!(again.stdout.contains("read 0 messages"), "{again}");

    // A wrong password: a clear error naming the setting.
    let wrong = run(site
        .newsletter(["bounces", "read", "--imap"])
        .env("NEWSLETTER_IMAP_PASSWORD", "wrong"));
    assert_eq!(wrong.code, Some(1));
    assert!(
        wrong.stderr.contains("refused the login of bounces"),
        "{wrong}"
    );
}

#[test]
fn serve_reads_the_bounce_mailbox_as_mail_arrives() {
    use common::imap::{Dovecot, IMAP_PASSWORD};
    let dovecot = Dovecot::start();
    let port = common::server::free_port();
    let site = Site::with_mail().served_at(&port).create();
    site.append_config(&format!(
        "[bounces]\nimap = \"{}\"\npoll = \"10s\"\n",
        dovecot.url()
    ));
    site.subscribe(&["gone@example.net", "full@example.net"]);
    let ids = sent_ids(&site);
    let _server = common::server::Server::start(
        &site,
        port,
        &[],
        &[
            ("NEWSLETTER_IMAP_PASSWORD", IMAP_PASSWORD),
            ("NEWSLETTER_SECRET", SECRET),
        ],
    );
    // Arrives while serve runs: read at the next poll (at most 10 s).
    dovecot.append(&[
        quoting(hard("s1", "gone@example.net"), &ids["gone@example.net"]),
        soft("s2", "full@example.net"),
    ]);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while status(&site, "gone@example.net") != "bounced" {
        assert!(
            std::time::Instant::now() < deadline,
            "serve did not read the mailbox"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        status(&site, "full@example.net"),
        "active",
        "one soft bounce is not enough"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while dovecot.count("Processed") != (2, 0) {
        assert!(
            std::time::Instant::now() < deadline,
            "not moved: {:?}",
            dovecot.count("INBOX")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(dovecot.count("INBOX"), (0, 0));
}

#[test]
fn a_message_that_cannot_be_read_is_named_and_skipped_and_the_rest_are_recorded() {
    let site = Site::with_mail().create();
    let readers: Vec<String> = (0..300).map(|i| format!("r{i:03}@example.net")).collect();
    site.subscribe(&readers.iter().map(String::as_str).collect::<Vec<_>>());
    // 300 soft bounces, more than one batch of the reader, and among
    // them a message file no one can read (`/proc/self/mem` reads fail
    // with EIO, for root too).
    for (i, reader) in readers.iter().enumerate() {
        site.write(
            &format!("Maildir/cur/{i:03}.eml"),
            soft(&format!("m{i}"), reader),
        );
    }
    std::fs::create_dir_all(site.path("Maildir/new")).unwrap();
    let bad = site.path("Maildir/cur/150-bad.eml");
    std::os::unix::fs::symlink("/proc/self/mem", &bad).unwrap();

    let out = bounces_read(&site, &["Maildir"]).failure();
    assert!(
        out.stderr
            .contains("Maildir/cur/150-bad.eml: cannot be read (Input/output error"),
        "names the file: {out}"
    );
    assert!(
        out.stdout
            .contains("read 300 messages: 0 hard bounces, 300 soft bounces"),
        "{out}"
    );
    // Recorded: a rerun without the bad file finds every report read before.
    std::fs::remove_file(&bad).unwrap();
    let again = read(&site, &["Maildir"]);
    assert!(again.stdout.contains("300 read before"), "{again}");
}

#[test]
fn an_mbox_read_from_a_pipe_loses_no_message() {
    let site = Site::with_mail().create();
    site.subscribe(&["a@example.net", "b@example.net", "c@example.net"]);
    let messages = [
        soft("p1", "a@example.net"),
        soft("p2", "b@example.net"),
        soft("p3", "c@example.net"),
    ];
    let mut command = site.newsletter(["bounces", "read", "/dev/stdin"]);
    command
        .env("NEWSLETTER_SECRET", SECRET)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(mbox(&messages).as_bytes()).unwrap();
    }
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("read 3 messages: 0 hard bounces, 3 soft bounces"),
        "{stdout}"
    );
}

/// `zcat old.mbox.gz | newsletter bounces read`: standard input (the
/// default) holding an mbox is read message by message, as a PATH is. It
/// was read as one message: the first report counted, the rest lost, and
/// "read 1 messages" said all was well.
#[test]
fn an_mbox_on_standard_input_is_read_whole() {
    let site = Site::with_mail().create();
    site.subscribe(&["a@example.net", "b@example.net", "c@example.net"]);
    let messages = [
        soft("i1", "a@example.net"),
        soft("i2", "b@example.net"),
        hard("i3", "c@example.net"),
    ];
    let mut child = site
        .newsletter(["bounces", "read"])
        .env("NEWSLETTER_SECRET", SECRET)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(mbox(&messages).as_bytes()).unwrap();
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("read 3 messages: 1 hard bounce, 2 soft bounces"),
        "{stdout}"
    );
    // The same mbox as a file finds all three read before.
    site.write("again.mbox", mbox(&messages));
    let again = read(&site, &["again.mbox"]);
    assert!(again.stdout.contains("3 read before"), "{again}");
}

/// Postfix pipes one message to an alias's command with a "From " line
/// first and the body's lines that start "From " as they are (only an
/// mbox file gets them quoted). Such a message, read as an mbox, was cut
/// at the returned digest's "From now on" into a second "message", not
/// understood: the summary said 2 messages. A "From " line is a message's
/// start only when a header line follows it.
#[test]
fn a_message_piped_by_postfix_is_one_message_whatever_its_body_says() {
    let site = Site::with_mail().create();
    site.subscribe(&["a@example.net", "b@example.net"]);
    let returned = "--B\r\nContent-Type: message/rfc822\r\n\r\n\
                    From: Blog <news@blog.example.org>\r\nSubject: News\r\n\r\n\
                    Hello.\r\n\r\nFrom now on the digest comes weekly.\r\n\r\n\
                    From: the editors\r\n--B--\r\n";
    let piped = |report: String| {
        format!(
            "From MAILER-DAEMON  Thu Dec  3 07:00:00 2026\nReturn-Path: <>\n{}",
            report.replace("--B--\r\n", returned)
        )
    };
    let bounce_read = |input: String| {
        let mut child = site
            .newsletter(["bounces", "read"])
            .env("NEWSLETTER_SECRET", SECRET)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).unwrap();
        drop(stdin);
        let output = child.wait_with_output().unwrap();
        let out = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "{out}");
        out
    };
    let out = bounce_read(piped(soft("p1", "a@example.net")));
    assert!(
        out.contains("read 1 message: 0 hard bounces, 1 soft bounce"),
        "{out}"
    );
    assert!(out.contains("0 not understood"), "{out}");
    // An mbox of two such messages is still two.
    let two = piped(soft("p2", "a@example.net")) + "\n" + &piped(soft("p3", "b@example.net"));
    let out = bounce_read(two);
    assert!(
        out.contains("read 2 messages: 0 hard bounces, 2 soft bounces"),
        "{out}"
    );
    assert!(out.contains("0 not understood"), "{out}");
}

#[test]
fn a_folder_of_messages_skips_what_it_cannot_read_or_is_too_large() {
    let site = Site::with_mail().create();
    let readers = [
        "a@example.net",
        "b@example.net",
        "c@example.net",
        "d@example.net",
    ];
    site.subscribe(&readers);
    for (i, reader) in readers.iter().enumerate() {
        site.write(&format!("reports/{i}.eml"), soft(&format!("f{i}"), reader));
    }
    // A file that cannot be read between them, and a 5 MB one: no bounce.
    std::os::unix::fs::symlink("/proc/self/mem", site.path("reports/1-bad.eml")).unwrap();
    site.write(
        "reports/2-huge.eml",
        format!("Subject: x\r\n\r\n{}", "x".repeat(5 << 20)),
    );
    // And the same among several paths given.
    std::os::unix::fs::symlink("/proc/self/mem", site.path("bad.eml")).unwrap();

    let out = bounces_read(&site, &["bad.eml", "reports"]).failure();
    assert!(
        out.stdout
            .contains("read 4 messages: 0 hard bounces, 4 soft bounces"),
        "{out}"
    );
    for named in [
        "bad.eml",
        "reports/1-bad.eml",
        "reports/2-huge.eml: over 4 MB",
    ] {
        assert!(out.stderr.contains(named), "{named}: {out}");
    }
}

/// Choosing topics (from the CLI or the preference page) is no change of
/// status: soft bounces before it still count toward `bounces.soft_limit`,
/// so a reader who saves their topics between bounces is bounced on the
/// third as anyone else is.
#[test]
fn saving_topics_between_soft_bounces_does_not_wipe_them() {
    let site = Site::with_mail().create();
    site.append_config(
        "\n[[topics]]\nkey = \"releases\"\nlabel = \"Releases\"\ntags = [\"release\"]\n",
    );
    site.subscribe(&["r@example.net", "q@example.net"]);
    for (n, days) in [(1, 3), (2, 2)] {
        for who in ["r", "q"] {
            site.write(
                &format!("{who}{n}.eml"),
                dated(
                    soft(&format!("{who}{n}"), &format!("{who}@example.net")),
                    days,
                ),
            );
            read(&site, &[&format!("{who}{n}.eml")]);
        }
    }
    let topics = run(&mut site.newsletter([
        "subscribers",
        "topics",
        "r@example.net",
        "--set",
        "releases",
    ]))
    .success();
    assert!(topics.stdout.contains("now gets"), "{topics}");
    for who in ["r", "q"] {
        site.write(
            &format!("{who}3.eml"),
            dated(soft(&format!("{who}3"), &format!("{who}@example.net")), 1),
        );
        read(&site, &[&format!("{who}3.eml")]);
    }
    assert_eq!(status(&site, "q@example.net"), "bounced");
    assert_eq!(status(&site, "r@example.net"), "bounced");
}

/// A hard bounce written before a reader was reactivated, read late (an
/// old mbox), is recorded and changes nothing; one written after it
/// bounces them as before.
#[test]
fn an_old_hard_bounce_read_late_does_not_undo_a_reactivation() {
    let site = Site::with_mail().create();
    site.subscribe(&["gone@example.net"]);
    let first = sent_ids(&site);
    site.write(
        "h1.eml",
        quoting(hard("h1", "gone@example.net"), &first["gone@example.net"]),
    );
    read(&site, &["h1.eml"]);
    assert_eq!(status(&site, "gone@example.net"), "bounced");
    run(&mut site.newsletter(["subscribers", "reactivate", "gone@example.net"])).success();

    // Another copy of the same news, from another server, written a day
    // ago and read only now.
    site.write(
        "h2.eml",
        dated(
            quoting(hard("h2", "gone@example.net"), &first["gone@example.net"]),
            1,
        ),
    );
    let late = read(&site, &["h2.eml"]);
    assert!(late.stdout.contains("read 1 message"), "{late}");
    assert_eq!(status(&site, "gone@example.net"), "active");

    // A digest made after the reactivation, and its hard bounce.
    site.write(
        "content/2026-11-30-more.md",
        "---\ntitle: More news\ncreated_at: 2026-11-30\n---\n\nMore.\n",
    );
    std::fs::remove_dir_all(site.path("outbox")).unwrap();
    let out = run(site.newsletter(["send"]).env("NEWSLETTER_SECRET", SECRET)).success();
    assert!(out.stdout.contains("1 sent"), "{out}");
    let second = std::fs::read_dir(site.path("outbox"))
        .unwrap()
        .map(|e| common::smtp::mail_file(&e.unwrap().path()))
        .map(|m| m.header("Message-ID").to_string())
        .next()
        .unwrap();
    site.write("h3.eml", quoting(hard("h3", "gone@example.net"), &second));
    read(&site, &["h3.eml"]);
    assert_eq!(status(&site, "gone@example.net"), "bounced");
}
