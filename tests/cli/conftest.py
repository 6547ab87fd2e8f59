"""An in-process backend for shell tests: the server's own datastores, minus the network.

``LocalBackend`` is one session on a real ``Datastores`` (edit, lock, commit,
confirmed commit, copy-config): what the shell sees over NETCONF, with the
same errors, so the shell's private-candidate rules are exercised without a
device.  Several backends may share one ``Datastores`` (``other_session``).
"""

from __future__ import annotations

import copy
import itertools

from lxml import etree

from nefeature.datastore.datastores import Datastores
from nefeature.datastore.validation import validate_raw
from nefeature_cli.commands import NC

_SESSION_IDS = itertools.count(1)


class LocalBackend:
    """One NETCONF session's operations on in-process datastores."""

    def __init__(self, running: dict | None = None, datastores: Datastores | None = None):
        self.datastores = datastores or Datastores(validate_raw(running or {}),
                                                   apply=lambda old, new: None)
        self.session_id = next(_SESSION_IDS)
        self.users: dict[int, str] = {self.session_id: "admin"}
        self.edits: list[str] = []
        self.rpcs: list[str] = []
        self.now = 0.0

    def other_session(self) -> LocalBackend:
        """A second session on the same device."""
        other = LocalBackend(datastores=self.datastores)
        other.users = self.users
        self.users[other.session_id] = "admin"
        return other

    @property
    def running(self) -> dict:
        return self.datastores.running.explicit

    @property
    def candidate(self) -> dict:
        return self.datastores.candidate

    def edit(self, fragment: str) -> None:
        self.edits.append(fragment)
        config = etree.fromstring(f'<config xmlns="{NC}" xmlns:nc="{NC}">{fragment}</config>')
        self.datastores.edit_config(self.session_id, "candidate", config, test_option="set")

    def commit(self, confirmed: bool = False, timeout: int | None = None) -> None:
        self.datastores.commit(self.session_id, self.now, confirmed=confirmed,
                               timeout=timeout or 600)

    def cancel_commit(self) -> None:
        self.datastores.cancel_commit(self.session_id)

    def discard(self) -> None:
        self.datastores.discard_changes(self.session_id)

    def lock(self, target: str) -> None:
        self.datastores.lock(self.session_id, target)

    def unlock(self, target: str) -> None:
        self.datastores.unlock(self.session_id, target)

    def save(self) -> None:
        self.datastores.copy_config(self.session_id, "startup", "running")

    def config(self, source: str) -> dict:
        return copy.deepcopy(self.datastores.content(source))

    def state(self) -> dict:
        return self.running

    def sessions(self) -> dict[int, str]:
        return dict(self.users)

    def rpc(self, xml: str) -> None:
        self.rpcs.append(xml)

    def close(self) -> None:
        """The session ends (or is lost): the server's clean-up."""
        self.datastores.session_closed(self.session_id)
