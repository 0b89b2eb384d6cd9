"""The codec against the real corpus and against an independent parser (dexed-py's)."""

import warnings

import pytest

from dx7 import read_voice_file
from dx7.packing import pack, unpack


def test_every_corpus_voice_round_trips_and_matches_dexed(corpus_files):
    dexed = pytest.importorskip("dexed", reason="dexed-py (the independent parser) is not installed")
    voices = clean = fixed = 0
    for path in corpus_files:
        raw = path.read_bytes()
        vf = read_voice_file(path)
        assert len(vf.voices) == 32, path
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # dexed-py warns on a bad checksum: there must be none
            theirs = dexed.Patch.load_bank(str(path))
        payload = raw[6:4102]
        for lv, patch in zip(vf.voices, theirs):
            voices += 1
            packed = payload[lv.slot * 128 : (lv.slot + 1) * 128]
            assert lv.voice.values == tuple(patch.to_raw().tolist()), f"{path} voice {lv.slot + 1}"
            if lv.dirty:
                fixed += bool(lv.voice.fixes)
            else:
                clean += 1
                assert pack(unpack(packed)) == packed and lv.voice.to_packed() == packed
    assert voices == 32 * len(corpus_files)
    if len(corpus_files) == 919:  # the full shared corpus: figures from its README
        assert voices == 29408 and fixed == 3168
    assert clean > 0.8 * voices
