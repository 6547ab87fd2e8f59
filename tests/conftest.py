"""Shared fixtures: the repository layout and the external validators."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
YANG = ROOT / "nefeature" / "yang"
EXAMPLES = ROOT / "examples"
MODULE_FILES = [YANG / f"{name}.yang" for name in (
    "nefeature-interfaces", "nefeature-vrrp", "nefeature-rbs", "nefeature-dhcp-server")]


@pytest.fixture(scope="module")
def bench_ha():
    """bench/ha (a script, not a module) imported, for tests of its accounting."""
    loader = importlib.machinery.SourceFileLoader("bench_ha", str(ROOT / "bench" / "ha"))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[loader.name] = module  # its dataclasses look their module up
    loader.exec_module(module)
    yield module
    del sys.modules[loader.name]


def c_helper(source: str, without: str):
    """The optional C helper built from ``nefeature/dhcp/<source>.c``, imported; a test that
    needs it fails where gcc and the Python headers are and it does not build, and is
    skipped where they are not (``without``: what runs there instead)."""
    import importlib

    from nefeature.tools import build_helpers

    if not build_helpers.build_one(build_helpers.DHCP / f"{source}.c"):
        if build_helpers.compiler_available():
            pytest.fail(f"gcc and the Python headers are here, yet {source}.c did not build")
        pytest.skip(f"no gcc or no Python headers: {without}")
    return importlib.import_module(f"nefeature.dhcp.{source}")


def validator_environment(name: str) -> dict[str, str]:
    """The environment that puts one validator in charge: 'libyang' (skipped where its
    binding is not installed) or 'yangson' alone (nefeature.datastore.libyang_validator)."""
    from nefeature.datastore import libyang_validator

    if name == "libyang" and libyang_validator.libyang is None:
        pytest.skip("libyang binding not installed (pyproject extra 'libyang')")
    return {"NEFEATURE_VALIDATOR": "" if name == "libyang" else "yangson"}


@pytest.fixture(scope="session")
def yanglint() -> str:
    """Path of yanglint (Debian libyang-tools; `make test` installs it as root)."""
    path = shutil.which("yanglint")
    if path is None:
        pytest.skip("yanglint is not installed (Debian package libyang-tools; "
                    "`make test` installs it when run as root)")
    return path


def run_yanglint(yanglint: str, instance: Path | None = None) -> subprocess.CompletedProcess:
    """Load all modules, and validate one config instance file if given."""
    args = [yanglint, "-p", str(YANG)]
    if instance is not None:
        args += ["-t", "config"]
    args += [str(p) for p in MODULE_FILES]
    if instance is not None:
        args.append(str(instance))
    return subprocess.run(args, capture_output=True, text=True, timeout=60)
