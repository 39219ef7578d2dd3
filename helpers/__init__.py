"""Helpers behind the notebooks: data, networks, training steps, metrics, plots and batch runs.

TensorFlow's runtime options are chosen here, the one place (benchmarks/threads.py measures them), and
take effect only if this package is imported before TensorFlow: the notebooks, the batch runner and the
tests do so. An option already set in the environment is left as it is.
"""
import os

# oneDNN's kernels: TensorFlow turns them on by itself only on CPUs with AVX-512 VNNI/BF16 or AMX; on our
# AVX2 CPU they made a cpu-profile iteration 1.8-3.3x faster (benchmarks/README.md). Threads: TensorFlow's
# defaults were the fastest measured.
TF_OPTIONS = {"TF_ENABLE_ONEDNN_OPTS": "1"}
for _name, _value in TF_OPTIONS.items():
    os.environ.setdefault(_name, _value)
