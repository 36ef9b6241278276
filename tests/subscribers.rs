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
}
