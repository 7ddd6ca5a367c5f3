"""redner backend: differentiable Monte Carlo rasterisation with edge sampling (Li et al. 2018).

redner (https://github.com/BachiLi/redner) is the renderer of the paper PoseFit reproduces. It is
optional: it has no wheel for Python 3.11, so it must be built from its public source and put on
``PYTHONPATH``. ``pyredner`` is imported only when a :class:`RednerRenderer` is constructed, so
``import posecore.render.redner_backend`` always works.

How the scene is handed to redner:

- **Camera.** Geometry is moved into the OpenCV camera frame in torch (``camera.world_to_camera``), so
  gradients with respect to the camera pose flow through torch. redner sees a fixed pinhole camera at
  the origin whose ``cam_to_world`` is ``diag(1, -1, 1, 1)`` (redner's camera frame is +X right, +Y up,
  +Z forward; OpenCV's is +Y down). The intrinsics go in as redner's ``intrinsic_mat``, which is in
  units of half the image *width* with the pixel-area convention (pixel ``i`` spans ``[i, i + 1)``)::

      [[2 fx / W, 0,        2 (cx + 0.5) / W - 1  ],
       [0,        2 fy / W, (H - 2 (cy + 0.5)) / W],
       [0,        0,        1                     ]]

  The ``+ 0.5`` maps OpenCV's pixel centres at integers to redner's pixel centres at half-integers.
  ``fx != fy`` and off-centre principal points are exact.
- **Shading** follows :mod:`posecore.render.scene`: ``albedo * (ambient + sum_i intensity_i *
  max(0, n . -d_i))`` with ``d_i`` the (unit) direction light *i* travels, headlight included, no
  shadows, one-sided (back faces get ambient only). It is evaluated **per vertex in torch** (Gouraud
  shading, area-weighted vertex normals over *all* faces of the mesh, so a ``face_mask`` does not change
  the shading of the faces it keeps) and handed to redner as the vertex colour; redner interpolates it
  and returns the ``diffuse_reflectance`` and ``alpha`` G-buffer channels, averaged over ``spp`` jittered
  samples per pixel. A pixel is then a *linear* function of what redner renders, which redner's edge
  sampling assumes. Shading per pixel from a normal G-buffer (what ``pyredner.render_deferred`` does) is
  nonlinear in the G-buffer: its silhouette gradients came out up to 2.7x off finite differences.
  Gouraud differs from per-pixel (Phong) interpolation of the normal, as in the other backends, by a
  second-order amount in the triangle size. The vertex normals are also given to redner as shading
  normals: that tells it the surface is smooth, so it samples only silhouette edges (without them it
  samples every edge and the gradients came out noisier and ~6 % low).
- **Flat shading** (``smooth_normals=False``) is refused: per-face colours need split vertices, and
  redner's edge sampling then counts each edge once per adjacent face (gradients 2-5x too large).
- **Background.** The colour channels are zero where the mesh is missed, so the redner output is the
  coverage-premultiplied foreground; the image is ``rgb + (1 - alpha) * background``: pixels the mesh does
  not touch equal ``scene.background`` exactly and edge pixels blend by coverage.
- **Noise.** Each call uses seed ``seed + number of earlier calls`` (redner derives the backward seed from
  it), so successive renders decorrelate. ``sample_pixel_center`` stays off: the pixel integral is what
  makes the image differentiable at silhouettes.
- **Device.** CUDA when ``torch.cuda.is_available()`` and ``pyredner.get_use_gpu()`` (call
  ``pyredner.set_use_gpu(False)`` first for a CPU-only redner build on a CUDA machine), else CPU. Outputs
  are returned on the device of ``scene.vertices``.
"""

from __future__ import annotations

from types import ModuleType

import torch

from posecore.errors import BackendUnavailableError, ParameterError
from posecore.render.scene import RenderOutput, RenderScene

INSTALL_HINT = (
    "the redner backend needs pyredner, which has no wheel for Python 3.11: build redner from its public "
    "source (https://github.com/BachiLi/redner) and put the directory holding `pyredner` and `redner*.so` "
    "on PYTHONPATH"
)
_SEED_MODULUS = 2**31 - 1_000_004  # keep seed and redner's derived backward seed (+1000003) in int32


def import_pyredner() -> ModuleType:
    """Import ``pyredner`` (with its timing printout off).

    Raises:
        BackendUnavailableError: if pyredner or its native module does not import.
    """
    try:
        import pyredner
    except (ImportError, OSError) as exc:
        raise BackendUnavailableError(f"{INSTALL_HINT} (import failed: {exc})") from exc
    pyredner.set_print_timing(False)
    return pyredner


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals.

    Args:
        vertices: (V, 3) positions.
        faces: (F, 3) int64 vertex indices, counter-clockwise seen from outside.

    Returns:
        (V, 3) unit normals (zero for vertices no face uses), differentiable w.r.t. ``vertices``.
    """
    v = vertices[faces]  # (F, 3, 3)
    face_n = torch.linalg.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0], dim=-1)  # length = 2 * area
    normals = torch.zeros_like(vertices).index_add(0, faces.reshape(-1), face_n.repeat_interleave(3, dim=0))
    return normals / normals.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def redner_intrinsic_matrix(fx: float, fy: float, cx: float, cy: float, width: int, height: int) -> torch.Tensor:
    """(3, 3) float32 redner ``intrinsic_mat`` for OpenCV intrinsics (pixels, centres at integers)."""
    return torch.tensor(
        [
            [2.0 * fx / width, 0.0, 2.0 * (cx + 0.5) / width - 1.0],
            [0.0, 2.0 * fy / width, (height - 2.0 * (cy + 0.5)) / width],
            [0.0, 0.0, 1.0],
        ],
        dtype=torch.float32,
    )


class RednerRenderer:
    """Render a :class:`~posecore.render.scene.RenderScene` with redner (see the module docstring).

    Args:
        spp: samples per pixel, forward and backward (>= 1). Noise in image and gradients falls as
            ``1 / sqrt(spp)``; cost grows linearly.
        seed: seed of the first call; call ``k`` (from 0) uses ``seed + k``.
        smooth_normals: must be True (Gouraud shading with area-weighted vertex normals); flat shading
            is not supported (see the module docstring).

    Raises:
        BackendUnavailableError: if pyredner does not import.
        ParameterError: if ``spp`` is not a positive integer or ``smooth_normals`` is False.
    """

    name = "redner"

    def __init__(self, spp: int = 4, seed: int = 0, smooth_normals: bool = True) -> None:
        if isinstance(spp, bool) or not isinstance(spp, int) or spp < 1:
            raise ParameterError(f"redner renderer: spp must be a positive integer, got {spp!r}")
        if not smooth_normals:
            raise ParameterError(
                "redner renderer: smooth_normals=False (flat shading) is not supported: per-face colours need "
                "split vertices, and redner's edge sampling then counts each edge once per adjacent face "
                "(gradients 2-5x too large); use smooth_normals=True or another backend"
            )
        self.spp = spp
        self.seed = int(seed)
        self.smooth_normals = bool(smooth_normals)
        self.calls = 0
        self._pyredner = import_pyredner()
        use_cuda = torch.cuda.is_available() and bool(self._pyredner.get_use_gpu())
        self.device = torch.device("cuda") if use_cuda else torch.device("cpu")
        self._material = self._pyredner.Material(use_vertex_color=True)
        self._cam_to_world = torch.diag(torch.tensor([1.0, -1.0, 1.0, 1.0]))

    def render(self, scene: RenderScene) -> RenderOutput:
        """Render ``scene``.

        Returns:
            RenderOutput with ``image`` (H, W, 3) float32 linear RGB (not clamped), differentiable w.r.t.
            ``scene.vertices`` (silhouettes included), ``scene.vertex_colors``, the camera pose, the light
            intensities, ambient and background; ``alpha`` (H, W) float32 coverage in [0, 1] (its
            silhouette gradient included); ``face_index`` None. On the device of ``scene.vertices``.

        Raises:
            ParameterError: for malformed vertices, faces, colours, face mask or background.
        """
        pyredner = self._pyredner
        cam = scene.camera
        h, w = cam.height, cam.width
        out_device = scene.vertices.device
        vertices, colors, faces = self._check(scene)
        background = torch.as_tensor(scene.background).to(self.device, torch.float32).reshape(-1)
        if background.numel() != 3:
            raise ParameterError(f"redner renderer: background must have 3 values, got {background.numel()}")
        seed = (self.seed + self.calls) % _SEED_MODULUS
        self.calls += 1

        vertices = vertices.to(self.device, torch.float32)
        colors = colors.to(self.device, torch.float32)
        if faces.shape[0] == 0:  # nothing to render: the background, still attached to the graph
            zero = (vertices.sum() + colors.sum()) * 0.0
            image = background.expand(h, w, 3) + zero
            return RenderOutput(image=image.to(out_device), alpha=torch.zeros(h, w, device=out_device), face_index=None)

        # Per-vertex Lambert shading (world frame: dot products do not depend on the frame).
        normals = vertex_normals(vertices, scene.faces.detach().to(self.device, torch.int64))
        vertex_rgb = colors * self._irradiance(scene, normals)  # (V, 3)
        rotation = cam.rotation.to(self.device, torch.float32)
        cam_vertices = vertices @ rotation.T + cam.translation.to(self.device, torch.float32)  # OpenCV frame
        # Shading normals: redner then samples only silhouette edges (see the module docstring).
        redner_normals = (normals.detach() @ rotation.detach().T).contiguous()

        camera = pyredner.Camera(
            cam_to_world=self._cam_to_world,
            intrinsic_mat=redner_intrinsic_matrix(cam.fx, cam.fy, cam.cx, cam.cy, w, h),
            resolution=(h, w),
        )
        obj = pyredner.Object(
            vertices=cam_vertices.to(torch.float32).contiguous(),
            indices=faces.to(self.device, torch.int32).contiguous(),
            material=self._material,
            colors=vertex_rgb.to(torch.float32).contiguous(),
            normals=redner_normals,
        )
        g_buffer = pyredner.render_g_buffer(
            pyredner.Scene(camera=camera, objects=[obj]),
            channels=[pyredner.channels.diffuse_reflectance, pyredner.channels.alpha],
            num_samples=(self.spp, self.spp),
            seed=seed,
            sample_pixel_center=False,
            device=self.device,
        )  # (H, W, 4): coverage-premultiplied colour, alpha
        alpha = g_buffer[..., 3]
        image = g_buffer[..., :3] + (1.0 - alpha)[..., None] * background
        return RenderOutput(image=image.to(out_device), alpha=alpha.to(out_device), face_index=None)

    # ------------------------------------------------------------------ helpers
    def _irradiance(self, scene: RenderScene, normals: torch.Tensor) -> torch.Tensor:
        """(N, 3) ``ambient + sum_i intensity_i * max(0, n . -d_i)`` for (N, 3) unit world normals."""
        lighting = scene.lighting
        shade = torch.as_tensor(lighting.ambient).to(self.device, torch.float32).reshape(1, 3).expand_as(normals)
        for light in lighting.resolved(scene.camera):
            d = light.direction.to(self.device, torch.float32).reshape(3)
            intensity = torch.as_tensor(light.intensity).to(self.device, torch.float32).reshape(1, -1)
            if intensity.shape[1] not in (1, 3):
                raise ParameterError(
                    f"redner renderer: light intensity must have 1 or 3 values, got {intensity.shape[1]}"
                )
            shade = shade + intensity * (-(normals @ d)).clamp_min(0.0)[:, None]
        return shade

    @staticmethod
    def _check(scene: RenderScene) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Validate the mesh; returns vertices, vertex colours and the (F', 3) int64 faces to render."""
        return scene.validated("redner renderer")
