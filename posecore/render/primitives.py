"""Simple meshes for tests and benchmarks (icospheres: 20 * 4**n triangles, closed, outward-facing)."""

from __future__ import annotations

import torch


def icosphere(subdivisions: int = 3, radius: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """A unit icosphere, counter-clockwise seen from outside.

    Args:
        subdivisions: each level splits every triangle in four (5 levels: 20,480 triangles, SMPL-X-sized).
        radius: sphere radius, metres.

    Returns:
        vertices (V, 3) float32, faces (F, 3) int64 with F = 20 * 4**subdivisions.
    """
    t = (1.0 + 5.0**0.5) / 2.0
    verts = [
        (-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t),
        (0, -1, -t), (0, 1, -t), (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1),
    ]  # fmt: skip
    faces = [
        (0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4), (11, 10, 2),
        (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9), (4, 9, 5), (2, 4, 11),
        (6, 2, 10), (8, 6, 7), (9, 8, 1),
    ]  # fmt: skip
    v = torch.tensor(verts, dtype=torch.float64)
    v = v / v.norm(dim=1, keepdim=True)
    f = torch.tensor(faces, dtype=torch.int64)
    for _ in range(subdivisions):
        edges = torch.cat([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])  # (3F, 2): ab, bc, ca
        key_lo, key_hi = edges.min(dim=1).values, edges.max(dim=1).values
        keys = key_lo * v.shape[0] + key_hi
        unique, inverse = torch.unique(keys, return_inverse=True)
        mids = v[unique // v.shape[0]] + v[unique % v.shape[0]]
        mids = mids / mids.norm(dim=1, keepdim=True)
        mid_index = v.shape[0] + inverse.reshape(3, -1)  # ab, bc, ca per face
        v = torch.cat([v, mids])
        a, b, c = f[:, 0], f[:, 1], f[:, 2]
        ab, bc, ca = mid_index[0], mid_index[1], mid_index[2]
        f = torch.cat([torch.stack(x, dim=1) for x in ((a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca))])
    return (v * radius).to(torch.float32), f
