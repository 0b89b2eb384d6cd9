"""The device steps through the store's active voice bank: the real control loop (run_device,
simulated knobs and synth) following a real store fed over the real flash service."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from device.flashing.bank_follow import active_bank_voices
from tests.flash_fixtures import Banks, Bundles
from tests.flash_server import RealLoop, Service


def wait_for(status: Path, predicate, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    doc: dict = {}
    while time.monotonic() < deadline:
        try:
            doc = json.loads(status.read_text())
        except (OSError, ValueError):
            doc = {}
        if doc and predicate(doc):
            return doc
        time.sleep(0.05)
    raise AssertionError(f"status never matched: {doc.get('anchor')} {doc.get('model')}")


def test_loop_follows_the_active_bank_and_the_model(tmp_path):
    bundles = Bundles(tmp_path / "bundles")
    banks = Banks(bundles)
    svc = Service(tmp_path, bundles)
    status = tmp_path / "status.json"
    try:
        assert svc.upload(bundles.make("decoder", "1.0.0"))[0] == 200
        loop = RealLoop(tmp_path / "store", status, bundles)
        try:
            first_anchor = wait_for(status, lambda d: d.get("anchor"))["anchor"]["name"]
            assert not first_anchor.startswith("BANK")
            code, r = svc.request("POST", "/api/banks/upload?filename=stage.dxb", banks.make("stage").read_bytes())
            assert code == 200, r
            wait_for(status, lambda d: d["anchor"]["name"].strip() == "BANK 0")  # the bank's first voice
            # another model id: its anchors, not the bank (made for "decoder")
            assert svc.upload(bundles.make("other", "1.0.0"))[0] == 200
            wait_for(status, lambda d: d["model"]["id"] == "other" and not d["anchor"]["name"].startswith("BANK"))
            assert svc.request("POST", "/api/rollback")[0] == 200  # back to "decoder": the bank applies again
            wait_for(status, lambda d: d["model"]["id"] == "decoder" and d["anchor"]["name"].strip() == "BANK 0")
            assert svc.request("POST", "/api/banks/deactivate")[0] == 200
            wait_for(status, lambda d: not d["anchor"]["name"].startswith("BANK"))
        finally:
            loop.close()
    finally:
        svc.close()


def test_active_bank_voices_says_why_not(tmp_path):
    bundles = Bundles(tmp_path / "bundles")
    store = tmp_path / "store"
    (store / "banks").mkdir(parents=True)
    assert active_bank_voices(store, "decoder", 8) == (None, "no active bank: the model's anchors")
    bank = Banks(bundles).make("stage", n=3)
    (store / "banks" / "stage-x.dxb").write_bytes(bank.read_bytes())
    (store / "active-bank").write_text("stage-x.dxb\n")
    voices, reason = active_bank_voices(store, "decoder", 8)
    assert [v.name for v in voices] == ["BANK 0", "BANK 1", "BANK 2"] and reason == "bank stage-x.dxb (3 voices)"
    assert voices[1].latent.shape == (8,)
    assert "made for model decoder, not for the active model other" in active_bank_voices(store, "other", 8)[1]
    assert "latents of size 8, the model 225" in active_bank_voices(store, "decoder", 225)[1]
    (store / "banks" / "stage-x.dxb").write_bytes(bank.read_bytes()[:-1])
    assert "truncated" in active_bank_voices(store, "decoder", 8)[1]
    (store / "active-bank").write_text("../models/x\n")
    assert "not a bank name" in active_bank_voices(store, "decoder", 8)[1]
