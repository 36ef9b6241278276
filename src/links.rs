//! Every public URL and server route, made in one place: the feeds under
//! `site.base_url`, and the sign-up, confirm and unsubscribe pages under
//! `server.public_url`.

use crate::config::Config;

/// The sign-up form (GET) and where it posts (POST).
pub const SUBSCRIBE: &str = "/subscribe";
/// A confirmation link: `/confirm/{token}`.
pub const CONFIRM: &str = "/confirm/{token}";
/// An unsubscribe link: `/unsubscribe/{token}` (GET: a page; POST: one click).
pub const UNSUBSCRIBE: &str = "/unsubscribe/{token}";
/// A reader's preference page: `/preferences/{token}` (GET: their topics
/// and name in a form; POST: saves them, or unsubscribes).
pub const PREFERENCES: &str = "/preferences/{token}";
/// The server's home page: the site's name, the sign-up form, the feeds.
pub const HOME: &str = "/";
/// The health check for monitoring.
pub const HEALTHZ: &str = "/healthz";

/// Routes whose last segment is a token, which works like a key: request
/// logs leave it out.
pub const TOKEN_PREFIXES: [&str; 3] = ["/confirm/", "/unsubscribe/", "/preferences/"];

/// The one-click unsubscribe link: `{server.public_url}/unsubscribe/{token}`.
pub fn unsubscribe_url(config: &Config, token: &str) -> String {
    server_url(config, &["unsubscribe", token])
}

/// The preference page: `{server.public_url}/preferences/{token}`.
pub fn preferences_url(config: &Config, token: &str) -> String {
    server_url(config, &["preferences", token])
}

/// The confirmation link: `{server.public_url}/confirm/{token}`.
pub fn confirm_url(config: &Config, token: &str) -> String {
    server_url(config, &["confirm", token])
}

/// A warning for a site whose mail carries unsubscribe links that nothing
/// may answer: they point at `server.public_url`, which defaults to
/// `site.base_url`, where only `newsletter serve` answers them, and there
/// is no `email.unsubscribe_mailto` to fall back on. `None` when the
/// config says where the server runs, or offers the mailto.
pub fn unanswered_links_warning(config: &Config) -> Option<String> {
    if config.server.public_url_set || config.email.unsubscribe_mailto.is_some() {
        return None;
    }
    Some(format!(
        "the digest's unsubscribe links (and sign-up confirmations) point at {}, where only `newsletter serve` answers them: \
         set server.public_url to where `newsletter serve` runs, or email.unsubscribe_mailto to a mailbox you read (README.md, Deployment)",
        unsubscribe_url(config, "TOKEN")
    ))
}

/// True when mail may offer one-click unsubscribe (RFC 8058): its link is
/// https, or http to a loopback host (a test, or a proxy on this machine).
pub fn one_click(config: &Config) -> bool {
    let url = &config.server.public_url;
    url.scheme() == "https" || url.host_str().is_some_and(crate::config::is_loopback)
}

/// A warning for links that would travel in clear text: an `http://`
/// `server.public_url` off loopback. Mail then carries no one-click header
/// (RFC 8058 allows it for https only).
pub fn cleartext_links_warning(config: &Config) -> Option<String> {
    if one_click(config) {
        return None;
    }
    Some(format!(
        "server.public_url ({}) is http:// on a host that is not this machine: unsubscribe and confirm links \
         go in clear text, and mail leaves out one-click unsubscribe (List-Unsubscribe-Post), which RFC 8058 \
         allows for https only; use an https URL",
        config.server.public_url
    ))
}

/// Every warning about the links in mail, for `check`, `send` and `serve`.
pub fn link_warnings(config: &Config) -> Vec<String> {
    [
        unanswered_links_warning(config),
        cleartext_links_warning(config),
        crate::email::dkim::alignment_warning(config),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The absolute URL of a file of the feeds' output folder (`atom.xml`,
/// `tags/go/rss.xml`): under `site.base_url`.
pub fn feed_url(config: &Config, path: &str) -> String {
    config.site.url_for(path)
}

/// The archive's index page: `{site.base_url}{archive.path}/`.
pub fn archive_url(config: &Config) -> String {
    config.site.url_for(&format!("{}/", config.archive.path))
}

/// The archive page of mailing `n`: `{site.base_url}{archive.path}/{n}/`.
pub fn archive_page_url(config: &Config, n: i64) -> String {
    config
        .site
        .url_for(&format!("{}/{n}/", config.archive.path))
}

/// The archive's Atom feed: `{site.base_url}{archive.path}/atom.xml`.
pub fn archive_feed_url(config: &Config) -> String {
    config
        .site
        .url_for(&format!("{}/atom.xml", config.archive.path))
}

/// The server's home page: `{server.public_url}` with a slash at the end
/// (the page's relative links, `subscribe`, need it).
pub fn home_url(config: &Config) -> String {
    server_url(config, &[""])
}

/// The sign-up form: `{server.public_url}/subscribe`.
pub fn subscribe_url(config: &Config) -> String {
    server_url(config, &["subscribe"])
}

/// `server.public_url` (without its query or fragment) with `segments`
/// added, each percent-encoded as one segment.
fn server_url(config: &Config, segments: &[&str]) -> String {
    let mut url = config.server.public_url.clone();
    url.set_query(None);
    url.set_fragment(None);
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url.into()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config(extra: &str) -> Config {
        Config::parse(
            &format!("[site]\nbase_url = \"https://prometheus.io/blog/\"\n{extra}"),
            Path::new("config.toml"),
            Path::new("."),
        )
        .unwrap()
    }

    #[test]
    fn server_links_join_without_a_double_slash() {
        let c = config("");
        assert_eq!(
            unsubscribe_url(&c, "ab12"),
            "https://prometheus.io/blog/unsubscribe/ab12"
        );
        assert_eq!(
            confirm_url(&c, "ab12"),
            "https://prometheus.io/blog/confirm/ab12"
        );
        let c = config("[server]\npublic_url = \"https://news.example.org/\"\n");
        assert_eq!(
            unsubscribe_url(&c, "ab12"),
            "https://news.example.org/unsubscribe/ab12"
        );
        let c = config("[server]\npublic_url = \"https://x.org/app?q=1#f\"\n");
        assert_eq!(
            unsubscribe_url(&c, "a/b c"),
            "https://x.org/app/unsubscribe/a%2Fb%20c"
        );
        assert_eq!(home_url(&c), "https://x.org/app/");
        assert_eq!(home_url(&config("")), "https://prometheus.io/blog/");
        let c = config("[server]\npublic_url = \"https://news.example.org\"\n");
        assert_eq!(home_url(&c), "https://news.example.org/");
    }

    #[test]
    fn routes_and_token_prefixes_agree() {
        for (route, prefix) in [CONFIRM, UNSUBSCRIBE, PREFERENCES]
            .into_iter()
            .zip(TOKEN_PREFIXES)
        {
            assert_eq!(route.strip_suffix("{token}"), Some(prefix));
        }
    }

    #[test]
    fn feed_urls_are_under_the_base_url() {
        assert_eq!(
            feed_url(&config(""), "tags/go/atom.xml"),
            "https://prometheus.io/blog/tags/go/atom.xml"
        );
    }

    #[test]
    fn a_warning_only_when_nothing_may_answer_the_links() {
        let warning = unanswered_links_warning(&config("")).expect("a warning");
        assert!(
            warning.contains("https://prometheus.io/blog/unsubscribe/TOKEN")
                && warning.contains("server.public_url"),
            "{warning}"
        );
        let served = config("[server]\npublic_url = \"https://prometheus.io/blog/\"\n");
        assert_eq!(unanswered_links_warning(&served), None);
        let mailto = config("[email]\nunsubscribe_mailto = \"leave@prometheus.io\"\n");
        assert_eq!(unanswered_links_warning(&mailto), None);
    }
}
