"""The running, candidate and startup datastores, locks and (confirmed) commit.

Sans-IO: every operation takes the session id and, where time matters, the
current time; the confirmed-commit timeout is a deadline the shell arms.
The rules, from RFC 6241:

* edit-config (7.2) on candidate, or on running (``:writable-running``),
  with default-operation, test-option (test-then-set, set, test-only) and
  error-option (stop-on-error, rollback-on-error; an edit is all or nothing
  either way, since it is applied to a copy);
* a datastore locked by another session refuses edits, commit and
  copy-config with ``in-use``; a lock is refused (``lock-denied``, with the
  holder's session-id) when held, when the candidate has uncommitted
  changes (8.3.5.1), or on running during another session's confirmed
  commit (7.5);
* a candidate locked by another session also refuses <commit>: its content
  is the holder's pending edits, which only the holder may commit (the VRP
  shell keeps its uncommitted lines private this way);
* commit (8.3.4) validates the candidate against YANG, then hands old and
  new configuration to ``apply`` (the device's two-phase transaction: it
  either applies everything or raises and changes nothing);
* confirmed commit 1.1 (8.4): a rollback point is kept until a confirming
  commit; the timeout (default 600 s), the end of the session that started
  it (unless ``persist``) or cancel-commit roll running back to it;
* startup (8.7) is written through ``save_startup`` on copy-config.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

from lxml import etree

from nefeature.config.model import DeviceConfig, build_device_config
from nefeature.datastore.edit import apply_edit
from nefeature.datastore.errors import ErrorInfo, NetconfError
from nefeature.datastore.validation import ValidatedConfig, validate_config, validate_raw

DEFAULT_CONFIRM_TIMEOUT = 600


@dataclass
class ConfirmedCommit:
    rollback: dict  # the running configuration (explicit) before the commit
    deadline: float
    session: int
    persist: str | None


class Datastores:
    def __init__(self, initial: ValidatedConfig,
                 apply: Callable[[DeviceConfig, DeviceConfig], None],
                 save_startup: Callable[[dict], None] | None = None,
                 startup: dict | None = None) -> None:
        self.running = initial
        self.running_config = build_device_config(initial.raw)
        self.candidate: dict = copy.deepcopy(initial.explicit)
        self.startup: dict = copy.deepcopy(startup if startup is not None else initial.explicit)
        self.locks = {"running": 0, "candidate": 0, "startup": 0}
        self.confirmed: ConfirmedCommit | None = None
        self._candidate_validated: ValidatedConfig | None = None
        self._apply = apply
        self._save_startup = save_startup
        self.commit_listeners: list[Callable[[int, str], None]] = []

    # --- helpers ---

    @property
    def candidate_modified(self) -> bool:
        return self.candidate != self.running.explicit

    def _check_lock(self, session: int, target: str) -> None:
        holder = self.locks.get(target, 0)
        if holder and holder != session:
            raise NetconfError("protocol", "in-use",
                               f"the {target} datastore is locked by session {holder}",
                               info=(ErrorInfo("session-id", str(holder)),))

    def content(self, source: str) -> dict:
        """The explicit configuration of a datastore."""
        if source == "running":
            return self.running.explicit
        if source == "candidate":
            return self.candidate
        if source == "startup":
            return self.startup
        raise NetconfError("protocol", "invalid-value", f"no datastore '{source}'")

    def _install(self, validated: ValidatedConfig, session: int) -> None:
        """Apply a validated configuration to the device, then make it running."""
        new = build_device_config(validated.raw)
        self._apply(self.running_config, new)
        self.running, self.running_config = validated, new
        for listener in self.commit_listeners:
            listener(session, "running")

    # --- operations ---

    def edit_config(self, session: int, target: str, config: etree._Element,
                    default_operation: str = "merge", test_option: str = "test-then-set",
                    error_option: str = "stop-on-error") -> None:
        if target not in ("candidate", "running"):
            raise NetconfError("protocol", "invalid-value",
                               f"edit-config target {target} is not supported")
        if default_operation not in ("merge", "replace", "none"):
            raise NetconfError("protocol", "invalid-value",
                               f"default-operation {default_operation}")
        self._check_lock(session, target)
        edited = apply_edit(self.content(target), config, default_operation)
        if target == "candidate":
            validated = validate_raw(edited) if test_option in ("test-then-set",
                                                                 "test-only") else None
            if test_option != "test-only":
                self.candidate = edited
                self._candidate_validated = validated  # commit need not validate it again
            return
        validated = validate_raw(edited)  # running: always validated before it applies
        if test_option != "test-only":
            in_step = not self.candidate_modified  # keep an untouched candidate in step
            self._install(validated, session)
            if in_step:
                self.candidate = copy.deepcopy(validated.explicit)

    # Off the event loop: an edit of the candidate is computed and validated on the
    # caller's thread from the content it saw (both pure), then installed on the loop
    # only if the candidate is still that content (else it is done again there).

    @staticmethod
    def prepare_edit(base: dict, config: etree._Element, default_operation: str,
                     test_option: str) -> tuple[dict, ValidatedConfig | None]:
        """The candidate after the edit, and its validation (pure; raises NetconfError)."""
        if default_operation not in ("merge", "replace", "none"):
            raise NetconfError("protocol", "invalid-value",
                               f"default-operation {default_operation}")
        edited = apply_edit(base, config, default_operation)
        validated = validate_raw(edited) if test_option in ("test-then-set",
                                                            "test-only") else None
        return edited, validated

    def install_candidate_edit(self, session: int, base: dict, edited: dict,
                               validated: ValidatedConfig | None, test_option: str) -> bool:
        """Install a prepared edit of the candidate; False if the candidate changed since."""
        self._check_lock(session, "candidate")
        if self.candidate is not base:
            return False
        if test_option != "test-only":
            self.candidate = edited
            self._candidate_validated = validated
        return True

    def validate(self, session: int, source: str | None = None,
                 config: etree._Element | None = None) -> None:
        if config is not None:
            validate_config(config)
        else:
            validate_raw(self.content(source or "candidate"))

    def commit(self, session: int, now: float, confirmed: bool = False,
               timeout: int = DEFAULT_CONFIRM_TIMEOUT, persist: str | None = None,
               persist_id: str | None = None) -> None:
        self._check_lock(session, "running")
        self._check_lock(session, "candidate")
        pending = self.confirmed
        if pending is not None:
            if pending.persist is not None and persist_id != pending.persist:
                if persist_id is not None or pending.session != session:
                    raise NetconfError("protocol", "invalid-value",
                                       "a confirmed commit with another persist-id is pending")
            elif pending.persist is None and pending.session != session:
                raise NetconfError("protocol", "in-use",
                                   f"session {pending.session} has a confirmed commit pending",
                                   info=(ErrorInfo("session-id", str(pending.session)),))
        elif persist_id is not None:
            raise NetconfError("protocol", "invalid-value", "no confirmed commit is pending")
        before = self.running.explicit  # _install replaces it, never changes it in place
        if self.candidate != before:
            validated = self._candidate_validated
            if validated is None or validated.explicit != self.candidate:
                validated = validate_raw(self.candidate)
            self._install(validated, session)
        if confirmed:
            self.confirmed = ConfirmedCommit(
                rollback=pending.rollback if pending else copy.deepcopy(before),
                deadline=now + timeout, session=session, persist=persist)
        else:
            self.confirmed = None  # a confirming commit (or none was pending)

    def reload(self, validated: ValidatedConfig, session: int = 0) -> bool:
        """Make a reloaded startup configuration running, as the system's commit (SIGHUP).

        The same install as commit: two-phase apply, commit listeners.  Refused
        with in-use while a session locks running or has a confirmed commit
        pending (its rollback point would be lost).  A candidate nobody edited
        follows running; edits in progress are kept.  Returns whether running
        changed.
        """
        self._check_lock(session, "running")
        if self.confirmed is not None:
            raise NetconfError("protocol", "in-use",
                               f"session {self.confirmed.session} has a confirmed commit "
                               "pending: confirm or cancel it first",
                               info=(ErrorInfo("session-id", str(self.confirmed.session)),))
        changed = validated.explicit != self.running.explicit
        if changed:
            in_step = not self.candidate_modified
            self._install(validated, session)
            if in_step:
                self.candidate = copy.deepcopy(validated.explicit)
        self.startup = copy.deepcopy(validated.explicit)
        return changed

    def cancel_commit(self, session: int, persist_id: str | None = None) -> None:
        pending = self.confirmed
        if pending is None:
            raise NetconfError("protocol", "invalid-value", "no confirmed commit is pending")
        if pending.persist is not None and persist_id != pending.persist:
            raise NetconfError("protocol", "invalid-value", "wrong persist-id")
        if pending.persist is None and pending.session != session:
            raise NetconfError("protocol", "invalid-value",
                               "the confirmed commit belongs to another session")
        self._rollback(session)

    def _rollback(self, session: int) -> None:
        pending, self.confirmed = self.confirmed, None
        validated = validate_raw(pending.rollback)
        self._install(validated, session)
        self.candidate = copy.deepcopy(validated.explicit)

    def discard_changes(self, session: int) -> None:
        self._check_lock(session, "candidate")
        self.candidate = copy.deepcopy(self.running.explicit)

    def copy_config(self, session: int, target: str, source: str | None = None,
                    config: etree._Element | None = None) -> None:
        if target == source:
            raise NetconfError("protocol", "invalid-value", "source and target are the same")
        self._check_lock(session, target)
        if config is not None:
            content = validate_config(config).explicit
        else:
            content = copy.deepcopy(self.content(source))
        if target == "startup":
            validate_raw(content)
            self.startup = content
            if self._save_startup is not None:
                self._save_startup(content)
        elif target == "candidate":
            self.candidate = content
        elif target == "running":
            self._install(validate_raw(content), session)
        else:
            raise NetconfError("protocol", "invalid-value", f"no datastore '{target}'")

    def delete_config(self, session: int, target: str) -> None:
        if target != "startup":
            raise NetconfError("protocol", "invalid-value",
                               "only the startup datastore can be deleted")
        self._check_lock(session, target)
        self.startup = {}
        if self._save_startup is not None:
            self._save_startup({})

    def lock(self, session: int, target: str) -> None:
        if target not in self.locks:
            raise NetconfError("protocol", "invalid-value", f"no datastore '{target}'")
        holder = self.locks[target]
        if holder:
            raise NetconfError("protocol", "lock-denied", f"locked by session {holder}",
                               info=(ErrorInfo("session-id", str(holder)),))
        if target == "candidate" and self.candidate_modified:
            raise NetconfError("protocol", "lock-denied",
                               "the candidate has uncommitted changes",
                               info=(ErrorInfo("session-id", "0"),))
        if target == "running" and self.confirmed is not None and \
                self.confirmed.session != session:
            raise NetconfError("protocol", "lock-denied", "a confirmed commit is pending",
                               info=(ErrorInfo("session-id", "0"),))
        self.locks[target] = session

    def unlock(self, session: int, target: str) -> None:
        if target not in self.locks:
            raise NetconfError("protocol", "invalid-value", f"no datastore '{target}'")
        if self.locks[target] != session:
            raise NetconfError("protocol", "operation-failed",
                               f"the {target} datastore is not locked by this session")
        self.locks[target] = 0

    def session_closed(self, session: int) -> None:
        """Locks go with their session; so does its unconfirmed, unpersisted commit."""
        for target, holder in self.locks.items():
            if holder == session:
                self.locks[target] = 0
                if target == "candidate":
                    self.candidate = copy.deepcopy(self.running.explicit)
        if self.confirmed is not None and self.confirmed.persist is None and \
                self.confirmed.session == session:
            self._rollback(session)

    def next_deadline(self) -> float | None:
        return None if self.confirmed is None else self.confirmed.deadline

    def handle_timer(self, now: float) -> None:
        if self.confirmed is not None and now >= self.confirmed.deadline:
            self._rollback(self.confirmed.session)
