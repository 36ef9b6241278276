//! Broken posts and broken configs: `check` and `build` name the file, the
//! line and the fix, exit non-zero, and leave the feeds already written alone.

mod common;

use common::{Run, Site, problem_line, run};

/// A bad post and what a user should be told about it.
struct Bad<'a> {
    /// Path inside the site, e.g. `content/x.md`.
    file: &'a str,
    contents: &'a [u8],
    /// The line a problem is reported on.
    line: usize,
    /// The message names the problem: each of these is in it.
    names: &'a [&'a str],
    /// The message says how to fix it: at least one of these is in it.
    fixes: &'a [&'a str],
}

/// Builds the fixture blog, adds the bad post, then checks and builds again:
/// both must fail with `file:line: message`, and the feeds must not change.
fn assert_reported(bad: Bad<'_>) -> (Run, Run) {
    let site = Site::fixture("blog");
    site.build();
    site.check().success();
    let before = site.snapshot("public");
    assert_fixture_feeds(&before);

    site.write(bad.file, bad.contents);
    let check = site.check().exit_code(1);
    let build = run(&mut site.newsletter(["build", "--now", common::NOW])).failure();

    assert_eq!(
        problem_line(&check.stdout, bad.file, bad.line),
        problem_line(&build.stderr, bad.file, bad.line),
        "build and check should report the problem alike"
    );
    for (what, run, stream) in [
        ("check", &check, &check.stdout),
        ("build", &build, &build.stderr),
    ] {
        let line = problem_line(stream, bad.file, bad.line);
        let message = &line[line.find(&format!(":{}: ", bad.line)).unwrap()..];
        for name in bad.names {
            assert!(
                message.contains(name),
                "{what}: the message does not mention {name:?}\n{run}"
            );
        }
        assert!(
            bad.fixes.iter().any(|fix| message.contains(fix)),
            "{what}: the message says nothing of how to fix it (looked for {:?})\n{run}",
            bad.fixes
        );
    }
    assert_eq!(
        site.snapshot("public"),
        before,
        "the failed build changed the feeds"
    );
    (check, build)
}

/// Panics unless `files` (the fixture's `public` folder) holds its three
/// feeds with its five published posts: what a failed build must keep.
#[track_caller]
fn assert_fixture_feeds(files: &std::collections::BTreeMap<std::path::PathBuf, Vec<u8>>) {
    let text =
        |name: &str| String::from_utf8_lossy(&files[std::path::Path::new(name)]).into_owned();
    assert_eq!(text("atom.xml").matches("<entry>").count(), 5);
    assert_eq!(text("rss.xml").matches("<item>").count(), 5);
    assert_eq!(text("feed.json").matches("\"date_published\"").count(), 5);
}

#[test]
fn good_content_checks_clean() {
    let site = Site::fixture("blog");
    let check = site.check().success();
    assert!(!check.stdout.contains(".md:"), "{check}");
}

#[test]
fn front_matter_that_is_never_closed() {
    assert_reported(Bad {
        file: "content/2025-01-01-unclosed.md",
        contents: b"---\ntitle: Never closed\ncreated_at: 2025-01-01\n\nBody text.\n",
        line: 1,
        names: &["never closed"],
        fixes: &["add a `---`", "`---` line"],
    });
}

/// A slug of dots would make a permalink that leaves its folder
/// (`/blog/2025/03/01/../` is `/blog/2025/03/`): the feed would link the
/// post to another page, and no permalink check could see the clash.
#[test]
fn a_slug_of_dots() {
    for slug in ["..", "."] {
        assert_reported(Bad {
            file: "content/2025-03-01-dots.md",
            contents: format!(
                "---\ntitle: Dots\ncreated_at: 2025-03-01\nslug: \"{slug}\"\n---\n\nBody.\n"
            )
            .as_bytes(),
            line: 1,
            names: &[&format!("`{slug}`")],
            fixes: &["`slug:`"],
        });
    }
}

#[test]
fn a_yaml_syntax_error() {
    assert_reported(Bad {
        file: "content/2025-01-02-colon.md",
        contents: b"---\ntitle: Monitoring: a primer\ncreated_at: 2025-01-02\n---\n\nBody.\n",
        line: 2,
        names: &["YAML"],
        fixes: &["quote"],
    });
}

#[test]
fn a_toml_syntax_error() {
    assert_reported(Bad {
        file: "content/2025-01-02-toml.md",
        contents:
            b"+++\ntitle = \"Fine\"\ndate = 2025-01-02\nauthor = Unquoted Name\n+++\n\nBody.\n",
        line: 4,
        names: &["TOML"],
        fixes: &["quote"],
    });
}

#[test]
fn an_invalid_date() {
    let (check, _) = assert_reported(Bad {
        file: "content/2025-02-28-bad-date.md",
        contents: b"---\ntitle: Bad date\nkind: article\ncreated_at: 2025-02-30\n---\n\nBody.\n",
        line: 4,
        names: &["created_at", "2025-02-30"],
        fixes: &["write", "use", "YYYY-MM-DD"],
    });
    // The fix shows a date that is one.
    let line = problem_line(&check.stdout, "content/2025-02-28-bad-date.md", 4);
    assert!(
        has_valid_example_date(line),
        "no example of a valid date in {line:?}"
    );
}

/// True when `text` shows a real YYYY-MM-DD date, as an example to follow.
fn has_valid_example_date(text: &str) -> bool {
    (0..text.len()).any(|i| text.get(i..i + 10).is_some_and(is_real_date))
}

fn is_real_date(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    let [y, m, d] = parts[..] else {
        return false;
    };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return false;
    }
    let (Ok(y), Ok(m), Ok(d)) = (y.parse::<u32>(), m.parse::<u32>(), d.parse::<u32>()) else {
        return false;
    };
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let days = match m {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return false,
    };
    (1..=days).contains(&d)
}

#[test]
fn a_missing_title() {
    assert_reported(Bad {
        file: "content/2025-01-03-no-title.md",
        contents: b"---\ncreated_at: 2025-01-03\nauthor_name: Someone\n---\n\nBody.\n",
        line: 1,
        names: &["title"],
        fixes: &["add"],
    });
}

#[test]
fn a_file_that_is_not_utf8() {
    assert_reported(Bad {
        file: "content/2025-01-04-latin1.md",
        // "Café" in Latin-1, on line 6.
        contents: b"---\ntitle: Latin-1\ncreated_at: 2025-01-04\n---\n\nCaf\xe9 au lait.\n",
        line: 6,
        names: &["UTF-8"],
        fixes: &["save", "convert", "re-encode"],
    });
}

#[test]
fn two_posts_with_the_same_permalink() {
    let site = Site::fixture("blog");
    site.build();
    let before = site.snapshot("public");
    assert_fixture_feeds(&before);
    // Same date and slug as content/2024-01-15-plain-yaml.md.
    site.write(
        "content/archive/2024-01-15-plain-yaml.md",
        "---\ntitle: Same permalink\ncreated_at: 2024-01-15\n---\n\nBody.\n",
    );
    let first = "content/2024-01-15-plain-yaml.md";
    let second = "content/archive/2024-01-15-plain-yaml.md";
    let check = site.check().exit_code(1);
    let build = run(&mut site.newsletter(["build", "--now", common::NOW])).failure();
    for (what, run, stream) in [
        ("check", &check, &check.stdout),
        ("build", &build, &build.stderr),
    ] {
        // Reported at either file, naming the other one and the permalink.
        let line = stream
            .lines()
            .find(|l| {
                l.starts_with(&format!("{first}:1: ")) && l.contains(second)
                    || l.starts_with(&format!("{second}:1: ")) && l.contains(first)
            })
            .unwrap_or_else(|| panic!("{what}: no line naming both files\n{run}"));
        assert!(
            line.contains("/posts/2024/01/15/plain-yaml/"),
            "{what}: {line}"
        );
        assert!(line.contains("slug"), "{what}: no fix suggested: {line}");
    }
    assert_eq!(site.snapshot("public"), before);
}

#[test]
fn every_bad_post_is_reported_in_one_run() {
    let site = Site::fixture("blog");
    site.write("content/a.md", "---\ntitle: A\ncreated_at: 2025-01-01\n");
    site.write("content/b.md", "---\ncreated_at: 2025-01-01\n---\n");
    site.write("content/c.md", "---\ntitle: C\ndate: soon\n---\n");
    let check = site.check().exit_code(1);
    problem_line(&check.stdout, "content/a.md", 1);
    problem_line(&check.stdout, "content/b.md", 1);
    problem_line(&check.stdout, "content/c.md", 3);
}

/// The closing count names the files read: the 7 posts of the fixture and
/// one more whose permalink another already has (both read fine).
#[test]
fn check_counts_each_post_file_once() {
    let site = Site::fixture("blog");
    site.write(
        "content/archive/2024-01-15-plain-yaml.md",
        "---\ntitle: Same permalink\ncreated_at: 2024-01-15\n---\n\nBody.\n",
    );
    let check = site.check().exit_code(1);
    assert!(
        check.stderr.contains("in 8 post files read"),
        "8 post files were read\n{check}"
    );
}

fn config_error(config: &str, names: &[&str]) {
    let site = Site::fixture("blog");
    site.write("config.toml", config);
    for args in [vec!["check"], vec!["build", "--now", common::NOW]] {
        let out = run(&mut site.newsletter(&args)).failure();
        for name in names {
            assert!(
                out.stderr.contains(name),
                "{args:?}: {name:?} not named\n{out}"
            );
        }
        assert!(
            out.stderr.contains("config.toml"),
            "{args:?}: the config file is not named\n{out}"
        );
    }
    assert!(!site.path("public").exists(), "a feed was written");
}

const GOOD_CONFIG: &str = "[site]\ntitle = \"T\"\nbase_url = \"https://blog.example.org\"\n\n\
                           [content]\ndir = \"content\"\n\n[feeds]\nlimit = 0\n";

#[test]
fn the_good_config_used_below_works() {
    let site = Site::fixture("blog");
    site.write("config.toml", GOOD_CONFIG);
    site.build();
    assert!(site.path("public/atom.xml").is_file());
}

#[test]
fn an_unknown_config_key_is_named() {
    config_error(&format!("{GOOD_CONFIG}limt = 3\n"), &["limt"]);
}

#[test]
fn a_missing_base_url_is_named() {
    config_error(
        &GOOD_CONFIG.replace("base_url = \"https://blog.example.org\"\n", ""),
        &["site.base_url"],
    );
}

#[test]
fn a_relative_base_url_is_named() {
    config_error(
        &GOOD_CONFIG.replace("https://blog.example.org", "/blog"),
        &["site.base_url", "/blog"],
    );
}

#[test]
fn a_missing_config_file_is_named_once() {
    let site = Site::empty();
    let out = run(&mut site.newsletter(["check"])).failure();
    assert!(out.stderr.contains("config.toml"), "{out}");
    let first_line = out.stderr.lines().next().unwrap_or_default();
    let reason = "No such file or directory";
    assert_eq!(
        first_line.matches(reason).count(),
        1,
        "the reason is said more than once: {first_line:?}"
    );
}

/// A `--now` that is no time is a usage error (exit 2) that shows how to
/// write one.
#[test]
fn a_bad_now_says_how_to_write_it() {
    let site = Site::fixture("blog");
    let out = run(&mut site.newsletter(["build", "--now", "yesterday"])).usage_error();
    assert!(out.stderr.contains("yesterday"), "{out}");
    assert!(has_valid_example_date(&out.stderr), "no example\n{out}");
    assert!(!site.path("public").exists());
}

/// A command line the program cannot read exits 2, as the README says,
/// with clap's message naming what is wrong, and does nothing: no feed
/// written, no store made.
#[test]
fn a_usage_error_exits_2_and_names_the_problem() {
    let site = Site::fixture("blog");
    for (args, env, names) in [
        (
            &["frobnicate"][..],
            None,
            &["unrecognized subcommand", "'frobnicate'"][..],
        ),
        (
            &["build", "--fast"],
            None,
            &["unexpected argument", "'--fast'"],
        ),
        (
            &["subscribers", "add"],
            None,
            &["required arguments were not provided", "<EMAIL>"],
        ),
        (
            &["build", "--output"],
            None,
            &["a value is required for '--output <DIR>'"],
        ),
        (
            &["build", "--now", "2026-13-01T00:00:00Z"],
            None,
            &["invalid value '2026-13-01T00:00:00Z' for '--now <TIMESTAMP>'"],
        ),
        (
            &["build"],
            Some("tomorrow"),
            &["invalid value 'tomorrow' for '--now <TIMESTAMP>'"],
        ),
        (
            &["serve", "--listen", "localhost"],
            None,
            &["invalid value 'localhost' for '--listen <ADDR>'"],
        ),
        (
            &["subscribers", "list", "--status", "gone"],
            None,
            &[
                "invalid value 'gone' for '--status <STATUS>'",
                "unknown status",
            ],
        ),
        (
            &["digests", "show", "seven"],
            None,
            &["invalid value 'seven' for '<ID>'"],
        ),
        (
            &["send", "--dry-run", "--to", "ed@example.net"],
            None,
            &["'--dry-run' cannot be used with '--to <EMAIL>'"],
        ),
    ] {
        let mut command = site.newsletter(args);
        if let Some(now) = env {
            command.env("NEWSLETTER_NOW", now);
        }
        let out = run(&mut command).usage_error();
        for name in names {
            assert!(
                out.stderr.contains(name),
                "{args:?}: {name:?} not named\n{out}"
            );
        }
        assert!(out.stdout.is_empty(), "{args:?}\n{out}");
    }
    assert!(!site.path("public").exists(), "a feed was written");
    assert!(!site.path("newsletter.db").exists(), "a store was made");
}

#[test]
fn every_number_and_duration_out_of_range_is_named_at_load() {
    let smtp = "\n[smtp]\nhost = \"127.0.0.1\"\nsecurity = \"none\"\n";
    for (extra, key) in [
        (
            "[server]\nconfirm_ttl = \"1000000years\"\n",
            "server.confirm_ttl",
        ),
        (
            "[server]\nrequest_timeout = \"200years\"\n",
            "server.request_timeout",
        ),
        (
            "[server]\nsignups_per_email = 4000000000\n",
            "server.signups_per_email",
        ),
        (
            "[schedule]\ncatch_up = \"9999999years\"\n",
            "schedule.catch_up",
        ),
        ("[digest]\nmax_posts = 100000000\n", "digest.max_posts"),
        (&format!("{smtp}rate = 1e-20\n"), "smtp.rate"),
        (&format!("{smtp}rate = 1e300\n"), "smtp.rate"),
        (
            &format!("{smtp}connections = 100000000\n"),
            "smtp.connections",
        ),
        (&format!("{smtp}timeout = 0\n"), "smtp.timeout"),
        (
            &format!("{smtp}timeout = 18446744073709551615\n"),
            "smtp.timeout",
        ),
    ] {
        let site = Site::fixture("blog");
        site.write("config.toml", format!("{GOOD_CONFIG}{extra}"));
        for args in [
            vec!["check"],
            vec!["send", "--now", common::NOW],
            vec!["serve", "--listen", "127.0.0.1:0"],
        ] {
            let out = run(&mut site.newsletter(&args)).exit_code(1);
            assert!(
                out.stderr.contains(&format!("`{key}`")) && out.stderr.contains("config.toml"),
                "{args:?} with {extra:?}: {out}"
            );
        }
        assert!(
            !site.path("newsletter.db").exists(),
            "{extra:?}: a store was made"
        );
    }
}

#[test]
fn a_base_url_host_that_cannot_name_mail_is_refused() {
    for (base, key) in [
        ("https://a\\\"b.org", "site.base_url"),
        ("https://a,b;c.org", "site.base_url"),
        ("https://[::1]/", "email.from"),
    ] {
        let site = Site::fixture("blog");
        site.write(
            "config.toml",
            GOOD_CONFIG.replace("https://blog.example.org", base),
        );
        let out = run(&mut site.newsletter(["check"])).exit_code(1);
        assert!(out.stderr.contains(&format!("`{key}`")), "{base}: {out}");
    }
}

#[test]
fn a_permalink_placeholder_this_tool_does_not_know_is_named() {
    // Jekyll's default pattern, and a typo: each post's URL would carry
    // `:categories` or `:yaer` as written, a page that does not exist.
    for (pattern, unknown) in [
        (
            "/:categories/:year/:month/:day/:title:output_ext",
            ":categories",
        ),
        ("/blog/:yaer/:slug/", ":yaer"),
        ("/blog/:years/:slug/", ":years"),
    ] {
        config_error(
            &GOOD_CONFIG.replace(
                "dir = \"content\"\n",
                &format!("dir = \"content\"\npermalink = \"{pattern}\"\n"),
            ),
            &["content.permalink", unknown, ":year, :month"],
        );
    }
    // A post's own permalink (Jekyll's `permalink:`) is held to the same.
    assert_reported(Bad {
        file: "content/2025-03-01-own.md",
        contents: b"---\ntitle: Own\ncreated_at: 2025-03-01\npermalink: /:categories/:title/\n---\n\nBody.\n",
        line: 4,
        names: &[":categories"],
        fixes: &[":year, :month"],
    });
}

/// A duration that is too long is answered with the longest one allowed,
/// written as the config takes it: that value, put in, loads.
#[test]
fn a_duration_too_long_names_the_longest_that_loads() {
    for (section, key, value, most) in [
        ("schedule", "catch_up", "367days", "366days"),
        ("bounces", "soft_window", "400days", "366days"),
        ("server", "confirm_ttl", "31days", "30days"),
        ("server", "request_timeout", "2h", "1h"),
    ] {
        let site = Site::fixture("blog");
        site.write(
            "config.toml",
            format!("{GOOD_CONFIG}[{section}]\n{key} = \"{value}\"\n"),
        );
        let out = site.check().exit_code(1);
        assert!(
            out.stderr.contains(&format!("at most \"{most}\"")),
            "{key} = {value:?}: {out}"
        );
        site.write(
            "config.toml",
            format!("{GOOD_CONFIG}[{section}]\n{key} = \"{most}\"\n"),
        );
        site.check().success();
    }
}
