"""Device side: run the bundled int8 decoder. Imports numpy, dx7 and a TFLite interpreter only.

The interpreter comes from ``ai_edge_litert`` (the maintained LiteRT wheel, aarch64 cp311 builds
exist) or, where that is absent, from ``tflite_runtime`` (numpy < 2 systems); see ``KERNELS``. Never torch or
tensorflow: a test imports this module in a fresh interpreter and checks sys.modules.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from conversion import knob_masks, output_grid
from dx7 import Voice, layout
from dx7.params import LEARNABLE_COUNT
from dxmacro.errors import DxmacroError

if TYPE_CHECKING:
    from conversion.bundle import Bundle

# Self-test tolerance, documented in docs/conversion.md: the device must reproduce the golden
# int8 output codes exactly or within this many quantization steps (LiteRT builds may differ in
# rounding of a few kernels across CPUs), and the decoded DX7 values within one DX7 step.
SELF_TEST_CODE_TOLERANCE = 2
SELF_TEST_VALUE_TOLERANCE = 1


# The two int8 kernel sets a device may run. ai-edge-litert applies its XNNPACK delegate to int8
# models by default; tflite-runtime 2.14 runs its built-in kernels. They round differently (17.7 %
# of the shipped model's output codes differ, by up to 8 steps), so a bundle carries golden
# vectors and a parity report for each, and the self-test checks the set the device runs.
# ai-edge-litert without the delegate gives exactly tflite-runtime's codes
# (scripts/tflite_runtime_check.sh); XNNPACK is 3-4x faster, hence the default where available.
KERNELS = ("xnnpack", "builtin")


def codes_per_int8_step(dtype) -> int:
    """Output codes to one int8-sized step: 256 for an int16 output (16x8 mode), else 1. The
    self-test's code tolerance counts int8-sized steps."""
    return 256 if np.dtype(dtype) == np.int16 else 1


@dataclass(frozen=True)
class KnobInfo:
    """What the bundle's manifest says about one semantic knob: which latent
    dimension it moves, its name (e.g. "brightness") and the useful latent range."""

    dim: int
    name: str
    low: float
    high: float


@dataclass(frozen=True)
class Anchor:
    """A known voice and its latent code: the performer's presets."""

    name: str
    voice: Voice
    latent: np.ndarray = field(compare=False)
    # per knob dim, the parameters that knob moves on this voice (a tuned bank's, format 2, or a bundle's tuned anchors); None: all
    knob_masks: dict[int, np.ndarray] | None = field(default=None, compare=False)


def _runtime():
    """(Interpreter class, OpResolverType, whether it is ai-edge-litert)."""
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        return Interpreter, OpResolverType, True
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter, OpResolverType
    except ImportError:
        raise DxmacroError("no TFLite runtime: install ai-edge-litert (or tflite-runtime where numpy < 2)") from None
    return Interpreter, OpResolverType, False


def available_kernels() -> tuple[str, ...]:
    return KERNELS if _runtime()[2] else ("builtin",)


def default_kernels() -> str:
    """The kernels this device runs: XNNPACK under ai-edge-litert, built-in under tflite-runtime."""
    return "xnnpack" if _runtime()[2] else "builtin"


class TFLiteModel:
    """One .tflite flatbuffer, loaded from bytes (never from a path taken from a bundle).

    ``input_affine`` (scale, shift), per latent dimension: the model's input is
    ``u = latent * scale + shift``, computed here in float before the int8 quantization. Why:
    an int8 input has one scale for every dimension, so without it a narrow latent dimension
    gets a few int8 levels (conversion/equalize.py, split_input).

    ``output_affine`` (scale, shift), per output slot: the layout vector is
    ``clip(output * scale + shift, 0, 1)`` of the dequantized output, for a model whose head puts
    its int8 levels on the DX7 steps (conversion/output_grid.py)."""

    def __init__(self, content: bytes, num_threads: int = 1, kernels: str | None = None,
                 input_affine: tuple[np.ndarray, np.ndarray] | None = None,
                 output_affine: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        interpreter, resolvers, litert = _runtime()
        self.kernels = kernels or default_kernels()
        if self.kernels not in KERNELS:
            raise DxmacroError(f"unknown TFLite kernels {self.kernels!r} (known: {', '.join(KERNELS)})")
        if self.kernels == "xnnpack" and not litert:
            raise DxmacroError("XNNPACK int8 kernels need ai-edge-litert; tflite-runtime runs the built-in ones")
        resolver = resolvers.AUTO if self.kernels == "xnnpack" else resolvers.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        try:
            self.interpreter = interpreter(model_content=bytes(content), num_threads=num_threads,
                                           experimental_op_resolver_type=resolver)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise DxmacroError(f"cannot load the TFLite model: {exc}") from None
        self._in = self.interpreter.get_input_details()[0]
        self._out = self.interpreter.get_output_details()[0]
        self.input_dtype = np.dtype(self._in["dtype"])
        self.output_dtype = np.dtype(self._out["dtype"])
        self.input_quant = tuple(self._in["quantization"])  # (scale, zero_point); (0.0, 0) when float
        self.output_quant = tuple(self._out["quantization"])
        self.input_size = int(self._in["shape"][-1])
        self.output_size = int(self._out["shape"][-1])
        self.input_affine = _checked_affine(input_affine, self.input_size, "input")
        self.output_affine = _checked_affine(output_affine, self.output_size, "output")

    @property
    def quantized(self) -> bool:
        """Full-integer: int8, or int16 activations with int8 weights (TFLite's 16x8 mode)."""
        return self.input_dtype in (np.int8, np.int16)

    def quantize(self, latents: np.ndarray) -> np.ndarray:
        x = np.asarray(latents, np.float32)
        if self.input_affine is not None:
            x = x * self.input_affine[0] + self.input_affine[1]
        if not self.quantized:
            return x
        scale, zero = self.input_quant
        q = np.rint(x / scale) + zero
        limits = np.iinfo(self.input_dtype)
        return np.clip(q, limits.min, limits.max).astype(self.input_dtype)

    def dequantize(self, codes: np.ndarray) -> np.ndarray:
        """Raw outputs (int8 codes, or floats of an fp32 model) -> layout vectors."""
        if not self.quantized:
            return output_grid.device_vector(np.asarray(codes, np.float32), self.output_affine)
        scale, zero = self.output_quant
        return output_grid.device_vector(((codes.astype(np.float32) - zero) * scale).astype(np.float32),
                                         self.output_affine)

    def invoke_raw(self, inp: np.ndarray) -> np.ndarray:
        """One latent, already in the input dtype -> the raw output row (codes for int8)."""
        self.interpreter.set_tensor(self._in["index"], inp.reshape(1, self.input_size))
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._out["index"])[0].copy()

    def raw(self, latents: np.ndarray) -> np.ndarray:
        """(n, latent) real latents -> (n, out) raw outputs, one invoke per row (batch 1 model)."""
        q = self.quantize(np.atleast_2d(latents))
        return np.stack([self.invoke_raw(row) for row in q])

    def __call__(self, latents: np.ndarray) -> np.ndarray:
        """(n, latent) -> (n, out) float32 layout vectors."""
        return self.dequantize(self.raw(latents))

    def invoke_time_us(self, repeats: int = 200) -> float:
        """Median wall time of one invoke, microseconds."""
        row = self.quantize(np.zeros((1, self.input_size), np.float32))[0]
        self.invoke_raw(row)
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            self.invoke_raw(row)
            times.append(time.perf_counter() - t)
        return float(np.median(times) * 1e6)


class TFLiteDecoder:
    """A bundle's decoder: latent -> 145 DX7 values, plus the on-device self-test. Satisfies
    device.control.ports.Decoder (latent_size, knobs, anchors, decode)."""

    def __init__(self, bundle: "Bundle", num_threads: int = 1) -> None:
        self.bundle = bundle
        self.num_threads = num_threads
        m = bundle.manifest
        self.input_affine = _manifest_affine(m, "input")
        self.output_affine = _manifest_affine(m, "output")
        self.model = TFLiteModel(bundle.tflite, num_threads, input_affine=self.input_affine,
                                 output_affine=self.output_affine)
        self.latent_size = int(m["latent_size"])
        if self.model.input_size != self.latent_size or self.model.output_size != layout.VECTOR_SIZE:
            raise DxmacroError(f"model shape {self.model.input_size}->{self.model.output_size} does not match the "
                               f"manifest ({self.latent_size}->{layout.VECTOR_SIZE})")
        q = m.get("quantization", {})
        if self.model.quantized:
            try:
                same = (np.isclose(self.model.input_quant[0], q["input"]["scale"])
                        and self.model.input_quant[1] == q["input"]["zero_point"]
                        and np.isclose(self.model.output_quant[0], q["output"]["scale"])
                        and self.model.output_quant[1] == q["output"]["zero_point"])
            except (KeyError, TypeError):
                same = False
            if not same:
                raise DxmacroError("the model's quantization parameters disagree with the manifest")
        self._knobs = m.get("knobs", [])
        self._anchors = bundle.anchors

    def use_kernels(self, kernels: str) -> None:
        """Run the bundle on another int8 kernel set (KERNELS) from now on."""
        self.model = TFLiteModel(self.bundle.tflite, self.num_threads, kernels=kernels, input_affine=self.input_affine,
                                 output_affine=self.output_affine)

    @property
    def knobs(self) -> tuple[KnobInfo, ...]:
        return tuple(KnobInfo(int(k["dim"]), str(k["name"]), float(k["low"]), float(k["high"])) for k in self._knobs)

    @property
    def anchors(self) -> tuple[Anchor, ...]:
        dims = {k.dim for k in self.knobs}
        return tuple(Anchor(str(a["name"]), Voice.from_unpacked(bytes.fromhex(a["voice"])),
                            np.asarray(a["latent"], np.float32),
                            knob_masks.from_json(a["knob_masks"], dims) if "knob_masks" in a else None)
                     for a in self._anchors)

    def vector(self, latent: np.ndarray) -> np.ndarray:
        return self.model(np.asarray(latent, np.float32).reshape(1, -1))[0]

    def decode(self, latent: np.ndarray) -> np.ndarray:
        """(latent_size,) -> (145,) uint8 DX7 values."""
        return layout.decode(self.vector(latent))

    def self_test(self) -> dict[str, int]:
        """Run the golden vectors stored at conversion time; raise DxmacroError when this device
        disagrees by more than the documented tolerance (SELF_TEST_* above)."""
        g = self.bundle.golden
        kernels = self.model.kernels
        if g["latents"].ndim != 2 or g["latents"].shape[1] != self.latent_size or not len(g["latents"]):
            raise DxmacroError("self-test: the golden latents do not fit the model")
        if kernels not in g["kernels"]:
            raise DxmacroError(f"self-test: the bundle has no golden vectors for this device's {kernels} TFLite "
                               f"kernels (it has: {', '.join(g['kernels']) or 'none'})")
        want = g["kernels"][kernels]
        codes = self.model.raw(g["latents"])
        if codes.shape != want["int8_codes"].shape or want["int8_values"].shape != (len(codes), LEARNABLE_COUNT):
            raise DxmacroError("self-test: the golden vectors do not fit the model's output")
        dev = int(np.max(np.abs(codes.astype(np.int32) - want["int8_codes"].astype(np.int32))))
        dev = -(-dev // codes_per_int8_step(self.model.output_dtype))
        values = layout.decode(self.model.dequantize(codes)).astype(np.int16)
        scaled = np.setdiff1d(np.arange(LEARNABLE_COUNT), [s.param for s in layout.categorical_groups()])
        value_dev = int(np.max(np.abs(values[:, scaled] - want["int8_values"][:, scaled].astype(np.int16))))
        if dev > SELF_TEST_CODE_TOLERANCE or value_dev > SELF_TEST_VALUE_TOLERANCE:
            raise DxmacroError(f"self-test failed ({kernels} kernels): outputs differ from the golden vectors by "
                               f"{dev} int8-sized steps and {value_dev} DX7 steps (tolerance {SELF_TEST_CODE_TOLERANCE} "
                               f"and {SELF_TEST_VALUE_TOLERANCE})")
        return {"vectors": int(len(codes)), "kernels": kernels, "max_code_diff": dev, "max_value_diff": value_dev}


def _checked_affine(affine, size: int, side: str) -> tuple[np.ndarray, np.ndarray] | None:
    if affine is None:
        return None
    scale, shift = (np.asarray(a, np.float32) for a in affine)
    if scale.shape != (size,) or shift.shape != (size,) or not (np.isfinite(scale).all() and np.isfinite(shift).all()):
        raise DxmacroError(f"the {side} affine must be two finite vectors of {size} values")
    return scale, shift


def _manifest_affine(manifest: dict, side: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The manifest's ``quantization.<side>.affine`` ({"scale": [...], "shift": [...]}), or None
    (bundles whose model takes the latent itself, or whose output is the layout vector itself)."""
    affine = manifest.get("quantization", {}).get(side, {}).get("affine")
    if affine is None:
        return None
    try:
        return np.asarray(affine["scale"], np.float32), np.asarray(affine["shift"], np.float32)
    except (KeyError, TypeError, ValueError):
        raise DxmacroError(f"the manifest's {side} affine is malformed (quantization.{side}.affine)") from None


def load_decoder(path, public_key=None) -> TFLiteDecoder:
    """The decoder in a bundle file (device.runtime's loader). The signature is checked when a
    public key is given; the model store already verified installed bundles, which it never
    modifies."""
    from conversion import bundle

    return TFLiteDecoder(bundle.read(path, public_key))
