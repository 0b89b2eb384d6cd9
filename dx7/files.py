"""Reading and writing voice files: sysex files (any number of messages), headerless
4096-byte banks and JSON. Writes are atomic: a failed write leaves nothing behind."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from dx7.errors import DX7Error
from dx7.packing import PACKED_SIZE, unused_bits
from dx7.reading import loads_json, read_regular_file
from dx7.sysex import BANK_PAYLOAD, BulkDump, OtherSysex, SingleVoice, parse_stream
from dx7.voice import Voice

MAX_FILE_BYTES = 16 * 1024 * 1024  # no voice file is near this; refuse before reading


@dataclass(frozen=True)
class LoadedVoice:
    """A voice as found in a file: where it came from and what was fixed on the way."""

    voice: Voice
    source: str
    slot: int  # 0-based position among the file's voices
    unused_bits: tuple[int, ...] = ()  # packed byte offsets with spare bits set

    @property
    def dirty(self) -> bool:
        return bool(self.voice.fixes or self.unused_bits)


@dataclass
class VoiceFile:
    path: str
    voices: list[LoadedVoice] = field(default_factory=list)
    skipped_messages: int = 0  # well-formed sysex that holds no voice


def read_voice_file(path: str | os.PathLike[str], *, strict: bool = False) -> VoiceFile:
    """All voices in a .syx (bulk dumps, single-voice dumps, several messages) or a
    headerless 4096-byte bank. Raises :class:`DX7Error` naming the file and problem."""
    data = read_regular_file(path, max_bytes=MAX_FILE_BYTES, what="voice file")
    return parse_voice_bytes(data, os.fsdecode(path), strict=strict)


def parse_voice_bytes(data: bytes, source: str, *, strict: bool = False) -> VoiceFile:
    result = VoiceFile(source)
    if not data:
        raise DX7Error("empty file", source=source)
    if data[0] != 0xF0:
        if len(data) != BANK_PAYLOAD:
            raise DX7Error(f"not sysex (first byte 0x{data[0]:02X}) and not a headerless "
                           f"{BANK_PAYLOAD}-byte bank ({len(data)} bytes)", source=source)
        packed = tuple(data[i : i + PACKED_SIZE] for i in range(0, BANK_PAYLOAD, PACKED_SIZE))
        _add_bank(result, BulkDump(packed), strict)
        return result
    for msg in parse_stream(data, source):
        if isinstance(msg, BulkDump):
            _add_bank(result, msg, strict)
        elif isinstance(msg, SingleVoice):
            slot = len(result.voices)
            voice = msg.voice(strict=strict, source=f"{source} voice {slot + 1}")
            result.voices.append(LoadedVoice(voice, source, slot))
        else:
            result.skipped_messages += 1
    if not result.voices:
        raise DX7Error("holds no DX7 voice (no bulk or single-voice dump)", source=source)
    return result


def _add_bank(result: VoiceFile, dump: BulkDump, strict: bool) -> None:
    base = len(result.voices)
    voices = dump.voices(strict=strict, source=result.path)
    for i, (v, p) in enumerate(zip(voices, dump.packed)):
        result.voices.append(LoadedVoice(v, result.path, base + i, tuple(unused_bits(p))))


# -- writing ---------------------------------------------------------------------------
def atomic_write(path: str | os.PathLike[str], data: bytes, *, mode: int | None = None) -> None:
    """Write, fsync, rename over, fsync the folder: after a crash ``path`` is the old or the new
    content, whole, never a mix. ``mode`` defaults to 0666 less the umask."""
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise DX7Error(f"folder {directory} does not exist", source=str(path))
    if target.is_dir():
        raise DX7Error("is a folder; give a file name", source=str(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        if mode is None:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask  # mkstemp's 0600 is for secrets, not voice files
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(directory)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename/unlink in ``path`` durable (POSIX: the directory entry lives in the folder)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def encode_banks(voices: list[Voice], channel: int = 0) -> bytes:
    """Voices as consecutive 32-voice bulk dumps (the last padded with INIT VOICE)."""
    if not voices:
        raise DX7Error("no voices to write")
    chunks = [voices[i : i + 32] for i in range(0, len(voices), 32)]
    return b"".join(BulkDump.of(c, channel).encode() for c in chunks)


def encode_singles(voices: list[Voice], channel: int = 0) -> bytes:
    return b"".join(SingleVoice.of(v, channel).encode() for v in voices)


def voices_to_json(voices: list[Voice]) -> str:
    return json.dumps({"format": "dxmacro-voices", "version": 1, "voices": [v.to_dict() for v in voices]},
                      indent=1)


def voices_from_json(text: str, source: str) -> list[Voice]:
    doc = loads_json(text, source)
    if not isinstance(doc, dict) or doc.get("format") != "dxmacro-voices" or not isinstance(doc.get("voices"), list):
        raise DX7Error("not a dxmacro voices JSON file (format 'dxmacro-voices')", source=source)
    out = []
    for i, item in enumerate(doc["voices"]):
        if not isinstance(item, dict):
            raise DX7Error(f"voice {i + 1} is not an object", source=source)
        try:
            out.append(Voice.from_dict(item))
        except DX7Error as exc:
            raise DX7Error(f"voice {i + 1}: {exc}", source=source) from None
    return out


__all__ = [
    "LoadedVoice",
    "OtherSysex",
    "VoiceFile",
    "atomic_write",
    "encode_banks",
    "encode_singles",
    "parse_voice_bytes",
    "read_voice_file",
    "voices_from_json",
    "voices_to_json",
]
