#!/usr/bin/env python3
"""Configure Huawei's hot-backup pair from scratch over NETCONF (ncclient).

    examples/configure_pair.py --host 127.0.0.1 --port 830 --user admin \
        --password-file STATE/netconf-password --device A

Sends examples/pair/device<A|B>.xml as one edit of the candidate, validates
it, commits with confirmation (rolled back unless confirmed within 120 s),
confirms, and saves running to startup: what a controller would do.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import ncclient.transport.session
from ncclient import manager

HERE = Path(__file__).resolve().parent
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=830)
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password-file", required=True)
    parser.add_argument("--device", choices=("A", "B"), required=True)
    args = parser.parse_args()
    ncclient.transport.session.TICK = 0.001  # or every RPC waits 100 ms
    body = (HERE / "pair" / f"device{args.device}.xml").read_text().split("-->", 1)[1]
    config = f'<config xmlns="{NC}">{body}</config>'
    with manager.connect(host=args.host, port=args.port, username=args.user,
                         password=Path(args.password_file).read_text().strip(),
                         hostkey_verify=False, look_for_keys=False, allow_agent=False) as m:
        with m.locked("candidate"):
            m.discard_changes()
            m.edit_config(target="candidate", config=config, default_operation="replace")
            m.validate(source="candidate")
            m.commit(confirmed=True, timeout="120")
            m.commit()  # confirm
        m.copy_config(source="running", target="startup")
        print(f"Device{args.device} configured; running saved to startup")


if __name__ == "__main__":
    main()
