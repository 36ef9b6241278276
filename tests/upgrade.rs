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

/// Makes a store at `db` as the build of schema `version` left it: the
/// program's own schema steps up to it (step `i` takes a store from `i`
/// to `i + 1`; they are only ever added to), applied by Python's `sqlite3`,
/// then rows of every kind that schema had, as that build wrote them.
const OLD_STORE: &str = r#"import json, sqlite3, sys
db_path, steps_path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
db = sqlite3.connect(db_path)
for step in json.load(open(steps_path))[:n]:
    db.executescript(step)
def insert(table, **row):
    marks = ', '.join('?' * len(row))
    db.execute(f"INSERT INTO {table} ({', '.join(row)}) VALUES ({marks})", tuple(row.values()))
insert('settings', key='secret', value='00112233445566778899aabbccddeeff' * 2)
people = [(1, 'ann', 'active'), (2, 'bob', 'pending'), (3, 'cy', 'unsubscribed'),
          (4, 'dee', 'bounced'), (5, 'eve', 'active')]
if n >= 9:
    people.append((6, 'fay', 'complained'))
for id, who, status in people:
    row = dict(id=id, email=f'{who}@example.org', name=who.title(), status=status,
               created_at=f'2026-01-0{id}T00:00:00Z', updated_at=f'2026-02-0{id}T00:00:00Z')
    if n >= 4:
        row['key'] = f'{id}f{id}e'
    insert('subscribers', **row)
insert('digests', id=1, created_at='2026-11-01T00:00:00Z', subject='First digest',
       html='<p>First</p>', text='First')
insert('digests', id=2, created_at='2026-11-20T00:00:00Z', subject='Second digest',
       html='<p>Second digest, resumed</p>', text='Second digest, resumed')
for path in ['2024/01/15/plain-yaml', '2023/05/05/summary-key', '2022/02/02/nested-markdown',
             '2021/03/04/zola-post', '2020/01/02/jekyll-date']:
    insert('announced', permalink=f'/posts/{path}/', digest_id=1, announced_at='2026-11-01T00:00:00Z')
for digest, id, status, attempts, reply in [
        (1, 1, 'sent', 1, '250 ok'), (1, 3, 'sent', 1, '250 ok'),
        (1, 4, 'failed', 3, '550 5.1.1 no such user'), (1, 5, 'sent', 2, '250 ok'),
        (2, 1, 'pending', 0, ''), (2, 5, 'pending', 2, '451 4.3.0 try later'),
        (2, 4, 'cancelled', 0, '')]:
    insert('deliveries', digest_id=digest, subscriber_id=id, status=status, attempts=attempts,
           reply=reply, updated_at='2026-11-20T00:00:00Z')
if n >= 4:
    insert('forgotten', hash='ab' * 32, forgotten_at='2026-03-01T00:00:00Z')
if n >= 5:
    row = dict(subscriber_id=2, expires=1795737600, name='Bobby')
    if n >= 8:
        row['asked'] = '2026-11-24T00:00:00Z'
    insert('signup_names', **row)
if n >= 7:
    insert('subscriber_aliases', key='aa11', subscriber_id=1)
if n >= 9:
    insert('bounces', identity='<bounce-1@mx.example.org>', subscriber_id=4, digest_id=1,
           kind='hard', status='5.1.1', detail='no such user', recipient='dee@example.org',
           received_at='2026-11-02T00:00:00Z', trusted=1)
if n >= 10:
    insert('welcomes', subscriber_id=1, status='sent', attempts=1, reply='250 ok',
           created_at='2026-01-01T00:00:00Z', updated_at='2026-01-01T00:00:00Z')
db.execute(f'PRAGMA user_version = {n}')
db.commit()
"#;

/// The rows of the upgraded store that no command shows, one per line.
const STORE_ROWS: &str = r#"import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
print('version', db.execute('PRAGMA user_version').fetchone()[0])
for table, columns in [('deliveries', 'digest_id, subscriber_id, status, attempts, reply'),
                       ('announced', 'permalink, digest_id'), ('forgotten', 'hash'),
                       ('signup_names', 'subscriber_id, expires, name'),
                       ('subscriber_aliases', 'key, subscriber_id'),
                       ('bounces', 'identity, subscriber_id, digest_id, kind'),
                       ('welcomes', 'subscriber_id, status')]:
    for row in db.execute(f'SELECT {columns} FROM {table} ORDER BY {columns}'):
        print(table, *row)
"#;

/// A store from each schema this program ever wrote, the first one (0.1)
/// included, holding subscribers of every status, digests sent, failed,
/// pending and cancelled, announced posts, the secret, and whatever else
/// that schema had: opened by this build, every row keeps its meaning. The
/// list and the export show each subscriber as they were (the rows from
/// before keys with their id as key), the report each digest's counts,
/// `send` resumes the unfinished digest for exactly the two readers it was
/// pending for, with the stored secret, and finds no post new.
#[test]
fn a_store_from_every_earlier_schema_upgrades_with_every_row_intact() {
    let steps = newsletter::store::MIGRATIONS;
    assert_eq!(steps.len(), 11, "a new schema step: add its rows here");
    let site = Site::with_mail().create();
    let steps_file = site.outside().join("steps.json");
    std::fs::write(&steps_file, serde_json::to_string(&steps).unwrap()).unwrap();
    let db = site.path("newsletter.db");
    for version in 1..=steps.len() {
        let _ = std::fs::remove_file(&db);
        let _ = std::fs::remove_dir_all(site.path("outbox"));
        let mut command = std::process::Command::new(python());
        command
            .args(["-c", OLD_STORE])
            .arg(&db)
            .arg(&steps_file)
            .arg(version.to_string());
        run(&mut command).success();
        let what = format!("a store at schema {version}");
        let key = |id: u32| {
            if version >= 4 {
                format!("{id}f{id}e")
            } else {
                id.to_string()
            }
        };

        let mut people = vec![
            (1, "ann", "Ann", "active"),
            (2, "bob", "Bob", "pending"),
            (3, "cy", "Cy", "unsubscribed"),
            (4, "dee", "Dee", "bounced"),
            (5, "eve", "Eve", "active"),
        ];
        if version >= 9 {
            people.push((6, "fay", "Fay", "complained"));
        }
        let list: String = people
            .iter()
            .map(|(id, who, name, status)| {
                format!("{who}@example.org\t{name}\t{status}\t2026-01-0{id}T00:00:00Z\n")
            })
            .collect();
        let listed = run(&mut site.newsletter(["subscribers", "list"])).success();
        assert_eq!(listed.stdout, list, "{what}: subscribers list");
        let export: String = people
            .iter()
            .map(|(id, who, name, status)| {
                format!(
                    "{who}@example.org,{name},{status},2026-01-0{id}T00:00:00Z,{},\n",
                    key(*id)
                )
            })
            .collect();
        let exported = run(&mut site.newsletter(["subscribers", "export"])).success();
        assert_eq!(
            exported.stdout,
            format!("email,name,status,created_at,key,topics\n{export}"),
            "{what}: subscribers export"
        );
        let hard = if version >= 9 { 1 } else { 0 };
        let report = format!(
            "digest\tdate\trecipients\tsent\tfailed\tpending\tbounced (hard)\tbounced (soft)\t\
             complaints\tunsubscribes\tsubject\n\
             2\t2026-11-20\t3\t0\t0\t2\t0\t0\t0\t0\tSecond digest\n\
             1\t2026-11-01\t4\t3\t1\t0\t{hard}\t0\t0\t0\tFirst digest\n"
        );
        let digests = run(&mut site.newsletter(["digests"])).success();
        assert_eq!(digests.stdout, report, "{what}: digests");
        let bounce = if version >= 9 {
            "hard\tdee@example.org\t5.1.1 no such user\n"
        } else {
            ""
        };
        let first = run(&mut site.newsletter(["digests", "show", "1"])).success();
        assert_eq!(
            first.stdout,
            format!(
                "failed\tdee@example.org\t550 5.1.1 no such user\n{bounce}\
                 sent\tann@example.org\t250 ok\n\
                 sent\tcy@example.org\t250 ok\n\
                 sent\teve@example.org\t250 ok\n"
            ),
            "{what}: digests show 1"
        );

        // The stored secret signs (no NEWSLETTER_SECRET given).
        let sent = run(&mut site.newsletter(["send", "--now", NOW])).success();
        assert!(
            sent.stdout
                .contains("digest 2 \"Second digest\": 2 sent, 0 failed, 0 pending, 1 cancelled"),
            "{what}: {sent}"
        );
        let mut mails: Vec<common::smtp::Mail> = common::smtp::eml_files(&site.path("outbox"))
            .iter()
            .map(|f| common::smtp::mail_file(f))
            .collect();
        mails.sort_by(|a, b| a.header("To").cmp(b.header("To")));
        let to: Vec<&str> = mails.iter().map(|m| m.header("To")).collect();
        assert_eq!(
            to,
            ["Ann <ann@example.org>", "Eve <eve@example.org>"],
            "{what}"
        );
        for (mail, id) in mails.iter().zip([1, 5]) {
            assert_eq!(mail.header("Subject"), "Second digest", "{what}");
            assert!(
                mail.part("text/plain").contains("Second digest, resumed"),
                "{what}"
            );
            let token = hmac_token(
                "hex:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
                &key(id),
            );
            assert!(
                mail.header("List-Unsubscribe")
                    .contains(&format!("/unsubscribe/{token}>")),
                "{what}: not signed with the stored secret for key {}: {}",
                key(id),
                mail.header("List-Unsubscribe")
            );
        }
        let again = run(&mut site.newsletter(["send", "--now", NOW])).success();
        assert!(again.stdout.contains("nothing to send"), "{what}: {again}");

        let mut rows = vec![
            format!("version {}", steps.len()),
            "deliveries 1 1 sent 1 250 ok".into(),
            "deliveries 1 3 sent 1 250 ok".into(),
            "deliveries 1 4 failed 3 550 5.1.1 no such user".into(),
            "deliveries 1 5 sent 2 250 ok".into(),
            "deliveries 2 1 sent 1 written to outbox/".into(),
            "deliveries 2 4 cancelled 0 ".into(),
            "deliveries 2 5 sent 3 written to outbox/".into(),
        ];
        for path in [
            "2020/01/02/jekyll-date",
            "2021/03/04/zola-post",
            "2022/02/02/nested-markdown",
            "2023/05/05/summary-key",
            "2024/01/15/plain-yaml",
        ] {
            rows.push(format!("announced /posts/{path}/ 1"));
        }
        if version >= 4 {
            rows.push(format!("forgotten {}", "ab".repeat(32)));
        }
        if version >= 5 {
            rows.push("signup_names 2 1795737600 Bobby".into());
        }
        if version >= 7 {
            rows.push("subscriber_aliases aa11 1".into());
        }
        if version >= 9 {
            rows.push("bounces <bounce-1@mx.example.org> 4 1 hard".into());
        }
        if version >= 10 {
            rows.push("welcomes 1 sent".into());
        }
        let stored = sql(&db, STORE_ROWS);
        let stored: Vec<String> = stored
            .lines()
            .map(|l| match l.find("written to outbox/") {
                Some(at) => l[..at + "written to outbox/".len()].to_string(),
                None => l.to_string(),
            })
            .collect();
        assert_eq!(stored, rows, "{what}: the rows after the upgrade");
    }
}

/// An unsubscribe token for `key` under `secret` (`hex:` and the bytes),
/// computed with Python's `hmac`.
fn hmac_token(secret: &str, key: &str) -> String {
    let out = std::process::Command::new(python())
        .args([
            "-c",
            "import hmac, hashlib, sys\n\
             secret = bytes.fromhex(sys.argv[1].removeprefix('hex:'))\n\
             mac = hmac.new(secret, f'unsubscribe:{sys.argv[2]}:0'.encode(), hashlib.sha256)\n\
             print(f'{sys.argv[2]}.0.{mac.hexdigest()}')",
            secret,
            key,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}
