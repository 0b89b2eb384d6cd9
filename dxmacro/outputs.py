"""Checks on where a command will write, run before its slow part: a long evaluation or a
conversion should not end in "that path is a file". Failures are DxmacroError (one line at the
CLI edge); whatever the file system refuses later is caught there too (cli.os_error_message)."""

from __future__ import annotations

from pathlib import Path

from dxmacro.errors import DxmacroError


def check_output_file(path: str, what: str = "output file") -> None:
    """``path`` can be written as a file: not a folder, and its folder exists."""
    p = Path(path)
    if p.is_dir():
        raise DxmacroError(f"{what} {path} is a folder; give a file name, e.g. {p / 'out'}")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise DxmacroError(f"{what} {path}: folder {parent} does not exist")


def check_output_folder(path: str, what: str = "output folder") -> None:
    """``path`` is a folder or can be created as one: no file there, nor where a parent goes."""
    p = Path(path)
    for q in (p, *p.parents):
        if q.exists():
            if not q.is_dir():
                raise DxmacroError(f"{what} {path}: {q} exists and is not a folder")
            return
