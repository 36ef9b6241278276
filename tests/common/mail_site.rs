//! The one way the tests make "the fixture blog with mail settings": the
//! fixture blog's config with `[email]`, `[digest]` and whichever of
//! `[email.dkim]`, `[server]`, `[schedule]`, `[store]` and `[smtp]` a test
//! asks for, and its subscribers already imported.
//!
//! ```ignore
//! let server = SmtpServer::start(&[]);
//! let site = Site::with_mail()
//!     .smtp(server.config("connections = 2"))
//!     .subscribers(&addresses(5))
//!     .create();
//! ```

use std::fmt::Write as _;

use super::{Site, manifest_dir, run};

/// The `From` of every mail site unless a test says otherwise.
pub const FROM: &str = "Fixture Blog <news@blog.example.org>";

/// Three `[[topics]]`, to append to a site's config: `releases` ("Release
/// announcements", tag `release`), `events` ("Events and meetups", tag
/// `event`) and `docs` ("Documentation", tag `docs`).
pub const TOPICS: &str = r#"
[[topics]]
key = "releases"
label = "Release announcements"
tags = ["release"]

[[topics]]
key = "events"
label = "Events and meetups"
tags = ["event"]

[[topics]]
key = "docs"
label = "Documentation"
tags = ["docs"]
"#;

/// A mail site to be written; [`MailSite::create`] writes it.
///
/// With no options: the fixture blog (its posts, `[site]`, `[content]` and
/// `[feeds]`), `[email] from =` [`FROM`], and `[digest]` with the project's
/// templates and `first_run_posts = 2`. No `[server]`, no `[smtp]` (so
/// messages go to the outbox, with `email.outbox_mode = "deliver"`: the
/// outbox is a pickup folder and what is written there counts as sent,
/// unless the test asks for [`MailSite::outbox_trial`]), no subscribers.
#[must_use = "nothing is written until `create`"]
pub struct MailSite {
    posts: bool,
    title: Option<String>,
    from: bool,
    email: Vec<String>,
    dkim: Vec<String>,
    templates: Option<String>,
    first_run_posts: u32,
    digest: Vec<String>,
    public_url: Option<String>,
    server: Vec<String>,
    schedule: Option<String>,
    store: Option<String>,
    smtp: Option<String>,
    outbox_trial: bool,
    subscribers: Vec<String>,
}

impl Site {
    /// The fixture blog with mail settings; see [`MailSite`].
    pub fn with_mail() -> MailSite {
        MailSite {
            posts: true,
            title: None,
            from: true,
            email: Vec::new(),
            dkim: Vec::new(),
            templates: None,
            first_run_posts: 2,
            digest: Vec::new(),
            public_url: None,
            server: Vec::new(),
            schedule: None,
            store: None,
            smtp: None,
            outbox_trial: false,
            subscribers: Vec::new(),
        }
    }

    /// Imports `emails` as active subscribers, named "Reader 0", "Reader 1"…
    /// in that order (through `subscribers import readers.csv`).
    #[track_caller]
    pub fn subscribe<S: AsRef<str>>(&self, emails: &[S]) {
        let mut csv = String::from("email,name\n");
        for (i, email) in emails.iter().enumerate() {
            writeln!(csv, "{},Reader {i}", email.as_ref()).unwrap();
        }
        self.write("readers.csv", csv);
        run(&mut self.newsletter(["subscribers", "import", "readers.csv"])).success();
    }

    /// Replaces `from` by `to` in `config.toml`; panics if `from` is not there.
    #[track_caller]
    pub fn replace_in_config(&self, from: &str, to: &str) {
        let config = self.read_text("config.toml");
        assert!(
            config.contains(from),
            "config.toml has no {from:?}:\n{config}"
        );
        self.write("config.toml", config.replace(from, to));
    }
}

/// `n` distinct subscriber addresses, `reader00000@example.net` on, which
/// sort in the order they are made.
pub fn addresses(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("reader{i:05}@example.net"))
        .collect()
}

impl MailSite {
    /// Removes the fixture's posts: the content folder starts empty.
    pub fn without_posts(mut self) -> Self {
        self.posts = false;
        self
    }

    /// `site.title` instead of the fixture's "Fixture Blog" (any string:
    /// it is written as a TOML string with escapes).
    pub fn site_title(mut self, title: &str) -> Self {
        self.title = Some(title.to_string());
        self
    }

    /// No `email.from`: messages come from the default address.
    pub fn without_from(mut self) -> Self {
        self.from = false;
        self
    }

    /// More `[email]` keys (TOML lines), e.g. `unsubscribe_mailto = "…"`.
    pub fn email(mut self, keys: &str) -> Self {
        self.email.push(keys.to_string());
        self
    }

    /// `[email.dkim]`: sign with the key in `key_file` as `selector` of
    /// `domain`. Called again, another key: the config then has a
    /// `[[email.dkim]]` table for each.
    pub fn dkim(mut self, selector: &str, domain: &str, key_file: &str) -> Self {
        self.dkim.push(format!(
            "selector = {}\ndomain = {}\nkey_file = {}\n",
            toml_string(selector),
            toml_string(domain),
            toml_string(key_file)
        ));
        self
    }

    /// `digest.templates` instead of the project's `templates/` (relative
    /// to the site, or absolute).
    pub fn templates(mut self, dir: &str) -> Self {
        self.templates = Some(dir.to_string());
        self
    }

    /// `digest.first_run_posts` instead of 2.
    pub fn first_run_posts(mut self, n: u32) -> Self {
        self.first_run_posts = n;
        self
    }

    /// More `[digest]` keys (TOML lines), e.g. `max_posts = 2`.
    pub fn digest(mut self, keys: &str) -> Self {
        self.digest.push(keys.to_string());
        self
    }

    /// `server.public_url`, where links in messages point.
    pub fn public_url(mut self, url: &str) -> Self {
        self.public_url = Some(url.to_string());
        self
    }

    /// `server.public_url` for `newsletter serve` on 127.0.0.1:`port`
    /// (a number, or a [`super::server::Port`]).
    pub fn served_at(self, port: impl std::fmt::Display) -> Self {
        self.public_url(&format!("http://127.0.0.1:{port}/"))
    }

    /// More `[server]` keys (TOML lines), e.g. `request_timeout = "1s"`.
    pub fn server(mut self, keys: &str) -> Self {
        self.server.push(keys.to_string());
        self
    }

    /// A `[schedule]` table with these keys, e.g. `digest = "0 9 * * MON"`.
    pub fn schedule(mut self, keys: &str) -> Self {
        self.schedule = Some(keys.to_string());
        self
    }

    /// `store.path` instead of the default `newsletter.db`.
    pub fn store(mut self, path: &str) -> Self {
        self.store = Some(path.to_string());
        self
    }

    /// The `[smtp]` table: [`SmtpServer::config`](super::smtp::SmtpServer::config)
    /// for the test server, or [`loopback_config`](super::smtp::loopback_config)
    /// for a port nothing (or something broken) listens on. Without it,
    /// messages go to the outbox.
    pub fn smtp(mut self, table: impl Into<String>) -> Self {
        self.smtp = Some(table.into());
        self
    }

    /// No `email.outbox_mode`: without `[smtp]`, `send` writes the outbox
    /// as a trial and records nothing (what a new site does).
    pub fn outbox_trial(mut self) -> Self {
        self.outbox_trial = true;
        self
    }

    /// Subscribers imported once the site is written; see [`Site::subscribe`].
    pub fn subscribers<S: AsRef<str>>(mut self, emails: &[S]) -> Self {
        self.subscribers = emails.iter().map(|e| e.as_ref().to_string()).collect();
        self
    }

    /// Writes the site to a fresh temp dir and imports its subscribers.
    #[track_caller]
    pub fn create(self) -> Site {
        let site = Site::fixture("blog");
        if !self.posts {
            std::fs::remove_dir_all(site.path("content")).unwrap();
            std::fs::create_dir(site.path("content")).unwrap();
        }
        let mut config = site.read_text("config.toml");
        if let Some(title) = &self.title {
            let fixture = "title = \"Fixture Blog\"";
            assert!(config.contains(fixture), "the fixture's title changed");
            config = config.replace(fixture, &format!("title = {}", toml_string(title)));
        }

        let mut email = Vec::new();
        if self.from {
            email.push(format!("from = {}", toml_string(FROM)));
        }
        if self.smtp.is_none() && !self.outbox_trial {
            email.push("outbox_mode = \"deliver\"".to_string());
        }
        email.extend(self.email);
        table(&mut config, "email", &email);
        match self.dkim.as_slice() {
            [] => {}
            [one] => table(&mut config, "email.dkim", &[one]),
            keys => {
                for key in keys {
                    write!(config, "\n[[email.dkim]]\n{}", key).unwrap();
                }
            }
        }

        let templates = self
            .templates
            .unwrap_or_else(|| manifest_dir().join("templates").display().to_string());
        let mut digest = vec![
            format!("templates = {}", toml_string(&templates)),
            format!("first_run_posts = {}", self.first_run_posts),
        ];
        digest.extend(self.digest);
        table(&mut config, "digest", &digest);

        let mut server: Vec<String> = self
            .public_url
            .iter()
            .map(|url| format!("public_url = {}", toml_string(url)))
            .collect();
        server.extend(self.server);
        if !server.is_empty() {
            table(&mut config, "server", &server);
        }
        if let Some(schedule) = &self.schedule {
            table(&mut config, "schedule", &[schedule]);
        }
        if let Some(store) = &self.store {
            table(
                &mut config,
                "store",
                &[format!("path = {}", toml_string(store))],
            );
        }
        if let Some(smtp) = &self.smtp {
            assert!(
                smtp.trim_start().starts_with("[smtp]")
                    || smtp.trim_start().starts_with("[[smtp]]"),
                "not an [smtp] table or [[smtp]] tables: {smtp:?}"
            );
            write!(config, "\n{smtp}\n").unwrap();
        }
        site.write("config.toml", config);

        if !self.subscribers.is_empty() {
            site.subscribe(&self.subscribers);
        }
        site
    }
}

/// Appends `[name]` with `keys` (TOML lines) to `config`.
fn table<S: AsRef<str>>(config: &mut String, name: &str, keys: &[S]) {
    write!(config, "\n[{name}]\n").unwrap();
    for key in keys {
        writeln!(config, "{}", key.as_ref().trim_end()).unwrap();
    }
}

/// `text` as a TOML basic string.
fn toml_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => write!(out, "\\u{:04X}", c as u32).unwrap(),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
