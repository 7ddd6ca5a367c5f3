"""The speed benchmark runs end to end at a tiny size and reports what it measured."""

from __future__ import annotations

import re

import pytest

from posecore.bench import speed
from posecore.errors import BackendUnavailableError


def test_speed_command_prints_and_writes_a_table(tmp_path, capsys, monkeypatch) -> None:
    real = speed.get_renderer

    def fake_get_renderer(name: str, **options):
        if name == "redner":
            raise BackendUnavailableError("pyredner does not import")
        return real(name, **options)

    monkeypatch.setattr(speed, "get_renderer", fake_get_renderer)
    out = tmp_path / "speed.md"
    code = speed.main(["--backends", "raster,redner", "--sizes", "32,48", "--threads", "1", "--repeats", "1",
                       "--fit-iterations", "2", "--markdown", str(out)])  # fmt: skip
    assert code == 0
    text = out.read_text()
    assert text.strip() in capsys.readouterr().out
    rows = [line for line in text.splitlines() if line.startswith("| raster |")]
    assert len(rows) == 2 * 2 + 3  # two meshes x two sizes, whole fits with two presets and a selective one
    for row in rows[:4]:
        numbers = [float(x) for x in re.findall(r"\d+\.\d+", row)]
        assert numbers and all(x > 0 for x in numbers)
    assert "redner: skipped (pyredner does not import)" in text
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"  # the plot beside the table


def test_unknown_backend_is_an_error() -> None:
    from posecore.errors import ParameterError

    with pytest.raises(ParameterError, match="unknown renderer"):
        speed.main(
            ["--backends", "nosuch", "--sizes", "32", "--threads", "1", "--repeats", "1", "--fit-iterations", "0"]
        )
