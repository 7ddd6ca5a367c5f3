"""Find and read a user's VPoser folder (licensed like SMPL-X: never downloaded, never shipped).

The layouts users have:

- **v1.0** (what SMPLify-X uses, its ``vposer_ckpt``): ``vposer_v1_0/snapshots/TR00_E096.pt``, a plain
  state dict saved by torch.save (legacy or zip layout), beside ``vposer_smpl.py`` and a ``.ini``;
- **v2.0**: ``V02_05/snapshots/V02_05_epoch=..._val_loss=....ckpt``, a PyTorch Lightning checkpoint whose
  ``state_dict`` keys carry the ``vp_model.`` prefix, beside ``V02_05.yaml``.

``--vposer`` may name such a folder, its parent, or the checkpoint file. Only the checkpoint is read, by
:func:`posecore.io.torch_checkpoint.read_checkpoint` (no pickle runs code); the ``.py`` file that
``human_body_prior`` would import from the folder is never imported.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from posecore.bodies.vposer import VPoserDecoder
from posecore.errors import InputFileError, ParameterError
from posecore.io.torch_checkpoint import checkpoint_arrays, read_checkpoint

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")

_LAYOUTS = {
    "v1": ("bodyprior_dec_fc1", "bodyprior_dec_fc2", "bodyprior_dec_out"),
    "v2": ("decoder_net.0", "decoder_net.3", "decoder_net.5"),
}


def find_vposer_checkpoint(location: str | os.PathLike[str]) -> Path:
    """The checkpoint file of a VPoser folder.

    Args:
        location: a checkpoint file, a VPoser folder (holding ``snapshots/``) or a folder holding one
            such folder (e.g. ``models/`` with ``vposer_v1_0/`` inside).

    Returns:
        The checkpoint: the most recently modified one in ``snapshots/`` (as ``human_body_prior`` picks it).

    Raises:
        InputFileError: nothing found (naming where it looked), or several VPoser folders to choose from.
    """
    path = Path(location).expanduser()
    if not path.exists():
        raise InputFileError(path, "VPoser folder not found (point it at vposer_v1_0/ or V02_05/)")
    if path.is_file():
        if path.suffix.lower() not in CHECKPOINT_SUFFIXES:
            raise InputFileError(path, f"is not a VPoser checkpoint (expected {', '.join(CHECKPOINT_SUFFIXES)})")
        return path
    folders = [path] if (path / "snapshots").is_dir() else sorted(p.parent for p in path.glob("*/snapshots"))
    if not folders:
        raise InputFileError(
            path,
            "holds no VPoser model: expected snapshots/*.pt (v1.0, vposer_v1_0/) or snapshots/*.ckpt "
            "(v2.0, V02_05/) in it or in one of its folders",
        )
    if len(folders) > 1:
        names = ", ".join(f.name for f in folders[:6])
        raise InputFileError(path, f"holds several VPoser models ({names}); point to the one to use")
    snapshots = folders[0] / "snapshots"
    found = [p for p in snapshots.iterdir() if p.suffix.lower() in CHECKPOINT_SUFFIXES and p.is_file()]
    if not found:
        raise InputFileError(snapshots, "holds no checkpoint (*.pt or *.ckpt)")
    return max(found, key=lambda p: (p.stat().st_mtime, p.name))


def load_vposer(location: str | os.PathLike[str]) -> VPoserDecoder:
    """VPoser's decoder from a user's folder or checkpoint (v1.0 or v2.0, told apart by the weight names).

    Raises:
        InputFileError: no checkpoint, a checkpoint that is corrupt or tries to run code (refused, never
            executed), or one without VPoser's decoder weights / with wrong shapes (named).
    """
    ckpt = find_vposer_checkpoint(location)
    obj = read_checkpoint(ckpt)
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]  # a Lightning checkpoint
    arrays = checkpoint_arrays(obj)
    for version, layers in _LAYOUTS.items():
        prefixes = ("", "vp_model.") if version == "v2" else ("",)
        for prefix in prefixes:
            keys = [f"{prefix}{layer}.{kind}" for layer in layers for kind in ("weight", "bias")]
            if all(k in arrays for k in keys):
                values = [torch.from_numpy(arrays[k]) for k in keys]
                try:
                    return VPoserDecoder(version, *values, source=str(ckpt))
                except ParameterError as exc:
                    raise InputFileError(ckpt, str(exc).removeprefix(f"{ckpt}: ")) from None
    sample = ", ".join(sorted(arrays)[:6]) or "no float tensors"
    raise InputFileError(
        ckpt,
        "has no VPoser decoder weights (expected bodyprior_dec_fc1/fc2/out for v1.0 or "
        f"vp_model.decoder_net.0/3/5 for v2.0; found {sample})",
    )
