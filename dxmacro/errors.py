"""dxmacro's own error type, caught once at the CLI edge and printed as one line."""

from __future__ import annotations


class DxmacroError(Exception):
    """A problem the user can act on: bad input, a missing file, a wrong config."""
