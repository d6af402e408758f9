"""One short hash for logs (offline_cache.loghash), one length, used by the drivers and the core alike."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from offline_cache.loghash import SHORT_HASH_HEX, short_hash
from reader.gatepass.verdict import Decision

ROOT = Path(__file__).resolve().parent.parent.parent
PACKAGES = ("reader", "drivers", "offline_cache")
HELPER = ROOT / "offline_cache" / "loghash.py"


def test_logs_carry_one_short_hash_of_one_length() -> None:
    cti = bytes(range(16))
    decision = Decision(True, "granted", {}, credential_id=cti)
    assert decision.credential_hash == short_hash(cti) == hashlib.sha256(cti).hexdigest()[:16]
    text = "GP1:\udcff"  # a lone surrogate: any str a source hands over hashes, never raises
    assert SHORT_HASH_HEX == 16 and short_hash(text) == short_hash(text.encode("utf-8", "surrogatepass"))
    # No module cuts its own hex digest for a log line: a second helper would mean a second length.
    cut = re.compile(r"hexdigest\(\)\s*\[\s*:")
    offenders = [str(path.relative_to(ROOT)) for package in PACKAGES for path in (ROOT / package).rglob("*.py")
                 if path != HELPER and cut.search(path.read_text(encoding="utf-8"))]
    assert offenders == []
