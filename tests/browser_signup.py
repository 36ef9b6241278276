#!/usr/bin/env python3
"""Signs up on the sign-up page in headless Chromium driven by Selenium, and
prints as JSON what a person, and the browser, saw.

usage: browser_signup.py --url BASE --email ADDRESS --name NAME
                         --form-shot PNG --error-shot PNG --sent-shot PNG

Three visits in one browser, typing with real key events:
  blocked  BASE/subscribe: "not an address" typed into the email field and
           the button clicked: the browser's own type=email check should
           stop the form
  invalid  the same once a script has taken type=email and required off:
           the server's answer (screenshot: --error-shot)
  signup   the home page, BASE/, whose form is /subscribe's: ADDRESS and
           NAME typed (screenshot: --form-shot), Enter pressed in the name
           field (screenshot of the answer: --sent-shot)

One line of output:
{"form": PAGE + {"email_label", "email_accessible_name", "name_label"},
 "blocked": {"navigated", "url_before", "url_after", "validation_message"},
 "invalid": PAGE + {"alert", "alert_id", "aria_invalid", "described_by",
                    "value"},
 "signup": PAGE,
 "console": {"blocked": LOG, "invalid": LOG, "signup": LOG}}
PAGE = {"url", "title", "h1", "lang", "status", "content_type", "charset"}
LOG = ["LEVEL message", ...]
where status is the HTTP status of the page's navigation as the browser saw
it, and LOG is what the browser logged in that visit (CSP violations and
failed loads show up there).

Chromium and its driver are the Debian packages' /usr/bin/chromium and
/usr/bin/chromedriver. Both are named, so Selenium Manager is never run and
nothing is downloaded.
"""

import argparse
import email
import email.policy
import glob
import json
import os
import re
import sys
import tempfile
import time

from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from browser_common import WAIT_SECONDS, browser


def page(driver) -> dict:
    """What any page shows, and what the browser knows of its response."""
    facts = driver.execute_script(
        """
        const nav = performance.getEntriesByType("navigation")[0];
        const h1 = document.querySelector("h1");
        return {
          url: location.href,
          title: document.title,
          h1: h1 ? h1.innerText : null,
          lang: document.documentElement.getAttribute("lang"),
          status: nav ? nav.responseStatus : null,
          content_type: document.contentType,
          charset: document.characterSet,
        };
        """
    )
    return facts


def submit_and_wait(driver, submit) -> None:
    """Runs `submit` and waits until the answer to the form has loaded."""
    # A marker that the navigation to the answer wipes out. Waiting for the
    # old <form> to go stale raced with Chrome detaching it: the driver
    # answered "Node with given id does not belong to the document" instead
    # of "stale", and the wait gave up.
    driver.execute_script("window.beforeSubmit = true")
    submit()
    # A script run while the page is being swapped may fail; try again.
    wait = WebDriverWait(driver, WAIT_SECONDS, ignored_exceptions=(WebDriverException,))
    wait.until(
        lambda d: d.execute_script(
            "return window.beforeSubmit !== true && document.readyState === 'complete'"
        )
    )


def label_for(driver, element) -> str | None:
    """The text of the <label for=…> that names `element`, if there is one."""
    labels = driver.find_elements(By.CSS_SELECTOR, f'label[for="{element.get_attribute("id")}"]')
    return labels[0].text if labels else None


def blocked_by_the_browser(driver, base: str) -> dict:
    driver.get(f"{base}/subscribe")
    email = driver.find_element(By.ID, "email")
    email.send_keys("not an address")
    # A marker that a navigation to the server's answer would wipe out.
    driver.execute_script("window.stillHere = true")
    before = driver.current_url
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    return {
        "navigated": not driver.execute_script("return window.stillHere === true"),
        "url_before": before,
        "url_after": driver.current_url,
        "validation_message": email.get_attribute("validationMessage"),
    }


def refused_by_the_server(driver, error_shot: str) -> dict:
    email = driver.find_element(By.ID, "email")
    # As an old browser or a script would: no type=email check in the way.
    driver.execute_script(
        "arguments[0].type = 'text'; arguments[0].removeAttribute('required')", email
    )
    email.clear()
    email.send_keys("not an address")
    submit_and_wait(driver, driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click)
    facts = page(driver)
    alerts = driver.find_elements(By.CSS_SELECTOR, "[role=alert]")
    email = driver.find_element(By.ID, "email")
    facts.update(
        {
            "alert": alerts[0].text if alerts else None,
            "alert_id": alerts[0].get_attribute("id") if alerts else None,
            "aria_invalid": email.get_attribute("aria-invalid"),
            "described_by": email.get_attribute("aria-describedby"),
            "value": email.get_attribute("value"),
        }
    )
    driver.save_screenshot(error_shot)
    return facts


def sign_up(driver, base: str, address: str, name: str, form_shot: str, sent_shot: str):
    driver.get(f"{base}/")
    form = page(driver)
    email = driver.find_element(By.ID, "email")
    name_field = driver.find_element(By.ID, "name")
    form.update(
        {
            "email_label": label_for(driver, email),
            "email_accessible_name": email.accessible_name,
            "name_label": label_for(driver, name_field),
        }
    )
    email.send_keys(address)
    name_field.send_keys(name)
    driver.save_screenshot(form_shot)
    submit_and_wait(driver, lambda: name_field.send_keys(Keys.ENTER))
    sent = page(driver)
    driver.save_screenshot(sent_shot)
    return form, sent


def confirmation_link(outbox: str, base: str) -> str:
    """The confirm link of the one message the server writes to `outbox`."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        for path in glob.glob(os.path.join(outbox, "*.eml")):
            with open(path, "rb") as f:
                message = email.message_from_binary_file(f, policy=email.policy.default)
            text = message.get_body(("plain",)).get_content()
            found = re.search(re.escape(base) + r"/confirm/\S+", text)
            if found:
                return found.group(0)
        if time.monotonic() > deadline:
            raise TimeoutError(f"no confirmation link in {outbox}")
        time.sleep(0.1)


def confirm(driver, link: str, shot: str):
    """Opens the confirm link, as a reader does, and presses its button."""
    driver.get(link)
    opened = page(driver)
    button = driver.find_element(By.CSS_SELECTOR, "form button")
    opened["button"] = button.accessible_name
    submit_and_wait(driver, button.click)
    confirmed = page(driver)
    driver.save_screenshot(shot)
    return opened, confirmed


def console(driver) -> list:
    return [f"{entry['level']} {entry['message']}" for entry in driver.get_log("browser")]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True, help="the server, e.g. http://127.0.0.1:8080")
    ap.add_argument("--email", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--form-shot", required=True, help="PNG of the filled-in form")
    ap.add_argument("--error-shot", required=True, help="PNG of the server's error")
    ap.add_argument("--sent-shot", required=True, help="PNG of the answer to the sign-up")
    ap.add_argument("--outbox", required=True, help="where the server writes the confirmation")
    ap.add_argument("--confirmed-shot", required=True, help="PNG of the answer to the confirmation")
    args = ap.parse_args()
    base = args.url.rstrip("/")

    with tempfile.TemporaryDirectory(prefix="newsletter-chromium-") as tmp:
        driver_log = os.path.join(tmp, "chromedriver.log")
        try:
            driver = browser(os.path.join(tmp, "profile"), driver_log)
        except Exception:
            if os.path.exists(driver_log):
                with open(driver_log, encoding="utf-8", errors="replace") as log:
                    sys.stderr.write(log.read()[-4000:])
            raise
        logged = {}
        try:
            blocked = blocked_by_the_browser(driver, base)
            logged["blocked"] = console(driver)
            invalid = refused_by_the_server(driver, args.error_shot)
            logged["invalid"] = console(driver)
            form, signup = sign_up(
                driver, base, args.email, args.name, args.form_shot, args.sent_shot
            )
            logged["signup"] = console(driver)
            link = confirmation_link(args.outbox, base)
            opened, confirmed = confirm(driver, link, args.confirmed_shot)
            logged["confirm"] = console(driver)
        except Exception:
            try:
                sys.stderr.write(f"at {driver.current_url}:\n{driver.page_source}\n")
            except Exception:
                pass  # the browser is gone; the traceback says why
            raise
        finally:
            driver.quit()

    report = {
        "form": form,
        "blocked": blocked,
        "invalid": invalid,
        "signup": signup,
        "opened": opened,
        "confirmed": confirmed,
        "console": logged,
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
