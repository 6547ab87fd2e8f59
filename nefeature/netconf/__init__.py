"""NETCONF: the server (over the PyPI netconf package) and its fixes."""
