//! WebSub: `newsletter build` tells a real (loopback) hub which feeds changed,
//! and a hub that refuses or is gone costs a warning, never the build.

mod common;

use std::path::Path;

use std::collections::BTreeSet;
use std::path::PathBuf;

use common::hub::{HubServer, closed_port};
use common::{Site, run};

const BASE: &str = "https://blog.example.org";

/// The fixture blog with per-tag feeds, pointed at a hub.
fn blog_with_hub(hub_url: &str) -> Site {
    let site = Site::fixture("blog");
    site.append_config(&format!("per_tag = true\nhub = \"{hub_url}\""));
    site
}

/// The public URL of each file in `files` (paths under `public/`).
fn topics<'a>(files: impl IntoIterator<Item = &'a PathBuf>) -> BTreeSet<String> {
    files
        .into_iter()
        .map(|file| format!("{BASE}/{}", file.to_str().unwrap().replace('\\', "/")))
        .collect()
}

/// The topics the hub was told of, each checked to be a well-formed publish
/// request; panics if one topic came twice.
#[track_caller]
fn published(hub: &HubServer, from: usize) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for request in &hub.requests()[from..] {
        assert_eq!(request.path, "/", "{request:?}");
        assert_eq!(
            request.content_type.as_deref(),
            Some("application/x-www-form-urlencoded"),
            "{request:?}"
        );
        let form = request.form();
        let [(mode_key, mode), (url_key, topic)] = form.as_slice() else {
            panic!("expected hub.mode and hub.url: {request:?}");
        };
        assert_eq!((mode_key.as_str(), mode.as_str()), ("hub.mode", "publish"));
        assert_eq!(url_key, "hub.url");
        assert!(seen.insert(topic.clone()), "{topic} was published twice");
    }
    seen
}

#[test]
fn the_hub_hears_once_of_each_feed_the_build_wrote() {
    let hub = HubServer::start();
    let site = blog_with_hub(&hub.url());
    site.build();

    let mut files = site.snapshot("public");
    // The build's manifest, which no reader fetches.
    assert!(files.remove(Path::new(".newsletter.manifest")).is_some());
    assert_eq!(files.len(), 15, "3 site feeds and 3 for each of 4 tags");
    assert_eq!(published(&hub, 0), topics(files.keys()));

    let requests = hub.requests();
    assert_eq!(requests.len(), 15);
    // The form encoding, byte for byte, for one of them.
    assert!(
        requests.iter().any(|r| r.body
            == "hub.mode=publish&hub.url=https%3A%2F%2Fblog.example.org%2Ftags%2Frust%2Fatom.xml"),
        "{requests:#?}"
    );
    let agent = format!("newsletter/{}", env!("CARGO_PKG_VERSION"));
    for request in &requests {
        assert_eq!(request.user_agent.as_deref(), Some(agent.as_str()));
    }
}

#[test]
fn the_hub_hears_only_of_the_feeds_a_rebuild_changed() {
    let hub = HubServer::start();
    let site = blog_with_hub(&hub.url());
    site.build();
    let first = hub.requests().len();

    site.build();
    assert_eq!(
        hub.requests().len(),
        first,
        "a build that changed nothing told the hub"
    );

    // Retitling the Zola post changes the site feeds and its tags' feeds.
    let before = site.snapshot("public");
    let post = site
        .read_text("content/zola-post.md")
        .replace("Zola: TOML front matter", "Zola: retitled");
    assert!(post.contains("Zola: retitled"), "the fixture's title moved");
    site.write("content/zola-post.md", post);
    site.build();
    let after = site.snapshot("public");
    let changed: Vec<&PathBuf> = after
        .iter()
        .filter(|(file, bytes)| before.get(*file) != Some(*bytes))
        .map(|(file, _)| file)
        .collect();
    let expected = topics(changed);
    assert!(
        expected.contains(&format!("{BASE}/tags/zola/feed.json"))
            && !expected.contains(&format!("{BASE}/tags/rust/atom.xml")),
        "{expected:?}"
    );
    assert_eq!(published(&hub, first), expected);
}

#[test]
fn a_hub_that_refuses_costs_a_warning_not_the_build() {
    let hub = HubServer::answering(500);
    let site = blog_with_hub(&hub.url());
    let build = site.build();

    site.feeds("public").assert_clean();
    // Every feed was tried, although the first was refused.
    assert_eq!(published(&hub, 0).len(), 15);
    let warning = build
        .stderr
        .lines()
        .find(|l| l.starts_with("warning: "))
        .unwrap_or_else(|| panic!("no warning\n{build}"));
    assert!(warning.contains(&hub.url()), "{warning}");
    assert!(
        build.stderr.contains(&format!(
            "{BASE}/atom.xml: HTTP 500 Internal Server Error: \"hub says 500\""
        )),
        "{build}"
    );
    assert!(
        build
            .stderr
            .contains(&format!("{BASE}/tags/toml/rss.xml: HTTP 500")),
        "{build}"
    );
}

#[test]
fn an_unreachable_hub_costs_a_warning_not_the_build() {
    let hub_url = format!("http://127.0.0.1:{}/", closed_port());
    let site = blog_with_hub(&hub_url);
    let build = run(&mut site.newsletter(["build", "--now", common::NOW])).success();

    site.feeds("public").assert_clean();
    assert!(
        build
            .stderr
            .starts_with(&format!("warning: the WebSub hub {hub_url} ")),
        "{build}"
    );
    assert!(build.stderr.contains("cannot connect"), "{build}");
    assert!(build.stdout.contains("wrote 15 files"), "{build}");
}

#[test]
fn serve_tells_the_hub_when_a_rebuild_changes_feeds() {
    use common::server::{Server, free_port};
    let hub = HubServer::start();
    let site = blog_with_hub(&hub.url());
    let port = free_port();
    let _server = Server::start(&site, port, &["--now", "2026-11-25T00:00:00Z"], &[]);
    // The build before it listens wrote every feed.
    assert_eq!(published(&hub, 0).len(), 15);

    site.write(
        "content/while-serving.md",
        "---\ntitle: Written while serving\ncreated_at: 2026-11-24\n---\nHello.\n",
    );
    let start = std::time::Instant::now();
    while hub.requests().len() < 18 {
        assert!(start.elapsed().as_secs() < 20, "{:#?}", hub.requests());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let expected: BTreeSet<String> = ["atom.xml", "rss.xml", "feed.json"]
        .iter()
        .map(|f| format!("{BASE}/{f}"))
        .collect();
    assert_eq!(published(&hub, 15), expected);
}
