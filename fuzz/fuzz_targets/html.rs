//! Raw HTML through the sanitizer: whatever goes in, what comes out holds
//! no script a browser would run (checked on html5ever's parse of it, so
//! entities are decoded as a browser decodes them). The same text as a URL
//! through `Sanitizer::url` is either dropped or safe.
//!
//! The first byte picks the iframe policy and whether the URL is an image
//! source; the rest is the HTML.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use newsletter::config::IframePolicy;
use newsletter::html::Sanitizer;
use newsletter_fuzz::{is_script_url, script_in};
use url::Url;

static PAGE: LazyLock<Url> =
    LazyLock::new(|| Url::parse("https://blog.example.org/sub/blog/2024/01/02/post/").unwrap());

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let html = String::from_utf8_lossy(rest);
    let safe = Sanitizer {
        page_url: &PAGE,
        iframes: if flags & 1 == 0 {
            IframePolicy::Link
        } else {
            IframePolicy::Keep
        },
    };
    let out = safe.fragment(&html);
    if let Some(found) = script_in(&out) {
        panic!("the sanitized HTML runs script: {found}\ninput:  {html:?}\noutput: {out:?}");
    }

    let image = flags & 2 != 0;
    if let Some(url) = safe.url(&html, image) {
        let parsed = Url::parse(&url).unwrap_or_else(|e| panic!("{url:?} is not a URL: {e}"));
        assert!(
            !is_script_url(parsed.as_str()),
            "{html:?} became {url:?}, which runs script"
        );
    }
});
