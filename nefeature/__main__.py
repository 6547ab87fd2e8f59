"""The ``nefeature`` command: validate configs offline, run a device, demo, lab.

Exit status: 0 done; 1 a configuration or file is wrong (``validate``,
``run``); 2 bad usage or a missing schema; 78 (EX_CONFIG) ``run`` refused
state it must not use (a journal or startup file from a newer release),
which the systemd unit does not restart into.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nefeature.datastore.errors import NetconfError
from nefeature.datastore.schema import SchemaNotFound


def cmd_validate(args: argparse.Namespace) -> int:
    """Check instance files against the YANG model; print `file: path: message`."""
    from nefeature.datastore.validation import load_config_file

    failed = 0
    for name in args.files:
        try:
            load_config_file(name)
        except OSError as error:
            print(f"{error.filename or name}: {error.strerror}", file=sys.stderr)
            failed += 1
        except NetconfError as error:
            print(f"{name}: {error.path or '/'}: {error.message}"
                  f" [{error.tag}{'/' + error.app_tag if error.app_tag else ''}]")
            failed += 1
        else:
            if not args.quiet:
                print(f"{name}: ok")
    return 1 if failed else 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Two devices on loopback, clients, a failure, the switchover (nefeature.demo)."""
    from nefeature.demo import main as demo_main

    return demo_main(args.demo_args)


def cmd_run(args: argparse.Namespace) -> int:
    """Run one device in the foreground until SIGTERM or Ctrl+C."""
    import asyncio
    import logging

    from nefeature import memprobe, service
    from nefeature.datastore.startup import StartupTooNew, read_startup, startup_source
    from nefeature.datastore.validation import validate_config_text, validator
    from nefeature.dhcp.journal import JournalTooNew
    from nefeature.node import Device

    service.setup_logging("debug" if args.verbose else args.log_level)
    log = logging.getLogger("nefeature")
    log.info("nefeature %s starting", service.release())
    state_dir = Path(args.state_dir)
    source = startup_source(state_dir, args.startup)
    if source != Path(args.startup):
        log.info("starting from %s (saved by copy-config to startup), not %s", source,
                 args.startup)
    log.info("configurations are validated by %s", validator())
    try:
        validated = validate_config_text(read_startup(source))
    except OSError as error:
        log.error("%s: %s", error.filename or source, error.strerror)
        return 1
    except StartupTooNew as error:
        log.error("%s", error)
        return service.EXIT_CONFIG
    except NetconfError as error:
        log.error("%s: %s: %s", source, error.path or "/", error.message)
        return 1
    try:
        netconf = netconf_settings(args, state_dir)
    except (OSError, ValueError) as error:
        print(f"nefeature run: {error}", file=sys.stderr)
        return 2
    emulated = None
    if args.emulate_lan:
        group, _, port = args.emulate_lan.rpartition(":")
        emulated = (group, int(port))
    try:
        device = Device(validated, state_dir, dhcp_port=args.dhcp_port, emulated_lan=emulated,
                        netconf=netconf, relay_port=args.relay_port, startup_file=args.startup)
    except JournalTooNew as error:
        log.error("%s", error)
        return service.EXIT_CONFIG
    probe = memprobe.from_environment(device)

    async def run() -> None:
        if probe is not None:
            probe.start(asyncio.get_running_loop())
        await device.run()

    loop_name, loop_factory = event_loop()
    log.info("event loop: %s", loop_name)
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(run())
    return 0


def event_loop():
    """(name, loop factory): uvloop where it is installed (the ``fast`` extra), else
    asyncio's own loop; ``NEFEATURE_EVENT_LOOP=asyncio`` chooses asyncio's anyway."""
    import os

    if os.environ.get("NEFEATURE_EVENT_LOOP", "uvloop") != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return f"uvloop {uvloop.__version__}", uvloop.new_event_loop
    return "asyncio", None


def netconf_settings(args: argparse.Namespace, state_dir):
    """Who may log in to NETCONF (docs/netconf.md)."""
    import ipaddress
    import logging
    import os
    import secrets

    from nefeature.node import NetconfSettings

    if not args.netconf:
        return None
    host, _, port_text = args.netconf.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        ipaddress.ip_address(host)
        port = int(port_text)
    except ValueError:
        raise ValueError(f"--netconf {args.netconf}: expected ADDRESS:PORT, e.g. "
                         "127.0.0.1:830") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"--netconf {args.netconf}: port {port} is not in 1..65535")
    passwords: dict[str, str] = {}
    keys: dict[str, list] = {}
    if args.netconf_user:
        if args.netconf_password_file:
            password = open(args.netconf_password_file).read().strip()
            if not password:
                raise ValueError(f"--netconf-password-file {args.netconf_password_file} is "
                                 "empty: nobody could log in")
            passwords[args.netconf_user] = password
        elif args.netconf_password:
            passwords[args.netconf_user] = args.netconf_password
        if args.netconf_authorized_keys:
            from nefeature.netconf.server import load_authorized_keys

            keys[args.netconf_user] = load_authorized_keys(args.netconf_authorized_keys)
        if not passwords and not keys:
            raise ValueError("--netconf-user needs a password (file) or authorized keys")
    elif ipaddress.ip_address(host).is_loopback:
        state_dir.mkdir(parents=True, exist_ok=True)
        path = state_dir / "netconf-password"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(18) + "\n")
            os.chmod(path, 0o600)
        passwords["admin"] = path.read_text().strip()
        logging.getLogger("nefeature").info(
            "NETCONF user 'admin', password in %s (loopback only)", path)
    else:
        raise ValueError(f"NETCONF on {host} needs --netconf-user and a password or keys: "
                         "no default password off loopback")
    return NetconfSettings(host, port, passwords, keys)


def cmd_journal(args: argparse.Namespace) -> int:
    """Look at a lease journal, or copy it, without changing it (safe while the device runs)."""
    from nefeature.dhcp import journal

    path = Path(args.state_dir) / "leases.sqlite"
    try:
        if args.action == "backup":
            if args.destination is None:
                print("nefeature journal backup: name the file to copy to", file=sys.stderr)
                return 2
            count = journal.backup(path, args.destination)
            print(f"{path}: {count} leases copied to {args.destination}")
            return 0
        info = journal.describe(path)
    except OSError as error:
        print(f"{error.filename or path}: {error.strerror}", file=sys.stderr)
        return 1
    except journal.sqlite3.DatabaseError as error:
        print(f"{path}: not a lease journal ({error})", file=sys.stderr)
        return 1
    leases = ", ".join(f"{count} {state}" for state, count in info["leases"].items()) or "none"
    print(f"{path}\n  schema       {info['schema']}"
          f"{'' if info['readable'] else ' (newer than this release reads)'}\n"
          f"  written by   {info['written-by']}\n  leases       {leases}\n"
          f"  integrity    {info['integrity']}")
    return 0 if info["integrity"] == "ok" else 1


def cmd_lab(args: argparse.Namespace) -> int:
    from nefeature.lab import main as lab_main

    return lab_main(args.action, args.clients)


class VersionAction(argparse.Action):
    """``--version``: the release, the YANG revisions, the journal schema."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                 help="print the release, its YANG module revisions and journal schema"):
        super().__init__(option_strings, dest, nargs=0, default=default, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from nefeature.service import version_text

        print(version_text())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    from nefeature.service import LOG_LEVELS

    parser = argparse.ArgumentParser(prog="nefeature", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action=VersionAction)
    sub = parser.add_subparsers(dest="command", required=True)

    validate = sub.add_parser("validate", help="check instance XML files against the YANG model")
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    validate.set_defaults(handler=cmd_validate)

    demo = sub.add_parser("demo", help="the two-device demo on loopback (no root)",
                          add_help=False)
    demo.add_argument("demo_args", nargs=argparse.REMAINDER)
    demo.set_defaults(handler=cmd_demo)

    run = sub.add_parser("run", help="run one device in the foreground")
    run.add_argument("--startup", required=True, metavar="FILE.xml",
                     help="startup configuration (instance XML, bare or in <config>)")
    run.add_argument("--state-dir", required=True, metavar="DIR",
                     help="where the lease journal lives (created if missing)")
    run.add_argument("--netconf", metavar="HOST:PORT", help="NETCONF over SSH listener")
    run.add_argument("--netconf-user", metavar="NAME")
    run.add_argument("--netconf-password-file", metavar="FILE")
    run.add_argument("--netconf-password", metavar="PW", help="for tests; prefer the file")
    run.add_argument("--netconf-authorized-keys", metavar="FILE")
    run.add_argument("--dhcp-port", type=int, default=67, help=argparse.SUPPRESS)
    run.add_argument("--relay-port", type=int, default=67, help=argparse.SUPPRESS)
    run.add_argument("--emulate-lan", metavar="GROUP:PORT",
                     help="carry VRRP over UDP multicast on loopback (no root; for the demo)")
    run.add_argument("--log-level", choices=LOG_LEVELS, default="info",
                     help="log records of this level and above to stderr (default info); "
                          "under systemd in the journal's form")
    run.add_argument("-v", "--verbose", action="store_true", help="the same as --log-level debug")
    run.add_argument("--version", action=VersionAction)
    run.set_defaults(handler=cmd_run)

    journal = sub.add_parser("journal", help="look at or copy a device's lease journal "
                             "(read-only; safe while it runs)")
    journal.add_argument("action", choices=("info", "backup"))
    journal.add_argument("state_dir", metavar="STATE_DIR", help="the device's state directory")
    journal.add_argument("destination", nargs="?", metavar="FILE",
                         help="backup: the file to copy the journal to")
    journal.set_defaults(handler=cmd_journal)

    lab = sub.add_parser("lab", help="the Figure 4-10 lab in network namespaces (root)")
    lab.add_argument("action", choices=("up", "status", "cut", "restore", "down"))
    lab.add_argument("--clients", type=int, default=4)
    lab.set_defaults(handler=cmd_lab)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["demo"]:  # the demo parses its own options
        from nefeature.demo import main as demo_main

        return demo_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except SchemaNotFound as error:
        print(f"nefeature: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
