"""Typed configuration objects built from validated YANG instance data."""

from __future__ import annotations

from pathlib import Path

from nefeature.config.diff import Change, ConfigDiff, diff_configs
from nefeature.config.model import DeviceConfig, build_device_config
from nefeature.datastore.validation import validate_config_text


def load_config(data: str | bytes) -> DeviceConfig:
    """Validate instance XML (bare or in <config>) and build its DeviceConfig.

    Raises NetconfError on the first violation of the model.
    """
    return build_device_config(validate_config_text(data).raw)


def load_config_file(path: str | Path) -> DeviceConfig:
    return load_config(Path(path).read_bytes())


__all__ = [
    "Change",
    "ConfigDiff",
    "DeviceConfig",
    "build_device_config",
    "diff_configs",
    "load_config",
    "load_config_file",
]
