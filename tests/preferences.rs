//! Topics as `newsletter serve` offers them: the sign-up form's checkboxes,
//! kept with the pending sign-up and applied at confirmation, and the
//! preference page (`/preferences/{token}`), driven by a real HTTP client.

mod common;

use std::time::{Duration, Instant};

use common::mail_site::TOPICS;
use common::server::{
    Port, SECRET, Server, cli, client, free_port, preferences_url, start, stored_subscriber,
    token_for,
};
use common::{NOW, Site};
use newsletter::token::Purpose;
use reqwest::StatusCode;
use reqwest::blocking::Response;

/// A served mail site with three topics ([`TOPICS`]).
fn site_with_topics(port: &Port) -> Site {
    let site = Site::with_mail().served_at(port).create();
    site.append_config(TOPICS);
    site
}

/// Each topic checkbox of a page: its value, whether it is checked, and
/// the text of the `<label>` that names it.
fn boxes(html: &str) -> Vec<(String, bool, String)> {
    let page = scraper::Html::parse_document(html);
    let inputs = scraper::Selector::parse("input[type=checkbox][name=topics]").unwrap();
    page.select(&inputs)
        .map(|input| {
            let id = input.value().attr("id").unwrap_or_default();
            let label = scraper::Selector::parse(&format!("label[for=\"{id}\"]")).unwrap();
            let label = page
                .select(&label)
                .next()
                .map(|l| l.text().collect::<String>())
                .unwrap_or_default();
            (
                input.value().attr("value").unwrap_or_default().to_string(),
                input.value().attr("checked").is_some(),
                label,
            )
        })
        .collect()
}

/// The values of the checked topic boxes of a page.
fn checked(html: &str) -> Vec<String> {
    boxes(html)
        .into_iter()
        .filter(|(_, on, _)| *on)
        .map(|(key, _, _)| key)
        .collect()
}

/// POSTs form `fields` to `url`.
fn post(url: &str, fields: &[(&str, &str)]) -> Response {
    client().post(url).form(fields).send().unwrap()
}

/// Waits for the confirmation mail to `email` in the outbox; its link.
fn confirm_link(site: &Site, server: &Server, email: &str) -> String {
    let prefix = server.url("/confirm/");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for file in common::smtp::eml_files(&site.path("outbox")) {
            let mail = common::smtp::mail_file(&file);
            if !mail.header("To").contains(email) {
                continue;
            }
            if let Some(link) = mail
                .part("text/plain")
                .split_whitespace()
                .find(|w| w.starts_with(&prefix))
            {
                return link.to_string();
            }
        }
        assert!(Instant::now() < deadline, "no confirmation to {email}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn topics_chosen_at_sign_up_are_applied_at_confirmation() {
    let port = free_port();
    let site = site_with_topics(&port);
    let server = start(&site, port);

    // Every topic offered, labelled, and ticked to begin with; on the home
    // page too.
    for path in ["/subscribe", "/"] {
        let form = client()
            .get(server.url(path))
            .send()
            .unwrap()
            .text()
            .unwrap();
        assert_eq!(
            boxes(&form),
            [
                ("releases".into(), true, "Release announcements".into()),
                ("events".into(), true, "Events and meetups".into()),
                ("docs".into(), true, "Documentation".into()),
            ],
            "{path}"
        );
        assert!(form.contains("<legend>Topics"), "{form}");
    }

    let answer = post(
        &server.url("/subscribe"),
        &[
            ("email", "ann@example.net"),
            ("name", "Ann"),
            ("topics_offered", "1"),
            ("topics", "docs"),
            ("topics", "releases"),
        ],
    );
    assert_eq!(answer.status(), StatusCode::OK);
    // Every box ticked: every topic, those added later too.
    let answer = post(
        &server.url("/subscribe"),
        &[
            ("email", "bob@example.net"),
            ("topics_offered", "1"),
            ("topics", "releases"),
            ("topics", "events"),
            ("topics", "docs"),
        ],
    );
    assert_eq!(answer.status(), StatusCode::OK);

    let ann = confirm_link(&site, &server, "ann@example.net");
    let bob = confirm_link(&site, &server, "bob@example.net");
    assert_eq!(stored_subscriber(&site, "ann@example.net").topics, None);
    for link in [&ann, &bob] {
        let thanks = client().post(link).send().unwrap();
        assert_eq!(thanks.status(), StatusCode::OK);
    }
    let stored = stored_subscriber(&site, "ann@example.net");
    assert_eq!(stored.topics.as_deref(), Some("releases,docs"));
    assert_eq!(stored.name, "Ann");
    assert_eq!(stored_subscriber(&site, "bob@example.net").topics, None);

    // Her preference page shows that choice.
    let page = client()
        .get(preferences_url(&site, &server, "ann@example.net"))
        .send()
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(checked(&page.text().unwrap()), ["releases", "docs"]);
}

#[test]
fn a_sign_up_with_no_topic_or_an_unknown_one_is_refused_and_stores_nothing() {
    let port = free_port();
    let site = site_with_topics(&port);
    let server = start(&site, port);

    let none = post(
        &server.url("/subscribe"),
        &[
            ("email", "ann@example.net"),
            ("name", "Ann"),
            ("topics_offered", "1"),
        ],
    );
    assert_eq!(none.status(), StatusCode::BAD_REQUEST);
    let html = none.text().unwrap();
    assert!(html.contains("choose at least one topic"), "{html}");
    assert!(html.contains("role=\"alert\""), "{html}");
    // The form again as sent: what was typed, no box ticked.
    assert!(html.contains("value=\"ann@example.net\""), "{html}");
    assert!(checked(&html).is_empty(), "{html}");

    let unknown = post(
        &server.url("/subscribe"),
        &[
            ("email", "ann@example.net"),
            ("topics_offered", "1"),
            ("topics", "releases"),
            ("topics", "gossip"),
        ],
    );
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    assert_eq!(checked(&unknown.text().unwrap()), ["releases"]);

    // A form with no topics in it (a template copied out before topics)
    // signs up for every topic.
    let old = post(&server.url("/subscribe"), &[("email", "cy@example.net")]);
    assert_eq!(old.status(), StatusCode::OK);
    let link = confirm_link(&site, &server, "cy@example.net");
    // Sign-ups are queued and handled one at a time, in order: once Cy's
    // is queued, neither refused one was (nothing stored, nothing mailed).
    server.wait_for_log("\"sign-up queued\"", Duration::from_secs(60));
    let queued = server
        .logs()
        .iter()
        .filter(|l| l.contains("\"sign-up queued\""))
        .count();
    assert_eq!(queued, 1, "{:?}", server.logs());
    let listed = cli(&site, &["subscribers", "list"]).success().stdout;
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(listed.contains("cy@example.net"), "{listed}");
    assert_eq!(common::smtp::eml_files(&site.path("outbox")).len(), 1);
    assert_eq!(
        client().post(&link).send().unwrap().status(),
        StatusCode::OK
    );
    let cy = stored_subscriber(&site, "cy@example.net");
    assert_eq!((cy.status.as_str(), cy.topics), ("active", None));
}

#[test]
fn without_topics_the_forms_are_as_before() {
    let port = free_port();
    let site = Site::with_mail()
        .served_at(&port)
        .subscribers(&["ann@example.net"])
        .create();
    let server = start(&site, port);
    let form = client()
        .get(server.url("/subscribe"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(!form.contains("<fieldset"), "{form}");
    // Topics sent anyway are passed over.
    let answer = post(
        &server.url("/subscribe"),
        &[
            ("email", "bob@example.net"),
            ("topics_offered", "1"),
            ("topics", "x"),
        ],
    );
    assert_eq!(answer.status(), StatusCode::OK);

    // The preference page: the name, and the way out.
    let url = preferences_url(&site, &server, "ann@example.net");
    let page = client().get(&url).send().unwrap().text().unwrap();
    assert!(!page.contains("<fieldset"), "{page}");
    assert!(page.contains("Unsubscribe from everything"), "{page}");
    let saved = post(&url, &[("name", "Ann Again"), ("action", "save")]);
    assert_eq!(saved.status(), StatusCode::SEE_OTHER);
    let ann = stored_subscriber(&site, "ann@example.net");
    assert_eq!((ann.name.as_str(), ann.topics), ("Ann Again", None));
}

#[test]
fn forged_and_other_purposes_tokens_get_400_on_the_preference_page() {
    let port = free_port();
    let site = site_with_topics(&port);
    cli(
        &site,
        &["subscribers", "add", "ann@example.net", "--name", "Ann"],
    )
    .success();
    let server = start(&site, port);
    let genuine = token_for(&site, "ann@example.net", Purpose::Preferences);
    let (key, rest) = genuine.split_once('.').unwrap();
    let other_key = {
        let mut key = key.to_string();
        let last = key.pop().unwrap();
        key.push(if last == '0' { '1' } else { '0' });
        key
    };
    for token in [
        token_for(&site, "ann@example.net", Purpose::Unsubscribe),
        token_for(&site, "ann@example.net", Purpose::Confirm),
        format!("{other_key}.{rest}"),
        genuine[..genuine.len() - 2].to_string(),
        "garbage".to_string(),
    ] {
        let url = server.url(&format!("/preferences/{token}"));
        let shown = client().get(&url).send().unwrap();
        assert_eq!(shown.status(), StatusCode::BAD_REQUEST, "{token}");
        assert!(shown.text().unwrap().contains("not valid"));
        for action in ["save", "unsubscribe"] {
            let answer = post(
                &url,
                &[
                    ("action", action),
                    ("name", "Mallory"),
                    ("topics_offered", "1"),
                ],
            );
            assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "{token}");
        }
    }
    let ann = stored_subscriber(&site, "ann@example.net");
    assert_eq!(
        (ann.status.as_str(), ann.name.as_str(), ann.topics),
        ("active", "Ann", None)
    );
}

#[test]
fn the_preference_page_shows_and_saves_topics_and_name() {
    let port = free_port();
    let site = site_with_topics(&port);
    cli(
        &site,
        &["subscribers", "add", "ann@example.net", "--name", "Ann"],
    )
    .success();
    let server = start(&site, port);
    let url = preferences_url(&site, &server, "ann@example.net");
    let http = client();

    // Never chose: every box ticked.
    let page = http.get(&url).send().unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["cache-control"], "no-store");
    assert!(page.headers().contains_key("content-security-policy"));
    let html = page.text().unwrap();
    assert!(html.contains("ann@example.net"), "{html}");
    assert!(html.contains("value=\"Ann\""), "{html}");
    assert!(html.contains("maxlength=\"100\""), "{html}");
    assert_eq!(checked(&html), ["releases", "events", "docs"]);
    assert!(!html.contains("Your choices are saved"));

    // A save leads back to the page, which says so and shows the choice.
    let saved = post(
        &url,
        &[
            ("name", "Ann B."),
            ("topics_offered", "1"),
            ("topics", "events"),
            ("action", "save"),
        ],
    );
    assert_eq!(saved.status(), StatusCode::SEE_OTHER);
    let location = saved.headers()["location"].to_str().unwrap().to_string();
    let again = reqwest::Url::parse(&url).unwrap().join(&location).unwrap();
    assert_eq!(again.as_str(), format!("{url}?saved"));
    let html = http.get(again).send().unwrap().text().unwrap();
    assert!(html.contains("Your choices are saved"), "{html}");
    assert_eq!(checked(&html), ["events"]);
    assert!(html.contains("value=\"Ann B.\""), "{html}");
    let ann = stored_subscriber(&site, "ann@example.net");
    assert_eq!(
        (ann.name.as_str(), ann.topics.as_deref()),
        ("Ann B.", Some("events"))
    );

    // No topic, or a name too long: refused with the form, nothing saved.
    let none = post(&url, &[("name", "Ann C."), ("topics_offered", "1")]);
    assert_eq!(none.status(), StatusCode::BAD_REQUEST);
    let html = none.text().unwrap();
    assert!(html.contains("choose at least one topic"), "{html}");
    assert!(checked(&html).is_empty());
    let long = "x".repeat(101);
    let too_long = post(
        &url,
        &[
            ("name", long.as_str()),
            ("topics_offered", "1"),
            ("topics", "docs"),
        ],
    );
    assert_eq!(too_long.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(too_long.text().unwrap().contains("100 characters"));
    let ann = stored_subscriber(&site, "ann@example.net");
    assert_eq!(
        (ann.name.as_str(), ann.topics.as_deref()),
        ("Ann B.", Some("events"))
    );

    // Every box ticked again: every topic, those added later too.
    let all = post(
        &url,
        &[
            ("name", "Ann B."),
            ("topics_offered", "1"),
            ("topics", "releases"),
            ("topics", "events"),
            ("topics", "docs"),
        ],
    );
    assert_eq!(all.status(), StatusCode::SEE_OTHER);
    assert_eq!(stored_subscriber(&site, "ann@example.net").topics, None);

    // With a slash at the end: to the page, as the other token routes.
    let slashed = http.get(format!("{url}/")).send().unwrap();
    assert_eq!(slashed.status(), StatusCode::PERMANENT_REDIRECT);
}

#[test]
fn unsubscribe_from_everything_on_the_preference_page() {
    let port = free_port();
    let site = site_with_topics(&port);
    cli(
        &site,
        &["subscribers", "add", "ann@example.net", "--name", "Ann"],
    )
    .success();
    let server = start(&site, port);
    let url = preferences_url(&site, &server, "ann@example.net");

    let done = post(&url, &[("action", "unsubscribe")]);
    assert_eq!(done.status(), StatusCode::OK);
    assert!(done.text().unwrap().contains("You are unsubscribed"));
    assert_eq!(
        stored_subscriber(&site, "ann@example.net").status.as_str(),
        "unsubscribed"
    );
    server.wait_for_log("\"unsubscribed\"", Duration::from_secs(60));

    // Now the page says so and offers no form; a save subscribes no one.
    let html = client().get(&url).send().unwrap().text().unwrap();
    assert!(html.contains("is not subscribed"), "{html}");
    assert!(!html.contains("<form"), "{html}");
    let save = post(
        &url,
        &[
            ("name", "Ann Back"),
            ("topics_offered", "1"),
            ("topics", "docs"),
        ],
    );
    assert_eq!(save.status(), StatusCode::OK);
    let ann = stored_subscriber(&site, "ann@example.net");
    assert_eq!(
        (ann.status.as_str(), ann.name.as_str(), ann.topics),
        ("unsubscribed", "Ann", None)
    );
}

#[test]
fn debug_logs_carry_no_preference_token() {
    let port = free_port();
    let site = site_with_topics(&port);
    cli(&site, &["subscribers", "add", "ann@example.net"]).success();
    let server = Server::start(
        &site,
        port,
        &["--now", NOW],
        &[("NEWSLETTER_SECRET", SECRET), ("NEWSLETTER_LOG", "debug")],
    );
    let url = preferences_url(&site, &server, "ann@example.net");
    let token = url.rsplit_once('/').unwrap().1.to_string();
    let http = client();
    for path in [
        format!("/preferences/{token}"),
        format!("/preferences/{token}?saved"),
        format!("/preferences/{token}/"),
        format!("//preferences/{token}"),
        format!("/%70references/{token}"),
        format!("/PREFERENCES/{token}"),
    ] {
        http.get(server.url(&path)).send().unwrap();
    }
    post(
        &url,
        &[("name", "Ann"), ("topics_offered", "1"), ("topics", "docs")],
    );
    post(&url, &[("topics_offered", "1")]);
    post(&url, &[("action", "unsubscribe")]);
    // Each of the nine requests logged.
    let deadline = Instant::now() + Duration::from_secs(60);
    while server
        .logs()
        .iter()
        .filter(|l| l.contains("\"request\""))
        .count()
        < 9
    {
        assert!(Instant::now() < deadline, "{:?}", server.logs());
        std::thread::sleep(Duration::from_millis(20));
    }
    let logs = server.logs().join("\n");
    assert!(logs.contains("DEBUG"), "debug logging is on:\n{logs}");
    let mac = token.rsplit_once('.').unwrap().1;
    assert!(!logs.contains(mac), "a token in the log:\n{logs}");
}
