//! Hostile content: huge posts, a hundred thousand posts, nesting 50,000
//! deep, binary files named `.md`, symbolic link loops, YAML bombs, a 1 MB
//! title. Each must give a clear error that names the file, or a correct
//! result, in bounded time and memory and without a panic.
//!
//! Every run of the real binary is killed after [`LIMIT`], and its peak
//! memory (the kernel's `ru_maxrss`, from `wait4`) must stay under
//! [`MEMORY_LIMIT_MB`]. Each run prints its figures on stderr
//! (`cargo nextest run --no-capture --test hostile` shows them).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{NOW, Run, Site, manifest_dir};

/// A run still going after this long is killed and fails the test.
const LIMIT: Duration = Duration::from_secs(60);
/// Peak resident memory a run may reach (the tests run a debug build).
const MEMORY_LIMIT_MB: f64 = 1024.0;
/// How deep the nesting tests nest.
const DEEP: usize = 50_000;

/// Runs `command` to the end (or kills it after [`LIMIT`]), printing its time
/// and peak memory; panics if it was killed, used more than
/// [`MEMORY_LIMIT_MB`] or panicked.
#[track_caller]
fn measure(what: &str, command: &mut Command) -> Run {
    let streams = tempfile::tempdir().unwrap();
    let (out, err) = (streams.path().join("out"), streams.path().join("err"));
    let child = command
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let pid = child.id() as libc::pid_t;
    let started = Instant::now();
    let mut status = 0;
    // SAFETY: rusage is plain integers, for which all zeroes is valid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let mut killed = false;
    loop {
        // SAFETY: `pid` is our child, which nothing else waits for; status
        // and usage point at live values of the types wait4 writes.
        let reaped = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if reaped == pid {
            break;
        }
        assert_eq!(reaped, 0, "wait4: {}", std::io::Error::last_os_error());
        if !killed && started.elapsed() > LIMIT {
            // SAFETY: sending a signal to our own unreaped child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            killed = true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // Reaped above: dropping the handle does not wait again.
    drop(child);
    let seconds = started.elapsed().as_secs_f64();
    // Linux gives ru_maxrss in KiB.
    let peak_mb = usage.ru_maxrss as f64 / 1024.0;
    let run = Run {
        code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
        stdout: std::fs::read_to_string(&out).unwrap_or_default(),
        stderr: String::from_utf8_lossy(&std::fs::read(&err).unwrap()).into_owned(),
    };
    eprintln!(
        "hostile: {what}: exit {:?} in {seconds:.2} s, peak {peak_mb:.0} MB",
        run.code
    );
    assert!(!killed, "{what}: still running after {LIMIT:?}\n{run}");
    assert!(!run.stderr.contains("panicked"), "{what}: panicked\n{run}");
    assert!(
        peak_mb < MEMORY_LIMIT_MB,
        "{what}: peak memory {peak_mb:.0} MB\n{run}"
    );
    run
}

/// An empty site: feeds of at most 20 entries, the project's templates.
fn hostile_site() -> Site {
    let site = Site::empty();
    site.write(
        "config.toml",
        format!(
            "[site]\ntitle = \"Hostile\"\nbase_url = \"https://hostile.example.org\"\n\n\
             [content]\ndir = \"content\"\n\n[feeds]\nlimit = 20\n\n\
             [digest]\ntemplates = {:?}\n",
            manifest_dir().join("templates").display().to_string()
        ),
    );
    std::fs::create_dir_all(site.path("content")).unwrap();
    site
}

const FRONT: &str = "---\ntitle: Hostile post\ncreated_at: 2024-01-01\n---\n\n";

/// `build` at [`NOW`], measured.
#[track_caller]
fn build(site: &Site, what: &str) -> Run {
    measure(
        &format!("{what}: build"),
        &mut site.newsletter(["build", "--now", NOW]),
    )
}

/// `preview` (the digest of the newest post) at [`NOW`], measured.
#[track_caller]
fn preview(site: &Site, what: &str) -> Run {
    measure(
        &format!("{what}: preview"),
        &mut site.newsletter(["preview", "--now", NOW]),
    )
}

/// The entries of the three feeds in `public/`, each parsed as a reader
/// would (XML by roxmltree, JSON by serde_json): per feed, each entry's
/// (title, summary, content).
#[track_caller]
fn feeds(site: &Site) -> [Vec<(String, String, String)>; 3] {
    let atom = site.read_text("public/atom.xml");
    let atom = roxmltree::Document::parse(&atom).expect("atom.xml is well-formed XML");
    let rss = site.read_text("public/rss.xml");
    let rss = roxmltree::Document::parse(&rss).expect("rss.xml is well-formed XML");
    let json: serde_json::Value =
        serde_json::from_slice(&site.read("public/feed.json")).expect("feed.json is JSON");
    let child_text = |node: roxmltree::Node<'_, '_>, name: &str| {
        node.children()
            .find(|c| c.tag_name().name() == name)
            .map(|c| c.text().unwrap_or_default().to_string())
            .unwrap_or_default()
    };
    let xml_entries = |doc: &roxmltree::Document<'_>, entry: &str, fields: [&str; 3]| {
        doc.descendants()
            .filter(|n| n.tag_name().name() == entry)
            .map(|n| {
                let [title, summary, content] = fields.map(|f| child_text(n, f));
                (title, summary, content)
            })
            .collect::<Vec<_>>()
    };
    let text = |item: &serde_json::Value, key: &str| item[key].as_str().unwrap_or("").to_string();
    [
        xml_entries(&atom, "entry", ["title", "summary", "content"]),
        xml_entries(&rss, "item", ["title", "description", "encoded"]),
        json["items"]
            .as_array()
            .expect("feed.json has items")
            .iter()
            .map(|i| {
                (
                    text(i, "title"),
                    text(i, "summary"),
                    text(i, "content_html"),
                )
            })
            .collect(),
    ]
}

/// The one post's (title, summary, content) in each feed, which must agree
/// on its title and have it.
#[track_caller]
fn the_one_entry(site: &Site) -> [(String, String, String); 3] {
    feeds(site).map(|entries| {
        assert_eq!(
            entries.len(),
            1,
            "{:?}",
            entries.iter().map(|e| &e.0).collect::<Vec<_>>()
        );
        entries.into_iter().next().unwrap()
    })
}

/// The problem line `file:LINE: ...` in `text`.
#[track_caller]
fn line_naming<'a>(text: &'a str, file: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(&format!("{file}:")))
        .unwrap_or_else(|| panic!("no line names {file}:\n{text}"))
}

/// `check` and `build` both refuse the site, naming each of `files` with
/// a message that contains `says`; no feed is written.
#[track_caller]
fn refused(site: &Site, what: &str, files: &[(&str, &str)]) {
    let check = measure(&format!("{what}: check"), &mut site.newsletter(["check"]));
    let build = build(site, what);
    let (check, build) = (check.exit_code(1), build.exit_code(1));
    for (file, says) in files {
        for stream in [&check.stdout, &build.stderr] {
            let line = line_naming(stream, file);
            assert!(line.contains(says), "{line:?} does not say {says:?}");
        }
    }
    assert!(!site.path("public").exists(), "a feed was written");
}

// ---------------------------------------------------------------------------
// Size
// ---------------------------------------------------------------------------

#[test]
fn a_post_with_a_ten_megabyte_body() {
    let site = hostile_site();
    let paragraph = "Lorem ipsum *dolor* sit [amet](/x) consectetur, `code` & more. ".repeat(16);
    let mut body = String::from("The excerpt.\n\n<!-- more -->\n\n");
    while body.len() < 10_000_000 {
        body.push_str(&paragraph);
        body.push_str("\n\n");
    }
    body.push_str("The last words.\n");
    site.write("content/big.md", format!("{FRONT}{body}"));
    let built = build(&site, "10 MB body");
    built.success();
    for (title, summary, content) in the_one_entry(&site) {
        assert_eq!(title, "Hostile post");
        assert!(summary.contains("The excerpt.") && !summary.contains("Lorem"));
        assert!(content.len() > 10_000_000, "{}", content.len());
        assert!(content.trim_end().ends_with("<p>The last words.</p>"));
    }
    preview(&site, "10 MB body").success();
}

#[test]
fn a_hundred_thousand_tiny_posts() {
    let site = hostile_site();
    let started = Instant::now();
    for folder in 0..100 {
        std::fs::create_dir(site.path(&format!("content/{folder:03}"))).unwrap();
    }
    for i in 0..100_000 {
        std::fs::write(
            site.path(&format!("content/{:03}/post-{i}.md", i / 1000)),
            format!(
                "---\ntitle: Post {i}\ncreated_at: 2024-01-01T{:02}:{:02}:{:02}Z\n---\n\nHello {i}.\n",
                i / 3600 % 24,
                i / 60 % 60,
                i % 60
            ),
        )
        .unwrap();
    }
    eprintln!(
        "hostile: 100,000 posts written in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let built = build(&site, "100,000 posts").success();
    assert!(
        built.stdout.starts_with(
            "read 100000 posts: 100000 published, 0 drafts, 0 scheduled; wrote 3 files"
        ),
        "{built}"
    );
    for entries in feeds(&site) {
        assert_eq!(entries.len(), 20);
        // Post 86,399 is at 23:59:59, the newest moment; ties go by permalink.
        assert_eq!(entries[0].0, "Post 86399");
    }
}

// ---------------------------------------------------------------------------
// Nesting, 50,000 deep
// ---------------------------------------------------------------------------

/// Builds and previews a post with `body`: the feeds hold it; with a
/// marker, its excerpt holds `BEFORE` and not `AFTER`; the digest's text
/// holds what the excerpt does.
#[track_caller]
fn nested(what: &str, body: String) {
    let site = hostile_site();
    site.write("content/deep.md", format!("{FRONT}{body}"));
    build(&site, what).success();
    let [(_, atom_summary, _), _, (_, json_summary, _)] = the_one_entry(&site);
    for (title, summary, content) in the_one_entry(&site) {
        assert_eq!(title, "Hostile post");
        if body.contains("<!-- more -->") {
            assert!(
                summary.contains("BEFORE") && !summary.contains("AFTER"),
                "{what}: the excerpt is not the text before the marker: {}",
                &summary[..summary.len().min(300)]
            );
            assert!(
                content.contains("AFTER"),
                "{what}: the full post is not after the excerpt: {}",
                &content[..content.len().min(300)]
            );
        }
    }
    preview(&site, what).success();
    let text = site.read_text("preview/digest.txt");
    // JSON Feed's summary is the excerpt's text.
    assert_eq!(
        text.contains("BEFORE"),
        json_summary.contains("BEFORE"),
        "{what}: the digest and the feeds disagree on the excerpt: {}",
        &text[..text.len().min(2000)]
    );
    assert_eq!(
        atom_summary.contains("BEFORE"),
        json_summary.contains("BEFORE")
    );
}

#[test]
fn fifty_thousand_nested_divs() {
    nested(
        "nested divs",
        format!("{}BEFORE{}\n", "<div>".repeat(DEEP), "</div>".repeat(DEEP)),
    );
    nested("unclosed divs", format!("{}BEFORE\n", "<div>".repeat(DEEP)));
}

#[test]
fn fifty_thousand_nested_quotes() {
    nested("nested quotes", format!("{} BEFORE\n", ">".repeat(DEEP)));
}

#[test]
fn fifty_thousand_brackets() {
    nested(
        "nested brackets",
        format!("{}BEFORE{}(/x)\n", "[".repeat(DEEP), "]".repeat(DEEP)),
    );
    nested("open brackets", format!("{}BEFORE\n", "[".repeat(DEEP)));
}

#[test]
fn fifty_thousand_nested_lists() {
    nested("nested lists", format!("{}BEFORE\n", "* ".repeat(DEEP)));
}

#[test]
fn fifty_thousand_emphasis_delimiters() {
    // pulldown-cmark makes 25,000 nested <em><strong> of these.
    nested(
        "nested emphasis",
        format!("{}BEFORE{}\n", "*".repeat(DEEP), "*".repeat(DEEP)),
    );
}

#[test]
fn the_marker_deep_inside_nesting() {
    let marker = "BEFORE<!-- more -->AFTER";
    nested(
        "marker in nested divs",
        format!(
            "{}{marker}{}\n",
            "<div>".repeat(DEEP),
            "</div>".repeat(DEEP)
        ),
    );
    let quotes = ">".repeat(DEEP);
    nested(
        "marker in nested quotes",
        format!("{quotes} BEFORE\n{quotes}\n{quotes} <!-- more -->\n{quotes}\n{quotes} AFTER\n"),
    );
    nested(
        "marker in nested lists",
        format!("{}BEFORE <!-- more --> AFTER\n", "* ".repeat(DEEP)),
    );
    nested(
        "marker in nested emphasis",
        format!("{}{marker}{}\n", "*".repeat(DEEP), "*".repeat(DEEP)),
    );
    nested(
        "marker in brackets",
        format!("{}{marker}{}(/x)\n", "[".repeat(DEEP), "]".repeat(DEEP)),
    );
}

/// The excerpt's text used to go through html5ever, whose tree building is
/// quadratic in the depth: 40,000 open divs before the marker took minutes.
#[test]
fn forty_thousand_open_divs_before_the_marker() {
    nested(
        "40,000 divs before the marker",
        format!(
            "{}BEFORE\n\n<!-- more -->\n\nAFTER\n",
            "<div>".repeat(40_000)
        ),
    );
}

// ---------------------------------------------------------------------------
// Files that are not Markdown text
// ---------------------------------------------------------------------------

#[test]
fn binary_files_named_md_are_refused_by_name() {
    let site = hostile_site();
    site.write("content/fine.md", format!("{FRONT}Fine.\n"));
    // Random bytes (xorshift, so every run has the same ones).
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let random: Vec<u8> = (0..100_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    site.write("content/random.md", random);
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0".to_vec();
    png.extend([0u8; 1000]);
    site.write("content/image.md", png);
    site.write("content/nul.md", vec![0u8; 65_536]);
    site.write(
        "content/latin1.md",
        b"---\ntitle: Caf\xe9\ncreated_at: 2024-01-01\n---\n\nCaf\xe9.\n",
    );
    refused(
        &site,
        "binary .md files",
        &[
            ("content/random.md", "is not UTF-8"),
            ("content/image.md", "is not UTF-8"),
            ("content/latin1.md", "is not UTF-8"),
            // NUL bytes are UTF-8, but no front matter.
            ("content/nul.md", "no front matter"),
        ],
    );
}

#[test]
fn control_characters_in_a_post_are_dropped_from_the_feeds() {
    let site = hostile_site();
    site.write(
        "content/nul.md",
        "---\ntitle: \"NUL\\0 and BEL\\a in a title\"\ncreated_at: 2024-01-01\n---\n\n\
         Text\0with\0NULs, \u{1}controls\u{b} and \u{fffe}.\n",
    );
    build(&site, "control characters").success();
    for (title, summary, content) in the_one_entry(&site) {
        assert_eq!(title, "NUL and BEL in a title");
        assert!(
            summary.contains("TextwithNULs, controls and ."),
            "{summary:?}"
        );
        assert!(content.contains("TextwithNULs"), "{content:?}");
    }
    preview(&site, "control characters").success();
}

#[test]
fn symbolic_link_loops_and_links_to_nothing() {
    let site = hostile_site();
    site.write("content/fine.md", format!("{FRONT}Fine.\n"));
    let content = site.path("content");
    std::fs::create_dir_all(content.join("sub")).unwrap();
    std::os::unix::fs::symlink("..", content.join("sub/loop")).unwrap();
    std::os::unix::fs::symlink("nowhere.md", content.join("dangling.md")).unwrap();
    std::os::unix::fs::symlink("b.md", content.join("a.md")).unwrap();
    std::os::unix::fs::symlink("a.md", content.join("b.md")).unwrap();
    // Links to nothing that would not be posts anyway are skipped.
    std::os::unix::fs::symlink("nowhere.png", content.join("image.png")).unwrap();
    refused(
        &site,
        "symbolic links",
        &[
            ("content/sub/loop", "symbolic link loop"),
            ("content/dangling.md", "symbolic link to nowhere.md"),
            ("content/a.md", "symbolic link to b.md"),
            ("content/b.md", "symbolic link to a.md"),
        ],
    );
    for bad in ["sub/loop", "dangling.md", "a.md", "b.md"] {
        std::fs::remove_file(content.join(bad)).unwrap();
    }
    build(&site, "a link to nothing that is not a post").success();
    the_one_entry(&site);
}

// ---------------------------------------------------------------------------
// Front matter
// ---------------------------------------------------------------------------

#[test]
fn a_front_matter_of_one_megabyte() {
    let site = hostile_site();
    let mut front = String::from("---\ntitle: Big front matter\ncreated_at: 2024-01-01\n");
    for i in 0.. {
        if front.len() > 1_000_000 {
            break;
        }
        front.push_str(&format!("key{i}: value number {i} of many\n"));
    }
    site.write(
        "content/big.md",
        format!("{front}tags: [last]\n---\n\nBody.\n"),
    );
    build(&site, "1 MB front matter").success();
    assert_eq!(the_one_entry(&site)[0].0, "Big front matter");
}

#[test]
fn a_yaml_alias_bomb_is_refused() {
    let site = hostile_site();
    // Nine levels of nine aliases each: 387,420,489 strings if expanded.
    let mut yaml = String::from("---\ntitle: Laughs\ncreated_at: 2024-01-01\n");
    yaml.push_str(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for pair in names.windows(2) {
        let refs = vec![format!("*{}", pair[0]); 9].join(",");
        yaml.push_str(&format!("{}: &{} [{refs}]\n", pair[1], pair[1]));
    }
    site.write("content/lol.md", format!("{yaml}tags: *i\n---\n\nBody.\n"));
    refused(
        &site,
        "YAML alias bomb",
        &[("content/lol.md", "repetition limit exceeded")],
    );
}

#[test]
fn ten_thousand_nested_flow_sequences_are_refused() {
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let site = hostile_site();
    site.write(
        "content/yaml.md",
        format!("---\ntitle: Deep\ncreated_at: 2024-01-01\ntags: {deep}\n---\n\nBody.\n"),
    );
    site.write(
        "content/toml.md",
        format!("+++\ntitle = \"Deep\"\ndate = 2024-01-02\ntags = {deep}\n+++\n\nBody.\n"),
    );
    refused(
        &site,
        "10,000 nested sequences",
        &[
            ("content/yaml.md:4", "recursion limit exceeded"),
            ("content/toml.md:4", "TOML front matter is invalid"),
        ],
    );
}

#[test]
fn a_title_of_one_megabyte() {
    let site = hostile_site();
    let mut title = String::new();
    while title.len() < 1_000_000 {
        title.push_str("Tïtle: <b>&amp;</b> \"quoted\" 🦀 ");
    }
    let title = title.trim_end().to_string();
    let yaml = title.replace('\\', "\\\\").replace('"', "\\\"");
    site.write(
        "content/title.md",
        format!("---\ntitle: \"{yaml}\"\ncreated_at: 2024-01-01\n---\n\nBody.\n"),
    );
    build(&site, "1 MB title").success();
    for (got, _, _) in the_one_entry(&site) {
        assert!(got == title, "the title changed ({} bytes)", got.len());
    }
    preview(&site, "1 MB title").success();
    let eml = site.read("preview/digest.eml");
    let message = mail_parser::MessageParser::default()
        .parse(&eml)
        .expect("digest.eml parses");
    assert!(
        message.subject() == Some(&format!("Hostile: {title}")),
        "the subject is not the title"
    );
}
