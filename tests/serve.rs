//! `newsletter serve` on a loopback port, driven by a real HTTP client
//! (reqwest), with a real SMTP server (aiosmtpd) catching the confirmation
//! emails and digests.

mod common;

use std::io::Read;
use std::time::Duration;

use common::mail_site::addresses;
use common::server::{SECRET, Server, cli, client, free_port, start, statuses};
use common::smtp::{Mail, SmtpServer};
use common::{NOW, Site};
use reqwest::StatusCode;
use reqwest::header;

fn status_of(site: &Site, email: &str) -> Option<String> {
    statuses(site)
        .into_iter()
        .find(|(e, _)| e == email)
        .map(|(_, s)| s)
}

/// The one link in a mail's text part that starts with `prefix`.
fn link_in(mail: &Mail, prefix: &str) -> String {
    let text = mail.part("text/plain");
    let links: Vec<&str> = text
        .split_whitespace()
        .filter(|w| w.starts_with(prefix))
        .collect();
    assert_eq!(links.len(), 1, "links to {prefix} in:\n{text}");
    links[0].to_string()
}

fn sign_up(server: &Server, email: &str) -> reqwest::blocking::Response {
    client()
        .post(server.url("/subscribe"))
        .form(&[("email", email), ("name", "Ann Reader")])
        .send()
        .unwrap()
}

#[test]
fn feeds_are_served_with_validators_304_and_gzip() {
    let port = free_port();
    let site = Site::with_mail().served_at(&port).create();
    let server = start(&site, port);
    let http = client();

    let first = http.get(server.url("/atom.xml")).send().unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let headers = first.headers().clone();
    assert_eq!(
        headers[header::CONTENT_TYPE],
        "application/atom+xml; charset=utf-8"
    );
    let etag = headers[header::ETAG].to_str().unwrap().to_string();
    let modified = headers[header::LAST_MODIFIED].to_str().unwrap().to_string();
    let body = first.bytes().unwrap();
    assert_eq!(
        &body[..],
        &site.read("public/atom.xml")[..],
        "the built file, as it is"
    );

    for (name, value) in [
        (header::IF_NONE_MATCH, etag.clone()),
        (header::IF_NONE_MATCH, format!("W/{etag}")),
        (header::IF_NONE_MATCH, format!("\"other\", {etag}")),
        (header::IF_MODIFIED_SINCE, modified.clone()),
    ] {
        let again = http
            .get(server.url("/atom.xml"))
            .header(name.clone(), &value)
            .send()
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{name}: {value}");
        assert_eq!(again.headers()[header::ETAG], etag.as_str());
        assert!(again.bytes().unwrap().is_empty());
    }
    // A different tag wins over a matching date: the file is sent.
    let changed = http
        .get(server.url("/atom.xml"))
        .header(header::IF_NONE_MATCH, "\"stale\"")
        .header(header::IF_MODIFIED_SINCE, &modified)
        .send()
        .unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
    let older = http
        .get(server.url("/atom.xml"))
        .header(header::IF_MODIFIED_SINCE, "Mon, 01 Jan 2001 00:00:00 GMT")
        .send()
        .unwrap();
    assert_eq!(older.status(), StatusCode::OK);

    let gzipped = http
        .get(server.url("/rss.xml"))
        .header(header::ACCEPT_ENCODING, "gzip")
        .send()
        .unwrap();
    assert_eq!(gzipped.headers()[header::CONTENT_ENCODING], "gzip");
    assert_eq!(
        gzipped.headers()[header::CONTENT_TYPE],
        "application/rss+xml; charset=utf-8"
    );
    assert_eq!(gzipped.headers()[header::VARY], "Accept-Encoding");
    let gzip_etag = gzipped.headers()[header::ETAG]
        .to_str()
        .unwrap()
        .to_string();
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&gzipped.bytes().unwrap()[..])
        .read_to_end(&mut plain)
        .unwrap();
    assert_eq!(plain, site.read("public/rss.xml"));
    let revalidated = http
        .get(server.url("/rss.xml"))
        .header(header::ACCEPT_ENCODING, "gzip")
        .header(header::IF_NONE_MATCH, &gzip_etag)
        .send()
        .unwrap();
    assert_eq!(revalidated.status(), StatusCode::NOT_MODIFIED);

    let json = http.get(server.url("/feed.json")).send().unwrap();
    assert_eq!(
        json.headers()[header::CONTENT_TYPE],
        "application/feed+json; charset=utf-8"
    );
    let head = http.head(server.url("/feed.json")).send().unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(
        head.headers()[header::CONTENT_LENGTH].to_str().unwrap(),
        site.read("public/feed.json").len().to_string()
    );
    let post = http.post(server.url("/atom.xml")).send().unwrap();
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[test]
fn nothing_outside_the_output_folder_is_reachable() {
    let port = free_port();
    let site = Site::with_mail().served_at(&port).create();
    site.write("secret.txt", "TOP-SECRET");
    let server = start(&site, port);
    for target in [
        "/../secret.txt",
        "/..%2fsecret.txt",
        "/%2e%2e/secret.txt",
        "/%2e%2e%2fsecret.txt",
        "/%252e%252e%252fsecret.txt",
        "/..%5csecret.txt",
        "/./../secret.txt",
        "//secret.txt",
        "/public/../secret.txt",
        "/..%2f..%2f..%2fetc%2fpasswd",
        "/atom.xml%00.txt",
        "/config.toml",
    ] {
        let (status, body) = server.raw_get(target);
        assert!(status == 404 || status == 400, "{target}: {status}\n{body}");
        assert!(
            !body.contains("TOP-SECRET") && !body.contains("root:"),
            "{target}"
        );
    }
    assert_eq!(server.raw_get("/atom.xml").0, 200);
    assert_eq!(
        server.raw_get("/%61tom.xml").0,
        200,
        "percent-encoded plain letters are fine"
    );
}

#[test]
fn sign_up_confirm_digest_and_one_click_unsubscribe() {
    let smtp = SmtpServer::start(&[]);
    let port = free_port();
    let site = Site::with_mail()
        .served_at(&port)
        .smtp(smtp.config(""))
        .create();
    let server = start(&site, port);
    let http = client();

    let form = http.get(server.url("/subscribe")).send().unwrap();
    assert_eq!(form.status(), StatusCode::OK);
    let html = form.text().unwrap();
    assert!(
        html.contains("<label for=\"email\">") && html.contains("type=\"email\""),
        "{html}"
    );

    let answer = sign_up(&server, "Ann@Example.NET");
    assert_eq!(answer.status(), StatusCode::OK);
    assert!(answer.text().unwrap().contains("Check your inbox"));
    // Stored, then mailed, by the server's sign-up thread.
    smtp.wait_for(1, Duration::from_secs(60));
    assert_eq!(
        status_of(&site, "Ann@example.net").as_deref(),
        Some("pending")
    );
    let confirmation = smtp.messages().remove(0);
    assert_eq!(confirmation.envelope.rcpt_tos, ["Ann@example.net"]);
    assert_eq!(
        confirmation.header("Subject"),
        "Confirm your subscription to Fixture Blog"
    );
    assert_eq!(confirmation.header("Auto-Submitted"), "auto-generated");
    let confirm_url = link_in(&confirmation, &server.url("/confirm/"));
    assert!(confirmation.part("text/html").contains(&confirm_url));

    // Nothing typed into the form goes into mail to an unconfirmed address.
    assert!(
        !confirmation.header("To").contains("Ann Reader"),
        "{confirmation:?}"
    );
    assert!(!confirmation.part("text/plain").contains("Ann Reader"));
    assert!(!confirmation.part("text/html").contains("Ann Reader"));

    // Opening the link (a person, or a mail scanner) shows a button and
    // changes nothing; the button's POST confirms, and again is harmless.
    for _ in 0..2 {
        let opened = http.get(&confirm_url).send().unwrap();
        assert_eq!(opened.status(), StatusCode::OK);
        let page = opened.text().unwrap();
        assert!(page.contains("<form method=\"post\">"), "{page}");
    }
    assert_eq!(
        status_of(&site, "Ann@example.net").as_deref(),
        Some("pending")
    );
    for _ in 0..2 {
        let thanks = http.post(&confirm_url).send().unwrap();
        assert_eq!(thanks.status(), StatusCode::OK);
        assert!(thanks.text().unwrap().contains("Thank you for subscribing"));
    }
    assert_eq!(
        status_of(&site, "Ann@example.net").as_deref(),
        Some("active")
    );
    // Confirmed once (the second POST changes nothing): one welcome mail,
    // sent by the server in the background.
    smtp.wait_for(2, Duration::from_secs(60));
    let welcomes: Vec<_> = smtp
        .messages()
        .into_iter()
        .filter(|m| m.header("Subject") == "Welcome to Fixture Blog")
        .collect();
    assert_eq!(welcomes.len(), 1);
    assert_eq!(welcomes[0].envelope.rcpt_tos, ["Ann@example.net"]);

    cli(&site, &["send", "--now", NOW]).success();
    smtp.wait_for(3, Duration::from_secs(60));
    let digest = smtp
        .messages()
        .into_iter()
        .find(|m| m.header("Subject").starts_with("Fixture Blog"))
        .expect("the digest");
    assert_eq!(digest.envelope.rcpt_tos, ["Ann@example.net"]);
    assert_eq!(
        digest.header("List-Unsubscribe-Post"),
        "List-Unsubscribe=One-Click"
    );
    let list_unsubscribe = digest.header("List-Unsubscribe");
    let unsubscribe_url = list_unsubscribe
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap()
        .to_string();
    assert!(
        unsubscribe_url.starts_with(&server.url("/unsubscribe/")),
        "{list_unsubscribe}"
    );

    // The page a reader sees changes nothing; the one-click POST (RFC 8058:
    // that body, no cookies) unsubscribes at once, and again is harmless.
    let page = http.get(&unsubscribe_url).send().unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().unwrap().contains("<button"));
    assert_eq!(
        status_of(&site, "Ann@example.net").as_deref(),
        Some("active")
    );
    for _ in 0..2 {
        let done = http
            .post(&unsubscribe_url)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body("List-Unsubscribe=One-Click")
            .send()
            .unwrap();
        assert_eq!(done.status(), StatusCode::OK);
        assert!(done.text().unwrap().contains("You are unsubscribed"));
    }
    assert_eq!(
        status_of(&site, "Ann@example.net").as_deref(),
        Some("unsubscribed")
    );

    // The next digest goes to the others, not to her.
    cli(&site, &["subscribers", "add", "bob@example.net"]).success();
    site.write(
        "content/2026-11-20-new.md",
        "---\ntitle: A newer post\ncreated_at: 2026-11-20\n---\nNews.\n",
    );
    // The run says what it sent, and the SMTP server has that many more.
    let run = cli(&site, &["send", "--now", NOW]).success();
    assert!(run.stdout.contains("1 sent"), "{run:?}");
    smtp.wait_for(4, Duration::from_secs(60));
    let recipients = smtp.recipients();
    assert_eq!(
        recipients
            .iter()
            .filter(|r| *r == "Ann@example.net")
            .count(),
        3,
        "{recipients:?}"
    );
    assert_eq!(
        recipients
            .iter()
            .filter(|r| *r == "bob@example.net")
            .count(),
        1
    );

    // A confirmation link from before the unsubscribe does not undo it.
    let stale = http.post(&confirm_url).send().unwrap();
    assert_eq!(stale.status(), StatusCode::GONE);
    assert_eq!(
        status_of(&site, "Ann@example.net").as_deref(),
        Some("unsubscribed")
    );
}

#[test]
fn the_name_kept_is_the_confirmed_sign_ups_and_a_long_one_is_refused() {
    let port = free_port();
    let site = Site::with_mail().served_at(&port).create();
    let server = start(&site, port);
    let http = client();
    let long = "x".repeat(101);
    let refused = http
        .post(server.url("/subscribe"))
        .form(&[("email", "dee@example.net"), ("name", long.as_str())])
        .send()
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.text().unwrap().contains("100 characters"));

    let mut links = Vec::new();
    for name in ["Dee First", "Mallory Second"] {
        let answer = http
            .post(server.url("/subscribe"))
            .form(&[("email", "dee@example.net"), ("name", name)])
            .send()
            .unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
        server.wait_for_log("\"confirmation sent\"", Duration::from_secs(60));
        let link = wait_for_new_outbox_link(&site, &server.url("/confirm/"), &links);
        links.push(link);
    }
    let names = |site: &Site| -> Vec<String> {
        cli(site, &["subscribers", "list"])
            .success()
            .stdout
            .lines()
            .map(|l| l.split('\t').nth(1).unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(names(&site), [""], "no name before the confirmation");
    let thanks = http.post(&links[0]).send().unwrap();
    assert_eq!(thanks.status(), StatusCode::OK);
    assert_eq!(names(&site), ["Dee First"]);
}

#[test]
fn forged_and_expired_tokens_change_nothing() {
    let port = free_port();
    let site = Site::with_mail().served_at(&port).create();
    let server = start(&site, port.clone());
    let http = client();
    assert_eq!(
        sign_up(&server, "carol@example.net").status(),
        StatusCode::OK
    );
    let confirm_url = wait_for_outbox_link(&site, &server.url("/confirm/"));

    let (id_part, rest) = confirm_url
        .rsplit_once('/')
        .unwrap()
        .1
        .split_once('.')
        .unwrap();
    // Another key with this MAC: the key's last hex digit changed.
    let other_key = {
        let mut key = id_part.to_string();
        let last = key.pop().unwrap();
        key.push(if last == '0' { '1' } else { '0' });
        key
    };
    let forged = [
        format!("{other_key}.{rest}"),
        confirm_url.rsplit_once('/').unwrap().1[..20].to_string(),
        "1.0.00".to_string(),
        "garbage".to_string(),
    ];
    // The genuine token written another way (its MAC in capitals, its
    // expiry with a `+` or a leading 0) is no token: the log's redaction
    // knows the one way links are written, so only that way may work.
    let (expires, mac) = rest.split_once('.').unwrap();
    let respelled = [
        format!("{id_part}.{expires}.{}", mac.to_ascii_uppercase()),
        format!("{id_part}.+{expires}.{mac}"),
        format!("{id_part}.0{expires}.{mac}"),
    ];
    for token in forged.iter().chain(&respelled) {
        let answer = http
            .get(server.url(&format!("/confirm/{token}")))
            .send()
            .unwrap();
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "{token}");
        assert!(answer.text().unwrap().contains("not valid"));
        let answer = http
            .post(server.url(&format!("/unsubscribe/{token}")))
            .body("List-Unsubscribe=One-Click")
            .send()
            .unwrap();
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "{token}");
    }
    assert_eq!(
        status_of(&site, "carol@example.net").as_deref(),
        Some("pending")
    );
    drop(server);

    // Two days and a minute later the genuine link has expired.
    let later = Server::start(
        &site,
        port,
        &["--now", "2026-11-27T00:01:00Z"],
        &[("NEWSLETTER_SECRET", SECRET)],
    );
    let expired = http.get(&confirm_url).send().unwrap();
    assert_eq!(expired.status(), StatusCode::GONE);
    assert!(expired.text().unwrap().contains("expired"));
    assert_eq!(
        status_of(&site, "carol@example.net").as_deref(),
        Some("pending")
    );
    drop(later);
}

/// Waits for a message in the site's outbox with a link starting with
/// `prefix` that is not in `known`, and returns that link.
fn wait_for_new_outbox_link(site: &Site, prefix: &str, known: &[String]) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        for file in common::smtp::eml_files(&site.path("outbox")) {
            let mail = common::smtp::mail_file(&file);
            if let Some(link) = mail
                .part("text/plain")
                .split_whitespace()
                .find(|w| w.starts_with(prefix) && !known.iter().any(|k| k == w))
            {
                return link.to_string();
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no new confirmation link"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for a message in the site's outbox and returns its link starting with `prefix`.
fn wait_for_outbox_link(site: &Site, prefix: &str) -> String {
    let outbox = site.path("outbox");
    let start = std::time::Instant::now();
    loop {
        if let Some(file) = common::smtp::eml_files(&outbox).first() {
            return link_in(&common::smtp::mail_file(file), prefix);
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no confirmation in the outbox"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_answer_to_a_sign_up_does_not_tell_who_is_subscribed() {
    let port = free_port();
    let site = Site::with_mail().served_at(&port).create();
    cli(&site, &["subscribers", "add", "known@example.net"]).success();
    let server = start(&site, port);
    let known = sign_up(&server, "known@example.net");
    let unknown = sign_up(&server, "unknown@example.net");
    assert_eq!(known.status(), unknown.status());
    assert_eq!(known.text().unwrap(), unknown.text().unwrap());
    assert_eq!(
        status_of(&site, "known@example.net").as_deref(),
        Some("active")
    );
}

#[test]
fn a_bad_address_shows_the_form_again_with_the_error() {
    let port = free_port();
    let site = Site::with_mail().served_at(&port).create();
    let server = start(&site, port);
    let answer = sign_up(&server, "not an address");
    assert_eq!(answer.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = answer.text().unwrap();
    assert!(
        html.contains("role=\"alert\"") && html.contains("aria-invalid=\"true\""),
        "{html}"
    );
    assert!(html.contains("value=\"not an address\""));
    assert!(statuses(&site).is_empty());
    // A bot filling in the hidden field is told the usual and stored nowhere.
    let bot = client()
        .post(server.url("/subscribe"))
        .form(&[("email", "bot@example.net"), ("website", "http://spam")])
        .send()
        .unwrap();
    assert_eq!(bot.status(), StatusCode::OK);
    assert!(statuses(&site).is_empty());
    // A body over the limit is refused before it is read.
    let huge = client()
        .post(server.url("/subscribe"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("email={}", "a".repeat(100_000)))
        .send()
        .unwrap();
    assert_eq!(huge.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[test]
fn sign_ups_are_rate_limited_per_client_and_per_address() {
    let port = free_port();
    let site = Site::with_mail()
        .served_at(&port)
        .server("signups_per_client = 3\nsignups_per_email = 2")
        .create();
    let server = start(&site, port.clone());
    for i in 0..3 {
        let answer = sign_up(&server, &format!("r{i}@example.net"));
        assert_eq!(answer.status(), StatusCode::OK);
    }
    let refused = sign_up(&server, "r9@example.net");
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = refused.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=1200).contains(&retry), "Retry-After {retry}");
    assert_eq!(status_of(&site, "r9@example.net"), None);
    drop(server);

    // Behind a proxy, each client is known by X-Forwarded-For; one address
    // gets at most two confirmation emails an hour, from anywhere.
    let site = Site::with_mail()
        .served_at(&port)
        .server("behind_proxy = true\nsignups_per_client = 3\nsignups_per_email = 2")
        .create();
    let server = start(&site, port);
    let http = client();
    let codes: Vec<u16> = (0..4)
        .map(|i| {
            http.post(server.url("/subscribe"))
                .header("X-Forwarded-For", format!("203.0.113.{i}"))
                .form(&[("email", "same@example.net")])
                .send()
                .unwrap()
                .status()
                .as_u16()
        })
        .collect();
    assert_eq!(codes, [200, 200, 429, 429]);
}

#[test]
fn healthz_answers_and_sigterm_stops_cleanly() {
    let port = free_port();
    let site = Site::with_mail().served_at(&port).create();
    let mut server = start(&site, port);
    let health = client().get(server.url("/healthz")).send().unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let body: serde_json::Value = serde_json::from_str(&health.text().unwrap()).unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["files"], 3);
    let request = server.wait_for_log("/healthz", Duration::from_secs(60));
    let line: serde_json::Value = serde_json::from_str(&request).unwrap();
    assert_eq!(line["level"], "INFO", "{request}");
    let status = server.terminate(Duration::from_secs(60));
    assert!(status.success(), "{status:?}");
    server.wait_for_log("\"stopped\"", Duration::from_secs(60));
    // Nothing was open: it did not wait out the grace period first.
    assert!(
        !server.log_has("requests still open"),
        "{:?}",
        server.logs()
    );
}

/// A post scheduled for later appears in the feeds when it comes due (the
/// server wakes for it, no change needed), and a post written while it
/// serves appears within seconds; a broken one leaves the feeds as they were.
#[test]
fn a_scheduled_post_is_published_when_due_and_changes_are_picked_up() {
    let port = free_port();
    let site = Site::with_mail().served_at(&port).create();
    // Due eight seconds after the server's clock starts, which is long
    // after its first build (made at once, before it listens).
    site.write(
        "content/soon.md",
        "---\ntitle: Coming soon\ncreated_at: 2026-11-25T00:00:08Z\n---\nSoon.\n",
    );
    let server = start(&site, port);
    let http = client();
    let feed = |http: &reqwest::blocking::Client| {
        http.get(server.url("/atom.xml"))
            .send()
            .unwrap()
            .text()
            .unwrap()
    };
    // What it served first was built without the post, the next one
    // scheduled (the fixture has one for much later).
    let builds = |server: &Server| logged(server, "feeds built");
    let first = &builds(&server)[0];
    let count = |line: &serde_json::Value, field: &str| line[field].as_u64().unwrap();
    assert!(
        first["next_scheduled"]
            .as_str()
            .is_some_and(|t| t.contains("2026-11-25T00:00:08")),
        "{first}"
    );
    // When it comes due, a build of its own publishes it.
    wait_until(Duration::from_secs(60), || builds(&server).len() >= 2);
    let due = &builds(&server)[1];
    assert_eq!(
        count(due, "scheduled"),
        count(first, "scheduled") - 1,
        "{due}"
    );
    assert_eq!(
        count(due, "published"),
        count(first, "published") + 1,
        "{due}"
    );
    assert!(!server.log_has("content changed"));
    assert!(feed(&http).contains("Coming soon"));

    site.write(
        "content/fresh.md",
        "---\ntitle: Written while serving\ncreated_at: 2026-11-24\n---\nHello.\n",
    );
    wait_until(Duration::from_secs(60), || {
        feed(&http).contains("Written while serving")
    });
    // A broken post leaves the feeds served as they were.
    site.write("content/broken.md", "---\ntitle: [unclosed\n---\n");
    server.wait_for_log("broken.md", Duration::from_secs(60));
    assert!(feed(&http).contains("Written while serving"));
}

/// The fields of each log line of `server` whose message is `message`.
fn logged(server: &Server, message: &str) -> Vec<serde_json::Value> {
    server
        .logs()
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["fields"]["message"] == message)
        .map(|l| l["fields"].clone())
        .collect()
}

/// How many log lines of `server` contain `needle`.
fn count_logs(server: &Server, needle: &str) -> usize {
    server.logs().iter().filter(|l| l.contains(needle)).count()
}

#[track_caller]
fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn on_start_a_recently_missed_slot_is_caught_up_and_an_old_one_skipped() {
    let smtp = SmtpServer::start(&[]);
    let port = free_port();
    let schedule = "digest = \"0 9 * * MON\"";
    let site = Site::with_mail()
        .served_at(&port)
        .schedule(schedule)
        .smtp(smtp.config(""))
        .subscribers(&addresses(3))
        .create();
    // Monday 30 November, 10:00: the 9:00 slot was missed an hour ago.
    let server = Server::start(
        &site,
        port.clone(),
        &["--now", "2026-11-30T10:00:00Z"],
        &[("NEWSLETTER_SECRET", SECRET)],
    );
    server.wait_for_log("digest delivered", Duration::from_secs(60));
    assert_eq!(smtp.recipients().len(), 3);
    drop(server);

    // Restarted in the same hour, with a post written since, it sends
    // nothing more: once its scheduler has looked at the slot and decided,
    // no one got a second digest (the post waits for the next slot).
    site.write(
        "content/2026-11-30-since.md",
        "---\ntitle: Written since\ncreated_at: 2026-11-30T09:30:00Z\n---\nNews.\n",
    );
    let again = Server::start(
        &site,
        port,
        &["--now", "2026-11-30T10:30:00Z"],
        &[("NEWSLETTER_SECRET", SECRET)],
    );
    wait_until(Duration::from_secs(60), || {
        again.log_has("\"no digest due\"")
            || again.log_has("\"message\":\"digest")
            || again.log_has("delivered")
    });
    assert!(
        again.log_has("\"no digest due\"") && !again.log_has("delivered"),
        "{:?}",
        again.logs()
    );
    let decided = &logged(&again, "no digest due")[0];
    assert_eq!(decided["next_slot"], "2026-12-07T09:00:00+00:00");
    assert_eq!(smtp.recipients().len(), 3);
    let health = client().get(again.url("/healthz")).send().unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    drop(again);

    let port = free_port();
    let other = SmtpServer::start(&[]);
    let stale = Site::with_mail()
        .served_at(&port)
        .schedule(schedule)
        .smtp(other.config(""))
        .subscribers(&addresses(3))
        .create();
    // Monday 16:00: seven hours late, more than catch_up (6 h): skipped.
    let server = Server::start(
        &stale,
        port,
        &["--now", "2026-11-30T16:00:00Z"],
        &[("NEWSLETTER_SECRET", SECRET)],
    );
    server.wait_for_log("skipped", Duration::from_secs(60));
    assert_eq!(other.recipients().len(), 0);
}

#[test]
fn sigterm_during_a_digest_finishes_in_flight_messages_and_leaves_the_rest_pending() {
    // Each message takes the SMTP server 20 ms: 300 take seconds.
    let smtp = SmtpServer::start(&["--delay", "0.02"]);
    let port = free_port();
    let readers = addresses(300);
    let site = Site::with_mail()
        .served_at(&port)
        .schedule("digest = \"0 9 * * MON\"")
        .smtp(smtp.config("connections = 2"))
        .subscribers(&readers)
        .create();
    let mut server = Server::start(
        &site,
        port.clone(),
        &["--now", "2026-11-30T09:00:30Z"],
        &[("NEWSLETTER_SECRET", SECRET)],
    );
    smtp.wait_for(20, Duration::from_secs(60));
    let status = server.terminate(Duration::from_secs(60));
    assert!(status.success(), "{status:?}");
    let received = smtp.recipients().len();
    assert!(received < 300, "it stopped early: {received}");

    // What is pending is exactly what the SMTP server did not get (give or
    // take the messages in flight, at most one per connection).
    let pending = cli(&site, &["send", "--dry-run", "--now", NOW]).success();
    let still: Vec<&str> = pending
        .stdout
        .lines()
        .filter(|l| l.contains('\t'))
        .collect();
    assert!(!still.is_empty());
    assert!(
        still.len() + received >= 300 && still.len() + received <= 302,
        "{} pending + {received} received",
        still.len()
    );

    // Started again (an hour later, no slot due), the server resumes the
    // unfinished digest at once: everyone has it, duplicates at most one
    // per connection.
    let again = Server::start(
        &site,
        port,
        &["--now", "2026-11-30T10:00:00Z"],
        &[("NEWSLETTER_SECRET", SECRET)],
    );
    again.wait_for_log("digest delivered", Duration::from_secs(60));
    let mut all = smtp.recipients();
    assert!(all.len() >= 300 && all.len() <= 302, "{}", all.len());
    all.dedup();
    assert_eq!(all, readers);
}

#[test]
fn a_client_holding_a_request_open_does_not_keep_the_server_from_stopping() {
    use std::io::Write;
    let port = free_port();
    let site = Site::with_mail().served_at(&port).create();
    let mut server = start(&site, port);
    // Half a request, never finished. `Expect: 100-continue` makes the
    // server say when it has the request and waits for the body.
    let mut stalled = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stalled
        .write_all(b"POST /subscribe HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n")
        .unwrap();
    stalled
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut continuing = [0u8; 12];
    stalled.read_exact(&mut continuing).unwrap();
    assert_eq!(&continuing, b"HTTP/1.1 100");
    stalled.write_all(b"email=").unwrap();

    // Stopped all the same: the request is cut off after the grace period.
    let status = server.terminate(Duration::from_secs(60));
    assert!(status.success(), "{status:?}");
    server.wait_for_log("\"stopped\"", Duration::from_secs(60));
    assert!(server.log_has("requests still open"), "{:?}", server.logs());
}

/// What the server sends on `stream` until it closes the connection; `None`
/// if it is still open after 60 s (a bound on a hang, far beyond the
/// timeouts the tests set).
fn read_until_closed(stream: &mut std::net::TcpStream) -> Option<String> {
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut received = Vec::new();
    let mut buffer = [0; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return Some(String::from_utf8_lossy(&received).into_owned()),
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Some(String::from_utf8_lossy(&received).into_owned());
            }
            Err(_) => return None,
        }
    }
}

#[test]
fn slow_idle_and_stalled_connections_are_closed_after_the_request_timeout() {
    use std::io::Write;
    let port = free_port();
    let site = Site::with_mail()
        .served_at(&port)
        .server("request_timeout = \"1s\"")
        .create();
    let server = start(&site, port);
    let connect = || std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();

    // Headers that never end (slowloris): closed, nothing answered.
    let mut slow = connect();
    slow.write_all(b"GET /atom.xml HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n")
        .unwrap();
    // A connection that never sends anything.
    let mut silent = connect();
    // One request answered, then the connection left idle.
    let mut idle = connect();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // A sign-up whose body never comes: 408.
    let mut stalled = connect();
    stalled
        .write_all(b"POST /subscribe HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nemail=")
        .unwrap();

    let slow = read_until_closed(&mut slow).expect("slow headers: still open after 60 s");
    assert_eq!(slow, "", "slow headers got an answer");
    let silent = read_until_closed(&mut silent).expect("silent connection: still open after 60 s");
    assert_eq!(silent, "");
    let idle = read_until_closed(&mut idle).expect("idle connection: still open after 60 s");
    assert!(idle.starts_with("HTTP/1.1 200"), "{idle}");
    let stalled = read_until_closed(&mut stalled).expect("stalled body: still open after 60 s");
    assert!(stalled.starts_with("HTTP/1.1 408"), "{stalled}");
    server.wait_for_log("\"status\":408", Duration::from_secs(60));

    // Nobody was subscribed, and the server still answers.
    assert_eq!(statuses(&site), []);
    let atom = client().get(server.url("/atom.xml")).send().unwrap();
    assert_eq!(atom.status(), StatusCode::OK);
}

#[test]
fn a_request_timeout_that_is_too_short_is_refused() {
    let site = Site::with_mail()
        .served_at(free_port())
        .server("request_timeout = \"100ms\"")
        .create();
    let run = cli(&site, &["serve", "--listen", "127.0.0.1:0"]).failure();
    assert!(
        run.stderr.contains("server.request_timeout") && run.stderr.contains("\"1s\" or more"),
        "{}",
        run.stderr
    );
}

/// An output folder inside the content folder: what a build writes there
/// is no content change, so one change makes one rebuild, not a loop.
#[test]
fn an_output_folder_inside_the_content_folder_does_not_rebuild_forever() {
    let port = free_port();
    let site = Site::with_mail().served_at(&port).create();
    site.replace_in_config("output_dir = \"public\"", "output_dir = \"content/public\"");
    let server = start(&site, port);
    let http = client();
    let feed = || {
        http.get(server.url("/atom.xml"))
            .send()
            .unwrap()
            .text()
            .unwrap()
    };
    site.write(
        "content/new.md",
        "---\ntitle: One change\ncreated_at: 2026-11-24\n---\nHello.\n",
    );
    wait_until(Duration::from_secs(60), || feed().contains("One change"));
    // A second change, on purpose: its rebuild comes after any that the
    // writes of the builds before it could have set off. Its name begins
    // as the output folder's does (`public…`), and it is content all the same.
    site.write(
        "content/publications.md",
        "---\ntitle: Another change\ncreated_at: 2026-11-24\n---\nHello.\n",
    );
    wait_until(Duration::from_secs(60), || {
        feed().contains("Another change")
    });
    let changes: Vec<String> = logged(&server, "content changed: rebuilding")
        .iter()
        .map(|l| l["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert!(changes[0].ends_with("new.md"), "{changes:?}");
    assert!(changes[1].ends_with("publications.md"), "{changes:?}");
    assert_eq!(
        logged(&server, "feeds built").len(),
        3,
        "the first build and one for each change"
    );
}

#[test]
fn debug_logs_carry_no_token_however_the_link_is_written() {
    let port = free_port();
    let site = Site::with_mail().served_at(&port).create();
    let server = Server::start(
        &site,
        port,
        &["--now", NOW],
        &[("NEWSLETTER_SECRET", SECRET), ("NEWSLETTER_LOG", "debug")],
    );
    assert_eq!(sign_up(&server, "eve@example.net").status(), StatusCode::OK);
    let confirm_url = wait_for_outbox_link(&site, &server.url("/confirm/"));
    let token = confirm_url.rsplit_once('/').unwrap().1.to_string();
    let encoded: String = token.bytes().map(|b| format!("%{b:02X}")).collect();
    let http = client();
    // The encoded spelling works where the plain one does.
    let page = http
        .get(server.url(&format!("/confirm/{encoded}")))
        .send()
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    for path in [
        format!("/confirm/{token}"),
        format!("//confirm/{token}"),
        format!("/%63onfirm/{token}"),
        format!("/unsubscribe/{token}"),
        // Anywhere else, encoded (the confirm route decodes it and takes it).
        format!("/nope/{}", token.replace('.', "%2E")),
        format!("/nope/{encoded}"),
    ] {
        http.get(server.url(&path)).send().unwrap();
    }
    server.wait_for_log("\"/unsubscribe…\"", Duration::from_secs(60));
    let logs = server.logs().join("\n");
    assert!(
        logs.contains("DEBUG") || logs.contains("debug"),
        "debug logging is on"
    );
    let mac = token.rsplit_once('.').unwrap().1;
    assert!(!logs.contains(mac), "a token in the log:\n{logs}");
    let encoded_mac = encoded.rsplit_once("%2E").unwrap().1;
    assert!(!logs.contains(encoded_mac), "a token in the log:\n{logs}");
    server.wait_for_log("\"/nope/…\"", Duration::from_secs(60));
}

/// A path like two tokens run together (`KEY.EXPIRES.MAC.EXPIRES.MAC`,
/// which anyone may ask for) is logged without them, and the server
/// answers on: the log's redaction once panicked on it, and on every
/// later line of that thread, so one request left it answering nothing.
#[test]
fn a_path_of_tokens_run_together_is_logged_and_the_server_answers_on() {
    let port = free_port();
    let site = Site::with_mail().served_at(&port).create();
    let server = start(&site, port);
    let http = client();
    let mac = "0".repeat(64);
    let path = format!("/nope/a.1.{mac}.1.{mac}");
    let answer = http.get(server.url(&path)).send().unwrap();
    assert_eq!(answer.status(), StatusCode::NOT_FOUND);
    // Enough requests to reach every worker thread.
    for _ in 0..16 {
        let answer = http.get(server.url("/healthz")).send().unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
    }
    let line = server.wait_for_log("\"/nope/", Duration::from_secs(60));
    assert!(line.contains("\"path\":\"/nope/…"), "{line}");
    let logs = server.logs().join("\n");
    assert!(!logs.contains(&mac), "a token in the log:\n{logs}");
    assert!(!logs.contains("panicked"), "{logs}");
}

/// In the plain log (the default, what a terminal or journald shows), a
/// file name in `content/` with a newline and a terminal escape in it
/// cannot forge a log line or colour the terminal: `content changed`
/// names it with those characters escaped, and so does the problem found
/// in it.
#[test]
fn a_file_name_cannot_forge_a_line_of_the_plain_log() {
    use std::io::BufRead;
    let site = Site::with_mail().create();
    let mut command = site.newsletter(["serve", "--now", NOW, "--listen", "127.0.0.1:0"]);
    command
        .env("NEWSLETTER_SECRET", SECRET)
        .env("NEWSLETTER_LOG", "info")
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().unwrap();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let stderr = child.stderr.take().unwrap();
    let collected = lines.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            collected.lock().unwrap().push(line);
        }
    });
    let logged = |needle: &str| lines.lock().unwrap().iter().any(|l| l.contains(needle));
    wait_until(Duration::from_secs(60), || logged(" listening "));
    let forged = "2026-11-24T00:00:00.000000Z  INFO newsletter::serve: FORGED \u{1b}[31mred";
    site.write(
        &format!("content/2026-11-20-x\n{forged}.md"),
        "---\ntitle: [unclosed\n---\nbody\n",
    );
    wait_until(Duration::from_secs(60), || logged("build failed"));
    let _ = child.kill();
    let _ = child.wait();
    let lines = lines.lock().unwrap().clone();
    let all = lines.join("\n");
    for line in &lines {
        assert!(
            line.get(..4)
                .is_some_and(|y| y.bytes().all(|b| b.is_ascii_digit())),
            "a line that is not the log's own:\n{line}\nin\n{all}"
        );
        assert!(!line.starts_with("2026-11-24T00"), "a forged line:\n{all}");
        assert!(!line.contains('\u{1b}'), "a raw escape:\n{all}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains("content changed") && l.contains("2026-11-20-x\\n2026")),
        "{all}"
    );
}

#[test]
fn one_mailbox_typed_many_ways_is_one_row_and_one_rate_limit() {
    let port = free_port();
    let site = Site::with_mail()
        .served_at(&port)
        .server("signups_per_client = 100")
        .create();
    let server = start(&site, port);
    let http = client();
    let spellings = [
        "victim@example.org",
        "\"victim\"@example.org",
        "\"\\victim\"@example.org",
        "victim@EXAMPLE.org",
        "\"victim\"@Example.Org",
        " victim@example.org",
        "\"vi\\ctim\"@example.org",
        "victim@example.ORG",
    ];
    let mut limited = 0;
    for typed in spellings {
        let answer = http
            .post(server.url("/subscribe"))
            .form(&[("email", typed)])
            .send()
            .unwrap();
        match answer.status() {
            StatusCode::OK => {}
            StatusCode::TOO_MANY_REQUESTS => limited += 1,
            other => panic!("{typed}: {other}"),
        }
    }
    assert_eq!(
        limited,
        spellings.len() - 3,
        "signups_per_email = 3 for the one mailbox"
    );
    // The sign-up thread has handled each sign-up taken (one at a time).
    wait_until(Duration::from_secs(60), || {
        count_logs(&server, "\"confirmation sent\"") == 3
    });
    assert_eq!(count_logs(&server, "\"sign-up queued\""), 3);
    assert_eq!(
        statuses(&site),
        [("victim@example.org".to_string(), "pending".to_string())]
    );
    assert_eq!(common::smtp::count_eml(&site.path("outbox")), 3);

    // Addresses no mail could reach, or that reach this machine's network.
    for typed in [
        "\"vic tim\"@example.org",
        "root@[127.0.0.1]",
        "victim@localhost",
    ] {
        let answer = http
            .post(server.url("/subscribe"))
            .form(&[("email", typed)])
            .send()
            .unwrap();
        assert_eq!(answer.status(), StatusCode::UNPROCESSABLE_ENTITY, "{typed}");
    }
    // The command line takes the same one form.
    cli(&site, &["subscribers", "add", "\"victim\"@example.org"]).success();
    assert_eq!(statuses(&site).len(), 1);
}

/// Holds the store's write lock from another process (as a long import
/// does) until dropped.
struct StoreHeld(std::process::Child);

impl StoreHeld {
    fn hold(db: &std::path::Path) -> StoreHeld {
        use std::io::BufRead;
        let mut child = std::process::Command::new(common::python())
            .args([
                "-c",
                "import sqlite3, sys\n\
                 db = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
                 db.execute('BEGIN IMMEDIATE')\n\
                 db.execute(\"UPDATE settings SET value = value WHERE key = 'secret'\")\n\
                 print('held', flush=True)\n\
                 sys.stdin.readline()\n\
                 db.execute('COMMIT')\n",
            ])
            .arg(db)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "held");
        StoreHeld(child)
    }

    fn release(mut self) {
        use std::io::Write;
        let _ = self.0.stdin.as_mut().unwrap().write_all(b"\n");
        self.0.wait().unwrap();
    }
}

#[test]
fn an_unsubscribe_while_the_store_is_busy_is_queued_and_kept() {
    let port = free_port();
    let site = Site::with_mail()
        .served_at(&port)
        .subscribers(&["ann@example.org", "bob@example.org"])
        .create();
    // Each reader's unsubscribe link, from a digest.
    cli(&site, &["send", "--now", NOW]).success();
    site.write(
        "content/2026-11-24-later.md",
        "---\ntitle: A later post\ncreated_at: 2026-11-24\n---\nLater.\n",
    );
    let mut links = std::collections::HashMap::new();
    for entry in std::fs::read_dir(site.path("outbox")).unwrap() {
        let mail = common::smtp::mail_file(&entry.unwrap().path());
        let to = mail.header("To").to_string();
        let link = mail
            .header("List-Unsubscribe")
            .trim_start_matches('<')
            .split('>')
            .next()
            .unwrap()
            .to_string();
        links.insert(if to.contains("ann@") { "ann" } else { "bob" }, link);
    }
    let server = start(&site, port);
    let http = client();

    // Another process holds the store (a long import): the one-click
    // POST is answered while it still does, as done, and /healthz too.
    let held = StoreHeld::hold(&site.path("newsletter.db"));
    let answer = http
        .post(&links["ann"])
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert!(answer.text().unwrap().contains("You are unsubscribed"));
    assert_eq!(
        http.get(server.url("/healthz")).send().unwrap().status(),
        StatusCode::OK
    );
    server.wait_for_log("unsubscribe queued", Duration::from_secs(60));
    held.release();

    // Applied as soon as the store allows; the next digest skips her.
    server.wait_for_log("queued unsubscribe applied", Duration::from_secs(60));
    assert_eq!(
        status_of(&site, "ann@example.org").as_deref(),
        Some("unsubscribed")
    );
    drop(server);
    cli(&site, &["send", "--now", NOW]).success();
    let later: Vec<String> = std::fs::read_dir(site.path("outbox"))
        .unwrap()
        .map(|e| common::smtp::mail_file(&e.unwrap().path()))
        .filter(|m| m.header("Subject").contains("A later post"))
        .map(|m| m.header("To").to_string())
        .collect();
    assert_eq!(later.len(), 1, "{later:?}");
    assert!(later[0].contains("bob@"), "{later:?}");
}

#[test]
fn a_queued_unsubscribe_is_applied_by_the_next_send_even_without_the_server() {
    let site = Site::with_mail()
        .subscribers(&["ann@example.org", "bob@example.org"])
        .create();
    cli(&site, &["send", "--now", NOW]).success();
    let ann_key = cli(&site, &["subscribers", "export"])
        .success()
        .stdout
        .lines()
        .find(|l| l.starts_with("ann@"))
        .and_then(|l| l.split(',').nth(4))
        .unwrap()
        .to_string();
    // What a server wrote before it was stopped, the store busy till then.
    // A damaged line, and hers cut short by a crash: hers still counts.
    let mut queue = b"\xff\xfe not a key\n".to_vec();
    queue.extend(format!("{ann_key}\t2026-11-25T09:").as_bytes());
    site.write("newsletter.db.unsubscribes", queue);
    site.write(
        "content/2026-11-24-later.md",
        "---\ntitle: A later post\ncreated_at: 2026-11-24\n---\nLater.\n",
    );
    let out = cli(&site, &["send", "--now", NOW]).success();
    assert!(out.stdout.contains("1 sent"), "{out:?}");
    assert_eq!(
        status_of(&site, "ann@example.org").as_deref(),
        Some("unsubscribed")
    );
    assert_eq!(site.read_text("newsletter.db.unsubscribes"), "");
}

/// Raises this process's open-file limit to its hard limit.
fn raise_open_files() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on a local struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
}

#[test]
fn one_client_holding_a_thousand_connections_keeps_no_one_else_out() {
    raise_open_files();
    let port = free_port();
    let site = Site::with_mail().served_at(&port).create();
    let server = start(&site, port);
    let held: Vec<std::net::TcpStream> = (0..1003)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap())
        .collect();
    // The server closes what is over its cap for one client (64).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let open = loop {
        let open = held
            .iter()
            .filter(|s| {
                s.set_nonblocking(true).unwrap();
                let mut byte = [0u8; 1];
                matches!(std::io::Read::read(&mut &**s, &mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
            })
            .count();
        if open <= 64 || std::time::Instant::now() > deadline {
            break open;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(open, 64, "connections the server kept open for one client");

    // Another client is served meanwhile.
    let other = reqwest::blocking::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let answer = other.get(server.url("/atom.xml")).send().unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    drop(held);
    // And the first client again, once it lets go.
    let again = client().get(server.url("/atom.xml")).send().unwrap();
    assert_eq!(again.status(), StatusCode::OK);
}

#[test]
fn a_client_that_never_reads_a_large_answer_is_dropped() {
    use std::io::Write;
    let port = free_port();
    let site = Site::with_mail()
        .served_at(&port)
        .server("request_timeout = \"1s\"")
        .create();
    site.write("public/big.bin", vec![b'x'; 32 << 20]);
    let server = Server::start(
        &site,
        port,
        &["--now", NOW],
        &[("NEWSLETTER_SECRET", SECRET), ("NEWSLETTER_LOG", "debug")],
    );
    let mut slow = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    slow.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // Reads nothing until the server has given up on it, then everything
    // it can.
    server.wait_for_log("\"connection closed\"", Duration::from_secs(60));
    let mut received = 0usize;
    let mut buffer = vec![0u8; 1 << 16];
    slow.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    loop {
        match std::io::Read::read(&mut slow, &mut buffer) {
            Ok(0) => break,
            Ok(n) => received += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("still open after the write deadline: {e}"),
        }
    }
    assert!(
        received < 32 << 20,
        "the whole answer came ({received} bytes)"
    );
    assert_eq!(
        client()
            .get(server.url("/healthz"))
            .send()
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

#[test]
fn behind_a_proxy_each_forwarded_client_has_a_request_rate() {
    let port = free_port();
    let site = Site::with_mail()
        .served_at(&port)
        .server("behind_proxy = true\nrequests_per_client = 1")
        .create();
    let server = start(&site, port);
    let http = client();
    let get = |client: &str| {
        http.get(server.url("/atom.xml"))
            .header("X-Forwarded-For", client)
            .send()
            .unwrap()
            .status()
    };
    let statuses: Vec<StatusCode> = (0..20).map(|_| get("203.0.113.7")).collect();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!(refused >= 10, "{statuses:?}");
    assert_eq!(statuses[0], StatusCode::OK);
    // Another reader behind the same proxy is not held back.
    assert_eq!(get("198.51.100.9"), StatusCode::OK);
}

#[test]
fn a_shorter_confirm_ttl_lets_no_old_link_resubscribe_anyone() {
    let port = free_port();
    let site = Site::with_mail()
        .served_at(&port)
        .server("confirm_ttl = \"30d\"")
        .create();
    let server = start(&site, port.clone());
    assert_eq!(
        sign_up(&server, "reader@example.net").status(),
        StatusCode::OK
    );
    let link = wait_for_outbox_link(&site, &server.url("/confirm/"));
    drop(server);
    cli(&site, &["subscribers", "remove", "reader@example.net"]).success();

    site.replace_in_config("confirm_ttl = \"30d\"", "confirm_ttl = \"1m\"");
    let server = start(&site, port.clone());
    let answer = client().post(&link).send().unwrap();
    assert_eq!(answer.status(), StatusCode::GONE);
    assert_eq!(
        status_of(&site, "reader@example.net").as_deref(),
        Some("unsubscribed")
    );
    drop(server);

    // With the ttl as it was, the old link is still no way back either.
    site.replace_in_config("confirm_ttl = \"1m\"", "confirm_ttl = \"30d\"");
    let _server = start(&site, port);
    assert_eq!(
        client().post(&link).send().unwrap().status(),
        StatusCode::GONE
    );
    assert_eq!(
        status_of(&site, "reader@example.net").as_deref(),
        Some("unsubscribed")
    );
}

/// The text of the one element `selector` picks in `html`, or of the first.
fn text_of(html: &scraper::Html, selector: &str) -> String {
    let selector = scraper::Selector::parse(selector).unwrap();
    html.select(&selector)
        .next()
        .map(|e| e.text().collect::<String>().trim().to_string())
        .unwrap_or_default()
}

/// Every element `selector` picks in `html`, as its attributes.
fn attributes_of(html: &scraper::Html, selector: &str) -> Vec<Vec<(String, String)>> {
    let selector = scraper::Selector::parse(selector).unwrap();
    html.select(&selector)
        .map(|e| {
            e.value()
                .attrs()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

fn attribute<'a>(attributes: &'a [(String, String)], name: &str) -> Option<&'a str> {
    attributes
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The feeds a reader finds in a page's head as feedparser's discovery
/// does: `<link rel="alternate">` of a feed type, by type, hrefs resolved
/// against `page`.
fn discovered_feeds(html: &scraper::Html, page: &str) -> Vec<(String, String)> {
    let page = reqwest::Url::parse(page).unwrap();
    attributes_of(html, "head link")
        .iter()
        .filter(|a| {
            attribute(a, "rel").is_some_and(|rel| {
                rel.split_ascii_whitespace()
                    .any(|r| r.eq_ignore_ascii_case("alternate"))
            })
        })
        .filter_map(|a| {
            let kind = attribute(a, "type")?;
            let href = attribute(a, "href")?;
            [
                "application/atom+xml",
                "application/rss+xml",
                "application/feed+json",
            ]
            .contains(&kind)
            .then(|| (kind.to_string(), page.join(href).unwrap().to_string()))
        })
        .collect()
}

/// Where a redirect's `Location` leads from `from`.
fn redirected_to(answer: &reqwest::blocking::Response, from: &str) -> String {
    let location = answer.headers()[header::LOCATION].to_str().unwrap();
    reqwest::Url::parse(from)
        .unwrap()
        .join(location)
        .unwrap()
        .to_string()
}

#[test]
fn the_home_page_signs_up_and_leads_to_the_feeds_and_the_archive() {
    let smtp = SmtpServer::start(&[]);
    let port = free_port();
    let site = Site::with_mail()
        .served_at(&port)
        .smtp(smtp.config(""))
        .create();
    let server = start(&site, port.clone());
    let http = client();

    let home = http.get(server.url("/")).send().unwrap();
    assert_eq!(home.status(), StatusCode::OK);
    assert_eq!(
        home.headers()[header::CONTENT_TYPE],
        "text/html; charset=utf-8"
    );
    let html = scraper::Html::parse_document(&home.text().unwrap());
    assert_eq!(text_of(&html, "title"), "Fixture Blog");
    assert_eq!(text_of(&html, "h1"), "Fixture Blog");
    assert!(
        attributes_of(&html, "meta[name=robots]").is_empty(),
        "the home page may be indexed"
    );

    // A feed reader given the server's address alone finds the three feeds,
    // at their absolute URLs under site.base_url, which this server answers.
    let feeds = [
        ("application/atom+xml", "https://blog.example.org/atom.xml"),
        ("application/rss+xml", "https://blog.example.org/rss.xml"),
        (
            "application/feed+json",
            "https://blog.example.org/feed.json",
        ),
    ]
    .map(|(t, h)| (t.to_string(), h.to_string()));
    assert_eq!(discovered_feeds(&html, &server.url("/")), feeds);
    for link in attributes_of(&html, "head link[rel=alternate]") {
        let href = attribute(&link, "href").unwrap();
        assert!(href.starts_with("https://"), "absolute: {href}");
    }
    for (kind, href) in &feeds {
        let path = href.strip_prefix("https://blog.example.org").unwrap();
        let feed = http.get(server.url(path)).send().unwrap();
        assert_eq!(feed.status(), StatusCode::OK, "{path}");
        assert!(
            feed.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with(kind.as_str())
        );
    }
    // The body links to them too, and to the archive.
    let body_links: Vec<String> = attributes_of(&html, "main a")
        .iter()
        .filter_map(|a| attribute(a, "href").map(str::to_string))
        .collect();
    for (_, href) in &feeds {
        assert!(body_links.contains(href), "{body_links:?}");
    }
    assert!(
        body_links.contains(&"https://blog.example.org/archive/".to_string()),
        "{body_links:?}"
    );

    // The sign-up page is found by feed readers too.
    let subscribe = http.get(server.url("/subscribe")).send().unwrap().text();
    let subscribe = scraper::Html::parse_document(&subscribe.unwrap());
    assert_eq!(
        discovered_feeds(&subscribe, &server.url("/subscribe")),
        feeds
    );

    // The form is /subscribe's: the same fields, posted to /subscribe.
    let forms = attributes_of(&html, "form");
    assert_eq!(forms.len(), 1, "{forms:?}");
    assert_eq!(attribute(&forms[0], "method"), Some("post"));
    let action = reqwest::Url::parse(&server.url("/"))
        .unwrap()
        .join(attribute(&forms[0], "action").unwrap())
        .unwrap()
        .to_string();
    assert_eq!(action, server.url("/subscribe"));
    let fields = |html: &scraper::Html| -> Vec<String> {
        attributes_of(html, "form input")
            .iter()
            .filter_map(|a| attribute(a, "name").map(str::to_string))
            .collect()
    };
    assert_eq!(fields(&html), ["email", "name", "website"]);
    assert_eq!(fields(&html), fields(&subscribe));
    let answer = http
        .post(&action)
        .form(&[
            ("email", "home@example.net"),
            ("name", "Home Reader"),
            ("website", ""),
        ])
        .send()
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert!(answer.text().unwrap().contains("Check your inbox"));
    smtp.wait_for(1, Duration::from_secs(60));
    assert_eq!(
        status_of(&site, "home@example.net").as_deref(),
        Some("pending")
    );
    let mail = &smtp.messages()[0];
    link_in(mail, &server.url("/confirm/"));
    drop(server);

    // Without the archive, no link to it.
    site.append_config("[archive]\nenabled = false\n");
    let server = start(&site, port);
    let home = http.get(server.url("/")).send().unwrap().text().unwrap();
    let html = scraper::Html::parse_document(&home);
    assert!(
        attributes_of(&html, "a")
            .iter()
            .all(|a| !attribute(a, "href").unwrap_or("").contains("archive")),
        "{home}"
    );
}

#[test]
fn trailing_slashes_lead_to_the_route_and_folders_to_their_slash() {
    let port = free_port();
    let site = Site::with_mail().served_at(&port).create();
    let server = start(&site, port);
    let http = client();
    let token = "t0ken-not-for-logs.1.abc";

    for (from, to) in [
        ("/subscribe/", "/subscribe"),
        ("/subscribe/?ref=home&x=1", "/subscribe?ref=home&x=1"),
        ("/healthz/", "/healthz"),
        (
            &format!("/confirm/{token}/") as &str,
            &format!("/confirm/{token}") as &str,
        ),
        (
            &format!("/unsubscribe/{token}/?a=b"),
            &format!("/unsubscribe/{token}?a=b"),
        ),
        ("/atom.xml/", "/atom.xml"),
    ] {
        let answer = http.get(server.url(from)).send().unwrap();
        assert_eq!(answer.status(), StatusCode::PERMANENT_REDIRECT, "{from}");
        assert_eq!(redirected_to(&answer, &server.url(from)), server.url(to));
    }
    // A POST stays a POST: 308, and a client that follows it signs up.
    let answer = http
        .post(server.url("/subscribe/"))
        .form(&[("email", "slash@example.net")])
        .send()
        .unwrap();
    assert_eq!(answer.status(), StatusCode::PERMANENT_REDIRECT);
    let following = reqwest::blocking::Client::new();
    let answer = following
        .post(server.url("/subscribe/"))
        .form(&[("email", "slash@example.net")])
        .send()
        .unwrap();
    assert_eq!(answer.url().as_str(), server.url("/subscribe"));
    assert!(answer.text().unwrap().contains("Check your inbox"));

    // A folder with an index, named without its slash.
    site.write("public/archive/index.html", "<p>every digest</p>");
    site.write("public/archive/3/index.html", "<p>the third</p>");
    for (from, to) in [
        ("/archive", "/archive/"),
        ("/archive/3", "/archive/3/"),
        ("/archive/3?utm=x", "/archive/3/?utm=x"),
    ] {
        let answer = http.get(server.url(from)).send().unwrap();
        assert_eq!(answer.status(), StatusCode::PERMANENT_REDIRECT, "{from}");
        assert_eq!(redirected_to(&answer, &server.url(from)), server.url(to));
    }
    let logs = server.logs().join("\n");
    assert!(!logs.contains("t0ken"), "a token in the log:\n{logs}");
}

#[test]
fn unknown_paths_get_the_not_found_page() {
    let port = free_port();
    let site = Site::with_mail().served_at(&port).create();
    let server = start(&site, port);
    let http = client();
    for path in [
        "/nope",
        "/nope/",
        "/missing.xml",
        // The archive's index is there (serve builds with a store); no
        // mailing 99 is.
        "/archive/99/",
        "/.newsletter.manifest",
        "/confirm/",
    ] {
        let answer = http.get(server.url(path)).send().unwrap();
        assert_eq!(answer.status(), StatusCode::NOT_FOUND, "{path}");
        let headers = answer.headers().clone();
        assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(headers[header::CACHE_CONTROL], "public, max-age=60");
        let html = scraper::Html::parse_document(&answer.text().unwrap());
        assert_eq!(text_of(&html, "title"), "Page not found · Fixture Blog");
        assert_eq!(text_of(&html, "h1"), "Page not found");
        let links: Vec<String> = attributes_of(&html, "main a")
            .iter()
            .filter_map(|a| attribute(a, "href").map(str::to_string))
            .collect();
        assert!(links.contains(&server.url("/")), "home: {links:?}");
        assert!(
            links.contains(&"https://blog.example.org/atom.xml".to_string()),
            "{links:?}"
        );
    }
    let head = http.head(server.url("/nope")).send().unwrap();
    assert_eq!(head.status(), StatusCode::NOT_FOUND);
    assert!(head.bytes().unwrap().is_empty());
}

#[test]
fn folders_answer_their_index_as_written_while_serving() {
    let port = free_port();
    let site = Site::with_mail().served_at(&port).create();
    let server = start(&site, port);
    let http = client();

    // Written by another process once the server runs: `send`, say.
    let page = format!(
        "<!DOCTYPE html><p>every digest</p>{}",
        "<p>x</p>".repeat(200)
    );
    site.write("public/archive/index.html", &page);
    site.write("public/archive/3/index.html", "<p>the third</p>");
    site.write("public/notes/index.html", "<p>notes</p>");
    let index = http.get(server.url("/archive/")).send().unwrap();
    assert_eq!(index.status(), StatusCode::OK);
    let headers = index.headers().clone();
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    assert_eq!(headers[header::CACHE_CONTROL], "public, max-age=300");
    assert!(headers.contains_key(header::LAST_MODIFIED));
    let etag = headers[header::ETAG].to_str().unwrap().to_string();
    assert_eq!(index.text().unwrap(), page);
    let again = http
        .get(server.url("/archive/"))
        .header(header::IF_NONE_MATCH, &etag)
        .send()
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    let gzipped = http
        .get(server.url("/archive/"))
        .header(header::ACCEPT_ENCODING, "gzip")
        .send()
        .unwrap();
    assert_eq!(gzipped.headers()[header::CONTENT_ENCODING], "gzip");
    for (path, body) in [
        ("/archive/3/", "<p>the third</p>"),
        ("/notes/", "<p>notes</p>"),
    ] {
        let answer = http.get(server.url(path)).send().unwrap();
        assert_eq!(answer.status(), StatusCode::OK, "{path}");
        assert_eq!(answer.text().unwrap(), body);
    }

    // Rewritten: the new page at once, with a new tag.
    site.write("public/archive/index.html", "<p>one more digest</p>");
    let changed = http
        .get(server.url("/archive/"))
        .header(header::IF_NONE_MATCH, &etag)
        .send()
        .unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
    assert_eq!(changed.text().unwrap(), "<p>one more digest</p>");
    // Removed: gone at once.
    std::fs::remove_dir_all(site.path("public/archive/3")).unwrap();
    assert_eq!(
        http.get(server.url("/archive/3/")).send().unwrap().status(),
        StatusCode::NOT_FOUND
    );
}

#[test]
fn nothing_hidden_or_linked_out_is_reachable_through_a_folder_index() {
    let port = free_port();
    let site = Site::with_mail().served_at(&port).create();
    site.build();
    let server = start(&site, port);
    site.write("outside/index.html", "TOP-SECRET folder");
    site.write("outside/secret.html", "TOP-SECRET file");
    site.write("public/.drafts/index.html", "TOP-SECRET draft");
    site.write("public/archive/index.html", "<p>every digest</p>");
    site.write("public/archive/4/.index.html", "TOP-SECRET hidden");
    std::os::unix::fs::symlink(site.path("outside"), site.path("public/archive/out")).unwrap();
    std::fs::create_dir_all(site.path("public/archive/5")).unwrap();
    std::os::unix::fs::symlink(
        site.path("outside/index.html"),
        site.path("public/archive/5/index.html"),
    )
    .unwrap();
    std::fs::hard_link(
        site.path("newsletter.db"),
        site.path("public/archive/backup.db"),
    )
    .unwrap();
    std::fs::create_dir_all(site.path("public/archive/6")).unwrap();
    std::fs::hard_link(
        site.path("config.toml"),
        site.path("public/archive/6/index.html"),
    )
    .unwrap();
    assert!(site.path("public/.newsletter.manifest").exists());

    for path in [
        "/.newsletter.manifest",
        "/.drafts/",
        "/.drafts",
        "/%2edrafts/",
        "/archive/4/",
        "/archive/4/.index.html",
        "/archive/out/",
        "/archive/out",
        "/archive/out/secret.html",
        "/archive/5/",
        "/archive/5",
        "/archive/backup.db",
        "/archive/backup.db/",
        "/archive/6/",
        "/archive/6",
        "/archive/../outside/",
        "/archive/%2e%2e/outside/",
        "/archive/..%2f..%2foutside/",
        "//archive/",
    ] {
        let (status, body) = server.raw_get(path);
        assert_eq!(status, 404, "{path}\n{body}");
        assert!(
            !body.contains("TOP-SECRET") && !body.contains("SQLite"),
            "{path}"
        );
        assert!(!body.contains("[site]"), "{path}: the config");
    }
    assert_eq!(server.raw_get("/archive/").0, 200);
}

#[test]
fn an_encoded_slash_or_a_hard_link_serves_nothing() {
    let port = free_port();
    let site = Site::with_mail().served_at(&port).create();
    site.write(
        "public/kept.eml",
        "From: x\r\n\r\nA message of the outbox.\r\n",
    );
    // A hard link made before the server starts (the table it loads) and
    // one made while it runs (read from the disk).
    std::fs::create_dir_all(site.path("public/later")).unwrap();
    std::fs::hard_link(site.path("public/kept.eml"), site.path("public/early.eml")).unwrap();
    let server = start(&site, port);
    std::fs::hard_link(
        site.path("public/kept.eml"),
        site.path("public/later/leak.eml"),
    )
    .unwrap();
    let http = client();
    for path in ["/early.eml", "/kept.eml", "/later/leak.eml"] {
        let answer = http.get(server.url(path)).send().unwrap();
        assert_eq!(answer.status(), StatusCode::NOT_FOUND, "{path}");
    }
    // `%2f` is no folder: no redirect round in a loop, no other file.
    for path in [
        "/atom.xml%2f",
        "/atom.xml%2F",
        "/later%2fleak.eml",
        "/archive%2f1",
    ] {
        let answer = http.get(server.url(path)).send().unwrap();
        assert_eq!(answer.status(), StatusCode::NOT_FOUND, "{path}");
    }
    // The feed itself is there as ever.
    let feed = http.get(server.url("/atom.xml")).send().unwrap();
    assert_eq!(feed.status(), StatusCode::OK);
}

/// The `address` of the server's `listening` log line, and whether it
/// says the socket was passed in.
fn listening_on(server: &Server) -> (String, bool) {
    let line = server.wait_for_log("\"listening\"", Duration::from_secs(1));
    let line: serde_json::Value = serde_json::from_str(&line).unwrap();
    let fields = &line["fields"];
    (
        fields["address"].as_str().unwrap().to_string(),
        fields["passed_in"].as_bool().unwrap(),
    )
}

/// Started by systemd with a socket (`LISTEN_PID` its own pid), the server
/// answers on that socket; a socket meant for another process is left
/// alone and `--listen` used, and the log says where it serves either way.
#[test]
fn a_socket_passed_in_the_systemd_way_is_served() {
    let port = free_port();
    let site = Site::with_mail().served_at(&port).create();
    let number = port.number();
    // `exec` keeps the shell's pid, which is then the server's.
    let mut systemd = std::process::Command::new("sh");
    systemd
        .args(["-c", "LISTEN_PID=$$ exec \"$@\"", "sh", common::bin()])
        .args([
            "--config",
            "config.toml",
            "serve",
            "--log-json",
            "--now",
            NOW,
        ])
        .args(["--listen", "127.0.0.1:0"])
        .current_dir(site.path(""))
        .env("NEWSLETTER_SECRET", SECRET);
    let server = Server::launch(systemd, port.clone(), &[]);
    assert_eq!(listening_on(&server), (format!("127.0.0.1:{number}"), true));
    let feed = client().get(server.url("/atom.xml")).send().unwrap();
    assert_eq!(feed.status(), StatusCode::OK);
    // The `--listen` given is not used, and the log says so.
    assert!(
        server.log_has("--listen 127.0.0.1:0 is not used"),
        "{}",
        server.logs().join("\n")
    );
    drop(server);

    // LISTEN_PID names another process: the socket is not the server's.
    let mut command = site.newsletter(["serve", "--log-json", "--now", NOW]);
    command.args(["--listen", "127.0.0.1:0"]);
    let server = Server::launch(command, port, &[("LISTEN_PID", "1")]);
    let (address, passed_in) = listening_on(&server);
    assert!(!passed_in);
    assert_ne!(address, format!("127.0.0.1:{number}"));
    let feed = client()
        .get(format!("http://{address}/atom.xml"))
        .send()
        .unwrap();
    assert_eq!(feed.status(), StatusCode::OK, "served where the log says");
    drop(server);

    // A file descriptor 3 that is no listening socket stops it at start.
    let run = common::run(
        site.newsletter(["serve", "--listen", "127.0.0.1:0"])
            .env("LISTEN_FDS", "1")
            .env("NEWSLETTER_SECRET", SECRET),
    );
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stderr.contains("LISTEN_FDS"), "{}", run.stderr);

    // Variables no one could have meant stop it at start with exit 1 and
    // the variable named: not a crash (a count of two billion sockets was
    // a list of as many in memory; a first descriptor near the top, an
    // overflow), nor a quiet bind elsewhere (a count it cannot read).
    for (name, value, others) in [
        ("LISTEN_FDS", "2147483647", &[][..]),
        ("LISTEN_FDS", "abc", &[][..]),
        ("LISTEN_FDS", "-1", &[][..]),
        (
            "LISTEN_FDS_FIRST_FD",
            "2147483647",
            &[("LISTEN_FDS", "2")][..],
        ),
        ("LISTEN_PID", "xyz", &[("LISTEN_FDS", "1")][..]),
    ] {
        let mut command = site.newsletter(["serve", "--listen", "127.0.0.1:0"]);
        command
            .env("NEWSLETTER_SECRET", SECRET)
            .env_remove("LISTEN_PID")
            .env_remove("LISTEN_FDS_FIRST_FD")
            .env(name, value)
            .envs(others.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        // A bound on memory, so that a list of two billion descriptors
        // fails at once instead of filling the machine.
        // SAFETY: only setrlimit, async-signal-safe, runs between fork and exec.
        unsafe {
            use std::os::unix::process::CommandExt;
            command.pre_exec(|| {
                let limit = libc::rlimit {
                    rlim_cur: 4 << 30,
                    rlim_max: 4 << 30,
                };
                if libc::setrlimit(libc::RLIMIT_AS, &limit) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let what = format!("serve with {name}={value}");
        let run = common::finish_within(command.spawn().unwrap(), Duration::from_secs(60), &what)
            .failure();
        assert!(
            run.stderr.contains(&format!("{name}={value:?}")),
            "{what}\n{run}"
        );
    }
}

/// Checks the headers every page of the server carries: no script runs,
/// no other site frames it, no referrer leaves it (its URL may hold a
/// token), and no cache keeps it (`cache` otherwise).
#[track_caller]
fn assert_page_headers(what: &str, answer: &reqwest::blocking::Response, cache: &str) {
    let headers = answer.headers();
    let value = |name: header::HeaderName| {
        headers
            .get(&name)
            .unwrap_or_else(|| panic!("{what}: no {name}"))
            .to_str()
            .unwrap()
            .to_string()
    };
    assert!(
        value(header::CONTENT_TYPE).starts_with("text/html"),
        "{what}"
    );
    let policy = value(header::CONTENT_SECURITY_POLICY);
    let directives: Vec<&str> = policy.split(';').map(str::trim).collect();
    for needed in [
        "default-src 'none'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ] {
        assert!(directives.contains(&needed), "{what}: {policy}");
    }
    assert!(!policy.contains("script-src"), "{what}: {policy}");
    assert_eq!(value(header::X_FRAME_OPTIONS), "DENY", "{what}");
    assert_eq!(value(header::REFERRER_POLICY), "no-referrer", "{what}");
    assert_eq!(value(header::CACHE_CONTROL), cache, "{what}");
}

/// Every page (home, sign-up form and its answers, the confirm, unsubscribe
/// and preference pages and their answers, 404) runs no script, cannot be
/// framed and sends no referrer; forms and answers are never cached (the
/// 404 for a minute); the feeds may be kept five minutes.
#[test]
fn pages_run_no_script_cannot_be_framed_and_are_not_cached_but_feeds_are() {
    use newsletter::token::Purpose;
    let port = free_port();
    let site = Site::with_mail()
        .served_at(&port)
        .subscribers(&["ann@example.org"])
        .create();
    let server = start(&site, port);
    let http = client();
    let no_store = "no-store";

    let get = |path: &str| http.get(server.url(path)).send().unwrap();
    assert_page_headers("home", &get("/"), no_store);
    assert_page_headers("sign-up form", &get("/subscribe"), no_store);
    let refused = http
        .post(server.url("/subscribe"))
        .form(&[("email", "not an address")])
        .send()
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_page_headers("sign-up form again", &refused, no_store);
    let answer = sign_up(&server, "bea@example.org");
    assert_eq!(answer.status(), StatusCode::OK);
    assert_page_headers("sign-up answer", &answer, no_store);

    let confirm_url = wait_for_outbox_link(&site, &server.url("/confirm/"));
    let page = http.get(&confirm_url).send().unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_page_headers("confirm page", &page, no_store);
    let thanks = http.post(&confirm_url).send().unwrap();
    assert_eq!(thanks.status(), StatusCode::OK);
    assert_page_headers("confirmed", &thanks, no_store);
    let forged = get("/confirm/garbage");
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
    assert_page_headers("bad link", &forged, no_store);

    let preferences = common::server::preferences_url(&site, &server, "ann@example.org");
    let page = http.get(&preferences).send().unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_page_headers("preference page", &page, no_store);
    let long = "x".repeat(101);
    let again = http
        .post(&preferences)
        .form(&[("name", long.as_str())])
        .send()
        .unwrap();
    assert_eq!(again.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_page_headers("preference form again", &again, no_store);

    let token = common::server::token_for(&site, "ann@example.org", Purpose::Unsubscribe);
    let unsubscribe = server.url(&format!("/unsubscribe/{token}"));
    let page = http.get(&unsubscribe).send().unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_page_headers("unsubscribe page", &page, no_store);
    let done = http
        .post(&unsubscribe)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .unwrap();
    assert_eq!(done.status(), StatusCode::OK);
    assert_page_headers("unsubscribed", &done, no_store);

    let missing = get("/nope");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_page_headers("not found", &missing, "public, max-age=60");

    for feed in ["/atom.xml", "/rss.xml", "/feed.json"] {
        let answer = get(feed);
        assert_eq!(answer.status(), StatusCode::OK, "{feed}");
        assert_eq!(
            answer.headers()[header::CACHE_CONTROL],
            "public, max-age=300",
            "{feed}"
        );
        let etag = answer.headers()[header::ETAG].clone();
        let unchanged = http
            .get(server.url(feed))
            .header(header::IF_NONE_MATCH, etag)
            .send()
            .unwrap();
        assert_eq!(unchanged.status(), StatusCode::NOT_MODIFIED, "{feed}");
        assert_eq!(
            unchanged.headers()[header::CACHE_CONTROL],
            "public, max-age=300",
            "{feed}: 304"
        );
    }
}

/// Copies the SQLite database `from` over `to` with SQLite's backup (as
/// `sqlite3 TO ".restore FROM"` does), from another process.
fn restore_store(from: &std::path::Path, to: &std::path::Path) {
    let out = common::run(std::process::Command::new(common::python()).args([
        "-c",
        "import sqlite3, sys\n\
         source = sqlite3.connect(sys.argv[1])\n\
         target = sqlite3.connect(sys.argv[2])\n\
         source.backup(target)\n\
         target.close()\n",
        from.to_str().unwrap(),
        to.to_str().unwrap(),
    ]));
    assert_eq!(out.code, Some(0), "{out}");
}

/// `/healthz` answers 503 while the store is unusable (here: a wrong
/// database restored over it while the server runs), so monitoring sees
/// it, and 200 again once the right one is back.
#[test]
fn healthz_answers_503_while_the_store_is_unusable() {
    let port = free_port();
    let site = Site::with_mail().served_at(&port).create();
    let server = start(&site, port);
    let health = || {
        let answer = client().get(server.url("/healthz")).send().unwrap();
        let status = answer.status();
        let body: serde_json::Value = serde_json::from_str(&answer.text().unwrap()).unwrap();
        (status, body["status"].as_str().unwrap().to_string())
    };
    assert_eq!(health(), (StatusCode::OK, "ok".to_string()));

    let store = site.path("newsletter.db");
    let backup = site.path("backup.db");
    restore_store(&store, &backup);
    let wrong = site.path("wrong.db");
    let made = common::run(std::process::Command::new(common::python()).args([
        "-c",
        "import sqlite3, sys\nsqlite3.connect(sys.argv[1]).execute('CREATE TABLE notes (x)')\n",
        wrong.to_str().unwrap(),
    ]));
    assert_eq!(made.code, Some(0), "{made}");
    restore_store(&wrong, &store);
    assert_eq!(
        health(),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "store unavailable".to_string()
        )
    );

    restore_store(&backup, &store);
    assert_eq!(health(), (StatusCode::OK, "ok".to_string()));
}

/// Behind a proxy, IPv6 readers are counted by /64 (the block one home or
/// host usually has): two addresses of one /64 share the sign-up limit,
/// an address of the next /64 has its own, and an IPv4 reader written as
/// an IPv4-mapped IPv6 address is the same reader.
#[test]
fn behind_a_proxy_ipv6_clients_are_counted_by_their_64() {
    let port = free_port();
    let site = Site::with_mail()
        .served_at(&port)
        .server("behind_proxy = true\nsignups_per_client = 2\nsignups_per_email = 100")
        .create();
    let server = start(&site, port);
    let http = client();
    let mut n = 0;
    let mut sign_up_from = |client: &str| {
        n += 1;
        http.post(server.url("/subscribe"))
            .header("X-Forwarded-For", client)
            .form(&[("email", format!("r{n}@example.net"))])
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(sign_up_from("2001:db8:1:2::1"), StatusCode::OK);
    assert_eq!(
        sign_up_from("2001:db8:1:2:ffff:ffff:ffff:ffff"),
        StatusCode::OK
    );
    assert_eq!(
        sign_up_from("2001:db8:1:2::abcd"),
        StatusCode::TOO_MANY_REQUESTS,
        "a third from the same /64"
    );
    assert_eq!(
        sign_up_from("2001:db8:1:3::1"),
        StatusCode::OK,
        "the next /64 is another reader"
    );

    assert_eq!(sign_up_from("203.0.113.5"), StatusCode::OK);
    assert_eq!(sign_up_from("203.0.113.5"), StatusCode::OK);
    assert_eq!(
        sign_up_from("::ffff:203.0.113.5"),
        StatusCode::TOO_MANY_REQUESTS
    );
}
