"""One check for every number that comes in from a config file, a JSON file or the command line.

A number must be a number (a bool is not), finite (NaN passes every comparison, so a range check
alone lets it through and the loop runs "healthy" on it), and in range; the refusal names the
setting. Configs call :func:`number`; argparse gets :func:`arg_int` / :func:`arg_float` as types,
so a bad argument is argparse's one-line usage error (exit 2) before any work starts.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from dxmacro.errors import DxmacroError


def _range(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f"in {lo}..{hi}"
    return f"at least {lo}" if lo is not None else f"at most {hi}"


def problem(value: object, *, lo: float | None = None, hi: float | None = None, integer: bool = False) -> str | None:
    """What is wrong with ``value`` as a setting (``"must be ..., got ..."``), or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        return f"must be {'a whole number' if integer else 'a number'}, got {value!r}"
    if not math.isfinite(value):
        return f"must be a finite number, got {value!r}"
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        return f"must be {_range(lo, hi)}, got {value!r}"
    return None


def number(value: object, name: str, *, lo: float | None = None, hi: float | None = None,
           integer: bool = False) -> float:
    """``value`` if it is a finite number in ``lo..hi``; else DxmacroError naming ``name``."""
    why = problem(value, lo=lo, hi=hi, integer=integer)
    if why is not None:
        raise DxmacroError(f"{name} {why}")
    return value  # type: ignore[return-value]


def _arg(parse: Callable[[str], float], integer: bool, lo: float | None, hi: float | None) -> Callable[[str], float]:
    def convert(text: str) -> float:
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{'a whole number' if integer else 'a number'} is needed, "
                                             f"got {text!r}") from None
        why = problem(value, lo=lo, hi=hi, integer=integer)
        if why is not None:
            raise argparse.ArgumentTypeError(why)
        return value

    convert.__name__ = "int" if integer else "float"  # argparse names the type in some messages
    return convert


def arg_int(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """An argparse ``type`` for a whole number in ``lo..hi``."""
    return _arg(int, True, lo, hi)  # type: ignore[return-value]


def arg_float(lo: float | None = None, hi: float | None = None) -> Callable[[str], float]:
    """An argparse ``type`` for a finite number in ``lo..hi`` ("nan" and "inf" are refused)."""
    return _arg(float, False, lo, hi)
