"""An in-process backend for shell tests: the server's own edit and validation code."""

from __future__ import annotations

import copy

from lxml import etree

from nefeature.datastore.edit import apply_edit
from nefeature.datastore.validation import validate_raw
from nefeature_cli.commands import NC


class LocalBackend:
    """Candidate and running as the NETCONF server keeps them, minus the network."""

    def __init__(self, running: dict | None = None):
        self.running = running or {}
        self.candidate = copy.deepcopy(self.running)
        self.edits: list[str] = []
        self.rpcs: list[str] = []

    def edit(self, fragment: str) -> None:
        self.edits.append(fragment)
        config = etree.fromstring(f'<config xmlns="{NC}" xmlns:nc="{NC}">{fragment}</config>')
        self.candidate = apply_edit(self.candidate, config)

    def commit(self) -> None:
        self.running = validate_raw(self.candidate).explicit
        self.candidate = copy.deepcopy(self.running)

    def discard(self) -> None:
        self.candidate = copy.deepcopy(self.running)

    def config(self, source: str) -> dict:
        return self.running if source == "running" else self.candidate

    def state(self) -> dict:
        return self.running

    def rpc(self, xml: str) -> None:
        self.rpcs.append(xml)
