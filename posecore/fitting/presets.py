"""Optimisation presets: the paper's settings, and faster ones measured on the benchmark scenes."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from posecore.errors import ParameterError

UPSTREAM_PARAMETERS = ("pose", "vposer", "global_orient", "camera_angle", "translation", "shape", "expression")
"""What a fit may optimise. ``pose``: theta_b as axis-angle joint rotations; ``vposer``: theta_b as VPoser's
32-number latent code (SMPL-X with a VPoser folder; see :mod:`posecore.fitting.latent`)."""


@dataclass(frozen=True)
class Preset:
    """How a fit optimises.

    Attributes:
        name: identifier.
        iterations: optimisation steps.
        optimizer: "sgd" (with ``momentum``) or "adam".
        pose_lr: learning rate of the body rotations (and translation/shape/expression, scaled below).
        camera_lr: learning rate of the camera orbit angle alpha.
        momentum: SGD momentum (ignored by Adam).
        prior_weight: lambda of Eq. 5.
        prior_reference: for axis-angle theta_b: "zero" (||theta_b||^2, Eq. 5 as printed) or "init"
            (||theta_b - theta_init||^2).
        latent_prior_reference: for theta_b as VPoser's code z: "zero" (||z||^2, the paper's, the Gaussian prior
            VPoser's space was trained for) or "init" (||z - z0||^2).
        loss_reduction: "sum" (Eq. 1 as written) or "mean" (resolution-independent).
        optimise: which upstream parameters move (subset of UPSTREAM_PARAMETERS).
        extra_lr_scale: learning-rate factor for translation/shape/expression relative to ``pose_lr``.
        pyramid_levels: > 1 replaces the image term by :func:`posecore.fitting.losses.pyramid_l2` with this
            many levels (the mean reduction at each level).
        keypoint_weight: weight of the 2D keypoint term (:func:`posecore.fitting.keypoints.keypoint_loss`) when the
            problem has keypoints; 0 leaves it out.
        reference_size: with ``loss_reduction="sum"``, take Eq. 1's sum as if the image were
            ``reference_size`` x ``reference_size`` pixels (the sum is scaled by S^2 / (H W)), so the
            published step sizes mean the same at any resolution; 0 = the raw sum.
        latent_pose_when_available: optimise theta_b as VPoser's code ("vposer") instead of axis-angle
            ("pose") whenever the fit has a VPoser decoder.
        coarse_fraction: coarse-to-fine: this fraction of the iterations (after the first) renders at
            ``coarse_scale`` times the resolution (0 = never).
        coarse_scale: resolution factor of the coarse iterations.
        patience: early stop: end the fit when the objective (at full resolution) has not improved on its best by
            more than ``min_improvement`` (relative) for this many iterations (0 = never stop early).
        min_improvement: relative improvement of the best objective that counts as progress for ``patience``.
        min_iterations: no early stop before this many iterations (a selective fit's objective, whose counted
            region moves with the part, can rise for a while before it falls).
        decay_patience: multiply every learning rate by ``lr_decay`` each time the objective has not improved by
            ``min_improvement`` for this many more iterations (0 = constant rates): a fit settles into its minimum
            instead of circling it, so fitting the result again finds it there.
        lr_decay: the factor of ``decay_patience``.
        albedo_every: when the fit estimates the body's colour, estimate it again every this many iterations
            where the body then is (0 = once, at the start); when it moved, the best-state tracking starts over
            under the new colour.
        limit_weight: weight of the anatomical joint-limit penalty (:mod:`posecore.fitting.limits`); 0 = none.
        direction_weight: weight of the 3D landmark bone-direction term (:mod:`posecore.fitting.directions`) when
            the problem has detected bone directions; 0 leaves it out.
        silhouette_weight: weight of the asymmetric silhouette term against the person mask (0 = none; see
            :func:`posecore.fitting.losses.asymmetric_silhouette`).
        silhouette_outside: how much more a body pixel outside the mask costs than a mask pixel the body leaves
            uncovered (clothes and hair widen the mask beyond the body).
        part_albedo: estimate one albedo per body part (torso, arms, legs, head, hands) from the photo inside
            each part's projection instead of one for the whole body.
        hypotheses: a hypothesis search before the fit (:mod:`posecore.fitting.hypotheses`) brief-fits this many
            candidates (0 = no search).
        hypothesis_iterations: steps of each candidate's brief fit.
        hypothesis_keypoint_weight, hypothesis_direction_weight: the keypoint and bone-direction weights that score
            the search's candidates (screening and brief fits); the landmarks' left/right labels and depth signs
            are what tell the candidates apart.
        hypothesis_margin: a candidate replaces the start only if its brief-fit objective is lower than the start's
            by more than this fraction.
        accept_gain: the fit moves off its start only if the objective improves on the start's by more than this
            fraction; else the start is returned exactly (0 = any improvement counts). Makes a re-fit of a result,
            or a warm start on an identical frame, stay where it is instead of wandering along flat directions.
    """

    name: str
    iterations: int
    optimizer: str
    pose_lr: float
    camera_lr: float
    momentum: float = 0.9
    prior_weight: float = 3.0
    prior_reference: str = "zero"
    latent_prior_reference: str = "zero"
    loss_reduction: str = "sum"
    optimise: tuple[str, ...] = ("pose", "camera_angle")
    extra_lr_scale: float = 0.1
    pyramid_levels: int = 1
    keypoint_weight: float = 0.0
    reference_size: int = 0
    latent_pose_when_available: bool = False
    coarse_fraction: float = 0.0
    coarse_scale: float = 0.5
    patience: int = 0
    min_improvement: float = 1e-3
    min_iterations: int = 0
    decay_patience: int = 0
    lr_decay: float = 0.5
    albedo_every: int = 0
    limit_weight: float = 0.0
    direction_weight: float = 0.0
    silhouette_weight: float = 0.0
    silhouette_outside: float = 3.0
    part_albedo: bool = False
    hypotheses: int = 0
    hypothesis_iterations: int = 15
    hypothesis_keypoint_weight: float = 0.0
    hypothesis_direction_weight: float = 0.0
    hypothesis_margin: float = 0.0
    accept_gain: float = 0.0
    notes: str = field(default="", compare=False)

    def with_overrides(self, **changes: object) -> Preset:
        """A copy with some fields replaced (``None`` values are ignored); validates the result."""
        preset = replace(self, **{k: v for k, v in changes.items() if v is not None})
        preset.validate()
        return preset

    def validate(self) -> None:
        if self.iterations < 0:
            raise ParameterError(f"iterations must be >= 0, got {self.iterations}")
        if self.optimizer not in ("sgd", "adam"):
            raise ParameterError(f"optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")
        unknown = set(self.optimise) - set(UPSTREAM_PARAMETERS)
        if unknown:
            raise ParameterError(f"unknown upstream parameters {sorted(unknown)}; choose from {UPSTREAM_PARAMETERS}")
        if {"pose", "vposer"} <= set(self.optimise):
            raise ParameterError("optimise either 'pose' (axis-angle) or 'vposer' (VPoser's code), not both")
        for name in ("prior_reference", "latent_prior_reference"):
            if getattr(self, name) not in ("zero", "init"):
                raise ParameterError(f"{name} must be 'zero' or 'init', got {getattr(self, name)!r}")
        if self.pyramid_levels < 1:
            raise ParameterError(f"pyramid_levels must be >= 1, got {self.pyramid_levels}")
        if not self.keypoint_weight >= 0:
            raise ParameterError(f"keypoint_weight must be >= 0, got {self.keypoint_weight}")
        if self.reference_size < 0:
            raise ParameterError(f"reference_size must be >= 0, got {self.reference_size}")
        if not 0.0 <= self.coarse_fraction < 1.0:
            raise ParameterError(f"coarse_fraction must be in [0, 1), got {self.coarse_fraction}")
        if not 0.0 < self.coarse_scale <= 1.0:
            raise ParameterError(f"coarse_scale must be in (0, 1], got {self.coarse_scale}")
        if self.patience < 0 or self.min_improvement < 0 or self.min_iterations < 0:
            raise ParameterError(
                f"patience and min_improvement must be >= 0, got {self.patience}, {self.min_improvement}"
            )
        if (
            not self.direction_weight >= 0
            or not self.limit_weight >= 0
            or self.hypotheses < 0
            or self.hypothesis_iterations < 1
        ):
            raise ParameterError(
                f"limit_weight and hypotheses must be >= 0 and hypothesis_iterations >= 1, got {self.limit_weight}, "
                f"{self.hypotheses}, {self.hypothesis_iterations}"
            )
        if self.albedo_every < 0 or self.decay_patience < 0 or not 0.0 < self.lr_decay <= 1.0:
            raise ParameterError(f"decay_patience must be >= 0 and lr_decay in (0, 1], got {self.decay_patience}, "
                                 f"{self.lr_decay}")  # fmt: skip
        if not 0.0 <= self.accept_gain < 1.0:
            raise ParameterError(f"accept_gain must be in [0, 1), got {self.accept_gain}")
        if self.loss_reduction not in ("sum", "mean"):
            raise ParameterError(f"loss_reduction must be 'sum' or 'mean', got {self.loss_reduction!r}")


PAPER = Preset(
    name="paper",
    iterations=200,
    optimizer="sgd",
    pose_lr=1e-4,
    camera_lr=1e-8,
    momentum=0.9,
    prior_weight=3.0,
    prior_reference="init",
    latent_prior_reference="zero",
    loss_reduction="sum",
    reference_size=24,
    latent_pose_when_available=True,
    notes="Battogtokh & Borgo 2022, Eq. 5: clamped L2 (summed) + 3 ||theta_b||^2, two SGD optimisers (momentum "
    "0.9, lr 1e-4 pose, 1e-8 camera angle), 200 iterations. theta_b is VPoser's code z (prior 3 ||z||^2) when a "
    "VPoser folder is given, else axis-angle with the prior towards the initialisation; the summed image term is "
    "taken at a 24x24 reference resolution so the published step sizes hold at any image size (measured on the "
    "benchmark set; README, Presets).",
)

FAST = Preset(
    name="fast",
    iterations=150,
    optimizer="adam",
    pose_lr=0.02,
    camera_lr=0.002,
    prior_weight=1e-3,
    prior_reference="init",
    latent_prior_reference="init",
    loss_reduction="mean",
    pyramid_levels=5,
    keypoint_weight=0.01,
    patience=15,
    min_improvement=0.005,
    min_iterations=40,
    decay_patience=0,
    lr_decay=0.5,
    albedo_every=10,
    limit_weight=1.0,
    direction_weight=0.0,
    hypotheses=4,
    hypothesis_iterations=15,
    hypothesis_keypoint_weight=0.01,
    hypothesis_direction_weight=0.02,
    hypothesis_margin=0.05,
    accept_gain=0.03,
    notes="Adam on a resolution-independent image loss over a 5-level image pyramid, a weak prior towards the "
    "initialisation, anatomical joint limits, and a small robust 2D keypoint term when the photo's landmarks are "
    "the start; with landmarks, a hypothesis search first (4 of the single view's alternatives brief-fitted, one "
    "replaces the start only when 5% better). The body's colour is estimated again every 10 iterations where the "
    "body is; learning rates halve on plateaus; stops (after 40 iterations at the least) once the objective has "
    "not improved by 0.5% for 15 iterations, and keeps its start unless it gained 3%.",
)

PRESETS: dict[str, Preset] = {p.name: p for p in (PAPER, FAST)}
DEFAULT_PRESET = "fast"


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ParameterError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
