//! Up to four posts from one input (cut at 0xFF) written into a content
//! folder, then a whole `build` with per-tag feeds. A build may refuse bad
//! posts; when it succeeds, every Atom and RSS file is well-formed XML and
//! every JSON Feed is JSON, the three files of a feed carry the same
//! entries with the same titles, and the main feed carries every
//! published post. (Named `build_feeds`: cargo reserves `build` for itself.)

#![no_main]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use libfuzzer_sys::fuzz_target;
use newsletter::build::build;
use newsletter_fuzz::{config, fields};

const SETTINGS: &str = "[feeds]\nlimit = 0\nper_tag = true\n";

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let content = dir.path().join("content");
    std::fs::create_dir(&content).unwrap();
    for (i, post) in fields(data, 4).iter().enumerate() {
        let name = format!("2024-01-0{}-post-{i}.md", i + 1);
        std::fs::write(content.join(name), post).unwrap();
    }
    let config = config(SETTINGS, dir.path());
    let now: DateTime<Utc> = "2030-01-01T00:00:00Z".parse().unwrap();
    let output = dir.path().join("public");
    let Ok(report) = build(&config, &output, now) else {
        return;
    };

    // The build's manifest lists what it wrote: exactly the feed files.
    let manifest = std::fs::read_to_string(output.join(newsletter::build::MANIFEST)).unwrap();
    let mut listed: Vec<&str> = manifest.lines().collect();
    listed.sort_unstable();
    let mut written: Vec<String> = files(&output)
        .iter()
        .filter(|f| {
            f.file_name()
                .is_some_and(|n| n != newsletter::build::MANIFEST)
        })
        .map(|f| {
            let relative = f.strip_prefix(&output).unwrap();
            relative.to_string_lossy().replace('\\', "/")
        })
        .collect();
    written.sort_unstable();
    assert_eq!(listed, written, "the manifest lists the files written");

    let mut feeds: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
    for file in files(&output) {
        if file
            .file_name()
            .is_some_and(|n| n == newsletter::build::MANIFEST)
        {
            continue;
        }
        let folder = file.parent().unwrap().to_path_buf();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        feeds.entry(folder).or_default().push(name);
    }
    assert!(feeds.contains_key(&output), "no main feed in {feeds:?}");
    for (folder, mut names) in feeds {
        names.sort();
        assert_eq!(names, ["atom.xml", "feed.json", "rss.xml"], "in {folder:?}");
        let read = |name: &str| std::fs::read_to_string(folder.join(name)).unwrap();
        let atom = xml_titles(&read("atom.xml"), "entry", "atom.xml");
        let rss = xml_titles(&read("rss.xml"), "item", "rss.xml");
        let json = json_titles(&read("feed.json"));
        assert_eq!(atom, json, "Atom and JSON titles in {folder:?}");
        assert_eq!(rss, json, "RSS and JSON titles in {folder:?}");
        if folder == output {
            assert_eq!(json.len(), report.published, "the main feed");
        }
    }
});

/// Every file under `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// The titles of the `entry` (Atom) or `item` (RSS) elements, in order;
/// panics when the document is not well-formed XML.
fn xml_titles(xml: &str, entry: &str, file: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(xml)
        .unwrap_or_else(|e| panic!("{file} is not well-formed XML: {e}\n{xml}"));
    doc.descendants()
        .filter(|n| n.has_tag_name(entry))
        .map(|e| {
            let title = e
                .children()
                .find(|c| c.has_tag_name("title"))
                .unwrap_or_else(|| panic!("an {entry} without a title in {file}"));
            title
                .descendants()
                .filter(|t| t.is_text())
                .filter_map(|t| t.text())
                .collect()
        })
        .collect()
}

/// The item titles of a JSON Feed; panics when it is not JSON.
fn json_titles(text: &str) -> Vec<String> {
    let feed: serde_json::Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("feed.json is not JSON: {e}\n{text}"));
    feed["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["title"].as_str().expect("a title").to_string())
        .collect()
}
