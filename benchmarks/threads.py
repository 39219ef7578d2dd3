"""Which TensorFlow thread settings train fastest here, and what does op determinism cost? Each setting runs in its own process (threads are
fixed when TensorFlow starts), timing the project's fused iteration on the same batches; settings are
tried in turn, twice, so that load on the machine hits each. The last line names the fastest.

    python benchmarks/threads.py --profile cpu --iterations 15
    python benchmarks/threads.py --settings default op_determinism   # what ANON_DETERMINISTIC=1 costs
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

# (intra-op threads, inter-op threads, oneDNN, ANON_DETERMINISTIC); 0 = TensorFlow's default. "default" is the
# project's choice (helpers.TF_OPTIONS: oneDNN on); "no_onednn" is TensorFlow's own default on CPUs without
# AVX-512 VNNI/BF16 or AMX, such as our AVX2 EPYC.
SETTINGS = {
    "default": (0, 0, "1", ""),
    "intra2_inter1": (2, 1, "1", ""),
    "intra1_inter2": (1, 2, "1", ""),
    "intra2_inter2": (2, 2, "1", ""),
    "no_onednn": (0, 0, "0", ""),
    "op_determinism": (0, 0, "1", "1"),  # tf.config.experimental.enable_op_determinism (helpers.training)
}

CHILD = r"""
import json, os, sys, time
import tensorflow as tf
intra, inter = int(sys.argv[1]), int(sys.argv[2])
if intra: tf.config.threading.set_intra_op_parallelism_threads(intra)
if inter: tf.config.threading.set_inter_op_parallelism_threads(inter)
import keras
from helpers import config, models, squares, training
p = config.get_profile(sys.argv[3])
keras.utils.set_random_seed(0)
steps = training.Steps(training.Networks(*models.networks_for(p, "squares", (5, 7, 7, 5, 3))), 5e-4, 1e-3, 5e-4)
stream = squares.TrainingStream(p, 0)
batches = [stream.batch(i) for i in range(int(sys.argv[4]) + 1)]
def run(i):
    det, pairs = batches[i]
    a, b = pairs.images()
    return float(steps.iteration(det.images, det.heatmaps, a, b, pairs.labels)["filter"])
run(0)
start = time.perf_counter()
for i in range(1, len(batches)):
    run(i)
print(json.dumps({"it_per_s": (len(batches) - 1) / (time.perf_counter() - start)}))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--iterations", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    args = parser.parse_args()
    if "default" not in args.settings:
        args.settings.insert(0, "default")
    rates = {name: [] for name in args.settings}
    for _ in range(args.rounds):
        for name in args.settings:
            intra, inter, onednn, deterministic = SETTINGS[name]
            env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": onednn, "TF_CPP_MIN_LOG_LEVEL": "3",
                   "ANON_DETERMINISTIC": deterministic}
            out = subprocess.run([sys.executable, "-c", CHILD, str(intra), str(inter), args.profile, str(args.iterations)],
                                 env=env, capture_output=True, text=True, check=True).stdout
            rates[name].append(json.loads(out.strip().splitlines()[-1])["it_per_s"])
    base = max(rates["default"])
    for name, r in rates.items():
        print(f"{name}: best {max(r):.3f} it/s (runs {', '.join(f'{x:.3f}' for x in r)}), {max(r) / base:.2f}x default")
    best = max(rates, key=lambda n: max(rates[n]))
    print(f"fastest={best} ratio_to_default={max(rates[best]) / base:.3f}")


if __name__ == "__main__":
    main()
