"""What the server says about itself: hello capabilities, RFC 6022 monitoring, the YANG library.

* The hello lists the protocol capabilities, one RFC 6020 5.6.4 module
  capability per module of the library (with the features the server
  implements) and the RFC 7950 5.6.4 yang-library capability.
* ``netconf_state`` is /ietf-netconf-monitoring:netconf-state: the same
  capabilities, the datastores with their locks, every module as a schema
  that <get-schema> returns, the sessions (with login-time) and the server's
  counters.
* ``modules_state`` is the RFC 7895 YANG library: every module, implemented
  or imported only, with revision, namespace, features and schema location.
* ``streams_state`` is RFC 5277's /netconf/streams: the one NETCONF stream.

All three are JSON-form trees, serialized and filtered like the device's
own state.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from nefeature.datastore.schema import modules

MONITORING = "ietf-netconf-monitoring:"

PROTOCOL_CAPABILITIES = (
    "urn:ietf:params:netconf:capability:writable-running:1.0",
    "urn:ietf:params:netconf:capability:candidate:1.0",
    "urn:ietf:params:netconf:capability:confirmed-commit:1.1",
    "urn:ietf:params:netconf:capability:rollback-on-error:1.0",
    "urn:ietf:params:netconf:capability:validate:1.1",
    "urn:ietf:params:netconf:capability:startup:1.0",
    "urn:ietf:params:netconf:capability:notification:1.0",
    "urn:ietf:params:netconf:capability:interleave:1.0",
    "urn:ietf:params:netconf:capability:with-defaults:1.0"
    "?basic-mode=explicit&also-supported=report-all,report-all-tagged,trim",
)
BASE_CAPABILITIES = ("urn:ietf:params:netconf:base:1.0", "urn:ietf:params:netconf:base:1.1")


def module_set_id() -> str:
    return hashlib.sha1("".join(f"{m.name}@{m.revision}:{','.join(m.features)}"
                                for m in modules()).encode()).hexdigest()


def module_capabilities() -> list[str]:
    """Each implemented module (RFC 6020 5.6.4) and the YANG library (RFC 7950 5.6.4)."""
    uris = []
    for module in modules():
        if not module.implemented:
            continue
        uri = f"{module.namespace}?module={module.name}&revision={module.revision}"
        if module.features:
            uri += "&features=" + ",".join(module.features)
        uris.append(uri)
    return uris + ["urn:ietf:params:netconf:capability:yang-library:1.0?revision=2016-06-21"
                   f"&module-set-id={module_set_id()}"]


def hello_capabilities() -> list[str]:
    """What the server's hello lists after the base capabilities."""
    return list(PROTOCOL_CAPABILITIES) + module_capabilities()


@dataclass
class SessionRecord:
    """One NETCONF session as RFC 6022 describes it."""

    session_id: int
    username: str
    source_host: str | None
    login_time: str  # yang:date-and-time
    in_rpcs: int = 0
    in_bad_rpcs: int = 0
    out_rpc_errors: int = 0
    out_notifications: int = 0


@dataclass
class ServerCounters:
    """RFC 6022 /netconf-state/statistics."""

    netconf_start_time: str
    in_bad_hellos: int = 0
    in_sessions: int = 0
    dropped_sessions: int = 0
    in_rpcs: int = 0
    in_bad_rpcs: int = 0
    out_rpc_errors: int = 0
    out_notifications: int = 0
    sessions: dict[int, SessionRecord] = field(default_factory=dict)


def _counters(record) -> dict:
    return {"in-rpcs": record.in_rpcs, "in-bad-rpcs": record.in_bad_rpcs,
            "out-rpc-errors": record.out_rpc_errors,
            "out-notifications": record.out_notifications}


def netconf_state(counters: ServerCounters, locks: dict[str, tuple[int, str]]) -> dict:
    """/ietf-netconf-monitoring:netconf-state (RFC 6022 section 2); ``locks``: datastore ->
    (session holding it, when it took it)."""
    datastores = []
    for name in ("running", "candidate", "startup"):
        entry: dict = {"name": name}
        if name in locks:
            holder, since = locks[name]
            entry["locks"] = {"global-lock": {"locked-by-session": holder,
                                              "locked-time": since}}
        datastores.append(entry)
    sessions = []
    for record in sorted(counters.sessions.values(), key=lambda r: r.session_id):
        entry = {"session-id": record.session_id, "transport": MONITORING + "netconf-ssh",
                 "username": record.username, "login-time": record.login_time,
                 **_counters(record)}
        if record.source_host:
            entry["source-host"] = record.source_host
        sessions.append(entry)
    return {MONITORING + "netconf-state": {
        "capabilities": {"capability": list(BASE_CAPABILITIES) + hello_capabilities()},
        "datastores": {"datastore": datastores},
        "schemas": {"schema": [
            {"identifier": m.name, "version": m.revision, "format": MONITORING + "yang",
             "namespace": m.namespace, "location": ["NETCONF"]} for m in modules()]},
        "sessions": {"session": sessions},
        "statistics": {"netconf-start-time": counters.netconf_start_time,
                       "in-bad-hellos": counters.in_bad_hellos,
                       "in-sessions": counters.in_sessions,
                       "dropped-sessions": counters.dropped_sessions,
                       **_counters(counters)},
    }}


def modules_state() -> dict:
    """/ietf-yang-library:modules-state (RFC 7895)."""
    entries = []
    for module in modules():
        entry: dict = {"name": module.name, "revision": module.revision,
                       "namespace": module.namespace,
                       "conformance-type": "implement" if module.implemented else "import"}
        if module.features:
            entry["feature"] = list(module.features)
        entries.append(entry)
    return {"ietf-yang-library:modules-state": {"module-set-id": module_set_id(),
                                                "module": entries}}


def streams_state() -> dict:
    """/nc-notifications:netconf/streams (RFC 5277 section 3.2.5.1)."""
    return {"nc-notifications:netconf": {"streams": {"stream": [{
        "name": "NETCONF", "description": "configuration changes (RFC 6470) and the "
        "device's events: VRRP new master, remote backup protection, pool threshold",
        "replaySupport": False}]}}}
