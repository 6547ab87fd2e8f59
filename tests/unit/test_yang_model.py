"""The YANG modules themselves: lint-clean, loadable, documented, complete."""

from __future__ import annotations

import subprocess
import sys

import pytest

from nefeature.tools import yang_tree
from tests.conftest import EXAMPLES, MODULE_FILES, YANG, run_yanglint


def test_every_module_of_the_library_compiles_with_pyang_strict():
    from nefeature.datastore.schema import modules

    paths = [str(m.path) for m in modules()]
    result = subprocess.run([sys.executable, "-m", "pyang", "--strict", "-p", str(YANG),
                             "-p", str(YANG / "ietf"), *paths],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stderr


def test_pyang_strict_is_silent():
    result = subprocess.run(
        [sys.executable, "-m", "pyang", "--strict", "-p", str(YANG), *map(str, MODULE_FILES)],
        capture_output=True, text=True, timeout=120,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_yanglint_loads_every_module(yanglint):
    result = run_yanglint(yanglint)
    assert result.returncode == 0, result.stderr
    assert "err" not in result.stderr.lower()


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*/*.xml")), ids=lambda p: p.name)
def test_yanglint_accepts_example(yanglint, example):
    result = run_yanglint(yanglint, example)
    assert result.returncode == 0, result.stderr


def test_yang_readme_tree_is_current():
    committed = (YANG / "README.md").read_text()
    assert committed == yang_tree.render(), "nefeature/yang/README.md is stale: run `make yang-tree`"


TREE_MUST_SHOW = {
    "nefeature-dhcp-server": [
        "ip-pool* [ip-pool-name]", "section* [section-index]",
        "excluded-ip-address* [start-ip-address end-ip-address]", "static-bind* [ip-address]",
        "lease-time", "dns-list*", "identifier-ip?", "remote-backup-profile?",
        "ip-pool-user-info* [pool-name ip-address]", "mac-address?", "lease-expire?", "status?",
        "circuit-id?", "remote-id?", "origin?", "+---x reset-statistics",
        "+---x reset-address-state", "address-pool-utilization-threshold-exceeded",
    ],
    "nefeature-rbs": [
        "service* [name]", "peer-ip?", "source-ip?", "tcp-port?", "profile* [name]",
        "backup-id?", "vrrp* [id]", "if-name", "service-type*", "sync-mode?", "mclt?",
        "local-state?", "peer-state?", "+---x batch-backup-now", "+---n rbs-protect-down",
        "+---n rbs-protect-down-resume", "+---n rbp-state-change",
    ],
    "nefeature-vrrp": [
        "vrrp-instance* [vrid]", "priority?", "hold-time?", "advertise-interval-centi-sec?",
        "virtual-ipv4-address* [ipv4-address]", "priority-decrement?", "priority-increment",
        "master-down-interval?", "skew-time?", "+---n vrrp-new-master-event",
    ],
    "nefeature-interfaces": ["interface* [name]", "linux-name?", "address?", "mask?"],
}


@pytest.mark.parametrize("module", sorted(TREE_MUST_SHOW))
def test_tree_shows_the_feature(module):
    tree = yang_tree.module_tree(module)
    missing = [item for item in TREE_MUST_SHOW[module] if item not in tree]
    assert missing == []


def test_modules_import_only_ietf_types_besides_our_own():
    for path in MODULE_FILES:
        imports = [line.split()[1] for line in path.read_text().splitlines()
                   if line.strip().startswith("import ")]
        assert all(name in ("ietf-inet-types", "ietf-yang-types") or name.startswith("nefeature-")
                   for name in imports), (path.name, imports)
    # ietf/ holds the types our modules import and the NETCONF server's own modules
    # (protocol, monitoring, YANG library, notifications): each one in the library.
    from nefeature.datastore.schema import modules

    library = {m.path.name for m in modules() if m.path.parent.name == "ietf"}
    assert sorted(p.name for p in (YANG / "ietf").glob("*.yang")) == sorted(library)
    assert (YANG / "README.md").exists()
