"""status.json from the control loop (docs/flashing.md, "Contract with the control loop").

Written atomically (``device.flashing.status_file.write_status``) every ``period_s`` of real time from
the loop's own thread, at the end of a tick, so ``last_tick`` is a tick that really
completed. ``healthy`` is the same condition the systemd watchdog pings on (the loop's
decoder works and the active model could be loaded). Recent errors come from the
device's log: every warning or error the loop logs (port gone, decode failure, model
refused, ADC scan failure) lands there without the loop having to know about this file.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from device.flashing.model_follow import ModelState
from device.flashing.status_file import write_status

log = logging.getLogger("dxmacro.device")


class RecentErrors(logging.Handler):
    def __init__(self, keep: int = 8) -> None:
        super().__init__(logging.WARNING)
        self.items: deque[dict] = deque(maxlen=keep)

    def emit(self, record: logging.LogRecord) -> None:
        reason = getattr(record, "reason", None)
        msg = record.getMessage() + (f": {reason}" if reason else "")
        self.items.append({"time": round(record.created, 3), "message": msg})


class StatusPublisher:
    def __init__(self, path: Path, model: ModelState, port_name: Callable[[], str], period_s: float = 0.5) -> None:
        self.path, self.model, self.port_name, self.period_s = Path(path), model, port_name, period_s
        self.errors = RecentErrors()
        logging.getLogger("dxmacro").addHandler(self.errors)
        self._last = float("-inf")
        self.writes = 0

    def close(self) -> None:
        logging.getLogger("dxmacro").removeHandler(self.errors)

    def tick(self, loop) -> None:
        now = time.monotonic()
        if now - self._last >= self.period_s:
            self.publish(loop, now)

    def publish(self, loop, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        errors = list(self.errors.items)
        if not self.model.ok and self.model.reason and not any(e["message"] == self.model.reason for e in errors):
            errors.append({"time": round(time.time(), 3), "message": self.model.reason})
        doc = {
            "last_tick": now,
            "healthy": loop.is_healthy(),
            "model": self.model.as_json(),
            "knobs": [{"index": i, "channel": m.channel, "name": m.name,
                       "value": None if ch.position is None else round(float(ch.position), 4)}
                      for i, (m, ch) in enumerate(zip(loop.mappings, loop.channels))],
            "anchor": {"name": loop.voice_name, "index": loop.cycler.index},
            "midi": {"port": self.port_name(), "state": "connected" if loop.link_up else "disconnected"},
            "errors": errors[-5:],
        }
        desk = getattr(loop, "learn_desk", None)
        doc["learn"] = desk.state.as_json() if desk is not None else {"available": False, "page": False}
        try:
            write_status(self.path, doc)
        except OSError as exc:  # /run full or gone: the loop plays on; the service will see it stale
            log.debug("status.json not written", extra={"event": "status_error", "reason": str(exc)})
            return
        self._last = now
        self.writes += 1
