//! The project's own blog (`content/` with the repo's `config.toml`) builds
//! into correct feeds, and its scheduled post and draft behave.

mod common;

use common::{Feeds, SiteFacts, feeds_check, manifest_dir, newsletter, read_feeds, run};
use tempfile::TempDir;

const FACTS: SiteFacts<'static> = SiteFacts {
    base_url: "https://newsletter.example.org",
    permalink: "/blog/:year/:month/:day/:slug/",
    author: "The newsletter team",
};

const RELEASE: &str = "newsletter 1.0 is here";
const DRAFT: &str = "Draft: notes on bounce handling";

/// Builds the repo's blog at `now` into a temp dir (never into its `public/`).
fn build_into(now: &str) -> TempDir {
    let out = tempfile::tempdir().unwrap();
    let config = manifest_dir().join("config.toml");
    run(&mut newsletter(
        out.path(),
        [
            "--config".as_ref(),
            config.as_os_str(),
            "build".as_ref(),
            "--output".as_ref(),
            out.path().as_os_str(),
            "--now".as_ref(),
            now.as_ref(),
        ],
    ))
    .success();
    out
}

/// Builds the repo's blog at `now` into a temp dir,
/// checks it with feeds_check.py, and returns the feeds.
fn build_at(now: &str, count: usize) -> (TempDir, Feeds) {
    let out = build_into(now);

    let check = feeds_check(
        &manifest_dir().join("content"),
        out.path(),
        FACTS,
        &["--now", now, "--expect-count", &count.to_string()],
    );
    assert_eq!(
        check.code,
        Some(0),
        "feeds_check.py found mismatches\n{check}"
    );
    let feeds = read_feeds(out.path());
    feeds.assert_clean();
    (out, feeds)
}

#[test]
fn four_posts_are_published_by_2026_11_25() {
    let (_out, feeds) = build_at("2026-11-25T00:00:00Z", 4);
    for (name, feed) in feeds.each() {
        assert_eq!(
            feed.titles(),
            [
                "Bring your Hugo posts: TOML front matter support",
                "Inside the delivery pipeline",
                "Screencast: a five-minute tour of newsletter 0.2",
                "Welcome to the Newsletter Blog",
            ],
            "{name}"
        );
    }
}

#[test]
fn the_scheduled_release_post_appears_on_2027_03_02() {
    let (_out, feeds) = build_at("2027-03-02T00:00:00Z", 5);
    for (name, feed) in feeds.each() {
        assert_eq!(feed.titles()[0], RELEASE, "{name}");
        let entry = feed.entry(RELEASE);
        assert_eq!(
            entry.link.as_deref(),
            Some("https://newsletter.example.org/blog/2027/03/01/newsletter-1-0-released/"),
            "{name}"
        );
        assert!(!feed.has(DRAFT), "{name}");
    }
}

#[test]
fn the_draft_is_never_published() {
    for now in ["2026-11-25T00:00:00Z", "2030-01-01T00:00:00Z"] {
        let out = build_into(now);
        for (name, feed) in read_feeds(out.path()).each() {
            assert!(!feed.has(DRAFT), "{name} at {now}: {:?}", feed.titles());
            // The other posts due by then are there: 4, then all 5.
            let due = if now.starts_with("2026") { 4 } else { 5 };
            assert_eq!(feed.entries.len(), due, "{name} at {now}");
        }
    }
}

#[test]
fn the_project_content_checks_clean() {
    let config = manifest_dir().join("config.toml");
    let out = run(&mut newsletter(
        &manifest_dir(),
        ["--config".as_ref(), config.as_os_str(), "check".as_ref()],
    ))
    .success();
    assert!(!out.stdout.contains(".md:"), "{out}");
    // Every post of content/ was read, the draft too.
    let posts = std::fs::read_dir(manifest_dir().join("content"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "md")
        })
        .count();
    assert_eq!(posts, 6);
    assert!(
        out.stdout
            .contains("checked 6 posts and the templates: no problems"),
        "{out}"
    );
}

/// The config example in README.md, as written there.
fn readme_config() -> String {
    let readme = std::fs::read_to_string(manifest_dir().join("README.md")).unwrap();
    let section = &readme[readme
        .find("## config.toml")
        .expect("README has a config.toml section")..];
    let start = section.find("```toml\n").expect("a toml block") + "```toml\n".len();
    let end = start + section[start..].find("```").unwrap();
    section[start..end].to_string()
}

#[test]
fn the_readme_config_example_is_accepted_and_a_misspelt_key_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let example = readme_config();
    assert!(example.contains("[server]") && example.contains("request_timeout"));
    std::fs::write(dir.path().join("config.toml"), &example).unwrap();
    let listed = run(&mut newsletter(dir.path(), ["subscribers", "list"])).success();
    assert_eq!(listed.stdout, "");

    // The same check refuses a key the README does not have.
    let misspelt = example.replacen("request_timeout", "request_timout", 1);
    std::fs::write(dir.path().join("config.toml"), misspelt).unwrap();
    let refused = run(&mut newsletter(dir.path(), ["subscribers", "list"])).failure();
    assert!(
        refused.stderr.contains("request_timout"),
        "{}",
        refused.stderr
    );
}
