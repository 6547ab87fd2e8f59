# nefeature: `make test` sets everything up on a fresh machine and runs the suite;
# `make demo` runs the demo (`make demo DEMO_ARGS=--keep-running` keeps the devices up).
# Both create the virtualenv in .venv on first use.

# The virtualenv's interpreter: Debian's python3.11 where it is, the one docs/operations.md
# deploys on (Debian builds it with PGO and LTO; the DHCP path takes 3–9 % less CPU on it than on
# a default source build such as pyenv's: bench/README.md, "The interpreter"); else python3.
DEBIAN_PYTHON := /usr/bin/python3.11
PYTHON ?= $(if $(wildcard $(DEBIAN_PYTHON)),$(DEBIAN_PYTHON),python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# Debian packages the system tests drive, and what the libyang binding compiles against
# (installed only when run as root on Debian).
APT_PACKAGES := kea-dhcp4-server kea-admin keepalived isc-dhcp-client udhcpc busybox \
                dhcpcd5 libyang-tools iproute2 strace \
                libyang2-dev gcc python3-dev libffi-dev

.PHONY: test demo venv system-packages libyang-binding fast-loop c-helpers yang-tree clean

# The system tests (network namespaces, real peers, real timers) mostly wait, so the rest of the
# suite runs beside them in a second pytest; its report follows theirs.  The system tests go in
# an order that puts the ones with the tightest timers last, when the other pytest is done.
SYSTEM_FIRST := tests/system/test_crash_consistency.py tests/system/test_pair_crash.py \
                tests/system/test_ansible_pair.py tests/system/test_live_apply.py \
                tests/system/test_lab.py tests/system/test_service_unit.py
SYSTEM_TESTS := $(SYSTEM_FIRST) $(filter-out $(SYSTEM_FIRST),$(sort $(wildcard tests/system/test_*.py)))

test: venv system-packages libyang-binding fast-loop c-helpers
	@$(PY) -m pytest -q -p no:cacheprovider --ignore=tests/system > $(VENV)/other-tests.log 2>&1 & \
	other=$$!; \
	$(PY) -m pytest -q $(SYSTEM_TESTS); system=$$?; \
	wait $$other; others=$$?; \
	echo "--- the tests outside tests/system (run beside them):"; cat $(VENV)/other-tests.log; \
	[ $$system -eq 0 ] && [ $$others -eq 0 ]

demo: venv c-helpers
	$(PY) -m nefeature demo $(DEMO_ARGS)

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV) || { echo "$(PYTHON) cannot make a virtualenv" \
	  "(Debian: python3-venv); python3 makes it"; rm -rf $(VENV); python3 -m venv $(VENV); }
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

# As root on Debian, install what is missing; elsewhere say what the system tests will lack.
system-packages:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  missing=""; \
	  for p in $(APT_PACKAGES); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	  done; \
	  if [ -n "$$missing" ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends $$missing >/dev/null; \
	  fi; \
	else \
	  echo "not root on Debian: system tests that need $(APT_PACKAGES) will say they are skipped"; \
	fi

# The optional libyang binding (pyproject extra 'libyang'): configuration validation about
# 20x faster.  It compiles against libyang2-dev; where that cannot be had, yangson validates
# alone, with the same errors, so a failed build is reported and the tests still run.
libyang-binding: venv
	@$(PY) -c 'import libyang' 2>/dev/null || \
	  $(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[libyang]' || \
	  echo "libyang binding not built (needs libyang2-dev, gcc, python3-dev, libffi-dev):" \
	       "yangson validates configurations alone"

# The optional faster event loop (pyproject extra 'fast': uvloop) for `nefeature run`;
# without it asyncio's own loop runs the same code.
fast-loop: venv
	@$(PY) -c 'import uvloop' 2>/dev/null || \
	  $(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[fast]' || \
	  echo "uvloop not installed: nefeature runs on asyncio's own event loop"

# The optional C helpers: the DHCP UDP socket's recvmmsg and sendmmsg, up to 64 datagrams a
# system call (nefeature/dhcp/_batchio.c), and the decoder's fast path for the usual message
# (nefeature/dhcp/_codec.c).  Without gcc or the Python headers the pure-Python paths run:
# the same datagrams, one system call each, and the same decoded messages.
c-helpers: venv
	@$(PY) -m nefeature.tools.build_helpers

# Regenerate nefeature/yang/README.md (the pyang trees); tests fail when it is stale.
yang-tree: venv
	$(PY) -m nefeature.tools.yang_tree > nefeature/yang/README.md

clean:
	rm -rf $(VENV) .pytest_cache
