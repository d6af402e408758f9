"""Errors of the hardware drivers. ``drivers`` never imports ``reader``: its root is its own,
and vendor exceptions (nfcpy, OpenCV, pyserial, gpiozero) are wrapped here, nowhere else."""

from __future__ import annotations


class DriverError(Exception):
    """Root of every error the drivers raise on purpose."""


class DriverConfigError(DriverError, ValueError):
    """A driver setting is wrong: an unknown driver name, a driver whose library is not
    installed, a device path that does not parse, a value out of range. The message names
    the key path (``readers[1].port: ...``) when the caller gave one."""


class DeviceUnavailable(DriverError, OSError):
    """The device is not there or stopped answering (unplugged, permission denied, port
    vanished). Sources retry by themselves with bounded backoff; this reaches callers only
    from an explicit open."""


class DriverTimeout(DriverError, TimeoutError):
    """A device did not answer within its bound (an NFC card removed mid-exchange, a reader
    that stopped answering)."""
