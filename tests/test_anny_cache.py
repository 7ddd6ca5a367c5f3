"""Anny's first use: the fast target parser gives anny's values bit for bit, and a build keeps only the final
model data (``posecore.bodies.anny_cache``)."""

from __future__ import annotations

import gzip
import pathlib

import pytest
import torch

anny = pytest.importorskip("anny", reason="the free body model needs the anny package")

import anny.models.facial_actions as facial_actions  # noqa: E402
import anny.models.full_model as full_model  # noqa: E402
import roma  # noqa: E402
from anny.paths import get_anny_root_dir  # noqa: E402

from posecore.bodies import anny_cache  # noqa: E402

VERTICES = 19158  # MakeHuman's base mesh, as anny reads the targets
WORLD = roma.Linear(0.1 * roma.euler_to_rotmat("X", [90], degrees=True, dtype=torch.float64))[None]


def _targets() -> list[pathlib.Path]:
    root = pathlib.Path(get_anny_root_dir()) / "data" / "mpfb2" / "targets"
    macro = sorted((root / "macrodetails").glob("*.target.gz"))
    others = sorted(p for p in root.glob("*/*.target.gz") if p.parent.name != "macrodetails")
    return macro[:: max(1, len(macro) // 5)][:5] + others[:: max(1, len(others) // 3)][:3]


@pytest.mark.parametrize("path", _targets(), ids=lambda p: p.name)
def test_fast_parser_matches_anny_bit_for_bit(path: pathlib.Path) -> None:
    expected = full_model.load_blend_shape(path, VERTICES, WORLD, torch.float64)
    got = anny_cache.load_blend_shape_fast(path, VERTICES, WORLD, torch.float64)
    assert got.dtype == expected.dtype and torch.equal(got, expected)


def _plain_targets() -> list[pathlib.Path]:
    folder = pathlib.Path(get_anny_root_dir()) / "data" / "faceunits01" / "targets" / "faceunits"
    return sorted(folder.glob("*.target"))[::13]


@pytest.mark.parametrize("path", _plain_targets(), ids=lambda p: p.name)
def test_fast_plain_parser_matches_anny_bit_for_bit(path: pathlib.Path) -> None:
    """The facial-expression targets: plain text with ``#`` comment lines."""
    expected = facial_actions.load_plain_target(path, VERTICES, WORLD, torch.float64)
    got = anny_cache.load_plain_target_fast(path, VERTICES, WORLD, torch.float64)
    assert got.dtype == expected.dtype and torch.equal(got, expected)


def test_fast_parsers_skip_comments_and_blank_lines_like_anny(tmp_path: pathlib.Path) -> None:
    plain = tmp_path / "commented.target"
    plain.write_text("# a comment\n\n  4 -.775 10.205 0.1\n# 5 1 1 1\n6 1e-3 -0 2\n")
    got = anny_cache.load_plain_target_fast(plain, 10, WORLD, torch.float64)
    assert torch.equal(got, facial_actions.load_plain_target(plain, 10, WORLD, torch.float64))
    assert torch.count_nonzero(got.abs().sum(dim=1)) == 2
    empty = tmp_path / "empty.target.gz"
    empty.write_bytes(gzip.compress(b""))
    assert torch.equal(anny_cache.load_blend_shape_fast(empty, 10, WORLD, torch.float64), torch.zeros(10, 3))


def test_fast_parser_rejects_bad_files(tmp_path: pathlib.Path) -> None:
    bad = tmp_path / "bad.target.gz"
    bad.write_bytes(gzip.compress(b"0 1.0 2.0\n"))
    with pytest.raises(ValueError, match="index dx dy dz"):
        anny_cache.load_blend_shape_fast(bad, VERTICES, WORLD, torch.float64)
    bad.write_bytes(gzip.compress(b"19158 1.0 2.0 3.0\n"))
    with pytest.raises(ValueError, match="out of range"):
        anny_cache.load_blend_shape_fast(bad, VERTICES, WORLD, torch.float64)
    bad.write_bytes(gzip.compress(b"1 1.0 2.0 3.0\n2 1.0 x 3.0\n3 1.0 2.0 3.0\n"))
    with pytest.raises(ValueError, match="index dx dy dz"):
        anny_cache.load_blend_shape_fast(bad, VERTICES, WORLD, torch.float64)
    repeated = tmp_path / "repeated.target.gz"
    repeated.write_bytes(gzip.compress(b"3 1.0 0 0\n3 2.0 0 0"))  # no final newline
    assert torch.equal(
        anny_cache.load_blend_shape_fast(repeated, 10, WORLD, torch.float64),
        full_model.load_blend_shape(repeated, 10, WORLD, torch.float64),
    )


def test_fast_build_saves_only_the_final_model_data_and_restores_anny(tmp_path: pathlib.Path) -> None:
    """The hooks are active only inside the context: intermediate builders' files are skipped, the final one is
    written, and anny's own functions are back afterwards."""
    from anny.models.model_data import ModelData

    original_load, original_save = full_model.load_blend_shape, ModelData.save_safetensors
    threads = torch.get_num_threads()
    saved = []
    ModelData.save_safetensors = lambda self, path: saved.append(pathlib.Path(path).name)
    try:
        with anny_cache.fast_build():
            assert full_model.load_blend_shape is anny_cache.load_blend_shape_fast
            assert facial_actions.load_plain_target is anny_cache.load_plain_target_fast
            for name in ("load_data_1.safetensors", "build_model_data_2.safetensors", "build_compact_model_data_3.st"):
                ModelData.save_safetensors(object(), tmp_path / name)
        assert saved == ["build_compact_model_data_3.st"]
    finally:
        ModelData.save_safetensors = original_save
    assert full_model.load_blend_shape is original_load and torch.get_num_threads() == threads
    assert facial_actions.load_plain_target is not anny_cache.load_plain_target_fast


def test_prune_keeps_the_final_file_only(tmp_path: pathlib.Path) -> None:
    version = tmp_path / "v14"
    version.mkdir()
    for name in ("load_data_a.safetensors", "build_model_data_b.safetensors"):
        (version / name).write_bytes(b"x" * 10)
    assert not anny_cache.is_ready(tmp_path) and anny_cache.prune(tmp_path) == 0  # nothing final yet: keep
    (version / "build_compact_model_data_c.safetensors").write_bytes(b"y" * 5)
    assert anny_cache.is_ready(tmp_path)
    assert anny_cache.prune(tmp_path) == 20
    assert [p.name for p in version.iterdir()] == ["build_compact_model_data_c.safetensors"]
    assert anny_cache.cache_size(tmp_path) == 5
