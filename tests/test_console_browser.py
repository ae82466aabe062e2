"""The event console in a real browser (issue 14's "done when"): `suprhook dev` (a real receiver and worker,
as a user starts them) and the README's `suprhook send-sample` lines; headless Chromium signs in from the
keyboard, filters to the failed event, opens it, reads why, replays it and sees it succeed. Also at 360 px.

Chromium and chromedriver are Debian's (`.ci/run` installs them; nothing is downloaded at run time): a missing
browser fails this test, never skips it. `SUPRHOOK_CONSOLE_SCREENSHOTS=docs/images` also saves the README's
screenshots (docs/images/console-list.png, console-event.png)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from .conftest import REPO, stop_group, wait_until
from .test_broker_outage import free_port
from .test_cli import suprhook, worker_ready

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


@pytest.fixture
def browser():
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: apt-get install chromium chromium-driver (.ci/run does)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,900", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)  # no Selenium Manager
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def dev(tmp_path):
    """`suprhook dev` on a free port with the probe handlers; (base URL, console token, probe dir, output)."""
    probe = tmp_path / "probe"
    probe.mkdir()
    port = free_port()
    proc = suprhook("dev", "--port", str(port), "--concurrency", "1", cwd=tmp_path, start_new_session=True,
                    env={"SUPRHOOK_HANDLERS": "tests.probe_console", "SUPRHOOK_PROBE_DIR": str(probe)})
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
    try:
        assert wait_until(lambda: any(worker_ready(line) for line in lines) or proc.poll() is not None, 60), \
            "".join(lines)
        assert proc.poll() is None, "".join(lines)
        console = next(line for line in lines if "event console" in line)
        assert f"http://127.0.0.1:{port}/console/" in console
        token = console.rsplit("the token ", 1)[1].strip()
        yield f"http://127.0.0.1:{port}", token, probe, lines
    finally:
        stop_group(proc)


def send_sample(base: str, *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "suprhook", "send-sample", "--url", f"{base}/webhooks/suprsend", *args],
                         capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def runs_of(data_dir: Path) -> list[dict]:
    from suprhook.handlers.stores.store import EventStore

    return EventStore(f"sqlite:///{data_dir / 'events.sqlite3'}").select_runs()


def shoot(driver, name: str, height: int | None = None) -> None:
    target = os.environ.get("SUPRHOOK_CONSOLE_SCREENSHOTS")
    if not target:
        return
    Path(target).mkdir(parents=True, exist_ok=True)
    size = driver.get_window_size()
    if height:
        driver.set_window_size(1280, height)
        time.sleep(0.3)
    driver.save_screenshot(str(Path(target) / name))
    driver.set_window_size(size["width"], size["height"])


def by_css(driver, selector: str):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, selector)


def test_sign_in_filter_open_replay_and_see_it_succeed(dev, browser, tmp_path):
    from selenium.webdriver.common.keys import Keys

    base, token, probe, lines = dev
    (probe / "crm-down").write_text("")  # the CRM is down: notify_crm fails (and, max_retries=0, is dead)
    send_sample(base)  # the README's line: a delivered status
    send_sample(base, "--type", "inbound", "--text", "YES", "--vendor", "meta")
    send_sample(base, "--status", "failed", "--error", "30003:Unreachable handset", "--vendor", "twilio",
                "--channel", "sms", "--distinct-id", "ana@example.com")
    send_sample(base, "--status", "seen", "--vendor", "meta")
    data = tmp_path / "var"
    assert wait_until(lambda: any(r["handler"].endswith("notify_crm") and r["status"] == "dead"
                                  for r in runs_of(data)), 30), "".join(lines)
    assert wait_until(lambda: sum(r["status"] == "succeeded" for r in runs_of(data)) >= 5, 30), runs_of(data)
    (probe / "crm-down").unlink()  # the CRM is back

    # Sign in from the keyboard: Tab to the token field, type, Enter.
    browser.get(f"{base}/console/")
    assert "/console/signin" in browser.current_url
    by_css(browser, "body").click()
    for _ in range(10):
        if browser.switch_to.active_element.get_attribute("id") == "token":
            break
        browser.switch_to.active_element.send_keys(Keys.TAB)
    assert browser.switch_to.active_element.get_attribute("id") == "token"
    browser.switch_to.active_element.send_keys(token + Keys.ENTER)
    assert wait_until(lambda: browser.find_elements("css selector", "table.events"), 10)
    assert len(browser.find_elements("css selector", "a.open")) == 4
    shoot(browser, "console-list.png")

    # The "Failed" shortcut: failed or dead runs. Only the failed status is left.
    browser.find_element("link text", "Failed").click()
    rows = browser.find_elements("css selector", "table.events tbody tr")
    from suprhook.handlers.observability.jsonlog import mask_distinct_id

    masked = mask_distinct_id("ana@example.com")  # SUPRHOOK_LOG_DISTINCT_ID's default, hash: as in the logs
    assert len(rows) == 1 and masked in rows[0].text and "dead" in rows[0].text, rows[0].text
    assert "ana@example.com" not in browser.page_source  # masked as in the logs
    rows[0].find_element("css selector", "a.open").click()

    # The event page says why, then replay it.
    assert "CRM unreachable: connection refused" in by_css(browser, "table.runs-table").text
    assert "twilio" in browser.page_source and "30003" in browser.page_source
    shoot(browser, "console-event.png", height=1500)
    by_css(browser, "#replay-event").click()
    assert "Replayed 1 run" in by_css(browser, "#message").text

    def succeeded() -> bool:
        browser.refresh()
        row = next(r for r in browser.find_elements("css selector", "tr.run-row")
                   if r.get_attribute("data-handler").endswith("notify_crm"))
        return "succeeded" in row.text

    assert wait_until(succeeded, 30, interval=0.5), by_css(browser, "table.runs-table").text
    assert "replay-event" not in browser.page_source  # nothing left to replay
    assert wait_until(lambda: any("CRM told that" in line for line in lines), 10)

    # 360 px wide: nothing overflows the page (wide tables scroll inside their own region), and it still works.
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": 360, "height": 760, "deviceScaleFactor": 1, "mobile": True})
    for path in ("/console/", "/console/?outcome=dead&outcome=failed", browser.current_url.replace(base, ""),
                 "/console/overview"):
        browser.get(base + path)
        width = browser.execute_script("return document.documentElement.scrollWidth")
        assert width <= 360, f"{path} is {width}px wide at 360px"
    browser.get(f"{base}/console/")
    by_css(browser, "#q").send_keys("ana@example.com" + Keys.ENTER)  # search from the keyboard
    assert len(browser.find_elements("css selector", "a.open")) == 1


def test_screenshots_in_docs_are_committed():
    for name in ("console-list.png", "console-event.png"):
        path = REPO / "docs" / "images" / name
        assert path.exists() and path.stat().st_size > 10_000, f"{path}: run with SUPRHOOK_CONSOLE_SCREENSHOTS"
    assert "docs/images/console-list.png" in (REPO / "README.md").read_text()


def test_ci_installs_chromium_from_debian():
    script = (REPO / ".ci" / "run").read_text()
    assert "chromium chromium-driver" in script and "/usr/bin/chromedriver" in script
    assert shutil.which("bash")
