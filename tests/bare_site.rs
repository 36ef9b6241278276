//! A site made of only `config.toml` and its posts, run with the binary
//! alone: every template comes from the copies built into the binary, and
//! a broken template of the site's own is reported before anything is sent.

mod common;

use std::time::Duration;

use common::server;
use common::smtp::count_eml;
use common::{NOW, Site, run};

/// The fixture blog: config and content, no templates folder, no store.
fn bare_site() -> Site {
    let site = Site::fixture("blog");
    assert!(!site.path("templates").exists());
    site
}

#[test]
fn check_preview_and_send_work_with_the_built_in_templates() {
    let site = bare_site();
    let check = run(&mut site.newsletter(["check"])).success();
    assert!(
        check.stdout.contains("and the templates: no problems"),
        "{check:?}"
    );

    // Looking creates nothing: no store, no outbox.
    let preview = run(site
        .newsletter(["preview", "--now", NOW])
        .env("NEWSLETTER_SECRET", server::SECRET))
    .success();
    assert!(preview.stdout.contains("digest.eml"), "{preview:?}");
    let html = site.read_text("preview/digest.html");
    assert!(html.contains("Fixture Blog"), "{html}");
    assert!(html.contains("style="), "the CSS is inlined: {html}");
    assert!(!html.contains("<style"), "{html}");
    let text = site.read_text("preview/digest.txt");
    assert!(text.contains("https://blog.example.org/posts/"), "{text}");
    run(&mut site.newsletter(["send", "--dry-run", "--now", NOW])).success();
    assert!(!site.path("newsletter.db").exists(), "preview made a store");

    // The same digest as the project's own templates folder renders.
    let with_folder = Site::fixture("blog");
    with_folder.append_config(&format!(
        "[digest]\ntemplates = {:?}\n",
        common::manifest_dir()
            .join("templates")
            .display()
            .to_string()
    ));
    run(with_folder
        .newsletter(["preview", "--now", NOW])
        .env("NEWSLETTER_SECRET", server::SECRET))
    .success();
    for file in ["preview/digest.txt", "preview/digest.html"] {
        assert_eq!(site.read_text(file), with_folder.read_text(file), "{file}");
    }

    run(&mut site.newsletter(["subscribers", "add", "ann@example.org"])).success();
    // No [smtp]: a trial into the outbox.
    let sent = run(&mut site.newsletter(["send", "--now", NOW])).success();
    assert!(sent.stdout.contains("as 1 .eml file "), "{sent:?}");
    assert_eq!(count_eml(&site.path("outbox")), 1);
}

#[test]
fn serve_starts_and_answers_with_the_built_in_pages() {
    let site = bare_site();
    let server = server::start(&site, server::free_port());
    let client = server::client();
    let form = client.get(server.url("/subscribe")).send().unwrap();
    assert_eq!(form.status(), 200);
    let body = form.text().unwrap();
    assert!(
        body.contains("<form") && body.contains("Fixture Blog"),
        "{body}"
    );
    let feed = client.get(server.url("/atom.xml")).send().unwrap();
    assert_eq!(feed.status(), 200);
    // No [smtp]: said at start, since sign-ups would wait for mail in vain.
    server.wait_for_log("reach no one", Duration::from_secs(60));
}

#[test]
fn a_broken_template_of_the_site_is_reported_by_check_and_stops_serve() {
    let site = bare_site();
    // Undefined only when rendered: parsing alone would not find it.
    site.write(
        "templates/digest.txt",
        "{{ site.title }}\n{% for post in posts %}\n{{ post.titel }}\n{% endfor %}\n",
    );
    let check = run(&mut site.newsletter(["check"])).exit_code(1);
    let file = site.path("templates/digest.txt");
    assert!(
        check.stderr.contains(&format!("{}:3", file.display()))
            || check.stderr.contains("templates/digest.txt:3"),
        "{check:?}"
    );
    assert!(check.stderr.contains("undefined"), "{check:?}");

    let port = server::free_port();
    let mut child = site
        .newsletter(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("NEWSLETTER_SECRET", server::SECRET)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "serve started with a broken template"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("templates/digest.txt:3"), "{stderr}");

    // A broken page template too, found while rendering the sample page.
    site.write("templates/digest.txt", "{{ site.title }}\n");
    site.write(
        "templates/page.html",
        "{% extends \"_layout.html\" %}\n{% block body %}{{ message|nosuchfilter }}{% endblock %}\n",
    );
    let check = run(&mut site.newsletter(["check"])).exit_code(1);
    assert!(check.stderr.contains("templates/page.html:2"), "{check:?}");
}

#[test]
fn templates_that_fail_only_on_some_requests_or_inside_an_include_are_reported() {
    let site = bare_site();
    // Fine while a page has a link; fails on the pages that have none.
    site.write(
        "templates/page.html",
        "{% extends \"_layout.html\" %}{% block body %}<p>{{ message }}</p>\n<a href=\"{{ link_url }}\">{{ link_text }} ({{ link_text|length }})</a>{% endblock %}\n",
    );
    let check = run(&mut site.newsletter(["check"])).exit_code(1);
    assert!(check.stderr.contains("templates/page.html:2"), "{check:?}");
    std::fs::remove_file(site.path("templates/page.html")).unwrap();

    // An error inside an included template names that file and line.
    site.write(
        "templates/digest.txt",
        "hello\n{% include \"parts/x.txt\" %}\n",
    );
    site.write("templates/parts/x.txt", "a\nb\n{{ nope.deeper }}\n");
    let check = run(&mut site.newsletter(["check"])).exit_code(1);
    assert!(
        check
            .stderr
            .contains("templates/parts/x.txt:3 (included from")
            && check.stderr.contains("templates/digest.txt:2)")
            && check.stderr.contains("undefined value"),
        "{check:?}"
    );
}

#[test]
fn a_templates_path_that_is_a_file_or_a_short_secret_is_refused() {
    let site = bare_site();
    site.write("templates", "not a folder");
    let check = run(&mut site.newsletter(["check"])).exit_code(1);
    assert!(
        check.stderr.contains("`digest.templates`") && check.stderr.contains("is not a folder"),
        "{check:?}"
    );
    std::fs::remove_file(site.path("templates")).unwrap();

    let preview = run(site
        .newsletter(["preview", "--now", NOW])
        .env("NEWSLETTER_SECRET", "short"))
    .exit_code(1);
    assert!(preview.stderr.contains("NEWSLETTER_SECRET"), "{preview:?}");
    assert!(!site.path("preview").exists() && !site.path("newsletter.db").exists());
}

#[test]
fn after_the_last_digest_preview_and_send_to_show_it_again_with_the_current_templates() {
    let site = bare_site();
    let cli = |args: &[&str]| {
        let mut command = site.newsletter(args);
        command.env("NEWSLETTER_SECRET", server::SECRET);
        run(&mut command)
    };
    // The outbox is a pickup folder here: a send there is a real one.
    site.append_config("[email]\noutbox_mode = \"deliver\"\n");
    cli(&["subscribers", "add", "ann@example.org"]).success();
    cli(&["send", "--now", NOW]).success();
    let nothing = cli(&["send", "--now", NOW]).success();
    assert!(nothing.stdout.contains("nothing to send"), "{nothing:?}");

    // A template changed after the digest went out: the preview shows the
    // latest digest with it.
    site.write(
        "templates/digest.txt",
        "Edited: {% for post in posts %}{{ post.title }}; {% endfor %}\n{{ unsubscribe_url }}\n",
    );
    let again = cli(&["preview", "--now", NOW]).success();
    assert!(
        again
            .stdout
            .contains("no post is new: previewing digest 1 again"),
        "{again:?}"
    );
    let text = site.read_text("preview/digest.txt");
    assert!(text.starts_with("Edited: "), "{text}");
    // The post of digest 1, by the new template.
    let title = text["Edited: ".len()..].split_once("; ").map(|(t, _)| t);
    assert!(title.is_some_and(|t| !t.is_empty()), "{text}");

    let outbox = count_eml(&site.path("outbox"));
    let test = cli(&["send", "--to", "editor@example.org", "--now", NOW]).success();
    assert!(test.stdout.contains("the latest digest again"), "{test:?}");
    assert_eq!(count_eml(&site.path("outbox")), outbox + 1);
    // Still nothing recorded: a real send has nothing to do.
    let nothing = cli(&["send", "--now", NOW]).success();
    assert!(nothing.stdout.contains("nothing to send"), "{nothing:?}");
}

#[test]
fn check_and_send_warn_once_when_nothing_may_answer_the_unsubscribe_links() {
    let site = bare_site();
    let check = run(&mut site.newsletter(["check"])).success();
    let warning = "warning: the digest's unsubscribe links";
    assert_eq!(check.stderr.matches(warning).count(), 1, "{check:?}");
    assert!(
        check
            .stderr
            .contains("https://blog.example.org/unsubscribe/TOKEN")
            && check.stderr.contains("server.public_url"),
        "{check:?}"
    );
    run(&mut site.newsletter(["subscribers", "add", "ann@example.org"])).success();
    let sent = run(&mut site.newsletter(["send", "--now", NOW])).success();
    assert_eq!(sent.stderr.matches(warning).count(), 1, "{sent:?}");

    // Said where `newsletter serve` runs: no warning.
    site.append_config("[server]\npublic_url = \"https://news.example.org\"\n");
    let check = run(&mut site.newsletter(["check"])).success();
    assert!(!check.stderr.contains(warning), "{check:?}");
}
