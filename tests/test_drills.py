"""Kill drills: real processes killed with SIGKILL at random moments, then rerun with the same command.

The anonymise drill runs in the suite. The drills of notebooks 03, 04 and 06 through the batch runner
take minutes per kill, so they are soak tests (each also runs its command twice whole: repeatability): `ANON_SOAK=1 .venv/bin/python -m pytest tests/test_drills.py -p no:xdist`
(ANON_SOAK_KILLS sets the number of kill points, default 3)."""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
soak = pytest.mark.skipif(not os.environ.get("ANON_SOAK"), reason="soak test: set ANON_SOAK=1")


def start(args, env):
    # A session of its own, so that SIGKILL reaches the command and every process it started (kernels).
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def kill_after(proc, seconds, root=None):
    """SIGKILL the process group after `seconds`, and every process whose ANON_ROOT is `root` (Jupyter
    starts kernels in sessions of their own); True if the command was still running (a real interruption)."""
    try:
        proc.wait(timeout=seconds)
        return False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if root is not None:
            mark = f"ANON_ROOT={root}".encode()
            for pid in (int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()):
                try:
                    if mark in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                        os.kill(pid, signal.SIGKILL)
                except (OSError, ProcessLookupError):
                    pass
        return True


def finish(args, env, timeout=3600):  # generous: a soak may share a busy machine
    proc = start(args, env)
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]


def env_with(root):
    return {**os.environ, "ANON_ROOT": str(root), "ANON_PROFILE": "smoke", "TF_CPP_MIN_LOG_LEVEL": "2"}


def test_anonymise_killed_at_random_moments_resumes_to_the_same_files(tmp_path):
    import cv2
    from helpers.models import build_filter
    filt = tmp_path / "filter.keras"
    build_filter().save(filt)
    src = tmp_path / "in"
    src.mkdir()
    writer = cv2.VideoWriter(str(src / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (160, 120))
    rng = np.random.default_rng(0)
    for _ in range(150):
        writer.write(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8))
    writer.release()
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)).save(src / f"still {i}.png")
    args = lambda out: ["-m", "helpers.anonymise", "--filter", str(filt), "--out", str(out), "--quiet",
                        str(src / "clip.avi"), *(str(p) for p in sorted(src.glob("*.png")))]
    env = env_with(tmp_path)
    began = time.time()
    finish(args(tmp_path / "reference"), env)
    whole = time.time() - began
    reference = {p.name: p.read_bytes() for p in (tmp_path / "reference").iterdir()}
    assert len(reference) == 5
    rnd = random.Random(0)
    interrupted = 0
    for k in range(4):
        out = tmp_path / f"killed{k}"
        interrupted += kill_after(start(args(out), env), rnd.uniform(0.3, 1.0) * whole)
        for p in out.glob("*") if out.exists() else []:  # what a kill leaves: whole outputs or hidden partials
            assert p.name.startswith(".") or p.read_bytes() == reference[p.name], p
        finish(args(out), env)
        result = {p.name: p.read_bytes() for p in out.iterdir() if not p.name.startswith(".")}
        assert result == reference  # bitwise: the filter and the encoders are deterministic on one machine
    assert interrupted >= 2  # most kills landed while the command was still working


def batch_drill(tmp_path, prepare, cmd, remove, result, kills):
    """Prepare a project root with `prepare` and remove `remove` from it; run `cmd` on copies of it: once
    whole, once again (repeatability) and `kills` times killed at a random moment and rerun. Returns the
    results (`result(root)`) of the whole run, the second run and each resumed run."""
    prepared = tmp_path / "prepared"
    finish(prepare, env_with(prepared))
    shutil.rmtree(prepared / remove, ignore_errors=True)
    outcomes, whole = [], []
    for name in ("reference", "again"):
        root = tmp_path / name
        shutil.copytree(prepared, root)
        began = time.time()
        finish(cmd, env_with(root))
        whole.append(time.time() - began)
        outcomes.append(result(root))
    rnd = random.Random(1)
    interrupted = 0
    for k in range(kills):
        root = tmp_path / f"killed{k}"
        shutil.copytree(prepared, root)
        # the quicker whole run sets the moments: a machine that gets less busy must not outrun the kill
        interrupted += kill_after(start(cmd, env_with(root)), rnd.uniform(0.15, 0.7) * min(whole), root)
        half = [p for p in root.rglob("*.json") if p.stat().st_size and not p.read_text().rstrip().endswith("}")]
        assert not half, half  # never a half-written result
        finish(cmd, env_with(root))
        outcomes.append(result(root))
    assert interrupted >= kills - 1  # the kills landed while the command was working
    return outcomes


def figures(path):
    """What a metrics.json says about the networks (not how long they took)."""
    m = json.loads(Path(path).read_text())
    return {"best_epoch": m["best_epoch"], "val": m["val"], "test": m["test"]}


KILLS = int(os.environ.get("ANON_SOAK_KILLS", "3"))
BATCH = ["-m", "helpers.batch", "S1", "--profile", "smoke"]


@soak
def test_notebook_03_killed_at_random_moments_resumes_to_the_same_metrics(tmp_path):
    cmd = BATCH + ["--setup-only"]
    reference, *others = batch_drill(tmp_path, cmd, cmd, "results/none",
                                     lambda root: figures(root / "results" / "none" / "metrics.json"), KILLS)
    assert all(o == reference for o in others)  # bit for bit: once again and after every kill


@soak
def test_notebook_04_killed_at_random_moments_resumes_to_the_same_metrics(tmp_path):
    cmd = BATCH + ["--no-evaluation", "--no-attack"]
    reference, *others = batch_drill(tmp_path, cmd, cmd, "results/S1",
                                     lambda root: figures(root / "results" / "S1" / "metrics.json"), KILLS)
    assert all(o == reference for o in others)


@soak
def test_the_attack_of_notebook_06_killed_at_random_moments_resumes_to_the_same_table(tmp_path):
    def table(root):
        return (root / "results" / "attack_summary.csv").read_text()
    reference, *others = batch_drill(tmp_path, BATCH + ["--no-evaluation", "--no-attack"], BATCH + ["--no-evaluation"],
                                     "results/06_attack", table, KILLS)
    assert reference.count("\n") > 10 and all(o == reference for o in others)


def summary_rows(root):
    """results/summary.csv without its timing column."""
    import pandas as pd
    return pd.read_csv(root / "results" / "summary.csv").drop(columns=["train_minutes"]).to_csv(index=False)


@soak
def test_a_ray_batch_with_a_killed_worker_ends_with_the_local_batch_rows(tmp_path):
    import psutil
    pytest.importorskip("ray")
    cmd = ["-m", "helpers.batch", "S1", "S4", "--profile", "smoke", "--no-evaluation"]
    began = time.time()
    finish(cmd, env_with(tmp_path / "local"))
    local = time.time() - began
    root = tmp_path / "ray"
    began = time.time()
    proc = start(cmd + ["--engine", "ray", "--jobs", "2"], env_with(root))
    killed, seen = None, {}
    deadline = time.time() + 900
    while killed is None and proc.poll() is None and time.time() < deadline:
        time.sleep(2)
        for p in psutil.process_iter(["cmdline"]):
            title = " ".join(p.info["cmdline"] or [])
            if title.startswith("ray::04"):  # a Ray worker running notebook 04 (its task's name)
                seen.setdefault((p.pid, title), time.time())
                if time.time() - seen[(p.pid, title)] > 30:  # mid-training
                    p.kill()
                    killed = title
                    break
    _, err = proc.communicate(timeout=1800)
    assert proc.returncode == 0, err[-3000:]
    print(f"local {local / 60:.1f} min; ray --jobs 2 with {killed!r} killed {(time.time() - began) / 60:.1f} min")
    assert killed, "no worker was killed mid-run"
    assert summary_rows(root) == summary_rows(tmp_path / "local")
