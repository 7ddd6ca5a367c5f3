"""The preset-sweep benchmark's variant syntax (the sweep itself runs the accuracy benchmark's fit_scene)."""

from __future__ import annotations

import pytest

from posecore.bench.preset_sweep import parse_variant, table
from posecore.errors import ParameterError


def test_variants_are_typed_like_the_preset_fields() -> None:
    label, changes = parse_variant("24 px, init prior: reference_size=24 prior_reference=init pose_lr=1e-4")
    assert label == "24 px, init prior"
    assert changes == {"reference_size": 24, "prior_reference": "init", "pose_lr": 1e-4}
    from posecore.fitting.presets import get_preset

    assert get_preset("paper").with_overrides(**changes).reference_size == 24


@pytest.mark.parametrize("text", ["x: nonsense=1", "x: reference_size", "x: reference_size="])
def test_bad_variants_are_refused(text: str) -> None:
    with pytest.raises(ParameterError, match="FIELD=VALUE"):
        parse_variant(text)


def test_table_rows() -> None:
    text = table([("a", 15, 2, 0, 111.2, 47.9, 10.0)])
    assert "| a | 15 | 2 | 111.2 -> 47.9 mm |" in text
