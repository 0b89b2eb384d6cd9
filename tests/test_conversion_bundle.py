"""The signed bundle format: round trip, and every way a bundle can be wrong is refused."""

import json
import struct

import numpy as np
import pytest

from conversion import bundle, keys
from dxmacro.cli import main
from dxmacro.errors import DxmacroError


def _members(tflite: bytes = b"TFL3" + bytes(range(256)) * 3) -> dict[str, bytes]:
    golden = {"latents": np.linspace(-1, 1, 2 * 8).reshape(2, 8).tolist(),
              "kernels": {"xnnpack": {"int8_codes": [[1, -2, 3]] * 2, "int8_values": [[0, 99, 7]] * 2}}}
    anchors = [{"name": "INIT VOICE", "voice": "00" * 155, "latent": [0.0] * 8}]
    return {"model.tflite": tflite, "anchors.json": json.dumps(anchors).encode(),
            "golden.json": json.dumps(golden).encode()}


MANIFEST = {"model_id": "test-decoder", "version": "1.2.0", "latent_size": 8, "knobs": [
    {"index": 0, "dim": 0, "name": "dark/bright", "low": -2.0, "high": 2.0}]}


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keys")
    private, public = keys.generate(folder / "signing")
    return keys.load_private_key(private), keys.load_public_key(public), public


def test_round_trip(key, tmp_path):
    private, public, _ = key
    path = tmp_path / "model.dxm"
    bundle.write(path, MANIFEST, _members(), private)
    b = bundle.read(path, public)
    assert b.model_id == "test-decoder" and b.version == "1.2.0" and b.signed_by == keys.key_id(public)
    assert b.tflite == _members()["model.tflite"] and b.anchors[0]["name"] == "INIT VOICE"
    assert b.golden["latents"].dtype == np.float32 and b.golden["kernels"]["xnnpack"]["int8_codes"].tolist() == [[1, -2, 3]] * 2
    assert [m["name"] for m in b.manifest["members"]] == list(bundle.MEMBERS)


def test_every_single_byte_flip_is_rejected(key):
    private, public, _ = key
    data = bundle.encode(MANIFEST, _members(), private)
    assert bundle.decode(data, public).model_id == "test-decoder"
    reasons = set()
    for i in range(len(data)):
        for flip in (0x01, 0x80):
            bad = bytearray(data)
            bad[i] ^= flip
            with pytest.raises(bundle.BundleError) as err:
                bundle.decode(bytes(bad), public)
            reasons.add(str(err.value).split(": ", 1)[1].split(" (")[0][:30])
    assert len(data) > 1000 and len(reasons) >= 3  # magic/version, signature, member hash...


def test_truncated_and_extended(key):
    private, public, _ = key
    data = bundle.encode(MANIFEST, _members(), private)
    for cut in (0, 3, 10, 100, len(data) // 2, len(data) - 1):
        with pytest.raises(bundle.BundleError):
            bundle.decode(data[:cut], public)
    with pytest.raises(bundle.BundleError, match="unexpected bytes"):
        bundle.decode(data + b"\0", public)


def test_wrong_key_unknown_version_missing_member(key, tmp_path):
    private, public, _ = key
    data = bundle.encode(MANIFEST, _members(), private)
    other = keys.load_public_key(keys.generate(tmp_path / "other")[1])
    with pytest.raises(bundle.BundleError, match="does not verify with key"):
        bundle.decode(data, other)
    v2 = data[:4] + struct.pack(">H", 2) + data[6:]
    with pytest.raises(bundle.BundleError, match="unknown bundle format version 2"):
        bundle.decode(v2, public)
    with pytest.raises(bundle.BundleError, match="exactly"):
        bundle.encode(MANIFEST, {k: v for k, v in _members().items() if k != "golden.json"}, private)


def _forge(private, manifest_doc: dict, body: bytes) -> bytes:
    """A correctly signed bundle with an arbitrary (malicious) manifest: what a leaked key could make."""
    text = json.dumps(manifest_doc).encode()
    sig = private.sign(bundle._signed_part(1, text))
    return struct.pack(">4sHI", b"DXMB", 1, len(text)) + text + sig + body


@pytest.mark.parametrize("table, match", [
    ([{"name": "../../etc/passwd", "size": 1, "sha256": ""}], "unexpected member name"),
    ([{"name": "/abs", "size": 1, "sha256": ""}], "unexpected member name"),
    ([{"name": "model.tflite", "size": 0, "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}] * 2,
     "appears twice"),
    ([{"name": "model.tflite", "size": 0, "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}],
     "missing member"),
    ([{"name": "model.tflite", "size": 10 ** 9, "sha256": "x"}], "truncated"),
])
def test_hostile_member_tables(key, table, match):
    private, public, _ = key
    doc = {"format": "dxmacro-bundle", "format_version": 1, "members": table, **MANIFEST}
    with pytest.raises(bundle.BundleError, match=match):
        bundle.decode(_forge(private, doc, b"x"), public)


def test_cli_keys_inspect_verify(key, tmp_path, capsys):
    private, public, public_file = key
    path = tmp_path / "m.dxm"
    bundle.write(path, MANIFEST, _members(), private)
    assert main(["bundle", "verify", str(path), "--pubkey", str(public_file)]) == 0
    out = capsys.readouterr().out
    assert "signature OK" in out and "dark/bright" in out and "golden vectors" in out
    assert main(["bundle", "inspect", str(path)]) == 0 and "NOT checked" in capsys.readouterr().out
    data = bytearray(path.read_bytes())
    data[-5] ^= 1
    path.write_bytes(bytes(data))
    assert main(["bundle", "verify", str(path), "--pubkey", str(public_file)]) == 1
    err = capsys.readouterr().err
    assert "golden.json does not match its SHA-256" in err and err.count("\n") == 1
    assert main(["keys", "generate", "--out", str(tmp_path / "k")]) == 0
    assert oct((tmp_path / "k").stat().st_mode & 0o777) == "0o600" and (tmp_path / "k.pub").exists()
    assert main(["keys", "generate", "--out", str(tmp_path / "k")]) == 1  # never overwrites silently
    with pytest.raises(DxmacroError):
        keys.load_public_key(tmp_path / "k")  # a private key is not a public key


def test_anchors_carry_their_tuned_knobs_and_bad_masks_are_refused(key):
    """An anchor's tuned knobs (conversion.knob_masks) travel in anchors.json as hex, one per knob
    of the bundle; the device reads them back bit for bit, and any other shape is one line."""
    from conversion.knob_masks import MASK_BYTES, to_json
    from conversion.runtime import TFLiteDecoder

    private, public, _ = key
    mask = np.zeros(145, bool)
    mask[[3, 70, 144]] = True

    def with_anchor_masks(masks) -> dict[str, bytes]:
        members = _members()
        anchors = json.loads(members["anchors.json"])
        anchors[0]["knob_masks"] = masks
        members["anchors.json"] = json.dumps(anchors).encode()
        return members

    b = bundle.decode(bundle.encode(MANIFEST, with_anchor_masks(to_json({0: mask})), private), public)
    dec = TFLiteDecoder.__new__(TFLiteDecoder)  # the anchors alone: no model needed to read them
    dec.bundle, dec._knobs, dec._anchors = b, b.manifest["knobs"], b.anchors
    assert np.array_equal(dec.anchors[0].knob_masks[0], mask)
    past_the_end = bytearray(MASK_BYTES)
    past_the_end[-1] = 0x01  # bit 151: no such parameter
    good = to_json({0: mask})["0"]
    for bad in ({"1": good},  # dim 1 is not one of the bundle's knobs
                {"0": good[:-2]}, {"0": "zz" * MASK_BYTES}, {"0": past_the_end.hex()}, ["00"], {"x": good}):
        with pytest.raises(bundle.BundleError, match="anchors.json entry 0: knob_masks"):
            bundle.decode(bundle.encode(MANIFEST, with_anchor_masks(bad), private), public)
