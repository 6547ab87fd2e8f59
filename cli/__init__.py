"""nefeature_cli: the Huawei-VRP-style shell that turns commands into NETCONF edits.

Imported as ``nefeature_cli`` (the directory ``cli/`` is mapped to that name
in pyproject.toml, so no bare ``cli`` package is installed).
"""
