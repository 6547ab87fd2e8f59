"""DHCPv4 server: codec, sans-IO engine, pools, lease table, journal, transports."""
