"""Voice banks in the model store and over the flash service: every bad bank is refused in one
line with the active model and bank unchanged; pointers survive power cuts; a bank for another
model never applies. Real signed banks (conversion/voice_bank.py), real store, real HTTP."""

from __future__ import annotations

import os
import random
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from conversion import keys, voice_bank
from device.flashing.bank_store import BankRejected, BankStore, verify_bank_file
from device.flashing.bundle_check import CachingVerifier
from device.flashing.flasher import FlashConfig, Flasher
from device.flashing.store import ModelStore, StoreError
from dxmacro.cli import main
from tests.flash_fixtures import Banks, Bundles
from tests.flash_server import TOKEN, Service


@pytest.fixture()
def bundles(tmp_path: Path) -> Bundles:
    return Bundles(tmp_path / "bundles")


@pytest.fixture()
def banks(bundles: Bundles) -> Banks:
    return Banks(bundles)


def flasher_for(store_dir: Path, bundles: Bundles) -> Flasher:
    store = ModelStore.open(store_dir, bundles.verifier)
    return Flasher(store, bundles.key_file, FlashConfig(), self_test=bundles.self_test)


def state(f: Flasher) -> tuple:
    return f.store.active_name(), f.banks.active_name(), sorted(b.file for b in f.banks.list())


def bad_banks(tmp_path: Path, banks: Banks, good: Path) -> dict[str, tuple[Path, str]]:
    data = good.read_bytes()
    tampered = bytearray(data)
    tampered[-100] ^= 0x01
    out = {"tampered": (bytes(tampered), "the voices do not match their SHA-256 (tampered or corrupt)"),
           "truncated": (data[:-50], "truncated: "),
           "other key": (banks.make("stage", key=Ed25519PrivateKey.generate()).read_bytes(), "signature does not verify with key"),
           "other model": (banks.make("stage", model_id="another-model").read_bytes(),
                           "made for model another-model, not for the active model decoder"),
           "0 voices": (banks.forged(0).read_bytes(), "holds 0 voices; a bank holds 1 to 1024"),
           "1025 voices": (banks.forged(1025).read_bytes(), "holds 1025 voices, over the limit of 1024"),
           "device-made": (voice_bank.encode_local("midi", "decoder", Banks.voices(2), np.zeros((2, 8), np.float32)), "device-made (unsigned) voice bank")}
    paths = {}
    for name, (blob, reason) in out.items():
        p = tmp_path / f"bad-{name.replace(' ', '-')}.dxb"
        p.write_bytes(blob)
        paths[name] = (p, reason)
    return paths


def test_install_activate_and_every_bad_bank_refused(tmp_path, bundles, banks):
    f = flasher_for(tmp_path / "store", bundles)
    model = f.flash_path(bundles.make("decoder", "1.0.0"))["installed"]
    good = banks.make("stage", n=8)
    r = f.flash_bank_path(good)
    assert r["active_bank"] == r["installed"] and r["installed"].startswith("stage-") and r["voices"] == 8
    assert f.banks.applies()[0].file == r["installed"]
    before = state(f)
    assert before == (model, r["installed"], [r["installed"]])
    for name, (path, reason) in bad_banks(tmp_path, banks, good).items():
        with pytest.raises(BankRejected) as err:
            f.flash_bank_path(path)
        assert reason in str(err.value) and "\n" not in str(err.value), (name, str(err.value))
        assert state(f) == before, name
        assert not list((tmp_path / "store").glob(".*.tmp")) and not list((tmp_path / "store" / "banks").glob(".*"))
    assert f.log.recent()[-1]["level"] == "error"


def test_other_model_active_falls_back_to_anchors_and_delete_rules(tmp_path, bundles, banks):
    f = flasher_for(tmp_path / "store", bundles)
    f.flash_path(bundles.make("decoder", "1.0.0"))
    stage = f.flash_bank_path(banks.make("stage"))["installed"]
    spare = f.flash_bank_path(banks.make("spare", seed=3), activate=False)["installed"]
    assert f.banks.active_name() == stage
    f.flash_path(bundles.make("other", "1.0.0"))  # another model id: the bank no longer applies
    bank, reason = f.banks.applies()
    assert bank is None and "made for model decoder, the active model is other" in reason
    assert f.status()["banks"]["applies"] is False and any("anchors" in e["message"] for e in f.log.recent())
    with pytest.raises(BankRejected, match="not for the active model other"):
        f.activate_bank(spare)
    f.rollback()
    assert f.banks.applies()[0].file == stage  # back on its model, the bank applies again
    with pytest.raises(StoreError, match="is the active bank; deactivate it first"):
        f.delete_bank(stage)
    assert f.activate_bank(spare)["active_bank"] == spare
    assert f.delete_bank(stage) == {"deleted": stage} and [b.file for b in f.banks.list()] == [spare]
    assert f.deactivate_bank()["previous_bank"] == spare and f.banks.active_name() is None
    assert "anchors" in f.banks.applies()[1]


def test_recovery_from_corrupt_pointer_and_bank(tmp_path, bundles, banks):
    root = tmp_path / "store"
    f = flasher_for(root, bundles)
    f.flash_path(bundles.make("decoder", "1.0.0"))
    stage = f.flash_bank_path(banks.make("stage"))["installed"]
    (root / "banks" / ".upload-x.tmp").write_bytes(b"half a bank")
    data = (root / "banks" / stage).read_bytes()
    (root / "banks" / stage).write_bytes(data[:-10])  # torn on disk
    reopened = flasher_for(root, bundles)
    assert reopened.banks.active_name() is None and not (root / "active-bank").exists()
    assert any("fails verification" in r for r in reopened.banks.recovered)
    assert not list((root / "banks").glob(".*.tmp")) and reopened.store.active_name() is not None
    (root / "active-bank").write_text("../../etc/passwd\n")
    assert flasher_for(root, bundles).banks.active_name() is None


def _bank_child(store_dir: Path, bundles: Bundles, bank: Path) -> None:
    try:
        flasher_for(store_dir, bundles).flash_bank_path(bank)
        os._exit(0)
    except BaseException:  # noqa: BLE001
        os._exit(3)


def test_power_cuts_leave_old_or_new_bank_and_the_model(tmp_path, bundles, banks):
    """80 bank flashes killed with SIGKILL at random moments: after each, opened as after a reboot,
    the active bank is the old or the new one and verifies, and the active model is unchanged."""
    base = tmp_path / "base"
    f = flasher_for(base, bundles)
    model = f.flash_path(bundles.make("decoder", "1.0.0"))["installed"]
    old = f.flash_bank_path(banks.make("stage", n=512))["installed"]
    new_bank = banks.make("encore", n=1024, seed=5)
    work = tmp_path / "work"
    verifier = CachingVerifier(keys.load_public_key(bundles.key_file), verify_bank_file)

    def fresh() -> None:
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(base, work)

    durations = []
    for _ in range(3):
        fresh()
        t0 = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            _bank_child(work, bundles, new_bank)
        _, status = os.waitpid(pid, 0)
        durations.append(time.perf_counter() - t0)
        assert os.waitstatus_to_exitcode(status) == 0
    new = BankStore.open(ModelStore.open(work, bundles.verifier), verifier).active_name()
    assert new not in (None, old)
    span = max(durations) * 1.3
    rng = random.Random(11)
    seen = {"old": 0, "new": 0}
    for i in range(80):
        fresh()
        pid = os.fork()
        if pid == 0:
            _bank_child(work, bundles, new_bank)
        time.sleep(rng.uniform(0, span))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        models = ModelStore.open(work, bundles.verifier)
        store = BankStore.open(models, verifier)
        active = store.active()
        assert models.active_name() == model, f"cut {i}"
        assert active is not None and active.file in (old, new), f"cut {i}: {store.active_name()} {store.recovered}"
        seen["old" if active.file == old else "new"] += 1
        assert not list(work.glob(".*.tmp")) and not list((work / "banks").glob(".*"))
        assert all(b.file in (old, new) for b in store.list())
    print(f"\nbank power cuts: 80, flash {span / 1.3 * 1000:.1f} ms, afterwards old {seen['old']} new {seen['new']}")
    assert seen["old"] >= 5 and seen["new"] >= 5


# -- over HTTP, and through `dxmacro flash` --------------------------------------------------------
def test_banks_over_the_service_and_the_command(tmp_path, bundles, banks, capsys):
    svc = Service(tmp_path, bundles)
    try:
        code, r = svc.upload(bundles.make("decoder", "1.0.0"))
        assert code == 200
        good = banks.make("stage")
        dev = ["--device", svc.url, "--token", TOKEN]
        assert main(["flash", str(good), *dev]) == 0
        out = capsys.readouterr().out
        assert "installed  stage-" in out and "8 voices for decoder" in out
        code, listing = svc.request("GET", "/api/banks")
        stage = listing["active"]
        assert code == 200 and listing["applies"] and [b["name"] for b in listing["banks"]] == [stage]
        for name, (path, reason) in bad_banks(tmp_path, banks, good).items():
            code, r = svc.request("POST", "/api/banks/upload?filename=x.dxb", path.read_bytes(),
                                  headers={"Content-Type": "application/octet-stream"})
            assert code == 422 and reason in r["error"], (name, r)
            assert main(["flash", str(path), *dev]) == 1
            err = capsys.readouterr().err
            assert err.startswith("dxmacro: error: device refused (422): ") and err.count("\n") == 1, err
        code, listing = svc.request("GET", "/api/banks")
        assert listing["active"] == stage and len(listing["banks"]) == 1
        assert svc.request("GET", "/api/status")[1]["store"]["active"]["model_id"] == "decoder"
        code, r = svc.request("POST", "/api/banks/delete", b'{"name": "%s"}' % stage.encode())
        assert code == 422 and "deactivate it first" in r["error"]
        assert svc.request("POST", "/api/banks/deactivate", token="wrong-token-0123456789")[0] == 401
        assert main(["flash", "--deactivate-bank", *dev]) == 0
        assert "none: the model anchors" in capsys.readouterr().out
        assert main(["flash", "--activate-bank", stage, *dev]) == 0
        assert main(["flash", "--banks", *dev]) == 0
        assert f"* {stage}  (8 voices for decoder)" in capsys.readouterr().out
        assert main(["flash", "--deactivate-bank", *dev]) == 0 and main(["flash", "--delete-bank", stage, *dev]) == 0
        assert svc.request("GET", "/api/banks")[1]["banks"] == []
    finally:
        svc.close()
