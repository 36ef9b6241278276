//! Crashes and faults, against the real binary and the real SMTP server.
//!
//! `send`, `subscribers import` and `build` are killed (SIGKILL) at random
//! moments and restarted: nobody is skipped, nothing is repeated beyond the
//! documented in-flight bound, no import is half done and no feed is half
//! written. Then the faults a user meets — a read-only or full disk, a
//! locked database, an SMTP server that is away, slow or answers garbage —
//! each give a clear error, keep what was there and leave the ledger
//! resumable.
//!
//! The kill moments come from a seeded generator: each test prints its
//! seed, and `NEWSLETTER_FAULTS_SEED=N` replays a run. Each crash loop
//! requires at least one kill inside the window it is about (the import's
//! transaction, the build's renames), aiming more kills there until one
//! lands.
//!
//! The disk faults mount a small tmpfs: as root, or else inside a user and
//! mount namespace of their own (`unshare --user --map-root-user --mount`,
//! no privilege needed). Where neither works they fail under `CI=true`,
//! unless `NEWSLETTER_TEST_NO_MOUNT=1` says the machine cannot; skipped,
//! they are listed in `target/skipped-guarantees.txt`, which `scripts/test`
//! prints at the end.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::mail_site::addresses;
use common::smtp::{Hold, SmtpServer, count_eml, held_config, loopback_config};
use common::{NOW, Run, Site, run};
use rusqlite::{Connection, OpenFlags};

const SECRET: &str = "test-secret-for-fault-tests";

/// SplitMix64: a seeded generator, enough to pick reproducible kill moments.
struct Rng {
    state: u64,
    seed: u64,
}

impl Rng {
    /// Seeded from `NEWSLETTER_FAULTS_SEED`, else from the clock; prints the seed.
    fn new(test: &str) -> Rng {
        let seed = std::env::var("NEWSLETTER_FAULTS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("{test}: seed {seed} (replay with NEWSLETTER_FAULTS_SEED={seed})");
        Rng { state: seed, seed }
    }

    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `low..=high`.
    fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
}

fn send_command(site: &Site) -> Command {
    let mut command = site.newsletter(["send", "--now", NOW]);
    command.env("NEWSLETTER_SECRET", SECRET);
    command
}

fn send(site: &Site) -> Run {
    run(&mut send_command(site))
}

/// `send` in the background, its output discarded (it is about to be killed).
fn spawn_quiet(mut command: Command) -> Child {
    command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start newsletter")
}

/// SIGKILL, and wait for the process to be gone. False if it had ended
/// on its own before the signal came.
fn kill(child: &mut Child) -> bool {
    use std::os::unix::process::ExitStatusExt;
    let _ = child.kill();
    child.wait().unwrap().signal() == Some(libc::SIGKILL)
}

/// Opens the store read-only, as a second process would, without
/// checkpointing a write-ahead log a killed run left behind.
fn open_store(path: &Path) -> Connection {
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every delivery in the ledger: address → status.
fn ledger(store: &Path) -> BTreeMap<String, String> {
    let conn = open_store(store);
    let mut statement = conn
        .prepare(
            "SELECT s.email, d.status FROM deliveries d \
             JOIN subscribers s ON s.id = d.subscriber_id",
        )
        .unwrap();
    statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// How many copies of each address the server has received.
fn copies(server: &SmtpServer) -> BTreeMap<String, usize> {
    let mut copies = BTreeMap::new();
    for address in server.envelope_recipients() {
        *copies.entry(address).or_insert(0) += 1;
    }
    copies
}

/// Waits until the server has saved whatever was in flight when its
/// client died.
fn settle(server: &SmtpServer) {
    server.wait_until_idle();
}

/// Checks the ledger against what the server received, with no `send`
/// running: every delivery the ledger calls sent was received, and the
/// addresses received but still pending (sent, not yet recorded: the
/// in-flight messages) are at most `connections`. Returns those.
#[track_caller]
fn in_flight(store: &Path, server: &SmtpServer, connections: usize, when: &str) -> Vec<String> {
    let ledger = ledger(store);
    let copies = copies(server);
    for (address, status) in &ledger {
        assert!(
            status != "sent" || copies.contains_key(address),
            "{when}: the ledger says {address} was sent, the server never got it"
        );
    }
    for address in copies.keys() {
        assert!(
            ledger.contains_key(address),
            "{when}: the server got mail for {address}, who has no delivery in the ledger"
        );
    }
    let in_flight: Vec<String> = copies
        .keys()
        .filter(|a| ledger[*a] == "pending")
        .cloned()
        .collect();
    assert!(
        in_flight.len() <= connections,
        "{when}: {} messages received but not recorded, more than the {connections} \
         connections can have in flight: {in_flight:?}",
        in_flight.len()
    );
    in_flight
}

/// How a kill was timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KillPoint {
    /// A random moment soon after start: opening the store, making the
    /// digest, the first messages.
    Early,
    /// Right after the server saved a randomly chosen next message (most
    /// likely before the ledger records it).
    AfterMessage,
}

#[test]
fn send_killed_at_20_random_moments_skips_no_one_and_repeats_only_messages_in_flight() {
    const READERS: usize = 5000;
    const KILLS: usize = 20;
    const CONNECTIONS: usize = 4;
    const RESERVE: usize = 1000;
    let started = Instant::now();
    let mut rng = Rng::new("send crash loop");
    let seed = rng.seed;
    let readers = addresses(READERS);
    // The delay gives each message a moment in flight to be killed in.
    let server = SmtpServer::start_in_memory(&["--delay", "0.001"]);
    let site = Site::with_mail()
        .smtp(server.config(&format!("connections = {CONNECTIONS}")))
        .subscribers(&readers)
        .create();
    let store = site.path("newsletter.db");

    let mut kills = Vec::new();
    let mut in_flight_total = 0;
    for k in 0..KILLS {
        let received = count_eml(&server.maildir);
        let unique = copies(&server).len();
        let point = if k == 0 || rng.range(0, 4) == 0 {
            KillPoint::Early
        } else {
            KillPoint::AfterMessage
        };
        // On average the kills spread what is left evenly, leaving the
        // last share to the final run. Each kill leaves at least RESERVE
        // messages unsent, so the run it stops is far from its end (at
        // least RESERVE server delays, a quarter of a second, after the
        // kill is due): the kill lands while it runs, which `kill` checks.
        let left = READERS - unique;
        let share = left.saturating_sub(RESERVE) / (KILLS - k + 1);
        let most = (2 * share).max(1);
        let target = received + rng.range(1, most as u64) as usize;
        let delay = Duration::from_millis(rng.range(0, 60));
        let jitter = Duration::from_micros(rng.range(0, 3000));

        let mut child = spawn_quiet(send_command(&site));
        let spawned = Instant::now();
        loop {
            let due = match point {
                KillPoint::Early => spawned.elapsed() >= delay,
                KillPoint::AfterMessage => count_eml(&server.maildir) >= target,
            };
            if due {
                break;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("seed {seed}: kill {k}: the run ended ({status}) before it was killed");
            }
            assert!(
                spawned.elapsed() < Duration::from_secs(60),
                "seed {seed}: kill {k}: no progress"
            );
            std::thread::sleep(Duration::from_micros(500));
        }
        if point == KillPoint::AfterMessage {
            std::thread::sleep(jitter);
        }
        assert!(
            kill(&mut child),
            "seed {seed}: kill {k}: the run ended before it was killed"
        );
        settle(&server);

        // The digest and its deliveries were made in one transaction.
        let conn = open_store(&store);
        let digests: i64 = conn
            .query_row("SELECT count(*) FROM digests", [], |r| r.get(0))
            .unwrap();
        let deliveries: i64 = conn
            .query_row("SELECT count(*) FROM deliveries", [], |r| r.get(0))
            .unwrap();
        drop(conn);
        assert!(
            (digests, deliveries) == (0, 0) || (digests, deliveries) == (1, READERS as i64),
            "seed {seed}: kill {k}: {digests} digests with {deliveries} deliveries"
        );
        let flying = in_flight(
            &store,
            &server,
            CONNECTIONS,
            &format!("seed {seed}: kill {k}"),
        );
        in_flight_total += flying.len();
        kills.push((point, count_eml(&server.maildir) - received, flying.len()));
    }

    let out = send(&site).success();
    assert!(
        out.stdout
            .contains(&format!("{READERS} sent, 0 failed, 0 pending")),
        "seed {seed}: {out}"
    );
    let copies = copies(&server);
    let ledger = ledger(&store);
    assert_eq!(
        copies.keys().cloned().collect::<Vec<_>>(),
        readers,
        "seed {seed}: someone got nothing, or someone else got mail"
    );
    assert_eq!(ledger.len(), READERS);
    assert!(
        ledger.values().all(|s| s == "sent"),
        "seed {seed}: not all sent"
    );
    let total: usize = copies.values().sum();
    let duplicates = total - READERS;
    assert!(
        duplicates <= in_flight_total && duplicates <= KILLS * CONNECTIONS,
        "seed {seed}: {duplicates} duplicates; {in_flight_total} messages were in flight at the kills"
    );
    eprintln!(
        "send crash loop: {KILLS} kills survived ({} early, {} right after a message), \
         {total} messages for {READERS} readers: {duplicates} duplicates \
         (bound {}); in flight per kill: {:?}; messages per run: {:?}; {:.1} s",
        kills.iter().filter(|k| k.0 == KillPoint::Early).count(),
        kills
            .iter()
            .filter(|k| k.0 == KillPoint::AfterMessage)
            .count(),
        KILLS * CONNECTIONS,
        kills.iter().map(|k| k.2).collect::<Vec<_>>(),
        kills.iter().map(|k| k.1).collect::<Vec<_>>(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn an_import_killed_at_20_random_moments_adds_all_rows_or_none() {
    const ROWS: usize = 25_000;
    const KILLS: usize = 20;
    const BEFORE: usize = 10;
    let started = Instant::now();
    let mut rng = Rng::new("import crash loop");
    let seed = rng.seed;
    let site = Site::with_mail().subscribers(&addresses(BEFORE)).create();
    let store = site.path("newsletter.db");
    // The store as it was before the import, to go back to when a kill
    // came after the commit.
    std::fs::copy(&store, site.path("before.db")).unwrap();
    let mut csv = String::from("email,name\n");
    for i in 0..ROWS {
        csv.push_str(&format!("new{i:05}@example.org,New Reader {i}\n"));
    }
    site.write("big.csv", csv);
    let import = || site.newsletter(["subscribers", "import", "big.csv"]);
    let restore = || {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(site.path(&format!("newsletter.db{suffix}")));
        }
        std::fs::copy(site.path("before.db"), &store).unwrap();
    };

    // How long a whole import takes here, to spread the kills over it.
    let timed = Instant::now();
    let out = run(&mut import()).success();
    let whole = timed.elapsed();
    assert!(
        out.stdout.contains(&format!("imported {ROWS} new")),
        "{out}"
    );
    restore();

    let count = || -> usize {
        let conn = open_store(&store);
        let ok: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok", "seed {seed}: the store is damaged");
        conn.query_row("SELECT count(*) FROM subscribers", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap() as usize
    };
    // When this run last wrote to the write-ahead log, if it did: only the
    // import's one transaction writes (cache spills, then the commit).
    let wal = site.path("newsletter.db-wal");
    let wrote_log_since = |since: std::time::SystemTime| {
        std::fs::metadata(&wal).is_ok_and(|m| {
            // Opening the store creates an empty log: that is no write.
            m.len() > 0 && m.modified().is_ok_and(|t| t >= since)
        })
    };
    // Kills an import: at `moment`, or that long after its transaction
    // first wrote to the log (to land inside it). What it left: 0 no row
    // with the transaction under way, 1 no row before it wrote, 2 all rows
    // (then the store goes back to before the import).
    let kill_import = |k: usize, after_log: bool, moment: Duration| -> usize {
        let spawned = std::time::SystemTime::now();
        let mut child = spawn_quiet(import());
        if after_log {
            while !wrote_log_since(spawned) && child.try_wait().unwrap().is_none() {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        std::thread::sleep(moment);
        kill(&mut child);
        let wrote = wrote_log_since(spawned);
        let n = count();
        // The binary opens the store after the crash and sees the same.
        let listed = run(&mut site.newsletter(["subscribers", "list", "--status", "bounced"]));
        assert_eq!(listed.code, Some(0), "seed {seed}: kill {k}: {listed}");
        match n {
            BEFORE if wrote => 0,
            BEFORE => 1,
            n if n == BEFORE + ROWS => {
                restore();
                2
            }
            n => panic!("seed {seed}: kill {k}: {n} subscribers, half an import"),
        }
    };
    // Per kind of kill: (no row, inside the transaction), (no row, before
    // it wrote), (all rows).
    let mut landed = BTreeMap::<&str, [usize; 3]>::new();
    for k in 0..KILLS {
        // Half at a random moment; half a random moment after the
        // transaction first writes to the log, to land inside it.
        let after_log = rng.range(0, 1) == 1;
        let delay = Duration::from_micros(rng.range(0, whole.as_micros() as u64 * 6 / 5));
        let jitter = Duration::from_micros(rng.range(0, whole.as_micros() as u64 / 3));
        let (kind, moment) = if after_log {
            ("after the log grew", jitter)
        } else {
            ("at random", delay)
        };
        landed.entry(kind).or_default()[kill_import(k, after_log, moment)] += 1;
    }
    // Unless a kill landed inside the transaction, this test did not test
    // what it names: kills at the moment the log grows, until one does.
    let mut k = KILLS;
    while landed.values().map(|c| c[0]).sum::<usize>() == 0 {
        assert!(
            k < KILLS + 10,
            "seed {seed}: none of {k} kills landed inside the import's transaction: {landed:?}"
        );
        landed.entry("as the log grew").or_default()[kill_import(k, true, Duration::ZERO)] += 1;
        k += 1;
    }
    let out = run(&mut import()).success();
    assert!(
        out.stdout.contains(&format!("imported {ROWS} new")),
        "{out}"
    );
    assert_eq!(count(), BEFORE + ROWS);
    let conn = open_store(&store);
    let names: BTreeSet<String> = conn
        .prepare("SELECT email || ' ' || name FROM subscribers WHERE status = 'active'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for i in (0..ROWS).step_by(997) {
        assert!(names.contains(&format!("new{i:05}@example.org New Reader {i}")));
    }
    eprintln!(
        "import crash loop: {k} kills survived over a {:.2} s import of {ROWS} rows, \
         never half: kills (no row with the transaction under way, no row before it wrote, \
         all rows): {landed:?}; {:.1} s",
        whole.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

/// A site of `posts` generated posts (every feed lists all, per-tag feeds
/// too) in two versions, `content-a` and `content-b` (every title and body
/// changed), with `a.toml` and `b.toml` building them into `public`.
fn two_version_site(posts: usize) -> Site {
    let site = Site::empty_in_memory();
    let start = chrono::DateTime::parse_from_rfc3339("2015-01-01T00:00:00Z").unwrap();
    for version in ["a", "b"] {
        for i in 0..posts {
            let date = start + chrono::Duration::hours(i as i64 * 7);
            let body = format!(
                "Version {version} of post {i}. Lorem ipsum dolor sit amet, consectetur \
                 adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna \
                 aliqua.\n\n<!-- more -->\n\nUt enim ad minim veniam, quis nostrud \
                 exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat, \
                 [a link](/elsewhere/{i}/) and `code {i}`.\n"
            );
            site.write(
                &format!("content-{version}/{}-post-{i}.md", date.format("%Y-%m-%d")),
                format!(
                    "---\ntitle: \"Post {i}, version {version}\"\ncreated_at: {}\n\
                     tags: [topic{}]\n---\n\n{body}",
                    date.to_rfc3339(),
                    i % 10
                ),
            );
        }
        site.write(
            &format!("{version}.toml"),
            format!(
                "[site]\ntitle = \"Crash Blog\"\nbase_url = \"https://crash.example.org\"\n\n\
                 [content]\ndir = \"content-{version}\"\n\n\
                 [feeds]\noutput_dir = \"public\"\nlimit = 0\nper_tag = true\n"
            ),
        );
    }
    site
}

/// The visible files under `dir` (relative paths → bytes), and the hidden
/// ones but the build manifest.
fn feed_files(dir: &Path) -> (BTreeMap<PathBuf, Vec<u8>>, Vec<PathBuf>) {
    let mut files = BTreeMap::new();
    let mut hidden = Vec::new();
    for entry in walk(dir) {
        let relative = entry.strip_prefix(dir).unwrap().to_path_buf();
        if relative == Path::new(".newsletter.manifest") {
            continue;
        }
        if relative
            .components()
            .any(|c| c.as_os_str().to_string_lossy().starts_with('.'))
        {
            hidden.push(relative);
        } else {
            files.insert(relative, std::fs::read(&entry).unwrap());
        }
    }
    (files, hidden)
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            all.extend(walk(&path));
        } else {
            all.push(path);
        }
    }
    all
}

#[test]
fn a_build_killed_at_20_random_moments_leaves_each_feed_old_or_new_never_half() {
    const KILLS: usize = 20;
    let started = Instant::now();
    let mut rng = Rng::new("build crash loop");
    let seed = rng.seed;
    let site = two_version_site(2000);
    let build = |version: &str, output: &str| {
        let config = format!("{version}.toml");
        common::newsletter(
            site.root(),
            [
                "--config", &config, "build", "--now", NOW, "--output", output,
            ],
        )
    };
    // The two complete versions, built elsewhere.
    let timed = Instant::now();
    run(&mut build("a", "ref-a")).success();
    let whole = timed.elapsed();
    run(&mut build("b", "ref-b")).success();
    let versions = [
        ("a", feed_files(&site.path("ref-a")).0),
        ("b", feed_files(&site.path("ref-b")).0),
    ];
    assert_eq!(
        versions[0].1.keys().collect::<Vec<_>>(),
        versions[1].1.keys().collect::<Vec<_>>()
    );
    assert!(versions[0].1.len() >= 33, "{:?}", versions[0].1.keys());
    run(&mut build("a", "public")).success();

    let public = site.path("public");
    let version_of = |path: &Path, bytes: &[u8]| {
        versions
            .iter()
            .find(|(_, v)| v[path] == bytes)
            .map(|(name, _)| *name)
    };
    let on = |version: &str, files: &BTreeMap<PathBuf, Vec<u8>>| {
        files
            .iter()
            .filter(|(path, bytes)| version_of(path, bytes) == Some(version))
            .count()
    };
    // (before any rename, during the renames, after the last) per kind of kill.
    let mut landed = BTreeMap::<&str, [usize; 3]>::new();
    let mut leftovers = Vec::new();
    let mut target = "b";
    let mut current = feed_files(&public).0;
    let between =
        |landed: &BTreeMap<&str, [usize; 3]>| landed.values().map(|c| c[1]).sum::<usize>();
    let mut k = 0;
    loop {
        // Unless a kill landed between the renames, this test did not test
        // what it names: after the KILLS kills, more at the first rename
        // until one does.
        let again = k >= KILLS;
        if again && between(&landed) > 0 {
            break;
        }
        assert!(
            k < KILLS + 10,
            "seed {seed}: none of {k} kills landed between the renames: {landed:?}"
        );
        let before = on(target, &current);
        // Half the kills at a random moment; half at the first rename,
        // which is when a file changes its inode: the renames of all the
        // files take about 1% of a build, so few random kills land there.
        let at_rename = rng.range(0, 1) == 1 || again;
        let delay = Duration::from_micros(rng.range(0, whole.as_micros() as u64 * 6 / 5));
        let inodes = || -> Vec<u64> {
            use std::os::unix::fs::MetadataExt;
            versions[0]
                .1
                .keys()
                .map(|f| std::fs::metadata(public.join(f)).map_or(0, |m| m.ino()))
                .collect()
        };
        let old_inodes = inodes();
        let mut child = spawn_quiet(build(target, "public"));
        if at_rename {
            while inodes() == old_inodes && child.try_wait().unwrap().is_none() {
                std::thread::sleep(Duration::from_micros(100));
            }
        } else {
            std::thread::sleep(delay);
        }
        kill(&mut child);
        let (files, hidden) = feed_files(&public);
        assert_eq!(
            files.keys().collect::<Vec<_>>(),
            versions[0].1.keys().collect::<Vec<_>>(),
            "seed {seed}: kill {k}: a feed file went missing, or a stray one appeared"
        );
        for (path, bytes) in &files {
            assert!(
                version_of(path, bytes).is_some(),
                "seed {seed}: kill {k}: {} is neither the old nor the new version ({} bytes)",
                path.display(),
                bytes.len()
            );
        }
        for file in &hidden {
            let name = file.file_name().unwrap().to_string_lossy();
            assert!(
                name.starts_with(".newsletter-"),
                "seed {seed}: an unexpected file {}",
                file.display()
            );
        }
        leftovers.push(hidden.len());
        let after = on(target, &files);
        let kind = if again {
            "at the first rename, again"
        } else if at_rename {
            "at the first rename"
        } else {
            "at random"
        };
        let counts = landed.entry(kind).or_default();
        if after == files.len() {
            counts[2] += 1;
            // This build got to the end: the next one goes back.
            target = if target == "a" { "b" } else { "a" };
        } else if after > before {
            counts[1] += 1;
        } else {
            counts[0] += 1;
        }
        current = files;
        k += 1;
    }
    run(&mut build(target, "public")).success();
    let (files, hidden) = feed_files(&site.path("public"));
    let expected = &versions.iter().find(|(name, _)| *name == target).unwrap().1;
    assert!(
        files == *expected,
        "seed {seed}: the last build is not complete"
    );
    let stale: u64 = hidden
        .iter()
        .map(|f| {
            std::fs::metadata(site.path("public").join(f))
                .unwrap()
                .len()
        })
        .sum();
    eprintln!(
        "build crash loop: {k} kills survived over a {:.2} s build of {} files, every \
         file old or new each time; kills (before any rename, between renames, after the \
         last): {landed:?}; hidden `.newsletter-*` temp files after each kill: {leftovers:?}, \
         {} ({stale} bytes) after the next full build; {:.1} s",
        whole.as_secs_f64(),
        files.len(),
        hidden.len(),
        started.elapsed().as_secs_f64()
    );
}

// ---------------------------------------------------------------------------
// Disk faults: a tmpfs of our own, read-only or small.

/// A tmpfs mounted on a folder for one test; unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs with `options` (e.g. `size=64k`) on `dir`, or says
    /// why it cannot (mounting needs root, or CAP_SYS_ADMIN).
    fn mount(dir: &Path, options: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if out.status.success() {
            Ok(Tmpfs {
                dir: dir.to_path_buf(),
            })
        } else {
            Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// Changes the mount's options (`ro`, `rw`, `size=16m`), keeping its files.
    fn remount(&self, options: &str) {
        // With the type and source given: in a user namespace, `mount`
        // finds no other way to the mount.
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("remount,{options}"), "tmpfs"])
            .arg(&self.dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "remount {options}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    let probe = tempfile::NamedTempFile::new().unwrap();
    probe.as_file().metadata().unwrap().uid() == 0
}

/// Set in a test run again inside a namespace of its own (see [`mounting`]).
const IN_NAMESPACE: &str = "NEWSLETTER_TEST_IN_NAMESPACE";

/// Where a disk-fault test can mount its tmpfs.
enum Mounting {
    /// Here: this process may mount.
    Here,
    /// The test ran again inside a user and mount namespace of its own,
    /// and passed there: nothing more to do here.
    RanInNamespace,
    /// Nowhere, and why.
    Cannot(String),
}

/// Whether this process may mount a tmpfs, else whether `unshare --user
/// --map-root-user --mount` gives it a namespace where it may (no
/// privilege needed where the kernel allows unprivileged user
/// namespaces): there this very test runs again, as root of its own
/// namespace, and must pass. The mounts are seen only inside, so the
/// whole test runs there, the programs it starts too.
fn mounting(test: &str) -> Mounting {
    let probe = tempfile::tempdir().unwrap();
    let why = match Tmpfs::mount(probe.path(), "size=16k") {
        Ok(_) => return Mounting::Here,
        Err(why) => why,
    };
    if std::env::var_os(IN_NAMESPACE).is_some() {
        panic!("inside its own namespace, this test still cannot mount: {why}");
    }
    let unshare = ["--user", "--map-root-user", "--mount"];
    let usable = Command::new("unshare")
        .args(unshare)
        .args(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs"])
        .arg(probe.path())
        .output();
    match usable {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            return Mounting::Cannot(format!(
                "{why}; and `unshare --user --map-root-user --mount` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Err(e) => return Mounting::Cannot(format!("{why}; and cannot run unshare: {e}")),
    }
    let out = Command::new("unshare")
        .args(unshare)
        .arg(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(IN_NAMESPACE, "1")
        .output()
        .unwrap();
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{test}, run again in a namespace of its own (mount: {why}):\n{output}");
    assert!(
        out.status.success() && output.contains("1 passed"),
        "{test} failed in its own namespace ({})",
        out.status
    );
    Mounting::RanInNamespace
}

/// A guarantee a disk-fault test could not check on this machine. Under
/// `CI=true` that fails the test, unless `NEWSLETTER_TEST_NO_MOUNT=1` says
/// the machine cannot mount; otherwise the guarantee is added to
/// `target/skipped-guarantees.txt`, which `scripts/test` prints last.
fn cannot_mount(test: &str, guarantee: &str, why: &str) {
    let told = std::env::var("NEWSLETTER_TEST_NO_MOUNT").is_ok_and(|v| v == "1");
    if !told && std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "{guarantee}: NOT tested, since {why}. On CI a disk-fault test must run: allow \
             `mount` or unprivileged user namespaces, or set NEWSLETTER_TEST_NO_MOUNT=1 to \
             skip it and have scripts/test list it"
        );
    }
    let target = Path::new(common::bin()).parent().unwrap().parent().unwrap();
    let line = format!("tests/faults.rs {test}: {guarantee} (cannot mount: {why})\n");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(target.join("skipped-guarantees.txt"))
        .unwrap();
    std::io::Write::write_all(&mut file, line.as_bytes()).unwrap();
    eprintln!("skipped: {line}");
}

/// Adds `n` posts of about a kilobyte each to `site`'s content.
fn add_posts(site: &Site, n: usize) {
    let filler = "All work and no play makes a long feed entry. ".repeat(20);
    for i in 0..n {
        site.write(
            &format!("content/2025-03-{:02}-added-{i}.md", i % 28 + 1),
            format!("---\ntitle: \"Added post {i}\"\n---\n\n{filler}\n"),
        );
    }
}

#[test]
fn a_read_only_output_folder_stops_the_build_naming_the_file_and_keeps_the_feeds() {
    let test = "a_read_only_output_folder_stops_the_build_naming_the_file_and_keeps_the_feeds";
    let here = match mounting(test) {
        Mounting::Here => true,
        Mounting::RanInNamespace => return,
        // Without root, permissions stop writes just as well.
        Mounting::Cannot(_) if !running_as_root() => false,
        Mounting::Cannot(why) => {
            // As root, chmod or chattr would not be honest here.
            let guarantee = "a read-only output folder stops the build, naming the file, \
                             with no feed changed";
            return cannot_mount(test, guarantee, &why);
        }
    };
    let site = Site::with_mail().create();
    let public = site.path("public");
    let mount = here.then(|| Tmpfs::mount(&public, "size=4m").unwrap());
    site.build();
    let old = site.snapshot("public");
    match &mount {
        Some(mount) => mount.remount("ro"),
        None => set_mode(&public, 0o555),
    }
    add_posts(&site, 1);
    let out = run(&mut site.newsletter(["build", "--now", NOW])).failure();
    assert!(
        out.stderr.contains("cannot write")
            && out.stderr.contains(&public.display().to_string())
            && (out.stderr.contains("Read-only file system")
                || out.stderr.contains("Permission denied"))
            && out.stderr.contains("feeds already written are intact"),
        "{out}"
    );
    assert_eq!(site.snapshot("public"), old, "a feed changed");
    eprintln!("read-only output folder: {}", out.stderr.trim());

    // Writable again: the next build brings the feeds up to date.
    match &mount {
        Some(mount) => mount.remount("rw"),
        None => set_mode(&public, 0o755),
    }
    site.build();
    assert!(
        String::from_utf8(site.read("public/atom.xml"))
            .unwrap()
            .contains("Added post 0")
    );
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_full_disk_stops_the_build_with_no_feed_changed_and_no_temp_file_left() {
    let test = "a_full_disk_stops_the_build_with_no_feed_changed_and_no_temp_file_left";
    match mounting(test) {
        Mounting::Here => {}
        Mounting::RanInNamespace => return,
        Mounting::Cannot(why) => {
            let guarantee = "a full disk stops the build with no feed changed and no temp \
                             file left";
            return cannot_mount(test, guarantee, &why);
        }
    }
    let site = Site::with_mail().create();
    let public = site.path("public");
    let mount = Tmpfs::mount(&public, "size=64k").unwrap();
    site.build();
    let old = site.snapshot("public");
    // About 200 KB per feed: more than the 64 KB there is.
    add_posts(&site, 150);
    let out = run(&mut site.newsletter(["build", "--now", NOW])).failure();
    assert!(
        out.stderr.contains("cannot write")
            && out.stderr.contains(&public.display().to_string())
            && out.stderr.contains("No space left on device")
            && out.stderr.contains("feeds already written are intact"),
        "{out}"
    );
    assert_eq!(site.snapshot("public"), old, "a feed changed");
    let (_, hidden) = feed_files(&public);
    assert!(hidden.is_empty(), "temp files left behind: {hidden:?}");
    eprintln!("full output disk: {}", out.stderr.trim());

    mount.remount("size=16m");
    let out = site.build();
    assert!(out.stdout.contains("wrote 3 files"), "{out}");
    assert!(
        String::from_utf8(site.read("public/atom.xml"))
            .unwrap()
            .contains("Added post 149")
    );
}

#[test]
fn a_full_disk_under_the_store_stops_send_and_a_roomier_one_resumes_it() {
    let test = "a_full_disk_under_the_store_stops_send_and_a_roomier_one_resumes_it";
    match mounting(test) {
        Mounting::Here => {}
        Mounting::RanInNamespace => return,
        Mounting::Cannot(why) => {
            let guarantee = "a full disk under the store stops `send` with a clear error, \
                             and the next run resumes with no one skipped";
            return cannot_mount(test, guarantee, &why);
        }
    }
    const CONNECTIONS: usize = 2;
    let readers = addresses(400);
    let hold = Hold::new();
    let server = SmtpServer::start(&["--delay", "0.01", "--hold-file", &hold.arg()]);
    let site = Site::with_mail()
        .smtp(held_config(server.port, CONNECTIONS))
        .store("store/newsletter.db")
        .create();
    let store_dir = site.path("store");
    let mount = Tmpfs::mount(&store_dir, "size=2m").unwrap();
    site.subscribe(&readers);
    let store = store_dir.join("newsletter.db");

    let child = send_command(&site)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    server.wait_for(30, Duration::from_secs(60));
    // The send waits at the server, mid-message, while the disk fills:
    // it cannot have finished first.
    hold.on();
    server.wait_for_logged("fault=hold", 1);
    // Take every byte left: the next ledger write has no room.
    let mut filler = std::fs::File::create(store_dir.join("filler")).unwrap();
    let block = vec![0u8; 64 * 1024];
    while std::io::Write::write_all(&mut filler, &block).is_ok() {}
    drop(filler);
    hold.off();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot record deliveries in the ledger")
            && stderr.contains("store/newsletter.db: database or disk is full")
            && stderr.contains("stays pending"),
        "{stderr}"
    );
    settle(&server);
    let flying = in_flight(&store, &server, CONNECTIONS, "after the disk filled");
    let ledger = ledger(&store);
    let sent = ledger.values().filter(|s| *s == "sent").count();
    assert!(
        sent < readers.len(),
        "everything was sent before the disk filled"
    );
    eprintln!(
        "full store disk during send: stopped after {} received, {sent} recorded sent, {} in \
         flight: {}",
        count_eml(&server.maildir),
        flying.len(),
        stderr.lines().last().unwrap_or("")
    );

    mount.remount("size=64m");
    let out = send(&site).success();
    assert!(out.stdout.contains("0 failed, 0 pending"), "{out}");
    let copies = copies(&server);
    assert_eq!(copies.keys().cloned().collect::<Vec<_>>(), readers);
    let duplicates = copies.values().sum::<usize>() - readers.len();
    assert!(duplicates <= flying.len(), "{duplicates} duplicates");
}

#[test]
fn a_database_locked_past_the_busy_timeout_stops_send_and_the_next_run_resumes() {
    const CONNECTIONS: usize = 4;
    let readers = addresses(300);
    let hold = Hold::new();
    let server = SmtpServer::start(&["--delay", "0.02", "--hold-file", &hold.arg()]);
    let site = Site::with_mail()
        .smtp(held_config(server.port, CONNECTIONS))
        .subscribers(&readers)
        .create();
    let store = site.path("newsletter.db");
    let child = send_command(&site)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    server.wait_for(20, Duration::from_secs(60));
    // The send waits at the server, mid-message, while another process
    // (this test) takes the write lock and keeps it.
    hold.on();
    server.wait_for_logged("fault=hold", 1);
    let other = Connection::open(&store).unwrap();
    other.busy_timeout(Duration::from_secs(60)).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let locked = Instant::now();
    hold.off();
    let out = child.wait_with_output().unwrap();
    let waited = locked.elapsed();
    other.execute_batch("ROLLBACK").unwrap();
    drop(other);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot record deliveries in the ledger")
            && stderr.contains("newsletter.db: database is locked")
            && stderr.contains("stays pending"),
        "{stderr}"
    );
    // It waited out the busy timeout (10 s) before giving up, and then
    // once more for what was in flight (20 s), not once per connection
    // (at least 40 s): the upper bound leaves a busy machine 20 s.
    assert!(waited >= Duration::from_secs(9), "gave up after {waited:?}");
    assert!(waited < Duration::from_secs(40), "gave up after {waited:?}");
    settle(&server);
    let flying = in_flight(&store, &server, CONNECTIONS, "after the lock");
    eprintln!(
        "locked database: send gave up after {:.1} s with {} received, {} in flight: {}",
        waited.as_secs_f64(),
        count_eml(&server.maildir),
        flying.len(),
        stderr.lines().last().unwrap_or("")
    );

    let out = send(&site).success();
    assert!(out.stdout.contains("0 failed, 0 pending"), "{out}");
    let copies = copies(&server);
    assert_eq!(copies.keys().cloned().collect::<Vec<_>>(), readers);
    let duplicates = copies.values().sum::<usize>() - readers.len();
    assert!(duplicates <= flying.len(), "{duplicates} duplicates");
}

// ---------------------------------------------------------------------------
// SMTP faults.

/// How the first server misbehaves.
enum Broken<'a> {
    /// Nothing listens on the port.
    Unreachable,
    /// `tests/smtp_server.py` with these fault options.
    Faulty(&'a [&'a str]),
}

/// Sends to a broken server: the run stops with an error containing each
/// of `expected`, without trying each reader, nothing is received or
/// marked sent, and then a working server gets everyone exactly once.
fn a_broken_server_stops_the_run_and_a_working_one_gets_everyone_once(
    broken: Broken<'_>,
    expected: &[&str],
) {
    let readers = addresses(30);
    // Held, not listening: no one else takes the port, connections are refused.
    let unreachable = common::server::free_port();
    let (faulty, port) = match broken {
        Broken::Unreachable => (None, unreachable.number()),
        Broken::Faulty(args) => {
            let server = SmtpServer::start(args);
            let port = server.port;
            (Some(server), port)
        }
    };
    let smtp = |port: u16| loopback_config(port, "connections = 4\ntimeout = 2");
    let site = Site::with_mail()
        .smtp(smtp(port))
        .subscribers(&readers)
        .create();
    let started = Instant::now();
    let out = send(&site).failure();
    let took = started.elapsed();
    for phrase in expected.iter().chain(&["stays pending"]) {
        assert!(out.stderr.contains(phrase), "no {phrase:?} in\n{out}");
    }
    // A run that tried each reader instead of stopping would sleep at
    // least 30 readers × 7.5 s of backoff / 4 connections = 56 s, whatever
    // the machine: this bound leaves a busy one 40 s for what takes 2 to 5.
    assert!(took < Duration::from_secs(40), "took {took:?}\n{out}");
    if let Some(faulty) = &faulty {
        assert_eq!(count_eml(&faulty.maildir), 0);
        // 8 failed connections in a row stop it: the 4 connections may
        // each have one more under way then. (The first connection in the
        // log is the server's own probe.)
        let connections = faulty.logged(" connect peer=") - 1;
        assert!(
            (8..=11).contains(&connections),
            "{connections} connections\n{}",
            faulty.log()
        );
    }
    let ledger = ledger(&site.path("newsletter.db"));
    assert_eq!(ledger.len(), readers.len());
    assert!(
        ledger.values().all(|s| s == "pending"),
        "marked without being sent: {ledger:?}"
    );
    eprintln!("after {:.1} s: {}", took.as_secs_f64(), out.stderr.trim());

    let server = SmtpServer::start(&[]);
    site.replace_in_config(&smtp(port), &smtp(server.port));
    let out = send(&site).success();
    assert!(out.stdout.contains("30 sent, 0 failed, 0 pending"), "{out}");
    assert_eq!(server.recipients(), readers);
}

#[test]
fn an_unreachable_smtp_server_stops_send_at_once_and_the_ledger_resumes() {
    a_broken_server_stops_the_run_and_a_working_one_gets_everyone_once(
        Broken::Unreachable,
        &["failed 8 connections in a row", "Connection refused"],
    );
}

#[test]
fn a_server_slower_than_smtp_timeout_stops_send_and_the_ledger_resumes() {
    // A reply after 31 s, a 2 s timeout: the timeout is what ends the wait.
    a_broken_server_stops_the_run_and_a_working_one_gets_everyone_once(
        Broken::Faulty(&["--delay", "31"]),
        &[
            "failed 8 connections in a row",
            "no answer within smtp.timeout (2 s)",
        ],
    );
}

#[test]
fn a_server_answering_garbage_stops_send_and_the_ledger_resumes() {
    a_broken_server_stops_the_run_and_a_working_one_gets_everyone_once(
        Broken::Faulty(&["--garbage"]),
        &["failed 8 connections in a row"],
    );
}
