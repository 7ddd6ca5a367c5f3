"""The one optimisation loop behind the CLI, the Blender modal operator and batch runs.

:class:`PoseFitter` holds a fitting problem; :meth:`PoseFitter.steps` is a generator that performs one
optimisation step per ``next()`` and yields a :class:`FitState`. Callers drive it at their own pace (a
terminal progress bar, a Blender timer, a batch script) and may stop at any time: the initial parameters
are never modified, so a cancelled fit restores exactly by using ``fitter.initial``.

A fit never hands back something worse than it started from: the closing state (``final=True``) holds the
parameters with the lowest objective seen over the whole run, the initialisation included (iteration 0), not
the last iterate. ``FitState.best_iteration`` says which iteration that was.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import torch

from posecore.bodies.base import BodyModel, BodyParams
from posecore.bodies.vposer import LATENT_DIM, VPoserDecoder
from posecore.cameras.orbit import orbit_camera
from posecore.cameras.pinhole import PinholeCamera
from posecore.errors import ParameterError, PoseFitError
from posecore.fitting.directions import BoneDirections, direction_loss
from posecore.fitting.hypotheses import HypothesisSearch
from posecore.fitting.keypoints import Keypoints2D, keypoint_loss
from posecore.fitting.latent import VPOSER_JOINTS, LatentPose
from posecore.fitting.limits import JointLimits
from posecore.fitting.look import Look
from posecore.fitting.losses import PyramidL2, asymmetric_silhouette, image_l2, pose_prior
from posecore.fitting.presets import Preset
from posecore.render.raster import rasterize
from posecore.render.scene import Lighting, RenderOutput, RenderScene

DEFAULT_ALBEDO = (0.8, 0.8, 0.8)


def fit_lighting() -> Lighting:
    """The lights a fit renders with by default: half ambient, half a headlight.

    A photo's lighting is unknown. Strong directional shading that does not match it pulls the pose to
    match shading instead of shape; a half-ambient light keeps the body's outline and the outlines of limbs
    in front of the body (darkened by the headlight at grazing angles) as the main signal. Measured on the
    demo: with a pure headlight, an arm-only error of 25 degrees made the other joints drift (MPJPE 12 ->
    30 mm); with this lighting the same fit improved (12 -> 8 mm).
    """
    return Lighting(ambient=torch.full((3,), 0.5), headlight=True, headlight_intensity=torch.full((3,), 0.5))


@dataclass
class _Resolution:
    """What a fit compares at one resolution: camera, target (H, W, 3), crop weight (H, W), pyramid loss."""

    camera: PinholeCamera
    target: torch.Tensor
    crop_weight: torch.Tensor
    pyramid: PyramidL2 | None
    mask: torch.Tensor | None = None


def _downsample(image: torch.Tensor, camera: PinholeCamera) -> torch.Tensor:
    """(H, W, C) -> (camera.height, camera.width, C), area-averaged (antialiased bilinear)."""
    x = image.permute(2, 0, 1)[None]
    y = torch.nn.functional.interpolate(x, size=(camera.height, camera.width), mode="bilinear", antialias=True)
    return y[0].permute(1, 2, 0).contiguous()


def _upsample(image: torch.Tensor, camera: PinholeCamera) -> torch.Tensor:
    """(h, w, C) -> (camera.height, camera.width, C), bilinear."""
    x = image.permute(2, 0, 1)[None]
    y = torch.nn.functional.interpolate(x, size=(camera.height, camera.width), mode="bilinear", align_corners=False)
    return y[0].permute(1, 2, 0).contiguous()


ALBEDO_PARTS = ("torso", "arms", "lower_body", "head", "hands")
"""Parts that get their own albedo with ``preset.part_albedo`` (a later part overrides an earlier one)."""


def vertex_part_labels(body: BodyModel) -> torch.Tensor:
    """(V,) int64: the index in :data:`ALBEDO_PARTS` of each vertex's part (0, the torso, by default)."""
    from posecore.fitting.parts import part_vertex_mask

    labels = torch.zeros(body.num_vertices, dtype=torch.int64)
    for index, part in enumerate(ALBEDO_PARTS):
        labels[part_vertex_mask(body, part)] = index
    return labels


class FitDivergedError(PoseFitError):
    """The loss or the parameters became NaN/infinite."""


@dataclass
class FitState:
    """The fit at one iteration.

    Attributes:
        iteration: 0-based index of the parameters that were rendered (``params``). The last state of a
            fit (``final=True``) has iteration == number of steps taken: it is the fit's result, the best
            parameters seen (see ``best_iteration``), not necessarily the last iterate.
        loss, image_loss, prior_loss: the objective of Eq. 5 and its two terms for ``params``.
        params: body parameters rendered at this iteration (detached copies).
        camera_angle: (3,) orbit rotation vector alpha, radians.
        camera: the camera after the orbit (detached).
        render: (H, W, 3) the rendered image (detached), clamped to [0, 1].
        weight: (H, W) the pixels that counted in the image loss.
        elapsed_s: wall time since the fit started, seconds.
        final: True for the closing state after the last step (the fit's result).
        best_iteration: the iteration whose parameters had the lowest objective so far (0 = the
            initialisation); on the final state, the iteration its ``params`` come from.
        last_loss: on the final state, the objective of the last iterate (>= ``loss``); else equal to ``loss``.
        keypoint_loss: the 2D keypoint term (before its weight; 0 without keypoints).
        limit_loss: the joint-limit penalty (before its weight; see :mod:`posecore.fitting.limits`).
        phase: "fit" for the optimisation's states, "hypotheses" for the states of the hypothesis search that
            comes first (:mod:`posecore.fitting.hypotheses`; the first of them is the initialisation's).
    """

    iteration: int
    loss: float
    image_loss: float
    prior_loss: float
    params: BodyParams
    camera_angle: torch.Tensor
    camera: PinholeCamera
    render: torch.Tensor
    weight: torch.Tensor
    elapsed_s: float
    final: bool = False
    best_iteration: int = 0
    last_loss: float = float("nan")
    keypoint_loss: float = 0.0
    limit_loss: float = 0.0
    phase: str = "fit"


@dataclass
class FitProblem:
    """Everything a fit needs.

    Attributes:
        body: the body model.
        initial: the initialisation (never modified).
        target: (H, W, 3) target photo in [0, 1], the size of ``look.camera``.
        look: camera, part and crop (see :class:`Look`).
        renderer: a backend with ``render(RenderScene) -> RenderOutput``.
        person_mask: optional (H, W) in [0, 1] marking the person in the photo. Outside it the photo is replaced
            by ``background`` before comparing (see :attr:`PoseFitter.target`): the photo's background content
            cannot drive the fit, yet a limb the fit moves off the person is still penalised.
        vertex_colors: (V, 3) albedo, or None to estimate one colour from the target (see ``estimate_albedo``).
        lighting: the lights (default: :func:`fit_lighting`).
        background: (3,) colour of empty pixels (black by default).
        pivot: (3,) world point the camera orbits; default: the root joint of the initial pose.
        candidate_joints: joints the fit may rotate (default: the model's body joints, the paper's theta_b).
        vposer: a :class:`posecore.bodies.vposer.VPoserDecoder` (SMPL-X bodies): lets theta_b be VPoser's
            32-number latent code (upstream parameter ``vposer``), as the paper optimised it.
        initial_code: (32,) the initialisation's VPoser code (a SMPLify-X result's body_pose); default: the
            code whose decoded pose is closest to the initial body pose (:meth:`VPoserDecoder.encode`).
        keypoints: optional 2D landmarks of some joints (detected, see :mod:`posecore.detect`); with a preset's
            ``keypoint_weight`` > 0 they add the robust keypoint term to Eq. 5.
        bone_directions: optional limb bone directions from the detector's 3D landmarks (the depth cue, see
            :mod:`posecore.fitting.directions`); with a preset's ``direction_weight`` > 0 they add that term.
        cues_for_search_only: the keypoints and bone directions only score the hypothesis search's candidates
            (its brief fits use them with the preset's ``hypothesis_*_weight``); the fit itself leaves them out.
            For a fit from an init file: the landmarks tell the sides apart, the photo decides the rest.
        albedo_mask: (H, W) in [0, 1] where the photo shows the person, used only to estimate the albedo (when
            there is no ``person_mask``): the colour then does not depend on where the start put the limbs.
    """

    body: BodyModel
    initial: BodyParams
    target: torch.Tensor
    look: Look
    renderer: object
    person_mask: torch.Tensor | None = None
    vertex_colors: torch.Tensor | None = None
    lighting: Lighting = field(default_factory=fit_lighting)
    background: torch.Tensor = field(default_factory=lambda: torch.zeros(3))
    pivot: torch.Tensor | None = None
    candidate_joints: list[int] | None = None
    vposer: VPoserDecoder | None = None
    initial_code: torch.Tensor | None = None
    keypoints: Keypoints2D | None = None
    bone_directions: BoneDirections | None = None
    cues_for_search_only: bool = False
    albedo_mask: torch.Tensor | None = None

    def validate(self) -> None:
        """Raise :class:`ParameterError` for inconsistent or non-finite input."""
        self.body.check_params(self.initial, "initialisation")
        cam = self.look.camera
        if tuple(self.target.shape) != (cam.height, cam.width, 3):
            raise ParameterError(
                f"target image is {tuple(self.target.shape)}, expected ({cam.height}, {cam.width}, 3) "
                "to match the camera resolution"
            )
        if not torch.isfinite(self.target).all():
            raise ParameterError("target image contains NaN or infinite values")
        if self.person_mask is not None and tuple(self.person_mask.shape) != (cam.height, cam.width):
            raise ParameterError(
                f"person mask is {tuple(self.person_mask.shape)}, expected ({cam.height}, {cam.width})"
            )
        if not (torch.isfinite(cam.rotation).all() and torch.isfinite(cam.translation).all()):
            raise ParameterError("camera pose contains NaN or infinite values")
        if self.initial_code is not None and (
            tuple(self.initial_code.shape) != (LATENT_DIM,) or not torch.isfinite(self.initial_code).all()
        ):
            raise ParameterError(f"initial VPoser code must be {LATENT_DIM} finite numbers")
        if self.keypoints is not None:
            self.keypoints.validate(self.body.num_joints)


def effective_preset(preset: Preset, problem: FitProblem) -> Preset:
    """The preset a fit of ``problem`` runs: with ``latent_pose_when_available``, a VPoser decoder and an SMPL-X
    body, theta_b is optimised as VPoser's code ("vposer") instead of axis-angle ("pose")."""
    latent_ok = problem.vposer is not None and set(VPOSER_JOINTS) <= set(problem.body.joint_names)
    if preset.latent_pose_when_available and latent_ok and "pose" in preset.optimise:
        return preset.with_overrides(optimise=tuple("vposer" if o == "pose" else o for o in preset.optimise))
    return preset


class PoseFitter:
    """Optimise upstream parameters (pose, camera angle, ...) of a body to match a photo (Eq. 5).

    Args:
        problem: the fitting problem (validated here).
        preset: optimisation settings.
    """

    def __init__(self, problem: FitProblem, preset: Preset) -> None:
        preset.validate()
        problem.validate()
        preset = effective_preset(preset, problem)
        self.problem = problem
        self.preset = preset
        body = problem.body
        self.initial = problem.initial.clone()
        candidates = problem.candidate_joints if problem.candidate_joints is not None else body.body_joint_indices
        if "global_orient" in preset.optimise and 0 not in candidates:
            candidates = [0, *candidates]
        self.free_joints = problem.look.free_joints(body, candidates)
        self.look_faces = problem.look.face_mask(body)
        self.crop_weight = problem.look.crop_weight()
        self.target = problem.target
        if problem.person_mask is not None:
            # Counting only the masked pixels would let limbs wander off the person unpenalised; instead the
            # photo's background becomes the render's background colour.
            mask = problem.person_mask.clamp(0, 1)[..., None]
            self.target = mask * problem.target + (1 - mask) * problem.background.to(problem.target)
        with torch.no_grad():
            posed = body(self.initial)
        self.pivot = problem.pivot if problem.pivot is not None else posed.joints[0].detach().clone()
        self.vertex_colors = problem.vertex_colors
        if self.vertex_colors is None:
            self.vertex_colors = self.estimate_albedo(posed.vertices)
        self._check_visible(posed.vertices)
        self.latent = LatentPose.build(problem, self.free_joints, self.initial) if "vposer" in preset.optimise else None
        self.limits = JointLimits.for_body(body) if preset.limit_weight > 0 else None
        self.levels: dict[float, _Resolution] = {}
        self.search: HypothesisSearch | None = None

    # ------------------------------------------------------------------ helpers
    def scene(self, vertices: torch.Tensor, camera: PinholeCamera) -> RenderScene:
        p = self.problem
        face_mask = self.look_faces if p.look.render_part_only else None
        return RenderScene(
            vertices=vertices,
            faces=p.body.faces,
            vertex_colors=self.vertex_colors,
            camera=camera,
            lighting=p.lighting,
            background=p.background,
            face_mask=face_mask,
        )

    def face_index(self, output: RenderOutput, vertices: torch.Tensor, camera: PinholeCamera) -> torch.Tensor:
        """(H, W) face seen at each pixel: from the renderer, or from a z-buffer pass for backends without it."""
        if output.face_index is not None:
            return output.face_index
        uv, depth = camera.project(vertices.detach())
        return rasterize(uv, depth, self.problem.body.faces, camera.width, camera.height, cull_backfaces=True)

    def weight_for(
        self,
        output: RenderOutput,
        vertices: torch.Tensor,
        camera: PinholeCamera,
        crop_weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(H, W) pixels counted by the image loss: crop x (the part's region if selective).

        ``crop_weight``: the crop at the camera's resolution (default: the fit's own, :attr:`crop_weight`)."""
        weight = self.crop_weight if crop_weight is None else crop_weight
        if self.look_faces is not None and not self.problem.look.render_part_only:
            region = self.problem.look.part_region(self.face_index(output, vertices, camera), self.look_faces)
            weight = weight * region
        return weight

    def estimate_albedo(self, vertices: torch.Tensor, camera: PinholeCamera | None = None) -> torch.Tensor:
        """(V, 3) albedo: target colour / rendered shading over pixels both the body and mask cover.

        One colour for the whole body, or with ``preset.part_albedo`` one per body part (torso, arms, legs, head,
        hands: a shirt's edge against trousers then carries information), each from the pixels its faces cover
        (a part with too few pixels takes the whole body's colour). Falls back to :data:`DEFAULT_ALBEDO` when the
        initial render covers too few target pixels.
        """
        p = self.problem
        ones = torch.ones(p.body.num_vertices, 3)
        self.vertex_colors = ones
        with torch.no_grad():
            camera = p.look.camera if camera is None else camera
            out = p.renderer.render(self.scene(vertices, camera))
            covered = (out.alpha > 0.99) * self.crop_weight
            person = p.person_mask if p.person_mask is not None else p.albedo_mask
            if person is not None:  # only where the photo shows the person: a misplaced limb over the
                covered = covered * (person > 0.5)  # background would darken the colour (and the refit)
            shading = out.image.mean(-1)
            use = covered * (shading > 0.05)

            def colour(pixels: torch.Tensor) -> torch.Tensor | None:
                """Target colour / rendered shading summed over ``pixels`` (H, W), or None for too few."""
                if float(pixels.sum()) < 50:
                    return None
                c = (self.target * pixels[..., None]).sum((0, 1)) / (shading[..., None] * pixels[..., None]).sum((0, 1))
                return c.clamp(0.05, 1.0)

            whole = colour(use)
            whole = torch.tensor(DEFAULT_ALBEDO) if whole is None else whole
            colors = whole.expand(p.body.num_vertices, 3).clone()
            if self.preset.part_albedo:
                labels = vertex_part_labels(p.body)
                faces = self.face_index(out, vertices, camera)
                seen = faces >= 0
                face_label = torch.full(faces.shape, -1, dtype=torch.int64)
                face_label[seen] = labels[p.body.faces[faces[seen], 0]]
                for part in range(int(labels.max()) + 1):
                    c = colour(use * (face_label == part).to(use.dtype))
                    if c is not None:
                        colors[labels == part] = c
        return colors

    def _image_term(
        self, vertices: torch.Tensor, camera: PinholeCamera, level: _Resolution
    ) -> tuple[RenderOutput, torch.Tensor, torch.Tensor]:
        """Render ``vertices`` (V, 3) and compare with the photo at ``level``: (render output, (H, W) counted
        pixels, the image term of Eq. 5)."""
        preset = self.preset
        output = self.problem.renderer.render(self.scene(vertices, camera))
        weight = self.weight_for(output, vertices, camera, level.crop_weight)
        if level.pyramid is not None:
            return output, weight, level.pyramid(output.image, weight, output.footprint)
        image_loss = image_l2(output.image, level.target, weight, preset.loss_reduction)
        if preset.loss_reduction == "sum" and preset.reference_size:
            image_loss = image_loss * (preset.reference_size**2 / (camera.width * camera.height))
        return output, weight, image_loss

    def _recolour(self, state: FitState) -> None:
        """Estimate the albedo again at ``state``'s pose and camera and use it from now on. A colour estimated where
        a wrong start put the limbs misleads the image term; kept current, the fit converges where a fit started
        from its result begins (the same objective)."""
        with torch.no_grad():
            self.vertex_colors = self.estimate_albedo(self.problem.body(state.params).vertices, state.camera)

    def _check_visible(self, vertices: torch.Tensor) -> None:
        cam = self.problem.look.camera
        uv, depth = cam.project(vertices.detach())
        inside = (depth > 0) & (uv[:, 0] >= -0.5) & (uv[:, 0] <= cam.width - 0.5)
        inside &= (uv[:, 1] >= -0.5) & (uv[:, 1] <= cam.height - 0.5)
        sel = self.problem.look.selected_vertices(self.problem.body)
        if sel is not None:
            inside &= sel.to(inside.device)
        if not bool(inside.any()):
            what = "the selected part" if sel is not None else "any part of the body"
            raise ParameterError(f"the camera sees no vertex of {what}: point the camera at the body")

    # ------------------------------------------------------------------ the loop
    def steps(self) -> Iterator[FitState]:
        """Run the optimisation, yielding one :class:`FitState` per iteration and a final evaluation.

        With ``preset.hypotheses`` > 0 and detected landmarks (2D keypoints or 3D bone directions: the cues that
        tell left from right and near from far) a hypothesis search comes first (its states have
        ``phase="hypotheses"``, the first being the initialisation's), and the optimisation starts from the
        candidate it chose. Not in VPoser's latent space.
        """
        start = time.perf_counter()
        p = self.problem
        has_cues = p.keypoints is not None or p.bone_directions is not None
        if self.preset.hypotheses > 0 and self.latent is None and has_cues:
            self.search = HypothesisSearch(self, self.preset.hypotheses, self.preset.hypothesis_iterations)
            yield from self.search.steps()
            # Landmarks that only score the search must not steer the fit: it starts from the chosen candidate as
            # made; otherwise it goes on from the candidate's brief fit.
            only = p.cues_for_search_only
            chosen = self.search.chosen.made if only else self.search.chosen.params
            if p.vertex_colors is None:  # the colour seen where the chosen body is, not where the start was
                with torch.no_grad():
                    self.vertex_colors = self.estimate_albedo(p.body(chosen).vertices)
            yield from self._optimise(chosen, start, done=0 if only else self.search.brief_iterations)
        else:
            yield from self._optimise(self.initial, start)

    def _optimise(self, begin: BodyParams, start: float, done: int = 0) -> Iterator[FitState]:
        """The optimisation from ``begin`` (the initialisation, or the candidate a search chose); ``start`` is the
        ``time.perf_counter()`` the fit's ``elapsed_s`` counts from; ``done``: steps ``begin`` has already had (a
        chosen candidate's brief fit), which count towards ``preset.min_iterations``."""
        p, preset = self.problem, self.preset
        body = p.body
        free = torch.tensor(self.free_joints, dtype=torch.int64)
        base = begin.rotations.detach().clone()
        pose_var = base[free].clone().requires_grad_("pose" in preset.optimise or "global_orient" in preset.optimise)
        prior_ref = base[free].clone() if preset.prior_reference == "init" else torch.zeros_like(base[free])
        prior_rows = torch.tensor([j != 0 for j in self.free_joints], dtype=torch.bool)  # the prior is on theta_b
        latent = self.latent
        if latent is not None:  # theta_b is VPoser's code: its prior is on the code, not on the joint angles
            prior_rows[latent.positions] = False
            pose_var.requires_grad_("global_orient" in preset.optimise and 0 in self.free_joints)
        alpha = torch.zeros(3, requires_grad="camera_angle" in preset.optimise)
        extra: dict[str, torch.Tensor] = {
            name: getattr(begin, name).detach().clone().requires_grad_(name in preset.optimise)
            for name in ("translation", "shape", "expression")
        }
        groups_pose = []
        if pose_var.requires_grad:
            groups_pose.append({"params": [pose_var], "lr": preset.pose_lr})
        if latent is not None:
            groups_pose.append({"params": [latent.code], "lr": preset.pose_lr})
        extras = [t for t in extra.values() if t.requires_grad and t.numel() > 0]
        if extras:
            groups_pose.append({"params": extras, "lr": preset.pose_lr * preset.extra_lr_scale})
        optimizers = []
        if groups_pose:
            optimizers.append(self._optimizer(groups_pose))
        if alpha.requires_grad:
            optimizers.append(self._optimizer([{"params": [alpha], "lr": preset.camera_lr}]))
        fine = self._resolution(1.0)
        coarse_until = round(preset.coarse_fraction * preset.iterations) if preset.coarse_fraction > 0 else 0
        coarse = self._resolution(preset.coarse_scale) if coarse_until > 1 and preset.coarse_scale < 1 else None

        best: FitState | None = None
        stale = 0  # full-resolution iterations since the best objective last improved by min_improvement
        calm = 0  # of those, the iterations since the learning rates were last lowered
        recolour = p.vertex_colors is None and preset.albedo_every > 0  # the colour is estimated: keep it current
        state: FitState | None = None
        first: FitState | None = None
        for iteration in range(preset.iterations + 1):
            final = iteration == preset.iterations or (
                preset.patience > 0
                and iteration > max(coarse_until, preset.min_iterations - done)
                and stale >= preset.patience
            )
            if (
                recolour
                and state is not None
                and first is not None
                and not final
                and not (coarse is not None and 0 < iteration < coarse_until)  # re-scored at full resolution only
                and iteration % preset.albedo_every == 0
            ):
                self._recolour(state)  # the body's colour as seen where the body now is
                best = None  # a new objective: earlier states are not comparable ...
                with torch.no_grad():  # ... but the start is, scored again under the new colour
                    start_image = float(self._image_term(body(first.params).vertices, first.camera, fine)[2])
                first = replace(first, loss=first.loss - first.image_loss + start_image, image_loss=start_image)
            level = coarse if coarse is not None and 0 < iteration < coarse_until else fine
            free_rows = pose_var if latent is None else latent.apply(pose_var, exact_start=iteration == 0)
            rotations = base.index_put((free,), free_rows)
            params = BodyParams(rotations, extra["translation"], extra["shape"], extra["expression"])
            camera = orbit_camera(level.camera, alpha, self.pivot)
            with torch.set_grad_enabled(not final):
                posed = body(params)
                output, weight, image_loss = self._image_term(posed.vertices, camera, level)
                prior_loss = pose_prior(pose_var[prior_rows], prior_ref[prior_rows])
                if latent is not None:
                    prior_loss = prior_loss + latent.prior(preset.latent_prior_reference)
                loss = image_loss + preset.prior_weight * prior_loss
                kp_loss = torch.zeros(())
                if p.keypoints is not None and preset.keypoint_weight > 0 and not p.cues_for_search_only:
                    kp_loss = keypoint_loss(posed.joints, camera, p.keypoints)
                    loss = loss + preset.keypoint_weight * kp_loss
                if p.person_mask is not None and preset.silhouette_weight > 0:
                    mask = level.mask if level.mask is not None else p.person_mask
                    silhouette = asymmetric_silhouette(output.alpha, mask, weight, preset.silhouette_outside)
                    loss = loss + preset.silhouette_weight * silhouette
                if p.bone_directions is not None and preset.direction_weight > 0 and not p.cues_for_search_only:
                    loss = loss + preset.direction_weight * direction_loss(posed.joints, camera, p.bone_directions)
                limit_loss = torch.zeros(())
                if self.limits is not None:
                    limit_loss = self.limits.penalty(rotations)
                    loss = loss + preset.limit_weight * limit_loss
            if not torch.isfinite(loss):
                raise FitDivergedError(
                    f"the loss became {float(loss.detach())} at iteration {iteration}; lower the learning rate "
                    f"(preset {preset.name!r})"
                )
            render, weight = output.image.detach().clamp(0, 1), weight.detach()
            if level is not fine:  # states always show the full resolution
                camera = orbit_camera(fine.camera, alpha, self.pivot)
                render, weight = _upsample(render, fine.camera), _upsample(weight[..., None], fine.camera)[..., 0]
            state = FitState(
                iteration=iteration,
                loss=float(loss.detach()),
                image_loss=float(image_loss.detach()),
                prior_loss=float(prior_loss.detach()),
                params=params.clone(),
                camera_angle=alpha.detach().clone(),
                camera=camera.detached(),
                render=render,
                weight=weight,
                elapsed_s=time.perf_counter() - start,
                final=final,
                last_loss=float(loss.detach()),
                keypoint_loss=float(kp_loss.detach()),
                limit_loss=float(limit_loss.detach()),
            )
            if level is fine:  # objectives at other resolutions are not comparable
                if best is None:  # the first state, or the first under a new colour: progress is measured from it
                    best = state
                elif state.loss < best.loss * (1 - preset.min_improvement):
                    stale = calm = 0
                else:
                    stale, calm = stale + 1, calm + 1
                if state.loss < best.loss:
                    best = state
                if preset.decay_patience > 0 and calm >= preset.decay_patience:
                    calm = 0  # a plateau: smaller steps settle into the minimum instead of circling it
                    for opt in optimizers:
                        for group in opt.param_groups:
                            group["lr"] *= preset.lr_decay
            if iteration == 0:
                first = state  # the start, whose loss is updated whenever the colour is estimated again
            if final and best is not first and best.loss > first.loss * (1 - preset.accept_gain):
                best = first  # too small a gain to be worth moving: the start is kept exactly (stable re-fits)
            state.best_iteration = best.iteration
            if final and best is not state:
                state = replace(best, iteration=iteration, final=True, best_iteration=best.iteration,
                                last_loss=state.last_loss, elapsed_s=state.elapsed_s)  # fmt: skip
            if not final:
                for opt in optimizers:
                    opt.zero_grad(set_to_none=True)
                loss.backward()
                for opt in optimizers:
                    opt.step()
            yield state
            if final:
                return

    def _resolution(self, scale: float) -> _Resolution:
        """The camera, target, crop weight and image-pyramid loss at ``scale`` times the fit's resolution (made once
        per scale; a hypothesis search's candidates share their fit's, :attr:`levels`)."""
        if scale not in self.levels:
            self.levels[scale] = self._make_resolution(scale)
        return self.levels[scale]

    def _make_resolution(self, scale: float) -> _Resolution:
        preset, camera = self.preset, self.problem.look.camera
        target, crop, mask = self.target, self.crop_weight, self.problem.person_mask
        levels = preset.pyramid_levels
        if scale < 1.0:
            camera = camera.scaled(scale)
            target = _downsample(target, camera)
            crop = _downsample(crop[..., None], camera)[..., 0]
            mask = None if mask is None else _downsample(mask[..., None], camera)[..., 0]
            levels = max(1, levels - round(math.log2(1 / scale)))
        pyramid = PyramidL2(target, levels, self.problem.background) if preset.pyramid_levels > 1 else None
        return _Resolution(camera, target, crop, pyramid, mask)

    def run(self, callback=None) -> list[FitState]:
        """Run to the end; returns every state (the last one is the result: the best parameters seen).

        ``callback(state)`` is called after each step; returning True stops the fit early.
        """
        states = []
        for state in self.steps():
            states.append(state)
            if callback is not None and callback(state):
                break
        return states

    def _optimizer(self, groups: list[dict]) -> torch.optim.Optimizer:
        if self.preset.optimizer == "adam":
            return torch.optim.Adam(groups)
        return torch.optim.SGD(groups, momentum=self.preset.momentum)
