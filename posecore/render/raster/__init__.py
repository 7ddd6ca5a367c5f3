"""PoseFit's own differentiable rasteriser: deterministic, noise-free, pure torch (CPU or CUDA).

Pipeline, per render (one module each):

1. **Visibility** (:mod:`.visibility`, no gradient): project the vertices, drop faces behind the near plane,
   back-facing or outside the view, and z-buffer the rest at pixel centres; cost grows with covered pixels.
2. **Shading** (:mod:`.shading`, differentiable): perspective-correct barycentrics at every covered pixel
   centre, interpolated vertex normals and albedo, Lambert with directional lights plus ambient.
3. **Analytic antialiasing** (:mod:`.antialias`, differentiable, Laine et al. 2020): colours are blended
   across silhouette edges by where each edge crosses the segment between two pixel centres, so silhouette
   and occlusion edges pass gradient to the vertices that form them: the term a plain z-buffer drops.

:mod:`.topology` holds what depends on the mesh alone (face adjacency, vertex normals);
:mod:`.renderer` puts the steps together as :class:`RasterRenderer`.
"""

from posecore.render.raster.antialias import silhouette_crossed_pairs
from posecore.render.raster.renderer import RasterRenderer
from posecore.render.raster.topology import face_adjacency, vertex_normals
from posecore.render.raster.visibility import rasterize

__all__ = [
    "RasterRenderer",
    "face_adjacency",
    "rasterize",
    "silhouette_crossed_pairs",
    "vertex_normals",
]
