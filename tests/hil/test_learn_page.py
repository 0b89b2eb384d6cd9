"""MIDI learn from the status page, through real parts: a headless chromium on the page, the real
flash service (aiohttp), the device's own loop (run_device, simulated synth) following the store,
and a controller process turning a control on a real JACK port. The binding lands in device.toml,
is played at once (an existing controller knob), and is read back by a restart."""

from __future__ import annotations

import os
import threading
import time

import pytest

from device.control.config import load_config
from device.control.learn_service import REQUEST_FILE
from hardware.midi_player import MidiPlayer
from tests.flash_fixtures import Bundles
from tests.flash_server import TOKEN, Service, interim_loader
from tests.test_flash_browser import browser, wait_for  # noqa: F401 - the fixture

pytestmark = pytest.mark.timeout(120)


def test_learn_a_knob_from_the_status_page(jack, tmp_path, browser):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from device.runtime import run_device

    bundles = Bundles(tmp_path / "bundles")
    status = tmp_path / "run" / "status.json"
    status.parent.mkdir()
    svc = Service(tmp_path, bundles, status_file=status)
    svc.flasher.flash_path(bundles.make("brightness-vae", "1.0.0"))
    ctl = MidiPlayer("learn-ctl").start()
    config = tmp_path / "device.toml"
    config.write_text(f"""# the stage box
[device]
status_file = "{status}"

[model]
decoder = "bundle"
store = "{tmp_path / 'store'}"

[midi]
profile = "dexed"
input = "{ctl.port}"
input_api = "jack"

[[knob]]
knob = 0
cc = 90             # moved to what the page learns

[[knob]]
knob = 1
cc = 91
""")
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            run_device(load_config(config), simulate=True, model_loader=interim_loader(bundles), stop=stop,
                       out=open(os.devnull, "w"))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    loop_thread = threading.Thread(target=run, daemon=True)
    loop_thread.start()
    try:
        browser.get(svc.url + "/")
        text = lambda id_: browser.find_element(By.ID, id_).text  # noqa: E731
        wait_for(lambda: "token needed" in text("conn"), what="the page to ask for a token")
        browser.find_element(By.ID, "access-token").send_keys(TOKEN)
        browser.find_element(By.ID, "access").click()
        wait_for(lambda: browser.find_element(By.ID, "learn").is_enabled(), what="Learn to be offered")
        choice = Select(browser.find_element(By.ID, "learn-knob"))
        assert [o.text for o in choice.options][-1] == "a new knob 3"
        choice.select_by_value("0")
        browser.find_element(By.ID, "learn").click()
        wait_for(lambda: "turn a control" in text("learn-state"), what="the loop to listen")
        assert (tmp_path / "store" / REQUEST_FILE).exists()
        ctl.play([(0.01, bytes([0xB3, 23, v])) for v in range(40, 70)])  # one turn on channel 4
        wait_for(lambda: "CC 23 absolute on channel 4" in text("learn-state"), what="the binding on the page")
        assert "applies now" in text("learn-state") and "knob 1" in text("learn-state")
        cfg = load_config(config)  # what a restart reads
        assert (cfg.knobs[0].cc, cfg.knobs[0].cc_channel, cfg.knobs[1].cc) == (23, 4, 91)
        assert "# the stage box" in config.read_text()
        # played at once: the learned control moves knob 1 on the page
        before = browser.execute_script("return document.querySelector('#knobs tr[data-knob=\"0\"] .knob-value')"
                                        ".textContent")
        ctl.play([(0.01, bytes([0xB3, 23, v])) for v in range(0, 128, 4)] + [(0.01, bytes([0xB3, 23, 3]))])
        wait_for(lambda: browser.execute_script(
            "return document.querySelector('#knobs tr[data-knob=\"0\"] .knob-value').textContent") != before,
            what="knob 1 to move with the learned control")
        # a page learn can be cancelled
        choice.select_by_value("1")
        browser.find_element(By.ID, "learn").click()
        wait_for(lambda: browser.find_element(By.ID, "learn-cancel").is_displayed(), what="Cancel")
        browser.find_element(By.ID, "learn-cancel").click()
        wait_for(lambda: text("learn-state") == "cancelled", what="the learn to be cancelled")
    finally:
        stop.set()
        loop_thread.join(10)
        ctl.stop()
        svc.close()
    assert not errors, errors
