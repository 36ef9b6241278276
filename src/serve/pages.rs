//! The server's pages and the confirmation email, rendered from the
//! templates folder: `home.html`, `subscribe.html`, `unsubscribe.html`,
//! `preferences.html`, `page.html`, `not_found.html`, `confirm.html` and
//! `confirm.txt`.

use anyhow::{Result, anyhow};
use minijinja::value::Value;
use minijinja::{Environment, context};

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::email::body::inline_css;
use crate::topics::Topics;
use crate::{links, templates};

/// The loaded templates and the `site` value they all get.
pub struct Pages {
    env: Environment<'static>,
    site: Value,
    /// The links every page gets: `feeds` (`atom`, `rss`, `json`),
    /// `home_url`, `subscribe_url`, and `archive_url` (none when the
    /// archive is off).
    links: Value,
    /// `digest.templates`, to name the file of an error.
    folder: PathBuf,
}

/// A template error as `templates/page.html:3: what` (or `page.html (built in):3: what`).
fn located(folder: &Path, name: &str, error: &minijinja::Error) -> anyhow::Error {
    anyhow!(
        "{}: {}",
        templates::locate(folder, name, Some(error)),
        templates::describe(error)
    )
}

/// The links every page gets (see [`Pages`]), absolute: the feeds
/// under `site.base_url`, the server's pages under `server.public_url`.
fn page_links(config: &Config) -> Value {
    let feeds = &config.feeds;
    context! {
        feeds => context! {
            atom => links::feed_url(config, &feeds.atom),
            rss => links::feed_url(config, &feeds.rss),
            json => links::feed_url(config, &feeds.json),
        },
        home_url => links::home_url(config),
        subscribe_url => links::subscribe_url(config),
        archive_url => config.archive.enabled.then(|| links::archive_url(config)),
    }
}

/// A form's topic checkboxes (`_topics.html`): each topic's `key`,
/// `label`, and whether it is `checked`; none when the site has no topics.
pub fn topic_boxes(config: &Config, checked: Topics) -> Vec<Value> {
    config
        .topics
        .iter()
        .enumerate()
        .map(|(i, topic)| {
            context! {
                key => &topic.key,
                label => &topic.label,
                checked => checked.contains(i),
            }
        })
        .collect()
}

impl Pages {
    /// Loads the templates, so a missing or broken one stops the server at
    /// start with its file and line, not at a reader's first sign-up.
    pub fn load(config: &Config) -> Result<Pages> {
        let pages = Pages {
            env: templates::environment(config),
            site: templates::site_context(config, str::to_owned),
            links: page_links(config),
            folder: config.digest.templates.clone(),
        };
        // Each rendered with sample values in every shape the server uses
        // (a value given and not: `error`, `link_url` and `link_text` may be
        // none, `name` empty), so an error that shows only when rendering
        // (an undefined variable, a filter that cannot take none) is found
        // now, not at a reader's request.
        let none = Option::<&str>::None;
        let boxes = Value::from(vec![
            context! { key => "releases", label => "Releases", checked => true },
            context! { key => "events", label => "Events", checked => false },
        ]);
        let no_boxes = Value::from(Vec::<Value>::new());
        let samples = [
            (
                "subscribe.html",
                context! { email => "reader@example.org", name => "Reader", topics => boxes.clone(), error => "A sample error.", error_field => "topics" },
            ),
            (
                "subscribe.html",
                context! { email => "", name => "", topics => no_boxes.clone(), error => none, error_field => none },
            ),
            (
                "home.html",
                context! { email => "", name => "", topics => boxes.clone(), error => none, error_field => none },
            ),
            ("not_found.html", context! {}),
            ("unsubscribe.html", context! {}),
            ("confirm_page.html", context! {}),
            (
                "preferences.html",
                context! { email => "reader@example.org", name => "Reader", active => true, topics => boxes.clone(), saved => true, error => "A sample error.", error_field => "name" },
            ),
            (
                "preferences.html",
                context! { email => "reader@example.org", name => "", active => true, topics => no_boxes.clone(), saved => false, error => none, error_field => none },
            ),
            (
                "preferences.html",
                context! { email => "reader@example.org", name => "", active => false, topics => no_boxes.clone(), saved => false, error => none, error_field => none },
            ),
            (
                "page.html",
                context! { title => "Title", message => "Message.", link_url => "https://example.org/", link_text => "Link" },
            ),
            (
                "page.html",
                context! { title => "Title", message => "Message.", link_url => none, link_text => none },
            ),
        ];
        for (name, values) in samples {
            pages
                .env
                .get_template(name)
                .map_err(|e| located(&pages.folder, name, &e))?;
            pages.render(name, values)?;
        }
        for name in ["Reader", ""] {
            pages.confirmation(
                "reader@example.org",
                name,
                "https://example.org/confirm/sample",
                "48 hours",
            )?;
        }
        Ok(pages)
    }

    /// Renders `name` with `site`, the links and the given values.
    pub fn render(&self, name: &str, values: Value) -> Result<String> {
        let values = minijinja::value::merge_maps([values, self.links.clone()]);
        let ctx = context! { site => self.site.clone(), ..values };
        self.env
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .map_err(|e| located(&self.folder, name, &e))
    }

    /// A plain page: a heading, a message and an optional link.
    pub fn page(&self, title: &str, message: &str, link: Option<(&str, &str)>) -> Result<String> {
        self.render(
            "page.html",
            context! {
                title,
                message,
                link_url => link.map(|l| l.0),
                link_text => link.map(|l| l.1),
            },
        )
    }

    /// The confirmation email's subject, HTML (with its CSS inlined) and text.
    pub fn confirmation(
        &self,
        email: &str,
        name: &str,
        confirm_url: &str,
        expires_in: &str,
    ) -> Result<(String, String, String)> {
        let values = context! {
            subscriber => context! { email, name },
            confirm_url,
            expires_in,
        };
        let html = self.render("confirm.html", values.clone())?;
        let html = inline_css(&html).map_err(|e| anyhow!("confirm.html: {e}"))?;
        let text = self.render("confirm.txt", values)?;
        let title = self
            .site
            .get_attr("title")
            .map(|t| t.to_string())
            .unwrap_or_default();
        Ok((format!("Confirm your subscription to {title}"), html, text))
    }
}
