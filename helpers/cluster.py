"""The batch runner's Ray engine: `python -m helpers.batch ... --engine ray [--address auto] [--jobs N]`.

Every notebook run of the batch (01/02, 03, each 04 of a variant and seed, each part of the attack of 06)
becomes a Ray task that starts as soon as the tasks it reads from have finished (`batch.Task.after`).
What a task reserves: one CPU, and one GPU for training (03, 04) and attacks (06) when the cluster has
GPUs (the `paper` profile); a task without a GPU is not shown any (CUDA_VISIBLE_DEVICES="").

Files: every task reads and writes the project root (`ANON_ROOT` or the repository) by its path, so all
machines of a cluster must see that folder at the same path (one machine, or a shared file system such as
NFS). Shipping results back to the driver is not supported.

Failures: a task whose worker dies (a killed process, a lost machine) is retried up to `RETRIES` times;
notebooks 03 and 04 resume from their last checkpoint, 06 from its last finished attack. A notebook
that fails with an error is not retried: the batch stops, names the notebook and its log, and cancels
the other tasks.
"""
from __future__ import annotations

import os
from pathlib import Path

RETRIES = 3
ENV = ("ANON_ROOT", "ANON_PROFILE", "ANON_DETERMINISTIC", "TF_CPP_MIN_LOG_LEVEL", "PYTHONPATH")


def _run_task(name: str, output: str, parameters: dict, env: dict, *finished) -> float:
    """In a Ray worker (the batch's environment comes with the job's runtime_env): one papermill run
    (batch.run_notebook), with `env` added for this task; `finished` are the results of the tasks this
    one waits for (Ray starts it only once they exist)."""
    os.environ.update(env)
    from helpers import batch
    return batch.run_notebook(name, Path(output), parameters, quiet=True)


def resources(task, gpus_in_cluster: float) -> dict:
    """What one task reserves on the cluster."""
    trains = task.kind in ("train", "attack") or task.name == "03_networks"
    return {"num_cpus": 1, "num_gpus": 1 if gpus_in_cluster and trains else 0}


def run(tasks, plan, address: str | None = None, jobs: int | None = None) -> None:
    """Submit `tasks` (in an order where every task comes after those it needs) and report each as it
    finishes on `plan`. Raises batch.NotebookFailed for the first notebook that fails."""
    import ray

    from helpers import batch
    env = {k: os.environ[k] for k in ENV if k in os.environ}
    env["ANON_ROOT"] = _root()  # the same folder for every task, wherever it runs
    runtime_env = {"env_vars": env}
    if address:
        ray.init(address=address, log_to_driver=False, runtime_env=runtime_env)
    else:  # a Ray instance of its own, even if a cluster runs on this machine
        ray.init(address="local", num_cpus=jobs or os.cpu_count(), include_dashboard=False, log_to_driver=False,
                 runtime_env=runtime_env)
    try:
        gpus = ray.cluster_resources().get("GPU", 0)
        remote = ray.remote(_run_task)
        refs, labels = {}, {}
        for t in tasks:
            missing = [a for a in t.after if a not in refs]
            if missing:
                raise ValueError(f"task {t.label!r} comes before {missing}, which it needs")
            need = resources(t, gpus)
            task_env = {"CUDA_VISIBLE_DEVICES": ""} if gpus and not need["num_gpus"] else {}
            ref = remote.options(**need, max_retries=RETRIES, retry_exceptions=False, name=t.label).remote(
                t.name, str(Path(t.output).resolve()), t.parameters, task_env, *(refs[a] for a in t.after))
            refs[t.label], labels[ref] = ref, t.label
        pending = list(labels)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            label = labels[done[0]]
            plan.count += 1
            try:
                minutes = ray.get(done[0])
            except ray.exceptions.RayError as err:  # a notebook error, or a worker lost more often than retried
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
