"""The fit's schedule: an early stop once the objective stops improving (never before ``min_iterations``, the
result still the best state), and coarse-to-fine iterations that render smaller but report full-size states."""

from __future__ import annotations

import pytest

from posecore.demo import make_demo_case
from posecore.errors import ParameterError
from posecore.fitting.look import Look
from posecore.fitting.loop import FitProblem, PoseFitter
from posecore.fitting.presets import get_preset
from posecore.render.raster import RasterRenderer


@pytest.fixture(scope="module")
def case(anny):
    return make_demo_case(anny, size=64)


def fit(anny, case, **overrides):
    preset = get_preset("fast").with_overrides(**overrides)
    return PoseFitter(FitProblem(anny, case.initial, case.target, Look(case.camera), RasterRenderer()), preset).run()


def test_early_stop_ends_the_fit_after_patience_without_progress(anny, case) -> None:
    # Demanding a 50% improvement every 5 iterations: after min_iterations nothing counts as progress.
    # One colour throughout (no re-estimate every 10 iterations: each changes the objective) and any gain kept,
    # so every state's loss is comparable and the result must be the lowest.
    states = fit(anny, case, iterations=60, patience=5, min_improvement=0.5, min_iterations=12, albedo_every=0,
                 accept_gain=0.0)  # fmt: skip
    last = states[-1]
    assert last.final and 12 < last.iteration < 60
    assert len(states) == last.iteration + 1  # one state per step, then the closing one
    assert last.loss == min(s.loss for s in states)  # the result is the best state seen (the last one too)
    assert fit(anny, case, iterations=20, patience=0)[-1].iteration == 20  # no early stop: the whole cap


def test_coarse_iterations_report_full_size_states_and_the_fit_still_improves(anny, case) -> None:
    states = fit(anny, case, iterations=24, coarse_fraction=0.5, patience=0)
    assert all(tuple(s.render.shape) == (64, 64, 3) and tuple(s.weight.shape) == (64, 64) for s in states)
    assert states[-1].loss < 0.8 * states[0].loss
    assert states[-1].best_iteration == 0 or states[-1].best_iteration >= 12  # coarse losses never compete


@pytest.mark.parametrize(
    "overrides", [{"coarse_fraction": 1.0}, {"coarse_scale": 0.0}, {"patience": -1}, {"min_iterations": -2}]
)
def test_bad_schedule_settings_are_refused(overrides) -> None:
    with pytest.raises(ParameterError):
        get_preset("fast").with_overrides(**overrides)
