//! `newsletter publish`: the cron-friendly run that builds the feeds with
//! the posts due by `--now` and sends the digest when the schedule says so.
//! Every moment is given with `--now`, so nothing here waits on the clock.

mod common;

use std::process::{Child, Stdio};
use std::time::Duration;

use common::mail_site::MailSite;
use common::server::{Server, free_port};
use common::smtp::{Hold, SmtpServer, count_eml, held_config, loopback_config};
use common::{Run, Site, finish_within, run};

const SECRET: &str = "test-secret-for-publish-tokens";

const READERS: [&str; 3] = ["a@example.net", "b@example.net", "c@example.net"];

/// The fixture blog with mail settings and three active subscribers, every
/// post new on the first run, mailing into its outbox unless told otherwise.
fn blog() -> MailSite {
    Site::with_mail().first_run_posts(10).subscribers(&READERS)
}

fn publish(site: &Site, now: &str, more: &[&str]) -> Run {
    run(site
        .newsletter(["publish", "--now", now])
        .args(more)
        .env("NEWSLETTER_SECRET", SECRET))
}

fn outbox(site: &Site) -> usize {
    count_eml(&site.path("outbox"))
}

#[test]
fn without_a_schedule_publish_builds_and_sends_only_when_told() {
    let site = blog().create();
    let out = publish(&site, "2026-11-25T00:00:00Z", &[]).success();
    assert!(out.stdout.contains("[schedule] digest is not set"), "{out}");
    assert!(site.path("public/atom.xml").exists());
    assert_eq!(outbox(&site), 0);

    let out = publish(&site, "2026-11-25T00:00:00Z", &["--send"]).success();
    assert!(out.stdout.contains("3 sent, 0 failed, 0 pending"), "{out}");
    assert_eq!(outbox(&site), 3);
}

#[test]
fn a_scheduled_post_reaches_feeds_and_digest_when_its_time_comes() {
    let site = blog().create();
    // The fixture's post dated 2026-12-01 10:00 UTC.
    publish(&site, "2026-12-01T09:59:59Z", &["--send"]).success();
    assert!(
        !site
            .read_text("public/atom.xml")
            .contains("Scheduled for December")
    );
    assert_eq!(outbox(&site), 3);

    let out = publish(&site, "2026-12-01T10:00:00Z", &["--send"]).success();
    assert!(
        site.read_text("public/atom.xml")
            .contains("Scheduled for December")
    );
    assert!(out.stdout.contains("3 sent"), "{out}");
    assert!(
        out.stdout.contains("Scheduled for December"),
        "the digest's subject: {out}"
    );
    assert_eq!(outbox(&site), 6);
}

#[test]
fn a_due_slot_sends_once_and_the_next_run_waits_for_the_next_slot() {
    let site = blog().schedule("digest = \"0 9 * * MON\"").create();
    // Wednesday: the last slot (Monday 23rd) is two days old, so it is skipped.
    let out = publish(&site, "2026-11-25T12:00:00Z", &[]).success();
    assert!(
        out.stdout
            .contains("skipped the digest slot of 2026-11-23T09:00:00+00:00"),
        "{out}"
    );
    assert_eq!(outbox(&site), 0);
    let out = publish(&site, "2026-11-25T12:10:00Z", &[]).success();
    assert!(
        out.stdout
            .contains("no digest due; the next slot is 2026-11-30T09:00:00+00:00"),
        "{out}"
    );

    // Monday 9:10: due, sent once; a second run in the same hour sends nothing.
    let out = publish(&site, "2026-11-30T09:10:00Z", &[]).success();
    assert!(
        out.stdout.contains("digest slot 2026-11-30T09:00:00+00:00"),
        "{out}"
    );
    assert!(out.stdout.contains("3 sent"), "{out}");
    assert_eq!(outbox(&site), 3);
    let out = publish(&site, "2026-11-30T09:20:00Z", &[]).success();
    assert!(out.stdout.contains("no digest due"), "{out}");
    assert_eq!(outbox(&site), 3);

    // The next slot carries the post that came due in between (1 December).
    let out = publish(&site, "2026-12-07T09:00:00Z", &[]).success();
    assert!(
        out.stdout
            .contains("\"Fixture Blog: Scheduled for December\": 3 sent"),
        "{out}"
    );
    assert_eq!(outbox(&site), 6);
    // And the one after, with nothing new, sends nothing.
    let out = publish(&site, "2026-12-14T09:00:00Z", &[]).success();
    assert!(out.stdout.contains("nothing to send"), "{out}");
    assert_eq!(outbox(&site), 6);
}

/// A slot marked handled by a clock that was years ahead (or a `--now` in
/// the future) does not stop the schedule until then: the next run says so
/// and goes back to now, and the next slot sends the news. A mark no later
/// than the next slot is kept, so nothing is sent twice.
#[test]
fn a_slot_marked_by_a_clock_that_was_ahead_does_not_stop_the_digests() {
    let site = blog().schedule("digest = \"0 9 * * MON\"").create();
    let out = publish(&site, "2099-06-01T09:00:00Z", &[]).success();
    assert!(out.stdout.contains("3 sent"), "{out}");
    assert_eq!(outbox(&site), 3);

    // The clock put right: the mark is handled a week before the next slot.
    let out = publish(&site, "2026-12-07T09:30:00Z", &[]).success();
    assert!(
        out.stderr.contains(
            "marks the digest slot of 2099-06-01T09:00:00+00:00 as handled, later than now"
        ),
        "{out}"
    );
    assert!(out.stdout.contains("no digest due"), "{out}");
    assert_eq!(outbox(&site), 3, "the slot of now was handled by the mark");

    site.write(
        "content/2026-12-10-news.md",
        "---\ntitle: News after the clock was put right\ncreated_at: 2026-12-10\n---\n\nNews.\n",
    );
    let out = publish(&site, "2026-12-14T09:00:00Z", &[]).success();
    assert!(
        out.stdout
            .contains("\"Fixture Blog: News after the clock was put right\": 3 sent"),
        "{out}"
    );
    assert_eq!(outbox(&site), 6);
    assert!(!out.stderr.contains("later than now"), "{out}");

    // A mark at the next slot (a run a moment later sent it) is kept.
    let out = publish(&site, "2026-12-21T09:00:00Z", &[]).success();
    assert!(out.stdout.contains("nothing to send"), "{out}");
    let out = publish(&site, "2026-12-21T08:59:59Z", &[]).success();
    assert!(!out.stderr.contains("later than now"), "{out}");
    assert!(out.stdout.contains("no digest due"), "{out}");
}

/// A run with a `--now` in the past (a look at the feeds as they were)
/// finds the store's mark after its next slot, as a clock that was ahead
/// would leave it, but must not move the mark back: the slot already sent
/// would be due again for the next real run, and a post published since
/// would go out in a second digest of that slot.
#[test]
fn a_run_with_a_now_in_the_past_does_not_make_a_sent_slot_due_again() {
    let site = blog().schedule("digest = \"0 9 * * MON\"").create();
    let out = publish(&site, "2026-11-30T09:10:00Z", &[]).success();
    assert!(out.stdout.contains("3 sent"), "{out}");
    site.write(
        "content/2026-11-30-later.md",
        "---\ntitle: Later that morning\ncreated_at: 2026-11-30T10:00:00Z\n---\n\nNews.\n",
    );

    let out = publish(&site, "2026-11-02T10:00:00Z", &[]).success();
    assert!(out.stdout.contains("no digest due"), "{out}");

    let out = publish(&site, "2026-11-30T10:30:00Z", &[]).success();
    assert!(out.stdout.contains("no digest due"), "{out}");
    assert_eq!(outbox(&site), 3, "slot 2026-11-30 was sent once already");
}

#[test]
fn a_missed_slot_is_caught_up_within_catch_up_and_skipped_after() {
    let site = blog()
        .schedule("digest = \"0 9 * * MON\"\ncatch_up = \"6h\"")
        .create();
    publish(&site, "2026-11-29T12:00:00Z", &[]).success();
    // Monday 15:00, six hours after the slot: still caught up.
    let out = publish(&site, "2026-11-30T15:00:00Z", &[]).success();
    assert!(out.stdout.contains("3 sent"), "{out}");

    let late = blog()
        .schedule("digest = \"0 9 * * MON\"\ncatch_up = \"6h\"")
        .create();
    publish(&late, "2026-11-29T12:00:00Z", &[]).success();
    // Six hours and a minute: skipped, never a stale digest.
    let out = publish(&late, "2026-11-30T15:01:00Z", &[]).success();
    assert!(out.stdout.contains("skipped the digest slot"), "{out}");
    assert_eq!(outbox(&late), 0);
}

#[test]
fn slots_follow_local_time_across_a_daylight_saving_change() {
    let site = blog()
        .schedule("digest = \"0 9 * * SUN\"\ncatch_up = \"1h\"")
        .create();
    site.replace_in_config("timezone = \"UTC\"", "timezone = \"Europe/Berlin\"");
    // Sunday 18 October 2026, 09:00 CEST = 07:00 UTC.
    let out = publish(&site, "2026-10-18T07:05:00Z", &[]).success();
    assert!(
        out.stdout.contains("digest slot 2026-10-18T07:00:00+00:00"),
        "{out}"
    );
    // Clocks go back on 25 October: 09:00 CET = 08:00 UTC. At 07:30 UTC
    // (08:30 local) nothing is due yet.
    let out = publish(&site, "2026-10-25T07:30:00Z", &[]).success();
    assert!(
        out.stdout
            .contains("no digest due; the next slot is 2026-10-25T08:00:00+00:00"),
        "{out}"
    );
    let out = publish(&site, "2026-10-25T08:00:00Z", &[]).success();
    assert!(
        out.stdout.contains("digest slot 2026-10-25T08:00:00+00:00"),
        "{out}"
    );
}

#[test]
fn an_unfinished_digest_is_resumed_by_the_next_publish() {
    // A server that refuses every message for now: the digest stays pending.
    let refusing = SmtpServer::start(&[
        "--tempfail",
        "a@example.net",
        "b@example.net",
        "c@example.net",
        "--tempfail-times",
        "1000",
    ]);
    let site = blog().smtp(refusing.config("")).create();
    let out = publish(&site, "2026-11-25T00:00:00Z", &["--send"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stdout.contains("3 pending"), "{out}");

    let accepting = SmtpServer::start(&[]);
    site.replace_in_config(
        &format!("port = {}", refusing.port),
        &format!("port = {}", accepting.port),
    );
    // No schedule, no --send: publish still finishes what was started.
    let out = publish(&site, "2026-11-25T00:10:00Z", &[]).success();
    assert!(out.stdout.contains("digest 1"), "{out}");
    assert!(out.stdout.contains("3 sent, 0 failed, 0 pending"), "{out}");
    assert_eq!(
        accepting.recipients(),
        ["a@example.net", "b@example.net", "c@example.net"]
    );
}

#[test]
fn a_slot_whose_delivery_failed_is_resumed_not_sent_again_as_a_second_digest() {
    // The SMTP server is unreachable at the slot: the digest is made, nothing goes out.
    let closed = common::hub::closed_port();
    let site = blog()
        .schedule("digest = \"0 9 * * MON\"")
        .smtp(loopback_config(closed, "timeout = 2"))
        .create();
    publish(&site, "2026-11-29T12:00:00Z", &[]).success();
    let out = publish(&site, "2026-11-30T09:00:30Z", &[]);
    assert_eq!(out.code, Some(1), "{out}");

    // A post comes due, the server comes back: the slot's digest is resumed
    // and no second digest is made for the same slot.
    site.write(
        "content/later.md",
        "---\ntitle: Due after the slot\ncreated_at: 2026-11-30T09:02:00Z\n---\nLater.\n",
    );
    let accepting = SmtpServer::start(&[]);
    site.replace_in_config(
        &format!("port = {closed}"),
        &format!("port = {}", accepting.port),
    );
    let out = publish(&site, "2026-11-30T09:05:00Z", &[]).success();
    assert!(out.stdout.contains("digest 1"), "{out}");
    assert_eq!(accepting.recipients().len(), 3, "one digest each");
    assert!(!out.stdout.contains("digest 2"), "{out}");
    // The new post waits for the next slot (with the one of 1 December).
    let out = publish(&site, "2026-12-07T09:00:00Z", &[]).success();
    assert!(
        out.stdout
            .contains("digest 2 \"Fixture Blog: Scheduled for December and 1 more\": 3 sent"),
        "{out}"
    );
    let texts: Vec<String> = accepting
        .messages()
        .iter()
        .map(|m| m.part("text/plain").to_string())
        .collect();
    assert_eq!(texts.len(), 6);
    assert_eq!(
        texts
            .iter()
            .filter(|t| t.contains("Due after the slot"))
            .count(),
        3
    );
}

/// `publish --now NOW ARGS` started in the background, its output piped.
fn spawn_publish(site: &Site, now: &str, more: &[&str]) -> Child {
    site.newsletter(["publish", "--now", now])
        .args(more)
        .env("NEWSLETTER_SECRET", SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start newsletter publish")
}

/// Waits for `child` (a minute at most: one that got past the send lock
/// while the server holds the messages would wait for good).
#[track_caller]
fn finish(child: Child) -> Run {
    finish_within(child, Duration::from_secs(60), "newsletter")
}

const BUSY: &str = "another `newsletter send` is delivering right now; this run sent nothing";

/// How many copies of each reader the server received.
fn copies(server: &SmtpServer) -> Vec<(String, usize)> {
    let mut copies: Vec<(String, usize)> = Vec::new();
    for to in server.recipients() {
        match copies.last_mut() {
            Some((last, n)) if *last == to => *n += 1,
            _ => copies.push((to, 1)),
        }
    }
    copies
}

/// A `publish --send` from cron while a hand-run `send` is delivering says
/// so and exits 0, having built the feeds and sent nothing; nobody gets
/// two copies.
#[test]
fn publish_while_a_send_delivers_says_so_exits_0_and_nobody_gets_two() {
    // The server holds the messages: the send is mid-message, holding the
    // send lock, until the publishes are done.
    let hold = Hold::new();
    hold.on();
    let server = SmtpServer::start(&["--hold-file", &hold.arg()]);
    let site = blog().smtp(held_config(server.port, 1)).create();
    let send = site
        .newsletter(["send", "--now", "2026-11-25T00:00:00Z"])
        .env("NEWSLETTER_SECRET", SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    server.wait_for_logged("fault=hold", 1);

    let publishes: Vec<Child> = (0..3)
        .map(|_| spawn_publish(&site, "2026-11-25T00:10:00Z", &["--send"]))
        .collect();
    for publish in publishes {
        let out = finish(publish).success();
        assert!(out.stdout.contains(BUSY), "{out}");
        assert!(!out.stdout.contains(" sent, "), "{out}");
    }
    assert!(
        site.path("public/atom.xml").exists(),
        "the feeds were built"
    );
    assert_eq!(
        server.logged(" rcpt peer="),
        1,
        "only the send's first message"
    );

    hold.off();
    let send = finish(send).success();
    assert!(
        send.stdout.contains("3 sent, 0 failed, 0 pending"),
        "{send}"
    );
    let once: Vec<(String, usize)> = READERS.iter().map(|r| (r.to_string(), 1)).collect();
    assert_eq!(copies(&server), once);
    // Nothing left to send afterwards either.
    let out = publish(&site, "2026-11-25T00:20:00Z", &["--send"]).success();
    assert!(out.stdout.contains("nothing to send"), "{out}");
    assert_eq!(copies(&server), once);
}

/// `serve` with a digest schedule and `publish` from cron at the same
/// slot, each way round (the server delivering when cron runs, cron
/// delivering when the server's scheduler wakes): every reader gets each
/// slot's digest once.
#[test]
fn publish_from_cron_while_serve_runs_the_schedule_never_sends_a_digest_twice() {
    let hold = Hold::new();
    let server = SmtpServer::start(&["--hold-file", &hold.arg()]);
    let port = free_port();
    let site = blog()
        .schedule("digest = \"0 9 * * MON\"")
        .public_url(&format!("http://127.0.0.1:{port}/"))
        .smtp(held_config(server.port, 1))
        .create();
    let serve = |port, now: &str| {
        Server::start(
            &site,
            port,
            &["--now", now],
            &[("NEWSLETTER_SECRET", SECRET), ("NEWSLETTER_LOG", "debug")],
        )
    };
    let publishes = |now: &str| -> Vec<Run> {
        let children: Vec<Child> = (0..4).map(|_| spawn_publish(&site, now, &[])).collect();
        children.into_iter().map(finish).collect()
    };

    // Monday 30 November at 9:00: the server's scheduler makes the slot's
    // digest and delivers it, held mid-message, while cron runs four times.
    hold.on();
    let first = serve(port, "2026-11-30T09:00:00Z");
    server.wait_for_logged("fault=hold", 1);
    for out in publishes("2026-11-30T09:00:30Z") {
        let out = out.success();
        assert!(out.stdout.contains(BUSY), "{out}");
    }
    hold.off();
    first.wait_for_log("digest delivered", Duration::from_secs(60));
    // Cron again in the same hour, four at once: the slot is handled (or
    // another of the four is deciding that just then).
    for out in publishes("2026-11-30T09:10:00Z") {
        let out = out.success();
        assert!(
            out.stdout.contains("no digest due") || out.stdout.contains(BUSY),
            "{out}"
        );
    }
    let once: Vec<(String, usize)> = READERS.iter().map(|r| (r.to_string(), 1)).collect();
    assert_eq!(copies(&server), once);
    drop(first);

    // Monday 7 December at 9:00 (a post came due on the 1st): cron is
    // first and delivers, held mid-message, when the server starts and
    // its scheduler finds the slot due.
    hold.on();
    let cron = spawn_publish(&site, "2026-12-07T09:00:10Z", &[]);
    server.wait_for_logged("fault=hold", 2);
    let port = free_port();
    let second = serve(port, "2026-12-07T09:00:20Z");
    second.wait_for_log("another send is delivering", Duration::from_secs(60));
    hold.off();
    let cron = finish(cron).success();
    assert!(
        cron.stdout
            .contains("digest slot 2026-12-07T09:00:00+00:00")
            && cron.stdout.contains("3 sent, 0 failed, 0 pending"),
        "{cron}"
    );
    drop(second);
    // A server started later in that hour finds the slot handled: its
    // scheduler goes to sleep having sent nothing.
    let port = free_port();
    let third = serve(port, "2026-12-07T09:30:00Z");
    third.wait_for_log("scheduler sleeping", Duration::from_secs(60));
    assert!(!third.log_has("digest delivered"), "{:?}", third.logs());
    let twice: Vec<(String, usize)> = READERS.iter().map(|r| (r.to_string(), 2)).collect();
    assert_eq!(copies(&server), twice);
    let subjects: Vec<String> = server
        .messages()
        .iter()
        .map(|m| m.header("Subject").to_string())
        .collect();
    assert_eq!(
        subjects
            .iter()
            .filter(|s| s.contains("Scheduled for December"))
            .count(),
        3,
        "{subjects:?}"
    );
}
