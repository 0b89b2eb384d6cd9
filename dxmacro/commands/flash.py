"""``dxmacro flash``: send a signed model bundle to the controller, or manage what it has.

    dxmacro flash model.dxm --device http://dxmacro.local:8080 --token-file ~/.dxmacro-token
    dxmacro flash --list --device URL --token-file F    (reads need a token too: the flash or the read token)
    dxmacro flash --rollback --device URL --token T
    dxmacro flash --activate NAME --device URL --token T
    dxmacro flash voices.dxb --device URL --token T      (a voice bank, told by its magic)
    dxmacro flash --banks | --activate-bank NAME | --deactivate-bank | --delete-bank NAME --device URL --token T

The device does every check (signature, hashes, format, downgrade, self-test, health window);
this client streams the file with a progress bar and prints what the device decided. stdlib
urllib only, so it also runs on the Pi itself; tqdm draws the bar where it is installed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from dxmacro.errors import DxmacroError
from dxmacro.inputs import arg_float

TOKEN_ENV = "DXMACRO_FLASH_TOKEN"
DEVICE_ENV = "DXMACRO_DEVICE"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("flash", help="install a model bundle on the controller (or list / roll back)")
    p.add_argument("bundle", nargs="?", help="the signed .dxm bundle (or .dxb voice bank) to install and activate")
    p.add_argument("--device", default=os.environ.get(DEVICE_ENV),
                   help=f"controller URL, e.g. http://dxmacro.local:8080 (or ${DEVICE_ENV})")
    p.add_argument("--token", help=f"flash token, or the read token for --list/--status/--banks (or --token-file, "
                   f"or ${TOKEN_ENV})")
    p.add_argument("--token-file", help="file holding the flash token")
    p.add_argument("--force", action="store_true", help="allow installing an older version (a downgrade)")
    p.add_argument("--no-wait", action="store_true", help="return once activated, without awaiting the health check")
    act = p.add_mutually_exclusive_group()
    act.add_argument("--list", action="store_true", help="list the installed models")
    act.add_argument("--rollback", action="store_true", help="return to the previous model")
    act.add_argument("--activate", metavar="NAME", help="activate an installed model by its name (see --list)")
    act.add_argument("--status", action="store_true", help="print the device status as JSON")
    act.add_argument("--banks", action="store_true", help="list the installed voice banks")
    act.add_argument("--activate-bank", metavar="NAME", help="step through an installed voice bank (see --banks)")
    act.add_argument("--deactivate-bank", action="store_true", help="back to the model's anchors")
    act.add_argument("--delete-bank", metavar="NAME", help="delete an installed voice bank (not the active one)")
    p.add_argument("--timeout", type=arg_float(1, 86_400), default=180.0,
                   help="seconds to wait for the device (default 180)")
    p.set_defaults(func=run)


class Device:
    """The flash service's HTTP API, with errors turned into one-line DxmacroErrors."""

    def __init__(self, url: str, token: str | None, timeout: float) -> None:
        try:
            parts = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number in 0..65535
        except ValueError as exc:
            raise DxmacroError(f"--device {url!r} is not a usable URL ({exc})") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise DxmacroError(f"--device {url!r} is not an http(s) URL")
        self.base = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        self.token = token
        self.timeout = timeout

    def call(self, method: str, path: str, body=None, headers: dict[str, str] | None = None) -> dict:
        req = urllib.request.Request(self.base + path, data=body, method=method, headers=dict(headers or {}))
        if self.token is not None:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            try:
                reason = json.loads(exc.read()).get("error") or exc.reason
            except (ValueError, OSError):
                reason = exc.reason
            raise DxmacroError(f"device refused ({exc.code}): {reason}") from None
        except urllib.error.URLError as exc:
            raise DxmacroError(f"cannot reach {self.base}: {exc.reason}") from None
        except (OSError, ValueError) as exc:
            raise DxmacroError(f"talking to {self.base} failed: {exc}") from None

    def post_json(self, path: str, doc: dict | None = None) -> dict:
        return self.call("POST", path, json.dumps(doc or {}).encode(), {"Content-Type": "application/json"})


class _Progress:
    """A file wrapper that advances a progress bar as http.client reads it."""

    def __init__(self, f, total: int, label: str) -> None:
        self.f = f
        try:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=label,
                            file=sys.stderr, disable=None)  # disable=None: no bar when not a terminal
        except ImportError:
            self.bar = None

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        if self.bar is not None:
            self.bar.update(len(data))
        return data

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _token(args: argparse.Namespace) -> str | None:
    if args.token:
        return args.token
    if args.token_file:
        try:
            return Path(args.token_file).expanduser().read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise DxmacroError(f"cannot read the token file {args.token_file}: {exc.strerror}") from None
    return os.environ.get(TOKEN_ENV)


def _need_token(token: str | None) -> str:
    if not token:
        raise DxmacroError(f"this needs the flash token: --token, --token-file or ${TOKEN_ENV}")
    return token


def _health_line(h) -> tuple[str, bool]:
    """(text, ok) for the health field of a result."""
    if isinstance(h, dict):
        state = h.get("state", "?")
        if state == "confirmed":
            return f"healthy (confirmed after {h.get('seconds', '?')} s)", True
        if state in ("rolled back", "failed"):
            return f"FAILED: {h.get('reason', '?')}; the device {state} to {h.get('active', 'the previous model')}" \
                   f" after {h.get('seconds', '?')} s", False
        return state, True
    return str(h), True


def print_models(models: list[dict]) -> None:
    if not models:
        print("no models installed")
    for m in models:
        print(f"{'*' if m.get('active') else ' '} {m['name']}  ({m['model_id']} {m['version']}, "
              f"format {m['format_version']})")


def print_banks(summary: dict) -> None:
    banks = summary.get("banks") or []
    if not banks:
        print("no voice banks installed")
    for b in banks:
        print(f"{'*' if b.get('active') else ' '} {b['name']}  ({b['voices']} voices for {b['model_id']})")
    print(summary.get("reason", ""))


def run(args: argparse.Namespace) -> int:
    if not args.device:
        raise DxmacroError(f"--device URL is required (or set ${DEVICE_ENV})")
    dev = Device(args.device, _token(args), args.timeout)
    if args.banks:
        print_banks(dev.call("GET", "/api/banks"))
        return 0
    if args.activate_bank or args.deactivate_bank or args.delete_bank:
        _need_token(dev.token)
        if args.delete_bank:
            print(f"deleted    {dev.post_json('/api/banks/delete', {'name': args.delete_bank})['deleted']}")
            return 0
        r = dev.post_json("/api/banks/activate", {"name": args.activate_bank}) if args.activate_bank else \
            dev.post_json("/api/banks/deactivate")
        return _report_bank(r)
    if args.list:
        print_models(dev.call("GET", "/api/models")["models"])
        return 0
    if args.status:
        json.dump(dev.call("GET", "/api/status"), sys.stdout, indent=2)
        print()
        return 0
    if args.rollback:
        _need_token(dev.token)
        r = dev.post_json("/api/rollback")
        print(f"rolled back: active {r['active']} (was {r['rolled_back_from']}) in {r['seconds']} s")
        return 0
    wait = "0" if args.no_wait else "1"
    if args.activate:
        _need_token(dev.token)
        r = dev.post_json(f"/api/activate?wait={wait}", {"name": args.activate})
        return _report(r)
    if not args.bundle:
        raise DxmacroError("give a bundle to flash, or one of --list, --rollback, --activate, --status")
    if is_bank_file(Path(args.bundle)):
        return flash_bank(dev, Path(args.bundle))
    return flash(dev, Path(args.bundle), force=args.force, wait=not args.no_wait)


def is_bank_file(path: Path) -> bool:
    from conversion.voice_bank import is_bank

    try:
        with open(path, "rb") as f:
            return is_bank(f.read(4))
    except OSError as exc:
        raise DxmacroError(f"cannot read {path}: {exc.strerror}") from None


def _upload(dev: Device, path: Path, endpoint: str, query: dict) -> dict:
    """Stream ``path`` to ``endpoint`` after checking size and token (a wrong token fails before
    megabytes go over the wire)."""
    _need_token(dev.token)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DxmacroError(f"cannot read {path}: {exc.strerror}") from None
    status = dev.call("GET", "/api/status")
    limit = status.get("max_bytes")
    if isinstance(limit, int) and size > limit:
        raise DxmacroError(f"{path.name} is {size} bytes; the device accepts at most {limit}")
    dev.post_json("/api/auth")
    with open(path, "rb") as f:
        body = _Progress(f, size, path.name)
        try:
            return dev.call("POST", f"{endpoint}?{urllib.parse.urlencode({'filename': path.name} | query)}", body,
                            {"Content-Type": "application/octet-stream", "Content-Length": str(size)})
        finally:
            body.close()


def flash_bank(dev: Device, bank: Path) -> int:
    r = _upload(dev, bank, "/api/banks/upload", {})
    print(f"installed  {r['installed']} ({r['voices']} voices for {r['model_id']})")
    return _report_bank(r)


def _report_bank(r: dict) -> int:
    print(f"bank       {r.get('active_bank') or 'none: the model anchors'}"
          + (f"  (was {r['previous_bank']})" if r.get("previous_bank") else ""))
    return 0


def flash(dev: Device, bundle: Path, *, force: bool = False, wait: bool = True) -> int:
    return _report(_upload(dev, bundle, "/api/upload", {"force": int(force), "wait": int(wait)}))


def _report(r: dict) -> int:
    if "installed" in r:
        print(f"installed  {r['installed']}")
    if "self_test" in r:
        st = r["self_test"]
        print("self-test  " + ", ".join(f"{k} {v}" for k, v in st.items()))
    print(f"active     {r.get('active')}" + (f"  (previous {r['previous']})" if r.get("previous") else ""))
    text, ok = _health_line(r.get("health"))
    print(f"health     {text}")
    if not ok:
        raise DxmacroError(f"the new model failed its health check and was rolled back: {r['health'].get('reason')}")
    return 0
