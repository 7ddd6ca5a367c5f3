"""Run a batch: chunks fanned out over Ray (a local Ray started for the run, or a running cluster), or serially.

Ray: ``ray.init(address="local")`` starts a new local Ray (never one found running) with ``workers`` CPUs,
no dashboard and a small object store, and shuts it down at the end (also on errors and Ctrl-C); ``address``
joins a running cluster instead (``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``), whose nodes must see the
output folder and have PoseFit importable (the driver's checkout is put on the workers' ``PYTHONPATH``). Each
chunk is one task of one CPU; a task whose worker dies is retried (``max_retries``), and a retried chunk skips
the frames its first try finished. At most ``workers`` chunks run at a time.

A local Ray for a job with fewer frames to fit than ``workers x chunk`` is not started: Ray's own start (about
10 s) costs more than the workers save, so such a job runs serially, with a one-line note. A local Ray starts
with token authentication on (Ray 2.60's default) but without Ray's console warning about it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import posecore
from posecore.batch.plan import SUMMARY_FILE, BatchJob, Chunk, plan_chunks
from posecore.batch.worker import FrameOutcome, fit_chunk
from posecore.io.atomic import atomic_write_text, claim_output_dir

TASK_MAX_RETRIES = 3
OBJECT_STORE_BYTES = 100 * 1024 * 1024


def _progress(total: int, done: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=done, unit="frame", dynamic_ncols=True)


def _worker_env() -> dict:
    """Environment of Ray workers: PoseFit importable, one thread per library, the same model caches."""
    root = str(Path(posecore.__file__).resolve().parent.parent)
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    env = {"PYTHONPATH": path, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    for name in ("ANNY_CACHE_DIR", "POSEFIT_CACHE_DIR", "HOME"):
        if os.environ.get(name):
            env[name] = os.environ[name]
    return env


def serial_reason(pending: int, workers: int | None, chunk: int, address: str | None) -> str | None:
    """Why a job runs serially instead of on a local Ray: fewer frames to fit than ``workers x chunk`` (a joined
    cluster is always used); None to use Ray."""
    if workers == 0 or address:
        return None
    count = workers or os.cpu_count() or 1
    if pending >= count * chunk:
        return None
    return (
        f"{pending} frame(s) to fit, fewer than {count} worker(s) x chunk {chunk}: fitting serially in this process "
        "(starting Ray would take longer than the workers save)"
    )


RAY_AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"
"""The logger Ray 2.60 warns on when it turns token authentication on for a new local cluster."""


@contextlib.contextmanager
def quiet_local_ray_auth() -> Iterator[None]:
    """Around ``ray.init`` of a new local Ray: Ray turns token authentication on, as it does by default, but its
    console warning saying so is not shown (that one logger is raised to ERROR, then restored). Nothing else
    changes: ``RAY_AUTH_MODE``, when the user set it, still decides."""
    logger = logging.getLogger(RAY_AUTH_LOGGER)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def run_serial(job: BatchJob, chunks: Iterable[Chunk], on_outcomes: Callable[[list[FrameOutcome]], None]) -> None:
    """Fit the chunks one after the other in this process."""
    for chunk in chunks:
        on_outcomes(fit_chunk(job, chunk))


def run_on_ray(
    job: BatchJob,
    chunks: list[Chunk],
    on_outcomes: Callable[[list[FrameOutcome]], None],
    workers: int | None,
    address: str | None = None,
    on_tick: Callable[[], None] | None = None,
) -> dict:
    """Fit the chunks as Ray tasks, at most ``workers`` at a time (default: the cluster's CPUs).

    Returns:
        What ran them: {"address": the cluster's GCS address, "nodes", "cpus", "workers"}.
    """
    import ray

    kwargs = {"runtime_env": {"env_vars": _worker_env()}, "log_to_driver": False, "logging_level": "WARNING"}
    if address:
        ray.init(address=address, **kwargs)
    else:
        with quiet_local_ray_auth():
            ray.init(address="local", num_cpus=workers or os.cpu_count() or 1, include_dashboard=False,
                     object_store_memory=OBJECT_STORE_BYTES, **kwargs)  # fmt: skip
    try:
        return _run_tasks(ray, job, chunks, on_outcomes, workers, on_tick)
    finally:
        ray.shutdown()


def _run_tasks(ray, job: BatchJob, chunks: list[Chunk], on_outcomes, workers: int | None, on_tick) -> dict:
    """The chunks as Ray tasks on the initialised Ray, at most ``workers`` at a time; returns the cluster."""
    cpus = int(ray.cluster_resources().get("CPU", 1))
    limit = workers or max(1, cpus)
    cluster = {"address": ray.get_runtime_context().gcs_address, "nodes": len(ray.nodes()), "cpus": cpus,
               "workers": limit}  # fmt: skip
    task = ray.remote(num_cpus=1, max_retries=TASK_MAX_RETRIES)(fit_chunk)
    waiting = list(chunks)
    running: dict = {}
    while waiting or running:
        while waiting and len(running) < limit:
            chunk = waiting.pop(0)
            running[task.remote(job, chunk)] = chunk
        ready, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
        for ref in ready:
            chunk = running.pop(ref)
            try:
                outcomes = ray.get(ref)
            except ray.exceptions.RayError as exc:  # the task failed on every try (a crashed worker, ...)
                reason = f"worker failed after {TASK_MAX_RETRIES} retries: {str(exc).splitlines()[0]}"
                outcomes = [
                    FrameOutcome(f.name, f.index, "skipped" if job.is_done(f) else "failed", reason)
                    for f in chunk.frames
                ]
            on_outcomes(outcomes)
        if on_tick is not None:
            on_tick()
    return cluster


def run_batch(
    job: BatchJob,
    workers: int | None = None,
    address: str | None = None,
    show_progress: bool = False,
    small_jobs_serial: bool = True,
    note: Callable[[str], object] | None = None,
) -> dict:
    """Fit every frame not done yet and write ``OUT/summary.json``; returns the summary.

    Args:
        workers: Ray workers (default: every CPU of the local machine or the cluster); 0 fits serially in this
            process without Ray.
        address: a running Ray cluster to join instead of starting a local one.
        small_jobs_serial: run a job with fewer frames to fit than ``workers x chunk`` serially (see
            :func:`serial_reason`) instead of on a new local Ray.
        note: where the one-line note about that goes (default: standard error, prefixed ``posefit: ``).

    The summary lists the frames fitted in this run, the frames skipped (done before), and each failed frame
    with its reason; it is written also when the run stops early (``complete`` is then false).
    """
    started = time.perf_counter()
    claim_output_dir(job.out)  # so a re-run (resume) is let into the folder it started
    frames = job.source.frames
    chunks = plan_chunks(job)
    pending = {f.name for c in chunks for f in c.frames if not job.is_done(f)}
    outcomes: dict[str, FrameOutcome] = {}
    bar = _progress(len(frames), len(frames) - len(pending), show_progress)
    counted: set[str] = set()

    def tick() -> None:
        if bar is None:
            return
        newly = {n for n in pending - counted if job.is_done(n) or n in outcomes}
        counted.update(newly)
        bar.update(len(newly))

    def collect(result: list[FrameOutcome]) -> None:
        for outcome in result:
            outcomes[outcome.name] = outcome
        tick()

    complete = False
    cluster = None
    reason = serial_reason(len(pending), workers, job.chunk_size, address) if small_jobs_serial and pending else None
    if reason is not None:
        (note or (lambda text: print(f"posefit: {text}", file=sys.stderr)))(reason)
    try:
        if workers == 0 or reason is not None:
            run_serial(job, chunks, collect)
        elif chunks:
            cluster = run_on_ray(job, chunks, collect, workers, address, tick)
        complete = True
    finally:
        if bar is not None:
            bar.close()
        summary = summarise_run(job, outcomes, complete, time.perf_counter() - started)
        summary["ray"] = cluster
        summary["serial_because"] = reason
        atomic_write_text(Path(job.out) / SUMMARY_FILE, json.dumps(summary, indent=1))
    return summary


def summarise_run(job: BatchJob, outcomes: dict[str, FrameOutcome], complete: bool, seconds: float) -> dict:
    """The content of ``summary.json``."""
    fitted = [o for o in outcomes.values() if o.status == "fitted"]
    failed = {o.name: o.reason for o in sorted(outcomes.values(), key=lambda o: o.index) if o.status == "failed"}
    done = sum(job.is_done(f) for f in job.source.frames)
    return {
        "source": job.source.description,
        "frames": len(job.source.frames),
        "done": done,
        "fitted_this_run": sorted((o.name for o in fitted), key=lambda n: outcomes[n].index),
        "skipped": done - len(fitted),
        "failed": failed,
        "complete": complete and not failed,
        "seconds": round(seconds, 3),
        "fit_seconds_per_frame": round(sum(o.seconds for o in fitted) / len(fitted), 4) if fitted else None,
        "chunk": job.chunk_size,
    }
