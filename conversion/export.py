"""torch decoder -> TFLite (fp32 and full-integer int8), host side only.

Path chosen (see docs/conversion.md): ``torch.export`` captures the decoder as an ATen graph,
each node is rebuilt with the equivalent TensorFlow op around the module's own weights (copied
as constants), and TensorFlow's TFLiteConverter quantizes it with a representative data set.
This works on any module made of the ops in ``_OPS`` (Linear, activations, the elementwise
arithmetic, slicing, concatenation and index permutations of coupling flows) and needs only
tensorflow-cpu, which installs beside torch 2.13 without touching it; the torch -> TFLite
converters (ai-edge-torch / litert-torch) pin their own torch and tensorflow builds.
Unsupported ops fail with a DxmacroError naming them, never with a silently wrong model.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from dxmacro.errors import DxmacroError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TF's start-up chatter off the CLI


@dataclass(frozen=True)
class Calibration:
    """The representative set the int8 scales are fitted on, and where each part came from."""

    latents: np.ndarray  # (n, latent) float32
    parts: dict[str, int]  # source -> count, for the manifest/report


def calibration_set(latent_size: int, *, anchors: np.ndarray | None = None, knob_dims: Iterable[int] = (),
                    knob_ranges: Iterable[tuple[float, float]] = (), prior: int = 512, sweep_steps: int = 9,
                    sweep_anchors: int = 32, seed: int = 0) -> Calibration:
    """Latents from where the knobs will really go: the encoded voices (anchors), sweeps of each
    knob dimension across its useful range starting from anchors, and samples of the N(0, I)
    prior. Int8 scales fitted on this cover what a performer reaches, not an arbitrary box."""
    rng = np.random.default_rng(seed)
    parts: dict[str, np.ndarray] = {}
    a = np.zeros((0, latent_size), np.float32) if anchors is None else np.asarray(anchors, np.float32)
    if a.ndim != 2 or a.shape[1] != latent_size:
        raise DxmacroError(f"anchor latents must be (n, {latent_size}), got {a.shape}")
    if len(a):
        parts["anchors"] = a
    dims, ranges = list(knob_dims), list(knob_ranges)
    if dims:
        base = a[rng.choice(len(a), min(sweep_anchors, len(a)), replace=False)] if len(a) else \
            rng.standard_normal((sweep_anchors, latent_size)).astype(np.float32)
        sweeps = []
        for d, (lo, hi) in zip(dims, ranges):
            for v in np.linspace(lo, hi, sweep_steps, dtype=np.float32):
                s = base.copy()
                s[:, d] = v
                sweeps.append(s)
        parts["knob_sweeps"] = np.concatenate(sweeps)
    if prior:
        parts["prior"] = rng.standard_normal((prior, latent_size)).astype(np.float32)
    if not parts:
        raise DxmacroError("empty calibration set: no anchors, knob sweeps or prior samples")
    return Calibration(np.concatenate(list(parts.values())).astype(np.float32),
                       {k: len(v) for k, v in parts.items()})


# ---- torch graph -> TensorFlow ------------------------------------------------------------------

def _tf():
    import tensorflow as tf

    return tf


def _axis(dim: int, rank: int) -> int:
    return dim + rank if dim < 0 else dim


def _slice(x, dim=0, start=None, end=None, step=1):
    tf = _tf()
    rank = len(x.shape)
    d = _axis(dim, rank)
    size = x.shape[d]
    start = 0 if start is None else start
    end = size if end is None or end > size else end
    begin = [0] * rank
    ends = list(x.shape)
    strides = [1] * rank
    begin[d], ends[d], strides[d] = start, end, step
    return tf.strided_slice(x, begin, ends, strides)


def _split(x, sizes, dim=0):
    tf = _tf()
    return tf.split(x, sizes, axis=_axis(dim, len(x.shape)))


def _chunk(x, chunks, dim=0):
    d = _axis(dim, len(x.shape))
    size = x.shape[d]
    each = -(-size // chunks)
    sizes = [each] * (size // each) + ([size % each] if size % each else [])
    return _split(x, sizes, d)


def _split_tensor(x, split_size, dim=0):
    d = _axis(dim, len(x.shape))
    size = x.shape[d]
    sizes = [split_size] * (size // split_size) + ([size % split_size] if size % split_size else [])
    return _split(x, sizes, d)


def _index(x, indices):
    """aten.index.Tensor with one index tensor on one axis (a permutation or selection)."""
    tf = _tf()
    used = [(i, idx) for i, idx in enumerate(indices) if idx is not None]
    if len(used) != 1:
        raise DxmacroError("unsupported op: advanced indexing on more than one axis")
    axis, idx = used[0]
    return tf.gather(x, idx, axis=axis)


def _permute(x, dims):
    return _tf().transpose(x, dims)


def _reshape(x, shape):
    return _tf().reshape(x, [int(s) for s in shape])


def _linear(x, w, b=None):
    tf = _tf()
    y = tf.matmul(x, w, transpose_b=True)
    return y if b is None else y + b


def _leaky(x, slope=0.01):
    return _tf().nn.leaky_relu(x, alpha=slope)


def _gelu(x, approximate="none"):
    return _tf().nn.gelu(x, approximate=approximate == "tanh")


def _clamp(x, lo=None, hi=None):
    tf = _tf()
    if lo is not None:
        x = tf.maximum(x, lo)
    if hi is not None:
        x = tf.minimum(x, hi)
    return x


def _batch_norm_eval(x, w, b, mean, var, momentum, eps):
    tf = _tf()
    scale = tf.math.rsqrt(var + eps) * (1.0 if w is None else w)
    return (x * scale + ((0.0 if b is None else b) - mean * scale), None, None)


def _identity(x, *args, **kwargs):
    return x


def _ops() -> dict[str, Callable[..., Any]]:
    tf = _tf()
    return {
        "aten.linear.default": _linear,
        "aten.addmm.default": lambda b, x, w, beta=1, alpha=1: b * beta + tf.matmul(x, w) * alpha,
        "aten.mm.default": tf.matmul,
        "aten.matmul.default": tf.matmul,
        "aten.t.default": tf.transpose,
        "aten.permute.default": _permute,
        "aten.relu.default": tf.nn.relu,
        "aten.leaky_relu.default": _leaky,
        "aten.gelu.default": _gelu,
        "aten.silu.default": tf.nn.silu,
        "aten.elu.default": lambda x, alpha=1.0, *a: tf.nn.elu(x) if alpha == 1.0 else tf.where(x > 0, x, alpha * (tf.exp(x) - 1)),
        "aten.tanh.default": tf.tanh,
        "aten.sigmoid.default": tf.sigmoid,
        "aten.softplus.default": lambda x, beta=1, threshold=20: tf.nn.softplus(x * beta) / beta,
        "aten.exp.default": tf.exp,
        "aten.mul.Tensor": operator.mul,
        "aten.mul.Scalar": operator.mul,
        "aten.add.Tensor": lambda a, b, alpha=1: a + b * alpha if alpha != 1 else a + b,
        "aten.sub.Tensor": lambda a, b, alpha=1: a - b * alpha if alpha != 1 else a - b,
        "aten.rsub.Scalar": lambda a, b, alpha=1: b - a * alpha,
        "aten.div.Tensor": operator.truediv,
        "aten.neg.default": operator.neg,
        "aten.cat.default": lambda xs, dim=0: tf.concat(list(xs), axis=dim),
        "aten.slice.Tensor": _slice,
        "aten.chunk.default": _chunk,
        "aten.split.Tensor": _split_tensor,
        "aten.split_with_sizes.default": _split,
        "aten.index.Tensor": _index,
        "aten.index_select.default": lambda x, dim, idx: tf.gather(x, idx, axis=dim),
        "aten.view.default": _reshape,
        "aten.reshape.default": _reshape,
        "aten.flatten.using_ints": lambda x, start=0, end=-1: tf.reshape(x, [x.shape[0], -1]) if start == 1 else tf.reshape(x, [-1]),
        "aten.unsqueeze.default": tf.expand_dims,
        "aten.squeeze.dim": tf.squeeze,
        "aten.clamp.default": _clamp,
        "aten.hardtanh.default": lambda x, lo=-1.0, hi=1.0: _clamp(x, lo, hi),
        "aten.softmax.int": lambda x, dim, half=False: tf.nn.softmax(x, axis=dim),
        "aten._softmax.default": lambda x, dim, half=False: tf.nn.softmax(x, axis=dim),
        "aten._native_batch_norm_legit_no_training.default": _batch_norm_eval,
        "aten.clone.default": _identity,
        "aten.contiguous.default": _identity,
        "aten.alias.default": _identity,
        "aten.dropout.default": _identity,
        "aten.detach.default": _identity,
        "aten._assert_tensor_metadata.default": None,  # a shape check with no value: skipped
        "operator.getitem": operator.getitem,
    }


def trace(module, latent_size: int):
    """The module's inference graph, captured by ``torch.export`` (eval mode, batch 1)."""
    import torch

    module = module.eval()
    try:
        with torch.no_grad():
            return torch.export.export(module, (torch.zeros(1, latent_size),))
    except Exception as exc:  # torch raises many types here; report one line
        raise DxmacroError(f"cannot capture the decoder with torch.export: {type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''}") from None


def unsupported_ops(exported) -> list[str]:
    ops = _ops()
    return sorted({str(n.target) for n in exported.graph.nodes
                   if n.op == "call_function" and _name(n.target) not in ops})


def _name(target) -> str:
    return "operator.getitem" if target is operator.getitem else str(target)


def tf_function(exported, grid=None):
    """A TensorFlow function computing the exported graph with its weights as constants, then the
    decode head (on the DX7 grid when ``grid`` is given: conversion/output_grid.py)."""
    import torch

    tf = _tf()
    ops = _ops()
    missing = unsupported_ops(exported)
    if missing:
        raise DxmacroError(f"decoder uses ops the converter does not support: {', '.join(missing)}")
    state = {**exported.state_dict, **exported.constants}
    sig = exported.graph_signature
    const_of: dict[str, Any] = {}
    for spec in sig.input_specs:
        if spec.target is not None:
            const_of[spec.arg.name] = state[spec.target].detach().cpu().numpy()
    user_inputs = [s.arg.name for s in sig.input_specs if s.target is None]
    if len(user_inputs) != 1:
        raise DxmacroError(f"decoder must take one latent tensor, takes {len(user_inputs)} inputs")
    nodes = list(exported.graph.nodes)
    latent_size = int(next(n for n in nodes if n.name == user_inputs[0]).meta["val"].shape[-1])

    def convert_value(v):
        if isinstance(v, np.ndarray):
            return tf.constant(v.astype(np.int32) if v.dtype == np.int64 else v)
        if isinstance(v, torch.Tensor):
            return convert_value(v.detach().cpu().numpy())
        return v

    @tf.function(input_signature=[tf.TensorSpec([1, latent_size], tf.float32, name="latent")])
    def run(latent):
        env: dict[str, Any] = {}

        def arg(a):
            if isinstance(a, torch.fx.Node):
                return env[a.name]
            if isinstance(a, (list, tuple)):
                return type(a)(arg(x) for x in a)
            return a

        for n in nodes:
            if n.op == "placeholder":
                env[n.name] = latent if n.name == user_inputs[0] else convert_value(const_of[n.name])
            elif n.op == "call_function":
                fn = ops[_name(n.target)]
                if fn is None:
                    continue
                env[n.name] = fn(*arg(n.args), **{k: arg(v) for k, v in n.kwargs.items()})
            elif n.op == "output":
                outs = n.args[0]
                out = outs[0] if isinstance(outs, (list, tuple)) else outs
                return tf.identity(_decode_head(out, env, const_of, grid), name="vector")
        raise DxmacroError("exported graph has no output")

    return run, latent_size


# ---- the decode head ---------------------------------------------------------------------------
#
# Int8 tensors have one scale each. A decoder's raw output mixes scaled slots (a DX7 step is 1/99
# of [0, 1]) with categorical logits spanning several units; one int8 scale over both would cost
# the scaled slots several DX7 steps. So the exported graph ends with a head that changes no
# decoded value: the output is split into scaled slots and categorical slots *at the last affine
# op* (a Linear's rows, or a per-slot scale/shift), so each part gets its own int8 scale; scaled
# slots are clipped to [0, 1] (decode clips them anyway) and each one-hot group goes through a
# softmax (argmax unchanged). The model's output is then a [0, 1] vector in layout order that
# ``dx7.layout.decode`` reads directly, with an int8 step of 1/255 (0.39 of a 0..99 DX7 step); with
# an output grid (conversion/output_grid.py) each scaled slot's steps sit on those levels instead.

_ELEMENTWISE = {"aten.tanh.default", "aten.sigmoid.default", "aten.relu.default", "aten.leaky_relu.default",
                "aten.clone.default", "aten.alias.default", "aten.contiguous.default", "aten.dropout.default",
                "aten.detach.default", "aten.hardtanh.default", "aten.clamp.default", "aten.gelu.default",
                "aten.silu.default", "aten.elu.default", "aten.softplus.default"}


def _split_at_last_affine(node, idx: np.ndarray, env: dict, const_of: dict, gain=1.0, offset=0.0):
    """``gather(node's value, idx, axis=-1) * gain + offset`` (``gain`` and ``offset``: scalars or
    one value per index) computed by pushing the gather back through the final Linear / per-slot
    affine / elementwise ops, so the split parts are quantized separately; a final Linear takes the
    gain into its rows and the offset into its bias."""
    tf = _tf()
    gain = np.broadcast_to(np.asarray(gain, np.float32), idx.shape)
    offset = np.broadcast_to(np.asarray(offset, np.float32), idx.shape)
    name = _name(node.target) if node.op == "call_function" else ""
    if name == "aten.linear.default" and all(getattr(a, "name", None) in const_of for a in node.args[1:]):
        w = const_of[node.args[1].name][idx] * gain[:, None]
        y = tf.matmul(env[node.args[0].name], tf.constant(w), transpose_b=True)
        b = const_of[node.args[2].name][idx] * gain + offset if len(node.args) > 2 else offset
        return y + tf.constant(np.asarray(b, np.float32)) if len(node.args) > 2 or np.any(offset != 0) else y
    y = _split_unfolded(node, idx, env, const_of, gain)
    return y + tf.constant(offset) if np.any(offset != 0) else y


def _split_unfolded(node, idx: np.ndarray, env: dict, const_of: dict, gain: np.ndarray):
    """``_split_at_last_affine`` below a final Linear: per-slot affines and elementwise ops."""
    tf = _tf()
    ops = _ops()
    name = _name(node.target) if node.op == "call_function" else ""
    if name in ("aten.mul.Tensor", "aten.add.Tensor", "aten.sub.Tensor", "aten.div.Tensor") and not node.kwargs:
        a, b = node.args
        consts = [x for x in (a, b) if getattr(x, "name", None) in const_of
                  and np.ndim(const_of[x.name]) == 1 and const_of[x.name].shape[0] > int(idx.max())]
        if len(consts) == 1:
            c = const_of[consts[0].name][idx]
            other = b if consts[0] is a else a
            if name in ("aten.add.Tensor", "aten.sub.Tensor"):  # gain distributes over both terms
                g = _split_at_last_affine(other, idx, env, const_of, gain)
                c = c * gain
            elif name == "aten.mul.Tensor":  # gain folds into the constant
                g = _split_at_last_affine(other, idx, env, const_of)
                c = c * gain
            elif consts[0] is b:  # x / c
                g = _split_at_last_affine(other, idx, env, const_of)
                c = c / gain
            else:
                g = None
            if g is not None:
                c = tf.constant(c.astype(np.float32))
                return ops[name](c, g) if consts[0] is a else ops[name](g, c)
    if name in _ELEMENTWISE and np.all(gain == 1):
        g = _split_at_last_affine(node.args[0], idx, env, const_of)
        rest = [env[x.name] if hasattr(x, "name") else x for x in node.args[1:]]
        return ops[name](g, *rest, **node.kwargs)
    g = tf.gather(env[node.name], tf.constant(idx.astype(np.int32)), axis=-1)
    return g if np.all(gain == 1) else g * tf.constant(np.ascontiguousarray(gain))


def _decode_head(out_node, env: dict, const_of: dict, grid=None):
    """The head (above); ``grid`` (conversion.output_grid.OutputGrid) puts the scaled slots' int8
    levels on the DX7 steps."""
    from dx7 import layout

    tf = _tf()
    scaled = layout.scaled_slots()
    groups = layout.categorical_groups()
    cat = np.concatenate([np.arange(g.start, g.start + g.width) for g in groups])
    # clip to [0, 1] written as relu6(6 x) / 6: TFLite fuses RELU6 into the producing op, so the
    # scaled slots are quantized once, over exactly [0, 6] -> 1/255 of [0, 1] (a bare clip is not
    # fused and leaves the op's output quantized over its whole calibration range first)
    gain, shift = grid.head_gain_shift() if grid is not None else (1.0, 0.0)
    s = tf.nn.relu6(_split_at_last_affine(out_node, scaled, env, const_of, gain=6.0 * np.asarray(gain),
                                          offset=6.0 * np.asarray(shift))) * (1.0 / 6.0)
    logits = _split_at_last_affine(out_node, cat, env, const_of)
    probs, pos = [], 0
    for g in groups:
        probs.append(tf.nn.softmax(logits[:, pos : pos + g.width], axis=-1))
        pos += g.width
    joined = tf.concat([s] + probs, axis=-1)
    order = np.argsort(np.concatenate([scaled, cat])).astype(np.int32)  # back to layout order
    return tf.gather(joined, tf.constant(order), axis=-1)


def decode_head(vector: np.ndarray) -> np.ndarray:
    """The head in numpy, for references: clip scaled slots, softmax each group."""
    from dx7 import layout

    v = np.array(vector, dtype=np.float32, copy=True)
    sc = layout.scaled_slots()
    v[..., sc] = np.clip(v[..., sc], 0.0, 1.0)
    for g in layout.categorical_groups():
        x = v[..., g.start : g.start + g.width]
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        v[..., g.start : g.start + g.width] = e / e.sum(axis=-1, keepdims=True)
    return v


# full-integer quantizations ``convert`` offers: int8 everywhere, or TFLite's 16x8 mode (int8
# weights, int16 activations, input and output), which keeps near-tied categorical logits apart
# where int8 activations flip them (docs/conversion.md)
QUANTIZATIONS = ("int8", "int16x8")


def to_tflite(module, calibration: np.ndarray | None, latent_size: int, grid=None,
              quantization: str = "int8") -> bytes:
    """TFLite flatbuffer bytes: fp32 when ``calibration`` is None, else full-integer
    ``quantization`` (QUANTIZATIONS) with integer input and output, scales fitted on
    ``calibration`` (n, latent); ``grid``: the head's output grid (conversion/output_grid.py),
    None for the plain [0, 1] head."""
    conv = converter(module, calibration, latent_size, grid, quantization)
    try:
        return bytes(conv.convert())
    except Exception as exc:
        raise DxmacroError(f"TFLite conversion failed: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None


def converter(module, calibration: np.ndarray | None, latent_size: int, grid=None, quantization: str = "int8"):
    """The configured ``tf.lite.TFLiteConverter`` behind ``to_tflite`` (also what TFLite's
    QuantizationDebugger takes: scripts/int8_debug.py)."""
    tf = _tf()
    run, size = tf_function(trace(module, latent_size), grid)
    if size != latent_size:
        raise DxmacroError(f"decoder takes a latent of {size}, expected {latent_size}")
    conv = tf.lite.TFLiteConverter.from_concrete_functions([run.get_concrete_function()], run)
    if calibration is not None:
        cal = np.asarray(calibration, np.float32)

        def representative():
            for row in cal:
                yield [row[None, :]]

        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = representative
        if quantization not in QUANTIZATIONS:
            raise DxmacroError(f"unknown quantization {quantization!r} (one of {', '.join(QUANTIZATIONS)})")
        if quantization == "int16x8":
            conv.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
            conv.inference_input_type = conv.inference_output_type = tf.int16
        else:
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = conv.inference_output_type = tf.int8
    return conv


def torch_forward(module, latents: np.ndarray) -> np.ndarray:
    """The reference: the torch module in fp32, eval mode."""
    import torch

    with torch.no_grad():
        return module.eval()(torch.as_tensor(np.asarray(latents, np.float32))).numpy()


def reference(module, latents: np.ndarray) -> np.ndarray:
    """What the exported model computes, in torch fp32: the decoder then the decode head."""
    return decode_head(torch_forward(module, latents))
