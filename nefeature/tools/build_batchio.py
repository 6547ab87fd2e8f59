"""Build the optional C helper of the DHCP UDP socket (``nefeature/dhcp/_batchio.c``) in
place: ``python -m nefeature.tools.build_batchio`` (pip builds it too, through setup.py,
when it installs the package).  It needs gcc and the Python headers; without them nothing
is built and the transport reads with ``socket.recvmsg`` and sends with ``socket.sendmsg``
(the same datagrams, one system call each)."""

from __future__ import annotations

import shutil
import subprocess
import sysconfig
from pathlib import Path

SOURCE = Path(__file__).resolve().parent.parent / "dhcp" / "_batchio.c"


def target() -> Path:
    return SOURCE.with_name("_batchio" + sysconfig.get_config_var("EXT_SUFFIX"))


def python_headers() -> Path:
    return Path(sysconfig.get_paths()["include"])


def compiler_available() -> bool:
    """gcc and the Python headers are here, so the helper must build (here and in pip)."""
    return shutil.which("gcc") is not None and (python_headers() / "Python.h").exists()


def build() -> bool:
    """Compile when the module is missing or older than its source; True if it is there."""
    built = target()
    if built.exists() and built.stat().st_mtime >= SOURCE.stat().st_mtime:
        return True
    fallback = "the DHCP socket uses socket.recvmsg and socket.sendmsg"
    if not compiler_available():
        print(f"no gcc, or no Python.h in {python_headers()}: {fallback}")
        return False
    command = ["gcc", "-O2", "-Wall", "-shared", "-fPIC", f"-I{python_headers()}", str(SOURCE),
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


if __name__ == "__main__":
    build()  # optional: without a compiler the transport runs as it is, so no error status
