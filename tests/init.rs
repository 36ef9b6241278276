//! `newsletter init`: a new site from the binary alone, then the commands a
//! new user runs next, as the README's "Start your own site" says.

mod common;

use common::smtp::{SmtpServer, count_eml, mail_file};
use common::{NOW, Site, manifest_dir, newsletter, run};

#[test]
fn a_new_site_builds_previews_and_sends_from_the_binary_alone() {
    let place = Site::empty();
    let made = run(&mut newsletter(
        place.root(),
        ["init", "blog", "--now", NOW],
    ))
    .success();
    assert!(made.stdout.contains("config.toml"), "{made:?}");
    let site = place.root().join("blog");
    let mut files: Vec<String> = walkdir(&site);
    files.sort();
    assert_eq!(
        files,
        ["config.toml", "content/2026-11-25-welcome.md"],
        "init writes the config and one post, nothing else"
    );

    let cli = |args: &[&str]| {
        let mut command = newsletter(&site, args);
        command.env("NEWSLETTER_SECRET", "a-secret-of-16-bytes-or-more");
        run(&mut command)
    };
    cli(&["check"]).success();
    let built = cli(&["build", "--now", NOW]).success();
    assert!(built.stdout.contains("1 published"), "{built:?}");
    let feeds = common::read_feeds(&site.join("public"));
    feeds.assert_clean();
    for (name, feed) in feeds.each() {
        assert_eq!(feed.titles(), ["Welcome to the blog"], "{name}");
    }

    cli(&["subscribers", "add", "ann@example.org"]).success();
    cli(&["preview", "--now", NOW]).success();
    // No [smtp] yet: a trial into outbox/, recorded nowhere.
    let trial = cli(&["send", "--now", NOW]).success();
    assert!(
        trial.stdout.contains("trial") && trial.stdout.contains("nothing was recorded"),
        "{trial:?}"
    );
    let outbox = site.join("outbox");
    assert_eq!(count_eml(&outbox), 1);
    let again = cli(&["send", "--now", NOW]).success();
    assert!(again.stdout.contains("trial"), "{again:?}");
    assert_eq!(count_eml(&outbox), 2, "the trial writes the digest again");
    let eml = std::fs::read_dir(&outbox)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mail = mail_file(&eml);
    assert!(
        mail.header("Subject").contains("Welcome to the blog"),
        "{mail:?}"
    );
    let text = mail.part("text/plain");
    assert!(
        text.contains("Everything above the `more` marker"),
        "{text}"
    );
    assert!(
        !text.contains("The rest of the post appears"),
        "the digest carries the excerpt only: {text}"
    );
    assert!(
        text.contains("https://blog.example.org/blog/2026/11/25/welcome/"),
        "{text}"
    );

    // With an SMTP server configured, the first real send delivers the
    // digest the trials showed: they used nothing up.
    let server = SmtpServer::start(&[]);
    let config = site.join("config.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!("\n{}\n", server.config("")));
    std::fs::write(&config, text).unwrap();
    let sent = cli(&["send", "--now", NOW]).success();
    assert!(sent.stdout.contains("1 sent, 0 failed"), "{sent:?}");
    server.wait_for(1, std::time::Duration::from_secs(10));
    let mails = server.messages();
    assert_eq!(mails.len(), 1);
    assert!(
        mails[0].header("Subject").contains("Welcome to the blog"),
        "{:?}",
        mails[0]
    );
    assert_eq!(count_eml(&outbox), 2, "nothing more in the outbox");
    let done = cli(&["send", "--now", NOW]).success();
    assert!(done.stdout.contains("nothing to send"), "{done:?}");
}

#[test]
fn init_refuses_to_overwrite_and_copies_the_templates_when_asked() {
    let place = Site::empty();
    run(&mut newsletter(place.root(), ["init", "--now", NOW])).success();
    let config = std::fs::read(place.path("config.toml")).unwrap();
    std::fs::write(place.path("config.toml"), b"# mine\n").unwrap();

    let again = run(&mut newsletter(place.root(), ["init", "--now", NOW])).exit_code(1);
    assert!(
        again.stderr.contains("config.toml") && again.stderr.contains("nothing was written"),
        "{again:?}"
    );
    assert_eq!(
        std::fs::read(place.path("config.toml")).unwrap(),
        b"# mine\n"
    );
    // --templates in a site whose config does not load: the config's
    // error, and no template written.
    let broken = run(&mut newsletter(
        place.root(),
        ["init", "--templates", "--now", NOW],
    ))
    .exit_code(1);
    assert!(broken.stderr.contains("config.toml"), "{broken:?}");
    assert!(
        !place.path("templates").exists(),
        "a refused init wrote templates"
    );
    assert!(!config.is_empty());

    let other = Site::empty();
    run(&mut newsletter(
        other.root(),
        ["init", "--templates", "--now", NOW],
    ))
    .success();
    let project = manifest_dir().join("templates");
    for entry in std::fs::read_dir(&project).unwrap() {
        let name = entry.unwrap().file_name();
        assert_eq!(
            std::fs::read(other.root().join("templates").join(&name)).unwrap(),
            std::fs::read(project.join(&name)).unwrap(),
            "{name:?}"
        );
    }
}

/// In a site that has its config, `init --templates` copies only the
/// templates, into the folder the config reads them from, and never over
/// one that is there.
#[test]
fn init_templates_in_a_site_copies_them_where_its_config_reads_them() {
    let place = Site::empty();
    run(&mut newsletter(place.root(), ["init", "--now", NOW])).success();
    let config = std::fs::read_to_string(place.path("config.toml"))
        .unwrap()
        .replace("# templates = \"templates\"", "templates = \"mine\"");
    place.write("config.toml", &config);
    let before = walkdir(place.root());

    let copied = run(&mut newsletter(
        place.root(),
        ["init", "--templates", "--now", NOW],
    ))
    .success();
    assert!(copied.stdout.contains("digest.html"), "{copied:?}");
    let project = manifest_dir().join("templates");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&project).unwrap() {
        let name = entry.unwrap().file_name();
        assert_eq!(
            std::fs::read(place.path("mine").join(&name)).unwrap(),
            std::fs::read(project.join(&name)).unwrap(),
            "{name:?}"
        );
        names.push(format!("mine/{}", name.to_string_lossy()));
    }
    let mut after = walkdir(place.root());
    after.retain(|file| !before.contains(file));
    after.sort();
    names.sort();
    assert_eq!(after, names, "only the templates are new");
    assert_eq!(
        std::fs::read_to_string(place.path("config.toml")).unwrap(),
        config
    );
    let check = run(&mut newsletter(place.root(), ["check"])).success();
    assert!(
        check
            .stdout
            .contains("checked 1 post and the templates: no problems"),
        "{check:?}"
    );

    // An edited template stays; the second run names it and writes nothing.
    place.write("mine/digest.html", "{# mine #}\n");
    std::fs::remove_file(place.path("mine/welcome.txt")).unwrap();
    let again = run(&mut newsletter(
        place.root(),
        ["init", "--templates", "--now", NOW],
    ))
    .exit_code(1);
    assert!(
        again.stderr.contains("digest.html") && again.stderr.contains("nothing was written"),
        "{again:?}"
    );
    assert_eq!(
        std::fs::read_to_string(place.path("mine/digest.html")).unwrap(),
        "{# mine #}\n"
    );
    assert!(!place.path("mine/welcome.txt").exists());
}

/// Every file under `dir`, relative, with `/` separators.
fn walkdir(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path.strip_prefix(dir).unwrap();
                out.push(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    out
}

#[test]
fn a_site_in_a_folder_with_a_space_or_a_dash_gets_a_next_step_a_shell_runs() {
    for folder in ["my blog", "-x"] {
        next_step_runs(folder);
    }
}

fn next_step_runs(folder: &str) {
    let place = Site::empty();
    let made = run(&mut newsletter(
        place.root(),
        ["init", "--now", NOW, "--", folder],
    ))
    .success();
    let next = made
        .stdout
        .lines()
        .find(|l| l.starts_with("next:"))
        .unwrap_or_else(|| panic!("{made:?}"));
    let command = next
        .split('`')
        .nth(1)
        .unwrap_or_else(|| panic!("no command in {next}"));
    // The line, run by a real shell, builds the new site.
    let shell = std::process::Command::new("sh")
        .arg("-c")
        .arg(command.replacen("newsletter", common::bin(), 1))
        .current_dir(place.root())
        .output()
        .unwrap();
    assert!(
        shell.status.success(),
        "{command}: {}",
        String::from_utf8_lossy(&shell.stderr)
    );
    assert!(place.path(&format!("{folder}/public/atom.xml")).exists());
}

#[test]
fn init_beside_posts_of_another_generator_adds_no_example_post() {
    let place = Site::empty();
    place.write("hugo.toml", "baseURL = 'https://example.org/'\n");
    place.write(
        "content/posts/real.md",
        "---\ntitle: A real post\ndate: 2026-11-20\n---\nReal.\n",
    );
    let made = run(&mut newsletter(place.root(), ["init", "--now", NOW])).success();
    assert!(made.stdout.contains("no example post"), "{made:?}");
    let mut files = walkdir(place.root());
    files.sort();
    assert_eq!(files, ["config.toml", "content/posts/real.md", "hugo.toml"]);
}

#[test]
fn looking_at_a_new_site_creates_no_store() {
    let place = Site::empty();
    run(&mut newsletter(place.root(), ["init", "--now", NOW])).success();
    let cli = |args: &[&str]| run(&mut newsletter(place.root(), args));
    let list = cli(&["subscribers", "list"]).success();
    assert_eq!(list.stdout, "");
    let export = cli(&["subscribers", "export"]).success();
    assert_eq!(export.stdout, "email,name,status,created_at,key,topics\n");
    cli(&["subscribers", "remove", "nobody@example.org"]).exit_code(1);
    let test = cli(&["send", "--to", "editor@example.org", "--now", NOW]).success();
    assert!(test.stdout.contains("editor@example.org"), "{test:?}");
    assert_eq!(count_eml(&place.path("outbox")), 1);
    assert!(!place.path("newsletter.db").exists(), "a look made a store");
}

/// Each `table.key` set in a TOML text, commented out or not: a line
/// `[table]`, `[[table]]` or `# [table]` opens a table; `key = ...` or
/// `# key = ...` under it names a key.
fn listed_keys(toml: &str) -> std::collections::BTreeSet<String> {
    let mut keys = std::collections::BTreeSet::new();
    let mut table = String::new();
    for line in toml.lines() {
        let line = line.strip_prefix("# ").unwrap_or(line).trim_end();
        if let Some(name) = line.strip_prefix('[') {
            let name = name.trim_start_matches('[');
            if let Some(end) = name.find(']') {
                table = name[..end].to_string();
            }
        } else if let Some((key, _)) = line.split_once(" = ")
            && !key.is_empty()
            && key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        {
            keys.insert(format!("{table}.{key}"));
        }
    }
    keys
}

/// The config `init` writes lists every key the README documents (as its
/// header says), and with each key's line uncommented, in its table, it
/// loads: the values shown are ones the program takes.
#[test]
fn init_lists_every_key_the_readme_documents() {
    let readme = std::fs::read_to_string(manifest_dir().join("README.md")).unwrap();
    let section = readme.split("\n## config.toml\n").nth(1).unwrap();
    let example = section.split("```toml\n").nth(1).unwrap();
    let example = example.split("\n```").next().unwrap();
    let documented = listed_keys(example);
    assert!(documented.len() > 60, "the README's keys: {documented:?}");

    let place = Site::empty();
    run(&mut newsletter(place.root(), ["init", "--now", NOW])).success();
    let written = std::fs::read_to_string(place.path("config.toml")).unwrap();
    let listed = listed_keys(&written);
    let missing: Vec<_> = documented.difference(&listed).collect();
    assert!(missing.is_empty(), "init leaves out {missing:?}");

    // Every line `# key = value` and every `# [table]` uncommented, but for
    // the DKIM key and keys that name something outside the site (a
    // certificate file, a mailbox).
    let outside = ["key_file", "selector", "domain", "imap", "tls_ca_file"];
    let uncommented: String = written
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest) if rest.starts_with('[') => rest,
            Some(rest) if rest.contains(" = ") => rest,
            _ => line,
        })
        .filter(|line| {
            !line.starts_with("[email.dkim]")
                && !outside
                    .iter()
                    .any(|key| line.starts_with(&format!("{key} = ")))
        })
        .map(|line| format!("{line}\n"))
        .collect();
    assert!(uncommented.contains("\n[smtp] "), "{uncommented}");
    place.write("every-key.toml", &uncommented);
    let mut check = newsletter(place.root(), ["check", "--config", "every-key.toml"]);
    check.env("NEWSLETTER_SMTP_PASSWORD", "a-password");
    run(&mut check).success();
}
