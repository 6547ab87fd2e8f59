"""The wheel works on its own: built with `python -m build`, installed into a fresh virtualenv,
run from a directory outside the checkout (so no checkout is on sys.path).

No root needed: the device runs as the conformance tests run it (DHCP on a high port, VRRP on
the emulated LAN, NETCONF on loopback).  pip fetches the dependencies as `make venv` does.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from nefeature.datastore.schema import OWN_MODULES
from nefeature.tools.build_helpers import compiler_available
from tests.conftest import EXAMPLES, ROOT
from tests.conformance.conftest import device_config, free_port

DATA_FILES = {f"nefeature/yang/{name}.yang" for name in OWN_MODULES} | {
    "nefeature/yang/ietf/ietf-inet-types.yang", "nefeature/yang/ietf/ietf-yang-types.yang",
    "nefeature/examples/pair/deviceA.xml", "nefeature/examples/pair/deviceB.xml",
    "nefeature/examples/single/server.xml"}


def run(args, cwd: Path, timeout: float = 300, env: dict | None = None,
        check: bool = True) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run([str(arg) for arg in args], cwd=cwd, capture_output=True, text=True,
                            timeout=timeout, env={**environment, **(env or {})},
                            stdin=subprocess.DEVNULL)
    if check:
        assert result.returncode == 0, f"{args} exited {result.returncode}:\n" \
                                       f"{result.stdout}{result.stderr}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(bin directory of a fresh virtualenv holding the wheel, a directory outside the checkout)."""
    work = tmp_path_factory.mktemp("install")
    dist = work / "dist"
    run([sys.executable, "-m", "build", "--outdir", dist, ROOT], cwd=work)
    wheels, sdists = list(dist.glob("nefeature-*.whl")), list(dist.glob("nefeature-*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, list(dist.iterdir())
    assert DATA_FILES <= set(zipfile.ZipFile(wheels[0]).namelist())
    sdist_names = {name.split("/", 1)[1] for name in tarfile.open(sdists[0]).getnames()
                   if "/" in name}
    assert DATA_FILES <= sdist_names
    run([sys.executable, "-m", "venv", work / "venv"], cwd=work)
    bin_dir = work / "venv" / "bin"
    run([bin_dir / "pip", "install", "--quiet", wheels[0]], cwd=work, timeout=600)
    located = run([bin_dir / "python", "-c", "import nefeature; print(nefeature.__file__)"],
                  cwd=work).stdout.strip()
    assert located.startswith(str(work / "venv")), located
    return bin_dir, work


def test_the_wheel_carries_the_c_helpers_where_they_compile(installed):
    bin_dir, work = installed
    if not compiler_available():
        pytest.skip("no gcc or no Python headers: the wheel holds the pure-Python paths")
    located = run([bin_dir / "python", "-c", "from nefeature.dhcp import transport, codec; "
                   "print(transport._batchio.__file__); "
                   "print(codec.decode_common.__module__)"], cwd=work).stdout.split()
    assert located[0].startswith(str(work / "venv")), located
    assert located[1] == "nefeature.dhcp._codec", located


def test_validate_the_examples(installed):
    bin_dir, work = installed
    files = sorted(EXAMPLES.glob("*/*.xml"))
    result = run([bin_dir / "nefeature", "validate", *files], cwd=work)
    assert result.stdout.splitlines() == [f"{f}: ok" for f in files]


def test_run_a_device_and_ask_it_with_the_shell(installed):
    bin_dir, work = installed
    startup = work / "device.xml"
    startup.write_text(device_config())
    state = work / "state"
    port = free_port()
    log = work / "device.log"
    with open(log, "w") as output:
        device = subprocess.Popen(
            [bin_dir / "nefeature", "run", "--startup", startup, "--state-dir", state,
             "--netconf", f"127.0.0.1:{port}", "--dhcp-port", str(free_port(socket.SOCK_DGRAM)),
             "--emulate-lan", f"239.255.72.{os.getpid() % 200 + 10}:"
                              f"{free_port(socket.SOCK_DGRAM)}"],
            cwd=work, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while "NETCONF over SSH" not in log.read_text():
            assert device.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        result = run([bin_dir / "nefeature-cli", "--port", port, "--user", "admin",
                      "--password-file", state / "netconf-password", "-c",
                      "display current-configuration"], cwd=work, timeout=120)
        assert "ip pool pool1" in result.stdout, result.stdout
        assert "vrrp vrid 1 virtual-ip 10.10.10.100" in result.stdout, result.stdout
    finally:
        device.terminate()
        assert device.wait(30) == 0, log.read_text()
    assert "Traceback" not in log.read_text()


def test_the_demo(installed):
    bin_dir, work = installed
    result = run([bin_dir / "nefeature", "demo", "--clients", "4", "--dir", work / "demo"],
                 cwd=work)
    assert "clients bound                 4 of 4" in result.stdout, result.stdout
    assert "DeviceA master again          yes" in result.stdout, result.stdout


def test_errors_name_what_is_missing(installed):
    bin_dir, work = installed
    example = EXAMPLES / "single" / "server.xml"
    missing = run([bin_dir / "nefeature", "validate", work / "absent.xml"], cwd=work,
                  check=False)
    assert (missing.returncode, missing.stderr.strip()) == (
        1, f"{work / 'absent.xml'}: No such file or directory")
    no_schema = run([bin_dir / "nefeature", "validate", example], cwd=work, check=False,
                    env={"NEFEATURE_YANG_DIR": str(work / "no-yang")})
    assert (no_schema.returncode, no_schema.stderr.strip()) == (
        2, f"nefeature: the YANG schema directory {work / 'no-yang'} ($NEFEATURE_YANG_DIR) "
           "does not exist")
    partial = work / "partial-yang"
    package_yang = Path(run([bin_dir / "python", "-c", "from nefeature.datastore.schema import "
                             "yang_dir; print(yang_dir())"], cwd=work).stdout.strip())
    partial.mkdir()
    for path in package_yang.rglob("*.yang"):
        if path.name != "nefeature-vrrp.yang":
            target = partial / path.relative_to(package_yang)
            target.parent.mkdir(exist_ok=True)
            target.write_bytes(path.read_bytes())
    no_module = run([bin_dir / "nefeature", "validate", example], cwd=work, check=False,
                    env={"NEFEATURE_YANG_DIR": str(partial)})
    assert (no_module.returncode, no_module.stderr.strip()) == (
        2, f"nefeature: the YANG module nefeature-vrrp is missing: no file "
           f"{partial / 'nefeature-vrrp.yang'}")
