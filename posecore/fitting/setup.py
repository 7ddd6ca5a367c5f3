"""One way to set a fit up from files and options: ``prepare_fit(options) -> PreparedFit``.

Used by ``python -m posecore fit``, ``python -m posecore batch`` and its workers, so that a fix to input
handling lands once. The steps, each a small function a caller (or a later feature) can replace:

1. the target: :func:`posecore.io.targets.read_target_image` (or pixels handed in: a movie frame);
2. the fit size: :func:`fit_size` (``options.size`` = pixels of the longer side);
3. the person mask: :func:`read_person_mask` (a mask file, or the photo's alpha channel);
4. the initialisation: :func:`read_initialisation` (the ``--init`` file; a warm start hands one in);
5. body model, camera, look (part, crop), preset and renderer;
6. after the caller has added its terms (the photo's mask and keypoints): :meth:`PreparedFit.crop_to_person`
   moves the fit onto a window around the person (:mod:`posecore.fitting.person_crop`); results map back to the
   photo's camera with :meth:`PreparedFit.output_camera`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields, replace

import torch

from posecore.bodies import BodyModel, load_body_model, params_from_init
from posecore.bodies.vposer import VPoserDecoder
from posecore.cameras.init_camera import camera_from_init
from posecore.cameras.pinhole import PinholeCamera
from posecore.errors import InputFileError, ParameterError
from posecore.fitting.look import Look
from posecore.fitting.loop import FitProblem, PoseFitter, effective_preset
from posecore.fitting.person_crop import PersonCrop, mask_box, plan_crop, points_box, union_box
from posecore.fitting.presets import DEFAULT_PRESET, Preset, get_preset
from posecore.io.images import load_mask
from posecore.io.init_files import BodyInit, read_init
from posecore.io.targets import TargetImage, read_target_image
from posecore.io.vposer_files import load_vposer
from posecore.render import DEFAULT_RENDERER, get_renderer


@dataclass(frozen=True)
class FitOptions:
    """What a user asks of a fit (the ``fit`` command's options), plain values only so it pickles to workers.

    Attributes:
        image: target photo file (a batch hands the decoded frame to :func:`prepare_fit` instead).
        init: initialisation file (``.pkl``, ``.npz``, ``.json``, a PoseFit ``fit.npz``).
        frame: frame of a multi-frame initialisation file.
        model: body model spec: ``anny`` or ``smplx:DIR[:gender]``.
        size: resize so the longer side has this many pixels (None: the photo's size).
        mask: person mask image file (white = person).
        mask_from_alpha: use the photo's alpha channel as the person mask.
        crop: ``"x0,y0,x1,y1"`` in pixels of the fit size: only this rectangle counts.
        part: selective fit of one part (see :mod:`posecore.fitting.parts`).
        render_part_only: render only the part's faces.
        preset: optimisation preset name; iterations / optimise (comma list) / prior_weight override it.
        renderer: renderer backend name.
        vposer: the user's VPoser folder (decodes a 32-number body_pose; theta_b may then be the code).
        flat_hand_mean: the init's hand poses were made with smplx's ``flat_hand_mean=True``.
        hypotheses: ``auto`` (the preset's search, when the fit has landmarks), ``off``, or the number of
            candidates to brief-fit (:mod:`posecore.fitting.hypotheses`).
        person_crop: ``auto``, ``on`` or ``off``: fit on a window around the person
            (see :mod:`posecore.fitting.person_crop`).
    """

    image: str | None = None
    init: str | None = None
    frame: int = 0
    model: str = "anny"
    size: int | None = None
    mask: str | None = None
    mask_from_alpha: bool = False
    crop: str | None = None
    part: str | None = None
    render_part_only: bool = False
    preset: str = DEFAULT_PRESET
    iterations: int | None = None
    optimise: str | None = None
    prior_weight: float | None = None
    renderer: str = DEFAULT_RENDERER
    vposer: str | None = None
    flat_hand_mean: bool = False
    hypotheses: str = "auto"
    person_crop: str = "auto"

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> FitOptions:
        """The options found on a parsed command line (attributes it lacks keep their defaults)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in vars(args).items() if k in names})


@dataclass
class PreparedFit:
    """A fit ready to run.

    Attributes:
        problem: the fitting problem (body, initialisation, target at the fit size, look, renderer, mask).
        preset: the preset with the options' overrides.
        options: the options it was made from.
        target: the target at its own resolution.
        init: the initialisation it starts from.
        size: (width, height) the fit renders at, pixels.
        crop: the parsed crop rectangle, or None.
        person_crop: the window around the person the fit runs on (after :meth:`crop_to_person`), or None.
        frame_camera: the photo's camera at ``size`` (set with ``person_crop``; results are saved in it).
    """

    problem: FitProblem
    preset: Preset
    options: FitOptions
    target: TargetImage
    init: BodyInit
    size: tuple[int, int]
    crop: tuple[int, int, int, int] | None
    person_crop: PersonCrop | None = None
    frame_camera: PinholeCamera | None = None

    @property
    def body(self) -> BodyModel:
        return self.problem.body

    def fitter(self) -> PoseFitter:
        """A new :class:`PoseFitter` for this fit (validates the problem)."""
        return PoseFitter(self.problem, self.preset)

    def settings(self, command: str) -> dict:
        """The ``settings`` block of ``result.json``: how this fit was made (JSON-ready)."""
        o = self.options
        preset = effective_preset(self.preset, self.problem)  # e.g. the paper preset in VPoser's space
        return {
            "command": command,
            "image": self.target.source,
            "init": self.init.source,
            "model": o.model,
            "preset": preset.name,
            "renderer": self.problem.renderer.name,
            "part": o.part,
            "crop": self.crop,
            "mask": o.mask,
            "vposer": o.vposer,
            "iterations": preset.iterations,
            "optimise": list(preset.optimise),
            "prior_weight": preset.prior_weight,
            "size": list(self.size),
            "threads": torch.get_num_threads(),
            "person_crop": self.person_crop.as_json() if self.person_crop is not None else None,
        }

    def person_box(self) -> tuple[float, float, float, float] | None:
        """Pixel-edge box (x0, y0, x1, y1) of the person in the frame (``size``): the union of the person mask,
        the keypoints and the start body's projection; None when none of them is there."""
        problem, (width, height) = self.problem, self.size
        kp = problem.keypoints
        kp_box = None
        if kp is not None:
            kp = kp.resized(width, height)
            kp_box = points_box(kp.uv[kp.weights > 0], width, height)
        with torch.no_grad():
            vertices = self.body(problem.initial).vertices
            uv, depth = problem.look.camera.project(vertices)
        body_box = points_box(uv[depth > 0], width, height)
        return union_box([mask_box(problem.person_mask), kp_box, body_box])

    def add_search_cues(self) -> bool:
        """Detect landmarks in the target for the hypothesis search alone (a fit from an init file or a warm
        start): when the preset searches, the fit is whole-body and has no keypoints yet. Welcome, not required:
        no person found (or an image under 128 px, or no MediaPipe) and the fit runs without a search. Call before
        :meth:`crop_to_person`. Returns whether cues were added."""
        problem = self.problem
        if self.preset.hypotheses <= 0 or self.options.part is not None or problem.keypoints is not None:
            return False
        from posecore.detect.cues import detect_cues

        cues = detect_cues(problem.target, problem.body, source=str(self.target.source))
        if cues is None:
            return False
        problem.keypoints, problem.bone_directions = cues
        problem.cues_for_search_only = True
        return True

    def crop_to_person(self) -> PersonCrop | None:
        """Move the fit onto a window around the person when ``options.person_crop`` asks for it (call after every
        term is added: target, person mask, keypoints and ``--crop`` are cut consistently). Idempotent.

        Returns:
            The :class:`PersonCrop`, or None when the whole frame is fitted.
        """
        if self.person_crop is not None:
            return self.person_crop
        problem = self.problem
        crop = plan_crop(self.person_box(), self.size, self.target.size, self.options.person_crop, self.options.size)
        if crop is None:
            return None
        frame_camera = problem.look.camera
        problem.target = crop.image(self.target.rgb)
        if problem.person_mask is not None:
            problem.person_mask = crop.frame_map(problem.person_mask.float())
        if problem.albedo_mask is not None:
            problem.albedo_mask = crop.frame_map(problem.albedo_mask.float())
        if problem.keypoints is not None:
            problem.keypoints = crop.keypoints(problem.keypoints)
        rect = crop.rect(problem.look.crop) if problem.look.crop is not None else None
        problem.look = replace(problem.look, camera=crop.camera(frame_camera), crop=rect)
        self.person_crop, self.frame_camera = crop, frame_camera
        return crop

    def output_camera(self, camera: PinholeCamera) -> PinholeCamera:
        """A fitted camera (a state's, at the fit's resolution) as the photo's camera at ``size``: unchanged
        without a person crop; with one, the frame's intrinsics with the fitted pose."""
        if self.person_crop is None or self.frame_camera is None:
            return camera
        return self.person_crop.frame_camera(camera, self.frame_camera)


def fit_size(source_size: tuple[int, int], longer_side: int | None) -> tuple[int, int]:
    """(width, height) to fit at: ``source_size`` scaled so its longer side is ``longer_side`` (if given)."""
    width, height = source_size
    if longer_side:
        if longer_side < 1:
            raise ParameterError(f"--size must be a positive number of pixels, got {longer_side}")
        scale = longer_side / max(width, height)
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
    return width, height


def read_person_mask(options: FitOptions, target: TargetImage, size: tuple[int, int]) -> torch.Tensor | None:
    """(H, W) person mask at ``size`` from ``options.mask`` or the photo's alpha channel, or None."""
    if options.mask:
        return load_mask(options.mask, size=size)
    if options.mask_from_alpha:
        mask = target.alpha(size)
        if mask is None:
            raise InputFileError(target.source, "--mask-from-alpha: the image has no alpha channel")
        return mask
    return None


def read_initialisation(options: FitOptions) -> BodyInit:
    """The initialisation named by the options (one frame of ``options.init``)."""
    if options.init is None:
        raise ParameterError("an initialisation is needed: pass --init FILE (a SMPLify-X .pkl, .npz, .json or fit.npz)")
    return read_init(options.init, frame=options.frame)


def parse_crop(text: str | None) -> tuple[int, int, int, int] | None:
    """``"x0,y0,x1,y1"`` -> a tuple of 4 ints (pixels), or None."""
    if not text:
        return None
    try:
        crop = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ParameterError(f"--crop must be x0,y0,x1,y1 in pixels, got {text!r}") from None
    if len(crop) != 4:
        raise ParameterError(f"--crop must be x0,y0,x1,y1 in pixels, got {text!r}")
    return crop  # type: ignore[return-value]


def preset_for(options: FitOptions) -> Preset:
    """The named preset with the options' overrides (validated)."""
    from posecore.fitting.hypotheses import parse_hypotheses

    base = get_preset(options.preset)
    return base.with_overrides(
        hypotheses=parse_hypotheses(options.hypotheses, base.hypotheses),
        iterations=options.iterations,
        optimise=tuple(options.optimise.split(",")) if options.optimise else None,
        prior_weight=options.prior_weight,
    )


def prepare_fit(
    options: FitOptions,
    *,
    target: TargetImage | None = None,
    init: BodyInit | None = None,
    body: BodyModel | None = None,
    renderer: object | None = None,
    vposer: VPoserDecoder | None = None,
) -> PreparedFit:
    """Turn files and options into a ready fit.

    Args:
        options: the user's options.
        target: the target pixels, when not read from ``options.image`` (a movie frame).
        init: the initialisation, when not read from ``options.init`` (a warm start from the previous frame).
        body: an already loaded body model matching ``options.model`` (a batch worker loads it once).
        renderer: an already made renderer matching ``options.renderer``.
        vposer: an already loaded VPoser decoder matching ``options.vposer``.

    Raises:
        InputFileError: a file is missing or unusable (the message names it).
        ParameterError: an option is invalid.
    """
    if target is None:
        if options.image is None:
            raise ParameterError("a target image is needed: pass --image FILE")
        target = read_target_image(options.image)
    size = fit_size(target.size, options.size)
    image = target.resized(size)
    mask = read_person_mask(options, target, size)
    if init is None:
        init = read_initialisation(options)
    if options.flat_hand_mean:
        init.hand_pose_relative_to_mean = False
    if vposer is None and options.vposer:
        vposer = load_vposer(options.vposer)
    if body is None:
        body = load_body_model(options.model)
    initial = params_from_init(body, init, vposer=vposer)
    initial_code = None
    if vposer is not None and init.vposer_code is not None:  # a SMPLify-X result's own code starts a latent fit
        initial_code = torch.as_tensor(init.vposer_code, dtype=torch.float32)
    camera = camera_from_init(init.camera, size[0], size[1], target.size)
    crop = parse_crop(options.crop)
    look = Look(camera, part=options.part, crop=crop, render_part_only=options.render_part_only)
    preset = preset_for(options)
    if renderer is None:
        renderer = get_renderer(options.renderer)
    problem = FitProblem(body, initial, image, look, renderer, person_mask=mask, vposer=vposer,
                         initial_code=initial_code)  # fmt: skip
    return PreparedFit(problem, preset, options, target, init, size, crop)
