//! The pages and the confirmation email of the sign-up path, rendered from
//! the templates folder: `subscribe.html`, `unsubscribe.html`, `page.html`,
//! `confirm.html` and `confirm.txt`.

use anyhow::{Result, anyhow};
use minijinja::value::Value;
use minijinja::{Environment, context};

use crate::config::Config;
use crate::digest;

/// Every template the server uses; all are checked when it starts.
pub const TEMPLATES: [&str; 5] = [
    "subscribe.html",
    "unsubscribe.html",
    "page.html",
    "confirm.html",
    "confirm.txt",
];

/// The templates built into the binary, used when the folder lacks one.
const BUILT_IN: [(&str, &str); 6] = [
    ("_layout.html", include_str!("../../templates/_layout.html")),
    (
        "subscribe.html",
        include_str!("../../templates/subscribe.html"),
    ),
    (
        "unsubscribe.html",
        include_str!("../../templates/unsubscribe.html"),
    ),
    ("page.html", include_str!("../../templates/page.html")),
    ("confirm.html", include_str!("../../templates/confirm.html")),
    ("confirm.txt", include_str!("../../templates/confirm.txt")),
];

/// A template from the folder if it is there, else the built-in one.
fn load(folder: &std::path::Path, name: &str) -> Result<Option<String>, minijinja::Error> {
    let plain = !name.is_empty()
        && name
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..");
    if !plain {
        return Ok(None);
    }
    match std::fs::read_to_string(folder.join(name)) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BUILT_IN
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, text)| text.to_string())),
        Err(e) => Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("cannot read {}: {e}", folder.join(name).display()),
        )),
    }
}

/// The loaded templates and the `site` value they all get.
pub struct Pages {
    env: Environment<'static>,
    site: Value,
}

impl Pages {
    /// Loads the templates, so a missing or broken one stops the server at
    /// start with its file and line, not at a reader's first sign-up.
    pub fn load(config: &Config) -> Result<Pages> {
        let dir = &config.digest.templates;
        let mut env = digest::environment(dir);
        let folder = dir.clone();
        env.set_loader(move |name| load(&folder, name));
        for name in TEMPLATES {
            env.get_template(name).map_err(|e| {
                let path = dir.join(e.name().unwrap_or(name));
                let line = e.line().map(|l| format!(":{l}")).unwrap_or_default();
                anyhow!("{}{line}: {}", path.display(), digest::describe(&e))
            })?;
        }
        let site = &config.site;
        Ok(Pages {
            env,
            site: context! {
                title => site.title.as_str(),
                url => site.base_url.as_str(),
                description => site.description.as_str(),
                language => site.language.as_str(),
                author => site.author.as_str(),
            },
        })
    }

    /// Renders `name` with `site` and the given values.
    pub fn render(&self, name: &str, values: Value) -> Result<String> {
        let ctx = context! { site => self.site.clone(), ..values };
        self.env
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .map_err(|e| {
                anyhow!(
                    "{name}{}: {}",
                    e.line().map(|l| format!(":{l}")).unwrap_or_default(),
                    digest::describe(&e)
                )
            })
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
        let html = digest::inline_css(&html).map_err(|e| anyhow!("confirm.html: {e}"))?;
        let text = self.render("confirm.txt", values)?;
        let title = self
            .site
            .get_attr("title")
            .map(|t| t.to_string())
            .unwrap_or_default();
        Ok((format!("Confirm your subscription to {title}"), html, text))
    }
}
