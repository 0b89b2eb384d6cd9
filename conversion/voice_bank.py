"""The voice bank ``voices.dxb``: DX7 voices, each with its latent for one model, in one signed file.

Layout (integers big-endian, as the model bundle's; conversion/bundle.py's ``frame``)::

    b"DXVB"  u16 format_version  u32 manifest_length  manifest (UTF-8 JSON)  64-byte Ed25519 signature
    voices: N records of 155 unpacked (VCED) voice bytes + latent_size float32 (little-endian)
            [+ format 2: one 19-byte bit mask (145 bits, np.packbits order) per knob of "knob_dims"]

Format 2 adds, per voice and knob, the parameters that knob may move on that voice
(host_training.jobs.knob_tune, chosen by rendering when the bank is built; dx7.relative.tuned_voice
plays them). A bank without tuned knobs is written as format 1, which every device reads.

The signature covers magic, version and manifest; the manifest holds the records' size and
SHA-256, so every byte is covered, as in a bundle, with the same keys (conversion/keys.py).
A bank is bound to one ``model_id``: a latent means something to one model only, so the device
refuses a bank made for another model than the one it runs.

Device-made banks (a bulk dump received over MIDI, each voice given a latent from what the
bundle carries) cannot be signed with the host key. They use the same layout under their own
magic ``b"DXVL"`` with ``origin: "device"`` in the manifest and a zero signature; :func:`decode`
(every path into the store: flash service, USB) refuses them, and only :func:`decode_local`,
which the device calls on its own store folder, reads them. The hashes still catch a torn or
corrupt file; authenticity comes from where the file lies, not from a key.

Device side: imports only the standard library, numpy, cryptography, dx7 and conversion's reader.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from conversion.bundle import frame, unframe
from conversion.knob_masks import MASK_BYTES, pack, unpack
from conversion.runtime import Anchor
from dx7 import LEARNABLE_COUNT, PARAM_COUNT, Voice
from dx7.errors import DX7Error
from dx7.files import atomic_write
from dxmacro.errors import DxmacroError

MAGIC = b"DXVB"  # signed by the host's key
LOCAL_MAGIC = b"DXVL"  # made on the device, unsigned, read only from the device's own store
FORMAT = "dxmacro-voice-bank"
FORMAT_VERSION = 1  # no tuned knobs
TUNED_VERSION = 2  # with "knob_dims" and a mask per voice and knob
SUPPORTED_VERSIONS = (1, 2)
MAX_KNOBS = 16
MAX_VOICES = 1024
MAX_LATENT = 256
MAX_MANIFEST_BYTES = 256 * 1024
MAX_BANK_BYTES = 80 + MAX_MANIFEST_BYTES + MAX_VOICES * (PARAM_COUNT + 4 * MAX_LATENT + MAX_KNOBS * MASK_BYTES)
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,47}$")
MODEL_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
METHODS = ("encoder", "inverse", "anchor", "nearest")  # how the latents were found


class BankError(DxmacroError):
    """A voice bank that is not genuine, complete, within limits and of a known format."""


@dataclass(frozen=True)
class VoiceBank:
    manifest: dict[str, Any]
    voices: tuple[Voice, ...] = field(repr=False)
    latents: np.ndarray = field(repr=False)  # (N, latent_size) float32
    signed_by: str | None  # key id that verified it; None: read without a key, or device-made
    knob_masks: tuple[dict[int, np.ndarray], ...] | None = field(default=None, repr=False)  # per voice: dim -> (145,) bool

    @property
    def name(self) -> str:
        return str(self.manifest["name"])

    @property
    def model_id(self) -> str:
        return str(self.manifest["model_id"])

    @property
    def origin(self) -> str:
        return str(self.manifest["origin"])

    @property
    def latent_size(self) -> int:
        return int(self.manifest["latent_size"])

    def anchors(self) -> tuple[Anchor, ...]:
        """The voices as the control loop steps through them (``ControlLoop.set_voices``)."""
        masks = self.knob_masks or (None,) * len(self.voices)
        return tuple(Anchor(v.name.strip() or f"voice {i + 1}", v, self.latents[i].copy(), masks[i])
                     for i, v in enumerate(self.voices))

    def require_model(self, model_id: str) -> None:
        """Refuse a bank whose latents were made for another model than ``model_id``."""
        if self.model_id != model_id:
            raise BankError(f"voice bank {self.name} was made for model {self.model_id}, not for the active model "
                            f"{model_id} (its latents mean nothing to another model)")


# -- writing --------------------------------------------------------------------------------------
def _body(voices: Sequence[Voice], latents: np.ndarray, masks: np.ndarray | None) -> bytes:
    lat = np.asarray(latents, dtype="<f4")
    bits = [b""] * len(voices) if masks is None else [b"".join(pack(k) for k in m) for m in masks]
    return b"".join(v.to_unpacked() + lat[i].tobytes() + bits[i] for i, v in enumerate(voices))


def _check_masks(knob_masks: tuple[Sequence[int], np.ndarray] | None, n: int, latent_size: int) -> np.ndarray | None:
    """``(dims, masks (N voices, K knobs, 145) bool)`` checked, the masks as bool; None stays None."""
    if knob_masks is None:
        return None
    dims, masks = knob_masks
    masks = np.asarray(masks)
    if not 1 <= len(dims) <= MAX_KNOBS or len(set(dims)) != len(dims) or not all(0 <= d < latent_size for d in dims):
        raise BankError(f"knob dims {list(dims)} are not 1 to {MAX_KNOBS} distinct latent dimensions")
    if masks.shape != (n, len(dims), LEARNABLE_COUNT) or masks.dtype != bool:
        raise BankError(f"knob masks of shape {masks.shape} do not fit {n} voices and {len(dims)} knobs")
    return masks


def _manifest(name: str, model_id: str, voices: Sequence[Voice], latents: np.ndarray, origin: str, method: str,
              extra: dict[str, Any], knob_masks=None) -> tuple[dict[str, Any], bytes]:
    lat = np.asarray(latents, dtype=np.float32)
    if not NAME_RE.match(name):
        raise BankError(f"bank name {name!r} is not a plain word (letters, digits, '.', '_', '+', '-'; at most 48)")
    if not MODEL_ID_RE.match(str(model_id)):
        raise BankError(f"model id {model_id!r} is not a plain word")
    if not 1 <= len(voices) <= MAX_VOICES:
        raise BankError(f"a voice bank holds 1 to {MAX_VOICES} voices; got {len(voices)}")
    if lat.ndim != 2 or lat.shape[0] != len(voices) or not 1 <= lat.shape[1] <= MAX_LATENT:
        raise BankError(f"latents of shape {lat.shape} do not fit {len(voices)} voices")
    if not np.isfinite(lat).all():
        raise BankError("a latent is not finite")
    if method not in METHODS:
        raise BankError(f"unknown latent method {method!r} (one of {', '.join(METHODS)})")
    masks = _check_masks(knob_masks, len(voices), lat.shape[1])
    body = _body(voices, lat, masks)
    version = FORMAT_VERSION if masks is None else TUNED_VERSION
    doc = dict(extra) | {"format": FORMAT, "format_version": version, "origin": origin, "name": name,
                         "model_id": str(model_id), "latent_size": int(lat.shape[1]), "voices": len(voices),
                         "latent_method": method,
                         "body": {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}}
    if masks is not None:
        doc["knob_dims"] = [int(d) for d in knob_masks[0]]
    return doc, body


def encode(name: str, model_id: str, voices: Sequence[Voice], latents: np.ndarray, key: Ed25519PrivateKey, *,
           method: str = "encoder", extra: dict[str, Any] | None = None,
           knob_masks: tuple[Sequence[int], np.ndarray] | None = None) -> bytes:
    """A signed bank's bytes. ``extra``: more manifest entries (model_version, sources, ...);
    ``knob_masks``: (the knobs' latent dims, (N, K, 145) bool), each voice's tuned knobs (format 2)."""
    from conversion.keys import key_id

    doc, body = _manifest(name, model_id, voices, latents, "host", method, extra or {}, knob_masks)
    doc["key_id"] = key_id(key.public_key())
    return _finish(MAGIC, doc, body, key)


def encode_local(name: str, model_id: str, voices: Sequence[Voice], latents: np.ndarray, *,
                 method: str = "nearest", extra: dict[str, Any] | None = None) -> bytes:
    """A device-made bank's bytes (unsigned; see the module's docstring)."""
    doc, body = _manifest(name, model_id, voices, latents, "device", method, extra or {})
    return _finish(LOCAL_MAGIC, doc, body, None)


def _finish(magic: bytes, doc: dict[str, Any], body: bytes, key: Ed25519PrivateKey | None) -> bytes:
    text = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    if len(text) > MAX_MANIFEST_BYTES:
        raise BankError(f"manifest would be {len(text)} bytes, over the {MAX_MANIFEST_BYTES}-byte limit")
    data = frame(magic, int(doc["format_version"]), text, key) + body
    if len(data) > MAX_BANK_BYTES:
        raise BankError(f"bank would be {len(data)} bytes, over the {MAX_BANK_BYTES}-byte limit")
    return data


def write(path: str | os.PathLike[str], data: bytes) -> None:
    """Write encoded bank bytes atomically (a crash leaves the old file or the new one)."""
    atomic_write(path, data)


# -- reading --------------------------------------------------------------------------------------
def is_bank(head: bytes) -> bool:
    """Whether bytes start like a voice bank (signed or device-made): how ``dxmacro flash`` tells a
    bank from a model bundle."""
    return head[:4] in (MAGIC, LOCAL_MAGIC)


def decode(data: bytes, public_key: Ed25519PublicKey | None, *, source: str = "voice bank") -> VoiceBank:
    """Parse and verify a signed bank. With ``public_key=None`` the signature is not checked
    (inspection only: never install such a bank); everything else is. Device-made banks are refused."""
    def fail(why: str) -> BankError:
        return BankError(f"{source}: {why}")

    if data[:4] == LOCAL_MAGIC:
        raise fail("a device-made (unsigned) voice bank: only the device that made it reads it")
    f = unframe(data, magic=MAGIC, versions=SUPPORTED_VERSIONS, public_key=public_key, max_bytes=MAX_BANK_BYTES,
                max_manifest=MAX_MANIFEST_BYTES, what="dxmacro voice bank", short="voice bank", fail=fail)
    return _parse(f.version, f.manifest_text, f.body, f.signed_by, "host", fail)


def decode_local(data: bytes, *, source: str = "device voice bank") -> VoiceBank:
    """Parse a device-made bank (the device's own store folder only; never what came over a wire)."""
    def fail(why: str) -> BankError:
        return BankError(f"{source}: {why}")

    f = unframe(data, magic=LOCAL_MAGIC, versions=SUPPORTED_VERSIONS, public_key=None, max_bytes=MAX_BANK_BYTES,
                max_manifest=MAX_MANIFEST_BYTES, what="device-made voice bank", short="voice bank", fail=fail)
    if f.signature != bytes(len(f.signature)):
        raise fail("a device-made bank carries no signature; this one has bytes there (corrupt)")
    return _parse(f.version, f.manifest_text, f.body, None, "device", fail)


def _parse(version: int, text: bytes, body: bytes, signed_by: str | None, origin: str, fail) -> VoiceBank:
    try:
        m = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise fail("manifest is not valid JSON") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise fail("manifest is not a voice bank manifest")
    if m.get("format_version") != version:
        raise fail("manifest and header disagree on the format version")
    if m.get("origin") != origin:
        raise fail(f"manifest says origin {m.get('origin')!r}, the file's magic says {origin!r}")
    name, model_id, size, n = m.get("name"), m.get("model_id"), m.get("latent_size"), m.get("voices")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise fail(f"bank name {name!r} is not a plain word")
    if not isinstance(model_id, str) or not MODEL_ID_RE.match(model_id):
        raise fail(f"model id {model_id!r} is not a plain word")
    if not isinstance(size, int) or not 1 <= size <= MAX_LATENT:
        raise fail(f"latent size {size!r} is not 1..{MAX_LATENT}")
    if not isinstance(n, int) or n < 1:
        raise fail(f"holds {n!r} voices; a bank holds 1 to {MAX_VOICES}")
    if n > MAX_VOICES:
        raise fail(f"holds {n} voices, over the limit of {MAX_VOICES}")
    dims = m.get("knob_dims", [])
    if version == 1 and "knob_dims" in m:
        raise fail("a format 1 bank carries no tuned knobs, yet its manifest lists knob_dims")
    if version >= TUNED_VERSION and (not isinstance(dims, list) or not 1 <= len(dims) <= MAX_KNOBS
                                     or not all(type(d) is int and 0 <= d < size for d in dims)
                                     or len(set(dims)) != len(dims)):
        raise fail(f"knob_dims {dims!r} are not 1 to {MAX_KNOBS} distinct latent dimensions")
    latent_bytes = PARAM_COUNT + 4 * size
    record = latent_bytes + len(dims) * MASK_BYTES
    entry = m.get("body")
    if not isinstance(entry, dict) or entry.get("size") != n * record:
        raise fail(f"manifest's voice table does not fit {n} voices of latent size {size}")
    if len(body) < n * record:
        raise fail(f"truncated: {len(body)} bytes of voices, the manifest says {n * record}")
    if len(body) > n * record:
        raise fail(f"{len(body) - n * record} unexpected bytes after the last voice")
    if hashlib.sha256(body).hexdigest() != entry.get("sha256"):
        raise fail("the voices do not match their SHA-256 (tampered or corrupt)")
    voices, latents, masks = [], np.empty((n, size), np.float32), []
    for i in range(n):
        rec = body[i * record : (i + 1) * record]
        try:
            voices.append(Voice(tuple(rec[:PARAM_COUNT])))
        except DX7Error as exc:
            raise fail(f"voice {i + 1} is not a valid DX7 voice ({exc})") from None
        latents[i] = np.frombuffer(rec[PARAM_COUNT:latent_bytes], dtype="<f4")
        if dims:
            tuned = [unpack(rec[latent_bytes + j * MASK_BYTES : latent_bytes + (j + 1) * MASK_BYTES])
                     for j in range(len(dims))]
            if any(m is None for m in tuned):
                raise fail(f"voice {i + 1}: a knob mask sets bits past the last parameter")
            masks.append(dict(zip(dims, tuned)))
    if not np.isfinite(latents).all():
        raise fail("a latent is not finite")
    return VoiceBank(m, tuple(voices), latents, signed_by, tuple(masks) if dims else None)


def _read_bytes(path: str | os.PathLike[str]) -> bytes:
    p = Path(path)
    try:
        if p.stat().st_size > MAX_BANK_BYTES:
            raise BankError(f"{p}: {p.stat().st_size} bytes is over the {MAX_BANK_BYTES}-byte limit")
        return p.read_bytes()
    except OSError as exc:
        raise BankError(f"cannot read voice bank {p}: {exc.strerror or exc}") from None


def read(path: str | os.PathLike[str], public_key: Ed25519PublicKey | None) -> VoiceBank:
    """Read and verify a signed bank file (see :func:`decode`)."""
    return decode(_read_bytes(path), public_key, source=str(path))


def read_local(path: str | os.PathLike[str]) -> VoiceBank:
    """Read a device-made bank from the device's own store (see :func:`decode_local`)."""
    return decode_local(_read_bytes(path), source=str(path))
