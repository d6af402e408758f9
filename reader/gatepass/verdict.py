"""The vocabulary of a decision (spec section 7): reasons in their order, the reported
checks, the policy and clock a decision is made with, the decision itself, and the replay
memory a gate keeps. Pure data: no parsing, no cryptography."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from offline_cache.loghash import short_hash

REASONS: tuple[str, ...] = (
    "malformed",
    "too_large",
    "unsupported_alg",
    "unknown_issuer",
    "bad_issuer_signature",
    "expired",
    "not_yet_valid",
    "static_not_allowed",
    "bad_holder_signature",
    "challenge_mismatch",
    "presentation_stale",
    "presentation_future",
    "clock_untrusted",
    "replayed",
    "revoked",
    "suspended",
    "status_unknown",
    "status_stale",
    "legacy_not_allowed",
    "unknown_card",
    "not_authorized",
)
GRANTED = "granted"
_RANK = {reason: rank for rank, reason in enumerate(REASONS)}
CHECKS: tuple[str, ...] = (
    "format",
    "issuer_signature",
    "claims",
    "validity",
    "holder_signature",
    "freshness",
    "status",
)
CheckResult = Literal["ok", "fail", "skipped"]
Assurance = Literal["high", "static", "low"]


@dataclass(frozen=True, slots=True)
class Policy:
    """What one reader accepts. Defaults are the spec's."""

    allow_static: bool = False
    allow_legacy: bool = False
    window_s: float = 30
    future_skew_s: float = 5
    skew_s: float = 300
    max_age_s: float = 86_400
    on_stale: Literal["deny", "allow"] = "deny"
    # Access groups this reader admits; empty admits every valid credential.
    groups: frozenset[str] = frozenset()


DEFAULT_POLICY = Policy()


@dataclass(frozen=True, slots=True)
class Clock:
    """The time a decision is made at. ``trusted`` is False when the system clock is more
    than the skew below the persisted time floor (spec section 6); ``floor`` is that floor."""

    now: float
    trusted: bool = True
    floor: float | None = None


@dataclass(slots=True)
class Decision:
    """The outcome of one presentation. ``detail`` explains the reason in words; it never
    holds key material, nonces or the credential itself. Treat it as a value (it is not
    frozen only because a frozen dataclass costs microseconds to build on the hot path).
    ``credential_id`` is the credential's cti; what is logged is :attr:`credential_hash`."""

    granted: bool
    reason: str
    checks: dict[str, CheckResult]
    subject: str | None = None
    issuer: str | None = None
    kid: bytes | None = None
    assurance: Assurance | None = None
    credential_id: bytes | None = field(default=None, repr=False)  # logged only as its hash
    detail: str | None = None
    warnings: tuple[str, ...] = ()
    # The credential's access groups (its ``grp`` claim), for the reader's own policy
    # (reader.gate.policy.authorize); empty for legacy cards and undecodable credentials.
    groups: tuple[str, ...] = ()

    @property
    def credential_hash(self) -> str | None:
        """What the journal and the verify tool show of the credential: SHA-256(cti)[:8] in
        hex (offline_cache.loghash.short_hash). Computed when asked, because a gate logs after it has driven
        the relay."""
        if self.credential_id is None:
            return None
        return short_hash(self.credential_id)

    def to_json(self) -> dict[str, Any]:
        return {
            "decision": "grant" if self.granted else "deny",
            "reason": self.reason,
            "subject": self.subject,
            "issuer": self.issuer,
            "kid": self.kid.hex() if self.kid is not None else None,
            "assurance": self.assurance,
            "credential_hash": self.credential_hash,
            "detail": self.detail,
            "warnings": list(self.warnings),
            "checks": dict(self.checks),
        }


class ReplayMemory(Protocol):
    """Where a gate remembers granted QR ``(cti, nonce)`` pairs (spec 2.1)."""

    def seen(self, cti: bytes, nonce: bytes, now: float) -> bool: ...

    def remember(self, cti: bytes, nonce: bytes, keep_until: float) -> None: ...


class InMemoryReplay:
    """A replay memory for one process; pairs are dropped once they could not be fresh."""

    def __init__(self) -> None:
        self._until: dict[tuple[bytes, bytes], float] = {}

    def seen(self, cti: bytes, nonce: bytes, now: float) -> bool:
        until = self._until.get((cti, nonce))
        return until is not None and now <= until

    def remember(self, cti: bytes, nonce: bytes, keep_until: float) -> None:
        self._until[(cti, nonce)] = keep_until

    def prune(self, now: float) -> None:
        self._until = {pair: until for pair, until in self._until.items() if until >= now}

    def __len__(self) -> int:
        return len(self._until)
