"""Body models behind one interface (:class:`BodyModel`), chosen by a short spec string."""

from __future__ import annotations

import os

import numpy as np
import torch

from posecore.bodies.base import BodyModel, BodyOutput, BodyParams
from posecore.errors import ParameterError, shorten

__all__ = ["BodyModel", "BodyOutput", "BodyParams", "decode_vposer_init", "load_body_model", "params_from_init"]

VPOSER_HINT = (
    "give your VPoser folder with --vposer DIR (vposer_v1_0/, SMPLify-X's vposer_ckpt, or V02_05/) to decode it"
)


GENDERS = ("neutral", "male", "female")


def parse_smplx_spec(spec: str) -> tuple[str, str]:
    """``smplx:PATH`` or ``smplx:PATH:GENDER`` -> (PATH, gender). PATH may itself hold colons, as Windows paths
    do (``smplx:C:\\Users\\Ana\\models:female``): only a last ``:`` part that names a gender is split off.

    Raises:
        ParameterError: no PATH, or a last part that looks like a misspelt gender after an existing folder.
    """
    rest = spec[len("smplx:") :] if spec.startswith("smplx:") else spec
    gender = "neutral"
    head, _, tail = rest.rpartition(":")
    if head and tail.lower() in GENDERS:
        rest, gender = head, tail.lower()
    elif head and tail.isalpha() and os.path.exists(head) and not os.path.exists(rest):
        raise ParameterError(
            f"--model {shorten(spec)}: unknown SMPL-X gender {shorten(tail, 40)!r}: use neutral, male or female"
        )
    if not rest:
        raise ParameterError("--model smplx:DIR needs the folder (or .npz file) of your SMPL-X model")
    return rest, gender


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

        rest, gender = parse_smplx_spec(spec)
        return SmplxBody(rest, gender=gender, device=device)
    raise ParameterError(f"unknown body model {shorten(spec)!r}: use 'anny' or 'smplx:DIR'")


def params_from_init(body: BodyModel, init, vposer=None) -> BodyParams:
    """Body parameters from a :class:`posecore.io.init_files.BodyInit`.

    SMPL-X models expand hand PCA and mean-relative hands themselves; other models take joint rotations by
    name (a PoseFit ``fit.npz`` written for the same model). Joints missing from the file stay at rest.

    Args:
        body: the body model.
        init: the initialisation.
        vposer: a :class:`posecore.bodies.vposer.VPoserDecoder` to decode a VPoser-coded ``body_pose``
            (``init.vposer_code``); required for such files.

    Raises:
        InputFileError: a VPoser-coded file without ``vposer`` (the message says how to give it).
        ParameterError: joints the model does not have, wrong shapes.
    """
    init = decode_vposer_init(init, vposer)
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


def decode_vposer_init(init, vposer):
    """``init`` with its VPoser code (if any) decoded into the 21 body joint rotations.

    Args:
        init: a :class:`posecore.io.init_files.BodyInit` (returned unchanged when it has no ``vposer_code``).
        vposer: a :class:`posecore.bodies.vposer.VPoserDecoder`, or None.

    Returns:
        A copy whose ``joint_rotations`` hold left_hip .. right_wrist = ``vposer.decode(code)`` (axis-angle,
        radians) and whose ``vposer_code`` is None.
    """
    code = getattr(init, "vposer_code", None)
    if code is None:
        return init
    from dataclasses import replace

    from posecore.bodies.smplx_joints import SMPLX_BODY_JOINT_NAMES
    from posecore.errors import InputFileError

    if vposer is None:
        raise InputFileError(
            init.source,
            f"body_pose has 32 values: a VPoser latent code (SMPLify-X's default, use_vposer: True), not 63 "
            f"joint angles; {VPOSER_HINT}",
        )
    with torch.no_grad():
        decoded = vposer.decode(torch.as_tensor(np.asarray(code, np.float32)).reshape(32)).numpy()
    rotations = dict(init.joint_rotations)
    for name, value in zip(SMPLX_BODY_JOINT_NAMES[1:22], decoded, strict=True):
        rotations[name] = value.astype(np.float32)
    return replace(init, joint_rotations=rotations, vposer_code=None)
