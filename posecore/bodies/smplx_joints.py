"""SMPL-X's joint names and kinematic tree, as data (no smplx import needed).

The order is that of ``smplx.joint_names.JOINT_NAMES[:55]`` (smplx 0.1.28); the parents are
``kintree_table[0]`` of the official model files.
"""

from __future__ import annotations

_HAND_JOINTS = [f"{finger}{i}" for finger in ("index", "middle", "pinky", "ring", "thumb") for i in (1, 2, 3)]

SMPLX_BODY_JOINT_NAMES: list[str] = [
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
]  # fmt: skip
"""The root and the 21 body joints (SMPL's first 22)."""

LEFT_HAND_JOINT_NAMES: list[str] = [f"left_{n}" for n in _HAND_JOINTS]
RIGHT_HAND_JOINT_NAMES: list[str] = [f"right_{n}" for n in _HAND_JOINTS]

SMPLX_JOINT_NAMES: list[str] = [
    *SMPLX_BODY_JOINT_NAMES,
    "jaw",
    "left_eye_smplhf",
    "right_eye_smplhf",
    *LEFT_HAND_JOINT_NAMES,
    *RIGHT_HAND_JOINT_NAMES,
]
"""The 55 SMPL-X joints, root first."""

SMPLX_PARENTS: list[int] = [
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15,
    20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38,
    21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50, 21, 52, 53,
]  # fmt: skip
"""Parent index of each of the 55 joints (-1 for the root)."""

SMPL_JOINT_NAMES: list[str] = [*SMPLX_BODY_JOINT_NAMES, "left_hand", "right_hand"]
"""The 24 SMPL joints (SMPL-X names for the 22 shared ones)."""
