"""The project's exceptions: one root, and leaves that also inherit the builtin they resemble.

A denial is never an exception: it is a :class:`reader.gatepass.decide.Decision`.
"""

from __future__ import annotations


class GateReaderError(Exception):
    """Root of every error gate-reader raises on purpose."""


class ConfigError(GateReaderError, ValueError):
    """A configuration or command-line value is wrong: a trust file that is missing, empty,
    holds a private key or an unsupported block; a status file that cannot be read; a time
    that does not parse. The message names the key path or file."""


class TrustStoreError(ConfigError):
    """A trust anchor file cannot be used: unreadable, no certificate or public key in it,
    a block that does not parse, a private key where only public material belongs, or a
    key that would prove nothing (an Ed25519 point of small order or not canonically
    encoded, an RSA key under 2048 bits or with an exponent other than 65537)."""
