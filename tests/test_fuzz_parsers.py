"""Property-based fuzzing: whatever the bytes, only DX7Error escapes our parsers."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dx7 import DX7Error, Voice, layout, parse_message, parse_stream
from dx7.files import encode_banks, parse_voice_bytes, voices_from_json
from dx7.packing import unpack
from dx7.sysex import SingleVoice

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_BANK = encode_banks([Voice.init()] * 32)
_SINGLE = SingleVoice.of(Voice.init()).encode()


def _only_dx7_errors(fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except DX7Error:
        pass


@st.composite
def mutated(draw, base: bytes):
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[pos : pos + draw(st.integers(1, 200))]
        else:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=20))
    return bytes(data)


@FUZZ
@given(st.one_of(st.binary(max_size=5000), mutated(_BANK), mutated(_SINGLE), mutated(_SINGLE + _BANK)))
def test_voice_file_parser(data):
    _only_dx7_errors(parse_voice_bytes, data, "fuzz.syx")
    _only_dx7_errors(parse_voice_bytes, data, "fuzz.syx", strict=True)


@FUZZ
@given(st.one_of(st.binary(max_size=300), mutated(bytes.fromhex("F04310011B3FF7")), mutated(_SINGLE)))
def test_message_parser(data):
    _only_dx7_errors(parse_stream, data)
    _only_dx7_errors(parse_message, data)


@FUZZ
@given(st.binary(min_size=128, max_size=128))
def test_any_packed_voice_loads_in_range(data):
    voice = Voice.from_packed(data)  # never raises: every field is brought into range
    assert Voice(voice.values) == voice
    assert len(unpack(data)) == 155


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-300, 300) | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=16), kids, max_size=4),
    max_leaves=30,
)


@FUZZ
@given(st.one_of(st.text(max_size=200), json_values.map(json.dumps),
                 st.fixed_dictionaries({"format": st.just("dxmacro-voices"), "voices": st.lists(json_values, max_size=3)}).map(json.dumps),
                 st.dictionaries(st.sampled_from([p for p, _ in Voice.init().items()][:145]), st.integers(-5, 300)).map(
                     lambda d: json.dumps({"format": "dxmacro-voices", "voices": [{"name": "x", "parameters": d}]}))))
def test_json_parser(text):
    _only_dx7_errors(voices_from_json, text, "fuzz.json")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=layout.VECTOR_SIZE,
                max_size=layout.VECTOR_SIZE))
def test_any_model_output_decodes_to_a_valid_voice(vec):
    params = layout.decode(vec)
    Voice.from_parameters(params)  # raises if anything were out of range


@FUZZ
@given(st.one_of(st.text(max_size=300), json_values.map(json.dumps),
                 st.integers(1, 200).map(lambda d: "[" * d + "]" * d),
                 st.sampled_from(["NaN", "[Infinity]", "-Infinity", "1e400", '{"a": -1e999}'])))
def test_json_reader_refuses_with_one_error(text):
    """dx7.reading.loads_json: whatever the text, a finite, shallow value or one DX7Error."""
    from dx7.reading import MAX_JSON_DEPTH, json_depth, loads_json

    try:
        value = loads_json(text, "fuzz.json")
    except DX7Error:
        return
    assert json_depth(json.dumps(value, allow_nan=False)) <= MAX_JSON_DEPTH  # allow_nan=False: raises on NaN/inf


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["[device]\nrate_hz", "[midi]\nbudget_fraction", "[smoothing]\nmin_cutoff_hz",
                        "[smoothing]\nbeta", "[adc]\npot_supply_v", "[simulate]\nfail_rate", "[simulate]\nnoise_lsb"]),
       st.floats(allow_nan=True, allow_infinity=True))
def test_device_config_numbers_are_finite_and_in_range_or_refused(key, value):
    import math
    import tempfile
    from pathlib import Path

    from device.control.config import load_config
    from dxmacro.errors import DxmacroError

    literal = "nan" if math.isnan(value) else ("inf" if value == math.inf else "-inf" if value == -math.inf
                                                 else repr(value))
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "device.toml"
        path.write_text(f"{key} = {literal}\n")
        try:
            cfg = load_config(path)
        except DxmacroError as exc:
            assert key.split("\n")[1] in str(exc) and "\n" not in str(exc)
            return
    assert all(math.isfinite(v) for v in (cfg.rate_hz, cfg.adc_vref, cfg.sim_fail_rate, cfg.sim_noise_lsb,
                                          cfg.smoothing.min_cutoff_hz, cfg.smoothing.beta))
    assert cfg.budget_fraction is None or math.isfinite(cfg.budget_fraction)
