"""Voices in: every .syx under the given paths plus optional synthetic voices, through the
dx7 codec's dirty-input policy (Dexed's rule: out-of-range fields brought into range and
counted), then exact de-duplication on the 145 parameters (names ignored; first seen
kept, in sorted path order so the result does not depend on the file system).

A bad file (truncated, wrong header, bad checksum...) is listed with its error and
skipped; it never stops the build."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dx7 import Voice
from dx7.errors import DX7Error
from dx7.files import read_voice_file
from dxmacro.errors import DxmacroError

VOICE_SUFFIXES = {".syx"}


@dataclass
class Ingested:
    voices: list[Voice] = field(default_factory=list)
    sources: list[object] = field(default_factory=list)  # {"file", "slot"} or "synthetic:SEED:I"
    bad_files: list[tuple[str, str]] = field(default_factory=list)  # (path, error)
    counts: dict[str, int] = field(default_factory=dict)


def find_voice_files(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """.syx files named or found (recursively) under folders, sorted, each once."""
    found: set[Path] = set()
    for p in map(Path, paths):
        if p.is_dir():
            found.update(f for f in p.rglob("*") if f.suffix.lower() in VOICE_SUFFIXES and f.is_file())
        elif p.exists():
            found.add(p)
        else:
            raise DxmacroError(f"{p}: no such file or folder")
    return sorted(found, key=lambda f: str(f))


def ingest(paths: Sequence[str | os.PathLike[str]] = (), voices: Sequence[Voice] = (), synthetic: int = 0,
           seed: int = 0) -> Ingested:
    """Files first (sorted), then ``voices`` given in memory ("memory:I"), then synthetic."""
    out = Ingested()
    slots: list[tuple[Voice, object]] = []
    files = find_voice_files(paths)
    for f in files:
        try:
            loaded = read_voice_file(f).voices
        except DX7Error as exc:
            msg = str(exc)
            out.bad_files.append((str(f), msg[len(str(f)) + 2 :] if msg.startswith(f"{f}: ") else msg))
            continue
        slots += [(lv.voice, {"file": str(f), "slot": lv.slot}) for lv in loaded]
    slots += [(v, f"memory:{i}") for i, v in enumerate(voices)]
    if synthetic:
        from host_training.audio.synth_voices import generate

        slots += [(v, f"synthetic:{seed}:{i}") for i, v in enumerate(generate(synthetic, seed))]
    seen: set[bytes] = set()
    duplicates = 0
    for voice, source in slots:
        key = voice.content_key()
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        out.voices.append(voice)
        out.sources.append(source)
    out.counts = {
        "files_found": len(files),
        "files_read": len(files) - len(out.bad_files),
        "files_bad": len(out.bad_files),
        "voices_read": len(slots),
        "voices_from_files": len(slots) - len(voices) - synthetic,
        "voices_given": len(voices),
        "voices_synthetic": synthetic,
        "clamped": sum(1 for v, _ in slots if v.fixes),
        "duplicates": duplicates,
        "unique": len(out.voices),
    }
    return out
