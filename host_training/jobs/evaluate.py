"""``dxmacro evaluate``: every model and baseline of a run side by side on the test split.

Inferred voices are re-rendered at every note of the data set and compared with renders of
the true voices: numeric parameter MAE (DX7 units), categorical accuracy, spectral
convergence, log-mel MAE (dB), MFCC-13/40 MAE. Strata: all test voices, "novel" ones
(nearest training voice farther than the near-copy threshold), out-of-domain voices (the
synthetic generator's) and "foreign" sounds, which no DX7 made (host_training.audio.foreign_sounds;
audio measures only, as they have no parameters). Each model is scored twice: as it decodes, and as
``KIND+register`` with its transpose read from the input (host_training.jobs.register). Then
the semantic knobs, generation, interpolation and the contrastive ratio. Writes
report.json, report.md and plots/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from dx7 import Voice, layout
from dx7.params import param
from dxmacro.errors import DxmacroError
from host_training.audio.foreign_sounds import ForeignSound
from host_training.audio.foreign_sounds import sounds as foreign_sounds
from host_training.jobs.runs import write_json
from host_training.model.vae import LATENT, VAE_KINDS, FlowVAE
from host_training.dataset.rendered_scores import Pool, descriptor_fn
from host_training.audio.sound import (SILENCE_DB, RenderSettings, VoiceRenderer, compare, features_level_db, features_of,
                                 gain_to_level, level_db, param_measures)

AUDIO_METRICS = ("logmel_mae_db", "spectral_convergence", "mfcc13_mae", "mfcc40_mae")
PARAM_METRICS = ("param_mae", "categorical_acc", "transpose_error")


# -- predictions -----------------------------------------------------------------------------
@torch.no_grad()
def predict_vectors(model, kind: str, x: np.ndarray, batch: int = 32) -> np.ndarray:
    out = []
    for b in range(0, len(x), batch):
        xb = torch.from_numpy(np.asarray(x[b : b + batch], dtype=np.float32))
        out.append((model.to_vector(model.encode(xb)) if kind in VAE_KINDS else model(xb)).numpy())
    return np.concatenate(out)


@torch.no_grad()
def single_note_latents(model: FlowVAE, x: np.ndarray, batch: int = 32) -> np.ndarray:
    """(N, K, M, F) -> (N, K, L): each note encoded alone."""
    out = []
    for b in range(0, len(x), batch):
        xb = torch.from_numpy(np.asarray(x[b : b + batch], dtype=np.float32))
        n, k = xb.shape[:2]
        z = model.encode(xb.reshape(n * k, 1, *xb.shape[2:]))
        out.append(z.reshape(n, k, -1).numpy())
    return np.concatenate(out)


def contrastive_ratio(lat: np.ndarray) -> dict[str, float]:
    """Mean distance between different voices' single-note latents over the mean distance
    between one voice's notes (higher = pitch-independent timbre)."""
    n, k, _ = lat.shape
    within = np.mean([np.linalg.norm(lat[i, a] - lat[i, b]) for i in range(n) for a in range(k) for b in range(a + 1, k)])
    flat = lat.reshape(n * k, -1)
    voice = np.repeat(np.arange(n), k)
    d = np.linalg.norm(flat[:, None] - flat[None], axis=-1)
    between = float(d[voice[:, None] != voice[None, :]].mean())
    return {"within": float(within), "between": between, "ratio": between / max(float(within), 1e-12)}


# -- scoring ----------------------------------------------------------------------------------
# all: the test voices; novel: those farther than a near-copy from every training voice; ood:
# the synthetic generator's voices; foreign: sounds of other kinds of synthesis (no parameters)
STRATA = ("all", "novel", "ood", "foreign")


def score_voices(pool: Pool, pred_params: np.ndarray, true_params: np.ndarray,
                 refs: list[list[np.ndarray]]) -> list[dict[str, float]]:
    def one(r: VoiceRenderer, i: int) -> dict[str, float]:
        v = Voice.from_parameters(pred_params[i], "EVAL")
        per_note = [compare(r.audio(v, k), refs[i][k], r.s.rate) for k in range(len(r.s.notes))]
        with np.errstate(all="ignore"):
            m = {key: float(np.nanmean([p[key] for p in per_note])) if any(np.isfinite(p[key]) for p in per_note)
                 else float("nan") for key in AUDIO_METRICS}
        m.update(param_measures(pred_params[i], true_params[i]))
        return m

    return pool.map(one, list(range(len(pred_params))))


def references(pool: Pool, ds, test: np.ndarray, ood_voices: list[Voice],
               foreign: list[ForeignSound] = ()) -> tuple[np.ndarray, np.ndarray, list]:
    """The inputs, true parameters and audio (at every note) of the test voices, then the
    out-of-domain voices, then the foreign sounds: (features (N, K, M, F) float32, (N, 145)
    values, NaN for a foreign sound, which has none; N lists of audio). Test features come
    from the data set, the others from their audio. A foreign sound is played at the test
    voices' median level, as a recording brought to the data set's level would be."""
    refs = pool.map(lambda r, v: r.all_notes(v), [ds.voice(int(i)) for i in test] + list(ood_voices))
    s = pool.settings
    x_test = np.asarray(ds.features[test], dtype=np.float32)
    if foreign:
        level = float(np.median(features_level_db(x_test)))
        for sound in foreign:
            audio = [sound.play(n, v, s.hold, s.duration, s.rate) for n, v in s.notes]
            gain = np.float32(gain_to_level(audio, s.rate, level))
            refs.append([a * gain for a in audio])
    feats = np.array([[features_of(a, s.rate)[0] for a in aud] for aud in refs[len(test):]], dtype=np.float32)
    x = np.concatenate([x_test, feats.reshape((-1,) + x_test.shape[1:])])  # reshape: none may be asked for
    width = ds.params.shape[1]
    true = np.concatenate([np.asarray(ds.params[test], dtype=np.float64),
                           np.array([v.parameters for v in ood_voices], dtype=np.float64).reshape(-1, width),
                           np.full((len(foreign), width), np.nan)])
    return x, true, refs


def summarize(rows: list[dict[str, float]], mask: np.ndarray) -> dict[str, Any]:
    sel = [r for r, m in zip(rows, mask) if m]
    if not sel:
        return {"n": 0}
    out: dict[str, Any] = {"n": len(sel)}
    for key in PARAM_METRICS + AUDIO_METRICS:
        vals = np.array([r[key] for r in sel])
        vals = vals[np.isfinite(vals)]  # spectral convergence of a silent reference is undefined
        # None (JSON null) where nothing could be measured: no parameters for a foreign sound
        out[key] = {"mean": float(vals.mean()), "median": float(np.median(vals))} if len(vals) else None
    return out


# -- semantic knobs, generation, interpolation ------------------------------------------------
_TRANSPOSE = param("transpose").index
_PITCH_EG_LEVELS = [param(f"pitch_eg_level{i}").index for i in range(1, 5)]


def pitch_drift(sweeps: list[np.ndarray]) -> dict[str, float]:
    """How far a knob moves the pitch of what is played (it should not: knobs are timbre): per
    sweep (steps, 145 DX7 values), the range of transpose in semitones and the largest range
    of a pitch EG level in DX7 steps; medians over the sweeps and the share that transpose."""
    tr = np.array([np.ptp(p[:, _TRANSPOSE].astype(int)) for p in sweeps])
    eg = np.array([np.ptp(p[:, _PITCH_EG_LEVELS].astype(int), axis=0).max() for p in sweeps])
    return {"transpose_range_median": float(np.median(tr)), "sweeps_transposing": float(np.mean(tr > 0)),
            "pitch_eg_range_median": float(np.median(eg))}


def sweep_spearman(pos: np.ndarray, score: np.ndarray) -> float:
    """Spearman correlation of a score with the knob position along one sweep; a sweep that is
    silent (NaN) at all but two steps or never changes the score counts 0."""
    from scipy.stats import spearmanr

    ok = np.isfinite(score)
    if ok.sum() < 3 or np.ptp(score[ok]) == 0:
        return 0.0
    return float(spearmanr(pos[ok], score[ok]).statistic)


def sweep_scores(pool: Pool, sweeps: list[np.ndarray]) -> tuple[list[np.ndarray], list[float]]:
    """Sweeps of DX7 values (each (steps, 145)) -> each sweep's (steps, T) tag scores and its
    largest step-to-step log-mel change (dB, middle note). The scores are computed over all
    the sweeps' steps at once, as the data set computes them over its voices (some are
    percentile ranks)."""
    from host_training.dataset import tags as tag_defs

    fn = descriptor_fn(pool.settings)

    def sweep(r: VoiceRenderer, params: np.ndarray):
        descs, mels = [], []
        for p in params:
            v = Voice.from_parameters(p, "KNOB")
            audios = r.all_notes(v)
            descs.append(fn(v, audios))
            mels.append(features_of(audios[len(audios) // 2], r.s.rate)[0])
        jumps = [float(np.mean(np.abs(a - b))) for a, b in zip(mels[:-1], mels[1:])]
        return np.array(descs), max(jumps) if jumps else 0.0

    res = pool.map(sweep, sweeps)
    with np.errstate(all="ignore"):
        all_scores = tag_defs.scores(np.concatenate([d for d, _ in res]))  # (sweeps * steps, T)
    bounds = np.cumsum([0] + [len(p) for p in sweeps])
    return [all_scores[a:b] for a, b in zip(bounds[:-1], bounds[1:])], [j for _, j in res]


def knob_correlations(pos: np.ndarray, scores: list[np.ndarray], own: int) -> tuple[list[float], list[float]]:
    """Per-sweep Spearman of score ``own`` with the knob position, and of every other score."""
    mine, others = [], []
    for s in scores:
        for t in range(s.shape[1]):
            (mine if t == own else others).append(sweep_spearman(pos, s[:, t]))
    return mine, others


def knob_sweeps(pool: Pool, model: FlowVAE, info: dict[str, Any], z0: np.ndarray, steps: int) -> dict[str, Any]:
    sems = info["semantic_dims"]
    result: dict[str, Any] = {"dims": []}
    for sd in sems:
        d = sd["index"]
        pos = np.linspace(sd["low"], sd["high"], steps)
        jobs = []
        for z in z0:
            zz = np.repeat(z[None], steps, 0)
            zz[:, d] = pos
            with torch.no_grad():
                params = layout.decode(model.to_vector(torch.from_numpy(zz.astype(np.float32))).numpy())
            jobs.append(params)
        scores, jumps = sweep_scores(pool, jobs)
        own, others = knob_correlations(pos, scores, d)
        result["dims"].append({"index": d, "name": sd["name"], "spearman_own_median": float(np.median(own)),
                               "abs_corr_others_median": float(np.median(np.abs(others))) if others else None,
                               "max_step_change_db_median": float(np.median(jumps)), **pitch_drift(jobs)})
    if result["dims"]:
        result["spearman_own_median"] = float(np.median([x["spearman_own_median"] for x in result["dims"]]))
        result["abs_corr_others_median"] = float(np.median([x["abs_corr_others_median"] or 0 for x in result["dims"]]))
    return result


def generation_stats(pool: Pool, model: FlowVAE, n: int, keys: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """Raw prior samples (no re-drawing): validity, uniqueness, silence, training copies."""
    from dx7.sysex import SingleVoice, parse_message
    from host_training.jobs.export import is_training_copy

    rng = np.random.default_rng(seed)
    with torch.no_grad():
        vec = model.to_vector(torch.from_numpy(rng.normal(size=(n, LATENT)).astype(np.float32))).numpy()
    params = layout.decode(vec)
    valid = 0
    voices = []
    for i, p in enumerate(params):
        try:
            v = Voice.from_parameters(p, f"GEN{i}")
            # valid = survives a strict sysex round trip (every field in the DX7's range)
            back = parse_message(SingleVoice(v.to_unpacked()).encode()).voice(strict=True)
            if back.values == v.values:
                valid += 1
            voices.append(v)
        except Exception:  # noqa: BLE001 - counting invalid voices is the point
            pass
    mid = len(pool.settings.notes) // 2
    levels = pool.map(lambda r, v: level_db(r.audio(v, mid)), voices)
    unique = len({v.content_key() for v in voices})
    return {"n": n, "valid": valid / n, "unique": unique / n, "silent": float(np.mean(np.array(levels) < SILENCE_DB)),
            "training_copies": int(is_training_copy(params, keys).sum())}, params


def interpolation(pool: Pool, model: FlowVAE, za: np.ndarray, zb: np.ndarray, pa: np.ndarray, pb: np.ndarray,
                  steps: int) -> dict[str, Any]:
    """Step-to-step log-mel change along latent vs parameter-space interpolations; smoothness
    = largest step / mean step (1.0 = perfectly even)."""
    t = np.linspace(0, 1, steps)[:, None]
    jobs = []
    for a, b, qa, qb in zip(za, zb, pa, pb):
        with torch.no_grad():
            lat = layout.decode(model.to_vector(torch.from_numpy(((1 - t) * a + t * b).astype(np.float32))).numpy())
        par = layout.decode((1 - t) * layout.encode(qa) + t * layout.encode(qb))
        jobs += [lat, par]

    def path(r: VoiceRenderer, params: np.ndarray):
        mid = len(r.s.notes) // 2
        mels = [features_of(r.audio(Voice.from_parameters(p, "INTERP"), mid), r.s.rate)[0] for p in params]
        steps_db = np.array([np.mean(np.abs(x - y)) for x, y in zip(mels[:-1], mels[1:])])
        return float(steps_db.max() / max(steps_db.mean(), 1e-9)), float(steps_db.mean())

    res = pool.map(path, jobs)
    lat, par = res[0::2], res[1::2]
    return {"latent": {"smoothness_median": float(np.median([r[0] for r in lat])),
                       "mean_step_db_median": float(np.median([r[1] for r in lat]))},
            "parameter_space": {"smoothness_median": float(np.median([r[0] for r in par])),
                                "mean_step_db_median": float(np.median([r[1] for r in par]))}}


# -- the whole report ----------------------------------------------------------------------------
def evaluate_run(run_dir: str | Path, data_dir: str | Path, out_dir: str | Path, progress: bool = True) -> dict[str, Any]:
    from host_training.model.baselines import Retrieval, median_voice
    from host_training.dataset import open_dataset
    from host_training.jobs.export import load_vae, main_kind, read_info, read_run
    from host_training.jobs.match import Matcher, Rows
    from host_training.jobs.register import read_registers
    from host_training.audio.synth_voices import generate as synth_generate
    from host_training.jobs.runs import manifest_sha256
    from host_training.model.checkpoint import load_model

    run, out = Path(run_dir), Path(out_dir)
    rinfo = read_run(run)
    main = main_kind(run)  # knobs, generation and match are the VAE's: a run of baselines alone is refused here
    info = read_info(run)
    ecfg = rinfo["config"].get("evaluate", {})
    ds = open_dataset(data_dir)
    if manifest_sha256(data_dir) != rinfo["dataset_manifest_sha256"]:
        raise DxmacroError(f"{data_dir}: not the data set run {run} was trained on (manifest sha256 differs)")
    settings = RenderSettings.from_manifest(ds.settings)
    pool = Pool(settings, int(ecfg.get("threads", 2)))
    log = print if progress else (lambda *a, **k: None)
    test = ds.indices("test")[: int(ecfg.get("max_test", 200))]
    if len(test) == 0:
        raise DxmacroError(f"{data_dir}: the test split is empty")
    train = ds.indices("train")[: rinfo["config"]["train"].get("max_train") or None]
    # "novel": farther from every training voice than the data set's own near-copy threshold
    near = float(ds.settings.get("group_db") or ecfg.get("near_copy_db", 2.0))
    novel = np.nan_to_num(np.asarray(ds.nearest_train_db)[test], nan=np.inf) > near

    # Out-of-domain voices: the synthetic generator, rendered like the data set; and sounds
    # of other kinds of synthesis, which no DX7 voice made (host_training.audio.foreign_sounds).
    ood_voices = synth_generate(int(ecfg.get("n_ood", 60)), int(ecfg.get("ood_seed", 12345)))
    foreign = foreign_sounds(int(ecfg.get("n_foreign", 40)), int(ecfg.get("ood_seed", 12345)))
    log(f"rendering {len(test)} test and {len(ood_voices)} out-of-domain references, playing {len(foreign)} "
        "foreign sounds")
    x, true, refs = references(pool, ds, test, ood_voices, foreign)
    sizes = (len(test), len(ood_voices), len(foreign))

    def only(part: int, within: np.ndarray | None = None) -> np.ndarray:
        mask = np.concatenate([np.full(n, i == part) for i, n in enumerate(sizes)])
        if within is not None:
            mask[:len(within)] &= within
        return mask

    strata = {"all": only(0), "novel": only(0, novel), "ood": only(1), "foreign": only(2)}

    preds: dict[str, np.ndarray] = {}
    for kind in rinfo["models"]:
        _, model, _ = load_model(run / "models" / kind / "model.pt")
        preds[kind] = layout.decode(predict_vectors(model, kind, x))
    register = bool(ecfg.get("register", True))
    if register:
        # every model again with its register read from the input at the known notes
        # (host_training.jobs.register): the VAE latent cannot hold it, and the direct models get
        # the same step so that the comparison stays like for like
        log("reading each model's register (transpose) from the input")
        for kind in list(preds):
            preds[f"{kind}+register"] = read_registers(pool, preds[kind], x)
    train_feats = Rows(ds.features, train)  # read when used: the float32 copy was 4 GB on the whole corpus
    retrieval = Retrieval.of_dataset(ds, train)
    preds["nn"] = np.asarray(ds.params[train])[retrieval.query(x)]
    preds["median_voice"] = np.repeat(median_voice(np.asarray(ds.params[train]))[None], len(x), 0)
    # One note only (the middle one), as `dxmacro match` sees a recording.
    vae = load_vae(run, main)
    mid = len(settings.notes) // 2
    xs = x[:, mid]
    idx, _, _ = retrieval.query_single(xs)
    preds["nn_1note"] = np.asarray(ds.params[train])[idx]
    matcher = Matcher(vae, settings, retrieval, np.asarray(ds.params[train]), train_feats,
                      int(ecfg.get("match_candidates", 12)), polish_renders=int(ecfg.get("match_polish_renders", 64)),
                      register=register)
    preds[f"{main}_1note"] = np.stack([m.parameters for m in pool.map(lambda r, f: matcher.model_only(f), list(xs))])
    log("matching (retrieve, then refine in the latent space)")
    preds["match_1note"] = np.stack([matcher.match(f, note_slot=None).voice.parameters for f in xs])
    # and at every note, as `dxmacro match` sees several recordings of one sound: against nn
    log("matching at every note")
    slots = list(range(len(settings.notes)))
    preds["match"] = np.stack(pool.map(lambda r, i: matcher.on(r, i).match_notes(list(x[i]), slots).voice.parameters,
                                       list(range(len(x)))))

    results: dict[str, Any] = {}
    for name, p in preds.items():
        log(f"scoring {name}")
        rows = score_voices(pool, p, true, refs)
        results[name] = {s: summarize(rows, m) for s, m in strata.items()}

    report: dict[str, Any] = {"run": str(run), "data": str(Path(data_dir).resolve()), "main_model": main,
                              "near_copy_db": near, "strata_sizes": {s: int(m.sum()) for s, m in strata.items()},
                              "methods": results}
    # Pitch-independent timbre: between/within ratio of single-note latents (test voices).
    ratios = {}
    for kind in rinfo["models"]:
        if kind in VAE_KINDS:
            m = load_vae(run, kind)
            ratios[kind] = contrastive_ratio(single_note_latents(m, x[: len(test)][:100]))
    report["contrastive"] = ratios
    log("semantic knobs")
    z_test = vae.encode(torch.from_numpy(x[: len(test)])).numpy()
    kv = min(int(ecfg.get("knob_voices", 24)), len(test))
    report["knobs"] = knob_sweeps(pool, vae, info, z_test[:kv], int(ecfg.get("knob_steps", 9)))
    log("generation")
    keys_path = run / "export" / "train_keys.npy"
    keys = np.load(keys_path) if keys_path.exists() else np.zeros(0, np.uint64)
    gen, gen_params = generation_stats(pool, vae, int(ecfg.get("generate_n", 256)), keys)
    report["generation"] = gen
    log("interpolation")
    n_pairs = min(int(ecfg.get("interp_pairs", 12)), len(test) // 2)
    if n_pairs:
        report["interpolation"] = interpolation(pool, vae, z_test[:n_pairs], z_test[n_pairs : 2 * n_pairs],
                                                true[:n_pairs], true[n_pairs : 2 * n_pairs],
                                                int(ecfg.get("interp_steps", 9)))
    out.mkdir(parents=True, exist_ok=True)
    from host_training.jobs import plots

    plots.training_curves(run, out / "plots")
    plots.traversals(vae, info, z_test[0], settings, out / "plots")
    plots.latent_map(np.asarray(ds.params[train]), gen_params, out / "plots")
    write_json(out / "report.json", report)
    from dx7.files import atomic_write

    atomic_write(out / "report.md", markdown(report).encode())
    return report


def markdown(report: dict[str, Any]) -> str:
    lines = [f"# Evaluation of {report['run']}", "", f"Data: {report['data']}; main model: {report['main_model']}; "
             f"near-copy threshold {report['near_copy_db']} dB; strata sizes {report['strata_sizes']}.", ""]
    labels = {"logmel_mae_db": "log-mel MAE dB", "spectral_convergence": "spectral conv.", "mfcc13_mae": "MFCC-13 MAE",
              "mfcc40_mae": "MFCC-40 MAE", "param_mae": "param MAE", "categorical_acc": "cat. acc.",
              "transpose_error": "transpose error, semitones"}
    for stratum in STRATA:
        lines += [f"## Stratum: {stratum} (median; mean in brackets)", "",
                  "| method | n | " + " | ".join(labels[k] for k in AUDIO_METRICS + PARAM_METRICS) + " |",
                  "|---|---|" + "---|" * len(labels)]
        for name, res in report["methods"].items():
            s = res[stratum]
            if not s.get("n"):
                continue
            cells = [f"{s[k]['median']:.3f} ({s[k]['mean']:.3f})" if s[k] else "-"
                     for k in AUDIO_METRICS + PARAM_METRICS]
            lines.append(f"| {name} | {s['n']} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Pitch-independent timbre (between / within-voice distance of single-note latents)", "",
              "| model | within | between | ratio |", "|---|---|---|---|"]
    for k, r in report.get("contrastive", {}).items():
        lines.append(f"| {k} | {r['within']:.3f} | {r['between']:.3f} | {r['ratio']:.2f} |")
    knobs = report.get("knobs", {})
    lines += ["", "## Semantic knobs", ""]
    lines += ["| dim | name | Spearman own (median) | abs corr others (median) | largest step dB (median) | "
              "transpose range, semitones (median) | sweeps that transpose | pitch EG range (median) |",
              "|---|---|---|---|---|---|---|---|"]
    for d in knobs.get("dims", []):
        lines.append(f"| {d['index']} | {d['name']} | {d['spearman_own_median']:.2f} | "
                     f"{d['abs_corr_others_median'] or 0:.2f} | {d['max_step_change_db_median']:.2f} | "
                     f"{d['transpose_range_median']:.0f} | {d['sweeps_transposing']:.0%} | "
                     f"{d['pitch_eg_range_median']:.0f} |")
    g = report.get("generation", {})
    lines += ["", "## Generation (raw prior samples, no re-drawing)", "",
              f"n {g.get('n')}, valid {g.get('valid', 0):.1%}, unique {g.get('unique', 0):.1%}, "
              f"silent {g.get('silent', 0):.1%}, exact training copies {g.get('training_copies')}"]
    it = report.get("interpolation")
    if it:
        lines += ["", "## Interpolation (largest step / mean step, 1.0 = even; median over pairs)", "",
                  f"latent: {it['latent']['smoothness_median']:.2f} (mean step {it['latent']['mean_step_db_median']:.2f} dB); "
                  f"parameter space: {it['parameter_space']['smoothness_median']:.2f} "
                  f"(mean step {it['parameter_space']['mean_step_db_median']:.2f} dB)"]
    lines += ["", "Plots: plots/training_curves.png, plots/traversal_*.png, plots/latent_map.png", ""]
    return "\n".join(lines)
