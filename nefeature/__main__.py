"""The ``nefeature`` command: validate configs offline, run a device, demo, lab."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nefeature.datastore.errors import NetconfError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def cmd_validate(args: argparse.Namespace) -> int:
    """Check instance files against the YANG model; print `file: path: message`."""
    from nefeature.config import load_config_file

    failed = 0
    for name in args.files:
        try:
            load_config_file(name)
        except OSError as error:
            print(f"{name}: {error.strerror}", file=sys.stderr)
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
    """For now: load the example pair and say what each device is set up to do."""
    from nefeature.config import load_config_file

    for device in ("deviceA", "deviceB"):
        config = load_config_file(EXAMPLES / "pair" / f"{device}.xml")
        print(f"{device}:")
        for group in config.vrrp_groups:
            tracks = ", ".join(f"{t.interface} {t.priority_change:+d}" for t in group.tracks)
            print(f"  VRRP {group.interface} vrid {group.vrid}: priority {group.priority},"
                  f" virtual IP {', '.join(map(str, group.virtual_addresses))},"
                  f" preempt delay {group.preempt_hold_time} s"
                  + (f", tracking {tracks}" if tracks else ""))
        for pool in config.pools:
            size = sum(len(section) for section in pool.sections)
            print(f"  pool {pool.name}: {pool.network}, {size} addresses in sections,"
                  f" identifier {pool.identifier}, backup profile {pool.backup_profile}")
        for service in config.rbs_services:
            print(f"  remote backup {service.name}: {service.source} -> {service.peer}"
                  f" port {service.port}")
    print("\nThe live two-device demo (DHCP, VRRP, hot backup) is not built yet;"
          " see the status table in README.md.")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Run one device in the foreground until SIGTERM or Ctrl+C."""
    import asyncio
    import logging

    from nefeature.config import load_config_file
    from nefeature.node import Device

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        config = load_config_file(args.startup)
    except OSError as error:
        print(f"{args.startup}: {error.strerror}", file=sys.stderr)
        return 1
    except NetconfError as error:
        print(f"{args.startup}: {error.path or '/'}: {error.message}", file=sys.stderr)
        return 1
    if args.netconf:
        logging.getLogger("nefeature").warning(
            "--netconf %s: the NETCONF server is not built yet; the flag is ignored", args.netconf)
    emulated = None
    if args.emulate_lan:
        group, _, port = args.emulate_lan.rpartition(":")
        emulated = (group, int(port))
    device = Device(config, args.state_dir, dhcp_port=args.dhcp_port, emulated_lan=emulated)
    asyncio.run(device.run())
    return 0


def cmd_not_yet(args: argparse.Namespace) -> int:
    print(f"nefeature {args.command}: not implemented yet; see the status table in README.md",
          file=sys.stderr)
    return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nefeature", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    validate = sub.add_parser("validate", help="check instance XML files against the YANG model")
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    validate.set_defaults(handler=cmd_validate)

    demo = sub.add_parser("demo", help="the two-device demo on loopback")
    demo.set_defaults(handler=cmd_demo)

    run = sub.add_parser("run", help="run one device in the foreground")
    run.add_argument("--startup", required=True, metavar="FILE.xml",
                     help="startup configuration (instance XML, bare or in <config>)")
    run.add_argument("--state-dir", required=True, metavar="DIR",
                     help="where the lease journal lives (created if missing)")
    run.add_argument("--netconf", metavar="HOST:PORT", help="NETCONF listener (not built yet)")
    run.add_argument("--dhcp-port", type=int, default=67, help=argparse.SUPPRESS)
    run.add_argument("--emulate-lan", metavar="GROUP:PORT",
                     help="carry VRRP over UDP multicast on loopback (no root; for the demo)")
    run.add_argument("-v", "--verbose", action="store_true")
    run.set_defaults(handler=cmd_run)

    lab = sub.add_parser("lab", help="the Figure 4-10 lab in network namespaces (root)")
    lab.add_argument("action", choices=("up", "status", "down"))
    lab.set_defaults(handler=cmd_not_yet)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
