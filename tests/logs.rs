//! No confirm, unsubscribe or preference token in any line a run writes,
//! whatever `NEWSLETTER_LOG` asks for: a token works like a password for
//! one reader, and logs are read, kept and shipped by more people than the
//! list's owner.

mod common;

use std::process::Child;
use std::time::{Duration, Instant};

use common::mail_site::addresses;
use common::smtp::{Mail, eml_files, mail_file};
use common::{NOW, Run, Site, run};

const SECRET: &str = "a-token-secret-for-the-log-tests";
const PUBLIC: &str = "https://news.example.org/";

/// What `NEWSLETTER_LOG` may say: this tool's most detailed levels, in
/// any case, and everything at its most detailed, the HTML parser and
/// the HTTP stack named as well.
const FILTERS: [&str; 3] = [
    "trace",
    "DEBUG",
    "trace,html5ever=trace,markup5ever=trace,hyper=trace,axum=trace,tower=trace,lettre=trace",
];

/// The mail in the outbox, parsed by Python's `email`.
fn outbox(site: &Site) -> Vec<Mail> {
    eml_files(&site.path("outbox"))
        .iter()
        .map(|f| mail_file(f))
        .collect()
}

/// The token after `route` in the one link to it in `text`.
#[track_caller]
fn token_in(text: &str, route: &str) -> String {
    let prefix = format!("{PUBLIC}{route}/");
    let links: Vec<&str> = text
        .split_whitespace()
        .filter(|w| w.starts_with(&prefix))
        .collect();
    assert_eq!(links.len(), 1, "links to {prefix} in:\n{text}");
    links[0][prefix.len()..].to_string()
}

/// Waits (up to a minute, which only bounds a hang) until `done` holds.
#[track_caller]
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `newsletter serve` on a port the system chooses, its two streams in
/// files; returns the child and its address once it says it listens.
fn serve(site: &Site, filter: &str, json: bool, tag: &str) -> (Child, String) {
    let mut command = site.newsletter(["serve", "--listen", "127.0.0.1:0"]);
    if json {
        command.arg("--log-json");
    }
    command
        .args(["--now", "2026-11-30T10:00:00Z"])
        .env("NEWSLETTER_SECRET", SECRET)
        .env("NEWSLETTER_LOG", filter)
        .stdout(std::fs::File::create(site.outside().join(format!("{tag}.out"))).unwrap())
        .stderr(std::fs::File::create(site.outside().join(format!("{tag}.err"))).unwrap());
    let child = command.spawn().expect("start newsletter serve");
    let err = site.outside().join(format!("{tag}.err"));
    let mut address = None;
    wait_until("the server to listen", || {
        let log = std::fs::read_to_string(&err).unwrap_or_default();
        address = log
            .lines()
            .find(|l| l.contains("listening"))
            .and_then(|l| l.split("127.0.0.1:").nth(1))
            .map(|rest| {
                let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
                format!("http://127.0.0.1:{port}")
            });
        address.is_some()
    });
    (child, address.unwrap())
}

/// Stops the server with SIGTERM and returns what it wrote.
fn stop(site: &Site, mut child: Child, tag: &str) -> Run {
    // SAFETY: signalling our own child, not yet reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let mut status = None;
    wait_until("the server to stop", || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    let read = |ext: &str| {
        String::from_utf8_lossy(
            &std::fs::read(site.outside().join(format!("{tag}.{ext}"))).unwrap(),
        )
        .into_owned()
    };
    Run {
        code: status.unwrap().code(),
        stdout: read("out"),
        stderr: read("err"),
    }
}

/// Panics, naming the line, if any line of the run's output holds a
/// token or a piece of one: a quarter of its MAC (so a token cut in two is
/// found too), or its key and expiry (a link with it, cut or whole).
#[track_caller]
fn assert_no_token(what: &str, run: &Run, tokens: &[&str]) {
    let output = format!("{}\n{}", run.stdout, run.stderr);
    for token in tokens {
        let mac = token.rsplit_once('.').unwrap().1;
        let head = &token[..token.len() - mac.len()];
        let pieces = [head, &mac[..16], &mac[16..32], &mac[32..48], &mac[48..]];
        for piece in pieces {
            if output.contains(piece) {
                let line = output.lines().find(|l| l.contains(piece)).unwrap();
                panic!("{what}: (part of) a token in a log line:\n{line}");
            }
        }
    }
}

/// With each filter, in text and in JSON: `send` mails a digest (its links
/// carry the reader's unsubscribe and preference tokens), then `serve`
/// sends the scheduled one, takes a sign-up and mails its confirmation,
/// and answers the confirm page and its POST, the preference page and a
/// save, the unsubscribe page and the one-click POST. Every one of them
/// worked, detailed logging was on, and no line of either program's output
/// has a token, its MAC or a link to one.
#[test]
fn no_token_in_any_line_at_any_log_level() {
    for (i, filter) in FILTERS.iter().enumerate() {
        let json = i % 2 == 1;
        let what = format!(
            "NEWSLETTER_LOG={filter}{}",
            if json { " (JSON)" } else { "" }
        );
        let site = Site::with_mail()
            .public_url(PUBLIC)
            .schedule("digest = \"0 9 * * MON\"")
            .subscribers(&addresses(1))
            .without_posts()
            .create();
        // Few posts, as HTML parsed at trace level makes a big log.
        site.write(
            "content/2026-11-20-first.md",
            "---\ntitle: First\ncreated_at: 2026-11-20\ntags: [rust]\n---\n\nFirst news.\n",
        );
        site.append_config("[[topics]]\nkey = \"rust\"\nlabel = \"Rust\"\ntags = [\"rust\"]");
        let reader = addresses(1).remove(0);

        let sent = run(site
            .newsletter(["send", "--now", NOW])
            .env("NEWSLETTER_SECRET", SECRET)
            .env("NEWSLETTER_LOG", filter))
        .success();
        let digest = outbox(&site);
        assert_eq!(digest.len(), 1, "{what}: {sent}");
        let text = digest[0].part("text/plain");
        let unsubscribe = token_in(text, "unsubscribe");
        let preferences = token_in(text, "preferences");
        assert_no_token(
            &format!("{what}: send"),
            &sent,
            &[&unsubscribe, &preferences],
        );

        // A post for the digest the server sends on its schedule (Monday
        // 9:00, an hour before its clock starts).
        site.write(
            "content/2026-11-29-fresh.md",
            "---\ntitle: Fresh\ncreated_at: 2026-11-29\ntags: [rust]\n---\n\nFresh news.\n",
        );
        let (child, base) = serve(&site, filter, json, &format!("serve{i}"));
        let outbox_files = || eml_files(&site.path("outbox")).len();
        wait_until("the scheduled digest", || outbox_files() == 2);
        let http = reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let answer = http
            .post(format!("{base}/subscribe"))
            .form(&[("email", "newcomer@example.net")])
            .send()
            .unwrap();
        assert_eq!(answer.status(), 200, "{what}: sign-up");
        wait_until("the confirmation mail", || outbox_files() == 3);
        let confirmation = outbox(&site)
            .into_iter()
            .find(|m| m.header("To") == "newcomer@example.net")
            .expect("a confirmation to the newcomer");
        let confirm = token_in(confirmation.part("text/plain"), "confirm");

        let url = |route: &str, token: &str| format!("{base}/{route}/{token}");
        let answers = [
            ("confirm page", http.get(url("confirm", &confirm))),
            ("confirm", http.post(url("confirm", &confirm))),
            (
                "preference page",
                http.get(url("preferences", &preferences)),
            ),
            (
                "preference save",
                http.post(url("preferences", &preferences)).form(&[
                    ("name", "Ann Reader"),
                    ("topics", "rust"),
                    ("topics_offered", "rust"),
                ]),
            ),
            (
                "unsubscribe page",
                http.get(url("unsubscribe", &unsubscribe)),
            ),
            (
                "one-click unsubscribe",
                http.post(url("unsubscribe", &unsubscribe))
                    .body("List-Unsubscribe=One-Click"),
            ),
        ];
        for (name, request) in answers {
            let status = request.send().unwrap().status().as_u16();
            assert!(
                status == 200 || status == 303,
                "{what}: {name} answered {status}"
            );
        }
        // Each request did what it is for (an unsubscribe the busy store
        // could not take at once is queued and applied soon after).
        let expected =
            format!("{reader}\tAnn Reader\tunsubscribed\nnewcomer@example.net\t\tactive\n");
        let mut listed = String::new();
        wait_until("the requests' changes in the store", || {
            listed = run(&mut site.newsletter(["subscribers", "list"]))
                .success()
                .stdout
                .lines()
                .map(|l| l.rsplit_once('\t').unwrap().0.to_string() + "\n")
                .collect();
            listed == expected
        });
        let served = stop(&site, child, &format!("serve{i}"));
        assert_eq!(served.code, Some(0), "{what}\n{served}");
        // Detailed logging was on: this tool's debug lines are there.
        assert!(
            served
                .stderr
                .lines()
                .any(|l| l.contains("DEBUG") || l.contains("TRACE")),
            "{what}: no debug line\n{served}"
        );
        assert_no_token(
            &format!("{what}: serve"),
            &served,
            &[&unsubscribe, &preferences, &confirm],
        );
    }
}
