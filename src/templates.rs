//! The one template environment: minijinja with its syntax, escaping and
//! filters, every template built into the binary, and the `site` value all
//! templates get.
//!
//! A template is read from the site's templates folder (`digest.templates`)
//! when a file of that name is there, else the copy built into the binary
//! (the files in the project's `templates/`) is used. So a site made of only
//! `config.toml` and its posts can preview, send and serve, and a user copies
//! out only the templates they want to change.

use std::path::Path;

use minijinja::value::Value;
use minijinja::{AutoEscape, Environment, UndefinedBehavior, context};

use crate::config::Config;
use crate::text::{TEXT_WIDTH, wrap};

/// Every template built into the binary, by file name.
pub const BUILT_IN: [(&str, &str); 8] = [
    ("digest.html", include_str!("../templates/digest.html")),
    ("digest.txt", include_str!("../templates/digest.txt")),
    ("_layout.html", include_str!("../templates/_layout.html")),
    (
        "subscribe.html",
        include_str!("../templates/subscribe.html"),
    ),
    (
        "unsubscribe.html",
        include_str!("../templates/unsubscribe.html"),
    ),
    ("page.html", include_str!("../templates/page.html")),
    ("confirm.html", include_str!("../templates/confirm.html")),
    ("confirm.txt", include_str!("../templates/confirm.txt")),
];

/// The built-in copy of the template `name`, if there is one.
pub fn built_in(name: &str) -> Option<&'static str> {
    BUILT_IN.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// The template environment for `config`: HTML escaping for `.html` files,
/// an error for printing an undefined value (a misspelt variable),
/// `trim_blocks` and `lstrip_blocks`, the `wrap(width=72)` filter, and
/// templates (also those named by `{% include %}` and `{% extends %}`)
/// from the templates folder, else built in.
pub fn environment(config: &Config) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") || name.ends_with(".htm") {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    let syntax = minijinja::syntax::SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .build()
        .expect("the default delimiters are valid");
    env.set_syntax(syntax);
    let folder = config.digest.templates.clone();
    env.set_loader(move |name| load(&folder, name));
    env.add_filter("wrap", |text: String, width: Option<usize>| {
        wrap(&text, width.unwrap_or(TEXT_WIDTH))
    });
    env
}

/// A template from the folder if it is there, else the built-in one. Only
/// plain relative names are looked up: no `..`, no absolute paths.
fn load(folder: &Path, name: &str) -> Result<Option<String>, minijinja::Error> {
    let plain = !name.is_empty()
        && !name.starts_with('/')
        && name
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != ".." && !part.contains('\\'));
    if !plain {
        return Ok(None);
    }
    match std::fs::read_to_string(folder.join(name)) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(built_in(name).map(String::from)),
        Err(e) => Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("cannot read {}: {e}", folder.join(name).display()),
        )),
    }
}

/// The `site` value every template gets, each text passed through `text`
/// (the digest removes its merge-token characters there).
pub fn site_context(config: &Config, text: impl Fn(&str) -> String) -> Value {
    let site = &config.site;
    context! {
        title => text(&site.title),
        url => site.base_url.as_str(),
        description => text(&site.description),
        language => site.language.as_str(),
        author => text(&site.author),
    }
}

/// A template error's kind and detail, without the location (the caller
/// names the file and line).
pub fn describe(error: &minijinja::Error) -> String {
    match error.detail() {
        Some(detail) => format!("{}: {detail}", error.kind()),
        None => error.kind().to_string(),
    }
}

/// Where a template error is: `templates/digest.html:12` for a file in the
/// templates folder, `digest.html (built in):12` for a built-in one.
/// `error` (when given) names the template the error is in, which may be
/// one that `name` includes, and its line.
pub fn locate(folder: &Path, name: &str, error: Option<&minijinja::Error>) -> String {
    let name = error.and_then(|e| e.name()).unwrap_or(name);
    let path = folder.join(name);
    let file = if path.exists() || built_in(name).is_none() {
        path.display().to_string()
    } else {
        format!("{name} (built in)")
    };
    match error.and_then(|e| e.line()) {
        Some(line) => format!("{file}:{line}"),
        None => file,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(templates: &Path) -> Config {
        Config::parse(
            &format!(
                "[site]\nbase_url = \"https://example.org\"\n[digest]\ntemplates = {:?}\n",
                templates.display().to_string()
            ),
            Path::new("config.toml"),
            templates,
        )
        .unwrap()
    }

    #[test]
    fn a_file_in_the_folder_wins_and_the_rest_are_built_in() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("page.html"), "mine: {{ site.url }}").unwrap();
        let env = environment(&config(dir.path()));
        let page = env.get_template("page.html").unwrap();
        assert_eq!(
            page.render(context! { site => context! { url => "u" } })
                .unwrap(),
            "mine: u"
        );
        for (name, text) in BUILT_IN {
            if name != "page.html" {
                assert_eq!(env.get_template(name).unwrap().source(), text);
            }
        }
    }

    #[test]
    fn only_plain_names_are_looked_up() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("t")).unwrap();
        std::fs::write(dir.path().join("secret.txt"), "secret").unwrap();
        let env = environment(&config(&dir.path().join("t")));
        for name in ["../secret.txt", "/etc/passwd", "a//b", "./page.html", ""] {
            assert!(env.get_template(name).is_err(), "{name}");
        }
    }

    #[test]
    fn errors_in_built_in_templates_say_so() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path());
        assert_eq!(
            locate(dir.path(), "digest.txt", None),
            "digest.txt (built in)"
        );
        std::fs::write(dir.path().join("digest.txt"), "{{ nope }}").unwrap();
        let env = environment(&c);
        let error = env
            .get_template("digest.txt")
            .unwrap()
            .render(())
            .unwrap_err();
        assert_eq!(
            locate(dir.path(), "digest.txt", Some(&error)),
            format!("{}:1", dir.path().join("digest.txt").display())
        );
        assert_eq!(
            locate(dir.path(), "digest.txt", None),
            dir.path().join("digest.txt").display().to_string()
        );
    }
}
