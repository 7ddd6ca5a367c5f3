"""Body models behind one interface (:class:`BodyModel`), chosen by a short spec string."""

from __future__ import annotations

import os

import numpy as np
import torch

from posecore.bodies.base import BodyModel, BodyOutput, BodyParams
from posecore.errors import ParameterError, shorten

__all__ = ["BodyModel", "BodyOutput", "BodyParams", "load_body_model", "params_from_init"]


def load_body_model(spec: str, device: str = "cpu") -> BodyModel:
    """Load a body model from a spec.

    Args:
        spec: ``anny`` (the free built-in model) or ``smplx:PATH`` / ``smplx:PATH:GENDER`` where PATH is a
            folder holding ``smplx/SMPLX_NEUTRAL.npz`` (or ``SMPLX_NEUTRAL.npz``) or an ``.npz`` file.
    """
    if spec == "anny":
        from posecore.bodies.anny_body import AnnyBody

        return AnnyBody(device=device)
    if spec.startswith("smplx:"):
        from posecore.bodies.smplx_body import SmplxBody

        rest = spec[len("smplx:") :]
        gender = "neutral"
        head, _, tail = rest.rpartition(":")
        if head and tail.lower() in ("neutral", "male", "female"):
            rest, gender = head, tail.lower()
        elif head and tail.isalpha() and os.path.exists(head) and not os.path.exists(rest):
            raise ParameterError(
                f"--model {shorten(spec)}: unknown SMPL-X gender {shorten(tail, 40)!r}: use neutral, male or female"
            )
        if not rest:
            raise ParameterError("--model smplx:DIR needs the folder (or .npz file) of your SMPL-X model")
        return SmplxBody(rest, gender=gender, device=device)
    raise ParameterError(f"unknown body model {shorten(spec)!r}: use 'anny' or 'smplx:DIR'")


def params_from_init(body: BodyModel, init) -> BodyParams:
    """Body parameters from a :class:`posecore.io.init_files.BodyInit`.

    SMPL-X models expand hand PCA and mean-relative hands themselves; other models take joint rotations by
    name (a PoseFit ``fit.npz`` written for the same model). Joints missing from the file stay at rest.
    """
    own = getattr(body, "params_from_init", None)
    if own is not None:
        return own(init)
    names = set(init.joint_rotations)
    unknown = sorted(names - set(body.joint_names))
    if unknown:
        hint = " (an SMPL-X initialisation needs --model smplx:DIR)" if "left_hip" in names else ""
        raise ParameterError(
            f"{init.source}: joints {unknown[:6]}{'...' if len(unknown) > 6 else ''} "
            f"are not joints of {body.name}{hint}"
        )
    params = body.default_params()
    params.rotations = torch.from_numpy(np.asarray(init.rotations_array(body.joint_names), np.float32))
    params.translation = torch.as_tensor(np.asarray(init.translation, np.float32)).reshape(3)
    if init.betas is not None:
        shape = torch.as_tensor(np.asarray(init.betas, np.float32)).reshape(-1)
        if shape.numel() != body.num_shape:
            raise ParameterError(
                f"{init.source}: shape has {shape.numel()} values, {body.name} expects {body.num_shape}"
            )
        params.shape = shape
    body.check_params(params, init.source)
    return params
