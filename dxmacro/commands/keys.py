"""``dxmacro keys``: the Ed25519 keys that sign model bundles."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("keys", help="signing keys for model bundles")
    ks = p.add_subparsers(dest="keys_command", metavar="ACTION", parser_class=type(p))
    ks.required = True
    gen = ks.add_parser("generate", help="write a new private key (0600) and KEY.pub beside it")
    gen.add_argument("--out", required=True, help="private key file; the public key goes to OUT.pub")
    gen.add_argument("--force", action="store_true", help="overwrite existing key files")
    gen.set_defaults(func=run_generate)


def run_generate(args: argparse.Namespace) -> int:
    from conversion.keys import generate, key_id, load_public_key

    private, public = generate(args.out, overwrite=args.force)
    print(f"wrote private key {private} (keep it on the host) and public key {public} "
          f"(key id {key_id(load_public_key(public))}; copy it to the device)")
    return 0
