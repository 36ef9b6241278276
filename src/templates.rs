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
pub const BUILT_IN: [(&str, &str); 21] = [
    ("_mail.html", include_str!("../templates/_mail.html")),
    ("_post.html", include_str!("../templates/_post.html")),
    ("digest.html", include_str!("../templates/digest.html")),
    ("letter.html", include_str!("../templates/letter.html")),
    ("letter.txt", include_str!("../templates/letter.txt")),
    ("archive.html", include_str!("../templates/archive.html")),
    ("digest.txt", include_str!("../templates/digest.txt")),
    ("_layout.html", include_str!("../templates/_layout.html")),
    ("home.html", include_str!("../templates/home.html")),
    (
        "_signup_form.html",
        include_str!("../templates/_signup_form.html"),
    ),
    ("_topics.html", include_str!("../templates/_topics.html")),
    (
        "not_found.html",
        include_str!("../templates/not_found.html"),
    ),
    (
        "subscribe.html",
        include_str!("../templates/subscribe.html"),
    ),
    (
        "unsubscribe.html",
        include_str!("../templates/unsubscribe.html"),
    ),
    (
        "preferences.html",
        include_str!("../templates/preferences.html"),
    ),
    (
        "confirm_page.html",
        include_str!("../templates/confirm_page.html"),
    ),
    ("page.html", include_str!("../templates/page.html")),
    ("confirm.html", include_str!("../templates/confirm.html")),
    ("confirm.txt", include_str!("../templates/confirm.txt")),
    ("welcome.html", include_str!("../templates/welcome.html")),
    ("welcome.txt", include_str!("../templates/welcome.txt")),
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
    let error = innermost(error);
    match error.detail() {
        Some(detail) => format!("{}: {detail}", error.kind()),
        None => error.kind().to_string(),
    }
}

/// The error that started it all: an error inside an included (or
/// extended) template is the cause of the error of the template that
/// includes it.
fn innermost(error: &minijinja::Error) -> &minijinja::Error {
    let mut error = error;
    while let Some(inner) =
        std::error::Error::source(error).and_then(|e| e.downcast_ref::<minijinja::Error>())
    {
        error = inner;
    }
    error
}

/// Where a template error is: `templates/digest.html:12` for a file in the
/// templates folder, `digest.html (built in):12` for a built-in one; for
/// an error inside an included template, that template's file and line,
/// then `(included from templates/digest.txt:2)`. `error` (when given)
/// names the template the error is in, which may be one that `name`
/// includes, and its line.
pub fn locate(folder: &Path, name: &str, error: Option<&minijinja::Error>) -> String {
    let place = |name: &str, line: Option<usize>| {
        let path = folder.join(name);
        let file = if path.exists() || built_in(name).is_none() {
            path.display().to_string()
        } else {
            format!("{name} (built in)")
        };
        match line {
            Some(line) => format!("{file}:{line}"),
            None => file,
        }
    };
    let Some(error) = error else {
        return place(name, None);
    };
    let outer = place(error.name().unwrap_or(name), error.line());
    let inner = innermost(error);
    if std::ptr::eq(inner, error) {
        return outer;
    }
    let inner_name = inner.name().unwrap_or(name);
    format!(
        "{} (included from {outer})",
        place(inner_name, inner.line())
    )
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
    fn an_error_in_an_included_template_names_that_template_and_its_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("nested")).unwrap();
        std::fs::write(
            dir.path().join("digest.txt"),
            "hello\n{% include \"nested/x.txt\" %}\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("nested/x.txt"), "a\nb\n{{ nope.deeper }}\n").unwrap();
        let env = environment(&config(dir.path()));
        let error = env
            .get_template("digest.txt")
            .unwrap()
            .render(())
            .unwrap_err();
        let at = locate(dir.path(), "digest.txt", Some(&error));
        assert_eq!(
            at,
            format!(
                "{}:3 (included from {}:2)",
                dir.path().join("nested/x.txt").display(),
                dir.path().join("digest.txt").display()
            )
        );
        assert!(
            describe(&error).starts_with("undefined value"),
            "{}",
            describe(&error)
        );
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
