"""The ``dxmacro`` command: one entry point, a subcommand per job.

Each command group lives in a module under ``dxmacro.commands`` with a
``register(subparsers)`` function; heavy imports happen inside the command, so
``dxmacro --help`` and the device-side commands stay light. Errors of our own
types are caught here, once, and printed as one line.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from dx7.errors import DX7Error
from dxmacro import __version__
from dxmacro.errors import DxmacroError

# Command modules, in the order `dxmacro --help` lists them.
COMMANDS = [
    "dxmacro.commands.voices",
    "dxmacro.commands.render",
    "dxmacro.commands.demo",
    "dxmacro.commands.device",
    "dxmacro.commands.play",
    "dxmacro.commands.bench",
    "dxmacro.commands.convert",
    "dxmacro.commands.keys",
    "dxmacro.commands.bundle",
    "dxmacro.commands.bank",
    "dxmacro.commands.flash",
    "dxmacro.commands.flash_service",
    "dxmacro.commands.hil",
    "dxmacro.commands.dataset",
    "dxmacro.commands.train",
    "dxmacro.commands.evaluate",
    "dxmacro.commands.match",
    "dxmacro.commands.generate",
    "dxmacro.commands.knobs",
]


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (and exit code 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dxmacro", description="Learned semantic macro knobs for DX7 voices.")
    parser.add_argument("--version", action="version", version=f"dxmacro {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def _printable_streams() -> None:
    """A file name that is not UTF-8 (kept by Python as surrogates) prints escaped, not as a
    UnicodeEncodeError, on a terminal that accepts UTF-8 only."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")


def main(argv: Sequence[str] | None = None) -> int:
    _printable_streams()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (DxmacroError, DX7Error) as exc:
        print(f"dxmacro: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("dxmacro: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `dxmacro voices inspect ... | head`
        return 0
    except OSError as exc:  # the file system refused: a folder where a file goes, a full disk, permissions
        print(f"dxmacro: error: {os_error_message(exc)}", file=sys.stderr)
        return 1


def os_error_message(exc: OSError) -> str:
    """One line naming the path the system refused and why (the target of a rename, not its
    temporary file); reads and writes alike."""
    path = exc.filename2 if exc.filename2 is not None else exc.filename
    reason = exc.strerror or str(exc)
    if isinstance(exc, FileExistsError) or (isinstance(exc, NotADirectoryError) and path is not None):
        reason += " (a file is where a folder goes)"
    elif isinstance(exc, IsADirectoryError):
        reason += " (a folder is where a file goes)"
    return f"{path}: {reason}" if path is not None else reason


if __name__ == "__main__":
    sys.exit(main())
