"""The experiment patches that bench/README.md tells a reader to apply still apply to this
code, so the figures measured with them can be measured again."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
REFERENCED = sorted(set(re.findall(r"bench/experiments/[\w.-]+\.patch",
                                   (REPO / "bench" / "README.md").read_text())))


def test_bench_readme_names_its_experiment_patches():
    assert REFERENCED, "bench/README.md names no experiment patch"
    on_disk = {f"bench/experiments/{path.name}"
               for path in (REPO / "bench" / "experiments").glob("*.patch")}
    assert on_disk == set(REFERENCED)  # none missing, none left unexplained


@pytest.mark.parametrize("patch", REFERENCED)
def test_experiment_patch_applies(patch):
    result = subprocess.run(["git", "apply", "--check", patch], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
