"""``dxmacro flash-service``: the device side of flashing (runs on the Pi under systemd).

    dxmacro flash-service serve --config /etc/dxmacro/flash.toml
    dxmacro flash-service import-usb /media/usb --config /etc/dxmacro/flash.toml
    dxmacro flash-service status --config /etc/dxmacro/flash.toml

Settings come from a TOML file (keys below), each overridable on the command line.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tomllib
from pathlib import Path

from dxmacro.errors import DxmacroError

DEFAULTS = {
    "store": "/var/lib/dxmacro/models",
    "token_file": "/etc/dxmacro/flash.token",
    "read_token_file": "",  # a second token that reads status only (a screen at the side of the stage)
    "public_key": "/etc/dxmacro/signing.pub",
    "status_file": "/run/dxmacro/status.json",
    "host": "127.0.0.1",  # loopback unless the config names the address to serve on
    "port": 8080,
    "max_bytes": 8 * 1024 * 1024,  # conversion.bundle.MAX_BUNDLE_BYTES (not imported: --help stays light)
    "health_window_s": 8.0,
    "stale_s": 3.0,
    "self_test_timeout_s": 60.0,
    "keep_models": 4,
    "usb_dir": "",
}
_TYPES = {k: type(v) for k, v in DEFAULTS.items()}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("flash-service", help="device side: the flash/status web service and USB import")
    fs = p.add_subparsers(dest="flash_service_command", metavar="ACTION", parser_class=type(p))
    fs.required = True
    for name, helptext, func in (("serve", "run the HTTP flash service and status page", run_serve),
                                 ("import-usb", "install the *.dxm bundles of a USB stick folder", run_import),
                                 ("status", "print the store's state as JSON", run_status)):
        a = fs.add_parser(name, help=helptext)
        a.add_argument("--config", help="TOML settings file (e.g. /etc/dxmacro/flash.toml)")
        for key in DEFAULTS:
            a.add_argument(f"--{key.replace('_', '-')}", dest=key, type=_TYPES[key], default=None,
                           help=f"(default {DEFAULTS[key]!r})")
        a.add_argument("--no-health-check", action="store_true",
                       help="confirm swaps at once instead of watching the control loop's heartbeat")
        if name == "import-usb":
            a.add_argument("folder", nargs="?", help="folder scanned for *.dxm (default: usb_dir)")
            a.add_argument("--force", action="store_true", help="allow a downgrade")
        a.set_defaults(func=func)


def settings(args: argparse.Namespace) -> dict:
    conf = dict(DEFAULTS)
    if args.config:
        try:
            data = tomllib.loads(Path(args.config).read_text(encoding="utf-8"))
        except OSError as exc:
            raise DxmacroError(f"cannot read {args.config}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise DxmacroError(f"{args.config} is not valid TOML: {exc}") from None
        unknown = sorted(set(data) - set(DEFAULTS))
        if unknown:
            raise DxmacroError(f"{args.config}: unknown setting(s) {', '.join(unknown)}")
        for k, v in data.items():
            want = _TYPES[k]
            if want is float and isinstance(v, int) and not isinstance(v, bool):
                v = float(v)
            if not isinstance(v, want) or isinstance(v, bool):
                raise DxmacroError(f"{args.config}: {k} must be a {want.__name__}")
            conf[k] = v
    for k in DEFAULTS:
        if getattr(args, k, None) is not None:
            conf[k] = getattr(args, k)
    check_numbers(conf, args.config or "flash-service")
    if args.no_health_check:
        conf["status_file"] = ""
    return conf


def check_numbers(conf: dict, where: str) -> None:
    """Every number setting finite and in range, refused with its name before anything starts."""
    from device.flashing.flasher import LIMITS
    from dxmacro.inputs import number

    try:
        number(conf["port"], "port", lo=0, hi=65535, integer=True)
        for name, (lo, hi, whole) in LIMITS.items():
            number(conf[name], name, lo=lo, hi=hi, integer=whole)
    except DxmacroError as exc:
        raise DxmacroError(f"{where}: {exc}") from None


def make_flasher(conf: dict):
    from device.flashing.bundle_check import CachingVerifier, load_public_key
    from device.flashing.flasher import FlashConfig, Flasher
    from device.flashing.store import ModelStore

    key_file = Path(conf["public_key"])
    if not key_file.is_file():
        raise DxmacroError(f"public key {key_file} does not exist")
    verifier = CachingVerifier(load_public_key(key_file))
    store = ModelStore.open(conf["store"], verifier)
    cfg = FlashConfig(max_bytes=conf["max_bytes"], status_file=Path(conf["status_file"]) if conf["status_file"] else None,
                      health_window_s=conf["health_window_s"], stale_s=conf["stale_s"],
                      self_test_timeout_s=conf["self_test_timeout_s"], keep_models=conf["keep_models"])
    return Flasher(store, key_file, cfg)


def read_token(path: str) -> str:
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise DxmacroError(f"cannot read the token file {path}: {exc.strerror}") from None
    if len(token) < 16:
        raise DxmacroError(f"the token in {path} is shorter than 16 characters")
    return token


def run_serve(args: argparse.Namespace) -> int:
    from device.flashing.flash_service import FlashHTTPServer

    conf = settings(args)
    token = read_token(conf["token_file"])
    reader = read_token(conf["read_token_file"]) if conf["read_token_file"] else None
    flasher = make_flasher(conf)
    try:
        server = FlashHTTPServer((conf["host"], conf["port"]), flasher, token,
                                 Path(conf["usb_dir"]) if conf["usb_dir"] else None, read_token=reader)
    except OSError as exc:
        raise DxmacroError(f"cannot listen on {conf['host']}:{conf['port']}: {exc.strerror}") from None
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    host, port = server.server_address[:2]
    active = flasher.store.active_name()
    print(f"dxmacro flash service on http://{host}:{port}/ (store {conf['store']}, active {active})", flush=True)
    for line in flasher.store.recovered:
        print(f"store recovery: {line}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def run_import(args: argparse.Namespace) -> int:
    conf = settings(args)
    folder = args.folder or conf["usb_dir"]
    if not folder:
        raise DxmacroError("no folder given and no usb_dir configured")
    flasher = make_flasher(conf)
    result = flasher.import_folder(Path(folder), force=args.force)
    if result.get("health") == "pending":
        result["health"] = flasher.wait_health()
    for r in result["refused"]:
        print(f"refused {r['file']}: {r['reason']}")
    for r in result["installed"]:
        print(f"installed {r['installed']} (self-test {r['self_test']})")
    if "active" in result:
        print(f"active {result['active']}; health {result['health']}")
    return 0 if result["installed"] and not _rolled_back(result) else 1


def _rolled_back(result: dict) -> bool:
    h = result.get("health")
    return isinstance(h, dict) and h.get("state") in ("rolled back", "failed")


def run_status(args: argparse.Namespace) -> int:
    conf = settings(args)
    flasher = make_flasher(conf)
    json.dump(flasher.status(), sys.stdout, indent=2)
    print()
    return 0
