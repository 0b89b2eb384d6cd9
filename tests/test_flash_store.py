"""The model store: atomic swaps, recovery from whatever a crash leaves, and 200 power cuts."""

from __future__ import annotations

import os
import random
import shutil
import signal
import time
from pathlib import Path

import pytest

from device.flashing.flasher import FlashConfig, Flasher
from device.flashing.store import ModelStore, StoreError
from tests.flash_fixtures import Bundles


@pytest.fixture()
def bundles(tmp_path: Path) -> Bundles:
    return Bundles(tmp_path / "bundles")


def flasher_for(store_dir: Path, bundles: Bundles, **cfg) -> Flasher:
    store = ModelStore.open(store_dir, bundles.verifier)
    return Flasher(store, bundles.key_file, FlashConfig(**cfg), self_test=bundles.self_test)


def test_install_activate_rollback_keeps_previous(tmp_path, bundles):
    f = flasher_for(tmp_path / "store", bundles)
    r1 = f.flash_path(bundles.make("decoder", "1.0.0"))
    assert r1["active"] == r1["installed"] and r1["previous"] is None
    r2 = f.flash_path(bundles.make("decoder", "1.1.0"))
    assert r2["active"] == r2["installed"] and r2["previous"] == r1["installed"]
    names = {m.name for m in f.store.list()}
    assert names == {r1["installed"], r2["installed"]}
    assert r2["installed"].startswith("decoder-1.1.0-") and r2["installed"].endswith(".dxm")
    back = f.rollback()
    assert back["active"] == r1["installed"] and f.store.active_name() == r1["installed"]
    assert f.store.previous_name() == r2["installed"]  # a second rollback returns to the new one
    f.rollback()
    assert f.store.active_name() == r2["installed"]


def test_recovery_from_dangling_and_corrupt_pointers(tmp_path, bundles):
    root = tmp_path / "store"
    f = flasher_for(root, bundles)
    old = f.flash_path(bundles.make("decoder", "1.0.0"))["installed"]
    new = f.flash_path(bundles.make("decoder", "1.1.0"))["installed"]
    (root / ".upload-abc.tmp").write_bytes(b"half a bundle")
    (root / ".active.xyz.tmp").write_bytes(b"decoder-")

    (root / "trial").write_text('{"model": "decoder-9-000000000000.dxm", "previous": null}')
    (root / "active").write_text("../../etc/passwd\n")  # corrupt
    s = ModelStore.open(root, bundles.verifier)
    assert s.active_name() == old  # falls back to `previous`
    assert not list(root.glob(".*.tmp")) and any("leftover" in r for r in s.recovered)
    assert not (root / "trial").exists()

    (root / "active").write_text(new + "\n")
    (root / "previous").unlink()
    (root / "models" / new).write_bytes((root / "models" / new).read_bytes()[:-10])  # truncated on disk
    s = ModelStore.open(root, bundles.verifier)
    assert s.active_name() == old  # the newest model that still verifies
    assert [m.name for m in s.list()] == [old]

    (root / "models" / old).unlink()
    s = ModelStore.open(root, bundles.verifier)
    assert s.active_name() is None and not (root / "active").exists()


def test_swapped_model_file_is_not_trusted(tmp_path, bundles):
    """A genuine bundle renamed to another model's name must not pass for it."""
    root = tmp_path / "store"
    f = flasher_for(root, bundles)
    a = f.flash_path(bundles.make("decoder", "1.0.0"))["installed"]
    b = f.flash_path(bundles.make("decoder", "1.1.0"))["installed"]
    shutil.copy(root / "models" / a, root / "models" / b)
    assert ModelStore.open(root, bundles.verifier).active_name() == a
    with pytest.raises(StoreError, match="no installed model"):
        ModelStore.open(root, bundles.verifier).get(b)


def test_prune_keeps_active_previous_and_newest(tmp_path, bundles):
    f = flasher_for(tmp_path / "store", bundles, keep_models=3)
    names = [f.flash_path(bundles.make("decoder", f"1.{i}.0"))["installed"] for i in range(6)]
    kept = [m.name for m in f.store.list()]
    assert kept == names[-3:]
    assert f.store.active_name() == names[-1] and f.store.previous_name() == names[-2]


def _flash_child(store_dir: Path, bundles: Bundles, bundle: Path) -> None:
    """Runs in a forked child: the whole device-side flash of ``bundle``, then exit."""
    try:
        f = flasher_for(store_dir, bundles)
        f.flash_path(bundle)
        os._exit(0)
    except BaseException:  # noqa: BLE001
        os._exit(3)


def test_power_cuts_leave_old_or_new_verified_model(tmp_path, bundles):
    """200 flashes killed with SIGKILL at random moments; after each, the store is opened as after
    a reboot: a verified model is active, and it is the old or the new one. Kill moments are
    spread over the measured length of a whole flash (receive, verify, install, swap)."""
    base = tmp_path / "base"
    old = flasher_for(base, bundles).flash_path(bundles.make("decoder", "1.0.0", size=32 * 1024))["installed"]
    new_bundle = bundles.make("decoder", "1.1.0", size=32 * 1024)
    work = tmp_path / "work"

    def fresh() -> None:
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(base, work)

    durations = []
    new = None
    for _ in range(3):  # how long an uninterrupted flash takes here, in a forked child
        fresh()
        t0 = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            _flash_child(work, bundles, new_bundle)
        _, status = os.waitpid(pid, 0)
        durations.append(time.perf_counter() - t0)
        assert os.waitstatus_to_exitcode(status) == 0
        new = ModelStore.open(work, bundles.verifier).active_name()
    assert new != old
    span = max(durations) * 1.3

    rng = random.Random(7)
    outcomes = {"old": 0, "new": 0, "finished": 0}
    for i in range(200):
        fresh()
        pid = os.fork()
        if pid == 0:
            _flash_child(work, bundles, new_bundle)
        time.sleep(rng.uniform(0, span))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        if os.WIFEXITED(status):
            outcomes["finished"] += 1
            assert os.WEXITSTATUS(status) == 0
        store = ModelStore.open(work, bundles.verifier)  # as after a reboot
        active = store.active()
        assert active is not None, f"cut {i}: no verified model active ({store.recovered})"
        assert active.name in (old, new), f"cut {i}: unexpected active {active.name}"
        outcomes["old" if active.name == old else "new"] += 1
        assert not list(work.glob(".*.tmp")) and not list((work / "models").glob(".*"))
        assert all(m.name in (old, new) for m in store.list())
    print(f"\npower cuts: 200, flash length {span / 1.3 * 1000:.1f} ms, active afterwards: old {outcomes['old']}, "
          f"new {outcomes['new']} (flash completed before the kill: {outcomes['finished']})")
    assert outcomes["old"] >= 10 and outcomes["new"] >= 10  # the kills really did land on both sides of the swap
