"""The small annotated real-photo sets in open-mmlab/mmpose's ``tests/data``, read at benchmark time.

Nothing of them is kept in this repository: :func:`load_people` reads a checkout (a folder holding
``tests/data``) or a bare git mirror of mmpose (extracted to a temporary folder with ``git archive``, only the sets
named in :data:`SETS`). The 3D sets there (h36m, mpi_inf_3dhp) are reserved for independent acceptance and never read.

Every annotated person with at least :data:`MIN_LIMB_JOINTS` of the 12 limb joints (:data:`LIMBS`) labelled and a
box at least :data:`MIN_BOX` pixels high or wide becomes a :class:`Person`: 2D truth of the limb joints in the
photo's pixels, the person box (the annotation's; MPII has none: the labelled joints' box), COCO's polygon mask when
there is one, and whether the person is the only one annotated in the photo.
"""

from __future__ import annotations

import json
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

import numpy as np

from posecore.errors import ParameterError

LIMBS = ("left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
         "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle")  # fmt: skip
"""The 12 limb joints every set labels (the person's left and right)."""

SETS: dict[str, tuple[str, ...]] = {
    "coco": ("coco/test_coco.json",),
    "mpii": ("mpii/test_mpii.json",),
    "aic": ("aic/test_aic.json",),
    "crowdpose": ("crowdpose/test_crowdpose.json",),
    "ochuman": ("ochuman/test_ochuman.json",),
    "humanart": ("humanart/test_humanart.json",),
    "posetrack18": ("posetrack18/annotations/test_posetrack18_val.json",),
    "jhmdb": ("jhmdb/test_jhmdb_sub1.json",),
}
"""Set name -> annotation files under ``tests/data`` (COCO-style JSON, MPII's list)."""
RESERVED = ("h36m", "mpi_inf_3dhp")
MIN_LIMB_JOINTS = 6
MIN_BOX = 64
MPII_JOINTS = ("right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "pelvis", "thorax",
               "upper_neck", "head_top", "right_wrist", "right_elbow", "right_shoulder", "left_shoulder",
               "left_elbow", "left_wrist")  # fmt: skip


@dataclass
class Person:
    """One annotated person.

    Attributes:
        name: ``set/image#index``. image: the photo file.
        joints: (12, 2) float32 pixels of :data:`LIMBS` (OpenCV convention, as the sets store them).
        labelled: (12,) bool: the joint is annotated (visible or occluded).
        box: (x0, y0, x1, y1) the person box, pixels.
        polygons: COCO polygon mask, lists of x, y pairs (pixels), or None.
        single: the only person annotated in its photo.
    """

    name: str
    image: Path
    joints: np.ndarray
    labelled: np.ndarray
    box: tuple[float, float, float, float]
    polygons: list[list[float]] | None = None
    single: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def box_size(self) -> float:
        """The box's longer side, pixels (the normaliser of PCK and of the pixel error)."""
        return float(max(self.box[2] - self.box[0], self.box[3] - self.box[1]))

    def mask(self, width: int, height: int) -> np.ndarray | None:
        """(height, width) bool: the polygon mask, or None without one."""
        if not self.polygons:
            return None
        from PIL import Image, ImageDraw

        image = Image.new("L", (width, height), 0)
        draw = ImageDraw.Draw(image)
        for poly in self.polygons:
            if len(poly) >= 6:
                draw.polygon([(poly[i], poly[i + 1]) for i in range(0, len(poly) - 1, 2)], fill=1)
        return np.asarray(image, bool)


def data_folder(source: str | Path, scratch: Path) -> Path:
    """``tests/data`` of an mmpose checkout, or of a bare mirror extracted into ``scratch`` (only :data:`SETS`)."""
    source = Path(source)
    if (source / "tests" / "data").is_dir():
        return source / "tests" / "data"
    if (source / "coco").is_dir() and (source / "mpii").is_dir():
        return source
    if not (source / "HEAD").exists():
        raise ParameterError(f"{source}: neither an mmpose checkout (with tests/data) nor a bare git mirror of it")
    paths = [f"tests/data/{name}" for name in SETS]
    result = subprocess.run(["git", f"--git-dir={source}", "archive", "HEAD", *paths], capture_output=True, check=False)
    if result.returncode != 0:
        raise ParameterError(f"{source}: git archive failed: {result.stderr.decode(errors='replace').strip()}")
    with tarfile.open(fileobj=BytesIO(result.stdout)) as tar:
        tar.extractall(scratch, filter="data")
    return scratch / "tests" / "data"


def _limbs_from(names: list[str], flat: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """COCO-style flat keypoints (x, y, v)* named ``names`` -> (12, 2) joints and (12,) labelled."""
    values = np.asarray(flat, np.float64).reshape(-1, 3)
    index = {n.lower().replace(" ", "_"): i for i, n in enumerate(names)}
    joints = np.zeros((len(LIMBS), 2), np.float32)
    labelled = np.zeros(len(LIMBS), bool)
    for k, limb in enumerate(LIMBS):
        i = index.get(limb)
        if i is not None and values[i, 2] > 0:
            joints[k], labelled[k] = values[i, :2], True
    return joints, labelled


def _coco_people(set_name: str, folder: Path, annotation_file: Path) -> list[Person]:
    data = json.loads(annotation_file.read_text())
    names = data["categories"][0]["keypoints"]
    images = {img["id"]: img for img in data["images"]}
    anns = [a for a in data["annotations"] if not a.get("iscrowd") or a.get("iscrowd") == "False"]
    per_image: dict = {}
    for a in anns:
        per_image.setdefault(a["image_id"], []).append(a)
    people = []
    for image_id, group in per_image.items():
        file_name = images[image_id]["file_name"]
        if set_name == "humanart":  # "HumanArt/images/real_human/..." -> "real_human/..."; only real people
            file_name = file_name.split("images/", 1)[-1]
            if not file_name.startswith("real_human/"):
                continue
        path = folder / file_name
        for index, a in enumerate(group):
            joints, labelled = _limbs_from(names, a.get("keypoints", []))
            x, y, w, h = a["bbox"]
            polygons = a.get("segmentation") if set_name == "coco" and isinstance(a.get("segmentation"), list) else None
            short = "/".join(Path(file_name).parts[-2:]) if set_name in ("posetrack18", "jhmdb") else path.name
            people.append(Person(f"{set_name}/{short}#{index}", path, joints, labelled,
                                 (x, y, x + w, y + h), polygons, single=len(group) == 1))  # fmt: skip
    return people


def _mpii_people(folder: Path, annotation_file: Path) -> list[Person]:
    data = json.loads(annotation_file.read_text())
    counts: dict[str, int] = {}
    for entry in data:
        counts[entry["image"]] = counts.get(entry["image"], 0) + 1
    people, seen = [], {}
    for entry in data:
        values = np.asarray(entry["joints"], np.float32)
        vis = np.asarray(entry["joints_vis"]) > 0
        joints = np.stack([values[MPII_JOINTS.index(limb)] for limb in LIMBS])
        labelled = np.array([bool(vis[MPII_JOINTS.index(limb)]) for limb in LIMBS])
        pts = values[vis]
        box = (float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max()))
        index = seen[entry["image"]] = seen.get(entry["image"], -1) + 1
        people.append(Person(f"mpii/{entry['image']}#{index}", folder / entry["image"], joints, labelled, box,
                             None, single=counts[entry["image"]] == 1))  # fmt: skip
    return people


def load_people(data: Path, sets: tuple[str, ...] = tuple(SETS)) -> list[Person]:
    """The usable annotated people of ``sets`` under ``data`` (a ``tests/data`` folder), in a stable order."""
    people: list[Person] = []
    for set_name in sets:
        if set_name in RESERVED or set_name not in SETS:
            raise ParameterError(f"unknown or reserved set {set_name!r} (sets: {', '.join(SETS)})")
        for relative in SETS[set_name]:
            annotation_file = data / set_name / relative.split("/", 1)[1]
            folder = annotation_file.parent if set_name != "posetrack18" else data / "posetrack18"
            if set_name == "mpii":
                found = _mpii_people(folder, annotation_file)
            else:
                found = _coco_people(set_name, folder, annotation_file)
            people += [
                p
                for p in found
                if int(p.labelled.sum()) >= MIN_LIMB_JOINTS and p.box_size >= MIN_BOX and p.image.exists()
            ]
    return people


def scratch_folder() -> tempfile.TemporaryDirectory:
    """A temporary folder for an extracted mirror (removed when closed)."""
    return tempfile.TemporaryDirectory(prefix="posefit-mmpose-")
