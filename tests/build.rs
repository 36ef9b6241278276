//! `newsletter build` on small fixture sites: front-matter dialects, dates,
//! scheduling, which files count as posts, and the feed options.

mod common;

use std::path::PathBuf;

use common::hub::HubServer;
use common::{Feeds, NOW, Site, SiteFacts, feeds_check, newsletter, run};

const FACTS: SiteFacts<'static> = SiteFacts {
    base_url: "https://blog.example.org",
    permalink: "/posts/:year/:month/:day/:slug/",
    author: "Fixture Author",
};

/// The `blog` fixture built at [`NOW`], and its feeds as a reader sees them.
fn built_blog() -> (Site, Feeds) {
    let site = Site::fixture("blog");
    site.build();
    let feeds = site.feeds("public");
    feeds.assert_clean();
    (site, feeds)
}

/// Asserts that every feed has an entry titled `title`, and returns them.
#[track_caller]
fn in_every_feed<'a>(feeds: &'a Feeds, title: &str) -> Vec<(&'static str, &'a common::Entry)> {
    feeds
        .each()
        .into_iter()
        .map(|(name, feed)| (name, feed.entry(title)))
        .collect()
}

#[track_caller]
fn in_no_feed(feeds: &Feeds, title: &str) {
    for (name, feed) in feeds.each() {
        assert!(
            !feed.has(title),
            "{name} has {title:?}: {:?}",
            feed.titles()
        );
    }
}

/// The fixture blog's five published posts, read back by feeds_check.py
/// (feedparser, and atom.xml against RFC 4287's RELAX NG schema).
#[track_caller]
fn assert_fixture_feeds_check(site: &Site) {
    let check = feeds_check(
        &site.path("content"),
        &site.path("public"),
        FACTS,
        &["--now", NOW, "--expect-count", "5"],
    );
    assert_eq!(
        check.code,
        Some(0),
        "feeds_check.py found mismatches\n{check}"
    );
}

#[test]
fn the_fixture_blog_reads_correctly_in_all_three_feeds() {
    let site = Site::fixture("blog");
    site.build();
    assert_fixture_feeds_check(&site);
}

/// `&` and `<` in a title, a tag, an author and the site's description
/// reach a reader as written in every feed, and the RSS file writes them
/// as the W3C validator asks (hexadecimal references in plain text; the
/// channel's description, HTML to readers, escaped as HTML).
#[test]
fn ampersands_and_angle_brackets_reach_the_reader_as_written() {
    let site = Site::fixture("blog");
    let config = String::from_utf8(site.read("config.toml")).unwrap();
    let config = config.replacen(
        "description = \"Posts written for newsletter's integration tests.\"",
        "description = \"News & notes <here>\"",
        1,
    );
    assert!(config.contains("<here>"));
    site.write("config.toml", config);
    site.write(
        "content/2026-11-20-qa.md",
        "---\ntitle: \"Q&A: <here> & there\"\nauthor: \"Tom & Jerry <tj>\"\ntags: [\"R&B\", \"a<b\"]\n---\n\nText.\n",
    );
    site.build();
    let feeds = site.feeds("public");
    feeds.assert_clean();
    for (name, feed) in feeds.each() {
        assert_eq!(
            feed.subtitle.as_deref(),
            Some("News & notes <here>"),
            "{name}"
        );
        let entry = feed
            .entries
            .iter()
            .find(|e| e.title.as_deref() == Some("Q&A: <here> & there"))
            .unwrap_or_else(|| panic!("{name}: {:?}", feed.entries));
        assert_eq!(entry.tags, ["R&B", "a<b"], "{name}");
        assert_eq!(entry.authors, ["Tom & Jerry <tj>"], "{name}");
    }
    let rss = String::from_utf8(site.read("public/rss.xml")).unwrap();
    assert!(
        rss.contains("<title>Q&#x26;A: &#x3C;here&gt; &#x26; there</title>"),
        "{rss}"
    );
    assert!(rss.contains("<category>R&#x26;B</category>"), "{rss}");
    assert!(
        rss.contains("<description>News &amp;amp; notes &amp;lt;here&amp;gt;</description>"),
        "{rss}"
    );
}

#[test]
fn toml_front_matter_with_a_toml_datetime() {
    let (_site, feeds) = built_blog();
    for (name, entry) in in_every_feed(&feeds, "Zola: TOML front matter") {
        // 05:06:07 at +02:00.
        assert_eq!(
            entry.published.as_deref(),
            Some("2021-03-04T03:06:07Z"),
            "{name}"
        );
        assert_eq!(
            entry.link.as_deref(),
            Some("https://blog.example.org/posts/2021/03/04/zola-post/"),
            "{name}"
        );
        assert_eq!(entry.authors, ["Grace Hopper"], "{name}");
    }
}

#[test]
fn jekyll_date_with_a_space_separated_offset() {
    let (_site, feeds) = built_blog();
    for (name, entry) in in_every_feed(&feeds, "A Jekyll date with an offset") {
        // 2020-01-02 03:04:05 +0100.
        assert_eq!(
            entry.published.as_deref(),
            Some("2020-01-02T02:04:05Z"),
            "{name}"
        );
        assert_eq!(entry.authors, ["Margaret Hamilton"], "{name}");
    }
}

#[test]
fn zola_taxonomies_become_categories_in_every_feed() {
    let (_site, feeds) = built_blog();
    for (name, entry) in in_every_feed(&feeds, "Zola: TOML front matter") {
        assert_eq!(entry.tags, ["zola", "toml"], "{name}");
    }
    for (name, entry) in in_every_feed(&feeds, "Plain YAML: the usual kind") {
        assert_eq!(entry.tags, ["rust", "feeds"], "{name}");
    }
}

#[test]
fn bom_crlf_and_no_trailing_newline() {
    let site = Site::fixture("blog");
    site.write(
        "content/2025-04-04-notepad.md",
        "\u{feff}---\r\ntitle: \"Windows: CRLF\"\r\ncreated_at: 2025-04-04\r\ntags: [windows]\r\n\
         ---\r\n\r\nFirst paragraph from Notepad.\r\n\r\n<!-- more -->\r\n\r\n\
         Last line without newline",
    );
    site.build();
    let feeds = site.feeds("public");
    feeds.assert_clean();
    for (name, entry) in in_every_feed(&feeds, "Windows: CRLF") {
        assert_eq!(
            entry.link.as_deref(),
            Some("https://blog.example.org/posts/2025/04/04/notepad/"),
            "{name}"
        );
        assert_eq!(entry.tags, ["windows"], "{name}");
        assert_eq!(
            entry.summary.as_ref().unwrap().text,
            "First paragraph from Notepad.",
            "{name}"
        );
        let content = &entry.content.as_ref().unwrap().text;
        assert!(
            content.ends_with("Last line without newline"),
            "{name}: {content:?}"
        );
    }
    let json = site.read_text("public/feed.json");
    assert!(!json.contains("\\r"), "a carriage return reached feed.json");
    for file in ["atom.xml", "rss.xml", "feed.json"] {
        let text = site.read_text(&format!("public/{file}"));
        assert!(!text.contains('\u{feff}'), "the BOM reached {file}");
    }
}

#[test]
fn the_summary_key_wins_over_the_excerpt() {
    let (_site, feeds) = built_blog();
    for (name, entry) in in_every_feed(&feeds, "A post with a summary key") {
        let summary = &entry.summary.as_ref().unwrap().text;
        assert_eq!(
            summary, "Handwritten summary sentence, chosen by the author.",
            "{name}"
        );
        // The body is still all there.
        let content = &entry.content.as_ref().unwrap().text;
        assert!(
            content.contains("Automatically extracted opening paragraph")
                && content.contains("Remainder paragraph after the marker"),
            "{name}: {content:?}"
        );
    }
}

const SCHEDULED: &str = "Scheduled for December";

/// A Hugo post's `expiryDate` takes it out of every feed and every mailing
/// from that moment; the build line counts it, and a digest made after it
/// leaves it out.
#[test]
fn a_post_past_its_expiry_date_leaves_the_feeds_and_the_digest() {
    let site = Site::with_mail()
        .first_run_posts(10)
        .subscribers(&["a@example.net"])
        .create();
    site.write(
        "content/offer.md",
        "+++\ntitle = \"A limited offer\"\ndate = 2026-11-20T10:00:00Z\nexpiryDate = 2026-11-28T12:00:00Z\n+++\n\nUntil Saturday.\n",
    );
    let before = site.build_at("2026-11-28T11:59:59Z");
    assert!(!before.stdout.contains("expired"), "{before}");
    for (name, feed) in site.feeds("public").each() {
        assert!(feed.has("A limited offer"), "{name}: {:?}", feed.titles());
    }
    let after = site.build_at("2026-11-28T12:00:00Z");
    assert!(after.stdout.contains(", 1 expired;"), "{after}");
    in_no_feed(&site.feeds("public"), "A limited offer");

    let digest_at = |now: &str| {
        run(&mut site.newsletter(["preview", "--output", "preview", "--now", now])).success();
        site.read_text("preview/digest.txt")
    };
    let digest = digest_at("2026-11-28T11:59:59Z");
    assert!(digest.contains("A limited offer"), "{digest}");
    let digest = digest_at("2026-11-28T12:00:00Z");
    assert!(!digest.contains("A limited offer"), "{digest}");
    assert!(digest.contains("Zola: TOML front matter"), "{digest}");
}

#[test]
fn a_scheduled_post_appears_when_its_time_comes() {
    let site = Site::fixture("blog");
    // Dated 2026-12-01 10:00:00 +0000.
    for (now, published) in [
        (NOW, false),
        ("2026-12-01T09:59:59Z", false),
        ("2026-12-01T10:00:00Z", true),
        ("2026-12-01T11:00:00+01:00", true),
        ("2027-01-01T00:00:00Z", true),
    ] {
        site.build_at(now);
        let feeds = site.feeds("public");
        for (name, feed) in feeds.each() {
            assert_eq!(
                feed.has(SCHEDULED),
                published,
                "{name} at {now}: {:?}",
                feed.titles()
            );
        }
        if published {
            // Newest first: it heads every feed.
            for (name, feed) in feeds.each() {
                assert_eq!(feed.titles()[0], SCHEDULED, "{name} at {now}");
            }
        }
    }
}

#[test]
fn the_clock_can_come_from_newsletter_now() {
    let site = Site::fixture("blog");
    for (now, published) in [(NOW, false), ("2026-12-02T00:00:00Z", true)] {
        run(site.newsletter(["build"]).env("NEWSLETTER_NOW", now)).success();
        let feeds = site.feeds("public");
        for (name, feed) in feeds.each() {
            assert_eq!(feed.has(SCHEDULED), published, "{name} at {now}");
        }
    }
}

#[test]
fn the_feeds_of_a_tag_that_lost_its_last_post_are_removed_and_nothing_else() {
    let site = Site::fixture("blog");
    site.append_config("per_tag = true");
    site.build();
    for file in ["atom.xml", "rss.xml", "feed.json"] {
        assert!(site.path(&format!("public/tags/zola/{file}")).exists());
    }
    // Files the build never wrote, one of them among the tag feeds.
    site.write("public/mine.txt", "mine");
    site.write("public/tags/keep/atom.xml", "not a build's");
    // The tag's only post becomes a draft.
    let post = site.read_text("content/zola-post.md");
    site.write(
        "content/zola-post.md",
        post.replacen("+++\n", "+++\ndraft = true\n", 1),
    );
    let out = site.build();
    assert!(
        out.stdout.contains("removed 6 files no longer built"),
        "{out:?}"
    );
    assert!(
        !site.path("public/tags/zola").exists(),
        "the tag's folder stays"
    );
    assert!(!site.path("public/tags/toml").exists());
    assert_eq!(site.read_text("public/mine.txt"), "mine");
    assert_eq!(site.read_text("public/tags/keep/atom.xml"), "not a build's");
    // The site's own feeds are all still there, and readable.
    site.feeds("public").assert_clean();
    site.feeds("public/tags/rust").assert_clean();
    // A build with nothing to remove says nothing of it.
    let again = site.build();
    assert!(!again.stdout.contains("removed"), "{again:?}");
}

#[test]
fn a_manifest_never_leads_a_build_to_delete_outside_the_output_folder() {
    let site = Site::fixture("blog");
    site.append_config("per_tag = true");
    site.build();
    // The tag folders moved elsewhere and linked back; files there that
    // the manifest names must survive.
    let elsewhere = site.outside().join("elsewhere");
    std::fs::rename(site.path("public/tags"), &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, site.path("public/tags")).unwrap();
    // Lines a build never writes: a folder, a path through a file, a NUL.
    let mut manifest = site.read_text("public/.newsletter.manifest");
    manifest.push_str("tags\natom.xml/x\nnul\u{0}x\n../config.toml\n");
    site.write("public/.newsletter.manifest", manifest);
    let post = site.read_text("content/zola-post.md");
    site.write(
        "content/zola-post.md",
        post.replacen("+++\n", "+++\ndraft = true\n", 1),
    );
    let out = site.build();
    assert!(!out.stdout.contains("removed"), "{out:?}");
    assert!(
        elsewhere.join("zola/atom.xml").exists(),
        "deleted through a link"
    );
    assert!(site.path("config.toml").exists());
    // And the next build runs as well.
    site.build();
}

#[test]
fn an_excerpt_cut_inside_raw_html_leaves_no_element_open() {
    let site = Site::fixture("blog");
    site.write(
        "content/2024-03-01-table-excerpt.md",
        "---\ntitle: Table excerpt\ndate: 2024-03-01\n---\n\n<div class=\"wrap\"><table><tr><td>Cell one, the excerpt.\n<!-- more -->\nCell two.</td></tr></table></div>\n\nAfter.\n",
    );
    site.build();
    let feeds = site.feeds("public");
    feeds.assert_clean();
    for (name, entry) in in_every_feed(&feeds, "Table excerpt") {
        if name == "json" {
            continue; // JSON Feed's summary is plain text
        }
        let summary = entry.summary.as_ref().and_then(|s| s.html.clone());
        let summary = summary.unwrap_or_else(|| panic!("{name}: no summary"));
        assert!(summary.contains("Cell one"), "{name}: {summary}");
        assert!(!summary.contains("Cell two"), "{name}: {summary}");
        for tag in ["div", "table", "tr", "td"] {
            let opened = summary.matches(&format!("<{tag}")).count()
                - summary.matches(&format!("<{tag}s")).count();
            let closed = summary.matches(&format!("</{tag}>")).count();
            assert!(
                opened >= 1 && opened == closed,
                "{name}: <{tag}> left open in {summary}"
            );
        }
    }
}

#[test]
fn jekyll_and_hugo_drafts_and_publish_dates_stay_out_of_the_feeds_until_due() {
    let site = Site::fixture("blog");
    site.write(
        "content/2024-02-01-jekyll-unpublished.md",
        "---\ntitle: Jekyll unpublished\ndate: 2024-02-01\npublished: false\n---\n\nHidden.\n",
    );
    site.write(
        "content/_drafts/jekyll-draft-folder.md",
        "---\ntitle: Jekyll draft folder\ndate: 2024-02-02\n---\n\nHidden.\n",
    );
    site.write(
        "content/hugo-publish-date.md",
        "+++\ntitle = \"Hugo publishDate\"\ndate = 2024-02-03\npublishDate = 2026-12-24T09:00:00Z\n+++\n\nLater.\n",
    );
    let before = site.build_at("2026-11-25T00:00:00Z");
    assert!(before.stdout.contains(" 2 scheduled"), "{before:?}");
    let feeds = site.feeds("public");
    feeds.assert_clean();
    for title in [
        "Jekyll unpublished",
        "Jekyll draft folder",
        "Hugo publishDate",
    ] {
        in_no_feed(&feeds, title);
    }
    // Once its publishDate has come, the Hugo post is in, under its own date.
    site.build_at("2026-12-24T09:00:00Z");
    let feeds = site.feeds("public");
    for (name, entry) in in_every_feed(&feeds, "Hugo publishDate") {
        assert!(
            entry.link.as_deref().unwrap_or("").contains("/2024/02/03/"),
            "{name}: {entry:?}"
        );
    }
    in_no_feed(&feeds, "Jekyll unpublished");
    in_no_feed(&feeds, "Jekyll draft folder");
}

#[test]
fn a_draft_is_never_published() {
    let site = Site::fixture("blog");
    site.append_config("per_tag = true");
    site.build_at("2100-01-01T00:00:00Z");
    let feeds = site.feeds("public");
    in_no_feed(&feeds, "An unfinished draft");
    assert!(
        feeds.atom.has(SCHEDULED),
        "the far-future build is not far enough"
    );
    // Nor in a tag feed, and its own tag has none.
    in_no_feed(&site.feeds("public/tags/rust"), "An unfinished draft");
    assert!(
        !site.path("public/tags/secret").exists(),
        "a tag only the draft uses got a feed"
    );
    for (file, bytes) in site.snapshot("public") {
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains("Unfinished thoughts"),
            "{} carries the draft's text",
            file.display()
        );
    }
}

#[test]
fn hidden_files_and_folders_and_other_extensions_are_not_posts() {
    let (site, feeds) = built_blog();
    for title in [
        "Hidden file post",
        "Hidden folder post",
        "Cached copy in a hidden folder",
        "Text file post",
        "Backup file post",
    ] {
        in_no_feed(&feeds, title);
    }
    // Nor are they problems to report.
    let check = site.check().success();
    assert!(!check.stdout.contains(".txt"), "{check}");
}

#[test]
fn markdown_files_are_found_in_subfolders() {
    let (_site, feeds) = built_blog();
    for (name, entry) in in_every_feed(&feeds, "Deeply nested .markdown file") {
        assert_eq!(
            entry.link.as_deref(),
            Some("https://blog.example.org/posts/2022/02/02/nested-markdown/"),
            "{name}"
        );
    }
}

#[test]
fn summaries_only_feeds_carry_no_full_content() {
    let site = Site::fixture("blog");
    site.append_config("full_content = false");
    site.build();
    let feeds = site.feeds("public");
    feeds.assert_clean();
    for (name, feed) in [("atom", &feeds.atom), ("rss", &feeds.rss)] {
        assert_eq!(feed.entries.len(), 5, "{name}");
        for entry in &feed.entries {
            assert!(
                entry.content.is_none(),
                "{name}: {:?} has content",
                entry.title
            );
        }
    }
    for (name, entry) in in_every_feed(&feeds, "Plain YAML: the usual kind") {
        let summary = &entry.summary.as_ref().unwrap().text;
        assert!(
            summary.contains("Analytical engines"),
            "{name}: {summary:?}"
        );
    }
    // JSON Feed needs some content: the excerpt, not the post.
    let entry = feeds.json.entry("Plain YAML: the usual kind");
    let content = &entry.content.as_ref().unwrap().text;
    assert!(
        content.contains("Analytical engines") && !content.contains("Bernoulli"),
        "{content:?}"
    );
    for (file, bytes) in site.snapshot("public") {
        assert!(
            !String::from_utf8_lossy(&bytes).contains("Bernoulli"),
            "{} carries text after <!-- more -->",
            file.display()
        );
    }

    let check = feeds_check(
        &site.path("content"),
        &site.path("public"),
        FACTS,
        &["--now", NOW, "--summaries-only"],
    );
    assert_eq!(
        check.code,
        Some(0),
        "feeds_check.py found mismatches\n{check}"
    );
}

#[test]
fn without_a_hub_no_feed_names_one() {
    let (_site, feeds) = built_blog();
    for (name, feed) in feeds.each() {
        assert!(feed.hubs.is_empty(), "{name}: {:?}", feed.hubs);
    }
}

#[test]
fn with_a_hub_every_feed_names_it_and_atom_stays_valid() {
    let hub = HubServer::start();
    let site = Site::fixture("blog");
    site.append_config(&format!("per_tag = true\n{}", hub.config_line()));
    site.build();
    for dir in ["public", "public/tags/rust", "public/tags/zola"] {
        let feeds = site.feeds(dir);
        feeds.assert_clean();
        for (name, feed) in feeds.each() {
            assert_eq!(feed.hubs, [hub.url()], "{dir} {name}");
        }
    }

    // feeds_check.py validates atom.xml against RFC 4287's RELAX NG schema.
    assert_fixture_feeds_check(&site);
}

#[test]
fn per_tag_feeds_hold_the_posts_of_their_tag() {
    let site = Site::fixture("blog");
    site.append_config("per_tag = true");
    site.build();
    for (tag, titles) in [
        (
            "rust",
            vec!["Plain YAML: the usual kind", "Deeply nested .markdown file"],
        ),
        (
            "feeds",
            vec!["Plain YAML: the usual kind", "A Jekyll date with an offset"],
        ),
        ("zola", vec!["Zola: TOML front matter"]),
        ("toml", vec!["Zola: TOML front matter"]),
    ] {
        let feeds = site.feeds(&format!("public/tags/{tag}"));
        feeds.assert_clean();
        for (name, feed) in feeds.each() {
            assert_eq!(feed.titles(), titles, "tags/{tag} {name}");
            assert!(
                feed.title.as_deref().is_some_and(|t| t.contains(tag)),
                "tags/{tag} {name}: the feed's title {:?} does not name the tag",
                feed.title
            );
        }
    }
    // The site feed still has every post.
    assert_eq!(site.feeds("public").atom.entries.len(), 5);
    // The scheduled post's tag feed does not list it yet.
    in_no_feed(&site.feeds("public/tags/feeds"), SCHEDULED);
}

#[test]
fn cdata_ends_and_xml_illegal_characters_keep_feeds_well_formed() {
    let site = Site::fixture("blog");
    site.write(
        "content/2025-03-03-cdata.md",
        "---\ntitle: \"Ends with ]]> and \\x01bell\\x07\"\ncreated_at: 2025-03-03\n\
         author_name: \"Ctrl\\x0bAuthor\"\ntags: [\"x]]>y\"]\n---\n\n\
         Text with ]]> inside and \u{1}\u{8}\u{b}\u{c}\u{1f} control \u{fffe}chars.\n\n\
         <div>Raw HTML ]]> block</div>\n\n```\ncode ]]> block\n```\n\n<!-- more -->\n\n\
         After <span title=\"a]]>b\">the marker ]]></span> too.\n",
    );
    site.build();
    let feeds = site.feeds("public");
    feeds.assert_clean();
    let title = feeds.atom.titles()[0].to_string();
    assert!(title.starts_with("Ends with ]]> and"), "{title:?}");
    for (name, entry) in in_every_feed(&feeds, &title) {
        assert_eq!(entry.tags, ["x]]>y"], "{name}");
        let content = &entry.content.as_ref().unwrap().text;
        for text in [
            "Text with ]]> inside",
            "Raw HTML ]]> block",
            "code ]]> block",
            "the marker ]]> too",
        ] {
            assert!(
                content.contains(text),
                "{name}: {text:?} not in {content:?}"
            );
        }
        let summary = &entry.summary.as_ref().unwrap().text;
        assert!(
            summary.contains("Text with ]]> inside"),
            "{name}: {summary:?}"
        );
        for shown in [&title, content, summary, &entry.authors.join(" ")] {
            assert!(
                !shown
                    .chars()
                    .any(|c| c.is_control() && !c.is_whitespace() || c == '\u{fffe}'),
                "{name}: a control character survived in {shown:?}"
            );
        }
    }
}

#[test]
fn relative_config_paths_resolve_against_the_config_folder() {
    let site = Site::fixture("blog");
    // From the folder above the site, with a relative --config.
    run(&mut newsletter(
        site.outside(),
        ["--config", "site/config.toml", "build", "--now", NOW],
    ))
    .success();
    assert_eq!(site.feeds("public").atom.entries.len(), 5);
    assert!(
        !site.outside().join("public").exists(),
        "feeds were written relative to the working directory"
    );

    // From an unrelated folder, with an absolute --config.
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::remove_dir_all(site.path("public")).unwrap();
    let config = site.path("config.toml");
    run(&mut newsletter(
        elsewhere.path(),
        [
            "--config".as_ref(),
            config.as_os_str(),
            "build".as_ref(),
            "--now".as_ref(),
            NOW.as_ref(),
        ],
    ))
    .success();
    assert_eq!(site.feeds("public").atom.entries.len(), 5);
    assert_eq!(
        std::fs::read_dir(elsewhere.path()).unwrap().count(),
        0,
        "something was written to the working directory"
    );
    run(&mut newsletter(
        elsewhere.path(),
        ["--config".as_ref(), config.as_os_str(), "check".as_ref()],
    ))
    .success();
}

#[test]
fn output_writes_the_feeds_elsewhere_and_leaves_output_dir_alone() {
    let site = Site::fixture("blog");
    let out = tempfile::tempdir().unwrap();
    run(&mut site.newsletter([
        "build".as_ref(),
        "--output".as_ref(),
        out.path().as_os_str(),
        "--now".as_ref(),
        NOW.as_ref(),
    ]))
    .success();
    assert_eq!(common::read_feeds(out.path()).rss.entries.len(), 5);
    assert!(
        !site.path("public").exists(),
        "feeds.output_dir was written"
    );
}

/// Config: "timezone: zone for bare dates and for the date parts of permalinks".
#[test]
fn permalink_dates_are_the_dates_the_post_was_written_with() {
    let site = Site::fixture("blog");
    // 00:30 at +01:00 is 23:30 the day before in UTC, the site's zone, but
    // the author wrote January 2: the permalink keeps the post's own date.
    site.write(
        "content/late-night.md",
        "---\ntitle: Late night post\ndate: 2020-01-02 00:30:00 +0100\n---\n\nText.\n",
    );
    site.build();
    let feeds = site.feeds("public");
    for (name, entry) in in_every_feed(&feeds, "Late night post") {
        assert_eq!(entry.published.as_deref(), Some("2020-01-01T23:30:00Z"));
        assert_eq!(
            entry.link.as_deref(),
            Some("https://blog.example.org/posts/2020/01/02/late-night/"),
            "{name}"
        );
    }
}

#[test]
fn bare_dates_are_midnight_in_the_site_time_zone() {
    let site = Site::fixture("blog");
    let config = site
        .read_text("config.toml")
        .replace("timezone = \"UTC\"", "timezone = \"America/New_York\"");
    site.write("config.toml", config);
    site.build();
    let feeds = site.feeds("public");
    for (name, entry) in in_every_feed(&feeds, "Plain YAML: the usual kind") {
        // 2024-01-15 at midnight in New York (UTC-5 in January).
        assert_eq!(
            entry.published.as_deref(),
            Some("2024-01-15T05:00:00Z"),
            "{name}"
        );
        assert_eq!(
            entry.link.as_deref(),
            Some("https://blog.example.org/posts/2024/01/15/plain-yaml/"),
            "{name}"
        );
    }
}

/// JSON Feed's `summary` of a post with this body, built from the fixture blog.
fn json_summary(body: &str) -> String {
    let site = Site::fixture("blog");
    site.write(
        "content/2025-05-05-plain.md",
        format!("---\ntitle: Plain text summary\ncreated_at: 2025-05-05\n---\n\n{body}"),
    );
    site.build();
    let json: serde_json::Value =
        serde_json::from_str(&site.read_text("public/feed.json")).unwrap();
    let item = json["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["title"] == "Plain text summary")
        .expect("the post is in feed.json")
        .clone();
    item["summary"].as_str().expect("a summary").to_string()
}

/// JSON Feed's `summary` is plain text, shown as is: a link or emphasis
/// must not leave a space before the punctuation that follows it.
#[test]
fn json_summary_has_no_stray_space_where_a_tag_ended() {
    assert_eq!(
        json_summary(
            "Read [the manual](https://example.org/manual), then *try* it.\n\n\
             <!-- more -->\n\nRest.\n"
        ),
        "Read the manual, then try it."
    );
}

/// Raw HTML in a post keeps its entities; the plain-text summary must decode them.
#[test]
fn json_summary_decodes_html_entities() {
    assert_eq!(
        json_summary("<p>Fish &mdash; chips &amp; peas&nbsp;&#33;</p>\n\n<!-- more -->\n\nRest.\n"),
        "Fish \u{2014} chips & peas\u{a0}!"
    );
}

#[test]
fn tags_whose_folder_names_collide_get_their_own_feeds() {
    let site = Site::fixture("blog");
    site.append_config("per_tag = true");
    site.write(
        "content/2025-04-01-cpp.md",
        "---\ntitle: On C++\ncreated_at: 2025-04-01\ntags: [\"C++\"]\n---\n\nText.\n",
    );
    site.write(
        "content/2025-04-02-csharp.md",
        "---\ntitle: On C#\ncreated_at: 2025-04-02\ntags: [\"C#\", \"c#\"]\n---\n\nText.\n",
    );
    site.build();
    // "C#" and "C++" both fold to "c"; sorted, "c#" comes first.
    for (folder, title) in [("c", "On C#"), ("c-2", "On C++")] {
        let feeds = site.feeds(&format!("public/tags/{folder}"));
        feeds.assert_clean();
        for (name, feed) in feeds.each() {
            assert_eq!(feed.titles(), vec![title], "tags/{folder} {name}");
        }
    }
}

#[test]
fn a_failed_write_changes_no_feed() {
    let site = Site::fixture("blog");
    site.build();
    let before = site.snapshot("public");
    let atom = String::from_utf8_lossy(&before[&PathBuf::from("atom.xml")]).into_owned();
    assert_eq!(
        atom.matches("<entry>").count(),
        5,
        "the feeds kept are real"
    );
    // Tag feeds would go under public/tags/, which is now a file: the main
    // feeds are staged first, then writing a tag feed fails.
    site.append_config("per_tag = true");
    site.write("public/tags", "not a folder");
    site.write(
        "content/2025-05-05-new.md",
        "---\ntitle: A new post\ncreated_at: 2025-05-05\ntags: [rust]\n---\n\nNew.\n",
    );
    let out = run(&mut site.newsletter(["build", "--now", NOW])).failure();
    assert!(out.stderr.contains("tags"), "{out}");
    let mut after = site.snapshot("public");
    after.remove(&PathBuf::from("tags"));
    assert_eq!(before, after, "a feed changed although the build failed");
    let leftovers: Vec<_> = std::fs::read_dir(site.path("public"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".newsletter-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn temporary_files_a_killed_build_left_are_removed_once_stale() {
    let site = Site::fixture("blog");
    site.build();
    site.write("public/.newsletter-old1", "half a feed");
    site.write("public/tags/rust/.newsletter-old2", "half a feed");
    site.write("public/.newsletter-recent", "a build running now");
    for old in [
        "public/.newsletter-old1",
        "public/tags/rust/.newsletter-old2",
    ] {
        let touched = std::process::Command::new("touch")
            .args(["-d", "2 hours ago"])
            .arg(site.path(old))
            .status()
            .unwrap();
        assert!(touched.success());
    }
    site.build();
    assert!(!site.path("public/.newsletter-old1").exists());
    assert!(!site.path("public/tags/rust/.newsletter-old2").exists());
    assert!(site.path("public/.newsletter-recent").exists());
}

/// Each feed's entry ids by link path (the permalink without scheme and
/// host), so entries can be matched across a change of title or scheme.
fn ids_by_path(feeds: &Feeds) -> Vec<(&'static str, String, String)> {
    let mut ids = Vec::new();
    for (name, feed) in feeds.each() {
        for entry in &feed.entries {
            let link = entry.link.clone().unwrap_or_default();
            let path = link
                .split_once("//")
                .and_then(|(_, rest)| rest.find('/').map(|at| rest[at..].to_string()))
                .unwrap_or_else(|| panic!("{name}: a link with no path: {link:?}"));
            ids.push((name, path, entry.id.clone().unwrap_or_default()));
        }
    }
    ids.sort();
    ids
}

/// A feed reader knows an entry by its id: editing a post's title, or
/// moving the site from http to https, must not make an old post look new.
/// The Atom and JSON Feed ids and the RSS guid are all `tag:HOST,DATE:PATH`
/// and stay the same through both.
#[test]
fn entry_ids_survive_a_title_edit_and_a_move_to_https() {
    let site = Site::fixture("blog");
    site.write(
        "config.toml",
        site.read_text("config.toml").replace(
            "base_url = \"https://blog.example.org\"",
            "base_url = \"http://blog.example.org\"",
        ),
    );
    site.build();
    let before = ids_by_path(&site.feeds("public"));
    // Five posts in each of the three feeds, the one below as README has it.
    assert_eq!(before.len(), 15, "{before:#?}");
    let path = "/posts/2024/01/15/plain-yaml/";
    let tag = "tag:blog.example.org,2024-01-15:/posts/2024/01/15/plain-yaml/";
    for (name, id) in [
        ("atom", tag.to_string()),
        ("json", tag.to_string()),
        ("rss", tag.to_string()),
    ] {
        assert!(
            before.contains(&(name, path.to_string(), id.clone())),
            "{name}: no entry {id:?} for {path}: {before:#?}"
        );
    }

    let file = "content/2024-01-15-plain-yaml.md";
    site.write(
        file,
        site.read_text(file)
            .replace("Plain YAML: the usual kind", "Plain YAML, retitled"),
    );
    site.build();
    let feeds = site.feeds("public");
    in_every_feed(&feeds, "Plain YAML, retitled");
    assert_eq!(ids_by_path(&feeds), before, "a title edit changed an id");

    site.write(
        "config.toml",
        site.read_text("config.toml")
            .replace("http://blog.example.org", "https://blog.example.org"),
    );
    site.build();
    let feeds = site.feeds("public");
    for (_, entry) in in_every_feed(&feeds, "Plain YAML, retitled") {
        assert_eq!(
            entry.link.as_deref(),
            Some("https://blog.example.org/posts/2024/01/15/plain-yaml/")
        );
    }
    assert_eq!(
        ids_by_path(&feeds),
        before,
        "the move to https changed an id"
    );
}

/// A site upgrading from permalink guids can keep them, so its RSS readers
/// do not see every post as new once: with `feeds.rss_guid = "permalink"`
/// each RSS guid is the post's link, marked a permalink, while the Atom
/// and JSON Feed ids stay `tag:` ids. A value that is neither is refused,
/// naming the line and the two it may be.
#[test]
fn rss_guids_can_stay_the_permalinks() {
    let site = Site::fixture("blog");
    site.write(
        "config.toml",
        site.read_text("config.toml")
            .replace("[feeds]\n", "[feeds]\nrss_guid = \"permalink\"\n"),
    );
    site.build();
    let rss = site.read_text("public/rss.xml");
    let doc = roxmltree::Document::parse(&rss).unwrap();
    let guids: Vec<(String, Option<String>, String)> = doc
        .descendants()
        .filter(|n| n.has_tag_name("item"))
        .map(|item| {
            let child = |name: &str| item.children().find(|c| c.has_tag_name(name)).unwrap();
            let guid = child("guid");
            (
                guid.text().unwrap_or_default().to_string(),
                guid.attribute("isPermaLink").map(str::to_string),
                child("link").text().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(guids.len(), 5, "{guids:#?}");
    let plain = "https://blog.example.org/posts/2024/01/15/plain-yaml/";
    assert!(guids.iter().any(|(guid, _, _)| guid == plain), "{guids:#?}");
    for (guid, permalink, link) in &guids {
        assert_eq!(guid, link);
        assert_ne!(permalink.as_deref(), Some("false"), "{guid}");
    }
    let ids = ids_by_path(&site.feeds("public"));
    let path = "/posts/2024/01/15/plain-yaml/";
    let tag = "tag:blog.example.org,2024-01-15:/posts/2024/01/15/plain-yaml/";
    for (name, id) in [("atom", tag), ("json", tag), ("rss", plain)] {
        assert!(
            ids.contains(&(name, path.to_string(), id.to_string())),
            "{name}: no entry {id:?} for {path}: {ids:#?}"
        );
    }

    site.write(
        "config.toml",
        site.read_text("config.toml")
            .replace("rss_guid = \"permalink\"", "rss_guid = \"link\""),
    );
    let out = site.check().failure();
    for said in ["config.toml", "rss_guid", "`tag` or `permalink`"] {
        assert!(out.stderr.contains(said), "{said}: {out}");
    }
}

#[test]
fn section_pages_of_zola_and_hugo_are_not_posts() {
    // Zola requires an `_index.md` in every section, Hugo writes one for
    // a section's list page: neither has a date, and neither is a post
    // in their own feeds. A page bundle's `index.md` is a post.
    let site = Site::empty();
    site.write(
        "config.toml",
        "[site]\nbase_url = \"https://example.org\"\n[content]\npermalink = \"/:section/:slug/\"\n",
    );
    site.write(
        "content/_index.md",
        "+++\ntitle = \"Home\"\nsort_by = \"date\"\n+++\nWelcome.\n",
    );
    site.write(
        "content/blog/_index.md",
        "+++\ntitle = \"Blog\"\nsort_by = \"date\"\npaginate_by = 5\n+++\n",
    );
    site.write(
        "content/posts/_index.markdown",
        "---\ntitle: Posts\ndate: 2024-01-01\n---\nEvery post.\n",
    );
    site.write(
        "content/blog/first.md",
        "+++\ntitle = \"First\"\ndate = 2024-01-02\n+++\nHello.\n",
    );
    site.write(
        "content/blog/bundle/index.md",
        "+++\ntitle = \"Bundle\"\ndate = 2024-02-03T10:00:00Z\n+++\n![a picture](pic.png)\n",
    );
    let built = site.build();
    assert!(
        built.stdout.contains("read 2 posts: 2 published"),
        "{built}"
    );
    let feeds = site.feeds("public");
    feeds.assert_clean();
    for (name, feed) in feeds.each() {
        assert_eq!(feed.titles(), ["Bundle", "First"], "{name}");
    }
    for (name, entry) in in_every_feed(&feeds, "Bundle") {
        assert_eq!(
            entry.link.as_deref(),
            Some("https://example.org/blog/bundle/"),
            "{name}"
        );
    }
    let check = site.check().success();
    assert!(check.stdout.contains("checked 2 posts"), "{check}");
}

#[test]
fn srcset_urls_with_commas_stay_whole() {
    // Image CDNs put commas in paths (Cloudinary's `w_400,h_300`); in a
    // srcset a candidate's URL runs to the next white space, as browsers
    // read it, and only a comma after it separates candidates.
    let site = Site::empty();
    site.write(
        "config.toml",
        "[site]\nbase_url = \"https://example.org\"\n",
    );
    let cdn = "https://res.cloudinary.com/demo/image/upload";
    site.write(
        "content/2024-01-02-cdn.md",
        format!(
            "---\ntitle: CDN\ndate: 2024-01-02\n---\n\
             <img src=\"{cdn}/w_400,h_300/a.jpg\" \
             srcset=\"{cdn}/w_400,h_300/a.jpg 1x,{cdn}/w_800,h_600/a.jpg   2x\" alt=\"a\">\n\n\
             <img srcset=\"small.jpg 480w, big.jpg,\n medium.jpg (min-width: 10px) 800w,,\" alt=\"b\">\n"
        ),
    );
    site.build();
    let feeds = site.feeds("public");
    feeds.assert_clean();
    let page = "https://example.org/blog/2024/01/02/cdn";
    for (name, entry) in in_every_feed(&feeds, "CDN") {
        let content = entry.content.as_ref().expect("content");
        assert_eq!(
            content.attr_values("img", "srcset"),
            [
                format!("{cdn}/w_400,h_300/a.jpg 1x, {cdn}/w_800,h_600/a.jpg 2x"),
                format!(
                    "{page}/small.jpg 480w, {page}/big.jpg, {page}/medium.jpg (min-width: 10px) 800w"
                ),
            ],
            "{name}"
        );
    }
}

/// A post's own path may hold a colon before a word (`re:Invent`,
/// `std::optional`): Hugo writes `url:` as it is and Jekyll leaves what is
/// not one of its placeholders, so the page is there. The build stopped
/// on it, calling `:invent` a placeholder this tool does not know; only
/// placeholders Hugo or Jekyll know and this tool does not are refused.
#[test]
fn a_posts_own_path_may_hold_a_colon() {
    let site = Site::empty();
    site.write(
        "config.toml",
        "[site]\nbase_url = \"https://example.org\"\n",
    );
    site.write(
        "content/talk.md",
        "---\ntitle: Notes from re:Invent\ndate: 2024-12-05\nurl: /talks/re:invent-2024/\n---\nText.\n",
    );
    site.write(
        "content/cpp.md",
        "---\ntitle: Optional\ndate: 2024-12-06\npermalink: /cpp/std::optional/\n---\nText.\n",
    );
    site.build();
    let feeds = site.feeds("public");
    for (title, path) in [
        ("Notes from re:Invent", "talks/re:invent-2024/"),
        ("Optional", "cpp/std::optional/"),
    ] {
        for (name, entry) in in_every_feed(&feeds, title) {
            let link = entry
                .link
                .as_deref()
                .unwrap_or_default()
                .replace("%3A", ":");
            assert_eq!(link, format!("https://example.org/{path}"), "{name}");
        }
    }
}

#[test]
fn title_permalinks_are_the_urls_hugo_makes() {
    // What Hugo 0.111 wrote into its own feed for these titles under
    // `/:year/:month/:day/:title/` (its urlize): runs of white space and
    // punctuation between words are one `-`, `+` and `%20` are spaces,
    // `/` is a folder; `#` is a page's name, not a fragment, so `%23`.
    let site = Site::empty();
    site.write(
        "config.toml",
        "[site]\nbase_url = \"https://example.org\"\n[content]\n\
         permalink = \"/:year/:month/:day/:title/\"\n[feeds]\nlimit = 0\n",
    );
    let cases = [
        ("Rock & Roll - Part 1", "rock-roll-part-1"),
        ("C++ & Go", "c-go"),
        ("  Spaces   everywhere  ", "spaces-everywhere"),
        ("a — b", "a-b"),
        ("CI/CD in practice", "ci/cd-in-practice"),
        ("e-mail @ work", "e-mail-@-work"),
        ("a%20b", "a-b"),
        ("a\\\\b", "a%5Cb"),
        ("C# vs. F#", "c%23-vs.-f%23"),
        ("Ünïcödé Ñ", "%C3%BCn%C3%AFc%C3%B6d%C3%A9-%C3%B1"),
        ("a--b", "a--b"),
        (" - a", "-a"),
    ];
    for (day, (title, _)) in (1..).zip(cases) {
        site.write(
            &format!("content/posts/p{day}.md"),
            format!("---\ntitle: \"{title}\"\ndate: 2024-01-{day:02}\n---\nText.\n"),
        );
    }
    site.build();
    let feeds = site.feeds("public");
    feeds.assert_clean();
    for (day, (title, path)) in (1..).zip(cases) {
        let title = title.trim().replace("\\\\", "\\");
        for (name, entry) in in_every_feed(&feeds, &title) {
            assert_eq!(
                entry.link.as_deref(),
                Some(format!("https://example.org/2024/01/{day:02}/{path}/").as_str()),
                "{name}: {title:?}"
            );
        }
    }
}

#[test]
fn an_empty_post_has_no_blank_content() {
    // The W3C validator warns of an empty <content> ("content should not
    // be blank"); the entry has its summary (the title) and its link.
    let site = Site::empty();
    site.write(
        "config.toml",
        "[site]\nbase_url = \"https://example.org\"\n",
    );
    site.write("content/2024-01-01-empty.md", "---\ntitle: Empty\n---\n\n");
    site.build();
    let atom = site.read_text("public/atom.xml");
    assert!(!atom.contains("<content"), "{atom}");
    let rss = site.read_text("public/rss.xml");
    assert!(!rss.contains("<content:encoded"), "{rss}");
    let feeds = site.feeds("public");
    feeds.assert_clean();
    for (name, entry) in in_every_feed(&feeds, "Empty") {
        assert_eq!(
            entry.summary.as_ref().map(|s| s.text.as_str()),
            Some("Empty"),
            "{name}"
        );
    }
}

#[test]
fn a_bare_date_on_a_day_that_starts_late_is_its_first_moment() {
    // Chile moves its clocks at midnight: 2024-09-08 began at 01:00
    // (-03:00), with no 00:00. A post of that day, by its date or its file
    // name, is published at the day's first moment, as Hugo does.
    let site = Site::empty();
    site.write(
        "config.toml",
        "[site]\nbase_url = \"https://example.org\"\ntimezone = \"America/Santiago\"\n",
    );
    site.write(
        "content/fiestas.md",
        "---\ntitle: Fiestas\ndate: 2024-09-08\n---\nText.\n",
    );
    // A nanoc post: its URL's date comes from the file name.
    site.write(
        "content/2024-09-08-nanoc.md",
        "---\ntitle: Nanoc\ncreated_at: 2024-09-09\n---\nText.\n",
    );
    site.build();
    let feeds = site.feeds("public");
    feeds.assert_clean();
    for (name, entry) in in_every_feed(&feeds, "Fiestas") {
        assert_eq!(
            entry.published.as_deref(),
            Some("2024-09-08T04:00:00Z"),
            "{name}"
        );
        assert_eq!(
            entry.link.as_deref(),
            Some("https://example.org/blog/2024/09/08/fiestas/"),
            "{name}"
        );
    }
    for (name, entry) in in_every_feed(&feeds, "Nanoc") {
        assert_eq!(
            entry.link.as_deref(),
            Some("https://example.org/blog/2024/09/08/nanoc/"),
            "{name}"
        );
    }
}

#[test]
fn jekyll_tags_written_as_text_are_words() {
    // Jekyll reads `tags: a b` (text, not a list) as two tags, and
    // `categories` alike; Hugo and Zola take a text value whole.
    let site = Site::empty();
    site.write(
        "config.toml",
        "[site]\nbase_url = \"https://example.org\"\n",
    );
    site.write(
        "content/_posts/2024-01-02-jekyll.md",
        "---\ntitle: Jekyll\ntags: release  announcement\ncategories: news\n---\nText.\n",
    );
    site.write(
        "content/_posts/2024-01-03-list.md",
        "---\ntitle: Listed\ntags: [\"two words\", one]\n---\nText.\n",
    );
    site.write(
        "content/posts/hugo.md",
        "---\ntitle: Hugo\ndate: 2024-01-04\ntags: \"two words\"\n---\nText.\n",
    );
    site.build();
    let feeds = site.feeds("public");
    feeds.assert_clean();
    for (title, tags) in [
        ("Jekyll", vec!["release", "announcement", "news"]),
        ("Listed", vec!["two words", "one"]),
        ("Hugo", vec!["two words"]),
    ] {
        for (name, entry) in in_every_feed(&feeds, title) {
            assert_eq!(entry.tags, tags, "{name}: {title}");
        }
    }
}
