//! `[site]`: what the blog is and where it lives.

use chrono_tz::Tz;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde::Deserialize;
use url::Url;

use super::{ConfigError, Source};

/// `[site]`: what the blog is and where it lives.
#[derive(Debug, Clone)]
pub struct Site {
    pub title: String,
    /// Absolute http(s) URL with no trailing slash in its path.
    pub base_url: Url,
    pub description: String,
    /// Fallback author for posts that name none.
    pub author: String,
    pub language: String,
    /// Zone for dates written without an offset. Permalinks use the date as
    /// the post wrote it.
    pub timezone: Tz,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSite {
    #[serde(default = "default_title")]
    title: String,
    base_url: Option<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    author: Option<String>,
    #[serde(default = "default_language")]
    language: String,
    #[serde(default = "default_timezone")]
    timezone: String,
}

fn default_title() -> String {
    "Blog".into()
}

fn default_language() -> String {
    "en".into()
}

fn default_timezone() -> String {
    "UTC".into()
}

/// What a URL path cannot carry as it is; `/` and `%` stay.
const PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// Checks `[site]`: `base_url` is required, the rest have defaults.
pub(super) fn check(raw: RawSite, source: &Source) -> Result<Site, ConfigError> {
    let base = raw.base_url.ok_or_else(|| {
        source.invalid(
            "site.base_url",
            "is missing: set it to the blog's absolute URL, e.g. \"https://example.org\"".into(),
        )
    })?;
    let mut base_url = Url::parse(&base).map_err(|e| {
        source.invalid(
            "site.base_url",
            format!(
                "= {base:?} is not an absolute URL ({e}); write it like \"https://example.org\""
            ),
        )
    })?;
    if !matches!(base_url.scheme(), "http" | "https") || base_url.host_str().is_none() {
        return Err(source.invalid(
            "site.base_url",
            format!("= {base:?} must be an http or https URL with a host"),
        ));
    }
    if !base_url.username().is_empty() || base_url.password().is_some() {
        return Err(source.invalid(
            "site.base_url",
            "must not carry a user name or password: every feed would publish them".into(),
        ));
    }
    // The host goes into ids, Message-IDs and List-Id: a DNS name (letters,
    // digits, `-`, `.`; IDNA already turned into them) or an IP address.
    if let Some(url::Host::Domain(host)) = base_url.host()
        && !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return Err(source.invalid(
            "site.base_url",
            format!(
                "= {base:?}: the host {host:?} is not a domain name (letters, digits, - and .)"
            ),
        ));
    }
    let trimmed = base_url.path().trim_end_matches('/').to_string();
    base_url.set_path(&trimmed);
    base_url.set_query(None);
    base_url.set_fragment(None);

    let timezone: Tz = raw.timezone.parse().map_err(|_| {
        source.invalid(
            "site.timezone",
            format!(
                "= {:?} is not a time zone name; use an IANA name such as \"UTC\" or \"Europe/Berlin\"",
                raw.timezone
            ),
        )
    })?;

    let language = raw.language;
    let valid_language = !language.is_empty()
        && language.len() <= 35
        && language
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !valid_language {
        return Err(source.invalid(
            "site.language",
            format!("= {language:?} is not a language tag; write one like \"en\" or \"pt-BR\""),
        ));
    }
    for (key, text) in [
        ("site.title", &raw.title),
        ("site.description", &raw.description),
        ("site.author", raw.author.as_ref().unwrap_or(&String::new())),
    ] {
        if text
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
        {
            return Err(source.invalid(key, "contains a control character; remove it".into()));
        }
    }

    Ok(Site {
        title: raw.title,
        author: raw.author.unwrap_or_else(|| "Anonymous".into()),
        base_url,
        description: raw.description,
        language,
        timezone,
    })
}

impl Site {
    /// The absolute URL of a site path such as `/blog/x/` or `atom.xml`;
    /// spaces and non-ASCII characters in the path are percent-encoded
    /// (a `%` is taken as already encoded).
    pub fn url_for(&self, path: &str) -> String {
        let base = self.base_url.as_str().trim_end_matches('/');
        let path = utf8_percent_encode(path.trim_start_matches('/'), PATH);
        format!("{base}/{path}")
    }

    /// The host name, for `tag:` URIs and message ids.
    pub fn host(&self) -> &str {
        self.base_url.host_str().unwrap_or("localhost")
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::parse;

    #[test]
    fn base_url_under_a_path_keeps_it() {
        let config = parse("[site]\nbase_url = \"https://example.org/blog/\"\n").unwrap();
        assert_eq!(
            config.site.url_for("atom.xml"),
            "https://example.org/blog/atom.xml"
        );
    }

    #[test]
    fn missing_or_relative_base_url_names_the_key() {
        let err = parse("[site]\ntitle = \"x\"\n").unwrap_err().to_string();
        assert!(
            err.contains("site.base_url") && err.contains("missing"),
            "{err}"
        );
        let err = parse("[site]\nbase_url = \"/blog\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("site.base_url") && err.contains("absolute"),
            "{err}"
        );
        let err = parse("[site]\nbase_url = \"ftp://x.org\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("site.base_url"), "{err}");
    }

    #[test]
    fn bad_timezone_is_named() {
        let err = parse("[site]\nbase_url = \"https://x.org\"\ntimezone = \"Mars/Base\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("site.timezone"), "{err}");
    }

    #[test]
    fn language_and_control_characters_are_checked() {
        let err = parse("[site]\nbase_url = \"https://x.org\"\nlanguage = \"en us\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("site.language"), "{err}");
        let err = parse("[site]\nbase_url = \"https://x.org\"\nauthor = \"Bad\\u0001\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("site.author") && err.contains("control"),
            "{err}"
        );
    }
}
