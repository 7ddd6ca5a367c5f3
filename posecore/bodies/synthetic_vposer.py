"""VPoser folders in the exact layouts ``human_body_prior`` writes, for tests and benchmarks.

VPoser's weights are licensed: PoseFit never ships or downloads them. These writers make folders with the
same files, key names, tensor shapes and checkpoint formats as the real ones, holding weights the caller
chooses (random, or a decoder fitted to a set of poses by :func:`fit_decoder_to_poses`):

- v1.0: ``vposer_v1_0/snapshots/TR00_E096.pt`` (a plain state dict of encoder + decoder, saved in torch's
  legacy format as the 2019 release was, or the zip format), ``vposer_v1_0/TR00_004_00_WO_accadCMU.ini`` and
  ``vposer_v1_0/vposer_smpl.py`` (the model code ``human_body_prior`` imports; PoseFit never does);
- v2.0: ``V02_05/snapshots/V02_05_epoch=08_val_loss=0.03.ckpt``, a PyTorch Lightning checkpoint
  (``state_dict`` with ``vp_model.`` keys, ``epoch``, ``global_step``, ``pytorch-lightning_version``,
  ``hyper_parameters`` as an OmegaConf ``DictConfig``, ``callbacks`` keyed by Lightning's ``ModelCheckpoint``
  class, ``optimizer_states``) and ``V02_05/V02_05.yaml``.
"""

from __future__ import annotations

import contextlib
import sys
import types
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import torch

from posecore.bodies.vposer import LATENT_DIM, NUM_BODY_JOINTS, VPoserDecoder
from posecore.rotations import axis_angle_to_matrix

HIDDEN = 512
V1_FOLDER, V1_SNAPSHOT = "vposer_v1_0", "TR00_E096.pt"
V2_FOLDER, V2_SNAPSHOT = "V02_05", "V02_05_epoch=08_val_loss=0.03.ckpt"

V1_INI = """[general]
verbosity : 0
fp_precision: 32
[network]
num_neurons : 512
data_shape : [1, 21, 3]
latentD : 32
use_cont_repr: True
"""

V2_YAML = """model_params:
  num_neurons: 512
  latentD: 32
"""


def random_decoder(version: str = "v1", seed: int = 0, hidden: int = HIDDEN) -> VPoserDecoder:
    """A decoder with random weights (PyTorch's default Linear initialisation)."""
    g = torch.Generator().manual_seed(seed)

    def linear(n_in: int, n_out: int) -> tuple[torch.Tensor, torch.Tensor]:
        bound = 1.0 / n_in**0.5
        return (torch.rand(n_out, n_in, generator=g) * 2 - 1) * bound, (torch.rand(n_out, generator=g) * 2 - 1) * bound

    return VPoserDecoder(version, *linear(LATENT_DIM, hidden), *linear(hidden, hidden),
                         *linear(hidden, NUM_BODY_JOINTS * 6))  # fmt: skip


def fit_decoder_to_poses(
    poses: torch.Tensor, version: str = "v1", iterations: int = 400, hidden: int = 128, seed: int = 0
) -> tuple[VPoserDecoder, torch.Tensor]:
    """A decoder (and codes) whose latent space spans the given poses: a small auto-decoder.

    Jointly optimises the decoder weights and one code per pose so that ``decode(code_i)`` reproduces pose i,
    with a unit-Gaussian penalty on the codes (the prior VPoser's latent space has). Gives benchmarks a
    VPoser-format model whose codes mean something for the poses at hand; it is no substitute for the real
    VPoser, trained on AMASS.

    Args:
        poses: (N, 21, 3) axis-angle body poses, radians.

    Returns:
        The decoder and the (N, 32) codes.
    """
    g = torch.Generator().manual_seed(seed)
    start = random_decoder(version, seed, hidden)
    params = [t.clone().requires_grad_(True) for t in (start.fc1_weight, start.fc1_bias, start.fc2_weight,
                                                       start.fc2_bias, start.out_weight, start.out_bias)]  # fmt: skip
    codes = (0.1 * torch.randn(poses.shape[0], LATENT_DIM, generator=g)).requires_grad_(True)
    target = axis_angle_to_matrix(poses.to(torch.float32))
    optimizer = torch.optim.Adam([*params, codes], lr=3e-3)
    for _ in range(iterations):
        optimizer.zero_grad(set_to_none=True)
        decoder = VPoserDecoder.__new__(VPoserDecoder)
        decoder.version = version
        (decoder.fc1_weight, decoder.fc1_bias, decoder.fc2_weight, decoder.fc2_bias, decoder.out_weight,
         decoder.out_bias) = params  # fmt: skip
        loss = (decoder.decode_matrices(codes) - target).square().sum(dim=(1, 2, 3)).mean()
        loss = loss + 1e-3 * codes.square().sum(1).mean()
        loss.backward()
        optimizer.step()
    fitted = VPoserDecoder(version, *(p.detach() for p in params), source="fitted")
    return fitted, codes.detach()


def _v1_state_dict(decoder: VPoserDecoder, seed: int = 1) -> OrderedDict[str, torch.Tensor]:
    """VPoser v1.0's full state dict (``vposer_smpl.VPoser``): encoder with batch norms, then the decoder."""
    g = torch.Generator().manual_seed(seed)
    hidden, n_in = decoder.fc1_weight.shape[0], NUM_BODY_JOINTS * 3
    sd: OrderedDict[str, torch.Tensor] = OrderedDict()

    def bn(name: str, n: int) -> None:
        sd[f"{name}.weight"], sd[f"{name}.bias"] = torch.ones(n), torch.zeros(n)
        sd[f"{name}.running_mean"], sd[f"{name}.running_var"] = torch.zeros(n), torch.ones(n)
        sd[f"{name}.num_batches_tracked"] = torch.tensor(1000, dtype=torch.int64)

    def lin(name: str, n_in: int, n_out: int) -> None:
        sd[f"{name}.weight"] = torch.randn(n_out, n_in, generator=g) * 0.01
        sd[f"{name}.bias"] = torch.zeros(n_out)

    bn("bodyprior_enc_bn1", n_in)
    lin("bodyprior_enc_fc1", n_in, hidden)
    bn("bodyprior_enc_bn2", hidden)
    lin("bodyprior_enc_fc2", hidden, hidden)
    lin("bodyprior_enc_mu", hidden, LATENT_DIM)
    lin("bodyprior_enc_logvar", hidden, LATENT_DIM)
    for name, (w, b) in {
        "bodyprior_dec_fc1": (decoder.fc1_weight, decoder.fc1_bias),
        "bodyprior_dec_fc2": (decoder.fc2_weight, decoder.fc2_bias),
        "bodyprior_dec_out": (decoder.out_weight, decoder.out_bias),
    }.items():
        sd[f"{name}.weight"], sd[f"{name}.bias"] = w.clone(), b.clone()
    return sd


def write_vposer_v1(dest: str | Path, decoder: VPoserDecoder, legacy_format: bool = True) -> Path:
    """Write ``dest/vposer_v1_0/`` as released (see the module docstring); returns that folder."""
    folder = Path(dest) / V1_FOLDER
    (folder / "snapshots").mkdir(parents=True, exist_ok=True)
    torch.save(_v1_state_dict(decoder), folder / "snapshots" / V1_SNAPSHOT,
               _use_new_zipfile_serialization=not legacy_format)  # fmt: skip
    (folder / "TR00_004_00_WO_accadCMU.ini").write_text(V1_INI)
    # human_body_prior.tools.model_loader.load_vposer imports this file; PoseFit must never run it.
    (folder / "vposer_smpl.py").write_text(
        "import pathlib\npathlib.Path(__file__).with_name('IMPORTED').write_text('vposer_smpl.py was run')\n"
    )
    return folder


@contextlib.contextmanager
def _lightning_like_classes() -> Iterator[tuple[type, type]]:
    """``omegaconf.dictconfig.DictConfig`` and Lightning's ``ModelCheckpoint`` as picklable stand-ins when the
    real packages are absent, so a checkpoint pickles them by the same global names a real one does."""
    created: list[str] = []

    def module(name: str) -> types.ModuleType:
        if name not in sys.modules:
            sys.modules[name] = types.ModuleType(name)
            created.append(name)
        return sys.modules[name]

    classes = []
    for mod_name, cls_name in (("omegaconf.dictconfig", "DictConfig"),
                               ("pytorch_lightning.callbacks.model_checkpoint", "ModelCheckpoint")):  # fmt: skip
        for i in range(1, mod_name.count(".") + 2):
            module(".".join(mod_name.split(".")[:i]))
        mod = sys.modules[mod_name]
        cls = getattr(mod, cls_name, None)
        if cls is None:
            cls = type(cls_name, (), {"__module__": mod_name, "__init__": lambda self, **kw: self.__dict__.update(kw)})
            setattr(mod, cls_name, cls)
        classes.append(cls)
    try:
        yield classes[0], classes[1]
    finally:
        for name in created:
            sys.modules.pop(name, None)


def write_vposer_v2(dest: str | Path, decoder: VPoserDecoder) -> Path:
    """Write ``dest/V02_05/`` as released (see the module docstring); returns that folder."""
    folder = Path(dest) / V2_FOLDER
    (folder / "snapshots").mkdir(parents=True, exist_ok=True)
    sd: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, value in _v1_state_dict(decoder).items():
        if key.startswith("bodyprior_enc"):
            sd[f"vp_model.encoder_net.{key}"] = value
    for index, (w, b) in {0: (decoder.fc1_weight, decoder.fc1_bias), 3: (decoder.fc2_weight, decoder.fc2_bias),
                          5: (decoder.out_weight, decoder.out_bias)}.items():  # fmt: skip
        sd[f"vp_model.decoder_net.{index}.weight"], sd[f"vp_model.decoder_net.{index}.bias"] = w.clone(), b.clone()
    with _lightning_like_classes() as (dict_config, model_checkpoint):
        checkpoint = {
            "epoch": 8,
            "global_step": 12345,
            "pytorch-lightning_version": "1.2.0",
            "state_dict": sd,
            "callbacks": {model_checkpoint: {"best_model_score": torch.tensor(0.03), "monitor": "val_loss"}},
            "optimizer_states": [{"state": {}, "param_groups": [{"lr": 1e-3, "params": [0, 1]}]}],
            "lr_schedulers": [],
            "hparams_name": "kwargs",
            "hyper_parameters": {"_config": dict_config(model_params={"num_neurons": 512, "latentD": 32})},
        }
        torch.save(checkpoint, folder / "snapshots" / V2_SNAPSHOT)
    (folder / f"{V2_FOLDER}.yaml").write_text(V2_YAML)
    return folder
