//! Helpers shared by the integration tests, in the manner of mdBook's test
//! suite: copy a fixture site to a temp dir, run the real `newsletter` binary
//! on it, and look at what a user would see (exit code, output, feed files as
//! a feed reader parses them).
//!
//! Feeds are read by Python's feedparser, a real consumer, through
//! `tests/feed_dump.py`; the whole corpus is checked by `tests/feeds_check.py`.

// Each test crate uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

pub mod hub;
pub mod imap;
pub mod mail_site;
pub mod scripted_smtp;
pub mod server;
pub mod smtp;

use serde::Deserialize;
use tempfile::TempDir;

/// The moment every build is run at unless a test says otherwise.
pub const NOW: &str = "2026-11-25T00:00:00Z";

pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `newsletter` binary cargo built for these tests.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_newsletter")
}

/// The Python that has feedparser, lxml and PyYAML (`scripts/test` makes it).
pub fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("NEWSLETTER_TEST_PYTHON") {
        let python = PathBuf::from(python);
        assert!(
            python.exists(),
            "NEWSLETTER_TEST_PYTHON={} does not exist; run scripts/test, which sets it",
            python.display()
        );
        return python;
    }
    let venv = manifest_dir().join(".venv/bin/python");
    assert!(
        venv.exists(),
        "no Python for the feed checks: NEWSLETTER_TEST_PYTHON is not set and {} does not \
         exist; run scripts/test, which creates the venv from tests/requirements.txt",
        venv.display()
    );
    venv
}

/// The Prometheus blog posts (`NEWSLETTER_CORPUS` overrides the location).
pub fn corpus_dir() -> PathBuf {
    let dir = std::env::var_os("NEWSLETTER_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir().join("../shared/corpus/prometheus-blog"));
    assert!(
        dir.is_dir(),
        "the Prometheus corpus is not at {} (set NEWSLETTER_CORPUS to its folder)",
        dir.display()
    );
    dir
}

/// RFC 4287's RELAX NG schema for Atom.
pub fn atom_schema() -> PathBuf {
    let schema = manifest_dir().join("../shared/schemas/atom.rng");
    assert!(
        schema.is_file(),
        "the Atom schema is not at {}",
        schema.display()
    );
    schema
}

/// Starts one of the Python helper servers in tests/ (its stdout is read
/// for `READY <port>`, its stderr goes to `log`); the child and its port.
pub fn start_helper(command: &mut Command, log: &Path) -> (std::process::Child, u16) {
    use std::io::{BufRead, BufReader};
    let log = std::fs::File::create(log).unwrap();
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("start {command:?}: {e}"));
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .strip_prefix("READY ")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("{command:?} did not start: {line:?}"));
    (child, port)
}

/// What one run of a program showed the user.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: std::process::Output) -> Run {
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Panics, showing both streams, unless the run exited 0.
    #[track_caller]
    pub fn success(self) -> Run {
        assert_eq!(self.code, Some(0), "expected success\n{self}");
        self
    }

    /// Panics unless the run exited with `code`.
    #[track_caller]
    pub fn exit_code(self, code: i32) -> Run {
        assert_eq!(self.code, Some(code), "expected exit code {code}\n{self}");
        self
    }

    /// Panics unless the run failed as the README promises for an error:
    /// exit code 1 (not 2, a usage error; not 101, a panic; not a signal),
    /// and no panic message.
    #[track_caller]
    pub fn failure(self) -> Run {
        assert!(
            !self.stderr.contains("panicked"),
            "expected an error message, not a panic\n{self}"
        );
        assert_eq!(
            self.code,
            Some(1),
            "expected exit code 1 (an error)\n{self}"
        );
        self
    }

    /// Panics unless the run was refused as a usage error: exit code 2, with
    /// clap's `error:` line and no panic.
    #[track_caller]
    pub fn usage_error(self) -> Run {
        assert!(
            !self.stderr.contains("panicked"),
            "expected a usage message, not a panic\n{self}"
        );
        assert_eq!(
            self.code,
            Some(2),
            "expected exit code 2 (a usage error)\n{self}"
        );
        assert!(
            self.stderr.starts_with("error: "),
            "expected clap's `error:` line first\n{self}"
        );
        self
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit code: {:?}\n--- stdout\n{}--- stderr\n{}---",
            self.code, self.stdout, self.stderr
        )
    }
}

/// `newsletter` with `args`, run in `cwd`, with no clock from the environment.
pub fn newsletter<I, S>(cwd: &Path, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(bin());
    command
        .current_dir(cwd)
        .env_remove("NEWSLETTER_NOW")
        .args(args);
    command
}

/// Waits for a child started with piped output, at most `limit` (a bound
/// on a hang, not a timing): past it the child is killed and the test
/// fails saying `what`.
#[track_caller]
pub fn finish_within(
    mut child: std::process::Child,
    limit: std::time::Duration,
    what: &str,
) -> Run {
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = Run::from(child.wait_with_output().unwrap());
            panic!("{what}: still running after {limit:?}, killed\n{out}");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    Run::from(child.wait_with_output().unwrap())
}

/// Runs a command to the end.
pub fn run(command: &mut Command) -> Run {
    Run::from(
        command
            .output()
            .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}")),
    )
}

/// A site (config and content) in its own temp dir.
pub struct Site {
    tmp: TempDir,
    root: PathBuf,
}

impl Site {
    /// A copy of `tests/fixtures/<name>` in a fresh temp dir.
    pub fn fixture(name: &str) -> Site {
        let site = Site::empty();
        copy_dir(
            &manifest_dir().join("tests/fixtures").join(name),
            &site.root,
        );
        site
    }

    /// An empty folder in a fresh temp dir.
    pub fn empty() -> Site {
        let tmp = tempfile::Builder::new()
            .prefix("newsletter-test-")
            .tempdir()
            .expect("a temp dir");
        Site::in_dir(tmp)
    }

    /// An empty folder in a fresh temp dir in memory (in `/dev/shm` when
    /// there is one), for tests that write and delete thousands of files,
    /// which a slow disk makes slower than the test itself.
    pub fn empty_in_memory() -> Site {
        let shm = Path::new("/dev/shm");
        let mut builder = tempfile::Builder::new();
        builder.prefix("newsletter-test-");
        let tmp = if shm.is_dir() {
            builder.tempdir_in(shm)
        } else {
            builder.tempdir()
        };
        Site::in_dir(tmp.expect("a temp dir"))
    }

    fn in_dir(tmp: TempDir) -> Site {
        let root = tmp.path().join("site");
        std::fs::create_dir(&root).expect("create the site folder");
        Site { tmp, root }
    }

    /// A site whose content is the Prometheus corpus; `feeds` is the body of
    /// its `[feeds]` table, e.g. `limit = 0`.
    pub fn corpus(feeds: &str) -> Site {
        let site = Site::empty();
        let corpus = corpus_dir();
        site.write(
            "config.toml",
            format!(
                "[site]\ntitle = \"Prometheus Blog\"\nbase_url = \"https://prometheus.io\"\n\
                 author = \"{CORPUS_AUTHOR}\"\n\n[content]\ndir = {:?}\n\
                 permalink = \"{CORPUS_PERMALINK}\"\n\n[feeds]\n{feeds}\n",
                corpus.display().to_string()
            ),
        );
        site
    }

    /// The site's folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The temp dir that holds the site's folder (a place to run from elsewhere).
    pub fn outside(&self) -> &Path {
        self.tmp.path()
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    /// Writes a file, creating its folders.
    pub fn write(&self, relative: &str, contents: impl AsRef<[u8]>) {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().expect("a file has a folder")).unwrap();
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    pub fn read(&self, relative: &str) -> Vec<u8> {
        let path = self.path(relative);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    pub fn read_text(&self, relative: &str) -> String {
        String::from_utf8(self.read(relative)).expect("UTF-8")
    }

    /// Adds lines to the end of `config.toml` (the fixtures end with `[feeds]`).
    pub fn append_config(&self, lines: &str) {
        let mut config = self.read_text("config.toml");
        config.push('\n');
        config.push_str(lines);
        config.push('\n');
        self.write("config.toml", config);
    }

    /// `newsletter --config config.toml ARGS` in the site's folder.
    pub fn newsletter<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = newsletter(&self.root, ["--config", "config.toml"]);
        command.args(args);
        command
    }

    /// `newsletter build --now NOW`, which must succeed.
    #[track_caller]
    /// `newsletter send --now NOW` with the token secret `secret`, started
    /// in the background with its output dropped: to kill it, or to race it.
    pub fn spawn_send(&self, secret: &str) -> std::process::Child {
        self.newsletter(["send", "--now", NOW])
            .env("NEWSLETTER_SECRET", secret)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("newsletter starts")
    }

    pub fn build(&self) -> Run {
        self.build_at(NOW)
    }

    /// `newsletter build --now <now>`, which must succeed.
    #[track_caller]
    pub fn build_at(&self, now: &str) -> Run {
        run(&mut self.newsletter(["build", "--now", now])).success()
    }

    /// `newsletter check`.
    pub fn check(&self) -> Run {
        run(&mut self.newsletter(["check"]))
    }

    /// The three feeds in `dir` (relative to the site) as a reader sees them.
    pub fn feeds(&self, dir: &str) -> Feeds {
        read_feeds(&self.path(dir))
    }

    /// Every file under `dir` (relative to the site) with its bytes.
    pub fn snapshot(&self, dir: &str) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut files = BTreeMap::new();
        collect_files(&self.path(dir), &self.path(dir), &mut files);
        files
    }
}

fn collect_files(root: &Path, dir: &Path, files: &mut BTreeMap<PathBuf, Vec<u8>>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_files(root, &path, files);
        } else {
            let bytes = std::fs::read(&path).unwrap();
            files.insert(path.strip_prefix(root).unwrap().to_path_buf(), bytes);
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The corpus site's author and permalink pattern (see [`Site::corpus`]).
pub const CORPUS_AUTHOR: &str = "The Prometheus Authors";
pub const CORPUS_PERMALINK: &str = "/blog/:year/:month/:day/:slug/";

/// Runs `tests/feeds_check.py` on the feeds in `out` against the posts in
/// `content`. `extra` adds options such as `--limit 20`.
pub fn feeds_check(content: &Path, out: &Path, site: SiteFacts<'_>, extra: &[&str]) -> Run {
    let mut command = Command::new(python());
    command
        .arg(manifest_dir().join("tests/feeds_check.py"))
        .arg("--corpus")
        .arg(content)
        .arg("--atom")
        .arg(out.join("atom.xml"))
        .arg("--rss")
        .arg(out.join("rss.xml"))
        .arg("--json")
        .arg(out.join("feed.json"))
        .arg("--schema")
        .arg(atom_schema())
        .args(["--base-url", site.base_url])
        .args(["--permalink", site.permalink])
        .args(["--author", site.author])
        .args(extra);
    run(&mut command)
}

/// The config facts `feeds_check.py` needs.
#[derive(Debug, Clone, Copy)]
pub struct SiteFacts<'a> {
    pub base_url: &'a str,
    pub permalink: &'a str,
    pub author: &'a str,
}

pub const CORPUS_FACTS: SiteFacts<'static> = SiteFacts {
    base_url: "https://prometheus.io",
    permalink: CORPUS_PERMALINK,
    author: CORPUS_AUTHOR,
};

/// The three feeds of one folder, as `tests/feed_dump.py` reports them.
#[derive(Debug, Deserialize)]
pub struct Feeds {
    pub atom: Feed,
    pub rss: Feed,
    pub json: Feed,
}

#[derive(Debug, Deserialize)]
pub struct Feed {
    /// feedparser found the document malformed.
    pub bozo: bool,
    pub error: Option<String>,
    /// lxml parsed it as XML (always true for JSON).
    pub well_formed: bool,
    pub title: Option<String>,
    /// The text a reader shows for the feed's subtitle (Atom `subtitle`,
    /// RSS `description`, JSON Feed `description`).
    pub subtitle: Option<String>,
    /// The WebSub hubs the feed links to (`rel="hub"`, JSON Feed's `hubs`).
    pub hubs: Vec<String>,
    pub entries: Vec<Entry>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Entry {
    pub title: Option<String>,
    pub link: Option<String>,
    pub id: Option<String>,
    /// UTC, `YYYY-MM-DDTHH:MM:SSZ`.
    pub published: Option<String>,
    pub authors: Vec<String>,
    pub tags: Vec<String>,
    pub summary: Option<Html>,
    pub content: Option<Html>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Html {
    /// `None` for JSON Feed's plain-text summary.
    pub html: Option<String>,
    /// The visible text, white space collapsed.
    pub text: String,
    pub elements: Vec<Element>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Element {
    pub tag: String,
    pub attrs: BTreeMap<String, String>,
}

impl Html {
    /// The elements with this tag name.
    pub fn all(&self, tag: &str) -> Vec<&Element> {
        self.elements.iter().filter(|e| e.tag == tag).collect()
    }

    /// The values of `attr` on elements with this tag name.
    pub fn attr_values(&self, tag: &str, attr: &str) -> Vec<&str> {
        self.all(tag)
            .into_iter()
            .filter_map(|e| e.attrs.get(attr).map(String::as_str))
            .collect()
    }
}

impl Feeds {
    /// The three feeds with their names, for checks that hold in all of them.
    pub fn each(&self) -> [(&'static str, &Feed); 3] {
        [
            ("atom", &self.atom),
            ("rss", &self.rss),
            ("json", &self.json),
        ]
    }

    /// Panics unless each feed is well-formed and feedparser had no complaint.
    #[track_caller]
    pub fn assert_clean(&self) {
        for (name, feed) in self.each() {
            assert!(
                !feed.bozo && feed.well_formed,
                "{name} is not well-formed: {:?}",
                feed.error
            );
        }
    }
}

impl Feed {
    pub fn titles(&self) -> Vec<&str> {
        self.entries
            .iter()
            .map(|e| e.title.as_deref().unwrap_or(""))
            .collect()
    }

    /// The entry with this title; panics listing the titles there are.
    #[track_caller]
    pub fn entry(&self, title: &str) -> &Entry {
        let found: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| e.title.as_deref() == Some(title))
            .collect();
        assert_eq!(
            found.len(),
            1,
            "expected one entry titled {title:?}; the feed has {:?}",
            self.titles()
        );
        found[0]
    }

    pub fn has(&self, title: &str) -> bool {
        self.titles().contains(&title)
    }
}

/// Reads `atom.xml`, `rss.xml` and `feed.json` in `dir` through feedparser.
#[track_caller]
pub fn read_feeds(dir: &Path) -> Feeds {
    for name in ["atom.xml", "rss.xml", "feed.json"] {
        assert!(
            dir.join(name).is_file(),
            "{} was not written",
            dir.join(name).display()
        );
    }
    let mut command = Command::new(python());
    command
        .arg(manifest_dir().join("tests/feed_dump.py"))
        .arg(dir.join("atom.xml"))
        .arg(dir.join("rss.xml"))
        .arg(dir.join("feed.json"));
    let dumped = run(&mut command);
    assert_eq!(dumped.code, Some(0), "feed_dump.py failed\n{dumped}");
    serde_json::from_str(&dumped.stdout)
        .unwrap_or_else(|e| panic!("feed_dump.py printed bad JSON ({e})\n{dumped}"))
}

/// The line of `text` that reports a problem in `file` (a path ending in it)
/// at `line`: `…/file:line: message`. Panics showing `text` when there is none.
#[track_caller]
pub fn problem_line<'a>(text: &'a str, file: &str, line: usize) -> &'a str {
    let needle = format!("{file}:{line}: ");
    text.lines()
        .find(|l| {
            l.find(&needle)
                .is_some_and(|at| at == 0 || l[..at].ends_with('/'))
        })
        .unwrap_or_else(|| panic!("no `{needle}…` line in:\n{text}"))
}
