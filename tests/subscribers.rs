//! `newsletter subscribers`: the files people bring from elsewhere, the
//! round trip through our own export, and erasure, through the binary.

mod common;

use common::mail_site::addresses;
use common::server::{cli, statuses};
use common::{NOW, Site};

#[test]
fn mailchimp_and_substack_exports_are_recognised_and_said() {
    let site = Site::with_mail().create();
    site.write(
        "unsubscribed_members_export_5d1c.csv",
        "\u{feff}\"Email Address\",\"First Name\",\"Last Name\",UNSUB_TIME\n\
         gone@example.org,Gia,Ng,\"2025-01-01 10:00:00\"\n",
    );
    let out = cli(
        &site,
        &[
            "subscribers",
            "import",
            "unsubscribed_members_export_5d1c.csv",
        ],
    )
    .success();
    assert!(
        out.stdout
            .contains("as a Mailchimp export (every row unsubscribed"),
        "{out:?}"
    );
    site.write(
        "email_list.csv",
        "email,active_subscription,expiry,plan,email_disabled,created_at\n\
         free@example.org,false,,,false,2024-02-03T04:05:06.000Z\n\
         gone@example.org,true,,,false,2024-02-03T04:05:06.000Z\n",
    );
    let out = cli(&site, &["subscribers", "import", "email_list.csv"]).success();
    assert!(out.stdout.contains("as a Substack export"), "{out:?}");
    assert!(
        out.stdout.contains("imported 1 new, 1 already there"),
        "{out:?}"
    );
    // Whatever Substack says, the Mailchimp unsubscribe stands.
    assert_eq!(
        statuses(&site),
        [
            ("gone@example.org".to_string(), "unsubscribed".to_string()),
            ("free@example.org".to_string(), "active".to_string()),
        ]
    );
    let list = cli(&site, &["subscribers", "list"]).success();
    assert!(
        list.stdout.contains("gone@example.org\tGia Ng\t"),
        "{list:?}"
    );
}

#[test]
fn forget_erases_the_reader_and_their_deliveries_and_imports_skip_them() {
    let site = Site::with_mail().subscribers(&addresses(2)).create();
    cli(&site, &["send", "--now", NOW]).success();
    let gone = &addresses(2)[0];
    let out = cli(&site, &["subscribers", "remove", "--forget", gone]).success();
    assert!(out.stdout.contains("erased"), "{out:?}");

    // No trace of the address in the store file, nor in its write-ahead log
    // once SQLite has checkpointed it (the next open does).
    cli(&site, &["subscribers", "list"]).success();
    for file in ["newsletter.db", "newsletter.db-wal"] {
        if let Ok(bytes) = std::fs::read(site.path(file)) {
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains(gone.as_str()), "{file} still holds {gone}");
        }
    }
    let export = cli(&site, &["subscribers", "export"]).success();
    assert!(!export.stdout.contains(gone.as_str()), "{export:?}");
    // The other reader is still there: the export is not just empty.
    let kept = &addresses(2)[1];
    assert_eq!(export.stdout.lines().count(), 2, "{export:?}");
    assert!(
        export
            .stdout
            .lines()
            .nth(1)
            .unwrap()
            .starts_with(&format!("{kept},")),
        "{export:?}"
    );

    site.write("again.csv", format!("email\n{}\n", gone.to_uppercase()));
    let out = cli(&site, &["subscribers", "import", "again.csv"]).success();
    assert!(
        out.stdout
            .contains("imported 0 new, 0 already there, 0 now unsubscribed or bounced as the file says, 1 erased earlier"),
        "{out:?}"
    );
}

#[test]
fn erasure_and_imports_wait_for_a_running_send_instead_of_failing() {
    let server = common::smtp::SmtpServer::start(&["--delay", "0.002"]);
    let site = Site::with_mail()
        .smtp(server.config("connections = 4"))
        .subscribers(&addresses(1500))
        .create();
    let mut send = site.newsletter(["send", "--now", NOW]);
    send.env("NEWSLETTER_SECRET", common::server::SECRET)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut sending = send.spawn().unwrap();
    server.wait_for(20, std::time::Duration::from_secs(30));
    let mut done = 0;
    for i in 0..15 {
        let gone = &addresses(1500)[1400 + i];
        cli(&site, &["subscribers", "remove", "--forget", gone]).success();
        site.write("one.csv", format!("email\nlate{i}@example.org\n"));
        cli(&site, &["subscribers", "import", "one.csv"]).success();
        done += 1;
        if sending.try_wait().unwrap().is_some() {
            break;
        }
    }
    assert!(sending.wait().unwrap().success());
    assert!(
        done >= 3,
        "the send ended before the test could race it ({done})"
    );
    // Each erasure and each import took: as many readers as at the start,
    // the late ones among them and the erased ones not.
    let now = statuses(&site);
    assert_eq!(now.len(), 1500);
    for i in 0..done {
        assert!(
            now.iter()
                .any(|(e, _)| *e == format!("late{i}@example.org"))
        );
        assert!(!now.iter().any(|(e, _)| *e == addresses(1500)[1400 + i]));
    }
}

/// `[[topics]]` of the sites below: three topics, in this order.
const TOPICS: &str = "[[topics]]\nkey = \"releases\"\nlabel = \"Release announcements\"\n\
                      tags = [\"release\"]\n\n\
                      [[topics]]\nkey = \"community\"\nlabel = \"Community news\"\n\
                      tags = [\"events\"]\n\n\
                      [[topics]]\nkey = \"docs\"\nlabel = \"Documentation\"\ntags = [\"docs\"]\n";

fn site_with_topics() -> Site {
    let site = Site::with_mail().create();
    site.append_config(TOPICS);
    site
}

/// The `yes`/`no` lines of `subscribers topics EMAIL`, as `key=yes`.
fn topics_shown(site: &Site, email: &str) -> (String, Vec<String>) {
    let out = cli(site, &["subscribers", "topics", email])
        .success()
        .stdout;
    let rows = out
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f.len() == 3).then(|| format!("{}={}", f[1], f[0]))
        })
        .collect();
    (out, rows)
}

#[test]
fn add_with_topics_stores_them_and_topics_shows_and_sets_them() {
    let site = site_with_topics();
    let out = cli(
        &site,
        &[
            "subscribers",
            "add",
            "Ann@Example.org",
            "--topics",
            "community, releases",
        ],
    )
    .success();
    assert_eq!(
        out.stdout,
        "added Ann@example.org with the topics releases, community\n"
    );
    let (shown, rows) = topics_shown(&site, "ann@EXAMPLE.org");
    assert!(shown.contains("chose 2 of 3 topics"), "{shown}");
    assert!(
        shown.contains("yes\treleases\tRelease announcements"),
        "{shown}"
    );
    assert_eq!(rows, ["releases=yes", "community=yes", "docs=no"]);

    // Added again: the choice stays, and the line says where to change it.
    let out = cli(
        &site,
        &["subscribers", "add", "ann@example.org", "--topics", "docs"],
    )
    .success();
    assert!(
        out.stdout.contains("already a subscriber")
            && out
                .stdout
                .contains("subscribers topics ann@example.org --set"),
        "{out:?}"
    );
    assert_eq!(
        topics_shown(&site, "ann@example.org").1,
        ["releases=yes", "community=yes", "docs=no"]
    );

    let out = cli(
        &site,
        &["subscribers", "topics", "ann@example.org", "--set", "docs"],
    )
    .success();
    assert!(
        out.stdout
            .starts_with("Ann@example.org now gets the topics docs\n"),
        "{out:?}"
    );
    assert_eq!(
        topics_shown(&site, "ann@example.org").1,
        ["releases=no", "community=no", "docs=yes"]
    );
    cli(
        &site,
        &["subscribers", "topics", "ann@example.org", "--set", "all"],
    )
    .success();
    let (shown, rows) = topics_shown(&site, "ann@example.org");
    assert!(
        shown.contains("never chose, so they get every topic, including ones added later"),
        "{shown}"
    );
    assert_eq!(rows, ["releases=yes", "community=yes", "docs=yes"]);

    // Without --topics: every topic, as before topics.
    cli(&site, &["subscribers", "add", "bob@example.org"]).success();
    assert!(
        topics_shown(&site, "bob@example.org")
            .0
            .contains("never chose")
    );

    let out = cli(&site, &["subscribers", "topics", "nobody@example.org"]).exit_code(1);
    assert!(
        out.stderr
            .contains("nobody@example.org is not a subscriber"),
        "{out:?}"
    );
}

#[test]
fn a_topic_the_site_does_not_have_is_refused_with_exit_code_1() {
    let site = site_with_topics();
    let out = cli(
        &site,
        &[
            "subscribers",
            "add",
            "ann@example.org",
            "--topics",
            "releases,news",
        ],
    )
    .exit_code(1);
    assert!(
        out.stderr.contains("\"news\" is not a topic")
            && out.stderr.contains("releases, community, docs"),
        "{out:?}"
    );
    assert!(statuses(&site).is_empty(), "nobody is added");

    cli(&site, &["subscribers", "add", "ann@example.org"]).success();
    for set in ["news", ",", ""] {
        let out = cli(
            &site,
            &["subscribers", "topics", "ann@example.org", "--set", set],
        )
        .exit_code(1);
        assert!(out.stderr.contains("--set"), "{set:?}: {out:?}");
    }
    assert!(
        topics_shown(&site, "ann@example.org")
            .0
            .contains("never chose")
    );

    // A site without topics says so.
    let plain = Site::with_mail().create();
    let out = cli(
        &plain,
        &[
            "subscribers",
            "add",
            "ann@example.org",
            "--topics",
            "releases",
        ],
    )
    .exit_code(1);
    assert!(
        out.stderr.contains("the site has no topics") && out.stderr.contains("[[topics]]"),
        "{out:?}"
    );
    assert!(statuses(&plain).is_empty());
}

#[test]
fn export_then_import_keeps_each_subscribers_topics() {
    let site = site_with_topics();
    for (email, topics) in [
        ("a@example.org", Some("releases")),
        ("b@example.org", None),
        ("c@example.org", Some("docs,community")),
    ] {
        let mut args = vec!["subscribers", "add", email];
        if let Some(topics) = topics {
            args.extend(["--topics", topics]);
        }
        cli(&site, &args).success();
    }
    let export = cli(&site, &["subscribers", "export"]).success().stdout;
    let header = export.lines().next().unwrap();
    assert_eq!(header, "email,name,status,created_at,key,topics");
    assert_eq!(export.lines().count(), 4, "{export}");
    assert!(export.contains(",releases\n"), "{export}");
    assert!(export.contains(",\"community,docs\"\n"), "{export}");

    // Into a fresh store.
    let other = site_with_topics();
    other.write("export.csv", &export);
    let out = cli(&other, &["subscribers", "import", "export.csv"]).success();
    assert!(out.stdout.contains("imported 3 new"), "{out:?}");
    assert_eq!(
        cli(&other, &["subscribers", "export"]).success().stdout,
        export
    );
    assert_eq!(
        topics_shown(&other, "c@example.org").1,
        ["releases=no", "community=yes", "docs=yes"]
    );
    assert!(
        topics_shown(&other, "b@example.org")
            .0
            .contains("never chose")
    );
}

#[test]
fn an_import_naming_a_topic_the_site_does_not_have_imports_nothing() {
    let site = site_with_topics();
    site.write(
        "list.csv",
        "email,name,topics\nann@example.org,Ann,releases\nbob@example.org,Bob,\"docs,news\"\n\
         cy@example.org,Cy,\n",
    );
    let out = cli(&site, &["subscribers", "import", "list.csv"]).exit_code(1);
    assert!(
        out.stderr.contains("list.csv:3: topics \"docs,news\"")
            && out.stderr.contains("\"news\" is not a topic")
            && out.stderr.contains("nothing was imported"),
        "{out:?}"
    );
    assert!(statuses(&site).is_empty(), "{:?}", statuses(&site));
}

#[test]
fn check_warns_of_a_topic_chosen_that_the_config_no_longer_has() {
    let site = site_with_topics();
    // No store yet: check makes none.
    site.check().success();
    assert!(!site.path("newsletter.db").exists());

    for email in ["a@example.org", "b@example.org"] {
        cli(
            &site,
            &["subscribers", "add", email, "--topics", "docs,releases"],
        )
        .success();
    }
    cli(
        &site,
        &[
            "subscribers",
            "add",
            "c@example.org",
            "--topics",
            "community",
        ],
    )
    .success();
    let out = site.check().success();
    assert!(!out.stderr.contains("topic"), "{out:?}");

    site.replace_in_config(
        "[[topics]]\nkey = \"docs\"\nlabel = \"Documentation\"\ntags = [\"docs\"]\n",
        "",
    );
    let out = site.check().success();
    assert!(
        out.stderr.contains(
            "warning: topic \"docs\" was chosen by 2 subscriber(s) but is not in [[topics]]"
        ) && out.stderr.contains("no longer get anything for it"),
        "{out:?}"
    );
    assert!(!out.stderr.contains("\"community\""), "{out:?}");
    assert!(
        topics_shown(&site, "a@example.org")
            .0
            .contains("they also chose \"docs\""),
    );
}

/// A bounce arriving after an erasure (a late one, or the reader's own
/// complaint after asking to be forgotten) names the erased address. It
/// was recorded as a report about someone not on the list, with the
/// address three times over (its identity, recipient and words): the
/// store held the address again. It is now kept under a hash only, and
/// still counts once.
#[test]
fn a_report_arriving_after_an_erasure_brings_no_trace_back() {
    let site = Site::with_mail().subscribers(&addresses(2)).create();
    cli(&site, &["send", "--now", NOW]).success();
    let gone = &addresses(2)[0];
    cli(&site, &["subscribers", "remove", "--forget", gone]).success();
    site.write(
        "late.eml",
        format!(
            "From: MAILER-DAEMON@mx.example.net\r\nTo: newsletter@blog.example.org\r\n\
             Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <late@mx.example.net>\r\n\
             MIME-Version: 1.0\r\n\
             Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
             --B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n\
             Final-Recipient: rfc822; {gone}\r\nAction: failed\r\nStatus: 5.1.1\r\n\
             Diagnostic-Code: smtp; 550 5.1.1 <{gone}>: User unknown\r\n\r\n--B--\r\n"
        ),
    );
    site.write(
        "leave.eml",
        format!("From: {gone}\r\nTo: leave@blog.example.org\r\nSubject: unsubscribe\r\n\r\nunsubscribe\r\n"),
    );
    let out = cli(&site, &["bounces", "read", "late.eml", "leave.eml"]).success();
    assert!(
        out.stdout.contains("2 about addresses not on the list"),
        "{out:?}"
    );
    let again = cli(&site, &["bounces", "read", "late.eml", "leave.eml"]).success();
    assert!(again.stdout.contains("2 read before"), "{again:?}");
    cli(&site, &["subscribers", "list"]).success();
    for file in ["newsletter.db", "newsletter.db-wal"] {
        if let Ok(bytes) = std::fs::read(site.path(file)) {
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains(gone.as_str()), "{file} holds {gone} again");
        }
    }
}
