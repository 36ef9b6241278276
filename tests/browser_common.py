"""Headless Chromium for the browser tests (tests/browser_*.py): one place
for the binary, the flags and the driver's set-up."""

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# How long a page may take to load, and a wait for an element.
WAIT_SECONDS = 15

FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]


def browser(profile: str, driver_log: str, height: int = 900, load_seconds: int = WAIT_SECONDS) -> webdriver.Chrome:
    """Chromium with its own profile folder, 900 pixels wide, keeping the
    page's console messages (driver.get_log("browser"))."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS + [f"--window-size=900,{height}", f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=CHROMEDRIVER, log_output=driver_log)
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(load_seconds)
    return driver
