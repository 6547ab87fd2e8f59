"""Typed configuration objects built from validated YANG instance data.

Nothing here validates or parses XML: the datastore does that
(``nefeature.datastore.validation.load_config`` gives a DeviceConfig from a file's text).
"""

from __future__ import annotations

from nefeature.config.diff import Change, ConfigDiff, diff_configs
from nefeature.config.model import DeviceConfig, build_device_config

__all__ = [
    "Change",
    "ConfigDiff",
    "DeviceConfig",
    "build_device_config",
    "diff_configs",
]
