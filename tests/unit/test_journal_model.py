"""The lease journal against a model (a dict of address -> lease, and the last value of each
sync point and split): whatever the order of commits, log files started over, folds, kills
and a kill that cuts the last write short, the journal read at the next start holds every
commit that returned, and of the one cut short nothing."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from nefeature.dhcp.journal import LeaseJournal
from nefeature.dhcp.leases import BOUND, DECLINED, EXPIRED, RELEASED, Lease
from tests.unit.test_journal_writes import crash

BASE = 0x0A000000

leases = st.builds(
    lambda offset, state, start, expiry, client_id, hostname, option82, static: Lease(
        BASE + offset, "pool1", b"h" + bytes([offset]) * 6, bytes([offset]) * 6, state, start,
        expiry, client_id, hostname, option82, "local" if offset % 2 else "peer-sync", static),
    offset=st.integers(0, 5),
    state=st.sampled_from([BOUND, RELEASED, EXPIRED, DECLINED]),
    start=st.floats(1e9, 2e9),
    expiry=st.none() | st.floats(1e9, 3e9),
    client_id=st.none() | st.binary(min_size=1, max_size=8),
    hostname=st.none() | st.text(max_size=10),
    option82=st.none() | st.binary(min_size=2, max_size=12),
    static=st.booleans(),
)
changes = st.dictionaries(st.integers(0, 5).map(lambda o: BASE + o), st.none() | leases,
                          max_size=4).map(
    lambda c: {address: None if lease is None else lease._replace(address=address)
               for address, lease in c.items()})
steps = st.lists(st.one_of(
    st.tuples(st.just("commit"), changes,
              st.none() | st.dictionaries(st.sampled_from(["rbs1", "rbs2"]),
                                          st.floats(0, 2e9), max_size=2),
              st.none() | st.dictionaries(st.just("pool1"), st.integers(0, 100), max_size=1)),
    st.tuples(st.just("start-over")),
    st.tuples(st.just("fold")),
    st.tuples(st.just("kill"), st.integers(0, 3)),  # bytes of the last write lost (0: none)
), max_size=25)


@settings(max_examples=150, deadline=None)
@given(steps)
def test_the_journal_read_at_start_is_every_commit_that_returned(tmp_path_factory, steps):
    path = tmp_path_factory.mktemp("journal") / "leases.sqlite"
    journal = LeaseJournal(path)
    model: dict[int, Lease] = {}
    synced: dict[str, float] = {}
    splits: dict[str, int] = {}
    before_last: tuple | None = None  # the model before the last commit in the open log file
    try:
        for step in steps:
            if step[0] == "commit":
                _, change, synced_until, split = step
                if not change and not synced_until and not split:
                    continue  # nothing is written
                before_last = (dict(model), dict(synced), dict(splits))
                journal.commit(change, synced_until, split)
                for address, lease in change.items():
                    if lease is None:
                        model.pop(address, None)
                    else:
                        model[address] = lease
                synced.update(synced_until or {})
                splits.update(split or {})
            elif step[0] == "start-over":
                with journal._lock:
                    journal._start_next_log()  # a finished file the folder never got to
                before_last = None
            elif step[0] == "fold":
                journal.fold()
                before_last = None
            else:
                cut = step[1]
                log_file = journal._log_path(journal._generation)
                crash(journal)
                if cut and before_last is not None:  # the last write cut short: lost
                    with open(log_file, "r+b") as torn:
                        torn.truncate(log_file.stat().st_size - cut)
                    model, synced, splits = before_last
                before_last = None
                journal = LeaseJournal(path)
                assert_reads(journal, model, synced, splits)
        crash(journal)
        journal = LeaseJournal(path)
        assert_reads(journal, model, synced, splits)
    finally:
        journal.close()


def assert_reads(journal: LeaseJournal, model, synced, splits) -> None:
    """What a device reads at start (each read folds the log first, as a start does)."""
    assert {lease.address: lease for lease in journal.load()} == model
    assert journal.load_synced_until() == synced
    assert journal.load_splits() == splits
