"""The data set's pieces on known signals: descriptors measure what they claim, tags split
the distribution, categories read names, splits are stable and keep near-copies together."""

from __future__ import annotations

import numpy as np

from host_training.dataset import descriptors as d
from host_training.dataset import splits, tags
from host_training.dataset.analysis import power_spectrogram32
from host_training.audio.features import HOP, N_FFT, log_mel, mel_filterbank, power_spectrogram

RATE = 22050
I = {n: i for i, n in enumerate(d.NAMES)}


def _describe(audio, note=69, hold=1.0):
    power = power_spectrogram32(audio).astype(np.float64)
    mel_db = 10 * np.log10(np.maximum(mel_filterbank(RATE) @ power.T, 1e-8))
    return d.describe(audio, power, mel_db, RATE, N_FFT, note, 24, hold, -70.0)


def _tone(partials, seconds=1.5, attack=0.0, amp=0.3):
    t = np.arange(int(seconds * RATE)) / RATE
    x = sum(np.sin(2 * np.pi * f * t) / (k + 1) for k, f in enumerate(partials))
    env = np.minimum(1.0, t / attack) if attack else np.ones_like(t)
    return (amp * x * env / np.max(np.abs(x))).astype(np.float32)


def test_float32_stft_matches_the_reference_definition():
    audio = _tone([220, 440, 660])
    ref = power_spectrogram(audio, N_FFT, HOP)
    got = power_spectrogram32(audio)
    assert got.shape == ref.shape
    above = ref > ref.max() * 1e-8
    assert np.abs(10 * np.log10(got[above] / ref[above])).max() < 1e-3
    assert log_mel(audio, RATE).shape[1] == got.shape[0]


def test_descriptors_on_known_signals():
    harmonic = _describe(_tone([440, 880, 1320, 1760]))
    metallic = _describe(_tone([440, 440 * 1.41, 440 * 2.76, 440 * 3.93]))
    noise = np.random.default_rng(0).normal(0, 0.1, int(1.5 * RATE)).astype(np.float32)
    noisy = _describe(noise)
    slow = _describe(_tone([440], attack=0.8))
    assert harmonic[I["inharmonicity"]] < 0.03 < 0.1 < metallic[I["inharmonicity"]]
    assert noisy[I["flatness"]] > 0.3 > 0.01 > harmonic[I["flatness"]]
    assert 0.6 < slow[I["attack_s"]] < 0.8 and harmonic[I["attack_s"]] < 0.02
    assert abs(harmonic[I["loudness_db"]] - 20 * np.log10(np.sqrt(np.mean(_tone([440, 880, 1320, 1760])[:RATE] ** 2)))) < 0.1
    assert 440 < harmonic[I["centroid_hz"]] < 1000 < noisy[I["centroid_hz"]]
    # a tone held 1.0 s then cut: decays 20 dB right after the cut, never before
    held = _tone([440], seconds=1.5)
    held[RATE:] = 0
    assert 0.95 < _describe(held)[I["decay_s"]] < 1.05
    assert np.isnan(_describe(np.zeros(RATE, np.float32))).all()


def test_paired_tags_split_the_distribution():
    rng = np.random.default_rng(0)
    desc = rng.uniform(0.1, 1.0, (200, 2, len(d.NAMES))).astype(np.float32)
    desc[5, :, :] = np.nan  # a silent voice: untagged
    t, thresholds = tags.paired_tags(desc, 0.25)
    assert t.shape == (200, len(tags.PAIRS)) and (t[5] == 0).all()
    for j in range(t.shape[1]):
        assert 45 <= (t[:, j] == -1).sum() <= 55 and 45 <= (t[:, j] == 1).sum() <= 55
    j = [p[0] for p in tags.PAIRS].index("dark")
    bright = desc[:, :, I["centroid_hz"]].mean(1)
    assert bright[t[:, j] == 1].min() > bright[t[:, j] == -1].max()


def test_categories_from_names():
    names = ["E.PIANO 1", "BRASS   1", "TUB BELLS", "STRINGS 2", "SYN-LEAD", "BASSOON", "SLAP BASS", "XYZZY", "ORGAN 3"]
    c = tags.categories(names)
    got = {n: {tags.CATEGORY_NAMES[j] for j in np.flatnonzero(row)} for n, row in zip(names, c)}
    assert got["E.PIANO 1"] == {"piano"} and got["BRASS   1"] == {"brass"} and got["TUB BELLS"] == {"bell"}
    assert got["STRINGS 2"] == {"strings"} and "lead" in got["SYN-LEAD"] and got["BASSOON"] == {"wind"}
    assert got["SLAP BASS"] == {"bass"} and got["XYZZY"] == set() and got["ORGAN 3"] == {"organ"}


def test_groups_and_splits():
    rng = np.random.default_rng(1)
    centers = rng.normal(0, 20, (30, 64))
    emb = np.concatenate([centers, centers[:10] + rng.normal(0, 0.1, (10, 64))]).astype(np.float32)
    groups = splits.near_copy_groups(emb, 1.0)
    assert len(np.unique(groups)) == 30 and (groups[30:] == groups[:10]).all()
    assert groups[0] == 0 and list(np.unique(groups)) == list(range(30))  # numbered by first member
    params = rng.integers(0, 100, (40, 145), dtype=np.uint8)
    split = splits.assign_splits(params, groups)
    assert (split[30:] == split[:10]).all()
    alone = splits.assign_splits(params, np.arange(40, dtype=np.int32))
    hashes = splits.param_hashes(params)
    assert [splits.hash_split(h) for h in hashes] == alone.tolist()  # depends on the voice only
    near = splits.nearest_train(emb, split)
    test = split == 2
    assert np.isnan(near[~test]).all() and np.isfinite(near[test]).all()
    # brute force check of one nearest distance
    if test.any():
        i = np.flatnonzero(test)[0]
        tr = emb[split == 0]
        assert abs(near[i] - np.sqrt(((tr - emb[i]) ** 2).mean(1)).min()) < 1e-3
