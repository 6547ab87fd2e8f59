"""pyproject.toml describes the package; this adds what it cannot: the optional C helper of
the DHCP UDP socket (nefeature/dhcp/_batchio.c, recvmmsg and sendmmsg).  Where it does not
compile (no compiler, no Python headers) pip installs the package without it, and the
transport uses socket.recvmsg and socket.sendmsg."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("nefeature.dhcp._batchio", ["nefeature/dhcp/_batchio.c"],
                             optional=True)])
