"""A wider search of the pair's fault schedules than the suite's (not run by `make test`).

The suite's ``test_combined_faults`` replays the same 500 schedules every run, so that CI
is deterministic.  This draws new ones every run, and more widely: up to five faults,
3 to 10 clients, strict and lazy mode, slow and jittery channels, slow and stalling disks,
and clients that all start at once.  Every invariant of ``tests/sim/simulator.py`` is
checked after every event; a failure prints the violated invariant, a ``Sim(...)`` call
that replays it and the end of its trace (hypothesis shrinks it first).  A schedule it
finds belongs in ``tests/sim/test_simulation.py`` as a test of its own, with the fix.

Usage:
    .venv/bin/python -m tests.sim.explore                 # 2,000 schedules, a few minutes
    .venv/bin/python -m tests.sim.explore --examples 20000
"""

from __future__ import annotations

import argparse
import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.sim.simulator import STALLING_DISK, Sim
from tests.sim.test_simulation import fault

schedules = st.fixed_dictionaries({
    "seed": st.integers(0, 2**32 - 1),
    "faults": st.lists(fault, max_size=5),
    "mode": st.sampled_from(["strict", "strict", "lazy"]),
    "clients": st.integers(3, 10),
    "pool_end": st.sampled_from([16, 100]),  # 16: eight clients nearly fill it
    "channel_delay": st.sampled_from([(0.0002, 0.002), (0.005, 0.05), (0.0001, 0.2)]),
    "journal_delays": st.sampled_from([(0.0001, 0.0005, 0.002, 0.004), (0.02, 0.1),
                                       (0.0001, 0.3), STALLING_DISK]),
    "burst_at": st.none() | st.floats(1.0, 30.0),
})


def explore(examples: int, derandomize: bool = False) -> None:
    """Run ``examples`` schedules (new ones each run unless ``derandomize``)."""
    @settings(max_examples=examples, deadline=None, database=None, derandomize=derandomize,
              suppress_health_check=list(HealthCheck))
    @given(schedules)
    def run(schedule: dict) -> None:
        options = dict(schedule)
        Sim(options.pop("seed"), options.pop("faults"), duration=50.0, **options).run()

    run()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000,
                        help="schedules to draw (default 2,000)")
    explore(parser.parse_args(argv).examples)
    print("every invariant held")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
