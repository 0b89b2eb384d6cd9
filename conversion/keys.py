"""Ed25519 signing keys for model bundles (the `cryptography` package: well kept, aarch64 wheels).

A private key is a PKCS#8 PEM file readable by its owner only; its public half is a PEM
(SubjectPublicKeyInfo) file beside it (``KEY.pub``). The device holds only public keys.
Raw 32-byte public keys are accepted too.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from dx7.files import atomic_write
from dxmacro.errors import DxmacroError


def generate(path: str | os.PathLike[str], *, overwrite: bool = False) -> tuple[Path, Path]:
    """Write a new private key to ``path`` (mode 0600) and its public key to ``path.pub``."""
    private_path, public_path = Path(path), Path(f"{path}.pub")
    if not overwrite and (private_path.exists() or public_path.exists()):
        raise DxmacroError(f"{private_path} or {public_path} already exists (refusing to overwrite a key)")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    atomic_write(private_path, pem, mode=0o600)  # its temporary file is 0600 from creation, before any byte
    atomic_write(public_path, public_pem(key.public_key()))
    return private_path, public_path


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_id(key: Ed25519PublicKey) -> str:
    """A short fingerprint: the first 16 hex digits of SHA-256 of the raw public key."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _read(path: str | os.PathLike[str], what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise DxmacroError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def load_private_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    data = _read(path, "private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise DxmacroError(f"{path} is not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise DxmacroError(f"{path} is not an Ed25519 key")
    return key


def load_public_key(path: str | os.PathLike[str]) -> Ed25519PublicKey:
    data = _read(path, "public key")
    try:
        if len(data) == 32:
            return Ed25519PublicKey.from_public_bytes(data)
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise DxmacroError(f"{path} is not a PEM or raw Ed25519 public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise DxmacroError(f"{path} is not an Ed25519 public key")
    return key
