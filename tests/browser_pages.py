#!/usr/bin/env python3
"""Opens pages in headless Chromium driven by Selenium and prints, as JSON,
what a person and the browser saw on each.

usage: browser_pages.py --shots DIR URL [URL ...]

For each URL, in one browser: the page's title, its first h1, its visible
text, its links, the computed background colour of <body> and whether any
element has a box (so an unstyled or empty page shows), the HTTP status of
the navigation, and what the browser logged (CSP violations and failed
loads show up there). A screenshot of each goes to DIR/page-N.png.

One line of output: [{"url", "title", "h1", "text", "links", "status",
"background", "console": ["LEVEL message", ...]}, ...]

Chromium and its driver are the Debian packages' /usr/bin/chromium and
/usr/bin/chromedriver, named so that nothing is downloaded.
"""

import argparse
import json
import os
import tempfile


from browser_common import browser


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shots", required=True)
    ap.add_argument("urls", nargs="+")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as profile:
        driver = browser(profile, os.path.join(profile, "driver.log"), height=1100, load_seconds=60)
        seen = []
        try:
            for n, url in enumerate(args.urls):
                driver.get(url)
                facts = driver.execute_script(
                    """
                    const nav = performance.getEntriesByType("navigation")[0];
                    const h1 = document.querySelector("h1");
                    return {
                      url: location.href,
                      title: document.title,
                      h1: h1 ? h1.innerText : null,
                      text: document.body.innerText,
                      links: Array.from(document.querySelectorAll("a[href]"), a => a.href),
                      status: nav ? nav.responseStatus : null,
                      background: getComputedStyle(document.body).backgroundColor,
                    };
                    """
                )
                facts["console"] = [f"{e['level']} {e['message']}" for e in driver.get_log("browser")]
                driver.save_screenshot(os.path.join(args.shots, f"page-{n}.png"))
                seen.append(facts)
        finally:
            driver.quit()
    print(json.dumps(seen))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
