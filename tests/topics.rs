//! Topics: readers choose what they get, and each reader's digest carries
//! only the posts of their topics. Every message a real SMTP server
//! (aiosmtpd) receives is parsed with Python's `email`, and the posts in
//! it are compared with what that reader chose; the choices come in
//! through `subscribers import` with a `topics` column, as a list moved
//! from another tool would.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::mail_site::addresses;
use common::smtp::{Mail, SmtpServer};
use common::{NOW, Run, Site, run};

const SECRET: &str = "topics-test-secret";
const BASE: &str = "https://blog.example.org";
const TOPICS: [&str; 5] = ["releases", "events", "docs", "security", "community"];
/// Posts shown whole in a digest; the rest are listed as "Also new".
const MAX_POSTS: usize = 3;

/// A post of the test: its slug, its date (newest last here), the topic
/// indexes its tags put it in (none: every reader gets it) and whether it
/// is a letter.
struct TestPost {
    slug: &'static str,
    day: u32,
    topics: &'static [usize],
    letter: bool,
}

impl TestPost {
    fn url(&self) -> String {
        format!("{BASE}/posts/2026/11/{:02}/{}/", self.day, self.slug)
    }

    fn title(&self) -> String {
        format!("Post {}", self.slug)
    }
}

/// A small deterministic generator, so a failure can be replayed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// What each reader chose: `None` for those who never chose (every topic).
fn random_choices(n: usize, seed: u64) -> Vec<Option<BTreeSet<usize>>> {
    let mut rng = Lcg(seed);
    (0..n)
        .map(|_| {
            if rng.next().is_multiple_of(6) {
                return None;
            }
            let mut set = BTreeSet::new();
            while set.is_empty() {
                for t in 0..TOPICS.len() {
                    if rng.next().is_multiple_of(3) {
                        set.insert(t);
                    }
                }
            }
            Some(set)
        })
        .collect()
}

/// The site: the fixture blog without its posts, five topics, and the
/// readers imported with their choices.
fn site(server: &SmtpServer, smtp: &str, choices: &[Option<BTreeSet<usize>>]) -> Site {
    let site = Site::with_mail()
        .without_posts()
        .first_run_posts(100)
        .digest(&format!("max_posts = {MAX_POSTS}"))
        .smtp(server.config(smtp))
        .create();
    let mut topics = String::new();
    for (i, key) in TOPICS.iter().enumerate() {
        // Each topic's tags: its own, and a second spelling.
        topics.push_str(&format!(
            "\n[[topics]]\nkey = \"{key}\"\nlabel = \"Topic {i}\"\ntags = [\"tag-{i}\", \"Tag {i}\"]\n"
        ));
    }
    site.append_config(&topics);
    let mut csv = String::from("email,name,topics\n");
    for (email, choice) in addresses(choices.len()).iter().zip(choices) {
        let keys: Vec<&str> = choice.iter().flatten().map(|&t| TOPICS[t]).collect();
        csv.push_str(&format!("{email},,\"{}\"\n", keys.join(",")));
    }
    site.write("readers.csv", csv);
    run(&mut site.newsletter(["subscribers", "import", "readers.csv"])).success();
    site
}

fn write_posts(site: &Site, posts: &[TestPost]) {
    for post in posts {
        let tags: Vec<String> = post
            .topics
            .iter()
            // Both spellings of the topics' tags, and one in no topic.
            .map(|&t| match post.day % 2 {
                0 => format!("tag-{t}"),
                _ => format!("\"Tag {t}\""),
            })
            .chain(["golang".to_string()])
            .collect();
        let email = if post.letter { "\nemail: letter" } else { "" };
        site.write(
            &format!("content/2026-11-{:02}-{}.md", post.day, post.slug),
            format!(
                "---\ntitle: {}\ncreated_at: 2026-11-{:02}T10:00:00Z\ntags: [{}]{email}\n---\n\n\
                 The excerpt of {}.\n\n<!-- more -->\n\nThe rest.\n",
                post.title(),
                post.day,
                tags.join(", "),
                post.slug
            ),
        );
    }
}

/// The one recipient of a message, as the SMTP server was told.
fn to(mail: &Mail) -> &str {
    assert_eq!(mail.envelope.rcpt_tos.len(), 1, "{}", mail.file);
    &mail.envelope.rcpt_tos[0]
}

fn send(site: &Site) -> Run {
    run(site
        .newsletter(["send", "--now", NOW])
        .env("NEWSLETTER_SECRET", SECRET))
}

/// The posts a reader with `choice` gets of `posts`, newest first.
fn expected<'p>(choice: &Option<BTreeSet<usize>>, posts: &'p [TestPost]) -> Vec<&'p TestPost> {
    let mut theirs: Vec<&TestPost> = posts
        .iter()
        .filter(|p| {
            p.topics.is_empty()
                || choice
                    .as_ref()
                    .is_none_or(|c| p.topics.iter().any(|t| c.contains(t)))
        })
        .collect();
    theirs.sort_by_key(|p| std::cmp::Reverse(p.day));
    theirs
}

/// What a digest message shows of the posts, from its plain-text part:
/// the URLs of the posts shown whole ("Read more: URL"), and of those
/// listed as "Also new" ("  DATE: URL"), in order.
fn posts_in(mail: &Mail) -> (Vec<String>, Vec<String>) {
    let text = mail.part("text/plain");
    let mut whole = Vec::new();
    let mut listed = Vec::new();
    for line in text.lines() {
        if let Some(url) = line.strip_prefix("Read more: ") {
            whole.push(url.to_string());
        } else if line.starts_with("  ") && line.contains(": https://") {
            listed.push(line.rsplit(": ").next().unwrap().to_string());
        }
    }
    (whole, listed)
}

fn digest_posts() -> Vec<TestPost> {
    let post = |slug, day, topics, letter| TestPost {
        slug,
        day,
        topics,
        letter,
    };
    vec![
        post("r1", 10, &[0], false),
        post("e1", 11, &[1], false),
        post("d1", 12, &[2], false),
        post("re", 13, &[0, 1], false),
        post("s1", 14, &[3], false),
        post("e2", 15, &[1], false),
        post("r2", 16, &[0], false),
        // Topic 4 (community) has only the letter.
        post("c-letter", 17, &[4], true),
    ]
}

/// Checks every message against what its reader chose: the digest has
/// exactly their posts, their first MAX_POSTS whole and the rest listed,
/// its subject names their first and counts the rest; the letter reaches
/// exactly the readers of its topic.
fn check_mail(
    messages: &[&Mail],
    readers: &[String],
    choices: &[Option<BTreeSet<usize>>],
    posts: &[TestPost],
) {
    let (letters, digest): (Vec<&TestPost>, Vec<&TestPost>) = posts.iter().partition(|p| p.letter);
    let digest_posts: Vec<TestPost> = digest
        .iter()
        .map(|p| TestPost {
            slug: p.slug,
            day: p.day,
            topics: p.topics,
            letter: false,
        })
        .collect();
    let mut by_reader: BTreeMap<&str, Vec<&Mail>> = BTreeMap::new();
    for mail in messages {
        by_reader.entry(to(mail)).or_default().push(mail);
    }
    for (reader, choice) in readers.iter().zip(choices) {
        let got = by_reader.remove(reader.as_str()).unwrap_or_default();
        let letter_expected = letters
            .iter()
            .filter(|l| {
                choice
                    .as_ref()
                    .is_none_or(|c| l.topics.iter().any(|t| c.contains(t)))
            })
            .count();
        let theirs = expected(choice, &digest_posts);
        let digests: Vec<&Mail> = got
            .iter()
            .copied()
            .filter(|m| !m.header("Subject").starts_with("Post c-letter"))
            .collect();
        assert_eq!(
            got.len() - digests.len(),
            letter_expected,
            "{reader} ({choice:?}): letters"
        );
        if theirs.is_empty() {
            assert!(digests.is_empty(), "{reader} got an empty digest");
            continue;
        }
        assert_eq!(digests.len(), 1, "{reader} ({choice:?}): digests");
        let (whole, listed) = posts_in(digests[0]);
        let want: Vec<String> = theirs.iter().map(|p| p.url()).collect();
        let cut = MAX_POSTS.min(want.len());
        assert_eq!(
            whole,
            want[..cut],
            "{reader} ({choice:?}): posts shown whole"
        );
        assert_eq!(listed, want[cut..], "{reader} ({choice:?}): posts listed");
        let subject = digests[0].header("Subject");
        let first = format!("Fixture Blog: {}", theirs[0].title());
        let wanted = match theirs.len() {
            1 => first,
            n => format!("{first} and {} more", n - 1),
        };
        assert_eq!(subject, wanted, "{reader}");
        // The HTML part carries the same posts: no card of another topic.
        let html_posts: BTreeSet<&String> = digests[0]
            .html_links
            .iter()
            .filter(|l| l.starts_with(&format!("{BASE}/posts/")))
            .collect();
        assert_eq!(
            html_posts,
            want.iter().collect::<BTreeSet<_>>(),
            "{reader}: the HTML part"
        );
    }
    assert!(
        by_reader.is_empty(),
        "mail to no reader: {:?}",
        by_reader.keys()
    );
}

#[test]
fn each_reader_gets_exactly_the_posts_of_their_topics() {
    let choices = random_choices(300, 14);
    let readers = addresses(choices.len());
    let server = SmtpServer::start_in_memory(&[]);
    let site = site(&server, "connections = 4", &choices);
    let posts = digest_posts();
    write_posts(&site, &posts);

    // The dry run lists the readers of the letter (it goes first) with
    // its subject, and nobody else.
    let dry = run(site
        .newsletter(["send", "--dry-run", "--now", NOW])
        .env("NEWSLETTER_SECRET", SECRET))
    .success();
    let listed: Vec<&str> = dry
        .stdout
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(email, subject)| {
            assert_eq!(subject, "Post c-letter", "{email}");
            email
        })
        .collect();
    let letter_readers: Vec<&str> = readers
        .iter()
        .zip(&choices)
        .filter(|(_, c)| c.as_ref().is_none_or(|c| c.contains(&4)))
        .map(|(r, _)| r.as_str())
        .collect();
    assert_eq!(listed, letter_readers, "{dry}");

    let out = send(&site).success();
    let messages = server.messages();
    check_mail(
        &messages.iter().collect::<Vec<_>>(),
        &readers,
        &choices,
        &posts,
    );
    // The letter of topic 4: readers without it are skipped, and counted.
    let without_4 = choices
        .iter()
        .filter(|c| c.as_ref().is_some_and(|c| !c.contains(&4)))
        .count();
    assert!(without_4 > 0 && without_4 < choices.len());
    assert!(
        out.stdout.contains(&format!(
            "{without_4} skipped (nothing new in their topics)"
        )),
        "{out}"
    );

    // A second send sends nothing.
    let again = send(&site).success();
    assert_eq!(server.messages().len(), messages.len(), "{again}");

    // A post of topic 3 only: readers of other topics get no mail at all.
    let later = [TestPost {
        slug: "s2",
        day: 20,
        topics: &[3],
        letter: false,
    }];
    write_posts(&site, &later);
    let out = send(&site).success();
    let all = server.messages();
    let new = &all[messages.len()..];
    let want: BTreeSet<&str> = readers
        .iter()
        .zip(&choices)
        .filter(|(_, c)| c.as_ref().is_none_or(|c| c.contains(&3)))
        .map(|(r, _)| r.as_str())
        .collect();
    let got: BTreeSet<&str> = new.iter().map(to).collect();
    assert_eq!(got, want, "{out}");
    for mail in new {
        assert_eq!(posts_in(mail).0, [later[0].url()]);
    }
}

#[test]
fn a_killed_send_resumes_with_what_each_reader_was_to_get() {
    let choices = random_choices(300, 7);
    let readers = addresses(choices.len());
    let connections = 2;
    let server = SmtpServer::start_in_memory(&["--delay", "0.01"]);
    let site = site(&server, &format!("connections = {connections}"), &choices);
    let posts: Vec<TestPost> = digest_posts().into_iter().filter(|p| !p.letter).collect();
    write_posts(&site, &posts);

    let mut child = site.spawn_send(SECRET);
    server.wait_for(40, Duration::from_secs(60));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = server.messages().len();
    assert!(
        before < readers.len(),
        "the run finished before it was killed"
    );

    // What each reader gets was fixed when the digest was made: a change of
    // topics now (50 readers moved to topic 0 only) changes nothing in it.
    for email in readers.iter().take(50) {
        run(&mut site.newsletter(["subscribers", "topics", email, "--set", "releases"])).success();
    }

    let out = send(&site).success();
    assert!(out.stdout.contains("0 failed, 0 pending"), "{out}");
    let messages = server.messages();
    let mut seen: BTreeMap<&str, &Mail> = BTreeMap::new();
    let mut unique = Vec::new();
    let mut duplicates = 0;
    for mail in &messages {
        match seen.get(to(mail)) {
            Some(first) => {
                duplicates += 1;
                assert_eq!(posts_in(first), posts_in(mail), "a resent copy differs");
            }
            None => {
                seen.insert(to(mail), mail);
                unique.push(mail);
            }
        }
    }
    assert!(
        duplicates <= connections,
        "{duplicates} duplicates, more than the {connections} messages that can be in flight"
    );
    check_mail(&unique, &readers, &choices, &posts);
}
