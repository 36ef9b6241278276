//! The Prometheus blog (59 real posts) built into feeds and read back the way
//! feed readers read them.

mod common;

use std::time::SystemTime;

use common::{CORPUS_FACTS, Entry, Feeds, NOW, Site, corpus_dir, feeds_check};

/// The corpus built at [`NOW`] with `feeds` as its `[feeds]` table.
fn built(feeds: &str) -> (Site, Feeds) {
    let site = Site::corpus(feeds);
    site.build();
    let feeds = site.feeds("public");
    feeds.assert_clean();
    (site, feeds)
}

/// The entry at `permalink` (a path under https://prometheus.io) in each feed.
#[track_caller]
fn entries_at<'a>(feeds: &'a Feeds, permalink: &str) -> Vec<(&'static str, &'a Entry)> {
    let url = format!("https://prometheus.io{permalink}");
    feeds
        .each()
        .into_iter()
        .map(|(name, feed)| {
            let found: Vec<&Entry> = feed
                .entries
                .iter()
                .filter(|e| e.link.as_deref() == Some(url.as_str()))
                .collect();
            assert_eq!(found.len(), 1, "{name}: expected one entry at {url}");
            (name, found[0])
        })
        .collect()
}

#[test]
fn every_publishable_post_reads_correctly_in_all_three_feeds() {
    let site = Site::corpus("limit = 0");
    let report = site.build();
    assert!(
        report.stdout.contains("58 published") && report.stdout.contains("1 draft"),
        "{report}"
    );

    let check = feeds_check(
        &corpus_dir(),
        &site.path("public"),
        CORPUS_FACTS,
        &["--now", NOW, "--expect-count", "58"],
    );
    assert_eq!(
        check.code,
        Some(0),
        "feeds_check.py found mismatches\n{check}"
    );
    assert!(check.stdout.contains("ok: 58 entries"), "{check}");
}

#[test]
fn the_draft_is_in_no_feed() {
    let (site, feeds) = built("limit = 0");
    for (name, feed) in feeds.each() {
        assert_eq!(feed.entries.len(), 58, "{name}");
        assert!(!feed.has("Prometheus 3.0 Beta Released"), "{name}");
    }
    let draft = "https://prometheus.io/blog/2024/09/11/prometheus-3-beta/";
    for (name, feed) in feeds.each() {
        assert!(
            feed.entries
                .iter()
                .all(|e| e.link.as_deref() != Some(draft)),
            "{name} has an entry for the draft"
        );
    }
    // Its text is nowhere either (another post links to its URL, so look for words).
    let draft_text =
        std::fs::read_to_string(corpus_dir().join("2024-09-11-prometheus-3-beta.md")).unwrap();
    let sentence = draft_text
        .lines()
        .find(|l| l.len() > 60 && !l.starts_with('#'))
        .expect("a sentence in the draft");
    for file in ["atom.xml", "rss.xml", "feed.json"] {
        let text = site.read_text(&format!("public/{file}"));
        assert!(!text.contains(sentence), "{file} carries the draft's text");
    }
}

#[test]
fn links_and_ids_are_prometheus_ios_own() {
    let (_site, feeds) = built("limit = 0");
    // Every link the posts make to another post of the blog (the site's
    // real URLs, written by its authors) is an entry of each feed.
    let mut cross_links = std::collections::BTreeSet::new();
    for file in std::fs::read_dir(corpus_dir()).unwrap() {
        let text = std::fs::read_to_string(file.unwrap().path()).unwrap_or_default();
        for (at, _) in text.match_indices("prometheus.io/blog/20") {
            let tail = &text[at + "prometheus.io".len()..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || "/-_@.".contains(c)))
                .unwrap_or(tail.len());
            cross_links.insert(tail[..end].trim_end_matches('.').to_string());
        }
    }
    // The one link to the draft (the corpus's own draft: in no feed).
    assert!(cross_links.remove("/blog/2024/09/11/prometheus-3-beta/"));
    assert!(
        cross_links.contains("/blog/2024/03/14/commitment-to-opentelemetry/"),
        "{cross_links:?}"
    );
    assert!(cross_links.len() >= 6, "{cross_links:?}");
    for link in &cross_links {
        assert_eq!(entries_at(&feeds, link).len(), 3, "{link}");
    }
    // nanoc's atom_feed: the date of created_at, the path of the file name.
    // RSS's guid is the same id.
    for (name, entry) in entries_at(&feeds, "/blog/2024/03/14/commitment-to-opentelemetry/") {
        assert_eq!(
            entry.id.as_deref(),
            Some("tag:prometheus.io,2024-03-13:/blog/2024/03/14/commitment-to-opentelemetry/"),
            "{name}"
        );
    }
}

#[test]
fn the_at_sign_post_keeps_its_permalink() {
    let (_site, feeds) = built("limit = 0");
    for (name, entry) in entries_at(&feeds, "/blog/2021/02/18/introducing-the-@-modifier/") {
        assert_eq!(
            entry.title.as_deref(),
            Some("Introducing the '@' Modifier"),
            "{name}"
        );
    }
}

#[test]
fn the_post_without_a_more_marker_gets_an_automatic_excerpt() {
    let (_site, feeds) = built("limit = 0");
    for (name, entry) in entries_at(&feeds, "/blog/2025/09/22/promcon-2025/") {
        let summary = &entry.summary.as_ref().expect("a summary").text;
        let content = &entry.content.as_ref().expect("full content").text;
        assert!(
            summary.starts_with("It's that time of the year again!"),
            "{name}: the excerpt should open the post: {summary:?}"
        );
        assert!(
            summary.len() * 2 < content.len(),
            "{name}: the excerpt should be a short part of the post, not all of it \
             ({} of {} characters)",
            summary.len(),
            content.len()
        );
    }
}

const PROMCON_2017: &str = "/blog/2017/09/04/promcon-2017-recap/";
const WATCH_URL: &str = "https://www.youtube.com/watch?v=4Pr-z8-r1eo";
const EMBED_URL: &str = "https://www.youtube.com/embed/4Pr-z8-r1eo";

#[test]
fn a_youtube_iframe_becomes_a_link_to_the_video_by_default() {
    let (_site, feeds) = built("limit = 0");
    for (name, entry) in entries_at(&feeds, PROMCON_2017) {
        let content = entry.content.as_ref().expect("full content");
        assert!(content.all("iframe").is_empty(), "{name}: iframe kept");
        assert!(
            content.attr_values("a", "href").contains(&WATCH_URL),
            "{name}: no link to {WATCH_URL} in {:?}",
            content.html
        );
    }
}

#[test]
fn a_youtube_iframe_stays_with_iframes_keep() {
    let (_site, feeds) = built("limit = 0\niframes = \"keep\"");
    for (name, entry) in entries_at(&feeds, PROMCON_2017) {
        let content = entry.content.as_ref().expect("full content");
        assert_eq!(
            content.attr_values("iframe", "src"),
            [EMBED_URL],
            "{name}: {:?}",
            content.html
        );
        assert!(
            !content.attr_values("a", "href").contains(&WATCH_URL),
            "{name}: the iframe was also turned into a link"
        );
    }
}

#[test]
fn tweets_keep_their_text_but_lose_their_scripts() {
    let (site, feeds) = built("limit = 0");
    for (name, entry) in entries_at(&feeds, "/blog/2016/09/04/promcon-2016-its-a-wrap/") {
        let content = entry.content.as_ref().expect("full content");
        assert!(
            content.all("script").is_empty(),
            "{name}: a script survived"
        );
        assert!(
            content.all("blockquote").len() >= 5,
            "{name}: the tweets' blockquotes are gone"
        );
        assert!(
            content.text.contains("Just landed at #promcon"),
            "{name}: a tweet's text is gone"
        );
    }
    for file in ["atom.xml", "rss.xml", "feed.json"] {
        let text = site.read_text(&format!("public/{file}"));
        assert!(
            !text.contains("widgets.js"),
            "{file} still loads the widget"
        );
    }
}

#[test]
fn root_relative_images_become_absolute() {
    let (_site, feeds) = built("limit = 0");
    // Raw HTML <img src="/assets/...">.
    for (name, entry) in entries_at(&feeds, "/blog/2016/03/23/interview-with-life360/") {
        let images = entry.content.as_ref().unwrap().attr_values("img", "src");
        assert!(
            images.contains(
                &"https://prometheus.io/assets/blog/2016-03-23/life360_horizontal_logo_gradient_rgb.png"
            ),
            "{name}: {images:?}"
        );
    }
    // Markdown ![...](/assets/...).
    for (name, entry) in entries_at(&feeds, "/blog/2015/06/24/monitoring-dreamhack/") {
        let images = entry.content.as_ref().unwrap().attr_values("img", "src");
        assert!(
            images.contains(
                &"https://prometheus.io/assets/blog/2015-06-24/dh_network_planning_map.png"
            ),
            "{name}: {images:?}"
        );
    }
}

#[test]
fn rebuilding_changes_no_byte_and_says_so() {
    let site = Site::corpus("limit = 0");
    site.build();
    let before = site.snapshot("public");
    // The first build wrote the 58 posts into each feed, so "unchanged"
    // below is about feeds that are there.
    let text =
        |file: &str| String::from_utf8_lossy(&before[std::path::Path::new(file)]).into_owned();
    assert_eq!(text("atom.xml").matches("<entry>").count(), 58);
    assert_eq!(text("rss.xml").matches("<item>").count(), 58);
    let json: serde_json::Value = serde_json::from_str(&text("feed.json")).unwrap();
    assert_eq!(json["items"].as_array().map(Vec::len), Some(58));
    let modified = |file: &str| -> SystemTime {
        std::fs::metadata(site.path(file))
            .and_then(|m| m.modified())
            .unwrap()
    };
    let times: Vec<SystemTime> = ["public/atom.xml", "public/rss.xml", "public/feed.json"]
        .into_iter()
        .map(modified)
        .collect();

    let again = site.build();
    assert_eq!(site.snapshot("public"), before, "the rebuild changed files");
    let times_again: Vec<SystemTime> = ["public/atom.xml", "public/rss.xml", "public/feed.json"]
        .into_iter()
        .map(modified)
        .collect();
    assert_eq!(times_again, times, "the rebuild rewrote unchanged files");
    assert!(
        again.stdout.contains("wrote 0 files") && again.stdout.contains("3 unchanged"),
        "the rebuild should report the three feeds unchanged\n{again}"
    );
}

#[test]
fn limit_twenty_gives_the_twenty_newest() {
    let site = Site::corpus("limit = 20");
    site.build();
    let check = feeds_check(
        &corpus_dir(),
        &site.path("public"),
        CORPUS_FACTS,
        &["--now", NOW, "--limit", "20", "--expect-count", "20"],
    );
    assert_eq!(
        check.code,
        Some(0),
        "feeds_check.py found mismatches\n{check}"
    );

    let feeds = site.feeds("public");
    for (name, feed) in feeds.each() {
        assert_eq!(feed.entries.len(), 20, "{name}");
        // The newest post of the corpus comes first, the 20th newest last
        // (files named 2021-05-03 and 2021-05-04 are both ahead of it).
        assert_eq!(
            feed.entries[0].link.as_deref(),
            Some("https://prometheus.io/blog/2026/06/30/learn-cloud-with-lfx/"),
            "{name}"
        );
        assert_eq!(
            feed.entries[19].link.as_deref(),
            Some("https://prometheus.io/blog/2021/02/18/introducing-the-@-modifier/"),
            "{name}"
        );
    }
}
