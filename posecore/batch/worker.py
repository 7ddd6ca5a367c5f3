"""Fit one chunk of frames in order, each warm-started from the one before: the work of one batch worker.

Plain Python (no Ray here): the Ray runner calls :func:`fit_chunk` as a remote task, a serial run calls it
directly, with the same results.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from posecore.batch.plan import BatchJob, Chunk
from posecore.errors import PoseFitError
from posecore.fitting.report import history_of, summarise
from posecore.fitting.setup import prepare_fit
from posecore.io.frame_sources import Frame

_BODIES: dict[str, object] = {}
"""Body models loaded in this process, by spec: a worker loads each once, whatever the number of chunks."""


@dataclass(frozen=True)
class FrameOutcome:
    """What happened to one frame: status "fitted", "skipped" (done before) or "failed" (with the reason)."""

    name: str
    index: int
    status: str
    reason: str = ""
    seconds: float = 0.0
    warm_start_from: str | None = None


def _body(spec: str):
    if spec not in _BODIES:
        from posecore.bodies import load_body_model

        _BODIES[spec] = load_body_model(spec)
    return _BODIES[spec]


def fit_frame(job: BatchJob, frame: Frame, previous: str | None, body, renderer) -> FrameOutcome:
    """Fit one frame and write ``OUT/<name>/`` (result.json, fit.npz) all at once.

    Args:
        previous: the frame whose result warm-starts this one, or None to start from ``--init``.
    """
    from posecore.results import fit_arrays, result_record, write_fit_outputs

    start = time.perf_counter()
    init = job.warm_start_init(previous) if previous else job.chunk_start_init(frame)
    target = job.source.load(frame)
    prepared = prepare_fit(job.options, target=target, init=init, body=body, renderer=renderer)
    if previous is None:  # a cold start tries the single view's alternatives; a warm start keeps its reading
        prepared.add_search_cues()
    prepared.crop_to_person()
    fitter = prepared.fitter()
    states = fitter.run()
    last = states[-1]
    camera = prepared.output_camera(last.camera)
    metrics = summarise(body, states, prepared.problem.target)
    settings = {**prepared.settings("batch"), "frame": frame.name, "warm_start_from": previous}
    settings["hypotheses"] = fitter.search.summary() if fitter.search is not None else None
    record = result_record(body, last.params, camera, last.camera_angle, history_of(states), metrics, settings)
    arrays = fit_arrays(body, last.params, camera, last.camera_angle)
    write_fit_outputs(job.frame_dir(frame), record, arrays, None)
    return FrameOutcome(
        frame.name, frame.index, "fitted", seconds=time.perf_counter() - start, warm_start_from=previous
    )


def fit_chunk(job: BatchJob, chunk: Chunk) -> list[FrameOutcome]:
    """Fit a chunk's frames in order; frames already done are skipped, a failed frame is reported and the
    next one starts from the last good result.

    Returns:
        One outcome per frame of the chunk.
    """
    torch.set_num_threads(job.threads)
    body = _body(job.options.model)
    from posecore.render import get_renderer

    renderer = get_renderer(job.options.renderer)
    previous = chunk.start_from
    outcomes = []
    for frame in chunk.frames:
        if job.is_done(frame):
            outcomes.append(FrameOutcome(frame.name, frame.index, "skipped"))
            previous = frame.name
            continue
        try:
            outcomes.append(fit_frame(job, frame, previous, body, renderer))
            previous = frame.name
        except PoseFitError as exc:
            outcomes.append(FrameOutcome(frame.name, frame.index, "failed", str(exc)))
        except Exception as exc:  # a failed frame must not stop the others; its reason goes to summary.json
            outcomes.append(FrameOutcome(frame.name, frame.index, "failed", f"{type(exc).__name__}: {exc}"))
    close = getattr(job.source, "close", None)
    if close is not None:
        close()
    return outcomes
