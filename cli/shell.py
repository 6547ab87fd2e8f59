"""The VRP shell: views, prompts, commands to NETCONF edits, displays, VRP errors.

A ``Shell`` holds the view stack (user, system, interface, ip pool, vlan,
remote-backup-service, remote-backup-profile) and turns each line into the
effects its command declares (``nefeature_cli.commands``): an edit of the
candidate over NETCONF, entering a view, or an action (commit, save,
display, RPC).  Syntax, abbreviations and the model's types are checked
before anything is sent; a bad line gets VRP's caret and message and
changes nothing.  A command of the system view typed in a sub-view leaves
the sub-view first, as on VRP.

Private candidates, VRP8 style, on standard NETCONF (RFC 6241 7.5, 8.3.5):
the first edit of a session takes the candidate's lock, and the session
keeps it while it has uncommitted edits, so nobody else can edit, commit or
discard them ("The configuration is being edited by session N").  Its own
``commit`` (or ``clear configuration candidate``) ends the edits and
releases the lock; leaving the system view asks VRP's question (commit,
discard, cancel); a session that ends or is lost takes its edits with it
(the server discards a locked candidate with its session).  The prompt
shows ``*`` while the session has edits.  ``configuration exclusive``
locks running and candidate until ``undo configuration exclusive``.
``commit trial`` is a confirmed commit (RFC 6241 8.4); ``save`` copies
running to startup.

The shell talks to the device only through a backend (ncclient in
``NetconfBackend``), so every check the model makes reaches the user as
the server's message.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from lxml import etree

from nefeature_cli import render
from nefeature_cli.commands import (
    DHCP,
    IF,
    INTERFACE,
    NC,
    POOL,
    PROFILE,
    RBS,
    SERVICE,
    SYSTEM,
    USER,
    VLAN,
    VRRP,
    Edit,
    Enter,
    commands_for,
    leaf,
)
from nefeature_cli.commands import profile as profile_fragment
from nefeature_cli.grammar import (
    Failure,
    Keyword,
    ambiguous_position,
    describe,
    match,
    next_items,
    tokenize,
)

PROMPT_SUFFIX = {INTERFACE: "-{}", POOL: "-ip-pool-{}", SERVICE: "-rm-backup-srv-{}",
                 PROFILE: "-rm-backup-prf-{}", VLAN: "-vlan{}"}
MESSAGES = {
    "unrecognized": "Error: Unrecognized command found at '^' position.",
    "incomplete": "Error: Incomplete command found at '^' position.",
    "wrong-parameter": "Error: Wrong parameter found at '^' position.",
    "ambiguous": "Error: Ambiguous command found at '^' position.",
}
LEAVE_QUESTION = ("Warning: Uncommitted configurations found. Are you sure to commit them "
                  "before exiting? [Y(yes)/N(no)/C(cancel)]:")
SAVE_QUESTION = ("Warning: The current configuration will be written to the device.\n"
                 "Are you sure to save the configuration? [Y/N]:")
FILTERS = ("begin", "exclude", "include")
MONITORING = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"


class CliError(Exception):
    def __init__(self, message: str, column: int | None = None, rpc_error=None) -> None:
        super().__init__(message)
        self.message = message
        self.column = column
        self.rpc_error = rpc_error  # the device's error, when it came from one


class Exit(Exception):
    """The user left the shell (quit in the user view)."""


class DeviceLost(Exception):
    """The NETCONF session to the device is gone (the device stopped, the network failed)."""


class NetconfBackend:
    """What the shell needs from the device, over an ncclient session."""

    def __init__(self, manager) -> None:
        self.manager = manager

    @property
    def session_id(self) -> int:
        return int(self.manager.session_id)

    def edit(self, fragment: str) -> None:
        # test-option "set": each command is checked for syntax and types now, the
        # whole configuration against the model at commit (VRP8's two stages).
        self.manager.edit_config(target="candidate", test_option="set", config=(
            f'<config xmlns="{NC}" xmlns:nc="{NC}">{fragment}</config>'))

    def commit(self, confirmed: bool = False, timeout: int | None = None) -> None:
        if confirmed:
            self.manager.commit(confirmed=True, timeout=str(timeout))
        else:
            self.manager.commit()

    def cancel_commit(self) -> None:
        self.manager.cancel_commit()

    def discard(self) -> None:
        self.manager.discard_changes()

    def lock(self, target: str) -> None:
        self.manager.lock(target)

    def unlock(self, target: str) -> None:
        self.manager.unlock(target)

    def save(self) -> None:
        self.manager.copy_config(source="running", target="startup")

    def config(self, source: str) -> dict:
        reply = self.manager.get_config(source=source)
        return _json_tree(reply.data_ele)

    def state(self) -> dict:
        subtree = etree.Element(f"{{{NC}}}filter", type="subtree")
        for namespace, name in ((IF, "interfaces"), (DHCP, "dhcp"), (RBS, "rbs"),
                                (VRRP, "vrrp")):
            etree.SubElement(subtree, f"{{{namespace}}}{name}")
        return _json_tree(self.manager.get(filter=subtree).data_ele)

    def sessions(self) -> dict[int, str]:
        """Session id -> user name, from ietf-netconf-monitoring."""
        reply = self.manager.get(filter=("subtree", f'<netconf-state xmlns="{MONITORING}">'
                                                    "<sessions/></netconf-state>"))
        found = {}
        for entry in reply.data_ele.iter(f"{{{MONITORING}}}session"):
            sid = entry.findtext(f"{{{MONITORING}}}session-id")
            found[int(sid)] = entry.findtext(f"{{{MONITORING}}}username") or ""
        return found

    def rpc(self, xml: str) -> None:
        self.manager.dispatch(etree.fromstring(xml))


def _json_tree(data: etree._Element) -> dict:
    from nefeature.datastore.schema import data_model

    return data_model().from_xml(data).raw_value()


def location(path: str | None) -> str:
    """An error-path in the words of the CLI ('remote-backup-service s1: tcp-port')."""
    if not path:
        return ""
    names = {"ip-pool": "ip pool", "service": "remote-backup-service",
             "profile": "remote-backup-profile", "interface": "interface",
             "vrrp-instance": "vrrp vrid", "vlan": "vlan"}
    parts = []
    for step in path.strip("/").split("/"):
        name = step.split(":")[-1].split("[")[0]
        keys = re.findall(r'="([^"]*)"', step)
        if name in names and keys:
            parts.append(f"{names[name]} {keys[0]}")
    leaf_name = path.rstrip("/").split("/")[-1].split(":")[-1].split("[")[0]
    where = ", ".join(parts)
    return f"{where}: {leaf_name}" if where and leaf_name not in names else where


def _error_line(error) -> str:
    """One rpc-error (ncclient's or ours; both have .message and .path) as a CLI line."""
    where = location(error.path)
    return f"Error: {error.message}" + (f" ({where})" if where else "")


def _cli_error(error) -> CliError:
    """An rpc-error (ncclient's RPCError or our NetconfError) as CLI lines, one per error."""
    from nefeature.datastore.errors import NetconfError

    # several <rpc-error>s: ncclient lists them in .errors, NetconfError in .every()
    each = error.every() if isinstance(error, NetconfError) else \
        (getattr(error, "errors", None) or [error])
    return CliError("\n".join(_error_line(single) for single in each), rpc_error=error)


def _error_tag(error) -> str:
    return getattr(error, "tag", "") or ""


def _error_session(error) -> int:
    """The session-id of a lock-denied/in-use rpc-error's error-info (0 if none)."""
    info = getattr(error, "info", None)
    if isinstance(info, tuple):  # our NetconfError: ErrorInfo items
        found = [item.value for item in info if item.name == "session-id"]
    else:  # ncclient: the error-info element as text
        found = re.findall(r"session-id>\s*(\d+)\s*<", str(info or ""))
    return int(found[0]) if found else 0


def _is_transport_error(error: BaseException) -> bool:
    """Whether an exception means the session itself is gone."""
    from ncclient.operations.errors import TimeoutExpiredError
    from ncclient.transport.errors import TransportError

    return isinstance(error, (TransportError, TimeoutExpiredError, OSError, EOFError))


def _changes_nothing(configuration: dict, fragment: str) -> bool:
    """Whether an edit leaves a configuration as it is (the server's own edit semantics)."""
    from nefeature.datastore.edit import apply_edit
    from nefeature.datastore.errors import NetconfError

    element = etree.fromstring(f'<config xmlns="{NC}" xmlns:nc="{NC}">{fragment}</config>')
    try:
        return apply_edit(configuration, element) == configuration
    except NetconfError:
        return False  # the device will say what is wrong with it


def apply_filter(text: str, kind: str, expression: str) -> str:
    """VRP's ``| include`` / ``| exclude`` / ``| begin`` on a display's lines."""
    pattern = re.compile(expression)
    lines = text.splitlines()
    if kind == "include":
        lines = [line for line in lines if pattern.search(line)]
    elif kind == "exclude":
        lines = [line for line in lines if not pattern.search(line)]
    else:
        first = next((i for i, line in enumerate(lines) if pattern.search(line)), len(lines))
        lines = lines[first:]
    return "\n".join(lines)


@dataclass
class Shell:
    backend: NetconfBackend
    sysname: str | None = None  # None: the device's (its running 'sysname')
    ask: Callable[[str, list[str]], str | None] | None = None  # interactive questions
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self.views: list[tuple[str, str]] = [(USER, "")]
        self.pending = False  # this session has uncommitted edits (and the candidate lock)
        self.locked = False  # this session holds the candidate's lock
        self.exclusive = False  # 'configuration exclusive': running and candidate locked
        self.trial_deadline: float | None = None  # a 'commit trial' awaits confirmation
        self.screen_length: int | None = None  # None: the terminal's height; 0: no paging
        self.fixed_sysname = self.sysname
        if self.sysname is None:
            self.sysname = self._device_sysname()

    # --- prompt ---

    @property
    def view(self) -> tuple[str, str]:
        return self.views[-1]

    def prompt(self) -> str:
        view, key = self.view
        if view == USER:
            return f"<{self.sysname}>"
        mark = "*" if self.pending else "~"
        suffix = PROMPT_SUFFIX.get(view, "").format(key)
        return f"[{mark}{self.sysname}{suffix}]"

    def _device_sysname(self) -> str:
        running = self._call(self.backend.config, "running")
        return running.get("nefeature-interfaces:system", {}).get("sysname", "HUAWEI")

    # --- talking to the device ---

    def _call(self, function, *args):
        """Run a backend call: an rpc-error becomes a CliError in plain words, a lost
        session DeviceLost."""
        from ncclient.operations import RPCError

        from nefeature.datastore.errors import NetconfError

        try:
            return function(*args)
        except (RPCError, NetconfError) as error:  # remote, or an in-process backend
            raise _cli_error(error) from None
        except Exception as error:
            if _is_transport_error(error):
                raise DeviceLost(str(error) or type(error).__name__) from None
            raise

    def _server(self, call) -> None:
        self._call(call)

    # --- lines ---

    def execute(self, line: str) -> str:
        """Run one line; return what it prints (raises CliError, Exit, DeviceLost)."""
        text = line.rstrip()
        if not text.strip() or text.lstrip().startswith("#"):
            return ""
        if text.endswith("?"):
            return self.help(text[:-1])
        text, output_filter = self._split_filter(text)
        tokens = tokenize(text)
        command, found, left_view = self._match(tokens, text)
        if output_filter and command.pattern[0].word not in ("display", "compare"):
            raise CliError(MESSAGES["unrecognized"], len(text) + 1)
        if left_view:
            self.views = self.views[:1] + [(SYSTEM, "")]
        output = []
        for effect in command.effect(self.view[1], {**found.values,
                                                    "keywords": found.keywords}):
            output.append(self._apply(effect))
        result = "\n".join(o for o in output if o)
        if output_filter:
            result = apply_filter(result, *output_filter)
        return result

    @staticmethod
    def _split_filter(text: str) -> tuple[str, tuple[str, str] | None]:
        """'display ... | include X' -> ('display ...', ('include', 'X'))."""
        found = re.search(r"\s\|\s*(\S+)\s*(.*)$", text)
        if found is None:
            return text, None
        word, expression = found.group(1).lower(), found.group(2).strip()
        kinds = [kind for kind in FILTERS if kind.startswith(word)]
        column = found.start(1)
        if len(kinds) != 1:
            raise CliError(MESSAGES["ambiguous" if kinds else "unrecognized"], column)
        if not expression:
            raise CliError(MESSAGES["incomplete"], len(text) + 1)
        try:
            re.compile(expression)
        except re.error:
            raise CliError(MESSAGES["wrong-parameter"], found.start(2)) from None
        return text[:found.start()].rstrip(), (kinds[0], expression)

    def _views_here(self) -> list[str]:
        view = self.view[0]
        return [view] + ([SYSTEM] if view not in (USER, SYSTEM) else [])

    def _match(self, tokens, text):
        patterns = [c.pattern for view in self._views_here() for c in commands_for(view)]
        ambiguous = ambiguous_position(patterns, tokens)
        if ambiguous is not None:
            raise CliError(MESSAGES["ambiguous"], tokens[ambiguous].start)
        view = self.view[0]
        result = self._match_in(view, tokens)
        if isinstance(result, tuple):
            return (*result, False)
        if view not in (USER, SYSTEM):  # VRP: system commands work from sub-views
            parent = self._match_in(SYSTEM, tokens)
            if isinstance(parent, tuple):
                return (*parent, True)
            if (parent.position, parent.reason != "unrecognized") > \
                    (result.position, result.reason != "unrecognized"):
                result = parent
        failure = result
        column = tokens[failure.position].start if failure.position < len(tokens) \
            else len(text) + 1
        raise CliError(MESSAGES[failure.reason], column)

    @staticmethod
    def _match_in(view: str, tokens):
        successes, best = [], Failure(0, "unrecognized")
        for command in commands_for(view):
            result = match(command.pattern, tokens)
            if isinstance(result, Failure):
                rank = (result.position, result.reason != "unrecognized")
                if rank > (best.position, best.reason != "unrecognized"):
                    best = result
            else:
                successes.append((command, result[0][1]))
        if len(successes) > 1:
            exact = [(c, m) for c, m in successes if all(
                k in (t.text for t in tokens) for k in m.keywords)]
            successes = exact if len(exact) == 1 else successes
        if len(successes) == 1:
            return successes[0]
        if successes:
            return Failure(0, "ambiguous")
        return best

    # --- effects ---

    def _apply(self, effect) -> str:
        if isinstance(effect, Edit):
            self._edit(effect.config)
            return ""
        if isinstance(effect, Enter):
            if effect.view == SYSTEM:
                self.views = [(USER, ""), (SYSTEM, "")]
            else:
                self.views = self.views[:2] + [(effect.view, effect.key)]
            return ""
        return getattr(self, "_action_" + effect.name.replace("-", "_"))(**effect.args)

    # --- private candidate: the lock held while this session has edits ---

    def _edit(self, fragment: str) -> None:
        if not self.locked:
            if _changes_nothing(self._call(self.backend.config, "running"), fragment):
                return  # entering an existing entry's view: no edit, no lock
            self._lock("candidate")
        try:
            self._call(self.backend.edit, fragment)
        finally:
            self._settle()

    def _lock(self, target: str) -> None:
        try:
            self._call(self.backend.lock, target)
        except CliError as error:
            if error.rpc_error is not None and _error_tag(error.rpc_error) == "lock-denied":
                raise CliError(self._held_by(_error_session(error.rpc_error), target)) from None
            raise
        if target == "candidate":
            self.locked = True

    def _held_by(self, holder: int, target: str) -> str:
        if not holder:
            if target == "candidate":
                return ("Error: The candidate configuration holds changes of a NETCONF session "
                        "that did not lock it; that session must commit or discard them first.")
            return "Error: A trial commit of another session is pending; try again later."
        try:
            user = self.backend.sessions().get(holder)
        except Exception:  # the name is a courtesy; the session number is what matters
            user = None
        who = f"session {holder}" + (f" (user {user})" if user else "")
        return f"Error: The configuration is being edited by {who}; try again later."

    def _settle(self) -> None:
        """After an edit or commit: are edits pending?  Release the lock if none are."""
        if not self.locked:
            self.pending = False
            return
        candidate = self._call(self.backend.config, "candidate")
        self.pending = candidate != self._call(self.backend.config, "running")
        self._release_if_idle()

    def _release_if_idle(self) -> None:
        if self.locked and not self.pending and not self.exclusive and \
                self.trial_deadline is None:
            self._call(self.backend.unlock, "candidate")
            self.locked = False

    def _discard(self) -> None:
        if self.locked:
            self._call(self.backend.discard)
        self.pending = False
        self._release_if_idle()

    # --- leaving views and the session ---

    def _action_quit(self) -> str:
        if len(self.views) == 1:
            raise Exit()
        if len(self.views) == 2:
            return self._leave_configuration()
        self.views.pop()
        return ""

    def _action_return(self) -> str:
        return self._leave_configuration()

    def _leave_configuration(self) -> str:
        """To the user view; with edits pending, VRP's question first."""
        message = ""
        if self.pending and self.ask is None:  # a script: keep them, say what becomes of them
            message = ("Warning: This session has uncommitted configurations; they are "
                       "discarded when the session ends unless committed.")
        elif self.pending:
            choice = (self.ask(LEAVE_QUESTION, ["Y", "N", "C"]) or "c").strip().lower()[:1]
            if choice == "y":
                message = self._action_commit(False, 0)
            elif choice == "n":
                self._discard()
            else:  # cancel (or Ctrl+C): stay where we are
                return ""
        self.views = self.views[:1]
        return message

    def close(self) -> list[str]:
        """The end of the session: pending edits go, unsaved commits are pointed out."""
        messages = []
        if self.pending:
            self._discard()
            messages.append("Warning: The uncommitted configurations of this session were "
                            "discarded.")
        running = self._call(self.backend.config, "running")
        if running != self._call(self.backend.config, "startup"):
            messages.append("Warning: The current configuration has been committed but not "
                            "saved; it is lost when the device restarts. Use 'save' to keep it.")
        return messages

    # --- commit, trial, discard, exclusive, save ---

    def _action_commit(self, trial: bool, seconds: int) -> str:
        if trial:
            if not self.pending:
                return "Info: There is no uncommitted configuration to try."
            self._call(self.backend.commit, True, seconds)
            self.trial_deadline = self.clock() + seconds
            self.pending = False
            self._refresh_sysname()
            return (f"Info: The configuration is committed on trial; it is rolled back in "
                    f"{seconds} seconds unless confirmed by 'commit'.")
        if self.trial_deadline is not None:  # the confirming commit
            self._call(self.backend.commit)
            self.trial_deadline = None
            self._settle()
            self._refresh_sysname()
            return "Info: The trial configuration is confirmed."
        if not self.pending:
            return ""  # nothing of this session's to commit (VRP says nothing either)
        self._call(self.backend.commit)
        self._settle()
        self._refresh_sysname()
        return ""

    def _action_abort_trial(self) -> str:
        if self.trial_deadline is None:
            raise CliError("Error: No trial commit of this session is pending.")
        self._call(self.backend.cancel_commit)
        self.trial_deadline = None
        self.pending = False  # the rollback resets the candidate too
        self._release_if_idle()
        self._refresh_sysname()
        return "Info: The trial configuration has been rolled back."

    def _action_display_trial(self) -> str:
        if self.trial_deadline is None:
            return "Info: No trial commit of this session is pending."
        remaining = max(0, round(self.trial_deadline - self.clock()))
        return (f"Trial commit   : pending\nRollback in    : {remaining} seconds, "
                "unless confirmed by 'commit'")

    def _refresh_sysname(self) -> None:
        if self.fixed_sysname is None:
            self.sysname = self._device_sysname()

    def _action_clear_candidate(self) -> str:
        self._discard()
        return ""

    def _action_exclusive(self, on: bool) -> str:
        if on:
            if self.exclusive:
                return "Info: The configuration is already locked by this session."
            self._lock("running")
            try:
                if not self.locked:
                    self._lock("candidate")
            except CliError:
                self._call(self.backend.unlock, "running")
                raise
            self.exclusive = True
            return "Info: The configuration is locked; other sessions cannot change it."
        if not self.exclusive:
            raise CliError("Error: The configuration is not locked by this session.")
        self._call(self.backend.unlock, "running")
        self.exclusive = False
        self._release_if_idle()
        return "Info: The configuration lock is released."

    def _action_save(self) -> str:
        if self.ask is not None:
            answer = self.ask(SAVE_QUESTION, ["Y", "N"])
            if (answer or "").strip().lower()[:1] != "y":
                return ""
        self._call(self.backend.save)
        lines = ["Now saving the current configuration to the slot 0.",
                 "Info: Save the configuration successfully."]
        if self.pending:
            lines.append("Info: Uncommitted configurations are not saved; commit them first.")
        return "\n".join(lines)

    def _action_screen_length(self, lines: int | None) -> str:
        self.screen_length = lines
        return "Info: The configuration takes effect on the current user terminal interface only."

    # --- other configuration actions ---

    def _action_backup_enable(self, profile: str | None) -> str:
        """The shorthand for ``service-type dhcp-server``: on which profile?"""
        chosen = profile
        if chosen is None:
            candidate = self._call(self.backend.config, "candidate" if self.locked
                                   else "running")
            names = [p["name"] for p in candidate.get("nefeature-rbs:rbs", {})
                     .get("profiles", {}).get("profile", [])]
            if not names:
                raise CliError("Error: No remote-backup-profile is configured: create one "
                               "with 'remote-backup-profile <name>' first.")
            if len(names) == 1:
                chosen = names[0]
            else:
                chosen = self.ask("Which remote-backup-profile?", names) if self.ask else None
                if chosen not in names:
                    raise CliError("Error: Several remote-backup-profiles exist ("
                                   + ", ".join(names) + "): enter the profile's view and "
                                   "use 'service-type dhcp-server'.")
        self._edit(profile_fragment(chosen, leaf("service-type", "dhcp-server")))
        return f"Info: service-type dhcp-server is set on remote-backup-profile {chosen}."

    def _action_batch_backup(self, service: str) -> str:
        self._call(self.backend.rpc,
                   f'<batch-backup-now xmlns="{RBS}"><rbs-name>{service}</rbs-name>'
                   "<service-type>dhcp-server</service-type></batch-backup-now>")
        return "Info: The batch backup has started."

    def _action_reset_statistics(self) -> str:
        self._call(self.backend.rpc, f'<reset-statistics xmlns="{DHCP}"/>')
        return ""

    # --- displays ---

    def _mine(self) -> dict:
        """This session's view of the candidate: running plus its own edits only."""
        return self._call(self.backend.config, "candidate" if self.locked else "running")

    def _action_display_configuration(self, source: str, interface: str | None) -> str:
        tree = self._call(self.backend.config, source)
        if interface is not None:
            text = render.render_interface(tree, interface)
            if text is None:
                raise CliError(f"Error: The interface {interface} is not configured.")
            return text
        if source == "startup" and not tree:
            return "Info: There is no saved configuration."
        return render.render_configuration(tree)

    def _action_display_this(self) -> str:
        view, key = self.view
        return render.render_view(self._call(self.backend.config, "running"), view, key)

    def _action_display_candidate(self, changes: bool) -> str:
        running = self._call(self.backend.config, "running")
        text = render.render_changes(running, self._mine(), marks=changes)
        return text or "Info: There is no uncommitted configuration in this session."

    def _action_compare_configuration(self) -> str:
        saved = self._call(self.backend.config, "startup")
        text = render.render_changes(saved, self._call(self.backend.config, "running"))
        if not text:
            return "Info: The current configuration is the same as the saved configuration."
        return ("The current configuration (+) differs from the saved configuration (-):\n"
                + text)

    def _action_display_pool(self, name: str | None, used: bool) -> str:
        text = render.display_ip_pool(self._call(self.backend.state), name, used)
        if text is None:
            raise CliError(f"Error: The IP pool {name} does not exist.")
        return text

    def _action_display_dhcp_statistics(self) -> str:
        return render.display_dhcp_statistics(self._call(self.backend.state))

    def _action_display_vrrp(self, interface: str | None, vrid: int | None, mode: str) -> str:
        return render.display_vrrp(self._call(self.backend.state), mode, interface, vrid)

    def _action_display_rbs(self, name: str | None) -> str:
        return render.display_rbs(self._call(self.backend.state), name)

    def _action_display_rbp(self, name: str | None) -> str:
        return render.display_rbp(self._call(self.backend.state), name)

    # --- ? and Tab ---

    def candidates(self, text: str) -> list[tuple[str, str, bool]]:
        """(word or parameter type, description, is a keyword) that may come next."""
        tokens = tokenize(text)
        partial = "" if not text or text[-1].isspace() else (tokens.pop().text if tokens else "")
        seen: dict[str, tuple[str, bool]] = {}
        for view in self._views_here():
            for command in commands_for(view):
                for item in next_items(command.pattern, tokens):
                    if isinstance(item, Keyword):
                        if item.word.lower().startswith(partial.lower()):
                            seen.setdefault(item.word, (item.help, True))
                    elif not partial:
                        seen.setdefault(describe(item), (item.help, False))
        complete = any(not isinstance(match(c.pattern, tokens), Failure)
                       for view in self._views_here() for c in commands_for(view))
        if not partial and tokens and complete:
            seen.setdefault("<cr>", ("", False))
        return sorted((word, help_text, keyword) for word, (help_text, keyword) in seen.items())

    def help(self, text: str) -> str:
        options = self.candidates(text)
        if not options:
            tokens = tokenize(text)
            column = 0
            if tokens:
                try:
                    self._match(tokens, text)
                except CliError as error:
                    column = error.column if error.column is not None else tokens[-1].start
                    if column > len(text):
                        column = tokens[-1].start
            raise CliError(MESSAGES["unrecognized"], column)
        width = max(len(word) for word, _, _ in options) + 2
        return "\n".join(f"  {word:<{width}}{description}".rstrip()
                         for word, description, _ in options)

