"""bench/ha's run accounting: the wake-ups it counts per server process (voluntary context
switches of every thread, and of the journal folder's process under it), and ``--paired``
on its own, without the other phases."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SLEEPS = 50

CHILD = """
import os, sys, time
go, done = int(sys.argv[1]), int(sys.argv[2])
os.write(done, b"%d\\n" % os.getpid())
os.read(go, 1)
for _ in range(SLEEPS):
    time.sleep(0.002)
os.write(done, b"slept\\n")
os.read(go, 1)  # until the test closes its end
""".replace("SLEEPS", str(SLEEPS))


def test_wakeups_count_a_child_process_sleeping(bench_ha):
    """A parent waiting on a child that sleeps SLEEPS times: the parent's count takes in
    the child's SLEEPS wake-ups, as a device's takes in its journal folder's."""
    go_read, go_write = os.pipe()
    done_read, done_write = os.pipe()
    parent = subprocess.Popen(
        [sys.executable, "-c",
         "import subprocess, sys\n"
         "subprocess.run([sys.executable, '-c', sys.argv[1], sys.argv[2], sys.argv[3]],"
         " pass_fds=(int(sys.argv[2]), int(sys.argv[3])))",
         CHILD, str(go_read), str(done_write)],
        pass_fds=(go_read, done_write))
    os.close(go_read)
    os.close(done_write)
    try:
        with os.fdopen(done_read) as done:
            child_pid = int(done.readline())
            assert child_pid in bench_ha.descendants(parent.pid)
            before = bench_ha.safe_wakeups(parent.pid)
            os.write(go_write, b"x")
            assert done.readline() == "slept\n"
            during = bench_ha.safe_wakeups(parent.pid)
    finally:
        os.close(go_write)
        parent.wait(timeout=30)
    assert before is not None and during is not None
    assert during - before >= SLEEPS
    assert bench_ha.safe_wakeups(parent.pid) is None  # gone: nothing to count


def test_paired_runs_alone_but_no_phases_without_it(bench_ha):
    args = bench_ha.parse_args(["--phases", "", "--paired", "6000,8000", "--systems", "alone,strict"])
    assert args.phase_list == [] and args.paired == [6000, 8000]
    with pytest.raises(SystemExit):
        bench_ha.parse_args(["--phases", ""])
    with pytest.raises(SystemExit):
        bench_ha.parse_args(["--phases", "throughput,nonsense"])
