"""Which tensors of a run's int8 decoder lose the most: TFLite's QuantizationDebugger.

    python scripts/int8_debug.py RUN [N]

Builds the graph exactly as `dxmacro convert` does (equalized flow, input affine on the device,
output levels on the DX7 grid)
and prints the N tensors (default 15) with the largest RMS quantization error in int8 steps.
"""

import csv
import io
import sys

import numpy as np

from conversion import export, pipeline
from host_training.jobs.export import load_decoder


def main() -> None:
    run, top = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 15
    module, info = load_decoder(run)
    graph = pipeline.device_graph(module, info)
    conv = export.converter(graph.module, graph.graph_input, int(info["latent_size"]), graph.grid)

    def representative():
        for row in graph.graph_input[::2]:
            yield [row[None, :]]

    tf = export._tf()
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
