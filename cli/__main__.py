"""The ``nefeature-cli`` command (the VRP shell)."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nefeature-cli", description="VRP-style shell over NETCONF")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=830)
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("-c", dest="commands", action="append", default=[], metavar="COMMAND")
    parser.add_argument("script", nargs="?")
    return parser


def main(argv: list[str] | None = None) -> int:
    build_parser().parse_args(argv)
    print("nefeature-cli: the VRP shell is not implemented yet; see the status table in README.md",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
