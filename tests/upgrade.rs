//! A store written by an earlier version, opened by this one: what it
//! remembers stays true. The old store is made with Python's `sqlite3`,
//! from the schema that version wrote (`tests/fixtures/store-v2.sql`).

mod common;

use std::path::Path;

use common::mail_site::addresses;
use common::{NOW, Run, Site, corpus_dir, python, run};

/// Runs `code` with Python's `sqlite3` on the store at `db`; its stdout.
#[track_caller]
fn sql(db: &Path, code: &str) -> String {
    let out = std::process::Command::new(python())
        .args(["-c", code])
        .arg(db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Makes a schema-2 store at `db` (what 0.2 wrote) holding what `rows`
/// (Python statements, with `db` the open connection) put in it.
fn v2_store(db: &Path, rows: &str) {
    let schema = common::manifest_dir().join("tests/fixtures/store-v2.sql");
    let code = format!(
        "import re, sqlite3, sys, pathlib\n\
         db = sqlite3.connect(sys.argv[1])\n\
         db.executescript(pathlib.Path({:?}).read_text())\n\
         {rows}\n\
         db.execute('PRAGMA user_version = 2')\n\
         db.commit()\n",
        schema.display().to_string()
    );
    sql(db, &code);
}

/// Makes a schema-2 store at `db` as after one digest: every post of the
/// corpus announced at the permalink 0.2 gave it (the date of
/// `created_at`), one subscriber who got that digest.
fn old_store(db: &Path) {
    let rows = format!(
        r#"db.execute("INSERT INTO subscribers VALUES (1, 'ann@example.org', 'Ann', 'active', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')")
db.execute("INSERT INTO digests VALUES (1, '2026-11-01T00:00:00Z', 'S', '<p>H</p>', 'T')")
db.execute("INSERT INTO deliveries VALUES (1, 1, 'sent', 1, '250 ok', '2026-11-01T00:00:00Z')")
for path in sorted(pathlib.Path({corpus:?}).glob("*.md")):
    created = re.search(r"^\s*created_at:\s*(\d{{4}})-(\d\d)-(\d\d)", path.read_text(), re.M)
    slug = path.stem[11:]
    permalink = "/blog/%s/%s/%s/%s/" % (created[1], created[2], created[3], slug)
    db.execute("INSERT INTO announced VALUES (?, 1, '2026-11-01T00:00:00Z')", (permalink,))"#,
        corpus = corpus_dir().display().to_string(),
    );
    v2_store(db, &rows);
}

fn send(site: &Site) -> Run {
    run(site
        .newsletter(["send", "--now", NOW])
        .env("NEWSLETTER_SECRET", "a-secret-of-16-bytes-or-more"))
}

#[test]
fn posts_whose_permalink_changed_are_not_mailed_again_after_the_upgrade() {
    let site = Site::corpus("limit = 0");
    site.append_config("[email]\noutbox_mode = \"deliver\"\n");
    let db = site.path("newsletter.db");
    old_store(&db);

    // Five posts now have the file name's date in their URL; none is new.
    let out = send(&site).success();
    assert!(out.stdout.contains("nothing to send"), "{out:?}");
    assert_eq!(common::smtp::count_eml(&site.path("outbox")), 0);

    // The upgraded store knows every published post by its file now, and
    // the five by the permalink they have now (found by the one 0.2 gave
    // them).
    let adopted = sql(
        &db,
        "import sqlite3, sys\n\
         db = sqlite3.connect(sys.argv[1])\n\
         print(db.execute('PRAGMA user_version').fetchone()[0])\n\
         for row in db.execute('SELECT source, permalink FROM announced WHERE source IS NOT NULL ORDER BY source'):\n\
         \x20   print(*row)\n",
    );
    let mut lines = adopted.lines();
    let version: i64 = lines.next().unwrap().parse().unwrap();
    assert!(version >= 3, "{adopted}");
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 58, "{adopted}");
    assert!(
        rows.contains(
            &"2024-03-14-commitment-to-opentelemetry.md /blog/2024/03/14/commitment-to-opentelemetry/"
        ),
        "{adopted}"
    );
}

#[test]
fn a_renamed_file_then_a_new_permalink_pattern_mails_nothing_again() {
    let site = Site::with_mail().subscribers(&addresses(2)).create();
    let out = send(&site).success();
    assert!(out.stdout.contains("2 sent"), "{out:?}");

    // A file renamed under the same permalink is the same post (and its
    // record learns the new name)...
    let from = site.path("content/2024-01-15-plain-yaml.md");
    let text = std::fs::read_to_string(&from).unwrap();
    std::fs::remove_file(&from).unwrap();
    site.write(
        "content/renamed.md",
        text.replacen("---\n", "---\nslug: plain-yaml\n", 1),
    );
    let again = send(&site).success();
    assert!(again.stdout.contains("nothing to send"), "{again:?}");

    // ...so a new permalink pattern afterwards changes nothing either.
    site.replace_in_config(
        "permalink = \"/posts/:year/:month/:day/:slug/\"",
        "permalink = \"/articles/:slug/\"",
    );
    site.build().success();
    assert!(
        site.read_text("public/atom.xml")
            .contains("https://blog.example.org/articles/plain-yaml/"),
        "the pattern took effect"
    );
    let again = send(&site).success();
    assert!(again.stdout.contains("nothing to send"), "{again:?}");

    // A new file at an old file's name is a new post.
    site.write(
        "content/2024-01-15-plain-yaml.md",
        "---\ntitle: A new post\nslug: a-new-post\ncreated_at: 2026-11-24\n---\nNew.\n",
    );
    let new = send(&site).success();
    assert!(new.stdout.contains("A new post"), "{new:?}");
}

/// An unsubscribe token as 0.2 made them (`ID.0.MAC`, the MAC an
/// HMAC-SHA256 over `unsubscribe:ID:0`), computed with Python's `hmac`.
fn legacy_token(id: i64) -> String {
    let out = std::process::Command::new(python())
        .args([
            "-c",
            "import hmac, hashlib, sys\n\
             mac = hmac.new(sys.argv[1].encode(), f'unsubscribe:{sys.argv[2]}:0'.encode(), hashlib.sha256)\n\
             print(f'{sys.argv[2]}.0.{mac.hexdigest()}')",
            common::server::SECRET,
            &id.to_string(),
        ])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn links_mailed_before_keys_still_unsubscribe_their_reader_and_no_one_else() {
    use common::server;

    // A 0.2 store with three readers; Bob (row 2) got a digest with his link.
    let site = Site::with_mail().create();
    v2_store(
        &site.path("newsletter.db"),
        "for i, name in enumerate(['ann', 'bob', 'cy'], 1):\n\
         \x20   db.execute('INSERT INTO subscribers VALUES (?, ?, \"\", \"active\", \"2026-01-01T00:00:00.000Z\", \"2026-01-01T00:00:00.000Z\")', (i, name + '@example.org'))",
    );
    let bobs_link = legacy_token(2);

    // Moved to a new store, where someone else came first: export, import.
    let export = server::cli(&site, &["subscribers", "export"]).success();
    assert!(
        export
            .stdout
            .contains("bob@example.org,,active,2026-01-01T00:00:00.000Z,2,\n"),
        "{export:?}"
    );
    let moved = Site::with_mail().subscribers(&["zed@example.org"]).create();
    moved.write("old.csv", &export.stdout);
    let imported = server::cli(&moved, &["subscribers", "import", "old.csv"]).success();
    assert!(imported.stdout.contains("imported 3 new"), "{imported:?}");

    for place in [&site, &moved] {
        let running = server::start(place, server::free_port());
        let answer = server::client()
            .post(running.url(&format!("/unsubscribe/{bobs_link}")))
            .body("List-Unsubscribe=One-Click")
            .send()
            .unwrap();
        assert_eq!(answer.status(), 200);
        let statuses = server::statuses(place);
        let unsubscribed: Vec<&str> = statuses
            .iter()
            .filter(|(_, s)| s == "unsubscribed")
            .map(|(e, _)| e.as_str())
            .collect();
        assert_eq!(unsubscribed, ["bob@example.org"], "{statuses:?}");
    }
}

#[test]
fn a_new_post_at_an_old_file_name_is_new_and_a_renamed_post_is_not() {
    let site = Site::with_mail()
        .first_run_posts(5)
        .without_posts()
        .subscribers(&addresses(1))
        .create();
    site.write(
        "content/a.md",
        "---\ntitle: Post A\ndate: 2026-11-01\nslug: post-a\n---\nA.\n",
    );
    site.write(
        "content/news.md",
        "---\ntitle: Old news\ndate: 2026-11-02\nslug: old-news\n---\nOld.\n",
    );
    assert!(send(&site).success().stdout.contains("1 sent"));

    // A renamed, and a new post where it was; news.md replaced by a new post.
    std::fs::rename(site.path("content/a.md"), site.path("content/c.md")).unwrap();
    site.write(
        "content/a.md",
        "---\ntitle: Brand new\ndate: 2026-11-20\nslug: brand-new\n---\nNew.\n",
    );
    site.write(
        "content/news.md",
        "---\ntitle: Fresh news\ndate: 2026-11-21\nslug: fresh-news\n---\nFresh.\n",
    );
    let dry = run(site
        .newsletter(["send", "--dry-run", "--now", NOW])
        .env("NEWSLETTER_SECRET", "a-secret-of-16-bytes-or-more"))
    .success();
    assert!(dry.stdout.contains("(2 new posts)"), "{dry:?}");
    assert!(dry.stdout.contains("Fresh news"), "{dry:?}");
    let sent = send(&site).success();
    assert!(sent.stdout.contains("1 sent"), "{sent:?}");
    assert!(send(&site).success().stdout.contains("nothing to send"));

    // Two posts trade file names (permalinks kept by their slugs).
    std::fs::rename(site.path("content/c.md"), site.path("content/tmp.md")).unwrap();
    std::fs::rename(site.path("content/a.md"), site.path("content/c.md")).unwrap();
    std::fs::rename(site.path("content/tmp.md"), site.path("content/a.md")).unwrap();
    assert!(send(&site).success().stdout.contains("nothing to send"));
}

#[test]
fn a_store_with_a_generated_secret_moves_with_hex_secret() {
    use common::server;

    // A store whose secret it made itself (no NEWSLETTER_SECRET).
    let site = Site::with_mail().subscribers(&["ann@example.org"]).create();
    run(&mut site.newsletter(["send", "--now", NOW])).success();
    let mail = std::fs::read_dir(site.path("outbox"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let text = common::smtp::mail_file(&mail)
        .part("text/plain")
        .to_string();
    let link = text
        .split_whitespace()
        .find(|w| w.contains("/unsubscribe/"))
        .unwrap()
        .to_string();
    let token = link.rsplit_once('/').unwrap().1.to_string();
    let secret = sql(
        &site.path("newsletter.db"),
        "import sqlite3, sys\nprint(sqlite3.connect(sys.argv[1]).execute(\"SELECT value FROM settings WHERE key = 'secret'\").fetchone()[0])",
    );

    // Moved: export, import elsewhere, the secret given as hex:.
    let export = run(&mut site.newsletter(["subscribers", "export"])).success();
    let moved = Site::with_mail().create();
    moved.write("old.csv", &export.stdout);
    let hex = format!("hex:{}", secret.trim());
    run(moved
        .newsletter(["subscribers", "import", "old.csv"])
        .env("NEWSLETTER_SECRET", &hex))
    .success();
    let port = server::free_port();
    let running = server::Server::start(
        &moved,
        port,
        &["--now", NOW],
        &[("NEWSLETTER_SECRET", &hex)],
    );
    let answer = server::client()
        .post(running.url(&format!("/unsubscribe/{token}")))
        .body("List-Unsubscribe=One-Click")
        .send()
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(
        server::statuses(&moved),
        [("ann@example.org".to_string(), "unsubscribed".to_string())]
    );
}

#[test]
fn one_mailbox_typed_several_ways_becomes_one_row_and_gets_one_message() {
    use common::server;

    // A 0.2 store: three spellings of one mailbox (one of them left), two
    // of another, a digest pending for all of them.
    let site = Site::with_mail().create();
    v2_store(
        &site.path("newsletter.db"),
        "rows = [(1, '\"victim\"@example.org', 'active'), (2, 'victim@EXAMPLE.org', 'unsubscribed'),\n\
             \x20       (3, '\"\\\\victim\"@example.org', 'active'), (4, '\"bob\"@example.org', 'active'),\n\
             \x20       (5, 'bob@example.org', 'active')]\n\
             for i, email, status in rows:\n\
             \x20   db.execute('INSERT INTO subscribers VALUES (?, ?, \"\", ?, \"2026-01-01T00:00:00.000Z\", \"2026-01-01T00:00:00.000Z\")', (i, email, status))\n\
             db.execute(\"INSERT INTO digests VALUES (1, '2026-11-20T00:00:00Z', 'Old news', '<p>Old</p>', 'Old')\")\n\
             for i in (1, 3, 4, 5):\n\
             \x20   db.execute(\"INSERT INTO deliveries VALUES (1, ?, 'pending', 0, '', '2026-11-20T00:00:00Z')\", (i,))\n\
             db.execute(\"INSERT INTO deliveries VALUES (1, 2, 'sent', 1, '250 ok', '2026-11-20T00:00:00Z')\")",
    );
    let statuses = server::statuses(&site);
    assert_eq!(
        statuses,
        [
            ("victim@example.org".to_string(), "unsubscribed".to_string()),
            ("bob@example.org".to_string(), "active".to_string()),
        ],
        "merged, the unsubscribe winning"
    );

    // The unfinished digest reaches each mailbox once at most: victim's
    // went out already (as row 2), bob's two pending became one.
    let out = run(site
        .newsletter(["send", "--now", NOW])
        .env("NEWSLETTER_SECRET", server::SECRET))
    .success();
    assert!(out.stdout.contains("digest 1"), "{out:?}");
    assert_eq!(common::smtp::count_eml(&site.path("outbox")), 1);

    // A link mailed to row 4 (one of bob's spellings) still unsubscribes bob.
    let port = server::free_port();
    let running = server::start(&site, port);
    let answer = server::client()
        .post(running.url(&format!("/unsubscribe/{}", legacy_token(4))))
        .body("List-Unsubscribe=One-Click")
        .send()
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(
        server::statuses(&site)[1],
        ("bob@example.org".to_string(), "unsubscribed".to_string())
    );
}
