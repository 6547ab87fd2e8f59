"""The layering the design relies on, checked on the source: engines are sans-IO, the
hot-backup engine knows nothing of VRRP, the configuration knows nothing of datastores;
and the DHCP engine's modules type-check (mypy), so what their annotations say holds."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import nefeature

PACKAGE = Path(nefeature.__file__).parent
ENGINES = ["core.py", "backup/hotbackup.py", "backup/channel.py", "backup/frames.py",
           "dhcp/server.py", "dhcp/leases.py", "dhcp/pool.py", "dhcp/codec.py",
           "dhcp/events.py", "dhcp/ratelimit.py", "vrrp/router.py", "vrrp/packet.py",
           "config/model.py", "config/diff.py"]
IO_MODULES = {"asyncio", "socket", "time", "threading", "selectors"}
TYPED = ["dhcp/codec.py", "dhcp/events.py", "dhcp/leases.py", "dhcp/pool.py", "dhcp/server.py",
         "dhcp/shards.py"]


def imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", ENGINES)
def test_engines_do_no_io_and_know_no_management_plane(module):
    found = imports(PACKAGE / module)
    assert not found & IO_MODULES, found & IO_MODULES
    assert not [name for name in found if name.startswith("nefeature.netconf")]


def test_hot_backup_knows_nothing_of_vrrp():
    for path in (PACKAGE / "backup").glob("*.py"):
        assert not [name for name in imports(path) if name.startswith("nefeature.vrrp")], path



def test_configuration_objects_know_nothing_of_datastores():
    for path in (PACKAGE / "config").glob("*.py"):
        assert not [name for name in imports(path)
                    if name.startswith("nefeature.datastore")], path



def test_the_shell_only_moves_bytes():
    """node.py drives DeviceCore; it holds no engine's logic and builds no NETCONF XML."""
    found = imports(PACKAGE / "node.py")
    assert "nefeature.core" in found
    assert not found & {"lxml", "nefeature.backup.hotbackup", "nefeature.backup.channel",
                        "nefeature.vrrp.router", "nefeature.config.diff"}


def test_the_dhcp_engine_type_checks(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--ignore-missing-imports", "--follow-imports=silent",
         "--cache-dir", str(tmp_path), *(str(PACKAGE / name) for name in TYPED)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
