"""``dxmacro bank``: build, look inside and verify signed voice banks (.dxb).

    dxmacro bank build CART.syx... [--run RUN] --key signing.key --out voices.dxb
    dxmacro bank inspect voices.dxb [--pubkey signing.key.pub]
    dxmacro bank verify voices.dxb --pubkey signing.key.pub [--model-id ID]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bank", help="build, inspect or verify a signed voice bank (.dxb) for one model")
    bs = p.add_subparsers(dest="bank_command", metavar="ACTION", parser_class=type(p))
    bs.required = True
    b = bs.add_parser("build", help="give every voice of the cartridges its latent and write a signed bank")
    b.add_argument("cartridges", nargs="+", metavar="CART.syx", help="DX7 voice files (bulk dumps, single voices)")
    b.add_argument("--run", help="training run folder (default: the shipped default model)")
    b.add_argument("--key", required=True, help="private signing key (dxmacro keys generate)")
    b.add_argument("--out", required=True, help="the bank file to write (.dxb)")
    b.add_argument("--name", help="the bank's name on the device (default: the output file's stem)")
    b.add_argument("--latent", choices=("encoder", "inverse"), default="encoder",
                   help="how a voice gets its latent: encode its renders at the data set's notes (default), or "
                        "invert the regression flow on its parameters (docs/conversion.md, 'Voice banks')")
    b.set_defaults(func=run_build)
    for name, helptext in (("inspect", "show the manifest and the voices (signature checked only with --pubkey)"),
                           ("verify", "check the signature, the voices' hash, the format and the limits")):
        a = bs.add_parser(name, help=helptext)
        a.add_argument("bank", metavar="VOICES.dxb")
        a.add_argument("--pubkey", required=name == "verify", help="the signer's public key")
        a.add_argument("--json", action="store_true", help="print the manifest as JSON")
        if name == "verify":
            a.add_argument("--model-id", help="also require the bank to be made for this model id")
        a.set_defaults(func=run_read)


def run_build(args: argparse.Namespace) -> int:
    from conversion import keys, voice_bank
    from host_training.jobs.bank import build_bank
    from host_training.jobs.runs import resolve_run

    key = keys.load_private_key(args.key)
    run_dir = resolve_run(args.run)
    out = Path(args.out)
    name = args.name or out.stem
    data = build_bank(args.cartridges, run_dir, key, name=name, method=args.latent)
    voice_bank.write(out, data)
    bank = voice_bank.decode(data, key.public_key(), source=str(out))
    print(f"{out}: {len(bank.voices)} voices for model {bank.model_id} (latents: {args.latent}), "
          f"{len(data)} bytes, signed by {bank.signed_by}")
    return 0


def run_read(args: argparse.Namespace) -> int:
    from conversion import keys, voice_bank

    key = keys.load_public_key(args.pubkey) if args.pubkey else None
    bank = voice_bank.read(args.bank, key)
    if getattr(args, "model_id", None):
        bank.require_model(args.model_id)
    m = bank.manifest
    if args.json:
        print(json.dumps(m, indent=1, sort_keys=True))
        return 0
    status = f"signature OK (key {bank.signed_by})" if bank.signed_by else "signature NOT checked (no --pubkey)"
    print(f"{args.bank}: bank {bank.name}, {len(bank.voices)} voices for model {bank.model_id} "
          f"{m.get('model_version', '')}, format {m['format_version']}, {status}".replace("  ", " "))
    if args.bank_command == "inspect":
        print(f"  latent size {bank.latent_size}, latents by {m.get('latent_method', '?')}")
        sources = m.get("sources") if isinstance(m.get("sources"), list) else []
        for i, (v, z) in enumerate(zip(bank.voices, bank.latents)):
            src = sources[i] if i < len(sources) and isinstance(sources[i], list) else None
            where = f"  {src[0]} #{src[1]}" if src and len(src) == 2 else ""
            print(f"  {i + 1:4d} {v.name!r:14} |z| {float((z ** 2).sum() ** 0.5):6.2f}{where}")
    return 0
