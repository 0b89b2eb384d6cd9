"""Bundles for the flashing tests: one place that knows how to make, verify and self-test them.

INTERIM: until conversion/bundle.py is merged this writes a minimal signed container through the
interface device/flashing/bundle_check.py defines (verifier -> BundleInfo, self_test -> figures); the
flashing code under test never sees the difference (the store takes a verifier, the flasher a
self-test). Replaced by conversion's real writer and a tiny real TFLite model on merge.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from device.flashing.bundle_check import BundleInfo, BundleRejected, file_sha256

MAGIC = b"DXMTEST1"
FORMAT_VERSION = 1


class Bundles:
    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.key = Ed25519PrivateKey.generate()
        self.public_key = self.key.public_key()
        self.key_file = self.folder / "signing.pub"
        self.key_file.write_bytes(self.public_key.public_bytes(Encoding.Raw, PublicFormat.Raw))

    def make(self, model_id: str = "decoder", version: str = "1.0.0", *, size: int = 4096, self_test_ok: bool = True,
             key: Ed25519PrivateKey | None = None, format_version: int = FORMAT_VERSION, name: str | None = None,
             latent_size: int = 8) -> Path:
        payload = hashlib.sha256(f"{model_id}{version}".encode()).digest() * (size // 32 + 1)
        payload = payload[:size]
        manifest = json.dumps({"model_id": model_id, "version": version, "format_version": format_version,
                               "payload_sha256": hashlib.sha256(payload).hexdigest(),
                               "self_test_ok": self_test_ok, "latent_size": latent_size}).encode()
        sig = (key or self.key).sign(manifest)
        data = MAGIC + struct.pack(">I", len(manifest)) + manifest + sig + payload
        path = self.folder / (name or f"{model_id}-{version}{'' if self_test_ok else '-bad'}.dxm")
        path.write_bytes(data)
        return path

    def _read(self, path: Path) -> dict:
        data = Path(path).read_bytes()
        if not data.startswith(MAGIC):
            raise BundleRejected("not a dxmacro bundle")
        if len(data) < len(MAGIC) + 4:
            raise BundleRejected("bundle is truncated")
        (n,) = struct.unpack(">I", data[8:12])
        if len(data) < 12 + n + 64:
            raise BundleRejected("bundle is truncated")
        manifest, sig, payload = data[12:12 + n], data[12 + n:12 + n + 64], data[12 + n + 64:]
        try:
            Ed25519PublicKey.from_public_bytes(self.key_file.read_bytes()).verify(sig, manifest)
        except InvalidSignature:
            raise BundleRejected("bad signature: the bundle was not signed by this device's key") from None
        m = json.loads(manifest)
        if m["format_version"] != FORMAT_VERSION:
            raise BundleRejected(f"bundle format {m['format_version']} is not supported (this device reads "
                                 f"{FORMAT_VERSION})")
        if hashlib.sha256(payload).hexdigest() != m["payload_sha256"]:
            raise BundleRejected("payload hash mismatch: the bundle is truncated or tampered with")
        return m

    def verifier(self, path: Path) -> BundleInfo:
        try:
            m = self._read(path)
        except OSError as exc:
            raise BundleRejected(str(exc)) from None
        return BundleInfo(m["model_id"], m["version"], m["format_version"], file_sha256(Path(path)), m)

    def self_test(self, path: Path) -> dict:
        if not self._read(path)["self_test_ok"]:
            raise BundleRejected("self-test failed: outputs differ from the golden vectors")
        return {"vectors": 8, "max_code_diff": 0, "max_value_diff": 0}


class Banks:
    """Real signed voice banks (conversion/voice_bank.py) for the flashing tests, signed with the
    Bundles' key (the device holds one public key for models and banks alike)."""

    def __init__(self, bundles: Bundles) -> None:
        self.bundles = bundles
        self.folder = bundles.folder

    @staticmethod
    def voices(n: int, seed: int = 0) -> list:
        from dx7 import Voice

        base = list(Voice.init().values)
        out = []
        for i in range(n):
            v = list(base)
            v[134], v[123], v[121] = (i + seed) % 32, 1 + i % 4, 99 - (i + seed) % 40
            out.append(Voice(tuple(v[:145]) + tuple(f"BANK {i:<5d}".encode()[:10])))
        return out

    def make(self, name: str = "stage", model_id: str = "decoder", n: int = 8, *, key=None, seed: int = 0,
             latent_size: int = 8) -> Path:
        import numpy as np

        from conversion import voice_bank

        lat = np.random.default_rng(seed).normal(size=(n, latent_size)).astype(np.float32)
        data = voice_bank.encode(name, model_id, self.voices(n, seed), lat, key or self.bundles.key)
        path = self.folder / f"{name}-{model_id}-{seed}.dxb"
        path.write_bytes(data)
        return path

    def forged(self, n: int, model_id: str = "decoder") -> Path:
        """Signed with the real key, but holding ``n`` voices where the writer refuses (0, > 1024)."""
        from conversion import bundle, voice_bank

        body = b"".join(v.to_unpacked() + bytes(32) for v in self.voices(min(n, 2))) * (n // 2)
        doc = {"format": voice_bank.FORMAT, "format_version": 1, "origin": "host", "name": f"forged{n}",
               "model_id": model_id, "latent_size": 8, "voices": n, "latent_method": "encoder",
               "body": {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}}
        text = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        path = self.folder / f"forged-{n}.dxb"
        path.write_bytes(bundle.frame(voice_bank.MAGIC, 1, text, self.bundles.key) + body)
        return path
