"""The status page in a real headless browser (Debian's chromium through Selenium/chromedriver):
it shows the model, live knob values from the control loop, and flashes a bundle through its form."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tests.flash_fixtures import Bundles
from tests.flash_server import TOKEN, LoopTwin, Service

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-quic", "--disable-dev-shm-usage"]


@pytest.fixture()
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (dev extra)")
    from selenium.webdriver.chrome.service import Service as DriverService

    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("Debian's chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in FLAGS:
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=DriverService(CHROMEDRIVER), options=opts)  # no driver download
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def wait_for(predicate, timeout: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_status_page_live_knobs_and_upload_form(tmp_path, browser):
    from selenium.webdriver.common.by import By

    bundles = Bundles(tmp_path / "bundles")
    status = tmp_path / "run" / "status.json"
    status.parent.mkdir()
    svc = Service(tmp_path, bundles, status_file=status, health_window_s=1.5, stale_s=1.0)
    svc.flasher.flash_path(bundles.make("brightness-vae", "1.0.0"))
    twin = LoopTwin(tmp_path / "store", status, bundles.key_file)
    try:
        browser.get(svc.url + "/")
        text = lambda id_: browser.find_element(By.ID, id_).text  # noqa: E731
        # reads need the token (issue 36): the page asks once and keeps it for the tab
        wait_for(lambda: "token needed" in text("conn"), what="the page to ask for a token")
        assert text("model-name") == "–"
        browser.find_element(By.ID, "access-token").send_keys(TOKEN)
        browser.find_element(By.ID, "access").click()
        wait_for(lambda: text("model-name") == "brightness-vae", what="the model name")
        browser.refresh()  # kept in sessionStorage: not asked again
        wait_for(lambda: text("model-name") == "brightness-vae", what="the model name after a reload")
        assert not browser.find_element(By.ID, "access-form").is_displayed()
        assert text("model-version") == "version 1.0.0"
        wait_for(lambda: "TWIN ANCHOR" in text("anchor"), what="the anchor voice")
        assert text("midi-port") == "twin:out (no synth)" and "connected" in text("midi-state")

        def knobs() -> dict[str, str]:
            # read the rows in one script call: the page re-renders them on every poll
            return dict(browser.execute_script(
                "return [...document.querySelectorAll('#knobs tr[data-knob]')]"
                ".map(r => [r.cells[1].textContent, r.querySelector('.knob-value').textContent])"))

        first = wait_for(lambda: knobs() if len(knobs()) == 4 else None, what="four knob rows")
        assert list(first) == ["brightness", "attack", "metallic", "movement"]
        changed = wait_for(lambda: (k := knobs()) != first and k, what="knob values to change")
        assert all(0.0 <= float(v) <= 1.0 for v in changed.values())

        # the form: a wrong token is refused with the reason, the right one flashes and activates
        new = bundles.make("brightness-vae", "1.1.0")
        browser.find_element(By.ID, "token").send_keys("not-the-token")
        browser.find_element(By.ID, "file").send_keys(str(new))
        browser.find_element(By.ID, "upload").click()
        wait_for(lambda: "refused" in text("upload-result"), what="the refusal")
        assert "token" in text("upload-result") and svc.flasher.store.active_name().startswith("brightness-vae-1.0.0")
        tok = browser.find_element(By.ID, "token")
        tok.clear()
        tok.send_keys(TOKEN)
        browser.find_element(By.ID, "upload").click()
        result = wait_for(lambda: "installed" in (t := text("upload-result")) and t, timeout=30, what="the upload")
        assert "active brightness-vae-1.1.0-" in result and "health confirmed" in result, result
        wait_for(lambda: text("model-version") == "version 1.1.0", what="the page to show the new model")
        assert svc.flasher.store.active_name().startswith("brightness-vae-1.1.0-")
        wait_for(lambda: "brightness-vae 1.1.0" in text("loop-model"), what="the loop to run the new model")
        assert "refused" in text("errors")  # the refused attempt is listed among recent errors
    finally:
        twin.close()
        svc.close()
