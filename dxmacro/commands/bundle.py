"""``dxmacro bundle``: look inside and verify model bundles (.dxm)."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bundle", help="inspect or verify a model bundle (.dxm)")
    bs = p.add_subparsers(dest="bundle_command", metavar="ACTION", parser_class=type(p))
    bs.required = True
    for name, helptext in (("inspect", "show the manifest (signature checked only with --pubkey)"),
                           ("verify", "check signature, every member's hash and the format version")):
        a = bs.add_parser(name, help=helptext)
        a.add_argument("bundle", metavar="MODEL.dxm")
        a.add_argument("--pubkey", required=name == "verify", help="the signer's public key")
        a.add_argument("--json", action="store_true", help="print the manifest as JSON")
        if name == "verify":
            a.add_argument("--self-test", action="store_true",
                           help="also run the model here on its golden vectors with this machine's TFLite runtime")
        a.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from conversion import bundle, keys

    key = keys.load_public_key(args.pubkey) if args.pubkey else None
    b = bundle.read(args.bundle, key)
    m = b.manifest
    if args.json:
        print(json.dumps(m, indent=1, sort_keys=True))
        return 0
    status = f"signature OK (key {b.signed_by})" if b.signed_by else "signature NOT checked (no --pubkey)"
    print(f"{args.bundle}: model {b.model_id} version {b.version}, format {m['format_version']}, {status}")
    print(f"  dxmacro {m.get('dxmacro_version', '?')}, data set {str(m.get('dataset_manifest_sha256', '?'))[:16]}, "
          f"latent size {m['latent_size']}")
    for k in m.get("knobs", []):
        print(f"  knob {k.get('index')}: latent dim {k.get('dim')} '{k.get('name')}' "
              f"[{k.get('low', 0):.2f}, {k.get('high', 0):.2f}]")
    for member in m["members"]:
        print(f"  {member['name']:14} {member['size']:9d} bytes  sha256 {member['sha256'][:16]}...")
    print(f"  {len(b.anchors)} anchor voices, {len(b.golden['latents'])} golden vectors "
          f"(int8 kernels: {', '.join(b.golden['kernels']) or 'none'})")
    if getattr(args, "self_test", False):
        from conversion.runtime import TFLiteDecoder

        decoder = TFLiteDecoder(b)
        result = decoder.self_test()
        runtime = type(decoder.model.interpreter).__module__.split(".")[0]
        print(f"  self-test passed on {runtime} ({result['kernels']} kernels): {result['vectors']} vectors, "
              f"largest difference {result['max_code_diff']} int8 steps, {result['max_value_diff']} DX7 steps")
    return 0
