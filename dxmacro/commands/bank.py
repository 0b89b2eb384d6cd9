"""``dxmacro bank``: build, look inside and verify signed voice banks (.dxb).

    dxmacro bank build CART.syx... [--run RUN] --key signing.key --out voices.dxb
                       [--tune-knobs --bundle model.dxm [--data DIR] [--threads 2]]
    dxmacro bank inspect voices.dxb [--pubkey signing.key.pub]
    dxmacro bank verify voices.dxb --pubkey signing.key.pub [--model-id ID]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dxmacro.errors import DxmacroError
from dxmacro.inputs import arg_int


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
    b.add_argument("--tune-knobs", action="store_true",
                   help="tune every voice's knobs by rendering: each knob passes on only the decoder's changes that "
                        "move its own descriptor on that voice (docs/device.md, 'Tuned knobs'); needs --bundle")
    b.add_argument("--bundle", help="with --tune-knobs: the model bundle the device runs (model.dxm of this run)")
    b.add_argument("--data", help="with --tune-knobs: the data set whose descriptors judge the knobs (default: the "
                                  "run's own)")
    b.add_argument("--threads", type=arg_int(1, 64), default=2, help="with --tune-knobs: render threads (default 2)")
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
    tune = None
    if args.tune_knobs:
        tune = _tuning(args, run_dir, key.public_key())
    elif args.bundle or args.data:
        raise DxmacroError("--bundle and --data are for --tune-knobs")
    data = build_bank(args.cartridges, run_dir, key, name=name, method=args.latent, tune=tune)
    voice_bank.write(out, data)
    bank = voice_bank.decode(data, key.public_key(), source=str(out))
    print(f"{out}: {len(bank.voices)} voices for model {bank.model_id} (latents: {args.latent}), "
          f"{len(data)} bytes, signed by {bank.signed_by}")
    if tune is not None:
        passed = bank.manifest["knob_tuning"]["passed"]
        names = [k.name for k in tune.decoder.knobs if k.dim in bank.manifest["knob_dims"]]
        print("knobs tuned; voices where a knob passes every gate: "
              + ", ".join(f"{n} {p:.0%}" for n, p in zip(names, passed)))
    return 0


def _tuning(args: argparse.Namespace, run_dir: Path, public_key):
    """What --tune-knobs needs, checked before the slow part."""
    import sys

    from conversion import runtime
    from host_training.jobs.bank import Tuning
    from host_training.jobs.export import read_run

    if not args.bundle:
        raise DxmacroError("--tune-knobs needs --bundle: the model bundle the device runs")
    decoder = runtime.load_decoder(args.bundle, public_key)
    data_dir = Path(args.data) if args.data else None
    if data_dir is None:
        data_dir = Path(read_run(run_dir).get("dataset_dir") or "")
        if not (data_dir / "manifest.json").is_file():
            raise DxmacroError(f"the run's data set {data_dir} is not here: give --data, the data set the run was "
                               "trained on")
    return Tuning(decoder, data_dir, args.threads, progress=lambda m: print(f"  {m}", file=sys.stderr))


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
        if bank.knob_masks is not None:
            tuning = m.get("knob_tuning") if isinstance(m.get("knob_tuning"), dict) else {}
            passed = tuning.get("passed") if isinstance(tuning.get("passed"), list) else []
            shares = ", ".join(f"dim {d} {p:.0%}" for d, p in zip(m["knob_dims"], passed)
                               if isinstance(p, (int, float)))
            print(f"  knobs tuned for latent dims {m['knob_dims']} by {tuning.get('data_set', '?')}"
                  + (f"; voices passing every gate: {shares}" if shares else ""))
        sources = m.get("sources") if isinstance(m.get("sources"), list) else []
        for i, (v, z) in enumerate(zip(bank.voices, bank.latents)):
            src = sources[i] if i < len(sources) and isinstance(sources[i], list) else None
            where = f"  {src[0]} #{src[1]}" if src and len(src) == 2 else ""
            print(f"  {i + 1:4d} {v.name!r:14} |z| {float((z ** 2).sum() ** 0.5):6.2f}{where}")
    return 0
