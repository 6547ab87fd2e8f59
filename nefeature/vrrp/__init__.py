"""VRRPv3 (RFC 5798): advertisement codec, sans-IO router, transports."""
