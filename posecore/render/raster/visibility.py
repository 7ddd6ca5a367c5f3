"""Screen-space triangle geometry and z-buffered visibility at pixel centres.

Pixel coordinates follow OpenCV: x right, y down, pixel centres at integers. A counter-clockwise (outward)
face projects with a negative doubled signed area in these coordinates.

Triangles are *planar*: ``x`` and ``y`` are (3, N), one contiguous row per corner, so every operation runs
over contiguous memory (several times faster on the CPU than (N, 3, 2) rows).
"""

from __future__ import annotations

import torch

NEAR = 1e-3  # metres: faces with a vertex closer than this to the camera plane are dropped
_NO_HIT = torch.iinfo(torch.int64).max


def doubled_signed_area(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(N,) twice the signed area of planar screen triangles x, y (3, N); negative for front faces."""
    return (x[1] - x[0]) * (y[2] - y[0]) - (x[2] - x[0]) * (y[1] - y[0])


def edge_functions(
    x: torch.Tensor, y: torch.Tensor, px: torch.Tensor, py: torch.Tensor, orientation: torch.Tensor | float
) -> torch.Tensor:
    """Edge functions of points with respect to their triangles, positive inside.

    Args:
        x, y: (3, N) planar screen triangles. px, py: (N,) one point per triangle.
        orientation: (N,) or scalar, the sign of each triangle's doubled signed area (+1 or -1).

    Returns:
        (3, N): row i is twice the signed area of (v_{i+1}, v_{i+2}, point) times ``orientation``; the three
        sum to twice the triangle's area, so divided by their sum they are the point's barycentrics. Computed
        from differences to the point, so a shared edge gives exactly opposite values in its two faces
        (watertight coverage).
    """
    x0, x1, x2 = (x - px).unbind(0)
    y0, y1, y2 = (y - py).unbind(0)
    return torch.stack([x1 * y2 - x2 * y1, x2 * y0 - x0 * y2, x0 * y1 - x1 * y0]) * orientation


def longest_edge(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(N,) length of the longest edge of planar triangles x, y (3, N)."""
    x0, x1, x2 = x.unbind(0)
    y0, y1, y2 = y.unbind(0)
    squared = torch.maximum(
        torch.maximum((x1 - x0).square() + (y1 - y0).square(), (x2 - x1).square() + (y2 - y1).square()),
        (x0 - x2).square() + (y0 - y2).square(),
    )
    return squared.sqrt()


def rasterize(
    uv: torch.Tensor,
    depth: torch.Tensor,
    faces: torch.Tensor,
    width: int,
    height: int,
    cull_backfaces: bool = True,
) -> torch.Tensor:
    """Z-buffer visibility at pixel centres (no gradient).

    Args:
        uv: (V, 2) pixel coordinates. depth: (V,) camera-space depth, metres. faces: (F, 3) int64.
        width, height: image size in pixels.
        cull_backfaces: skip faces whose projection is clockwise (facing away, for counter-clockwise meshes).

    Returns:
        (H, W) int64 index into ``faces`` of the nearest face at each pixel centre, -1 where none.
    """
    with torch.no_grad():
        corners = faces.t().reshape(-1)  # corner-major: planar (3, F) after a view
        x, y = (uv[:, k].index_select(0, corners).view(3, -1) for k in (0, 1))
        z = depth.index_select(0, corners).view(3, -1)
        return zbuffer(x, y, z, doubled_signed_area(x, y), width, height, cull_backfaces)


def zbuffer(
    x: torch.Tensor,
    y: torch.Tensor,
    z: torch.Tensor,
    area: torch.Tensor,
    width: int,
    height: int,
    cull_backfaces: bool,
) -> torch.Tensor:
    """The z-buffer behind :func:`rasterize`.

    Args:
        x, y: (3, F) planar corner pixel coordinates. z: (3, F) corner depths, metres.
        area: (F,) doubled signed areas. width, height: image size. cull_backfaces: drop back faces.

    Returns:
        (H, W) int64 face index per pixel centre, -1 where none.

    Each surviving face enumerates only the pixel centres inside its bounding box, so the cost grows with
    covered pixels, not pixels x faces. The depth test packs (float32 depth bits, face id) into one int64 and
    takes a scatter-min, so ties resolve to the lowest face id: the same input always gives the same image.
    """
    with torch.no_grad():
        device = x.device
        keep = (torch.minimum(torch.minimum(z[0], z[1]), z[2]) > NEAR) & (area.abs() > 1e-12)
        if cull_backfaces:
            keep &= area < 0
        ids = torch.nonzero(keep, as_tuple=True)[0]
        x, y = x.index_select(1, ids), y.index_select(1, ids)
        lo_x = torch.minimum(torch.minimum(x[0], x[1]), x[2]).ceil_().clamp_min_(0)
        lo_y = torch.minimum(torch.minimum(y[0], y[1]), y[2]).ceil_().clamp_min_(0)
        span_x = torch.maximum(torch.maximum(x[0], x[1]), x[2]).floor_().clamp_max_(width - 1) - lo_x + 1
        span_y = torch.maximum(torch.maximum(y[0], y[1]), y[2]).floor_().clamp_max_(height - 1) - lo_y + 1
        inside_view = torch.nonzero((span_x > 0) & (span_y > 0), as_tuple=True)[0]
        face_index = torch.full((height * width,), -1, dtype=torch.int64, device=device)
        if inside_view.numel() == 0:
            return face_index.view(height, width)
        ids, x, y = ids[inside_view], x.index_select(1, inside_view), y.index_select(1, inside_view)
        lo_x, lo_y = lo_x[inside_view].long(), lo_y[inside_view].long()
        span_x, span_y = span_x[inside_view].long(), span_y[inside_view].long()
        counts = span_x * span_y
        total = int(counts.sum())
        cand = torch.repeat_interleave(torch.arange(ids.numel(), device=device), counts, output_size=total)
        local = torch.arange(total, device=device) - (torch.cumsum(counts, 0) - counts).index_select(0, cand)
        cand_span_x = span_x.index_select(0, cand)
        row = torch.div(local, cand_span_x, rounding_mode="floor")
        px = lo_x.index_select(0, cand) + (local - row * cand_span_x)
        py = lo_y.index_select(0, cand) + row
        orientation = -1.0 if cull_backfaces else torch.sign(area.index_select(0, ids)).index_select(0, cand)
        w = edge_functions(
            x.index_select(1, cand), y.index_select(1, cand), px.to(x.dtype), py.to(x.dtype), orientation
        )
        hit = torch.nonzero((w[0] >= 0) & (w[1] >= 0) & (w[2] >= 0), as_tuple=True)[0]
        w, cand = w.index_select(1, hit), cand.index_select(0, hit)
        inv_z = (1.0 / z.index_select(1, ids)).index_select(1, cand)
        depth = (w[0] + w[1] + w[2]).clamp_min(1e-20) / (w[0] * inv_z[0] + w[1] * inv_z[1] + w[2] * inv_z[2])
        pixel = py.index_select(0, hit) * width + px.index_select(0, hit)
        # Positive float32 bit patterns sort like the floats: pack (depth, face) into one int64 key.
        key = (depth.to(torch.float32).view(torch.int32).to(torch.int64) << 32) | ids.index_select(0, cand)
        best = torch.full((height * width,), _NO_HIT, dtype=torch.int64, device=device)
        best.scatter_reduce_(0, pixel, key, reduce="amin")
        face_index = torch.where(best != _NO_HIT, best & 0xFFFFFFFF, face_index)
        return face_index.view(height, width)
