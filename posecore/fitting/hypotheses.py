"""Hypotheses: try the poses a single view cannot tell apart, keep the one the objective prefers, finish it.

A fit started from one body settles on the nearest body that fills the outline. :class:`HypothesisSearch` makes
the start's alternatives (:mod:`posecore.fitting.ambiguities`: arms or legs swapped, the body mirrored or turned
round, each elbow and knee bent towards or away from the camera), and

1. *screens* them all with one evaluation of the fit's own objective (image term + keypoint term with its
   left/right labels + prior + joint limits) at the fit's resolution;
2. *fits briefly* the ``keep`` best (the start always among them): ``brief_iterations`` steps of the fit's preset,
   the first ones at half resolution, each scored at full resolution by the same objective;
3. hands the best brief result to :class:`~posecore.fitting.loop.PoseFitter`, which finishes it.

One objective scores everything, so a candidate wins only by explaining the photo (and the landmarks' sides)
better, or by the same amount within the joints' ranges. Candidates that would move joints the fit may not move (a
selective fit's other parts) are never made. The search runs inside ``PoseFitter.steps()`` (its states carry
``phase="hypotheses"``), so the CLI, the Blender operator and batch runs share it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import torch

from posecore.bodies.base import BodyParams
from posecore.errors import ParameterError
from posecore.fitting.ambiguities import CANDIDATE_NAMES, alternatives

if TYPE_CHECKING:
    from posecore.fitting.loop import FitState, PoseFitter


SAME_BODY_M = 0.05
"""Candidates whose joints all lie within this distance (metres) of an earlier candidate's are that candidate
again (a straight limb flipped in depth): trying them twice would only let the brief fits' noise choose."""


def parse_hypotheses(text: str | int | None, preset_keep: int) -> int:
    """How many candidates a fit tries after screening: ``auto`` (or None) = the preset's, ``off`` = 0 (no search),
    an integer N >= 0 = N.

    Raises:
        ParameterError: anything else.
    """
    if text is None or text == "auto":
        return preset_keep
    if text == "off":
        return 0
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise ParameterError(f"--hypotheses must be auto, off or a number of candidates, got {text!r}") from None
    if value < 0 or value > len(CANDIDATE_NAMES):
        raise ParameterError(f"--hypotheses must be between 0 and {len(CANDIDATE_NAMES)}, got {value}")
    return value


@dataclass
class CandidateReport:
    """One candidate of a search, as ``result.json`` lists it.

    Attributes:
        name: see :data:`posecore.fitting.ambiguities.CANDIDATE_NAMES`.
        screen_objective: the objective of the candidate as made (before any fitting).
        objective: after its brief fit (None when screening dropped it).
        limit_excess_deg: largest excursion outside a joint's range after its brief fit (or as made), degrees.
        chosen: the fit was finished from this candidate.
        seconds: time spent on it (screening + brief fit).
        params: its brief-fit (or screened) parameters; not written to result.json.
        made: the candidate as made, before its brief fit.
    """

    name: str
    screen_objective: float
    objective: float | None = None
    limit_excess_deg: float = 0.0
    chosen: bool = False
    seconds: float = 0.0
    params: BodyParams | None = field(default=None, repr=False)
    made: BodyParams | None = field(default=None, repr=False)

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "screen_objective": round(self.screen_objective, 6),
            "objective": None if self.objective is None else round(self.objective, 6),
            "limit_excess_deg": round(self.limit_excess_deg, 2),
            "chosen": self.chosen,
            "seconds": round(self.seconds, 3),
        }


class HypothesisSearch:
    """The search of one fit (see the module docstring).

    Args:
        fitter: the fit the search starts (its problem, preset, albedo and pivot are shared with every candidate).
        keep: candidates brief-fitted after screening (>= 1; the start is always one of them).
        brief_iterations: steps of each brief fit.
    """

    def __init__(self, fitter: PoseFitter, keep: int, brief_iterations: int) -> None:
        if keep < 1:
            raise ParameterError(f"a hypothesis search keeps at least 1 candidate, got {keep}")
        self.fitter = fitter
        self.keep = keep
        self.brief_iterations = max(1, brief_iterations)
        self.reports: list[CandidateReport] = []
        self.chosen: CandidateReport | None = None
        self.seconds = 0.0

    def allowed(self, start: BodyParams, params: BodyParams) -> bool:
        """Whether a candidate changes only joints the fit may move (the root too when the look is whole-body)."""
        movable = set(self.fitter.free_joints)
        if self.fitter.problem.look.part is None:
            movable.add(0)
        changed = (params.rotations - start.rotations).abs().amax(dim=1) > 1e-7
        return all(j in movable for j in changed.nonzero().flatten().tolist())

    def candidates(self) -> dict[str, BodyParams]:
        """The start and its allowed alternatives, by name, each body once (see :data:`SAME_BODY_M`)."""
        fitter = self.fitter
        start = fitter.initial
        from posecore.fitting.limits import JointLimits

        limits = fitter.limits if fitter.limits is not None else JointLimits.for_body(fitter.problem.body)
        made = alternatives(fitter.problem.body, start, fitter.problem.look.camera, limits)
        kept: dict[str, BodyParams] = {}
        joints: list[torch.Tensor] = []
        body = fitter.problem.body
        for name, params in made.items():
            if name != "start" and not self.allowed(start, params):
                continue
            with torch.no_grad():
                where = body(params).joints
            if any(float((where - other).norm(dim=-1).max()) < SAME_BODY_M for other in joints):
                continue  # e.g. a straight knee flipped, legs swapped when both are at rest: the start again
            kept[name] = params
            joints.append(where)
        return kept

    def _sub_fitter(self, params: BodyParams, iterations: int) -> PoseFitter:
        from posecore.fitting.loop import PoseFitter

        fitter = self.fitter
        problem = replace(
            fitter.problem, initial=params, vertex_colors=fitter.vertex_colors, pivot=fitter.pivot,
            cues_for_search_only=False,
        )  # fmt: skip
        coarse = (iterations - 1) / iterations if iterations > 2 else 0.0
        preset = fitter.preset
        preset = replace(
            preset, iterations=iterations, patience=0, min_iterations=0, coarse_fraction=coarse, hypotheses=0,
            decay_patience=0, accept_gain=0.0, keypoint_weight=preset.hypothesis_keypoint_weight,
            direction_weight=preset.hypothesis_direction_weight,
        )  # fmt: skip
        sub = PoseFitter(problem, preset)
        sub.levels = fitter.levels  # same photo, mask, crop and look: share the targets and pyramids
        return sub

    def _limit_excess_deg(self, params: BodyParams) -> float:
        limits = self.fitter.limits
        if limits is None or limits.joints.numel() == 0:
            return 0.0
        return limits.max_excess_deg(params.rotations)

    def steps(self) -> Iterator[FitState]:
        """Screen, brief-fit and choose, yielding each evaluated state (``phase="hypotheses"``); afterwards
        :attr:`chosen` holds the winner and :attr:`reports` every candidate. The first state is the start's."""
        begin = time.perf_counter()
        for name, params in self.candidates().items():
            t0 = time.perf_counter()
            state = next(iter(self._sub_fitter(params, 0).steps()))
            report = CandidateReport(name, state.loss, params=params, made=params, seconds=time.perf_counter() - t0)
            report.limit_excess_deg = self._limit_excess_deg(params)
            self.reports.append(report)
            yield _tagged(state, begin)
        start = self.reports[0]
        ranked = sorted(self.reports[1:], key=lambda r: r.screen_objective)
        for report in [start, *ranked[: self.keep - 1]]:
            t0 = time.perf_counter()
            final = None
            for state in self._sub_fitter(report.params, self.brief_iterations).steps():
                final = state
                if state.final:
                    yield _tagged(state, begin)
            report.objective = final.loss
            report.params = final.params
            report.limit_excess_deg = self._limit_excess_deg(final.params)
            report.seconds += time.perf_counter() - t0
        fitted = [r for r in self.reports if r.objective is not None]
        best = min(fitted, key=lambda r: r.objective)
        # Another reading of the photo replaces the start only when it explains it clearly better: near-ties are
        # noise of the brief fits (and of the landmarks), and the start is what the user gave.
        margin = self.fitter.preset.hypothesis_margin
        self.chosen = best if best.objective < start.objective * (1 - margin) else start
        self.chosen.chosen = True
        self.seconds = time.perf_counter() - begin

    def summary(self) -> dict:
        """The ``hypotheses`` block of ``result.json``: every candidate with its scores, and the winner."""
        return {
            "kept": self.keep,
            "brief_iterations": self.brief_iterations,
            "chosen": None if self.chosen is None else self.chosen.name,
            "seconds": round(self.seconds, 3),
            "candidates": [r.as_dict() for r in self.reports],
        }

    def alternatives_ranked(self) -> list[CandidateReport]:
        """The brief-fitted candidates, best first (what the Blender button cycles through)."""
        return sorted((r for r in self.reports if r.objective is not None), key=lambda r: r.objective)


def _tagged(state: FitState, begin: float) -> FitState:
    return replace(state, phase="hypotheses", final=False, elapsed_s=time.perf_counter() - begin)
