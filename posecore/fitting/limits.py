"""Anatomical joint limits: per-joint ranges of motion as a penalty outside the range.

Both SMPL-X and Anny rotate every joint in world-aligned axes at rest (see :mod:`posecore.detect.kinematics`), with
the body's left at +X. A joint's axis-angle rotation is therefore read in the body's anatomical axes
``(L, U, F)``: L = the body's left (+X; rotations about it are flexion/extension of hips, knees, spine, neck and
ankles), U = up (SMPL-X +Y, Anny +Z; rotations about it turn the spine and the legs about their long axes, and bend
the elbows of the T-posed arms), F = front (L x U; abduction of hips and shoulders, side bends of the spine). The
ranges below are written for the body's left side; the right side is their mirror image (``(wL, wU, wF) ->
(wL, -wU, -wF)``, :func:`mirror_components`).

Sources of the ranges (normal active range of motion of adults, in degrees; anatomical zero = standing, arms at
the side):

- American Academy of Orthopaedic Surgeons, *Joint Motion: Method of Measuring and Recording* (1965), and
  Greene & Heckman (eds.), *The Clinical Measurement of Joint Motion*, AAOS 1994: hip flexion 120, extension 30,
  abduction 45, adduction 30, internal/external rotation 45/45; knee flexion 135; ankle dorsiflexion 20, plantar
  flexion 50, inversion 35, eversion 15; shoulder flexion 180, extension 60, abduction 180, internal/external
  rotation 70/90; elbow flexion 150; forearm pronation/supination 80/80; wrist flexion/extension 80/70, radial/ulnar
  deviation 20/30; cervical flexion 45, extension 45, lateral bend 45, rotation 60; thoracolumbar flexion 80,
  extension 25, lateral bend 35, rotation 45.
- Soucie et al., "Range of motion measurements: reference values and a database for comparison studies",
  *Haemophilia* 17(3), 2011 (674 healthy subjects): the same joints, with knee flexion up to about 142 and elbow
  hyperextension of a few degrees.

How the tables become component bounds: a joint rotated about one anatomical axis has exactly that component;
combined motions are bounded per component (a box in axis-angle space), which is exact for single-axis motions
and a close, smooth bound for the moderate combinations of real poses. The spine's totals are shared out over the
model's spine segments. The margins are deliberately generous (athletes, judo throws, the shoulder joint of SMPL-X
also carrying clavicle motion, model joints that are not anatomical joints): the limits are there to rule out the
impossible (a knee or elbow bent the wrong way, a thigh turned 120 degrees, a neck twisted round), which is where
a single view's ambiguities lead, not to pull plausible poses to the middle. The arms' zero is the T-pose, so a
shoulder's abduction range (-90 down to the side, +90 overhead) is shifted by 90 degrees from the tables'.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from posecore.bodies.anny_body import SMPLX_TO_ANNY
from posecore.bodies.base import BodyModel

Bounds = tuple[tuple[float, float], tuple[float, float], tuple[float, float]]
"""((lo, hi) about L, (lo, hi) about U, (lo, hi) about F), degrees, for a left-side (or middle) joint."""

_SPINE: Bounds = ((-25.0, 45.0), (-40.0, 40.0), (-30.0, 30.0))
"""One spine segment: flexion (+L) 80 / extension 25 and rotation 45 of the whole thoracolumbar spine shared over
three segments, with room for the athletes' larger ranges."""

LEFT_SIDE_LIMITS: dict[str, Bounds] = {
    # Hip: flexion is -L (the thigh swings forward), abduction +F, rotation about U. Flexion 120 + knee-to-chest
    # margin, extension 30, abduction 45 (split-like judo stances: 70), adduction 30, rotation 45 each way.
    "left_hip": ((-150.0, 40.0), (-60.0, 60.0), (-40.0, 75.0)),
    # Knee: flexion is +L (the foot goes back), 135-142 in the tables; hyperextension a few degrees; the tibia's
    # rotation about U is about 30 degrees each way at a bent knee; varus/valgus only a few degrees.
    "left_knee": ((-180.0, 180.0), (-35.0, 35.0), (-180.0, 180.0)),  # twist (U) here; the bend: HINGES
    # Ankle: plantar flexion is +L (toes down) 50, dorsiflexion 20; inversion/eversion 35/15 about F.
    "left_ankle": ((-35.0, 65.0), (-35.0, 35.0), (-40.0, 40.0)),
    "left_foot": ((-50.0, 50.0), (-20.0, 20.0), (-20.0, 20.0)),
    # Clavicle (sterno-clavicular): elevation about 45 (+F on the left), protraction/retraction 15-30 (about U),
    # axial rotation about 30-50 (about L).
    "left_collar": ((-45.0, 45.0), (-35.0, 35.0), (-20.0, 45.0)),
    # Shoulder from the T-pose: abduction +F from -90 (arm at the side) to +90 (overhead), with 40-50 more for the
    # clavicle's share that SMPL-X's shoulder also carries; horizontal flexion (forward, across the body) is -U,
    # 130 across and 45 back (plus 30 when the arm is at the side, where forward flexion to 180 also reads as -U);
    # rotation about the arm's own axis (L) 70 internal / 90 external, with margin.
    "left_shoulder": ((-110.0, 110.0), (-150.0, 70.0), (-110.0, 140.0)),
    # Elbow from the T-pose: flexion is -U (the forearm swings forward), 150 in the tables; hyperextension a few
    # degrees, 25 allowed (hypermobile elbows; the benchmark's arms-over-head pose has 23); the forearm's
    # pronation/supination (80/80) is partly carried here, about L; no sideways bend beyond the carrying angle (F).
    "left_elbow": ((-95.0, 95.0), (-180.0, 180.0), (-180.0, 180.0)),  # twist (L) here; the bend: HINGES
    # Wrist: flexion/extension 80/70 and radial/ulnar deviation 20/30 (about U or F depending on the palm), and
    # what remains of pronation about L.
    "left_wrist": ((-70.0, 70.0), (-90.0, 90.0), (-90.0, 90.0)),
}
"""Ranges of the body's left side (and, through :func:`mirror_components`, the right), degrees, T-pose zero."""


@dataclass(frozen=True)
class Hinge:
    """A hinge joint's bend, bounded on where it points the next bone, whatever the joint's own twist.

    With ``d = R b`` the child bone's direction after the joint's rotation R (b its rest direction), the bend
    angle is ``atan2(d . t, d . b)`` with ``t = n x b`` (the way b turns about the hinge axis n when the joint
    bends), and the sideways angle ``atan2(d . n, |d - (d . n) n|)`` out of the hinge's plane. A twisted forearm or
    shin bends within the same plane, so the bound does not depend on the twist (bounded separately above).

    Attributes (left side; anatomical components (L, U, F)):
        bone: b. axis: n. bend: (lo, hi) degrees. side: the largest sideways angle, degrees.
    """

    bone: tuple[float, float, float]
    axis: tuple[float, float, float]
    bend: tuple[float, float]
    side: float


HINGES: dict[str, Hinge] = {
    # Knee: the shin (down, -U) swings back (-F) about L; flexion 135-142 in the tables, a few degrees of
    # hyperextension; varus/valgus a few degrees (15 allowed).
    "left_knee": Hinge(bone=(0.0, -1.0, 0.0), axis=(1.0, 0.0, 0.0), bend=(-8.0, 160.0), side=15.0),
    # Elbow: the T-posed forearm (+L on the left) swings forward (+F) about -U; flexion 150, hyperextension a few
    # degrees, 25 allowed (hypermobile elbows; the benchmark's arms-over-head pose has 23); sideways the carrying
    # angle is 10-15, 60 allowed: fits made by other tools (SMPLify-X) share the upper arm's twist between shoulder
    # and elbow, which tilts the elbow's plane.
    "left_elbow": Hinge(bone=(1.0, 0.0, 0.0), axis=(0.0, -1.0, 0.0), bend=(-25.0, 160.0), side=60.0),
}
"""Hinge joints of the left side (the right side mirrors them: b and n as vectors and pseudo-vectors)."""

MIDDLE_LIMITS: dict[str, Bounds] = {
    "spine1": _SPINE,
    "spine2": _SPINE,
    "spine3": _SPINE,
    # Cervical spine: flexion 45 / extension 45, rotation 60, lateral bend 45 (neck and head share them).
    "neck": ((-45.0, 50.0), (-60.0, 60.0), (-40.0, 40.0)),
    "head": ((-45.0, 50.0), (-60.0, 60.0), (-40.0, 40.0)),
}
"""Ranges of the joints on the body's midline, degrees."""

ANNY_EXTRA_SPINE = ("spine03", "spine01")
"""Anny's spine bones that SMPL-X has no joint for (Anny splits the spine into five): each gets one segment's range."""


def mirror_components(bounds: Bounds) -> Bounds:
    """The right side's bounds from the left side's: (wL, wU, wF) -> (wL, -wU, -wF) mirrors through the sagittal
    plane, so the U and F ranges swap ends and change sign."""
    (l_lo, l_hi), (u_lo, u_hi), (f_lo, f_hi) = bounds
    return ((l_lo, l_hi), (-u_hi, -u_lo), (-f_hi, -f_lo))


def anatomical_basis(body: BodyModel) -> torch.Tensor:
    """(3, 3) columns L, U, F: the body's left, up and front in the model's frame (left = +X in both models)."""
    up = body.up_axis.to(torch.float32)
    left = torch.tensor([1.0, 0.0, 0.0])
    front = torch.linalg.cross(left, up)
    return torch.stack([left, up, front], dim=1)


def _model_joint_index(body: BodyModel, smplx_name: str) -> int | None:
    if smplx_name in body.joint_names:
        return body.joint_index(smplx_name)
    if body.name == "anny" and smplx_name in SMPLX_TO_ANNY and SMPLX_TO_ANNY[smplx_name] in body.joint_names:
        return body.joint_index(SMPLX_TO_ANNY[smplx_name])
    return None


def limit_table(body: BodyModel) -> dict[int, Bounds]:
    """Joint index -> bounds (degrees, anatomical components) for every limited joint ``body`` has."""
    table: dict[str, Bounds] = dict(MIDDLE_LIMITS)
    for name, bounds in LEFT_SIDE_LIMITS.items():
        table[name] = bounds
        table["right_" + name[len("left_") :]] = mirror_components(bounds)
    out: dict[int, Bounds] = {}
    for name, bounds in table.items():
        index = _model_joint_index(body, name)
        if index is not None:
            out[index] = bounds
    if body.name == "anny":
        for name in ANNY_EXTRA_SPINE:
            if name in body.joint_names:
                out[body.joint_index(name)] = _SPINE
    return out


@dataclass
class JointLimits:
    """Box bounds on the anatomical components of some joints' axis-angle rotations.

    Attributes:
        joints: (N,) int64 indices of the limited joints.
        lower, upper: (N, 3) radians, bounds of (wL, wU, wF).
        basis: (3, 3) model frame -> anatomical components: ``components = rotations @ basis``.
        names: the N joints' names, for reports.
        hinge_joints: (K,) int64 hinge joints (knees, elbows; :class:`Hinge`). hinge_bones, hinge_axes: (K, 3)
            unit b and n in the model frame. hinge_lower, hinge_upper: (K, 2) radians, bounds of (bend, sideways).
        hinge_names: the K joints' names.
    """

    joints: torch.Tensor
    lower: torch.Tensor
    upper: torch.Tensor
    basis: torch.Tensor
    names: list[str]
    hinge_joints: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.int64))
    hinge_bones: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 3))
    hinge_axes: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 3))
    hinge_lower: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 2))
    hinge_upper: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 2))
    hinge_names: list[str] = field(default_factory=list)

    @classmethod
    def for_body(cls, body: BodyModel) -> JointLimits:
        """The anatomical limits of ``body`` (SMPL-X or Anny; a model without those joints gets an empty set)."""
        table = limit_table(body)
        joints = sorted(table)
        lower = torch.tensor([[math.radians(b[k][0]) for k in range(3)] for b in (table[j] for j in joints)])
        upper = torch.tensor([[math.radians(b[k][1]) for k in range(3)] for b in (table[j] for j in joints)])
        basis = anatomical_basis(body)
        hinges = []
        for name, hinge in HINGES.items():
            for side_name, mirror in ((name, False), ("right_" + name[len("left_") :], True)):
                index = _model_joint_index(body, side_name)
                if index is None:
                    continue
                bone, axis = torch.tensor(hinge.bone), torch.tensor(hinge.axis)
                if mirror:  # b is a vector (x -> -x), n a pseudo-vector ((x, y, z) -> (x, -y, -z)) in (L, U, F)
                    bone, axis = bone * torch.tensor([-1.0, 1.0, 1.0]), axis * torch.tensor([1.0, -1.0, -1.0])
                hinges.append((index, basis @ bone, basis @ axis, hinge))
        rad = math.radians
        return cls(
            joints=torch.tensor(joints, dtype=torch.int64),
            lower=lower.reshape(-1, 3),
            upper=upper.reshape(-1, 3),
            basis=basis,
            names=[body.joint_names[j] for j in joints],
            hinge_joints=torch.tensor([h[0] for h in hinges], dtype=torch.int64),
            hinge_bones=torch.stack([h[1] for h in hinges]) if hinges else torch.zeros(0, 3),
            hinge_axes=torch.stack([h[2] for h in hinges]) if hinges else torch.zeros(0, 3),
            hinge_lower=torch.tensor([[rad(h[3].bend[0]), -rad(h[3].side)] for h in hinges]).reshape(-1, 2),
            hinge_upper=torch.tensor([[rad(h[3].bend[1]), rad(h[3].side)] for h in hinges]).reshape(-1, 2),
            hinge_names=[body.joint_names[h[0]] for h in hinges],
        )

    def subset(self, joints: list[int]) -> JointLimits:
        """The limits of only ``joints`` (cheaper to evaluate when only they change)."""
        box = [i for i, j in enumerate(self.joints.tolist()) if j in joints]
        hinge = [i for i, j in enumerate(self.hinge_joints.tolist()) if j in joints]
        return JointLimits(
            self.joints[box], self.lower[box], self.upper[box], self.basis, [self.names[i] for i in box],
            self.hinge_joints[hinge], self.hinge_bones[hinge], self.hinge_axes[hinge], self.hinge_lower[hinge],
            self.hinge_upper[hinge], [self.hinge_names[i] for i in hinge],
        )  # fmt: skip

    def hinge_angles(self, rotations: torch.Tensor) -> torch.Tensor:
        """(K, 2) radians: (bend, sideways) of each hinge joint of ``rotations`` (J, 3); see :class:`Hinge`."""
        if self.hinge_joints.numel() == 0:
            return rotations.new_zeros(0, 2)
        from posecore.rotations import axis_angle_to_matrix

        r = axis_angle_to_matrix(rotations[self.hinge_joints])
        b, n = self.hinge_bones.to(rotations), self.hinge_axes.to(rotations)
        d = (r @ b[..., None])[..., 0]
        t = torch.linalg.cross(n, b)
        along, towards, out = (d * b).sum(-1), (d * t).sum(-1), (d * n).sum(-1)
        in_plane = torch.sqrt(along.square() + towards.square() + 1e-12)
        return torch.stack([torch.atan2(towards, along), torch.atan2(out, in_plane)], dim=-1)

    def hinge_excess(self, rotations: torch.Tensor) -> torch.Tensor:
        """(K, 2) radians by which each hinge's bend and sideways angle lie outside their ranges (0 inside)."""
        a = self.hinge_angles(rotations)
        return torch.relu(self.hinge_lower.to(a) - a) + torch.relu(a - self.hinge_upper.to(a))

    def components(self, rotations: torch.Tensor) -> torch.Tensor:
        """(N, 3) anatomical components (wL, wU, wF), radians, of the limited joints of ``rotations`` (J, 3)."""
        return rotations[self.joints] @ self.basis

    def excess(self, rotations: torch.Tensor) -> torch.Tensor:
        """(N, 3) radians by which each component lies outside its range (0 inside)."""
        c = self.components(rotations)
        return torch.relu(self.lower - c) + torch.relu(c - self.upper)

    def penalty(self, rotations: torch.Tensor) -> torch.Tensor:
        """Scalar: sum of squared excesses (rad^2); zero inside every range, smooth (C1) at the bounds.

        Args:
            rotations: (J, 3) axis-angle of every joint of the body, radians.
        """
        return (self.excess(rotations) ** 2).sum() + (self.hinge_excess(rotations) ** 2).sum()

    def violations(self, rotations: torch.Tensor, tolerance_deg: float = 0.5) -> list[tuple[str, str, float]]:
        """(joint name, axis "L"/"U"/"F", excess in degrees) of every component outside its range by more than
        ``tolerance_deg``."""
        excess = torch.rad2deg(self.excess(rotations.detach()))
        found = []
        for row, col in (excess > tolerance_deg).nonzero().tolist():
            found.append((self.names[row], "LUF"[col], round(float(excess[row, col]), 2)))
        hinge = torch.rad2deg(self.hinge_excess(rotations.detach()))
        for row, col in (hinge > tolerance_deg).nonzero().tolist():
            found.append((self.hinge_names[row], ("bend", "side")[col], round(float(hinge[row, col]), 2)))
        return found

    def max_excess_deg(self, rotations: torch.Tensor) -> float:
        """The largest excursion outside any range, degrees (0 inside every range)."""
        box = self.excess(rotations.detach())
        hinge = self.hinge_excess(rotations.detach())
        return float(torch.rad2deg(torch.cat([box.flatten(), hinge.flatten(), box.new_zeros(1)])).max())

    def project(self, rotations: torch.Tensor) -> torch.Tensor:
        """(J, 3) ``rotations`` with every limited joint's components clamped into their box ranges (the hinges'
        bends are left as they are)."""
        c = self.components(rotations)
        clamped = torch.maximum(torch.minimum(c, self.upper), self.lower)
        out = rotations.clone()
        out[self.joints] = clamped @ self.basis.T
        return out
