"""The signed voice bank: round trip, every way a bank can be wrong is refused in one line, and
`dxmacro bank build|inspect|verify` on the shipped default model."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from conversion import bundle, keys, voice_bank
from dx7 import Voice
from dx7.files import encode_banks
from dxmacro.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keys")
    private, public = keys.generate(folder / "signing")
    return keys.load_private_key(private), keys.load_public_key(public), private, public


def some_voices(n: int) -> list[Voice]:
    """Different, valid voices: INIT VOICE with its algorithm, feedback, OP1's coarse frequency
    (index 123) and output level (121) and its name changed: each sounds different."""
    base = list(Voice.init().values)
    out = []
    for i in range(n):
        v = list(base)
        v[134], v[135] = i % 32, i % 8  # algorithm, feedback
        v[123], v[121] = 1 + i % 4, 99 - 8 * (i % 3)
        out.append(Voice(tuple(v[:145]) + tuple(f"VOICE {i:<4d}".encode()[:10])))
    return out


def make(key, n: int = 3, latent: int = 8, model_id: str = "flow-abc-seed0", name: str = "test") -> bytes:
    lat = np.random.default_rng(n).normal(size=(n, latent)).astype(np.float32)
    return voice_bank.encode(name, model_id, some_voices(n), lat, key, extra={"model_version": "1.0.0"})


def forged(private, manifest: dict, body: bytes, magic: bytes = voice_bank.MAGIC) -> bytes:
    """A bank signed with the real key whose content the writer would never produce."""
    text = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    return bundle.frame(magic, 1, text, private) + body


def test_round_trip_and_anchors(key):
    private, public, *_ = key
    data = make(private, 5)
    b = voice_bank.decode(data, public)
    assert b.signed_by == keys.key_id(public) and b.model_id == "flow-abc-seed0" and b.origin == "host"
    assert b.voices == tuple(some_voices(5)) and b.latents.shape == (5, 8) and b.latents.dtype == np.float32
    np.testing.assert_array_equal(b.latents, np.random.default_rng(5).normal(size=(5, 8)).astype(np.float32))
    anchors = b.anchors()
    assert [a.name for a in anchors] == [f"VOICE {i}" for i in range(5)] and anchors[2].voice == some_voices(5)[2]
    assert voice_bank.is_bank(data) and not voice_bank.is_bank(b"DXMB\0\1")
    b.require_model("flow-abc-seed0")
    with pytest.raises(voice_bank.BankError, match="made for model flow-abc-seed0, not for the active model other"):
        b.require_model("other")


def test_every_single_byte_flip_is_refused(key):
    private, public, *_ = key
    data = make(private, 2)
    reasons = set()
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x01
        with pytest.raises(voice_bank.BankError) as err:
            voice_bank.decode(bytes(bad), public)
        assert "\n" not in str(err.value)
        reasons.add(str(err.value).split(": ", 1)[1][:24])
    assert len(reasons) >= 3  # magic / version / signature / voices' hash


def test_truncated_extended_other_key(key, tmp_path):
    private, public, *_ = key
    data = make(private, 3)
    for cut in (0, 3, 10, 100, len(data) - 1):
        with pytest.raises(voice_bank.BankError):
            voice_bank.decode(data[:cut], public)
    with pytest.raises(voice_bank.BankError, match="truncated: 374 bytes of voices, the manifest says 561"):
        voice_bank.decode(data[:-187], public)
    with pytest.raises(voice_bank.BankError, match="1 unexpected bytes after the last voice"):
        voice_bank.decode(data + b"\0", public)
    other = keys.load_public_key(keys.generate(tmp_path / "other")[1])
    with pytest.raises(voice_bank.BankError, match="signature does not verify with key"):
        voice_bank.decode(data, other)


@pytest.mark.parametrize("n, expected", [(0, "holds 0 voices; a bank holds 1 to 1024"),
                                         (1025, "holds 1025 voices, over the limit of 1024")])
def test_voice_count_limits(key, n, expected):
    private, public, *_ = key
    with pytest.raises(voice_bank.BankError, match="1 to 1024 voices"):
        voice_bank.encode("x", "m", some_voices(n) if n else [], np.zeros((n, 4), np.float32), private)
    body = b"".join(v.to_unpacked() + bytes(16) for v in some_voices(2)) * (n // 2 if n else 0)
    doc = {"format": voice_bank.FORMAT, "format_version": 1, "origin": "host", "name": "x", "model_id": "m",
           "latent_size": 4, "voices": n, "latent_method": "encoder", "body": {"size": len(body), "sha256": "0"}}
    with pytest.raises(voice_bank.BankError, match=expected):
        voice_bank.decode(forged(private, doc, body), public)


def test_hostile_manifests_are_refused(key):
    private, public, *_ = key
    base = voice_bank.decode(make(private, 1), public).manifest
    body = make(private, 1)[-(155 + 32):]
    for change, expected in [({"name": "../etc"}, "bank name"), ({"model_id": "a/b"}, "model id"),
                             ({"latent_size": 10**9}, "latent size"), ({"origin": "device"}, "origin"),
                             ({"format": "dxmacro-bundle"}, "not a voice bank manifest"),
                             ({"body": {"size": 1}}, "voice table")]:
        with pytest.raises(voice_bank.BankError, match=expected):
            voice_bank.decode(forged(private, base | change, body), public)
    bad_voice = bytearray(body)
    bad_voice[134] = 77  # algorithm 0..31
    doc = base | {"body": {"size": len(body), "sha256": hashlib.sha256(bad_voice).hexdigest()}}
    with pytest.raises(voice_bank.BankError, match="voice 1 is not a valid DX7 voice"):
        voice_bank.decode(forged(private, doc, bytes(bad_voice)), public)


def forged_v2(private, manifest: dict, body: bytes) -> bytes:
    text = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    return bundle.frame(voice_bank.MAGIC, 2, text, private) + body


def test_tuned_knobs_round_trip_and_reach_the_anchors(key):
    """Format 2: each voice's tuned knobs (a mask of the 145 parameters per knob) come back bit for
    bit, keyed by the knob's latent dimension; an untuned bank stays format 1 with no masks."""
    private, public, *_ = key
    n, dims = 3, [0, 2, 5]
    lat = np.random.default_rng(0).normal(size=(n, 8)).astype(np.float32)
    masks = np.random.default_rng(1).random((n, len(dims), 145)) < 0.2
    data = voice_bank.encode("tuned", "flow-abc-seed0", some_voices(n), lat, private, knob_masks=(dims, masks))
    b = voice_bank.decode(data, public)
    assert b.manifest["format_version"] == 2 and b.manifest["knob_dims"] == dims
    for i, anchor in enumerate(b.anchors()):
        assert sorted(anchor.knob_masks) == dims
        for j, d in enumerate(dims):
            assert np.array_equal(anchor.knob_masks[d], masks[i, j])
    np.testing.assert_array_equal(b.latents, lat)
    plain = voice_bank.decode(make(private, 2), public)
    assert plain.manifest["format_version"] == 1 and plain.knob_masks is None
    assert all(a.knob_masks is None for a in plain.anchors())
    with pytest.raises(voice_bank.BankError, match="do not fit 3 voices and 3 knobs"):
        voice_bank.encode("t", "m", some_voices(n), lat, private, knob_masks=(dims, masks[:, :2]))
    with pytest.raises(voice_bank.BankError, match="knob dims .* are not 1 to 16 distinct latent dimensions"):
        voice_bank.encode("t", "m", some_voices(n), lat, private, knob_masks=([0, 0, 9], masks))


def test_hostile_tuned_banks_are_refused(key):
    private, public, *_ = key
    masks = np.ones((1, 2, 145), bool)
    data = voice_bank.encode("t", "m", some_voices(1), np.zeros((1, 4), np.float32), private,
                             knob_masks=([0, 1], masks))
    good = voice_bank.decode(data, public)
    doc, body = good.manifest, data[-(155 + 16 + 2 * voice_bank.MASK_BYTES):]
    for dims in ([0, 9], [1, 1], "0,1", [], list(range(17)), [True, False]):
        with pytest.raises(voice_bank.BankError, match="knob_dims"):
            voice_bank.decode(forged_v2(private, doc | {"knob_dims": dims}, body), public)
    bad = bytearray(body)
    bad[-1] |= 0x01  # the 152nd bit of the last mask: past the 145th parameter
    bad_doc = doc | {"body": {"size": len(bad), "sha256": hashlib.sha256(bad).hexdigest()}}
    with pytest.raises(voice_bank.BankError, match="voice 1: a knob mask sets bits past the last parameter"):
        voice_bank.decode(forged_v2(private, bad_doc, bytes(bad)), public)
    v1 = {k: v for k, v in doc.items() if k != "knob_dims"} | {"format_version": 1}
    with pytest.raises(voice_bank.BankError, match="voice table"):  # a format 1 reader's record size
        voice_bank.decode(forged(private, v1, body), public)
    with pytest.raises(voice_bank.BankError, match="format 1 bank carries no tuned knobs"):
        voice_bank.decode(forged(private, v1 | {"knob_dims": [0, 1]}, body), public)


def test_device_made_banks_are_read_only_locally(key):
    private, public, *_ = key
    lat = np.zeros((2, 8), np.float32)
    local = voice_bank.encode_local("from-midi", "flow-abc-seed0", some_voices(2), lat)
    b = voice_bank.decode_local(local)
    assert b.origin == "device" and b.signed_by is None and len(b.voices) == 2
    with pytest.raises(voice_bank.BankError, match="device-made .unsigned. voice bank"):
        voice_bank.decode(local, public)
    with pytest.raises(voice_bank.BankError, match="bad magic"):
        voice_bank.decode_local(make(private, 2))
    signed_looking = bytearray(local)
    signed_looking[-(2 * (155 + 32)) - 1] ^= 1  # the last byte of the (zero) signature slot
    with pytest.raises(voice_bank.BankError, match="carries no signature"):
        voice_bank.decode_local(bytes(signed_looking))


# -- the command, on the shipped default model -----------------------------------------------------
def _cart(path: Path, voices: list[Voice]) -> Path:
    path.write_bytes(encode_banks(voices))
    return path


def test_bank_build_inspect_verify(key, tmp_path, capsys):
    from host_training.jobs.export import load_decoder

    *_, private_file, public_file = key
    cart = _cart(tmp_path / "cart.syx", some_voices(3))
    out = tmp_path / "voices.dxb"
    assert main(["bank", "build", str(cart), "--key", str(private_file), "--out", str(out)]) == 0
    b = voice_bank.read(out, keys.load_public_key(public_file))
    # 32 voices: encode_banks pads the cartridge with INIT VOICE
    assert len(b.voices) == 32 and b.voices[:3] == tuple(some_voices(3)) and b.name == "voices"
    _, info = load_decoder(REPO / "host_training" / "default_model")  # what `dxmacro convert` signs into the bundle
    assert b.model_id == str(info["model_id"]) and b.latent_size == info["latent_size"]
    assert b.manifest["sources"][0] == ["cart.syx", 1] and b.manifest["latent_method"] == "encoder"
    assert np.isfinite(b.latents).all() and float(np.abs(b.latents[0] - b.latents[1]).max()) > 0.01
    capsys.readouterr()
    assert main(["bank", "verify", str(out), "--pubkey", str(public_file), "--model-id", b.model_id]) == 0
    assert "32 voices for model flow-" in capsys.readouterr().out
    assert main(["bank", "inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "signature NOT checked" in text and "cart.syx #3" in text and "'VOICE 2   '" in text


def test_bank_command_errors_are_one_line(key, tmp_path, capsys):
    *_, private_file, public_file = key
    cart = _cart(tmp_path / "cart.syx", some_voices(1))
    notsyx = tmp_path / "notes.txt"
    notsyx.write_text("hello")
    other_pub = keys.generate(tmp_path / "other")[1]
    out = tmp_path / "v.dxb"
    assert main(["bank", "build", str(cart), "--key", str(private_file), "--out", str(out)]) == 0
    capsys.readouterr()
    cases = [(["bank", "build", str(notsyx), "--key", str(private_file), "--out", str(tmp_path / "x.dxb")],
              "not sysex"),
             (["bank", "build", str(cart), "--key", str(private_file), "--out", str(tmp_path / "x.dxb"), "--run",
               str(tmp_path)], "holds no trained model"),
             (["bank", "verify", str(out), "--pubkey", str(other_pub)], "signature does not verify"),
             (["bank", "verify", str(out), "--pubkey", str(public_file), "--model-id", "other-model"],
              "not for the active model other-model"),
             (["bank", "verify", str(cart), "--pubkey", str(public_file)], "not a dxmacro voice bank (bad magic)")]
    for argv, expected in cases:
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert err.startswith("dxmacro: error: ") and err.count("\n") == 1 and expected in err, err
    assert not (tmp_path / "x.dxb").exists()
