"""Mitsuba 3 backend: a physically based differentiable path tracer (``direct_projective`` integrator).

Optional: needs ``pip install mitsuba==3.9.1 drjit==1.5.0`` and, for the CPU variant ``llvm_ad_rgb``,
LLVM 19 (Debian ``libllvm19``; older LLVMs make Dr.Jit abort at the first kernel). Mitsuba is imported only
when a :class:`MitsubaRenderer` is constructed, so ``import posecore.render.mitsuba_backend`` always works.

How the scene is handed to Mitsuba:

- Geometry is moved into the OpenCV camera frame in torch (``camera.world_to_camera``), so gradients with
  respect to the camera pose flow through torch. Mitsuba sees a fixed pinhole sensor at the origin looking
  down +Z with OpenCV axes (its ``to_world`` is ``diag(-1, -1, 1)``: Mitsuba's camera frame is +X left,
  +Y up). Light directions are rotated into the camera frame too (the headlight is then always +Z).
- Intrinsics are exact: the vertical field of view comes from ``fy`` and the height, the principal point
  from ``principal_point_offset_x/y`` (fractions of the film size). Mitsuba's film pixel ``i`` spans
  ``[i, i + 1)`` while OpenCV puts pixel centres at integers, so OpenCV ``u`` is Mitsuba's ``u + 0.5``.
  Mitsuba assumes square pixels: ``fx != fy`` raises :class:`~posecore.errors.ParameterError`.
- Shading follows :mod:`posecore.render.scene`: a Lambertian BSDF whose albedo is the per-vertex colour
  (mesh attribute ``vertex_color``), one ``directional`` emitter per light with irradiance ``pi *
  intensity`` (Mitsuba's diffuse BSDF is ``albedo / pi``), so an unshadowed pixel is ``albedo * intensity *
  max(0, n.l)``. Shadows are cast (the default headlight's shadows are invisible). A nonzero
  ``lighting.ambient`` adds a ``constant`` emitter of that radiance: ``albedo * ambient`` times the
  unoccluded fraction of the hemisphere (ambient occlusion), estimated by Monte Carlo, so it adds noise
  (at 4 spp this noise kept a pose fit from converging; prefer directional lights). Several directional
  lights also add noise: each sample picks one light at random.
- The background is composited inside the integrator (a camera ray that hits nothing returns
  ``scene.background``), so silhouette gradients see the true foreground/background contrast (compositing
  afterwards with a non-differentiable alpha would lose the ``-background * d(alpha)`` term). The alpha
  channel of the film is the fraction of a pixel's samples that hit the mesh (box filter, not
  differentiable). Plain ``direct_projective`` reports alpha 1 everywhere.

Gradients: the film is a box-filtered, ``spp``-sample estimate; the backward pass draws its own samples
(seed derived from the call's seed). It reloads the call's own state (vertices, colours, lights, seed) into
the cached scene first, so ``backward()`` is right even after other renders with the same scene (a plain
``dr.wrap`` around ``mi.render`` would differentiate whatever was loaded last: zero gradients). Caveats,
measured: with ``smooth_normals=False`` the gradients miss the moving shading edges between facets
(Mitsuba differentiates visibility edges only), 10-20% bias on a coarse sphere; with smooth normals they
match finite differences, but grazing hits near silhouettes make the interior term heavy-tailed (noisy).
The first render of a new configuration compiles kernels (about 10 s on 2 cores; cached in ``~/.drjit``).
"""

from __future__ import annotations

import glob
import importlib
import inspect
import math
import os
from dataclasses import dataclass
from typing import Any

import torch

from posecore.errors import BackendUnavailableError, ParameterError
from posecore.render.scene import RenderOutput, RenderScene

LIBLLVM19 = "/usr/lib/x86_64-linux-gnu/libLLVM.so.19.1"
INSTALL_HINT = (
    "the Mitsuba backend needs `pip install mitsuba==3.9.1 drjit==1.5.0` and, on CPU, LLVM 19 "
    "(Debian/Ubuntu: `apt-get install libllvm19`; set DRJIT_LIBLLVM_PATH to libLLVM.so.19.1 if it is not "
    f"at {LIBLLVM19})"
)
_LLVM19_GLOBS = (
    "/usr/lib/x86_64-linux-gnu/libLLVM.so.19*",
    "/usr/lib/x86_64-linux-gnu/libLLVM-19.so*",
    "/usr/lib/llvm-19/lib/libLLVM*.so*",
    "/usr/local/lib/libLLVM*19*.so*",
)
_AXIS_FLIP = ((-1.0, 0.0, 0.0, 0.0), (0.0, -1.0, 0.0, 0.0), (0.0, 0.0, 1.0, 0.0), (0.0, 0.0, 0.0, 1.0))
_MESH = "body"


def find_libllvm19() -> str | None:
    """Path of an LLVM 19 shared library for Dr.Jit's LLVM backend, or None."""
    if os.path.exists(LIBLLVM19):
        return LIBLLVM19
    for pattern in _LLVM19_GLOBS:
        hits = sorted(glob.glob(pattern))
        if hits:
            return hits[0]
    return None


def import_mitsuba() -> tuple[Any, Any]:
    """Import ``(drjit, mitsuba)``, first pointing ``DRJIT_LIBLLVM_PATH`` at LLVM 19 when unset.

    Raises:
        BackendUnavailableError: mitsuba/drjit are not installed.
    """
    if "DRJIT_LIBLLVM_PATH" not in os.environ:
        path = find_libllvm19()
        if path is not None:
            os.environ["DRJIT_LIBLLVM_PATH"] = path
    try:
        dr = importlib.import_module("drjit")
        mi = importlib.import_module("mitsuba")
    except ImportError as exc:
        raise BackendUnavailableError(f"Mitsuba renderer unavailable ({exc}): {INSTALL_HINT}") from exc
    return dr, mi


def _default_variant(mi: Any) -> str:
    if torch.cuda.is_available() and "cuda_ad_rgb" in mi.variants():
        return "cuda_ad_rgb"
    return "llvm_ad_rgb"


def _make_integrator_class(mi: Any, dr: Any) -> type:
    """A ``direct_projective`` integrator whose missed camera rays return a constant background colour.

    ``direct_projective`` reports every camera ray as valid (alpha 1 everywhere) and renders misses black.
    This subclass returns ``self.background`` for rays that hit nothing and marks only hits as valid, so the
    film's alpha channel is the coverage and the silhouette term uses the true colour difference.
    """
    base = type(mi.load_dict({"type": "direct_projective"}))
    signature = inspect.signature(base.sample)

    class BackgroundDirectProjective(base):  # type: ignore[misc, valid-type]
        def __init__(self, props: Any) -> None:
            super().__init__(props)
            self.background = dr.opaque(mi.Color3f(0.0))
            self.background_is_zero = True

        def set_background(self, rgb: tuple[float, float, float]) -> None:
            self.background = dr.opaque(mi.Color3f(*rgb))
            self.background_is_zero = not any(rgb)

        def sample(self, *args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(self, *args, **kwargs).arguments
            spectrum, valid, aovs, state = super().sample(*args, **kwargs)
            primal = bound["mode"] == dr.ADMode.Primal
            if not primal and self.background_is_zero:
                return spectrum, valid, aovs, state  # misses are black already; alpha is not needed
            active = mi.Bool(bound["active"])
            if bound.get("si_shade") is not None:
                hit = active  # the foreground side of a silhouette sample
            else:
                hit = active & bound["scene"].ray_test(bound["ray"], active)
            # The caller may run this under dr.suspend_grad(); the base class re-enables AD for its
            # differentiable parts, and so must we, or the continuous derivatives are dropped.
            with dr.resume_grad(when=not primal):
                spectrum = dr.select(hit, spectrum, self.background)
            return spectrum, hit, aovs, state

    return BackgroundDirectProjective


@dataclass
class _CachedScene:
    """A built Mitsuba scene and the handles needed to update it between calls."""

    key: tuple
    faces: torch.Tensor  # (F', 3) int64, the rendered faces, CPU
    scene: Any
    params: Any
    integrator: Any
    light_keys: list[tuple[str, str]]
    ambient_key: str | None


@dataclass
class _FrameState:
    """Everything one render call loads into a cached scene (kept so its backward pass can reload it)."""

    vertices: torch.Tensor  # (V, 3) float32 camera-frame positions, metres, detached
    colors: torch.Tensor  # (V, 3) float32 albedo, detached
    light_dirs: list[torch.Tensor]  # (3,) unit directions of travel, camera frame
    light_rgbs: list[torch.Tensor]  # (3,) intensities
    ambient: torch.Tensor  # (3,)
    background: torch.Tensor  # (3,)
    seed: int


class MitsubaRenderer:
    """Differentiable renderer on Mitsuba 3 (``direct_projective``: silhouette-correct vertex gradients).

    Args:
        spp: samples per pixel for the image and for both gradient estimators (continuous interior and
            primary-visibility silhouettes; indirect silhouettes, i.e. moving shadows, are not
            differentiated). 4 keeps a 256x256, 20k-triangle forward+backward near a second on 2 cores.
        seed: base random seed.
        variant: Mitsuba variant; default ``cuda_ad_rgb`` when torch sees CUDA (and Mitsuba has it), else
            ``llvm_ad_rgb`` (CPU).
        smooth_normals: shade with smooth vertex normals (area-weighted, recomputed by Mitsuba from the
            vertices on every call) if True, with flat face normals if False. Geometry and silhouettes
            are always the flat triangles.
        vary_seed: use ``seed + call number`` on each call (decorrelated noise between optimisation steps,
            still deterministic for a given sequence of calls); if False every call uses ``seed``.
        silhouette_spp: samples per pixel for the silhouette (primary visibility) gradient; default
            ``spp``. On CPU this term dominates the backward pass: lowering it trades speed for noise.

    Raises:
        BackendUnavailableError: mitsuba/drjit (or, for the CPU variant, LLVM 19) are missing.
    """

    name = "mitsuba"

    def __init__(
        self,
        spp: int = 4,
        seed: int = 0,
        variant: str | None = None,
        smooth_normals: bool = True,
        vary_seed: bool = True,
        silhouette_spp: int | None = None,
    ) -> None:
        if int(spp) < 1:
            raise ParameterError(f"mitsuba renderer: spp must be >= 1, got {spp}")
        if silhouette_spp is not None and int(silhouette_spp) < 0:
            raise ParameterError(f"mitsuba renderer: silhouette_spp must be >= 0, got {silhouette_spp}")
        self.spp = int(spp)
        self.silhouette_spp = self.spp if silhouette_spp is None else int(silhouette_spp)
        self.seed = int(seed)
        self.smooth_normals = bool(smooth_normals)
        self.vary_seed = bool(vary_seed)
        self.calls = 0
        self._dr, self._mi = import_mitsuba()
        mi = self._mi
        self.variant = variant or _default_variant(mi)
        if self.variant not in mi.variants():
            raise ParameterError(
                f"mitsuba renderer: unknown variant {self.variant!r}; available: {', '.join(mi.variants())}"
            )
        if not self.variant.endswith("_ad_rgb"):
            raise ParameterError(
                f"mitsuba renderer: variant {self.variant!r} is not supported (use llvm_ad_rgb, cuda_ad_rgb)"
            )
        if self.variant.startswith("llvm") and "DRJIT_LIBLLVM_PATH" not in os.environ:
            raise BackendUnavailableError(f"Mitsuba renderer: no LLVM 19 library found: {INSTALL_HINT}")
        self.device = torch.device("cuda" if self.variant.startswith("cuda") else "cpu")
        self._activate()
        if self.variant.startswith("llvm") and not self._dr.has_backend(self._dr.JitBackend.LLVM):
            raise BackendUnavailableError(f"Mitsuba renderer: Dr.Jit's LLVM backend did not load: {INSTALL_HINT}")
        self._integrator_class = _make_integrator_class(mi, self._dr)
        self._cache: list[_CachedScene] = []
        self.max_cached_scenes = 4

    # ------------------------------------------------------------------ public
    def render(self, scene: RenderScene) -> RenderOutput:
        """Render ``scene``.

        Returns:
            RenderOutput with ``image`` (H, W, 3) float32 linear RGB, differentiable w.r.t.
            ``scene.vertices`` (silhouettes included), ``scene.vertex_colors`` and the camera pose (through
            the world-to-camera transform; light directions are not differentiated w.r.t. the camera
            rotation, which only matters for world-fixed lights: the headlight is exact); ``alpha`` (H, W)
            float32 coverage in [0, 1] (not differentiable); ``face_index`` None. Tensors are on the
            device of ``scene.vertices``.
        """
        self._activate()
        cam = scene.camera
        out_device = scene.vertices.device
        vertices, colors, faces = self._check(scene)
        background = torch.as_tensor(scene.background, dtype=torch.float32).detach().reshape(-1)
        if background.numel() != 3:
            raise ParameterError(f"mitsuba renderer: background must have 3 values, got {background.numel()}")
        seed = self.seed + self.calls if self.vary_seed else self.seed
        self.calls += 1

        if faces.shape[0] == 0:  # nothing to render: the background, still attached to the graph
            h, w = cam.height, cam.width
            zero = (vertices.sum() + colors.sum()) * 0.0
            image = background.to(out_device).expand(h, w, 3) + zero
            return RenderOutput(image=image, alpha=torch.zeros(h, w, device=out_device), face_index=None)

        lights = scene.lighting.resolved(cam)
        rotation = cam.rotation.detach().to(torch.float32).cpu()
        light_dirs = [(rotation @ light.direction.detach().float().cpu()) for light in lights]
        light_rgbs = [_rgb(light.intensity, "light intensity") for light in lights]
        ambient = _rgb(scene.lighting.ambient, "ambient")
        has_ambient = bool((ambient != 0).any())
        entry = self._scene_for(cam, faces, vertices.shape[0], len(lights), has_ambient)

        cam_vertices = cam.world_to_camera(vertices.to(cam.rotation.dtype)).to(self.device, torch.float32)
        cam_vertices = cam_vertices.contiguous()
        colors_dev = colors.to(self.device).contiguous()
        state = _FrameState(
            vertices=cam_vertices.detach(),
            colors=colors_dev.detach().clone(),
            light_dirs=light_dirs,
            light_rgbs=light_rgbs,
            ambient=ambient,
            background=background,
            seed=seed,
        )
        if cam_vertices.requires_grad or colors_dev.requires_grad:
            result = _MitsubaRenderFunction.apply(cam_vertices, colors_dev, self, entry, state)
        else:
            result = self._primal(entry, state)
        image = result[..., :3].to(out_device)
        alpha = result[..., 3].detach().clamp(0.0, 1.0).to(out_device)
        return RenderOutput(image=image, alpha=alpha, face_index=None)

    # ------------------------------------------------------------------ helpers
    def _activate(self) -> None:
        if self._mi.variant() != self.variant:
            self._mi.set_variant(self.variant)

    def _check(self, scene: RenderScene) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        v, c, faces = scene.validated("mitsuba renderer")
        faces = faces.to("cpu")
        cam = scene.camera
        if abs(cam.fx - cam.fy) > 1e-6 * max(cam.fx, cam.fy):
            raise ParameterError(
                f"mitsuba renderer: Mitsuba's camera has square pixels, so fx must equal fy; got "
                f"fx={cam.fx}, fy={cam.fy} (scale both focal lengths by the same factor)"
            )
        return v, c.to(torch.float32), faces

    def _scene_for(self, cam: Any, faces: torch.Tensor, n_vertices: int, n_lights: int, ambient: bool) -> Any:
        key = (
            float(cam.fx),
            float(cam.fy),
            float(cam.cx),
            float(cam.cy),
            int(cam.width),
            int(cam.height),
            n_vertices,
            tuple(faces.shape),
            n_lights,
            ambient,
        )
        for i, entry in enumerate(self._cache):
            if entry.key == key and torch.equal(entry.faces, faces):
                self._cache.insert(0, self._cache.pop(i))
                return entry
        entry = self._build(key, cam, faces, n_vertices, n_lights, ambient)
        self._cache.insert(0, entry)
        del self._cache[self.max_cached_scenes :]
        return entry

    def _build(
        self, key: tuple, cam: Any, faces: torch.Tensor, n_vertices: int, n_lights: int, ambient: bool
    ) -> _CachedScene:
        mi = self._mi
        props = mi.Properties()
        props["bsdf"] = mi.load_dict(
            {"type": "diffuse", "reflectance": {"type": "mesh_attribute", "name": "vertex_color"}}
        )
        props["face_normals"] = not self.smooth_normals
        mesh = mi.Mesh(_MESH, n_vertices, faces.shape[0], props=props, has_vertex_normals=self.smooth_normals)
        mesh.add_attribute("vertex_color", 3, [0.5] * (3 * n_vertices))
        mesh_params = mi.traverse(mesh)
        mesh_params["faces"] = mi.UInt32(faces.to(torch.int32).reshape(-1).numpy())
        mesh_params.update()

        w, h = int(cam.width), int(cam.height)
        fov = math.degrees(2.0 * math.atan(0.5 * h / float(cam.fy)))
        desc: dict[str, Any] = {
            "type": "scene",
            "sensor": {
                "type": "perspective",
                "fov": fov,
                "fov_axis": "y",
                # OpenCV principal point (pixel centres at integers) -> Mitsuba film coordinates (+0.5).
                # Mitsuba's offset is film centre minus principal point, in units of the film size.
                "principal_point_offset_x": 0.5 - (float(cam.cx) + 0.5) / w,
                "principal_point_offset_y": 0.5 - (float(cam.cy) + 0.5) / h,
                "near_clip": 1e-3,
                "far_clip": 1e5,
                "to_world": mi.ScalarTransform4f(_AXIS_FLIP),
                "film": {
                    "type": "hdrfilm",
                    "width": w,
                    "height": h,
                    "pixel_format": "rgba",
                    "sample_border": True,
                    "rfilter": {"type": "box"},
                },
                "sampler": {"type": "independent", "sample_count": self.spp},
            },
            _MESH: mesh,
        }
        light_keys = []
        for i in range(n_lights):
            desc[f"light{i}"] = {"type": "directional", "direction": [0.0, 0.0, 1.0], "irradiance": 1.0}
            light_keys.append((f"light{i}.to_world", f"light{i}.irradiance.value"))
        if ambient:
            # Emitter sampling then always picks a directional light (delta, noise free); the ambient term
            # is estimated by the cosine-weighted BSDF sample alone, which suits a Lambertian surface.
            desc["ambient"] = {
                "type": "constant",
                "radiance": 1.0,
                "sampling_weight": 0.0 if n_lights else 1.0,
            }
        mscene = mi.load_dict(desc)

        iprops = mi.Properties("direct_projective")
        iprops["sppc"] = self.spp
        iprops["sppp"] = self.silhouette_spp
        iprops["sppi"] = 0
        iprops["hide_emitters"] = True
        integrator = self._integrator_class(iprops)
        params = mi.traverse(mscene)
        keep = [f"{_MESH}.vertex_positions", f"{_MESH}.vertex_color"]
        keep += [k for pair in light_keys for k in pair]
        if ambient:
            keep.append("ambient.radiance.value")
        params.keep(keep)
        return _CachedScene(
            key, faces, mscene, params, integrator, light_keys, "ambient.radiance.value" if ambient else None
        )

    def _apply(self, entry: _CachedScene, state: _FrameState, vertices: Any, colors: Any) -> None:
        """Load one call's state into the cached scene (``vertices``/``colors``: flat Dr.Jit Floats)."""
        mi, dr = self._mi, self._dr
        params = entry.params
        params[f"{_MESH}.vertex_positions"] = vertices
        params[f"{_MESH}.vertex_color"] = colors
        for (to_world_key, irradiance_key), d, rgb in zip(
            entry.light_keys, state.light_dirs, state.light_rgbs, strict=True
        ):
            params[to_world_key] = dr.opaque(mi.Transform4f(_frame_matrix(d)))
            params[irradiance_key] = dr.opaque(mi.Color3f(*(math.pi * float(x) for x in rgb)))
        if entry.ambient_key is not None:
            params[entry.ambient_key] = dr.opaque(mi.Color3f(*(float(x) for x in state.ambient)))
        params.update()
        entry.integrator.set_background(tuple(float(x) for x in state.background))

    def _primal(self, entry: _CachedScene, state: _FrameState) -> torch.Tensor:
        """(H, W, 4) RGBA film of one call, no gradients."""
        mi, dr = self._mi, self._dr
        self._activate()
        with dr.suspend_grad():
            self._apply(entry, state, _flat(mi, state.vertices), _flat(mi, state.colors))
            film = entry.integrator.render(
                scene=entry.scene,
                sensor=entry.scene.sensors()[0],
                seed=dr.opaque(mi.UInt32, state.seed),
                spp=self.spp,
                develop=True,
                evaluate=True,
            )
        return film.torch().clone()

    def _backward(
        self, entry: _CachedScene, state: _FrameState, grad_film: torch.Tensor, need_v: bool, need_c: bool
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Vector-Jacobian product of the film w.r.t. the camera-frame vertices and the colours.

        The scene is reloaded with this call's state first, so backward passes may come in any order
        after any number of other renders.
        """
        mi, dr = self._mi, self._dr
        self._activate()
        vertices, colors = _flat(mi, state.vertices), _flat(mi, state.colors)
        if need_v:
            dr.enable_grad(vertices)
        if need_c:
            dr.enable_grad(colors)
        self._apply(entry, state, vertices, colors)
        grad_in = mi.TensorXf(grad_film.detach().to(self.device, torch.float32).contiguous())
        seed_grad = mi.sample_tea_32(state.seed, 1)[0]  # decorrelated from the primal samples
        entry.integrator.render_backward(
            entry.scene,
            entry.params,
            grad_in,
            entry.scene.sensors()[0],
            dr.opaque(mi.UInt32, seed_grad),
            0,  # 0: use the integrator's own sppc/sppp/sppi (a nonzero value would override them all)
        )
        grad_v = dr.grad(vertices).torch().reshape(-1, 3).clone() if need_v else None
        grad_c = dr.grad(colors).torch().reshape(-1, 3).clone() if need_c else None
        # Leave the scene detached, so no AD graph outlives this call.
        with dr.suspend_grad():
            self._apply(entry, state, dr.detach(vertices), dr.detach(colors))
        return grad_v, grad_c


class _MitsubaRenderFunction(torch.autograd.Function):
    """torch autograd node around one Mitsuba render: forward = primal film, backward = Mitsuba's adjoint."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        vertices: torch.Tensor,
        colors: torch.Tensor,
        renderer: MitsubaRenderer,
        entry: _CachedScene,
        state: _FrameState,
    ) -> torch.Tensor:
        ctx.renderer, ctx.entry, ctx.state = renderer, entry, state
        return renderer._primal(entry, state)

    @staticmethod
    def backward(ctx: Any, grad_film: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        grad_v, grad_c = ctx.renderer._backward(
            ctx.entry, ctx.state, grad_film, ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        )
        return grad_v, grad_c, None, None, None


def _flat(mi: Any, t: torch.Tensor) -> Any:
    """A (N, 3) torch tensor as a flat Dr.Jit Float (x0, y0, z0, x1, ...), a copy."""
    return mi.Float(t.detach().reshape(-1).contiguous())


def _frame_matrix(direction: torch.Tensor) -> list[list[float]]:
    """(4, 4) rotation (nested lists) taking local +Z to the unit vector ``direction`` (3,)."""
    n = direction.double() / direction.double().norm()
    helper = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    if abs(float(n[0])) > 0.9:
        helper = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    s = torch.linalg.cross(helper, n)
    s = s / s.norm()
    t = torch.linalg.cross(n, s)
    m = torch.eye(4, dtype=torch.float64)
    m[:3, 0], m[:3, 1], m[:3, 2] = s, t, n
    return m.tolist()


def _rgb(value: Any, what: str) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=torch.float32).detach().cpu().reshape(-1)
    if t.numel() == 1:
        t = t.expand(3)
    if t.numel() != 3:
        raise ParameterError(f"mitsuba renderer: {what} must be a scalar or 3 values, got {t.numel()}")
    return t
