"""What logs carry instead of a credential, a payload, a card UID or an NFC answer: one
short hash, :func:`short_hash`, the same everywhere.

Why here: the drivers log what they read (``drivers`` never imports ``reader``), the
credential core names a credential by the hash of its id (``credential_hash`` in the
journal, ``verify --json`` and ``authority issue``), and neither may lean on the other
(the core must not need the hardware package, nor the drivers the core). The project's
layout is fixed at three packages, so the helper cannot be a package of its own below them;
it lives beside the journal, which stores and checks this very hash (``credential_hash``),
as a leaf that imports nothing of the project. It is the one thing of ``offline_cache``
that ``drivers`` may import (tests/test_layers.py keeps both true).

Why 16 hex digits (64 bits of SHA-256): a log line must let someone find "the same
credential" again across a fleet and years of journals, and must not let anyone recover
the credential. 64 bits keep accidental collisions negligible for any credential population
(the birthday bound is ~4 billion ids; 48 bits would collide once among ~16 million, 32
bits among ~65,000), while the hash of a random 16-byte id or a signed presentation gives
nothing back. It is also the ``credential_hash`` length gates already journal and upload,
which the centre matches on: another length would break that contract.
"""

from __future__ import annotations

import hashlib

#: Hex digits of SHA-256 kept: 64 bits (see the module docstring).
SHORT_HASH_HEX = 16


def short_hash(data: bytes | str) -> str:
    """The first 64 bits of SHA-256 of ``data`` in hex. Text is hashed as UTF-8, lone
    surrogates included (a camera or scanner may hand over any ``str``), so it never raises."""
    raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
    return hashlib.sha256(raw).hexdigest()[:SHORT_HASH_HEX]
