"""pyproject.toml describes the package; this adds what it cannot: the optional C helpers
(nefeature/tools/build_helpers.py): the DHCP UDP socket's (nefeature/dhcp/_batchio.c,
recvmmsg and sendmmsg) and the decoder's fast path (nefeature/dhcp/_codec.c).  Where they
do not compile (no compiler, no Python headers) pip installs the package without them, and
the pure-Python paths run."""

from setuptools import Extension, setup

setup(ext_modules=[
    Extension(f"nefeature.dhcp.{name}", [f"nefeature/dhcp/{name}.c"], optional=True)
    for name in ("_batchio", "_codec")])
