"""The saved startup configuration: its YANG revisions, and which file a device starts from."""

from __future__ import annotations

import pytest

from nefeature.datastore.startup import (
    StartupTooNew,
    check_revisions,
    our_revisions,
    read_startup,
    render_startup,
    saved_revisions,
    startup_source,
    write_startup,
)
from nefeature.datastore.validation import validate_config_text
from tests.conftest import EXAMPLES


def example_explicit() -> dict:
    return validate_config_text((EXAMPLES / "pair" / "deviceA.xml").read_bytes()).explicit


def test_saved_file_names_every_revision_and_reads_back(tmp_path):
    explicit = example_explicit()
    path = write_startup(tmp_path, explicit)
    text = path.read_bytes()
    assert saved_revisions(text) == our_revisions()
    reread = validate_config_text(read_startup(path)).explicit
    assert render_startup(reread) == text  # the same configuration (list order may differ)


def test_older_revisions_and_files_without_them_are_read(tmp_path):
    ours = our_revisions()
    older = render_startup(example_explicit()).replace(
        f"nefeature-vrrp@{ours['nefeature-vrrp']}".encode(), b"nefeature-vrrp@2000-01-01")
    check_revisions(older, "older.xml")
    check_revisions((EXAMPLES / "pair" / "deviceA.xml").read_bytes(), "deviceA.xml")
    assert saved_revisions((EXAMPLES / "pair" / "deviceA.xml").read_bytes()) is None


@pytest.mark.parametrize("replacement, message", [
    (b"nefeature-vrrp@2999-12-31", "was saved with nefeature-vrrp revision 2999-12-31, newer "
                                    "than this release's"),
    (b"nefeature-vrrp@2026-11-28 nefeature-future@2999-01-01",
     "was saved with the YANG module nefeature-future@2999-01-01, which this release does not "
     "have"),
])
def test_newer_revisions_are_refused(replacement, message):
    ours = our_revisions()
    text = render_startup(example_explicit()).replace(
        f"nefeature-vrrp@{ours['nefeature-vrrp']}".encode(), replacement)
    with pytest.raises(StartupTooNew, match=message):
        check_revisions(text, "startup.xml")


def test_the_saved_file_wins_over_the_configured_one(tmp_path):
    configured = tmp_path / "etc.xml"
    assert startup_source(tmp_path, configured) == configured
    saved = write_startup(tmp_path, {})
    assert startup_source(tmp_path, configured) == saved
