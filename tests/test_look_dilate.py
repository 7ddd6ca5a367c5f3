"""A selective fit's counted region: the part's pixels grown by a margin, equal to a square max-pool."""

from __future__ import annotations

import pytest
import torch

from posecore.fitting.look import dilate

CASES = [(64, 48, 5, 0.02), (33, 70, 15, 0.001), (20, 20, 0, 0.3), (16, 24, 40, 0.01)]


@pytest.mark.parametrize(("height", "width", "radius", "density"), CASES)
def test_dilate_equals_a_square_max_pool(height, width, radius, density) -> None:
    g = torch.Generator().manual_seed(radius)
    mask = torch.rand(height, width, generator=g) < density
    mask[0, -1] = True  # a corner pixel: the box must be clipped at the border
    expected = torch.nn.functional.max_pool2d(mask.float()[None, None], 2 * radius + 1, 1, radius)[0, 0]
    assert torch.equal(dilate(mask, radius), expected)


def test_dilate_of_nothing_is_nothing() -> None:
    assert not dilate(torch.zeros(10, 12, dtype=torch.bool), 3).any()
