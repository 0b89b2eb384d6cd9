"""The model bundle ``model.dxm``: one self-describing, signed file the device can trust.

Layout (all integers big-endian)::

    b"DXMB"  u16 format_version  u32 manifest_length  manifest (UTF-8 JSON)  64-byte signature
    member bytes, concatenated in the order the manifest lists them, nothing after

The Ed25519 signature covers the magic, the format version and the manifest; the manifest
lists every member with its size and SHA-256. So every byte of a bundle is covered: a
changed byte breaks the framing, the signature or a member's hash, and reading fails with a
message naming which. Why not zip: a zip has bytes (timestamps, extra fields, comments)
that no checksum covers, and members with path names; here member names are only keys in
memory, checked against a fixed set, and nothing is ever extracted to disk.

Device side: this module imports only the standard library, numpy and cryptography.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from conversion import knob_masks
from dx7.errors import DX7Error
from dx7.files import atomic_write
from dx7.reading import loads_json, read_regular_file
from dx7.voice import Voice
from dxmacro.errors import DxmacroError

MAGIC = b"DXMB"
FORMAT_VERSION = 1
SUPPORTED_VERSIONS = (1,)
_HEADER = struct.Struct(">4sHI")
SIGNATURE_SIZE = 64
MAX_BUNDLE_BYTES = 8 * 1024 * 1024
MAX_MANIFEST_BYTES = 1024 * 1024
MEMBERS = ("model.tflite", "anchors.json", "golden.json")  # all required, in this order
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


class BundleError(DxmacroError):
    """A bundle that is not genuine, complete and of a known format; the message says why."""


@dataclass(frozen=True)
class Bundle:
    manifest: dict[str, Any]
    members: Mapping[str, bytes] = field(repr=False)
    signed_by: str | None  # key id that verified it; None when read without a key (inspection only)

    @property
    def model_id(self) -> str:
        return str(self.manifest["model_id"])

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    @property
    def tflite(self) -> bytes:
        return self.members["model.tflite"]

    @property
    def anchors(self) -> list[dict[str, Any]]:
        """[{name, voice (155 unpacked bytes, hex), latent [floats]}]"""
        return json.loads(self.members["anchors.json"])

    @property
    def golden(self) -> dict[str, np.ndarray]:
        """Golden vectors for the on-device self-test: latents, and per int8 kernel set
        (conversion.runtime.KERNELS) the codes and DX7 values the converter's own run produced."""
        raw = json.loads(self.members["golden.json"])
        return {
            "latents": np.asarray(raw["latents"], dtype=np.float32),
            "kernels": {name: {"int8_codes": np.asarray(k["int8_codes"], dtype=np.int32),  # int8 or int16 codes
                               "int8_values": np.asarray(k["int8_values"], dtype=np.uint8)}
                        for name, k in raw.get("kernels", {}).items()},
        }


def _signed_part(version: int, manifest: bytes, magic: bytes = MAGIC) -> bytes:
    return magic + struct.pack(">H", version) + manifest


def frame(magic: bytes, version: int, manifest_text: bytes, key: Ed25519PrivateKey | None) -> bytes:
    """``magic u16 version u32 length manifest signature``: the signed head every dxmacro file
    shares (model bundles, voice banks); the signature covers magic, version and manifest.
    ``key=None`` leaves the signature zero: only for files a device makes for itself under a
    magic of their own (conversion/voice_bank.py's device-made banks), never for anything installed."""
    signature = key.sign(_signed_part(version, manifest_text, magic)) if key is not None else bytes(SIGNATURE_SIZE)
    return _HEADER.pack(magic, version, len(manifest_text)) + manifest_text + signature


@dataclass(frozen=True)
class Framed:
    """A signed head taken apart: the manifest text (verified when a key was given) and the rest."""

    version: int
    manifest_text: bytes
    signature: bytes
    body: bytes
    signed_by: str | None


def unframe(data: bytes, *, magic: bytes, versions: tuple[int, ...], public_key: Ed25519PublicKey | None,
            max_bytes: int, max_manifest: int, what: str, short: str, fail) -> Framed:
    """Check size, magic, version and (with ``public_key``) the signature of a signed file;
    ``fail(reason)`` makes the error to raise; ``what`` / ``short`` name the kind of file."""
    from conversion.keys import key_id

    if len(data) > max_bytes:
        raise fail(f"{len(data)} bytes is over the {max_bytes}-byte limit")
    if len(data) < _HEADER.size or data[:4] != magic:
        raise fail(f"not a {what} (bad magic)")
    _, version, mlen = _HEADER.unpack_from(data)
    if version not in versions:
        raise fail(f"unknown {short} format version {version} (this dxmacro reads {versions})")
    if mlen > max_manifest or _HEADER.size + mlen + SIGNATURE_SIZE > len(data):
        raise fail("truncated or corrupt header (manifest length beyond the file)")
    text = data[_HEADER.size : _HEADER.size + mlen]
    signature = data[_HEADER.size + mlen : _HEADER.size + mlen + SIGNATURE_SIZE]
    body = data[_HEADER.size + mlen + SIGNATURE_SIZE :]
    signed_by = None
    if public_key is not None:
        try:
            public_key.verify(signature, _signed_part(version, text, magic))
        except InvalidSignature:
            raise fail(f"signature does not verify with key {key_id(public_key)} (wrong key, or the manifest "
                       "was altered)") from None
        signed_by = key_id(public_key)
    return Framed(version, text, signature, body, signed_by)


def encode(manifest: Mapping[str, Any], members: Mapping[str, bytes], key: Ed25519PrivateKey) -> bytes:
    """The bundle's bytes: ``manifest`` gains format_version, key_id and the member table."""
    from conversion.keys import key_id

    if set(members) != set(MEMBERS):
        raise BundleError(f"a bundle holds exactly {', '.join(MEMBERS)}; got {', '.join(sorted(members))}")
    for required in ("model_id", "version", "latent_size"):
        if required not in manifest:
            raise BundleError(f"manifest needs {required!r}")
    doc = dict(manifest)
    doc["format"] = "dxmacro-bundle"
    doc["format_version"] = FORMAT_VERSION
    doc["key_id"] = key_id(key.public_key())
    doc["members"] = [{"name": n, "size": len(members[n]), "sha256": hashlib.sha256(members[n]).hexdigest()}
                      for n in MEMBERS]
    text = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    data = frame(MAGIC, FORMAT_VERSION, text, key) + b"".join(members[n] for n in MEMBERS)
    if len(data) > MAX_BUNDLE_BYTES:
        raise BundleError(f"bundle would be {len(data)} bytes, over the {MAX_BUNDLE_BYTES}-byte limit")
    return data


def with_manifest(data: bytes, key: Ed25519PrivateKey, **changes: Any) -> bytes:
    """A bundle the signer already made (``data``, verified with ``key``'s public half), with
    manifest fields replaced and signed again: the export's knob choice (host_training.jobs.knob_gates)
    lands in the manifest after the converted model has been measured."""
    old = decode(data, key.public_key())
    manifest = {k: v for k, v in old.manifest.items() if k not in ("format", "format_version", "key_id", "members")}
    return encode({**manifest, **changes}, old.members, key)


def write(path: str | os.PathLike[str], manifest: Mapping[str, Any], members: Mapping[str, bytes],
          key: Ed25519PrivateKey) -> bytes:
    data = encode(manifest, members, key)
    atomic_write(path, data)
    return data


def decode(data: bytes, public_key: Ed25519PublicKey | None, *, source: str = "bundle") -> Bundle:
    """Parse and verify. With ``public_key=None`` the signature is not checked (inspection only:
    never install such a bundle); everything else is."""
    def fail(why: str) -> BundleError:
        return BundleError(f"{source}: {why}")

    f = unframe(data, magic=MAGIC, versions=SUPPORTED_VERSIONS, public_key=public_key, max_bytes=MAX_BUNDLE_BYTES,
                max_manifest=MAX_MANIFEST_BYTES, what="dxmacro model bundle", short="bundle", fail=fail)
    version, text, body, signed_by = f.version, f.manifest_text, f.body, f.signed_by
    try:
        manifest = loads_json(text, source, what="manifest")
    except DX7Error as exc:
        raise fail(f"manifest is not valid JSON ({str(exc).removeprefix(f'{source}: ')})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != "dxmacro-bundle":
        raise fail("manifest is not a dxmacro bundle manifest")
    if manifest.get("format_version") != version:
        raise fail("manifest and header disagree on the format version")
    members = _split_members(manifest.get("members"), body, fail)
    _check_contents(manifest, members, fail, source)
    return Bundle(manifest, members, signed_by)


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and bool(np.isfinite(x))


def _check_contents(manifest: dict[str, Any], members: Mapping[str, bytes], fail, source: str) -> None:
    """Every field a reader uses, with its type, checked once here: a crafted or damaged bundle is
    one BundleError naming the field, never a KeyError or a TypeError in whoever reads it later
    (bundle inspect, the device's loader, the self-test)."""
    for key, kind in (("model_id", str), ("version", str), ("latent_size", int)):
        if not isinstance(manifest.get(key), kind) or isinstance(manifest.get(key), bool):
            raise fail(f"manifest field {key!r} is missing or not a {kind.__name__}")
    size = manifest["latent_size"]
    if not 1 <= size <= 4096:
        raise fail(f"manifest latent_size {size} is outside 1..4096")
    knobs = manifest.get("knobs", [])
    if not isinstance(knobs, list):
        raise fail("manifest field 'knobs' is not a list")
    for i, k in enumerate(knobs):
        if not (isinstance(k, dict) and isinstance(k.get("dim"), int) and 0 <= k["dim"] < size
                and isinstance(k.get("name"), str) and _finite(k.get("low")) and _finite(k.get("high"))):
            raise fail(f"manifest knob {i} is malformed (needs dim < latent_size, name, finite low and high)")
    quant = manifest.get("quantization", {})
    if not isinstance(quant, dict) or not all(isinstance(v, dict) for v in quant.values()):
        raise fail("manifest field 'quantization' is malformed")
    try:
        anchors = loads_json(members["anchors.json"], source, what="anchors.json")
        golden = loads_json(members["golden.json"], source, what="golden.json")
    except DX7Error as exc:
        raise fail(str(exc).removeprefix(f"{source}: ")) from None
    if not isinstance(anchors, list):
        raise fail("anchors.json is not a list")
    for i, a in enumerate(anchors):
        try:
            ok = (isinstance(a, dict) and isinstance(a.get("name"), str) and isinstance(a.get("voice"), str)
                  and isinstance(a.get("latent"), list) and len(a["latent"]) == size and all(map(_finite, a["latent"])))
            ok = ok and Voice.from_unpacked(bytes.fromhex(a["voice"])) is not None
        except (ValueError, DX7Error):
            ok = False
        if not ok:
            raise fail(f"anchors.json entry {i} is malformed (needs name, voice as 155 hex bytes, {size} latents)")
        if "knob_masks" in a and knob_masks.from_json(a["knob_masks"], {k["dim"] for k in knobs}) is None:
            raise fail(f"anchors.json entry {i}: knob_masks must map the bundle's knob dims to 145-bit masks "
                       f"({knob_masks.MASK_BYTES} bytes in hex)")
    try:
        kernels = golden.get("kernels", {}) if isinstance(golden, dict) else None
        ok = (isinstance(kernels, dict) and np.asarray(golden["latents"], np.float32).ndim == 2
              and all(isinstance(k, dict) and np.asarray(k["int8_codes"], np.int16).ndim == 2
                      and np.asarray(k["int8_values"], np.uint8).ndim == 2 for k in kernels.values()))
    except (KeyError, TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise fail("golden.json is malformed (needs latents and per-kernel int8_codes / int8_values tables)")


def _split_members(table: Any, body: bytes, fail) -> dict[str, bytes]:
    if not isinstance(table, list):
        raise fail("manifest has no member table")
    out: dict[str, bytes] = {}
    pos = 0
    for entry in table:
        if not isinstance(entry, dict):
            raise fail("malformed member table")
        name, size, digest = entry.get("name"), entry.get("size"), entry.get("sha256")
        if not isinstance(name, str) or not _NAME.match(name) or name not in MEMBERS:
            raise fail(f"unexpected member name {name!r}")
        if name in out:
            raise fail(f"member {name} appears twice")
        if not isinstance(size, int) or size < 0 or pos + size > len(body):
            raise fail(f"member {name} is truncated")
        chunk = body[pos : pos + size]
        if hashlib.sha256(chunk).hexdigest() != digest:
            raise fail(f"member {name} does not match its SHA-256 (tampered or corrupt)")
        out[name] = chunk
        pos += size
    missing = [n for n in MEMBERS if n not in out]
    if missing:
        raise fail(f"missing member(s): {', '.join(missing)}")
    if pos != len(body):
        raise fail(f"{len(body) - pos} unexpected bytes after the last member")
    return out


def read(path: str | os.PathLike[str], public_key: Ed25519PublicKey | None) -> Bundle:
    """Read and verify a bundle file (see :func:`decode`)."""
    try:
        data = read_regular_file(path, max_bytes=MAX_BUNDLE_BYTES, what="bundle")
    except DX7Error as exc:
        raise BundleError(str(exc)) from None
    return decode(data, public_key, source=os.fsdecode(path))
