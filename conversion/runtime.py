"""Device side: run the bundled int8 decoder. Imports numpy, dx7 and a TFLite interpreter only.

The interpreter comes from ``ai_edge_litert`` (the maintained LiteRT wheel, aarch64 cp311 builds
exist) or, where that is absent, from ``tflite_runtime`` (numpy < 2 systems). Never torch or
tensorflow: a test imports this module in a fresh interpreter and checks sys.modules.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from dx7 import layout
from dxmacro.errors import DxmacroError

if TYPE_CHECKING:
    from conversion.bundle import Bundle

# Self-test tolerance, documented in docs/conversion.md: the device must reproduce the golden
# int8 output codes exactly or within this many quantization steps (LiteRT builds may differ in
# rounding of a few kernels across CPUs), and the decoded DX7 values within one DX7 step.
SELF_TEST_CODE_TOLERANCE = 2
SELF_TEST_VALUE_TOLERANCE = 1


def interpreter_class():
    """The LiteRT interpreter class: ai_edge_litert first, tflite_runtime as the fallback."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise DxmacroError("no TFLite runtime: install ai-edge-litert (or tflite-runtime where numpy < 2)") \
                from None
    return Interpreter


class TFLiteModel:
    """One .tflite flatbuffer, loaded from bytes (never from a path taken from a bundle)."""

    def __init__(self, content: bytes, num_threads: int = 1) -> None:
        try:
            self.interpreter = interpreter_class()(model_content=bytes(content), num_threads=num_threads)
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

    @property
    def quantized(self) -> bool:
        return self.input_dtype == np.int8

    def quantize(self, latents: np.ndarray) -> np.ndarray:
        if not self.quantized:
            return np.asarray(latents, np.float32)
        scale, zero = self.input_quant
        q = np.rint(np.asarray(latents, np.float32) / scale) + zero
        return np.clip(q, -128, 127).astype(np.int8)

    def dequantize(self, codes: np.ndarray) -> np.ndarray:
        if not self.quantized:
            return np.asarray(codes, np.float32)
        scale, zero = self.output_quant
        return ((codes.astype(np.float32) - zero) * scale).astype(np.float32)

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
    """A verified bundle's decoder: latent -> 145 DX7 values, plus the on-device self-test."""

    def __init__(self, bundle: "Bundle", num_threads: int = 1) -> None:
        self.bundle = bundle
        self.model = TFLiteModel(bundle.tflite, num_threads)
        m = bundle.manifest
        if self.model.input_size != m["latent_size"] or self.model.output_size != layout.VECTOR_SIZE:
            raise DxmacroError(f"model shape {self.model.input_size}->{self.model.output_size} does not match the "
                               f"manifest ({m['latent_size']}->{layout.VECTOR_SIZE})")
        q = m["quantization"]
        if self.model.quantized and (not np.isclose(self.model.input_quant[0], q["input"]["scale"])
                                     or self.model.input_quant[1] != q["input"]["zero_point"]
                                     or not np.isclose(self.model.output_quant[0], q["output"]["scale"])
                                     or self.model.output_quant[1] != q["output"]["zero_point"]):
            raise DxmacroError("the model's quantization parameters disagree with the manifest")

    def vector(self, latent: np.ndarray) -> np.ndarray:
        return self.model(np.asarray(latent, np.float32).reshape(1, -1))[0]

    def decode(self, latent: np.ndarray) -> np.ndarray:
        """(latent_size,) -> (145,) uint8 DX7 values."""
        return layout.decode(self.vector(latent))

    def self_test(self) -> dict[str, float]:
        """Run the golden vectors stored at conversion time; raise DxmacroError when this device
        disagrees by more than the documented tolerance."""
        g = self.bundle.golden
        codes = self.model.raw(g["latents"])
        if self.model.quantized:
            dev = int(np.max(np.abs(codes.astype(np.int16) - g["int8_codes"].astype(np.int16))))
        else:
            dev = 0
        values = layout.decode(self.model.dequantize(codes)).astype(np.int16)
        value_dev = int(np.max(np.abs(values - g["int8_values"].astype(np.int16))))
        if dev > SELF_TEST_CODE_TOLERANCE or value_dev > SELF_TEST_VALUE_TOLERANCE:
            raise DxmacroError(f"self-test failed: outputs differ from the golden vectors by {dev} int8 steps and "
                               f"{value_dev} DX7 steps (tolerance {SELF_TEST_CODE_TOLERANCE} and "
                               f"{SELF_TEST_VALUE_TOLERANCE})")
        return {"vectors": len(codes), "max_code_diff": dev, "max_value_diff": value_dev}
