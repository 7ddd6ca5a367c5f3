"""The benchmark scene set: hard, judo-like poses with known answers, rendered by Blender Cycles.

    python scripts/make_benchmark_scenes.py --out DIR [--count N] [--size S] [--samples N] [--threads N]

Each scene is a folder ``DIR/NN_name/`` holding

* ``target.png`` (S x S RGB, the body composited over black) and ``mask.png`` (Cycles' alpha, the person mask),
  rendered by Blender Cycles through the ``bpy`` module (CPU, ``--samples`` paths per pixel) with a sun light,
  an area light, a grey-blue world light and a coloured Principled BSDF: lighting and material the fit does not
  know (it renders Lambert shading with a headlight and estimates one albedo), so it never sees its own image;
* ``truth.npz`` and ``init.npz`` in PoseFit's ``fit.npz`` format (:func:`posecore.results.fit_arrays`): the true
  parameters with the true camera, and the initialisation (perturbed like a faulty SMPLify-X fit) with the camera
  a fit starts from;
* ``scene.json``: model, part (selective scenes), cameras, the initialisation errors, material and lights.

The poses are out of distribution for SMPLify-X-style priors: an upside-down throw (global orientation flipped),
an inverted cartwheel, twisted legs, a deep forward lean, a raised leg, arms over the head, a crouch, a
sacrifice throw lying back, a shoulder throw. Initialisations get 15-30 degree errors (random axes, fixed seeds)
on the torso and limbs; one scene swaps the left and right arms, one has its camera orbited 10 degrees about the
body's up axis (the fit optimises that orbit angle), and three are selective (a part is given and only that
part is wrong). Most scenes use the free Anny model; three use the generated SMPL-X-format model
(:mod:`posecore.bodies.synthetic_smplx`, written into ``DIR/smplx_model``).

Poses are written once, with SMPL-X joint names and rotation vectors in Anny's world axes (+X = the body's left,
-Y = its front, +Z = up, radians); :func:`pose_for_body` maps them onto either model.
"""

from __future__ import annotations

import argparse
import json
import math
import pickle
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from posecore.bodies.base import BodyModel, BodyParams
from posecore.cameras.orbit import orbit_camera
from posecore.cameras.pinhole import PinholeCamera
from posecore.rotations import axis_angle_to_matrix, matrix_to_axis_angle

PoseTable = dict[str, tuple[float, float, float]]

SMPLX_MODEL_DIR = "smplx_model"
"""Sub-folder of a scene set holding the generated SMPL-X-format model (``smplx/SMPLX_NEUTRAL.npz``)."""

VPOSER_MODEL_DIR = "vposer_model"
"""Sub-folder of a scene set holding a generated VPoser v1.0 folder (``vposer_v1_0/``) for the SMPLify-X-layout
scenes whose body_pose is a VPoser code."""

SMPLIFYX_PCA_COMPONENTS = 12
"""SMPLify-X's default ``num_pca_comps``."""

TORSO_AND_LIMBS = (
    "spine2",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
)
"""Joints a faulty SMPLify-X-like initialisation gets wrong (15-30 degrees each) in whole-body scenes."""

ARM_JOINTS = ("shoulder", "elbow", "wrist")

# ------------------------------------------------------------------------------------------------ poses
JUDO_LEAN: PoseTable = {  # the demo's pose: forward lean, raised bent knee, right arm over the head
    "spine2": (0.25, 0.0, 0.0),
    "spine3": (0.15, 0.0, 0.10),
    "left_hip": (-1.2, 0.0, 0.15),
    "left_knee": (1.3, 0.0, 0.0),
    "right_hip": (0.15, 0.0, -0.1),
    "right_shoulder": (0.0, 2.2, 0.0),
    "right_elbow": (0.0, 0.0, 0.5),
    "left_shoulder": (-0.9, -0.3, 0.0),
    "left_elbow": (0.0, 0.0, -0.8),
    "head": (0.0, 0.0, 0.35),
}
UPSIDE_DOWN_THROW: PoseTable = {  # thrown over: head down, back to the camera, curled, legs bent
    "pelvis": (2.7, 0.0, 0.5),
    "spine2": (0.4, 0.0, 0.0),
    "left_hip": (-0.9, -0.3, 0.0),
    "left_knee": (1.4, 0.0, 0.0),
    "right_hip": (-0.3, 0.4, 0.0),
    "right_knee": (0.6, 0.0, 0.0),
    "left_shoulder": (-1.2, 0.3, 0.0),
    "right_shoulder": (-1.0, -0.2, 0.3),
    "left_elbow": (0.0, 0.0, -1.0),
    "right_elbow": (0.0, 0.0, 1.0),
    "head": (0.5, 0.0, 0.0),
}
CARTWHEEL: PoseTable = {  # inverted sideways: head down facing the camera, legs and arms spread
    "pelvis": (0.0, 2.8, 0.2),
    "left_hip": (0.0, -0.7, 0.0),
    "right_hip": (0.0, 0.7, 0.0),
    "left_shoulder": (0.0, -1.9, 0.0),
    "right_shoulder": (0.0, 1.9, 0.0),
    "spine3": (0.0, 0.2, 0.0),
    "left_knee": (0.3, 0.0, 0.0),
}
TWISTED_LEGS: PoseTable = {  # legs crossed and twisted, torso twisted, arms raised
    "left_hip": (-0.4, 0.45, 0.5),
    "left_knee": (0.9, 0.0, 0.0),
    "right_hip": (0.3, -0.2, -0.6),
    "right_knee": (0.5, 0.0, 0.0),
    "spine2": (0.0, 0.0, 0.6),
    "spine3": (0.0, 0.0, 0.3),
    "left_shoulder": (-0.3, -1.9, 0.0),
    "right_shoulder": (0.2, 1.6, 0.0),
    "right_elbow": (0.0, 0.0, 0.9),
}
DEEP_FORWARD_LEAN: PoseTable = {  # bowed from the hips, straight legs, arms reaching forward, head up
    "pelvis": (0.8, 0.0, 0.0),
    "left_hip": (-0.8, 0.0, 0.1),
    "right_hip": (-0.7, 0.0, -0.1),
    "spine2": (0.4, 0.0, 0.0),
    "spine3": (0.3, 0.0, 0.0),
    "left_shoulder": (-1.3, -0.2, 0.0),
    "right_shoulder": (-1.0, 0.3, 0.0),
    "left_elbow": (0.0, 0.0, -0.6),
    "head": (-0.6, 0.0, 0.0),
}
RAISED_LEG_KICK: PoseTable = {  # a straight leg kicked high forward, leaning back, arms opposed
    "right_hip": (-1.6, 0.0, -0.1),
    "right_knee": (0.15, 0.0, 0.0),
    "left_knee": (0.2, 0.0, 0.0),
    "spine2": (-0.2, 0.0, 0.0),
    "left_shoulder": (0.6, -0.4, 0.0),
    "right_shoulder": (-1.0, 0.6, 0.0),
    "left_elbow": (0.0, 0.0, -0.7),
    "right_elbow": (0.0, 0.0, 0.9),
    "head": (0.2, 0.0, -0.3),
}
ARMS_OVER_HEAD: PoseTable = {  # both arms over the head, back arched, wide stance
    "left_shoulder": (0.0, -2.3, 0.2),
    "right_shoulder": (0.0, 2.3, -0.2),
    "left_elbow": (0.0, 0.0, 0.4),
    "right_elbow": (0.0, 0.0, -0.4),
    "spine2": (-0.25, 0.0, 0.0),
    "spine3": (0.0, 0.15, 0.0),
    "head": (-0.3, 0.0, 0.0),
    "left_hip": (0.0, -0.25, 0.0),
    "right_hip": (0.0, 0.25, 0.0),
}
CROUCH: PoseTable = {  # deep crouch, torso forward, arms forward
    "pelvis": (0.5, 0.0, 0.0),
    "left_hip": (-2.0, 0.0, 0.2),
    "right_hip": (-1.9, 0.0, -0.2),
    "left_knee": (2.3, 0.0, 0.0),
    "right_knee": (2.2, 0.0, 0.0),
    "spine2": (0.3, 0.0, 0.0),
    "left_shoulder": (-1.2, -0.2, 0.0),
    "right_shoulder": (-1.2, 0.2, 0.0),
    "left_elbow": (0.0, 0.0, -0.5),
    "right_elbow": (0.0, 0.0, 0.5),
}
SACRIFICE_THROW: PoseTable = {  # tomoe nage: lying back, one leg high, the other bent, arms pulling
    "pelvis": (-1.2, 0.0, 0.2),
    "right_hip": (-2.0, 0.0, 0.0),
    "right_knee": (0.4, 0.0, 0.0),
    "left_hip": (-1.0, 0.0, 0.0),
    "left_knee": (1.8, 0.0, 0.0),
    "left_shoulder": (-1.4, -0.3, 0.0),
    "right_shoulder": (-1.4, 0.3, 0.0),
    "left_elbow": (0.0, 0.0, -1.2),
    "right_elbow": (0.0, 0.0, 1.2),
}
SHOULDER_THROW: PoseTable = {  # seoi nage: bent over and turned, knees bent, one arm up, one forward
    "pelvis": (0.9, 0.0, 0.4),
    "spine2": (0.3, 0.0, 0.3),
    "left_hip": (-0.9, 0.0, 0.0),
    "right_hip": (-0.9, 0.0, 0.0),
    "left_knee": (1.4, 0.0, 0.0),
    "right_knee": (1.4, 0.0, 0.0),
    "right_shoulder": (-0.8, 1.4, 0.0),
    "right_elbow": (0.0, 0.0, 1.4),
    "left_shoulder": (-1.2, -0.6, 0.0),
    "left_elbow": (0.0, 0.0, -0.5),
}
GRIP_FIGHT: PoseTable = {  # leaning in, turned, knees soft, both arms reaching for the grip
    "spine2": (0.35, 0.0, -0.3),
    "left_hip": (-0.4, -0.2, 0.0),
    "left_knee": (0.7, 0.0, 0.0),
    "right_hip": (0.3, 0.1, 0.0),
    "right_knee": (0.3, 0.0, 0.0),
    "left_shoulder": (-1.4, -0.2, 0.0),
    "right_shoulder": (-1.1, 0.3, 0.0),
    "left_elbow": (0.0, 0.0, -1.0),
    "right_elbow": (0.0, 0.0, 0.9),
    "head": (0.1, 0.0, 0.3),
}


@dataclass(frozen=True)
class SceneSpec:
    """One benchmark scene.

    Attributes:
        name: folder name suffix.
        model: "anny" or "smplx" (the generated SMPL-X-format model).
        pose: the true pose (SMPL-X joint names, Anny world axes, radians).
        description: one line for tables.
        azimuth_deg, elevation_deg: the camera's orbit position (0, 0 = in front at the height of the bounding
            box centre; positive azimuth towards the body's left, positive elevation above).
        error_joints: joints (SMPL-X names) given a 15-30 degree error in the initialisation.
        swap_arms: the initialisation has the left and right arms swapped (mirrored), as a detector that
            confused the two sides would give.
        camera_error_deg: the initial camera is orbited this far about the body's up axis.
        part: a part name (selective scene: the fit looks at that part, and only it is wrong).
        color: linear RGB base colour of the Cycles material.
        seed: seeds the initialisation errors (and Cycles' sampling).
        init_layout: "posefit" (``init.npz`` only) or, for SMPL-X scenes, also ``init.pkl`` in SMPLify-X's
            default result layout: "smplifyx" (axis-angle body_pose, 12 PCA hand coefficients) or
            "smplifyx_vposer" (body_pose as the (1, 32) code of the scene set's generated VPoser v1.0 folder).
        ambiguity: the initialisation holds one of a single view's ambiguities (see :data:`AMBIGUITIES`), made by
            :func:`ambiguous_start` on top of the 15-30 degree errors of ``error_joints``.
        garments: render shirt, trousers, hair and skin in different colours (:func:`garment_colours`) over a
            textured background (:func:`textured_background`) instead of one colour over black.
    """

    name: str
    model: str
    pose: PoseTable
    description: str
    azimuth_deg: float = 20.0
    elevation_deg: float = 8.0
    error_joints: tuple[str, ...] = TORSO_AND_LIMBS
    swap_arms: bool = False
    camera_error_deg: float = 0.0
    part: str | None = None
    color: tuple[float, float, float] = (0.62, 0.36, 0.26)
    seed: int = 0
    init_layout: str = "posefit"
    ambiguity: str | None = None
    garments: bool = False


SKIN = (0.62, 0.36, 0.26)
BLUE_GI = (0.08, 0.16, 0.45)
WHITE_GI = (0.75, 0.74, 0.70)
OLIVE = (0.35, 0.32, 0.14)

# The order matters: ``--count N`` keeps the first N, so the first three cover a whole-body Anny scene, a
# selective scene and the SMPL-X-format model (what CI runs).
SCENES: list[SceneSpec] = [
    SceneSpec(
        "judo_lean_raised_leg",
        "anny",
        JUDO_LEAN,
        "forward lean, raised bent knee, arm over the head",
        25.0,
        8.0,
        seed=1,
    ),
    SceneSpec(
        "selective_right_arm",
        "anny",
        RAISED_LEG_KICK,
        "raised-leg kick; only the right arm is wrong",
        -20.0,
        5.0,
        error_joints=("right_shoulder", "right_elbow", "right_wrist"),
        part="right_arm",
        color=BLUE_GI,
        seed=2,
    ),
    SceneSpec(
        "smplx_raised_leg",
        "smplx",
        RAISED_LEG_KICK,
        "raised-leg kick (SMPL-X-format model)",
        30.0,
        5.0,
        color=WHITE_GI,
        seed=3,
    ),
    SceneSpec(
        "upside_down_throw",
        "anny",
        UPSIDE_DOWN_THROW,
        "thrown over: upside down, back to the camera",
        15.0,
        10.0,
        color=WHITE_GI,
        seed=4,
    ),
    SceneSpec(
        "cartwheel_inverted", "anny", CARTWHEEL, "inverted sideways, legs and arms spread", 0.0, 5.0, color=SKIN, seed=5
    ),
    SceneSpec(
        "twisted_legs",
        "anny",
        TWISTED_LEGS,
        "legs crossed and twisted, torso turned, arms up",
        20.0,
        6.0,
        color=BLUE_GI,
        seed=6,
    ),
    SceneSpec(
        "deep_forward_lean",
        "anny",
        DEEP_FORWARD_LEAN,
        "bowed from the hips, arms forward, head up",
        60.0,
        10.0,
        color=OLIVE,
        seed=7,
    ),
    SceneSpec(
        "raised_leg_kick",
        "anny",
        RAISED_LEG_KICK,
        "straight leg kicked high, leaning back",
        35.0,
        0.0,
        color=SKIN,
        seed=8,
    ),
    SceneSpec(
        "arms_over_head",
        "anny",
        ARMS_OVER_HEAD,
        "both arms over the head, back arched, wide stance",
        -15.0,
        12.0,
        color=WHITE_GI,
        seed=9,
    ),
    SceneSpec("crouch", "anny", CROUCH, "deep crouch, torso and arms forward", 35.0, 15.0, color=BLUE_GI, seed=10),
    SceneSpec(
        "sacrifice_throw",
        "anny",
        SACRIFICE_THROW,
        "lying back, one leg high (tomoe nage)",
        70.0,
        15.0,
        color=SKIN,
        seed=11,
    ),
    SceneSpec(
        "shoulder_throw_lr_swap",
        "anny",
        SHOULDER_THROW,
        "shoulder throw; init has left/right arms swapped",
        25.0,
        8.0,
        error_joints=("spine2", "left_hip", "right_knee"),
        swap_arms=True,
        color=WHITE_GI,
        seed=12,
    ),
    SceneSpec(
        "grip_fight_camera_10deg",
        "anny",
        GRIP_FIGHT,
        "reaching for the grip; init camera 10 deg off",
        20.0,
        8.0,
        camera_error_deg=10.0,
        color=OLIVE,
        seed=13,
    ),
    SceneSpec(
        "selective_left_leg",
        "anny",
        CROUCH,
        "crouch; only the left leg is wrong",
        30.0,
        10.0,
        error_joints=("left_hip", "left_knee", "left_ankle"),
        part="left_leg",
        color=SKIN,
        seed=14,
    ),
    SceneSpec(
        "selective_head",
        "anny",
        JUDO_LEAN,
        "judo lean; only the head is wrong",
        -10.0,
        5.0,
        error_joints=("neck", "head"),
        part="head",
        color=BLUE_GI,
        seed=15,
    ),
    SceneSpec(
        "smplx_upside_down",
        "smplx",
        UPSIDE_DOWN_THROW,
        "thrown over, upside down (SMPL-X-format model)",
        15.0,
        10.0,
        color=SKIN,
        seed=16,
    ),
    SceneSpec(
        "smplx_twisted_legs",
        "smplx",
        TWISTED_LEGS,
        "twisted legs, arms up (SMPL-X-format model)",
        20.0,
        6.0,
        color=OLIVE,
        seed=17,
    ),
    SceneSpec(
        "smplifyx_pkl_judo_lean",
        "smplx",
        JUDO_LEAN,
        "judo lean; init as a SMPLify-X result .pkl (12 PCA hands)",
        25.0,
        8.0,
        color=BLUE_GI,
        seed=18,
        init_layout="smplifyx",
    ),
    SceneSpec(
        "smplifyx_vposer_crouch",
        "smplx",
        CROUCH,
        "crouch; init as SMPLify-X's default .pkl (VPoser code, 12 PCA hands)",
        -20.0,
        10.0,
        color=WHITE_GI,
        seed=19,
        init_layout="smplifyx_vposer",
    ),
]


AMBIGUITIES = ("swap_arms", "swap_legs", "flip_elbow", "flip_knee", "turned")
"""What an ambiguity scene's start gets wrong: the arms or legs exchanged between the sides (mirrored), an elbow
or knee bent towards the camera instead of away (or the reverse), or the whole body turned round (front and back
exchanged, the pose mirrored)."""

SHIRT = (0.05, 0.22, 0.12)
TROUSERS = (0.12, 0.1, 0.08)
HAIR = (0.03, 0.02, 0.015)

# Ambiguity scenes: each ambiguity on two or three poses and cameras, garment-like colours over a textured
# background. Built before the hypothesis search and never tuned on: the starts are made by
# :func:`ambiguous_start`, whose constructions differ from the search's own (:mod:`posecore.fitting.ambiguities`).
AMBIGUITY_SCENES: list[SceneSpec] = [
    SceneSpec("amb_swap_arms_grip", "anny", GRIP_FIGHT, "grip fight; start has the arms swapped", 20.0, 8.0,
              error_joints=("spine2", "left_hip", "right_knee"), seed=31, ambiguity="swap_arms", garments=True),
    SceneSpec("amb_swap_arms_kick", "anny", RAISED_LEG_KICK, "kick; start has the arms swapped", -30.0, 5.0,
              error_joints=("spine2", "left_knee", "right_hip"), seed=32, ambiguity="swap_arms", garments=True),
    SceneSpec("amb_swap_legs_twisted", "anny", TWISTED_LEGS, "twisted legs; start has the legs swapped", 20.0, 6.0,
              error_joints=("spine2", "left_shoulder", "right_elbow"), seed=33, ambiguity="swap_legs", garments=True),
    SceneSpec("amb_swap_legs_lean", "anny", JUDO_LEAN, "judo lean; start has the legs swapped", 40.0, 8.0,
              error_joints=("spine3", "right_shoulder", "left_elbow"), seed=34, ambiguity="swap_legs", garments=True),
    SceneSpec("amb_flip_elbow_grip", "anny", GRIP_FIGHT, "grip fight; right elbow flipped in depth", 10.0, 5.0,
              error_joints=("spine2", "left_hip", "left_knee"), seed=35, ambiguity="flip_elbow:right", garments=True),
    SceneSpec("amb_flip_elbow_throw", "anny", SHOULDER_THROW, "shoulder throw; left elbow flipped in depth", -15.0,
              8.0, error_joints=("spine2", "right_hip", "right_knee"), seed=36, ambiguity="flip_elbow:left",
              garments=True),
    SceneSpec("amb_flip_knee_lean", "anny", JUDO_LEAN, "judo lean; raised knee flipped in depth", 5.0, 6.0,
              error_joints=("spine2", "right_shoulder", "left_shoulder"), seed=37, ambiguity="flip_knee:left",
              garments=True),
    SceneSpec("amb_flip_knee_grip", "anny", GRIP_FIGHT, "grip fight; left knee flipped in depth", 60.0, 8.0,
              error_joints=("spine3", "left_elbow", "right_shoulder"), seed=38, ambiguity="flip_knee:left",
              garments=True),
    SceneSpec("amb_turned_crouch", "anny", CROUCH, "crouch; start turned round", 25.0, 12.0,
              error_joints=("spine2", "left_knee", "right_shoulder"), seed=39, ambiguity="turned", garments=True),
    SceneSpec("amb_turned_grip", "anny", GRIP_FIGHT, "grip fight; start turned round", -20.0, 8.0,
              error_joints=("spine3", "right_hip", "left_elbow"), seed=40, ambiguity="turned", garments=True),
    SceneSpec("amb_turned_smplx_kick", "smplx", RAISED_LEG_KICK, "kick (SMPL-X-format); start turned round", 30.0,
              5.0, error_joints=("spine2", "left_knee", "left_shoulder"), seed=41, ambiguity="turned", garments=True),
]  # fmt: skip
"""The ambiguity benchmark (``--set ambiguity``)."""

# A second ambiguity set, made before the search was tuned any further and run once at the end, to show the search
# on scenes it was not shaped on: other poses, cameras, seeds and both models.
AMBIGUITY_HOLDOUT: list[SceneSpec] = [
    SceneSpec("hold_swap_arms_throw", "smplx", SHOULDER_THROW, "shoulder throw (SMPL-X); arms swapped", 35.0, 10.0,
              error_joints=("spine3", "left_knee", "right_hip"), seed=51, ambiguity="swap_arms", garments=True),
    SceneSpec("hold_swap_arms_lean", "anny", DEEP_FORWARD_LEAN, "deep lean; arms swapped", -40.0, 12.0,
              error_joints=("spine2", "right_knee", "left_hip"), seed=52, ambiguity="swap_arms", garments=True),
    SceneSpec("hold_swap_legs_kick", "anny", RAISED_LEG_KICK, "kick; legs swapped", 15.0, 4.0,
              error_joints=("spine2", "left_elbow", "right_shoulder"), seed=53, ambiguity="swap_legs", garments=True),
    SceneSpec("hold_swap_legs_sacrifice", "smplx", SACRIFICE_THROW, "sacrifice throw (SMPL-X); legs swapped", 60.0,
              15.0, error_joints=("spine3", "left_shoulder", "right_elbow"), seed=54, ambiguity="swap_legs",
              garments=True),
    SceneSpec("hold_flip_elbow_overhead", "anny", ARMS_OVER_HEAD, "arms over head; left elbow flipped", 30.0, 10.0,
              error_joints=("spine2", "left_hip", "right_knee"), seed=55, ambiguity="flip_elbow:left", garments=True),
    SceneSpec("hold_flip_elbow_shoulder_throw", "smplx", SHOULDER_THROW, "shoulder throw (SMPL-X); right elbow flipped",
              -25.0, 6.0, error_joints=("spine2", "left_knee", "right_hip"), seed=56, ambiguity="flip_elbow:right",
              garments=True),
    SceneSpec("hold_flip_knee_crouch", "anny", CROUCH, "crouch; right knee flipped", 50.0, 15.0,
              error_joints=("spine3", "left_shoulder", "right_elbow"), seed=57, ambiguity="flip_knee:right",
              garments=True),
    SceneSpec("hold_flip_knee_throw", "anny", SHOULDER_THROW, "shoulder throw; left knee flipped", -45.0, 8.0,
              error_joints=("spine2", "right_shoulder", "left_elbow"), seed=58, ambiguity="flip_knee:left",
              garments=True),
    SceneSpec("hold_turned_lean", "anny", JUDO_LEAN, "judo lean; turned round", 10.0, 6.0,
              error_joints=("spine2", "right_knee", "left_elbow"), seed=59, ambiguity="turned", garments=True),
    SceneSpec("hold_turned_overhead", "smplx", ARMS_OVER_HEAD, "arms over head (SMPL-X); turned round", -35.0, 12.0,
              error_joints=("spine3", "left_hip", "right_shoulder"), seed=60, ambiguity="turned", garments=True),
]  # fmt: skip
"""The hold-out ambiguity set (``--set ambiguity-holdout``)."""

SCENE_SETS = {"judo": SCENES, "ambiguity": AMBIGUITY_SCENES, "ambiguity-holdout": AMBIGUITY_HOLDOUT}


def _mirrored_swap(body: BodyModel, params: BodyParams, suffixes: tuple[str, ...]) -> None:
    """In place: the joints ``left_<s>``/``right_<s>`` exchange their rotations, mirrored."""
    for suffix in suffixes:
        left, right = model_joint(body, f"left_{suffix}"), model_joint(body, f"right_{suffix}")
        rl, rr = params.rotations[left].clone(), params.rotations[right].clone()
        params.rotations[left] = mirror_rotation(body, rr)
        params.rotations[right] = mirror_rotation(body, rl)


def _world_rotations(body: BodyModel, rotations: torch.Tensor) -> list[torch.Tensor]:
    local = axis_angle_to_matrix(rotations)
    world = [local[0]]
    for j in range(1, body.num_joints):
        world.append(world[body.parents[j]] @ local[j])
    return world


def ambiguous_start(body: BodyModel, truth: BodyParams, ambiguity: str) -> BodyParams:
    """The truth with one single-view ambiguity built in (before the scene's per-joint errors).

    - ``swap_arms`` / ``swap_legs``: shoulder, elbow, wrist (hip, knee, ankle) rotations exchanged between the sides
      and mirrored;
    - ``flip_elbow:SIDE`` / ``flip_knee:SIDE``: the upper bone turned half a turn about the line from the shoulder
      (hip) to the wrist (ankle), so the hand (foot) stays and the elbow (knee) swings to the other side of that
      line; the scenes are framed so the bend lies mostly in depth, where this keeps the outline;
    - ``turned``: the body reflected through its own coronal plane (front <-> back; the pose mirrored and the root
      turned 180 degrees about the model's up axis).
    """
    start = truth.clone()
    kind, _, side = ambiguity.partition(":")
    if kind == "swap_arms":
        _mirrored_swap(body, start, ARM_JOINTS)
    elif kind == "swap_legs":
        _mirrored_swap(body, start, ("hip", "knee", "ankle"))
    elif kind in ("flip_elbow", "flip_knee"):
        chain = ("shoulder", "elbow", "wrist") if kind == "flip_elbow" else ("hip", "knee", "ankle")
        a, _, e = (model_joint(body, f"{side}_{name}") for name in chain)
        with torch.no_grad():
            joints = body(truth).joints
        axis = joints[e] - joints[a]
        turn = axis_angle_to_matrix(axis / axis.norm() * math.pi)
        world = _world_rotations(body, truth.rotations)
        start.rotations[a] = matrix_to_axis_angle(world[body.parents[a]].T @ turn @ world[a])
    elif kind == "turned":
        from posecore.fitting.ambiguities import side_pairs

        for j in range(1, body.num_joints):
            start.rotations[j] = mirror_rotation(body, truth.rotations[j])
        for j, k in side_pairs(body):
            start.rotations[j] = mirror_rotation(body, truth.rotations[k])
            start.rotations[k] = mirror_rotation(body, truth.rotations[j])
        frame = model_frame(body)
        up = frame @ torch.tensor([0.0, 0.0, 1.0])
        left = frame[:, 0]
        mirror = torch.eye(3) - 2.0 * torch.outer(left, left)
        root = mirror @ axis_angle_to_matrix(truth.rotations[0]) @ mirror
        start.rotations[0] = matrix_to_axis_angle(axis_angle_to_matrix(up * math.pi) @ root)
    else:
        raise ValueError(f"unknown ambiguity {ambiguity!r}; choose from {AMBIGUITIES}")
    return start


def garment_colours(body: BodyModel) -> torch.Tensor:
    """(V, 3) linear RGB: a shirt over the torso and arms, trousers over the hips and legs, skin on the hands and
    face, dark hair over the top and back of the head (vertices of the head part above its middle height)."""
    from posecore.fitting.parts import part_vertex_mask

    colours = torch.tensor(SKIN).expand(body.num_vertices, 3).clone()
    colours[part_vertex_mask(body, "torso") | part_vertex_mask(body, "arms")] = torch.tensor(SHIRT)
    colours[part_vertex_mask(body, "lower_body")] = torch.tensor(TROUSERS)
    colours[part_vertex_mask(body, "hands")] = torch.tensor(SKIN)
    head = part_vertex_mask(body, "head")
    with torch.no_grad():
        rest = body(body.default_params()).vertices
    frame = model_frame(body)
    height = rest @ (frame @ torch.tensor([0.0, 0.0, 1.0]))
    depth = rest @ (frame @ torch.tensor([0.0, -1.0, 0.0]))  # towards the front
    top = height[head].quantile(0.55)
    front = depth[head].quantile(0.75)
    colours[head & ((height > top) | (depth < front - 0.06))] = torch.tensor(HAIR)
    return colours


def textured_background(size: int, seed: int) -> np.ndarray:
    """(size, size, 3) float32 in [0, 1]: a wall of soft coloured blotches over a floor of tiles, seeded."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    image = np.zeros((size, size, 3), np.float32)
    for _ in range(6):
        cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 0.7), rng.uniform(0.1, 0.35)
        blob = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))[..., None]
        image += blob * rng.uniform(0.05, 0.45, size=3).astype(np.float32)
    floor = y > 0.72
    tiles = ((np.floor(x * 10) + np.floor(y * 14)) % 2).astype(np.float32)
    image[floor] = (0.35 + 0.2 * tiles[floor])[:, None] * np.array([0.8, 0.7, 0.55], np.float32)
    return np.clip(image, 0.0, 1.0)


# ------------------------------------------------------------------------------------------------ model frames
def model_frame(body: BodyModel) -> torch.Tensor:
    """(3, 3) rotation from Anny's world axes (in which poses are written) to ``body``'s frame."""
    if body.name == "anny":
        return torch.eye(3)
    from posecore.bodies.synthetic_smplx import ANNY_TO_SMPLX_ROTATION

    return torch.as_tensor(ANNY_TO_SMPLX_ROTATION, dtype=torch.float32)


def model_joint(body: BodyModel, smplx_name: str) -> int:
    """Index in ``body`` of the joint named ``smplx_name`` in SMPL-X (mapped onto Anny's rig for Anny)."""
    if smplx_name in body.joint_names:
        return body.joint_index(smplx_name)
    from posecore.bodies.anny_body import SMPLX_TO_ANNY

    return body.joint_index(SMPLX_TO_ANNY[smplx_name])


def pose_for_body(body: BodyModel, table: PoseTable) -> torch.Tensor:
    """(J, 3) rotations of ``body`` from a pose table (others zero): axes rotated into the model's frame."""
    frame = model_frame(body)
    rotations = torch.zeros(body.num_joints, 3)
    for name, value in table.items():
        rotations[model_joint(body, name)] = frame @ torch.tensor(value, dtype=torch.float32)
    return rotations


def mirror_rotation(body: BodyModel, rotation: torch.Tensor) -> torch.Tensor:
    """(3,) the rotation mirrored through the body's sagittal plane (x -> -x in both models' frames)."""
    return rotation * torch.tensor([1.0, -1.0, -1.0])


def _random_axis(rng: np.random.Generator) -> torch.Tensor:
    axis = rng.normal(size=3)
    return torch.tensor(axis / np.linalg.norm(axis), dtype=torch.float32)


def perturb(body: BodyModel, truth: BodyParams, spec: SceneSpec) -> tuple[BodyParams, dict[str, float]]:
    """The faulty initialisation of a scene and the error angle (degrees) given to each joint.

    Each joint of ``spec.error_joints`` is rotated by 15-30 degrees about a random axis (composed with the true
    rotation, so the stated angle is the exact geodesic error); with ``swap_arms`` the arms' rotations are
    swapped between the sides and mirrored.
    """
    rng = np.random.default_rng(spec.seed)
    initial = truth.clone()
    errors: dict[str, float] = {}
    if spec.swap_arms:
        _mirrored_swap(body, initial, ARM_JOINTS)
    for name in spec.error_joints:
        j = model_joint(body, name)
        angle = float(rng.uniform(15.0, 30.0))
        error = axis_angle_to_matrix(_random_axis(rng) * math.radians(angle))
        initial.rotations[j] = matrix_to_axis_angle(error @ axis_angle_to_matrix(initial.rotations[j]))
        errors[name] = round(angle, 2)
    return initial, errors


def frame_camera(
    body: BodyModel, vertices: torch.Tensor, size: int, azimuth_deg: float, elevation_deg: float, fov: float = 42.0
) -> PinholeCamera:
    """A camera orbiting the body's bounding-box centre that keeps the whole posed body in view.

    Args:
        vertices: (V, 3) posed vertices, metres, model frame.
        azimuth_deg, elevation_deg: orbit position (0, 0 = in front of the body).
    """
    frame = model_frame(body)
    front, left, up = frame @ torch.tensor([0.0, -1.0, 0.0]), frame[:, 0], frame @ torch.tensor([0.0, 0.0, 1.0])
    lo, hi = vertices.min(0).values, vertices.max(0).values
    centre = 0.5 * (lo + hi)
    radius = float((vertices - centre).norm(dim=-1).max())
    distance = 0.95 * radius / math.sin(math.radians(fov) / 2)
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    direction = math.cos(el) * (math.cos(az) * front + math.sin(az) * left) + math.sin(el) * up
    return PinholeCamera.look_at(centre + distance * direction, centre, up, size, size, fov)


# ------------------------------------------------------------------------------------------------ Cycles
@dataclass(frozen=True)
class CyclesLook:
    """Lighting and material of the Cycles targets (none of it known to the fit).

    Attributes:
        color: linear RGB base colour of the Principled BSDF. roughness: its roughness.
        sun_direction: (3,) direction the sun light travels, Blender world. sun_strength: irradiance (W/m^2).
        area_offset: (3,) area light position relative to the camera, Blender world, metres. area_power: watts.
        world: RGB of the uniform world light (also ambient; the background is made transparent).
    """

    color: tuple[float, float, float]
    roughness: float = 0.55
    sun_direction: tuple[float, float, float] = (0.45, 0.6, -0.66)
    sun_strength: float = 2.6
    area_offset: tuple[float, float, float] = (-1.2, 0.0, 1.4)
    area_power: float = 150.0
    world: tuple[float, float, float] = (0.16, 0.17, 0.2)

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


TargetRenderer = Callable[..., np.ndarray]
"""(vertices (V, 3) Blender world, faces (F, 3), camera (Blender world), look, samples, threads, seed,
vertex_colors=None (V, 3) linear RGB or None for ``look.color``) -> (H, W, 4) float32 straight-alpha RGBA in [0, 1]."""


# ------------------------------------------------------------------------------------------------ the set
def load_bodies(specs: list[SceneSpec], root: Path) -> dict[str, BodyModel]:
    """The body models the specs need: "anny", and "smplx" (generated into ``root/smplx_model`` when needed)."""
    from posecore.bodies import load_body_model

    bodies: dict[str, BodyModel] = {}
    if any(s.model == "anny" for s in specs):
        bodies["anny"] = load_body_model("anny")
    if any(s.model == "smplx" for s in specs):
        from posecore.bodies.synthetic_smplx import ensure_synthetic_smplx_folder

        folder = ensure_synthetic_smplx_folder(root / SMPLX_MODEL_DIR)
        bodies["smplx"] = load_body_model(f"smplx:{folder}")
    return bodies


def silhouette_iou(alpha: torch.Tensor, vertices: torch.Tensor, faces: torch.Tensor, camera: PinholeCamera) -> float:
    """Intersection over union of Cycles' alpha (> 0.5) and PoseFit's z-buffer coverage of the same mesh: checks
    that the Blender scene and the fit's camera agree (about 0.97+ at 256 px; edges differ by antialiasing)."""
    from posecore.render.raster import rasterize

    uv, depth = camera.project(vertices)
    covered = rasterize(uv, depth, faces, camera.width, camera.height, cull_backfaces=False) >= 0
    seen = alpha > 0.5
    return float((covered & seen).sum()) / max(1.0, float((covered | seen).sum()))


def make_scene(
    spec: SceneSpec,
    index: int,
    body: BodyModel,
    out: Path,
    size: int,
    samples: int,
    threads: int,
    render: TargetRenderer,
) -> dict:
    """Build one scene folder (see the module docstring); returns its ``scene.json`` content.

    ``render`` draws the target photo; Blender Cycles in practice (``addon.cycles_targets.render_cycles``,
    wired in by ``scripts/make_benchmark_scenes.py``), which posecore cannot import itself (no bpy here).
    """
    from posecore import rig as rigmath
    from posecore.io.atomic import atomic_output_dir, atomic_write_text, save_npz_atomic
    from posecore.io.images import save_image
    from posecore.results import fit_arrays

    truth = body.default_params()
    truth.rotations = pose_for_body(body, spec.pose)
    if spec.ambiguity is not None:
        initial, errors = perturb(body, ambiguous_start(body, truth, spec.ambiguity), spec)
    else:
        initial, errors = perturb(body, truth, spec)
    with torch.no_grad():
        posed = body(truth)
    camera = frame_camera(body, posed.vertices, size, spec.azimuth_deg, spec.elevation_deg)
    init_camera = camera
    frame = model_frame(body)
    up = frame @ torch.tensor([0.0, 0.0, 1.0])
    alpha = up * math.radians(spec.camera_error_deg)
    if spec.camera_error_deg:
        init_camera = orbit_camera(camera, alpha, posed.joints[0]).detached()

    to_blender = rigmath.model_to_blender_matrix(body.up_axis)
    vertices_world = posed.vertices @ to_blender[:3, :3].T + to_blender[:3, 3]
    camera_world = rigmath.camera_to_frame(camera, torch.linalg.inv(to_blender))
    look = CyclesLook(color=spec.color)
    start = time.perf_counter()
    colours = garment_colours(body).numpy() if spec.garments else None
    rgba = render(
        vertices_world.numpy(), body.faces.numpy(), camera_world, look, samples, threads, spec.seed,
        vertex_colors=colours,
    )  # fmt: skip
    render_s = time.perf_counter() - start
    alpha_mask = torch.from_numpy(rgba[..., 3].copy())
    background = textured_background(size, spec.seed) if spec.garments else 0.0
    target = rgba[..., :3] * rgba[..., 3:] + background * (1.0 - rgba[..., 3:])  # black: the fit's default
    iou = silhouette_iou(alpha_mask, posed.vertices, body.faces, camera)

    record = {
        "name": spec.name,
        "index": index,
        "model": spec.model,
        "model_dir": SMPLX_MODEL_DIR if spec.model == "smplx" else None,
        "description": spec.description,
        "part": spec.part,
        "size": size,
        "pose": {k: list(v) for k, v in spec.pose.items()},
        "init_errors_deg": errors,
        "swap_arms": spec.swap_arms,
        "ambiguity": spec.ambiguity,
        "garments": spec.garments,
        "camera_error_deg": spec.camera_error_deg,
        "camera_error_axis_angle": alpha.tolist(),
        "camera": camera.as_dict(),
        "init_camera": init_camera.as_dict(),
        "azimuth_deg": spec.azimuth_deg,
        "elevation_deg": spec.elevation_deg,
        "renderer": {"engine": "Blender Cycles (bpy)", "samples": samples, "look": look.as_dict()},
        "render_seconds": round(render_s, 2),
        "silhouette_iou": round(iou, 4),
    }
    zero = torch.zeros(3)
    folder = out / f"{index + 1:02d}_{spec.name}"
    smplifyx = None
    if spec.init_layout != "posefit":
        smplifyx = smplifyx_result(body, initial, init_camera, spec, out)
        record["init_file"] = "init.pkl"
        if spec.init_layout == "smplifyx_vposer":
            record["vposer_dir"] = VPOSER_MODEL_DIR
    with atomic_output_dir(folder) as tmp:
        if smplifyx is not None:
            with open(tmp / "init.pkl", "wb") as f:
                pickle.dump(smplifyx, f, protocol=2)  # as smplifyx/fit_single_frame.py writes it
        save_image(tmp / "target.png", target)
        save_image(tmp / "mask.png", rgba[..., 3])
        save_npz_atomic(tmp / "truth.npz", **fit_arrays(body, truth, camera, zero))
        save_npz_atomic(tmp / "init.npz", **fit_arrays(body, initial, init_camera, zero))
        atomic_write_text(tmp / "scene.json", json.dumps(record, indent=1))
    return record


def smplifyx_result(body: BodyModel, initial: BodyParams, camera: PinholeCamera, spec: SceneSpec, root: Path) -> dict:
    """``initial`` as SMPLify-X's result pickle holds it (``smplifyx/fit_single_frame.py``: the camera's
    parameters as ``camera_rotation`` (1, 3, 3) / ``camera_translation`` (1, 3), then every parameter of its
    ``smplx.create(..., use_pca=True, num_pca_comps=12, create_transl=False)`` model, float32, batch 1).

    The camera is the scene's (OpenCV world-to-camera, which SMPLify-X's fields are); hands get small PCA
    coefficients (the scenes' hands are flat and not scored). For "smplifyx_vposer" the body_pose is the code
    of the scene set's generated VPoser (:func:`scene_set_vposer`) closest to the initial pose.
    """
    rng = np.random.default_rng(spec.seed)
    rot = initial.rotations.detach().numpy().astype(np.float32)
    names = body.joint_names

    def rows(joints: list[str]) -> np.ndarray:
        return rot[[names.index(n) for n in joints]].reshape(1, -1)

    from posecore.bodies.smplx_joints import SMPLX_BODY_JOINT_NAMES

    result = {
        "camera_rotation": camera.rotation.detach().numpy().astype(np.float32)[None],
        "camera_translation": camera.translation.detach().numpy().astype(np.float32)[None],
        "betas": initial.shape.detach().numpy().astype(np.float32)[None],
        "global_orient": rows(["pelvis"]),
        "body_pose": rows(SMPLX_BODY_JOINT_NAMES[1:22]),
        "left_hand_pose": (0.05 * rng.normal(size=(1, SMPLIFYX_PCA_COMPONENTS))).astype(np.float32),
        "right_hand_pose": (0.05 * rng.normal(size=(1, SMPLIFYX_PCA_COMPONENTS))).astype(np.float32),
        "jaw_pose": rows(["jaw"]),
        "leye_pose": rows(["left_eye_smplhf"]),
        "reye_pose": rows(["right_eye_smplhf"]),
        "expression": np.zeros((1, 10), np.float32),
    }
    if spec.init_layout == "smplifyx_vposer":
        decoder = scene_set_vposer(body, root)
        body_pose = torch.from_numpy(result["body_pose"].reshape(21, 3))
        result["body_pose"] = decoder.encode(body_pose, iterations=600).numpy()[None].astype(np.float32)
    return result


def scene_set_vposer(body: BodyModel, root: Path):
    """The scene set's generated VPoser v1.0 folder (``root/vposer_model/vposer_v1_0``), made once.

    VPoser's weights are licensed, so a benchmark cannot ship them. This decoder is fitted
    (:func:`posecore.bodies.synthetic_vposer.fit_decoder_to_poses`) to the initialisation poses of the
    SMPLify-X-layout scenes and random mixtures of all scene poses, so those initialisations have codes; it is
    not the AMASS-trained prior, and the benchmark only uses it to decode initialisations.
    """
    from posecore.bodies.synthetic_vposer import fit_decoder_to_poses, write_vposer_v1
    from posecore.io.vposer_files import load_vposer

    folder = root / VPOSER_MODEL_DIR
    if (folder / "vposer_v1_0").is_dir():
        return load_vposer(folder)
    from posecore.bodies.smplx_joints import SMPLX_BODY_JOINT_NAMES

    rows = [body.joint_names.index(n) for n in SMPLX_BODY_JOINT_NAMES[1:22]]
    poses = []
    for spec in SCENES:
        truth = body.default_params()
        truth.rotations = pose_for_body(body, spec.pose)
        initial, _ = perturb(body, truth, spec)
        poses += [truth.rotations[rows], initial.rotations[rows]]
    stack = torch.stack(poses)
    g = torch.Generator().manual_seed(0)
    weights = torch.rand(64, stack.shape[0], generator=g).softmax(-1)
    mixtures = torch.einsum("mn,njk->mjk", weights, stack)
    decoder, _ = fit_decoder_to_poses(torch.cat([stack, mixtures]), iterations=1500, hidden=256)
    write_vposer_v1(folder, decoder)
    return load_vposer(folder)


def make_scene_set(
    out: Path,
    render: TargetRenderer,
    count: int | None = None,
    size: int = 256,
    samples: int = 24,
    threads: int = 1,
    log=print,
    scene_set: str = "judo",
) -> list[dict]:
    """Generate the first ``count`` scenes of a set of :data:`SCENE_SETS` (all by default) into ``out``."""
    chosen = SCENE_SETS[scene_set]
    specs = chosen if count is None else chosen[:count]
    out.mkdir(parents=True, exist_ok=True)
    bodies = load_bodies(specs, out)
    records = []
    for index, spec in enumerate(specs):
        record = make_scene(spec, index, bodies[spec.model], out, size, samples, threads, render)
        log(
            f"scene {index + 1:2d}/{len(specs)} {spec.name:26s} {spec.model:5s} rendered in "
            f"{record['render_seconds']:.1f} s, silhouette IoU vs PoseFit's camera {record['silhouette_iou']:.3f}"
        )
        records.append(record)
    return records


def main(argv: list[str] | None, render: TargetRenderer) -> int:
    """The scene-set command (``scripts/make_benchmark_scenes.py`` calls it with Blender Cycles as ``render``)."""
    parser = argparse.ArgumentParser(prog="scripts/make_benchmark_scenes.py", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder to write the scenes into")
    parser.add_argument("--count", type=int, default=None, help="first N scenes of the set (default all)")
    parser.add_argument("--size", type=int, default=256, help="image size in pixels (square)")
    parser.add_argument("--samples", type=int, default=24, help="Cycles samples per pixel")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch and Cycles")
    parser.add_argument(
        "--set", dest="scene_set", choices=sorted(SCENE_SETS), default="judo",
        help="judo: the accuracy set; ambiguity: starts holding a single view's ambiguities, garments, background",
    )  # fmt: skip
    args = parser.parse_args(argv)
    available = len(SCENE_SETS[args.scene_set])
    if args.count is not None and not 1 <= args.count <= available:
        print(f"error: --count must be between 1 and {available}", file=sys.stderr)
        return 2
    if args.size < 16 or args.samples < 1:
        print("error: --size must be >= 16 and --samples >= 1", file=sys.stderr)
        return 2
    torch.set_num_threads(max(1, args.threads))
    start = time.perf_counter()
    records = make_scene_set(
        Path(args.out),
        render,
        args.count,
        args.size,
        args.samples,
        args.threads,
        log=lambda line: print(line, file=sys.stderr),
        scene_set=args.scene_set,
    )
    print(f"wrote {len(records)} scenes to {args.out} in {time.perf_counter() - start:.0f} s")
    return 0
