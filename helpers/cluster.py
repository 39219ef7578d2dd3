"""The batch runner's Ray engine: `python -m helpers.batch ... --engine ray [--address auto] [--jobs N]`.

Every notebook run of the batch (01/02, 03, each 04 of a variant and seed, each part of the attack of 06)
becomes a Ray task that starts as soon as the tasks it reads from have finished (`batch.Task.after`).
What a task reserves: one CPU, and one GPU for training and attacks when the cluster has GPUs (the
`paper` profile).

Files: every task reads and writes the project root (`ANON_ROOT` or the repository) by its path, so all
machines of a cluster must see that folder at the same path (one machine, or a shared file system such as
NFS). Shipping results back to the driver is not supported.

Failures: a task whose worker dies (a killed process, a lost machine) is retried up to `RETRIES` times;
notebooks 03 and 04 resume from their last checkpoint, 06 from its last finished attack. A notebook
that fails with an error is not retried: the batch stops, names the notebook and its log, and cancels
what has not started.
"""
from __future__ import annotations

import os
from pathlib import Path

RETRIES = 3
ENV = ("ANON_ROOT", "ANON_PROFILE", "ANON_DETERMINISTIC", "TF_CPP_MIN_LOG_LEVEL", "PYTHONPATH")


def _run_task(name: str, output: str, parameters: dict, env: dict, *finished) -> float:
    """In a Ray worker: one papermill run (batch.run_notebook); `finished` are the results of the tasks
    this one waits for (Ray starts it only once they exist)."""
    os.environ.update(env)
    from helpers import batch
    return batch.run_notebook(name, Path(output), parameters, quiet=True)


def resources(kind: str, gpus_in_cluster: float) -> dict:
    """What one task of `kind` reserves on the cluster."""
    return {"num_cpus": 1, "num_gpus": 1 if gpus_in_cluster and kind in ("train", "attack") else 0}


def run(tasks, plan, address: str | None = None, jobs: int | None = None) -> None:
    """Submit `tasks` (in an order where every task comes after those it needs) and report each as it
    finishes on `plan`. Raises batch.NotebookFailed for the first notebook that fails."""
    import ray

    from helpers import batch
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=jobs or os.cpu_count(), include_dashboard=False, log_to_driver=False)
    try:
        gpus = ray.cluster_resources().get("GPU", 0)
        env = {k: os.environ[k] for k in ENV if k in os.environ}
        env["ANON_ROOT"] = _root()  # the same folder for every task, wherever it runs
        remote = ray.remote(_run_task)
        refs, labels = {}, {}
        for t in tasks:
            ref = remote.options(**resources(t.kind, gpus), max_retries=RETRIES, retry_exceptions=False,
                                 name=t.label).remote(t.name, str(t.output), t.parameters, env,
                                                      *(refs[a] for a in t.after if a in refs))
            refs[t.label], labels[ref] = ref, t.label
        pending = list(labels)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            label = labels[done[0]]
            plan.count += 1
            try:
                minutes = ray.get(done[0])
            except ray.exceptions.RayTaskError as err:
                for ref in pending:
                    ray.cancel(ref, force=True)
                cause = err.cause if isinstance(getattr(err, "cause", None), Exception) else err
                print(f"[{plan.count}/{plan.total}] {label} ... failed", flush=True)
                raise batch.NotebookFailed(str(cause)) from None
            plan.minutes[label] = minutes
            print(f"[{plan.count}/{plan.total}] {label} ... {minutes:.1f} min", flush=True)
    finally:
        ray.shutdown()


def _root() -> str:
    from helpers import config
    return str(config.project_root().resolve())
