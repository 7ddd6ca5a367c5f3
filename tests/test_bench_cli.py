"""``python -m posecore.bench``: --help lists the benchmarks and exits 0; no or an unknown command exits 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def bench(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "posecore.bench", *args], env=env, capture_output=True, text=True,
                          timeout=60)  # fmt: skip


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_lists_the_benchmarks_and_exits_0(flag) -> None:
    result = bench(flag)
    assert result.returncode == 0, result.stderr
    assert "speed" in result.stdout and "accuracy" in result.stdout


@pytest.mark.parametrize("args", [(), ("nonsense",)])
def test_no_or_unknown_command_exits_2_with_usage(args) -> None:
    result = bench(*args)
    assert result.returncode == 2 and "usage:" in result.stderr
