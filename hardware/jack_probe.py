"""Whether a JACK2 server answers, read from its request socket: cheap enough to ask before
every MIDI send. The MIDI ports (``hardware.midi``) and the private server
(``hardware.jack``) both ask; neither needs the other for it."""

from __future__ import annotations

import os
import socket
from pathlib import Path

_SOCKETS_SEEN: set[str] = set()


def server_socket(name: str | None = None) -> Path:
    """JACK2's request socket on Linux (tmpdir /dev/shm, as ``jackd --version`` reports)."""
    name = name or os.environ.get("JACK_DEFAULT_SERVER") or "default"
    return Path("/dev/shm") / f"jack_{name}_{os.getuid()}_0"


def server_alive(name: str | None = None) -> bool | None:
    """Whether the JACK2 server answers on its socket: True, False, or None when this is not
    a JACK2 server we have ever seen (pipewire-jack, JACK1) and so cannot tell.

    Why: after a server crash, libjack clients keep listing ports from stale shared memory
    and sends succeed silently, and a probe client costs ~100 ms; a connect() costs ~10 us."""
    path = server_socket(name)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
        _SOCKETS_SEEN.add(str(path))
        return True
    except FileNotFoundError:
        return False if str(path) in _SOCKETS_SEEN else None
    except OSError:  # ECONNREFUSED: the file is there, nobody listens (the server died)
        return False
    finally:
        sock.close()
