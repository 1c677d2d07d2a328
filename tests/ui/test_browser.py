"""The web view in a real headless Chromium: load, filter, open threads, see their values.

Chromium and ChromeDriver are Debian's (scripts/install-emulators.sh installs
them); a machine without them fails here with the command that installs them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ui.browser import chrome
from tests.ui.conftest import READ_REQUESTS, Served, serve
from tests.ui.demo import HOSTILE_ID, all_ids

pytestmark = pytest.mark.slow
ALL_IDS = all_ids()


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    try:
        browser = chrome()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield browser
    finally:
        browser.quit()


@pytest.fixture(scope="module")
def site(demo_url: str) -> Iterator[Served]:
    with serve(demo_url) as running:
        yield running


def listed(driver: Any) -> set[str]:
    from selenium.webdriver.common.by import By

    return {
        row.get_attribute("data-thread") for row in driver.find_elements(By.CSS_SELECTOR, "tr[data-thread]")
    }


def test_browse_filter_and_open_threads(driver: Any, site: Served, tmp_path: Path) -> None:
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    base = f"http://127.0.0.1:{site.port}"
    driver.get(base + "/")
    assert driver.title == "Threads · cairnflow"
    assert listed(driver) == ALL_IDS
    # The nonce'd style block applied under the CSP: the header is dark, not the default white.
    header = driver.find_element(By.TAG_NAME, "header")
    assert header.value_of_css_property("background-color") == "rgba(29, 35, 48, 1)"

    # Filter by status with the form, as a person would.
    driver.find_element(By.CSS_SELECTOR, 'input[name="status"][value="interrupted"]').click()
    navigate(driver, driver.find_element(By.ID, "apply").click)
    assert "status=interrupted" in driver.current_url
    assert listed(driver) == {"wait-1", "agent-wait"}

    # Then by workflow and age, and layout.
    driver.find_element(By.CSS_SELECTOR, 'input[name="status"][value="interrupted"]').click()
    box = driver.find_element(By.NAME, "workflow")
    box.clear()
    box.send_keys("order")
    Select(driver.find_element(By.NAME, "age")).select_by_value("1h")
    navigate(driver, driver.find_element(By.ID, "apply").click)
    assert listed(driver) == {"done-1", "wait-1", "susp-1"}
    Select(driver.find_element(By.NAME, "older")).select_by_value("1h")
    navigate(driver, driver.find_element(By.ID, "apply").click)
    assert listed(driver) == set()

    # Open an executor thread from the list and see its values.
    driver.get(base + "/?status=interrupted")
    navigate(driver, driver.find_element(By.LINK_TEXT, "wait-1").click)
    assert driver.find_element(By.ID, "thread-id").text == "wait-1"
    page = driver.find_element(By.TAG_NAME, "main").text
    assert "Waiting for an answer to interrupt #1" in page
    assert '"question": "ship?"' in page
    kinds = [e.get_attribute("class") for e in driver.find_elements(By.CSS_SELECTOR, "#timeline li")]
    assert kinds == ["ev k-start", "ev k-task", "ev k-interrupt"]
    steps = driver.find_element(By.ID, "steps").text
    assert "add" in steps
    assert "7" in steps  # 5 + 2, the task's recorded value

    # A LangGraph thread: channel values and the pending interrupt of the newest checkpoint.
    driver.get(base + "/?layout=langgraph")
    navigate(driver, driver.find_element(By.LINK_TEXT, "agent-wait").click)
    newest = driver.find_elements(By.CSS_SELECTOR, "details.checkpoint")[0]
    assert newest.get_attribute("open") == "true"
    assert "draft: refund order 1182" in newest.text
    assert "send the refund?" in newest.text
    assert "__interrupt__" in newest.text

    # The hostile thread: its id and values show as text, and nothing ran.
    driver.get(base + "/")
    navigate(
        driver, driver.find_element(By.CSS_SELECTOR, f'tr[data-thread="{css_string(HOSTILE_ID)}"] a').click
    )
    assert driver.find_element(By.ID, "thread-id").text == HOSTILE_ID
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018 - raises when no script ran
    assert driver.find_elements(By.CSS_SELECTOR, "main script, main img") == []

    # The screenshots a person would look at are non-empty PNGs.
    shot = tmp_path / "thread.png"
    assert driver.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    violations = [
        e["message"] for e in driver.get_log("browser") if "Content Security Policy" in e["message"]
    ]
    assert violations == []
    assert set(site.store.calls) <= READ_REQUESTS


def navigate(driver: Any, action: Callable[[], None]) -> None:
    """Do ``action`` (a click that loads a page) and wait until the new page has replaced the old."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    old = driver.find_element(By.TAG_NAME, "html")
    action()
    WebDriverWait(driver, 30).until(expected_conditions.staleness_of(old))
    WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")


def css_string(text: str) -> str:
    """``text`` for a double-quoted CSS attribute selector."""
    return text.replace("\\", "\\\\").replace('"', '\\"')
