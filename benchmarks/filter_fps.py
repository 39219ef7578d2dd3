"""Frames per second of the trained filter on 640x480 frames, every format side by side in one run.

    .venv/bin/python benchmarks/filter_fps.py [--filter results/S1/filter.keras] [--seconds 5]

For each format: frames/s, GFLOP/s, the fraction of this machine's measured matrix-multiply peak
(float32, or bfloat16 for the bfloat16 formulation) and the largest output difference from the Keras
filter. The last line names the fastest format whose output stays within its tolerance.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import helpers  # noqa: E402,F401  TensorFlow's runtime options (helpers/__init__.py), before TensorFlow starts
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from helpers import export  # noqa: E402
from helpers.models import build_filter, load  # noqa: E402


def matmul_peak(dtype, n: int = 2048, seconds: float = 2.0) -> float:
    """GFLOP/s of a large square matrix product: the practical peak of TensorFlow on this CPU."""
    a = tf.random.uniform((n, n), dtype=tf.float32)
    a = tf.cast(a, dtype)
    run = tf.function(lambda x: tf.matmul(x, x))
    run(a).numpy()
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        run(a).numpy()
        count += 1
    return 2 * n**3 * count / (time.perf_counter() - started) / 1e9


def test_frame(rng, height=480, width=640) -> np.ndarray:
    """A frame with flat regions, edges and sensor noise, like a camera image of a floor."""
    blocks = np.kron(rng.random((12, 16, 3)), np.ones((height // 12, width // 16, 1)))
    return np.clip(blocks + rng.normal(0, 0.03, blocks.shape), 0, 1).astype(np.float32)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--filter", default="results/S1/filter.keras",
                        help="trained filter; a He-initialised 5,7,7,5,3 filter if the file is missing")
    parser.add_argument("--seconds", type=float, default=5.0, help="timing per format")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="TFLite interpreter threads")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    if Path(args.filter).exists():
        filt, source = load(args.filter), args.filter
    else:
        filt, source = build_filter(), "He-initialised (no trained filter found)"
        filt.set_weights([rng.normal(0, np.sqrt(2 / (9 * w.shape[2])), w.shape).astype("float32")
                          for w in filt.get_weights()])
    frame = test_frame(rng)
    calibration = [test_frame(rng) for _ in range(8)]
    flops = export.filter_flops(filt, *frame.shape[:2])
    print(f"filter: {source}; frame 640x480; {flops / 1e9:.3f} GFLOP per frame "
          f"(2 x multiply-adds of the five 3x3 convolutions)")

    peaks = {"float32": matmul_peak(tf.float32), "bfloat16": matmul_peak(tf.bfloat16)}
    print(f"measured peak (2048x2048 matmul, {os.cpu_count()} cores): float32 {peaks['float32']:.0f} GFLOP/s, "
          f"bfloat16 {peaks['bfloat16']:.0f} GFLOP/s")

    keras_fn = export.keras_function(filt)
    tmp = Path(tempfile.mkdtemp(prefix="filter_fps_"))
    lite32 = export.TFLiteFilter(export.export_tflite(filt, tmp / "f32.tflite"), args.threads)
    lite8 = export.TFLiteFilter(export.export_tflite(filt, tmp / "int8.tflite", quantize="int8",
                                                     representative=calibration), args.threads)
    vino = export.export_openvino(filt, tmp / "openvino")
    formats = {
        # name: (function of a batch of frames, arithmetic it runs in)
        "keras": (lambda x: np.asarray(filt(x, training=False)), "float32"),
        "tf_function": (keras_fn, "float32"),
        "tflite_float32": (lite32, "float32"),
        "tflite_int8": (lite8, "float32"),
        "folded_float32": (export.FoldedFilter(filt, k=2, dtype="float32"), "float32"),
        "folded_bfloat16": (export.FoldedFilter(filt, k=2, dtype="bfloat16"), "bfloat16"),
        "openvino_float32": (export.OpenVINOFilter(vino, "float32"), "float32"),
        "openvino_bfloat16": (export.OpenVINOFilter(vino, "bfloat16"), "bfloat16"),
    }
    tolerance = dict(export.TOLERANCE, tf_function=1e-5)
    batch = frame[None]
    rows = []
    for name, (fn, arithmetic) in formats.items():
        diff = export.max_difference(filt, fn, np.stack([frame, calibration[0]]))
        fps = export.frames_per_second(fn, batch, args.seconds)
        rows.append((name, fps, fps * flops / 1e9, fps * flops / 1e9 / peaks[arithmetic], arithmetic, diff,
                     diff <= tolerance[name]))
    base = rows[1][1]
    print(f"\n{'format':<18} {'frames/s':>9} {'vs tf':>6} {'GFLOP/s':>8} {'of peak':>8} {'peak':>9} "
          f"{'max |diff|':>11} {'tolerance':>10}")
    for name, fps, gflops, frac, arithmetic, diff, ok in rows:
        print(f"{name:<18} {fps:9.1f} {fps / base:6.2f} {gflops:8.1f} {frac:8.1%} {arithmetic:>9} "
              f"{diff:11.2e} {tolerance[name]:10.2e}{'' if ok else '  OUT OF TOLERANCE'}")
    best = max((r for r in rows if r[6]), key=lambda r: r[1])
    print(f"best_fps={best[1]:.1f} format={best[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
