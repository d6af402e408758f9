"""Applies big sync updates to a cache database in a loop, as fast as it can, until killed.

Run by test_store.py's kill -9 test: ``python apply_worker.py DB PROGRESS``. Update ``n``
(0, 1, 2, ...) writes every list in ``SIZES``, the legacy list and the trust PEM, each
made by :func:`expected_raw` from one of two big random bodies (A for even ``n``, B for
odd) behind a header naming the uri and ``n``, with iat ``IAT0 + n``: every update
changes every token (a distinct sha256 each time) and is accepted (its iat is newer).
So after a kill the test can rebuild, from the stored generation alone, the exact bytes
every token must have; anything else is a torn or mixed update.

The worker resumes from the stored generation (one update = one generation), prints
``ready`` once it starts applying, and appends ``start n`` / ``done n`` lines to PROGRESS
around each apply, so the test also knows which updates could be in the database.
"""

from __future__ import annotations

import random
import sys
from functools import cache

from offline_cache.store import LEGACY_URI, Store, SyncUpdate

SIZES = {"https://gates.example/status/a": 2_000_000, "https://gates.example/status/b": 1_000_000, LEGACY_URI: 500_000}
IAT0 = 1_700_000_000.0
AT0 = 1_800_000_000.0


@cache
def _body(uri: str, version: int) -> bytes:
    return random.Random(f"{uri}/{version}").randbytes(SIZES[uri])


def expected_raw(uri: str, n: int) -> bytes:
    """The token update ``n`` stores for ``uri``."""
    return f"{uri} update {n} version {'AB'[n % 2]}\n".encode() + _body(uri, n % 2)


def expected_trust(n: int) -> bytes:
    return f"-----BEGIN CERTIFICATE-----\nupdate {n}\n-----END CERTIFICATE-----\n".encode()


def update(n: int) -> SyncUpdate:
    iat = IAT0 + n
    status = [(uri, iat, iat + 86_400, expected_raw(uri, n)) for uri in SIZES if uri != LEGACY_URI]
    return SyncUpdate(
        trust_pem=expected_trust(n),
        status=status,
        legacy=(iat, iat + 86_400, expected_raw(LEGACY_URI, n)),
        tuf_versions={"timestamp": n + 1, "snapshot": n + 1},
        time_floor=iat,
        at=AT0 + n,
    )


def main(db: str, progress_path: str) -> None:
    for uri in SIZES:  # build both bodies before the first apply, not during the kill window
        _body(uri, 0), _body(uri, 1)
    store = Store.open(db, create=True, check=False)
    n = store.generation()
    with open(progress_path, "a", encoding="ascii") as progress:
        print("ready", flush=True)
        while True:
            progress.write(f"start {n}\n")
            progress.flush()
            store.apply_sync(update(n))
            progress.write(f"done {n}\n")
            progress.flush()
            n += 1


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
