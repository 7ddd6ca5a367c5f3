"""SMPL-X parameters as others read them (smplx package keys), written by Blender's "Save Fit"."""

from __future__ import annotations

import json

import numpy as np
import torch

from posecore.bodies import load_body_model
from posecore.io.init_files import read_init
from posecore.results import smplx_parameters, write_smplx_parameters


def test_smplx_parameters_round_trip_and_drive_the_smplx_package(synthetic_smplx_dir, tmp_path) -> None:
    body = load_body_model(f"smplx:{synthetic_smplx_dir}:female")
    params = body.default_params()
    generator = torch.Generator().manual_seed(5)
    params.rotations = 0.3 * torch.randn(55, 3, generator=generator)
    params.translation = torch.tensor([0.1, -0.2, 2.5])
    params.shape = 0.5 * torch.randn(params.shape.shape, generator=generator)
    params.expression = 0.2 * torch.randn(params.expression.shape, generator=generator)
    arrays = smplx_parameters(params, gender="female")
    assert arrays["body_pose"].shape == (1, 63) and arrays["left_hand_pose"].shape == (1, 45)
    write_smplx_parameters(tmp_path / "fit_smplx.npz", tmp_path / "fit_smplx.json", arrays)
    assert json.loads((tmp_path / "fit_smplx.json").read_text())["gender"] == "female"

    # The keys drive the smplx package itself (flat_hand_mean=True, full axis-angle hands) to the same body.
    tensors = {k: torch.from_numpy(np.asarray(v)) for k, v in arrays.items() if k not in ("gender", "flat_hand_mean")}
    with torch.no_grad():
        theirs = body.smplx_model(**tensors, return_verts=True).vertices[0]
        ours = body(params).vertices
    assert float((theirs - ours).abs().max()) < 1e-5

    # PoseFit reads both files back as an initialisation, hands absolute (flat_hand_mean recorded).
    for path in (tmp_path / "fit_smplx.npz", tmp_path / "fit_smplx.json"):
        init = read_init(path)
        assert not init.hand_pose_relative_to_mean and init.gender == "female"
        back = body.params_from_init(init)
        assert torch.allclose(back.rotations, params.rotations, atol=1e-6)
        assert torch.allclose(back.translation, params.translation, atol=1e-6)
        assert torch.allclose(back.shape, params.shape, atol=1e-6)
        assert torch.allclose(back.expression, params.expression, atol=1e-6)
