"""dxmacro: learned macro knobs for DX7 voices."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dxmacro")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+source"
