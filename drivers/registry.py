"""Driver names in the config -> ``module:Class``, imported only when used (python-can's
BACKENDS), so a gate without OpenCV still starts its NFC reader."""

from __future__ import annotations

import importlib
from typing import Any

from drivers.errors import DriverConfigError

SOURCES: dict[str, str] = {
    "nfc": "drivers.nfc:NfcSource",
    "camera": "drivers.camera:CameraSource",
    "scanner": "drivers.scanner:ScannerSource",
    "wiegand": "drivers.wiegand:WiegandSource",
}


def source_class(name: str, key: str = "driver") -> Any:
    """The class for a driver name; DriverConfigError names ``key`` when the name is
    unknown or its library cannot be imported."""
    target = SOURCES.get(name)
    if target is None:
        raise DriverConfigError(f"{key}: unknown driver {name!r} (known: {', '.join(sorted(SOURCES))})")
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise DriverConfigError(f"{key}: driver {name!r} cannot load ({exc})") from None
    return getattr(module, class_name)
