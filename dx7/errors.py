"""The one exception type the dx7 package raises for bad data."""

from __future__ import annotations


class DX7Error(ValueError):
    """Bad DX7 data: a corrupt or truncated file, a wrong header, a bad checksum...

    The message names the problem (and the file, when there is one); callers at the
    edge print it as one line and exit non-zero.
    """

    def __init__(self, message: str, *, source: str | None = None) -> None:
        self.source = source
        super().__init__(f"{source}: {message}" if source else message)
