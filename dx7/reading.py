"""Reading what a user hands us without trusting it: bounded reads of regular files and JSON
with limits. Every layer may import ``dx7``, so every file and JSON reader of the project goes
through here: a FIFO or a device is refused before a byte is read (a FIFO would wait forever,
/dev/zero reports size 0 and never ends), nesting deeper than a voice file or a bundle needs
is refused before the parser recurses, and NaN, Infinity or 1e400 never become numbers."""

from __future__ import annotations

import json
import math
import os
import re
import stat
from itertools import accumulate
from typing import Any

from dx7.errors import DX7Error

MAX_JSON_DEPTH = 64  # voice files, manifests and run.json nest 4 deep; the C parser recurses per level
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")


def read_regular_file(path: str | os.PathLike[str], *, max_bytes: int, what: str = "file") -> bytes:
    """The bytes of ``path``: a regular file of at most ``max_bytes``, or DX7Error naming it.

    Opened non-blocking so a FIFO cannot hang the open; the kind and size come from the open
    file (fstat), so nothing can be swapped in between the check and the read."""
    src = os.fsdecode(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise DX7Error(f"cannot read {what}: {exc.strerror or exc}", source=src) from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise DX7Error(f"is a directory, not a {what}", source=src)
        if not stat.S_ISREG(st.st_mode):
            raise DX7Error(f"is not a regular file (a pipe, socket or device); give a {what}", source=src)
        if st.st_size > max_bytes:
            raise DX7Error(f"{st.st_size} bytes is too large for a {what} (at most {max_bytes})", source=src)
        chunks, got = [], 0
        while got <= max_bytes:  # os.read may return less than asked; stop one byte past the limit
            chunk = os.read(fd, max_bytes + 1 - got)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        data = b"".join(chunks)
    except OSError as exc:
        raise DX7Error(f"cannot read {what}: {exc.strerror or exc}", source=src) from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise DX7Error(f"grew past {max_bytes} bytes while being read; not a {what}", source=src)
    return data


def json_depth(text: str) -> int:
    """How deep arrays and objects nest in ``text`` (brackets inside strings do not count)."""
    steps = (1 if c in "[{" else -1 for c in _BRACKETS.findall(_STRING.sub("", text)))
    return max(accumulate(steps), default=0)


def loads_json(text: str | bytes, source: str, *, what: str = "JSON", max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` that names ``source`` in every refusal: not UTF-8, not JSON, nested deeper
    than ``max_depth``, or a number that is not finite (NaN, Infinity, 1e400)."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DX7Error(f"{what} is not UTF-8 text (byte {exc.start})", source=source) from None
    if json_depth(text) > max_depth:
        raise DX7Error(f"{what} nests deeper than {max_depth} levels", source=source)

    def constant(name: str) -> float:
        raise DX7Error(f"{what} holds {name}, which is not a number", source=source)

    def finite(literal: str) -> float:
        value = float(literal)
        if not math.isfinite(value):
            raise DX7Error(f"{what} holds {literal}, which is not a finite number", source=source)
        return value

    try:
        return json.loads(text, parse_constant=constant, parse_float=finite)
    except json.JSONDecodeError as exc:
        raise DX7Error(f"not valid {what} ({exc.msg} at line {exc.lineno})", source=source) from None
    except (ValueError, RecursionError) as exc:  # DX7Error is a ValueError: ours pass as they are
        if isinstance(exc, DX7Error):
            raise
        raise DX7Error(f"not usable {what} ({str(exc).splitlines()[0]})", source=source) from None


__all__ = ["MAX_JSON_DEPTH", "json_depth", "loads_json", "read_regular_file"]
