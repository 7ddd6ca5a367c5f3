"""Anny, the free body model (Apache-2.0 code, CC0 MakeHuman data, on PyPI), behind :class:`BodyModel`.

Anny's frame is Z-up, the body facing -Y, metres, root joint at the origin. Pose deltas use Anny's
``local-ref`` parameterisation: each joint's rotation is expressed in world-aligned axes about the joint's
head, like SMPL-X, so a (J, 3) axis-angle table drives it. Shape = Anny's phenotype values in [0, 1]
(gender, age, muscle, weight, height, proportions), 0.5 = average.

The first instantiation of Anny builds its model data once per machine and caches it (about 50 MB, built by
:mod:`posecore.bodies.anny_cache`; anny alone writes 790 MB and takes minutes); :func:`anny_cache_dir`
decides where it lives.
"""

from __future__ import annotations

import os
import pathlib

import torch

from posecore.bodies.base import BodyModel, BodyOutput, BodyParams
from posecore.bodies.skinning import SparseSkinningWeights, linear_blend_skinning
from posecore.errors import BackendUnavailableError
from posecore.rotations import axis_angle_to_matrix

# The joints that make up the paper's "body pose" theta_b for Anny: the trunk and limbs, no fingers,
# toes, eyes or twist bones (twist bones follow their parents). Order mirrors SMPL-X's 21 body joints.
ANNY_BODY_JOINTS = [
    "upperleg01.L",
    "upperleg01.R",
    "spine05",
    "lowerleg01.L",
    "lowerleg01.R",
    "spine04",
    "foot.L",
    "foot.R",
    "spine03",
    "spine02",
    "spine01",
    "neck01",
    "clavicle.L",
    "clavicle.R",
    "head",
    "upperarm01.L",
    "upperarm01.R",
    "lowerarm01.L",
    "lowerarm01.R",
    "wrist.L",
    "wrist.R",
]

# SMPL-X body-joint name -> Anny bone, for cross-model metrics and retargeting initialisations.
SMPLX_TO_ANNY = {
    "pelvis": "root",
    "left_hip": "upperleg01.L",
    "right_hip": "upperleg01.R",
    "spine1": "spine05",
    "left_knee": "lowerleg01.L",
    "right_knee": "lowerleg01.R",
    "spine2": "spine04",
    "left_ankle": "foot.L",
    "right_ankle": "foot.R",
    "spine3": "spine02",
    "neck": "neck01",
    "left_collar": "clavicle.L",
    "right_collar": "clavicle.R",
    "head": "head",
    "left_shoulder": "upperarm01.L",
    "right_shoulder": "upperarm01.R",
    "left_elbow": "lowerarm01.L",
    "right_elbow": "lowerarm01.R",
    "left_wrist": "wrist.L",
    "right_wrist": "wrist.R",
}


def anny_cache_dir() -> pathlib.Path:
    """Where Anny's build cache lives: ``$ANNY_CACHE_DIR``, else ``$POSEFIT_CACHE_DIR/anny``,
    else ``~/.cache/posefit/anny``. The same folder is reused by the CLI, the tests and CI."""
    if os.environ.get("ANNY_CACHE_DIR"):
        return pathlib.Path(os.environ["ANNY_CACHE_DIR"])
    root = os.environ.get("POSEFIT_CACHE_DIR")
    base = pathlib.Path(root) if root else pathlib.Path.home() / ".cache" / "posefit"
    return base / "anny"


_MODEL_CACHE: dict[str, object] = {}


def _load_anny_module():
    """Import anny with its cache directory set; one Anny instance per process."""
    if "anny" in _MODEL_CACHE:
        return _MODEL_CACHE["anny"]
    cache = anny_cache_dir()
    os.environ.setdefault("ANNY_CACHE_DIR", str(cache))
    try:
        import anny
        import anny.paths
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise BackendUnavailableError(
            f"the free body model needs the 'anny' package: pip install anny==0.6.2 ({exc})"
        ) from exc
    anny.paths.set_anny_cache_path(cache)
    cache.mkdir(parents=True, exist_ok=True)
    from posecore.bodies import anny_cache

    with anny_cache.fast_build():  # the first time on a machine: builds only the final model data, fast
        # PoseFit skins with its own sparse product (posecore.bodies.skinning), never with Anny's: plain LBS
        # keeps anny from importing NVIDIA Warp (149 MB on Linux), so the extension's zip does not bundle it.
        model = anny.Anny(skinning_method="lbs")  # later: loads it in under a second
    model = model.to(torch.float32)
    _MODEL_CACHE["anny"] = model
    return model


class AnnyBody(BodyModel):
    """The Anny full-body model (13,718 vertices, 27,420 triangles, 104 joints).

    Args:
        device: torch device for the model's buffers.
    """

    name = "anny"

    def __init__(self, device: torch.device | str = "cpu") -> None:
        model = _load_anny_module()
        self._model = model.to(device)
        self.device = torch.device(device)
        self.joint_names = list(model.bone_labels)
        self.parents = [int(p) if p is not None and p >= 0 else -1 for p in model.bone_parents]
        self.faces = model.faces.to(device=device, dtype=torch.int64)
        bone_weights = model.vertex_bone_weights.to(device=device, dtype=torch.float32)  # (V, 9)
        bone_indices = model.vertex_bone_indices.to(device=device, dtype=torch.int64)  # (V, 9)
        dense = torch.zeros(model.template_vertices.shape[0], len(self.joint_names), device=device)
        self.skinning_weights = dense.scatter_add_(1, bone_indices, bone_weights)  # (V, J)
        self.body_joints = list(ANNY_BODY_JOINTS)
        self.up_axis = torch.tensor([0.0, 0.0, 1.0])
        self.shape_names = list(model.phenotype_labels)
        self.num_shape = len(self.shape_names)
        self.num_expression = 0
        self._rest_cache: tuple[torch.Tensor, dict[str, torch.Tensor]] | None = None

    def default_shape(self) -> torch.Tensor:
        """(S,) 0.5 for every phenotype: the average body."""
        return torch.full((self.num_shape,), 0.5)

    def _rest_model(self, shape: torch.Tensor) -> dict[str, torch.Tensor]:
        """Anny's rest model for one shape; cached while the shape is a constant (the common case)."""
        if not shape.requires_grad and self._rest_cache is not None and torch.equal(self._rest_cache[0], shape):
            return self._rest_cache[1]
        coeffs = self._model._get_phenotype_blendshape_coefficients(
            shape[None].to(self._model.dtype),
            torch.zeros(1, len(self._model.local_change_labels), dtype=self._model.dtype, device=shape.device),
            torch.zeros(1, len(self._model.facial_action_labels), dtype=self._model.dtype, device=shape.device),
        )
        rest = self._model.get_rest_model(coeffs)
        if not shape.requires_grad:
            self._rest_cache = (shape.detach().clone(), rest)
        return rest

    def bind_pose(self, shape: torch.Tensor) -> dict[str, torch.Tensor]:
        """Anny's bind (skinning rest) pose at ``shape``, for building rigs in DCC tools (see posecore.rig).

        Returns:
            rest_vertices (V, 3) and rest_bone_poses (J, 4, 4) (bone frames: head + orientation) of the bind
            pose, metres, Z-up; reference_orientations (J, 3, 3): the orientations zero rotations give
            (Anny's ``local-ref`` reference pose, which is not the bind pose).
        """
        with torch.no_grad():
            rest = self._rest_model(shape.detach().to(self.device, torch.float32))
        reference = self._model.reference_bone_orientations
        poses = rest["rest_bone_poses"][0].float()
        if reference is None:
            reference = poses[:, :3, :3]
        return {
            "rest_vertices": rest["rest_vertices"][0].float(),
            "rest_bone_poses": poses,
            "reference_orientations": reference.float(),
        }

    def _sparse_weights(self) -> SparseSkinningWeights:
        """The skinning weights as sparse matrices (built once, on the first pose; CPU)."""
        sparse = getattr(self, "_sparse_skinning", None)
        if sparse is None or sparse.shape != tuple(self.skinning_weights.shape):
            sparse = self._sparse_skinning = SparseSkinningWeights(self.skinning_weights)
        return sparse

    def forward(self, params: BodyParams) -> BodyOutput:
        """Pose Anny.

        Args:
            params: rotations (104, 3) axis-angle (world-aligned axes about each joint's head), translation (3,)
                metres, shape (6,) phenotypes in [0, 1].

        Returns:
            vertices (13718, 3), joints (104, 3) in metres, Z-up; joint_rotations_world (104, 3, 3).
        """
        rest = self._rest_model(params.shape.to(self.device))
        num = self.num_joints
        delta = torch.eye(4, device=self.device).repeat(1, num, 1, 1)
        delta = delta.clone()
        delta[0, :, :3, :3] = axis_angle_to_matrix(params.rotations.to(self.device))
        transforms, poses = self._model.get_bone_transforms(delta, rest["rest_bone_poses"])
        transforms = transforms[0]  # (J, 4, 4): rest -> posed
        rest_vertices = rest["rest_vertices"][0]
        vertices = linear_blend_skinning(self._sparse_weights(), transforms, rest_vertices)
        translation = params.translation.to(self.device)
        joints = poses[0, :, :3, 3] + translation
        return BodyOutput(vertices=vertices + translation, joints=joints, joint_rotations_world=poses[0, :, :3, :3])


def _main(argv: list[str] | None = None) -> int:
    """``python -m posecore.bodies.anny_body --ensure-cache``: build Anny's cache if it is not there yet."""
    import argparse
    import sys
    import time

    parser = argparse.ArgumentParser(description="Build (once) the free Anny body model's cache.")
    parser.add_argument("--ensure-cache", action="store_true", help="build the cache if missing")
    args = parser.parse_args(argv)
    if not args.ensure_cache:
        parser.print_help()
        return 0
    from posecore.bodies import anny_cache

    cache = anny_cache_dir()
    fresh = not anny_cache.is_ready(cache)
    if fresh:
        print(
            f"setup: building the Anny body model's data in {cache} (once per machine)...", file=sys.stderr, flush=True
        )
    start = time.perf_counter()
    body = AnnyBody()
    freed = anny_cache.prune(cache)  # intermediate files of an earlier plain anny build
    if fresh or freed:
        print(
            f"setup: Anny ready ({body.num_vertices} vertices) in {time.perf_counter() - start:.1f} s; cache "
            f"{anny_cache.cache_size(cache) / 2**20:.0f} MiB in {cache}"
            + (f" ({freed / 2**20:.0f} MiB of intermediate files removed)" if freed else ""),
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
