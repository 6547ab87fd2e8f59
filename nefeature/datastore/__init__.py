"""Datastores, YANG validation and the errors they raise."""

from nefeature.datastore.errors import ErrorInfo, NetconfError

__all__ = ["ErrorInfo", "NetconfError"]
