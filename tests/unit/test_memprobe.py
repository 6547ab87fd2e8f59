"""nefeature.memprobe: the memory figures a soak run asks a device for."""

from __future__ import annotations

import json
from types import SimpleNamespace

from nefeature.dhcp.journal import LeaseJournal
from nefeature.dhcp.server import DhcpServer
from nefeature.memprobe import MemoryProbe, from_environment
from tests.unit.test_dhcp_server import Client, single_config


def test_probe_line_has_memory_journal_and_structure_sizes(tmp_path):
    journal = LeaseJournal(tmp_path / "leases.sqlite")
    server = DhcpServer(single_config())
    for n in range(1, 6):
        Client(server, mac=n).dora()
    journal.commit(server.table.take_pending())
    device = SimpleNamespace(journal=journal, dhcp=server, recent_events=[])
    probe = MemoryProbe(device, tmp_path / "probe.jsonl")
    probe.write()
    probe.write()
    lines = [json.loads(line) for line in (tmp_path / "probe.jsonl").read_text().splitlines()]
    assert len(lines) == 2
    line = lines[0]
    assert line["VmRSS"] > 0 and line["RssAnon"] > 0
    assert line["journal-wal"] > 0 and line["python_blocks"] > 0
    assert line["sizes"]["leases"] == 5 and line["sizes"]["deadlines"] >= 5
    assert line["sizes"]["acked_expiry"] == 0  # the DHCP engine's copy of the peer's expiries
    assert line["sizes"]["parked"] is None  # no device core here: left out, no crash
    journal.close()


def test_probe_only_when_asked(monkeypatch, tmp_path):
    device = SimpleNamespace()
    monkeypatch.delenv("NEFEATURE_MEMPROBE", raising=False)
    assert from_environment(device) is None
    monkeypatch.setenv("NEFEATURE_MEMPROBE", str(tmp_path / "probe-{pid}.jsonl"))
    monkeypatch.setenv("NEFEATURE_MEMPROBE_INTERVAL", "5")
    probe = from_environment(device)
    assert probe.interval == 5.0 and probe.path.name.startswith("probe-")
    assert "{pid}" not in probe.path.name
