"""The ``nefeature`` command: validate configs offline, run a device, demo, lab."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nefeature.datastore.errors import NetconfError

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
    """Two devices on loopback, clients, a failure, the switchover (nefeature.demo)."""
    from nefeature.demo import main as demo_main

    return demo_main(args.demo_args)


def cmd_run(args: argparse.Namespace) -> int:
    """Run one device in the foreground until SIGTERM or Ctrl+C."""
    import asyncio
    import logging

    from nefeature import memprobe
    from nefeature.datastore.validation import validate_config_text, validator
    from nefeature.datastore.startup import STARTUP_FILE
    from nefeature.node import Device

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    log = logging.getLogger("nefeature")
    state_dir = Path(args.state_dir)
    saved = state_dir / STARTUP_FILE
    source = saved if saved.exists() else Path(args.startup)
    if source == saved:
        log.info("starting from %s (saved by copy-config to startup), not %s", saved,
                 args.startup)
    log.info("configurations are validated by %s", validator())
    try:
        validated = validate_config_text(source.read_bytes())
    except OSError as error:
        print(f"{source}: {error.strerror}", file=sys.stderr)
        return 1
    except NetconfError as error:
        print(f"{source}: {error.path or '/'}: {error.message}", file=sys.stderr)
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
    device = Device(validated, state_dir, dhcp_port=args.dhcp_port, emulated_lan=emulated,
                    netconf=netconf, relay_port=args.relay_port)
    probe = memprobe.from_environment(device)

    async def run() -> None:
        if probe is not None:
            probe.start(asyncio.get_running_loop())
        await device.run()

    asyncio.run(run())
    return 0


def netconf_settings(args: argparse.Namespace, state_dir):
    """Who may log in to NETCONF (DESIGN.md section 7)."""
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


def cmd_lab(args: argparse.Namespace) -> int:
    from nefeature.lab import main as lab_main

    return lab_main(args.action, args.clients)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nefeature", description=__doc__)
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
    run.add_argument("-v", "--verbose", action="store_true")
    run.set_defaults(handler=cmd_run)

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
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
