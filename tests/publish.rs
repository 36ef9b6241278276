//! `newsletter publish`: the cron-friendly run that builds the feeds with
//! the posts due by `--now` and sends the digest when the schedule says so.
//! Every moment is given with `--now`, so nothing here waits on the clock.

mod common;

use common::mail_site::MailSite;
use common::smtp::{SmtpServer, count_eml, loopback_config};
use common::{Run, Site, run};

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
