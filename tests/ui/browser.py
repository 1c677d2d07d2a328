"""A headless Chromium (Debian's ``chromium`` + ``chromium-driver``) driven by Selenium.

Used by the browser test and by ``scripts/ui_screenshots.py``. Nothing is
downloaded: the browser and driver are the system's, installed by
``scripts/install-emulators.sh``; Selenium Manager is kept offline.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

INSTALL_HINT = (
    "the browser test needs Debian's chromium and chromium-driver: run scripts/install-emulators.sh "
    "(as root, or with passwordless sudo), or: sudo apt-get install chromium chromium-driver"
)


def find_browser() -> tuple[str, str] | None:
    """(chromium, chromedriver) paths, or None when either is missing."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def chrome(width: int = 1280, height: int = 900) -> Any:
    """A headless Chromium WebDriver; ``RuntimeError`` with :data:`INSTALL_HINT` when it is missing."""
    found = find_browser()
    if found is None:
        raise RuntimeError(INSTALL_HINT)
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager fetch a browser
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root in CI containers
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--no-first-run",
        f"--window-size={width},{height}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(executable_path=found[1]))
