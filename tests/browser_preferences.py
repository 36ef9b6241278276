#!/usr/bin/env python3
"""Operates a reader's preference page in headless Chromium, driven by
Selenium, with the keyboard alone, and prints as JSON what the browser saw.

usage: browser_preferences.py --url PREFERENCE_URL --uncheck KEY --shot PNG

On the page: each topic checkbox's value, state, accessible name (what a
screen reader announces) and that of its fieldset (from the legend); the
name field's accessible name. Then, as a person without a mouse: Tab until the box of
topic KEY has the focus, Space to untick it, Tab on to the Save button,
Enter. The answer (where it led, its status, its notice) and the boxes
after a reload. A screenshot of the saved page goes to PNG.

One line of output: {"before": {"boxes", "name_field", "page"}, "tabs":
[focused element, ...], "after": {"boxes", "notice", "page"}, "reloaded":
{"boxes", "page"}, "console": ["LEVEL message", ...]}

Chromium and its driver are the Debian packages' /usr/bin/chromium and
/usr/bin/chromedriver, named so that nothing is downloaded.
"""

import argparse
import json
import os
import tempfile

from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from browser_common import WAIT_SECONDS, browser

# Enough to reach any control of the page from its top.
MOST_TABS = 30


def page(driver) -> dict:
    return driver.execute_script(
        """
        const nav = performance.getEntriesByType("navigation")[0];
        const h1 = document.querySelector("h1");
        return {
          url: location.href,
          h1: h1 ? h1.innerText : null,
          status: nav ? nav.responseStatus : null,
        };
        """
    )


def boxes(driver) -> list:
    found = []
    for box in driver.find_elements(By.CSS_SELECTOR, "input[type=checkbox]"):
        groups = box.find_elements(By.XPATH, "ancestor::fieldset")
        group = groups[0].accessible_name if groups else None
        found.append(
            {
                "value": box.get_attribute("value"),
                "checked": box.is_selected(),
                "accessible_name": box.accessible_name,
                "group": group,
            }
        )
    return found


def focused(driver) -> str:
    """The focused element as `tag:type:value:text`."""
    return driver.execute_script(
        """
        const e = document.activeElement;
        return [e.tagName.toLowerCase(), e.type || "", e.value || "", (e.innerText || "").trim()].join(":");
        """
    )


def tab_until(driver, wanted, tabs: list) -> None:
    """Presses Tab until `wanted(focused)` holds, noting each stop in `tabs`."""
    for _ in range(MOST_TABS):
        ActionChains(driver).send_keys(Keys.TAB).perform()
        now = focused(driver)
        tabs.append(now)
        if wanted(now):
            return
    raise SystemExit(f"Tab never reached the control; stops: {tabs}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--uncheck", required=True)
    ap.add_argument("--shot", required=True)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as profile:
        driver = browser(profile, os.path.join(profile, "driver.log"), height=1100)
        report = {}
        try:
            driver.get(args.url)
            report["before"] = {
                "page": page(driver),
                "boxes": boxes(driver),
                "name_field": driver.find_element(By.ID, "name").accessible_name,
            }
            tabs = []
            tab_until(driver, lambda f: f == f"input:checkbox:{args.uncheck}:", tabs)
            ActionChains(driver).send_keys(Keys.SPACE).perform()
            tab_until(driver, lambda f: f.startswith("button:") and f.endswith(":Save"), tabs)
            report["tabs"] = tabs
            driver.execute_script("window.beforeSubmit = true")
            ActionChains(driver).send_keys(Keys.ENTER).perform()
            wait = WebDriverWait(driver, WAIT_SECONDS, ignored_exceptions=(WebDriverException,))
            wait.until(
                lambda d: d.execute_script(
                    "return window.beforeSubmit !== true && document.readyState === 'complete'"
                )
            )
            notice = driver.find_elements(By.CSS_SELECTOR, "[role=status]")
            report["after"] = {
                "page": page(driver),
                "boxes": boxes(driver),
                "notice": notice[0].text if notice else None,
            }
            driver.save_screenshot(args.shot)
            driver.refresh()
            report["reloaded"] = {"page": page(driver), "boxes": boxes(driver)}
            report["console"] = [f"{e['level']} {e['message']}" for e in driver.get_log("browser")]
        finally:
            driver.quit()
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
