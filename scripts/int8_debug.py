"""Which tensors of a run's int8 decoder lose the most: TFLite's QuantizationDebugger.

    python scripts/int8_debug.py RUN [N]

Builds the graph exactly as `dxmacro convert` does (equalized flow, input affine on the device)
and prints the N tensors (default 15) with the largest RMS quantization error in int8 steps.
"""

import csv
import io
import sys

import numpy as np

from conversion import equalize, export
from host_training.export import load_decoder


def main() -> None:
    run, top = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 15
    module, info = load_decoder(run)
    n = int(info["latent_size"])
    anchors = np.asarray([a["latent"] for a in info["anchors"]], np.float32)
    cal = export.calibration_set(n, anchors=np.concatenate([anchors, info["calibration_latents"]]),
                                 knob_dims=[k["dim"] for k in info["knobs"]],
                                 knob_ranges=[tuple(k["range"]) for k in info["knobs"]], prior=512, seed=0)
    graph = equalize.equalize_flow(module, cal.latents)
    inputs = cal.latents
    split = equalize.split_input(graph, n)
    if split is not None:
        graph, scale, shift = split
        inputs = inputs * scale + shift
    tf = export._tf()
    fn, _ = export.tf_function(export.trace(graph, n))
    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)

    def representative():
        for row in inputs[::2]:
            yield [row[None, :]]

    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    debugger = tf.lite.experimental.QuantizationDebugger(converter=conv, debug_dataset=representative)
    debugger.run()
    buf = io.StringIO()
    debugger.layer_statistics_dump(buf)
    buf.seek(0)
    rows = [r for r in csv.DictReader(buf) if r["scale"] not in ("", "nan")]
    for r in rows:
        r["steps"] = float(np.sqrt(float(r["mean_squared_error"])) / float(r["scale"]))
    print(f"{len(rows)} quantized tensors; largest RMS error in int8 steps:")
    for r in sorted(rows, key=lambda r: -r["steps"])[:top]:
        print(f"  {r['op_name']:16s} {r['tensor_name'][:40]:40s} {r['steps']:.3f} steps "
              f"(scale {float(r['scale']):.4g}, {int(float(r['num_elements']))} values)")


if __name__ == "__main__":
    main()
