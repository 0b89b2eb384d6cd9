from dx7 import PARAMS, Kind, param
from dx7.params import LEARNABLE_COUNT, NAME_OFFSET


def test_table_follows_the_vced_layout():
    assert len(PARAMS) == 155 and LEARNABLE_COUNT == 145 and NAME_OFFSET == 145
    assert [p.index for p in PARAMS] == list(range(155))
    # OP6 comes first: its first field is byte 0, OP1's output level is byte 5*21+16.
    assert PARAMS[0].name == "op6_eg_rate1"
    assert param("op1_output_level").index == 121
    assert param("algorithm").index == 134 and param("algorithm").high == 31
    assert param("transpose").index == 144 and param("transpose").high == 48
    assert param("op3_detune").high == 14
    assert param("lfo_wave").choices[-1] == "sample&hold"


def test_kinds():
    kinds = {k: sum(1 for p in PARAMS if p.kind is k) for k in Kind}
    # 6 x (2 curves + osc mode) + algorithm + 2 syncs + LFO wave are categorical
    assert kinds[Kind.CATEGORICAL] == 6 * 3 + 4
    assert kinds[Kind.NAME] == 10
    assert all(p.high == 99 for p in PARAMS if p.kind is Kind.CONTINUOUS)
