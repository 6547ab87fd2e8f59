"""Build the optional C helpers in place: ``python -m nefeature.tools.build_helpers`` (pip
builds them too, through setup.py, when it installs the package).  They need gcc and the
Python headers; without them nothing is built and the pure-Python paths run:

* ``nefeature/dhcp/_batchio.c``, the DHCP UDP socket's recvmmsg, sendmmsg and timerfd
  (without it ``socket.recvmsg`` and ``socket.sendmsg``, one system call a datagram);
* ``nefeature/dhcp/_codec.c``, the decoder's fast path for the usual message (without it
  ``nefeature.dhcp.codec.decode_in_python`` reads every message)."""

from __future__ import annotations

import shutil
import subprocess
import sysconfig
from pathlib import Path

DHCP = Path(__file__).resolve().parent.parent / "dhcp"
#: each helper's source, and what runs where it is not built
HELPERS = {
    DHCP / "_batchio.c": "the DHCP socket uses socket.recvmsg and socket.sendmsg",
    DHCP / "_codec.c": "DHCP messages are decoded in Python",
}


def target(source: Path) -> Path:
    return source.with_name(source.stem + sysconfig.get_config_var("EXT_SUFFIX"))


def python_headers() -> Path:
    return Path(sysconfig.get_paths()["include"])


def compiler_available() -> bool:
    """gcc and the Python headers are here, so the helpers must build (here and in pip)."""
    return shutil.which("gcc") is not None and (python_headers() / "Python.h").exists()


def build_one(source: Path) -> bool:
    """Compile when the module is missing or older than its source; True if it is there."""
    built, fallback = target(source), HELPERS[source]
    if built.exists() and built.stat().st_mtime >= source.stat().st_mtime:
        return True
    if not compiler_available():
        print(f"no gcc, or no Python.h in {python_headers()}: {fallback}")
        return False
    command = ["gcc", "-O2", "-Wall", "-shared", "-fPIC", f"-I{python_headers()}", str(source),
               "-o", str(built)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    except OSError as error:
        print(f"{error}: {fallback}")
        return False
    if result.returncode != 0:
        print(f"{' '.join(command)} failed:\n{result.stderr}\n{fallback}")
        return False
    return True


def build() -> bool:
    """Build every helper; True if all are there."""
    return all([build_one(source) for source in HELPERS])


if __name__ == "__main__":
    build()  # optional: without a compiler everything runs as it is, so no error status
