//! The sign-up page and the home page's form in a real browser:
//! `tests/browser_signup.py` drives headless Chromium (Debian's `chromium`
//! and `chromium-driver`, which `scripts/test` installs) with Selenium
//! against `newsletter serve`, typing as a person would; this test checks
//! what the browser saw and what the server did with it. The screenshots
//! are kept in
//! `target/test-artifacts/subscribe-*.png`. The preference page is operated
//! with the keyboard alone by `tests/browser_preferences.py`.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::server::{cli, free_port, start};
use common::smtp::SmtpServer;
use common::{Site, manifest_dir, python, run};
use serde::Deserialize;

const EMAIL: &str = "reader+browser@example.net";
const NAME: &str = "Ann Reader";

/// What `tests/browser_signup.py` reports (see its docstring).
#[derive(Debug, Deserialize)]
struct Report {
    form: Form,
    blocked: Blocked,
    invalid: Invalid,
    signup: Page,
    /// The confirm link opened: a page with one button.
    opened: Opened,
    /// The answer to that button.
    confirmed: Page,
    console: Console,
}

#[derive(Debug, Deserialize)]
struct Opened {
    #[serde(flatten)]
    page: Page,
    /// The button's accessible name.
    button: String,
}

/// What the browser logged in each visit.
#[derive(Debug, Deserialize)]
struct Console {
    blocked: Vec<String>,
    invalid: Vec<String>,
    signup: Vec<String>,
    confirm: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Page {
    url: String,
    title: String,
    h1: Option<String>,
    lang: Option<String>,
    /// The HTTP status of the page's navigation, as the browser saw it.
    status: Option<u16>,
    content_type: String,
    charset: String,
}

#[derive(Debug, Deserialize)]
struct Form {
    #[serde(flatten)]
    page: Page,
    email_label: Option<String>,
    email_accessible_name: String,
    name_label: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Blocked {
    navigated: bool,
    url_before: String,
    url_after: String,
    validation_message: String,
}

#[derive(Debug, Deserialize)]
struct Invalid {
    #[serde(flatten)]
    page: Page,
    alert: Option<String>,
    alert_id: Option<String>,
    aria_invalid: Option<String>,
    described_by: Option<String>,
    value: String,
}

#[test]
fn signing_up_in_a_browser_sends_a_confirmation_and_after_the_click_a_welcome() {
    for program in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
        assert!(
            Path::new(program).is_file(),
            "{program} is missing: this test needs Debian's chromium and chromium-driver \
             (scripts/test installs them)"
        );
    }
    let port = free_port();
    // A real SMTP server: the confirmation, then the welcome mail the
    // server sends in the background after the confirm click.
    let smtp = SmtpServer::start(&[]);
    let site = Site::with_mail()
        .served_at(&port)
        .smtp(smtp.config(""))
        .create();
    let server = start(&site, port);
    let artifacts = artifacts_dir();
    let shot = |name: &str| artifacts.join(format!("subscribe-{name}.png"));
    for name in ["form", "error", "sent", "confirmed"] {
        let _ = std::fs::remove_file(shot(name));
    }

    let mut script = std::process::Command::new(python());
    script
        .arg(manifest_dir().join("tests/browser_signup.py"))
        .args(["--url", &server.base, "--email", EMAIL, "--name", NAME])
        .arg("--form-shot")
        .arg(shot("form"))
        .arg("--error-shot")
        .arg(shot("error"))
        .arg("--sent-shot")
        .arg(shot("sent"))
        .arg("--outbox")
        .arg(&smtp.maildir)
        .arg("--confirmed-shot")
        .arg(shot("confirmed"));
    let started = Instant::now();
    let browsed = run(&mut script);
    assert_eq!(
        browsed.code,
        Some(0),
        "browser_signup.py failed\n{browsed}\n--- server log\n{}",
        server.logs().join("\n")
    );
    println!(
        "the browser took {:?}: {}",
        started.elapsed(),
        browsed.stdout.trim()
    );
    let report: Report = serde_json::from_str(&browsed.stdout)
        .unwrap_or_else(|e| panic!("browser_signup.py printed bad JSON ({e})\n{browsed}"));

    // The form as the home page serves it (/subscribe's, posting there):
    // a language, labels a screen reader announces.
    let form = &report.form;
    assert_eq!(form.page.status, Some(200), "{report:#?}");
    assert_eq!(form.page.url, server.url("/"));
    assert_eq!(form.page.lang.as_deref(), Some("en"), "{report:#?}");
    assert_eq!(form.page.title, "Fixture Blog");
    assert_eq!(form.page.h1.as_deref(), Some("Fixture Blog"));
    assert_eq!(form.email_label.as_deref(), Some("Email address"));
    assert_eq!(form.email_accessible_name, "Email address");
    assert!(
        form.name_label
            .as_deref()
            .is_some_and(|l| l.starts_with("Name")),
        "{report:#?}"
    );

    // The browser's own check of type=email keeps the form from being sent.
    let blocked = &report.blocked;
    assert!(!blocked.navigated, "{report:#?}");
    assert_eq!(blocked.url_after, blocked.url_before);
    assert!(!blocked.validation_message.is_empty(), "{report:#?}");

    // Without that check, the server says what is wrong, where a screen
    // reader finds it.
    let invalid = &report.invalid;
    assert_eq!(invalid.page.status, Some(422), "{report:#?}");
    assert!(
        invalid
            .alert
            .as_deref()
            .is_some_and(|a| a.contains("valid email address")),
        "{report:#?}"
    );
    assert_eq!(invalid.aria_invalid.as_deref(), Some("true"));
    assert_eq!(invalid.described_by, invalid.alert_id);
    assert_eq!(invalid.value, "not an address", "what was typed is kept");

    // The sign-up itself, from the home page.
    let signup = &report.signup;
    assert_eq!(signup.status, Some(200), "{report:#?}");
    assert_eq!(signup.url, server.url("/subscribe"));
    assert_eq!(signup.h1.as_deref(), Some("Check your inbox"));
    assert_eq!(signup.title, "Check your inbox · Fixture Blog");
    assert_eq!(signup.lang.as_deref(), Some("en"));
    assert_eq!(
        (signup.content_type.as_str(), signup.charset.as_str()),
        ("text/html", "UTF-8")
    );
    // A CSP that blocked the inline styles, a failed load or a script
    // error would be logged. Chromium logs every answer that is not a
    // success: the 422, and the 404 for the /favicon.ico it asks for on its
    // own (in whichever visit it gets round to it), which are as they should be.
    let console = &report.console;
    let complaints = |log: &[String]| -> Vec<String> {
        log.iter()
            .filter(|m| !m.contains("/favicon.ico - "))
            .cloned()
            .collect()
    };
    assert!(complaints(&console.blocked).is_empty(), "{console:#?}");
    assert!(
        matches!(&complaints(&console.invalid)[..], [only] if only.contains("status of 422")),
        "{console:#?}"
    );
    assert!(complaints(&console.signup).is_empty(), "{console:#?}");
    assert!(complaints(&console.confirm).is_empty(), "{console:#?}");

    // The confirm link opens a page whose one button confirms.
    let opened = &report.opened;
    assert_eq!(opened.page.status, Some(200), "{report:#?}");
    assert_eq!(
        opened.page.h1.as_deref(),
        Some("Confirm your subscription to Fixture Blog")
    );
    assert_eq!(opened.button, "Confirm my subscription");
    let confirmed = &report.confirmed;
    assert_eq!(confirmed.status, Some(200), "{report:#?}");
    assert_eq!(confirmed.h1.as_deref(), Some("Thank you for subscribing"));

    let subscribers = cli(&site, &["subscribers", "list"]).success().stdout;
    let fields: Vec<Vec<&str>> = subscribers
        .lines()
        .map(|l| l.split('\t').collect())
        .collect();
    assert_eq!(fields.len(), 1, "one subscriber:\n{subscribers}");
    assert_eq!(
        fields[0][..3],
        [EMAIL, NAME, "active"],
        "the address as typed (its + intact), the name of the confirmed sign-up"
    );

    // The confirmation greets no one: the name waited for the confirmation.
    // After the click, the welcome mail arrives, sent in the background.
    smtp.wait_for(2, Duration::from_secs(30));
    let mut mails = smtp.messages();
    assert_eq!(
        mails.len(),
        2,
        "the confirmation and the welcome: {mails:#?}"
    );
    mails.sort_by_key(|m| m.headers_named("Auto-Submitted").is_empty());
    let [mail, welcome] = &mails[..] else {
        unreachable!()
    };
    assert_eq!(mail.header("Auto-Submitted"), "auto-generated");
    assert!(mail.header("To").contains(EMAIL), "{mail:#?}");
    assert!(!mail.header("To").contains(NAME), "{mail:#?}");
    assert!(
        mail.part("text/plain").contains(&server.url("/confirm/")),
        "a confirmation link in:\n{}",
        mail.part("text/plain")
    );
    assert_eq!(welcome.envelope.rcpt_tos, [EMAIL]);
    assert_eq!(welcome.header("Subject"), "Welcome to Fixture Blog");
    assert!(welcome.header("Message-ID").starts_with("<welcome-"));
    let text = welcome.part("text/plain");
    assert!(text.contains("Plain YAML: the usual kind"), "{text}");
    assert!(text.contains(&server.url("/unsubscribe/")), "{text}");
    // Logged once the welcome has gone, so perhaps just after it arrived.
    server.wait_for_log("welcomed 1 new subscriber", Duration::from_secs(60));

    for name in ["form", "error", "sent", "confirmed"] {
        let path = shot(name);
        let png = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            png.len() > 8 && png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{} is not a PNG",
            path.display()
        );
        println!("screenshot: {}", path.display());
    }
}

/// `target/test-artifacts` under the cargo target dir (`CARGO_TARGET_DIR`
/// when set, as cargo reads it: relative to where cargo runs, which for a
/// test is the package's folder).
fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|dir| manifest_dir().join(dir))
        .unwrap_or_else(|| manifest_dir().join("target"));
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

#[derive(Debug, Deserialize)]
struct Seen {
    url: String,
    title: String,
    h1: Option<String>,
    text: String,
    links: Vec<String>,
    status: Option<u16>,
    background: String,
    console: Vec<String>,
}

#[test]
fn the_home_page_and_the_archive_render_in_a_browser_as_served() {
    let port = free_port();
    let site = Site::with_mail()
        .served_at(&port)
        .subscribers(&["ann@example.net", "bob@example.net"])
        .create();
    site.write(
        "content/2026-11-24-note.md",
        "---\ntitle: A note from the team\nemail: letter\n---\n\nDear readers.\n\n<!-- more -->\n\nThe whole letter.\n",
    );
    let out = run(&mut site.newsletter(["send", "--now", common::NOW]));
    assert!(out.stdout.contains("letter 1 "), "{out}");
    let server = start(&site, port);
    let shots = artifacts_dir().join("archive");
    std::fs::create_dir_all(&shots).unwrap();
    let pages = ["/", "/archive/", "/archive/1/", "/archive/2/"];
    let browsed = run(std::process::Command::new(python())
        .arg(manifest_dir().join("tests/browser_pages.py"))
        .arg("--shots")
        .arg(&shots)
        .args(pages.iter().map(|p| format!("{}{}", server.base, p))));
    assert_eq!(browsed.code, Some(0), "browser_pages.py failed\n{browsed}");
    let seen: Vec<Seen> = serde_json::from_str(&browsed.stdout).expect("JSON");
    for page in &seen {
        assert_eq!(page.status, Some(200), "{page:?}");
        // Styled as built: the grey page, not the browser's white; and
        // nothing refused by the Content-Security-Policy or failed to load.
        assert_eq!(page.background, "rgb(243, 244, 246)", "{page:?}");
        // (The browser's own request for /favicon.ico is not the page's.)
        let logged: Vec<&String> = page
            .console
            .iter()
            .filter(|line| !line.contains("/favicon.ico"))
            .collect();
        assert!(logged.is_empty(), "{}: {logged:?}", page.url);
    }
    let [home, index, letter, digest] = &seen[..] else {
        panic!("{seen:?}")
    };
    assert!(
        home.links.iter().any(|l| l.ends_with("/archive/")),
        "{home:?}"
    );
    assert_eq!(index.h1.as_deref(), Some("Every issue"));
    assert!(index.text.contains("A note from the team"), "{index:?}");
    assert!(
        index.links.iter().any(|l| l.ends_with("/archive/2/")),
        "{index:?}"
    );
    assert_eq!(letter.title, "A note from the team");
    assert!(letter.text.contains("The whole letter."), "{letter:?}");
    assert!(!digest.text.contains("View in browser"), "{digest:?}");
    // Nobody's address on any page; the way in is the sign-up form.
    for page in &seen {
        assert!(
            !page.text.contains("@example.net"),
            "{}: {}",
            page.url,
            page.text
        );
    }
    assert!(
        digest.links.iter().any(|l| l.ends_with("/subscribe")),
        "{digest:?}"
    );
    println!("screenshots: {}", shots.display());
}

#[derive(Debug, Deserialize)]
struct Preferences {
    before: PreferencesSeen,
    /// Where each Tab put the focus (`tag:type:value:text`).
    tabs: Vec<String>,
    after: PreferencesSeen,
    reloaded: PreferencesSeen,
    console: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct PreferencesSeen {
    page: PreferencesPage,
    boxes: Vec<TopicBox>,
    name_field: Option<String>,
    notice: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PreferencesPage {
    url: String,
    h1: Option<String>,
    status: Option<u16>,
}

#[derive(Debug, Deserialize, PartialEq)]
struct TopicBox {
    value: String,
    checked: bool,
    accessible_name: String,
    /// The accessible name of its fieldset: its legend.
    group: Option<String>,
}

#[test]
fn the_preference_page_works_with_the_keyboard_alone() {
    let port = free_port();
    let site = Site::with_mail()
        .without_posts()
        .first_run_posts(10)
        .served_at(&port)
        .create();
    site.append_config(common::mail_site::TOPICS);
    cli(
        &site,
        &["subscribers", "add", "ann@example.net", "--name", NAME],
    )
    .success();
    let server = start(&site, port);
    let url = common::server::preferences_url(&site, &server, "ann@example.net");
    let shot = artifacts_dir().join("preferences-saved.png");
    let _ = std::fs::remove_file(&shot);
    let browsed = run(std::process::Command::new(python())
        .arg(manifest_dir().join("tests/browser_preferences.py"))
        .args(["--url", &url, "--uncheck", "events", "--shot"])
        .arg(&shot));
    assert_eq!(
        browsed.code,
        Some(0),
        "browser_preferences.py failed\n{browsed}\n--- server log\n{}",
        server.logs().join("\n")
    );
    let seen: Preferences = serde_json::from_str(&browsed.stdout)
        .unwrap_or_else(|e| panic!("browser_preferences.py printed bad JSON ({e})\n{browsed}"));

    // Every box named by its label, in a fieldset with a legend; every
    // topic ticked for a reader who never chose.
    let before = &seen.before;
    assert_eq!(before.page.status, Some(200), "{seen:#?}");
    assert_eq!(
        before.page.h1.as_deref(),
        Some("Your subscription to Fixture Blog")
    );
    let labels = [
        ("releases", "Release announcements"),
        ("events", "Events and meetups"),
        ("docs", "Documentation"),
    ];
    let topic_boxes = |ticked: &[&str]| -> Vec<TopicBox> {
        labels
            .iter()
            .map(|(value, label)| TopicBox {
                value: value.to_string(),
                checked: ticked.contains(value),
                accessible_name: label.to_string(),
                group: Some("Topics (what you get by email; at least one)".into()),
            })
            .collect()
    };
    assert_eq!(before.boxes, topic_boxes(&["releases", "events", "docs"]));
    assert!(
        before
            .name_field
            .as_deref()
            .is_some_and(|n| n.starts_with("Name")),
        "{seen:#?}"
    );

    // Tab reached the box and the button, through the name field.
    assert!(
        seen.tabs.iter().any(|t| t.starts_with("input:text:")),
        "{:?}",
        seen.tabs
    );

    // Saved: back on the page (303), which says so; after a reload too.
    let after = &seen.after;
    assert_eq!(after.page.status, Some(200), "{seen:#?}");
    assert_eq!(after.page.url, format!("{url}?saved"));
    assert_eq!(after.notice.as_deref(), Some("Your choices are saved."));
    assert_eq!(after.boxes, topic_boxes(&["releases", "docs"]));
    assert_eq!(seen.reloaded.boxes, topic_boxes(&["releases", "docs"]));
    let stored = common::server::stored_subscriber(&site, "ann@example.net");
    assert_eq!(
        (stored.name.as_str(), stored.topics.as_deref()),
        (NAME, Some("releases,docs"))
    );

    // Nothing refused by the Content-Security-Policy, nothing failed.
    let logged: Vec<&String> = seen
        .console
        .iter()
        .filter(|line| !line.contains("/favicon.ico"))
        .collect();
    assert!(logged.is_empty(), "{logged:?}");
    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("{}: {e}", shot.display()));
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{}", shot.display());
    println!("screenshot: {}", shot.display());

    // The next digest carries what the page chose: the release, not the
    // meetup (events was unticked), and the post in no topic.
    for (slug, tags) in [
        ("release-1", "[release]"),
        ("meetup", "[event]"),
        ("note", "[misc]"),
    ] {
        site.write(
            &format!("content/2026-11-20-{slug}.md"),
            format!("---\ntitle: Post {slug}\ncreated_at: 2026-11-20\ntags: {tags}\n---\n\nAbout {slug}.\n"),
        );
    }
    cli(&site, &["send", "--now", common::NOW]).success();
    let sent = common::smtp::eml_files(&site.path("outbox"));
    assert_eq!(sent.len(), 1, "{sent:?}");
    let text = common::smtp::mail_file(&sent[0])
        .part("text/plain")
        .to_string();
    assert!(
        text.contains("Post release-1") && text.contains("Post note"),
        "{text}"
    );
    assert!(!text.contains("Post meetup"), "{text}");
}
