"""Legacy fallback: UID-only cards and 1D barcodes, looked up in a signed list (spec 2.3, 4).

These identifiers can be copied, so a match is ``low`` assurance and only readers whose
policy enables legacy cards consult the list.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from reader.gatepass.claims import numeric_date
from reader.gatepass.statuslist import TokenRejected, verify_signed_token
from reader.gatepass.trust import TrustStore
from reader.gatepass.verdict import CHECKS, Clock, Decision, Policy

LEGACY_LIST_TYP = "application/gatepass-legacy+cwt"
CLAIM_CARDS = -65537
MAX_IDENTIFIER_CHARS = 4096


@dataclass(frozen=True, slots=True)
class LegacyCard:
    sub: str
    exp: int


@dataclass(frozen=True, slots=True)
class LegacyList:
    """A verified legacy card list: hashed identifier -> card."""

    iat: int | float
    exp: int | float
    cards: dict[bytes, LegacyCard]
    kid: bytes

    def is_stale(self, now: float, max_age_s: float) -> bool:
        return now >= self.exp or now > self.iat + max_age_s


def card_key(identifier: str) -> bytes:
    """SHA-256(identifier as UTF-8)[:16]: the list is keyed by hashes, not by UIDs."""
    return hashlib.sha256(identifier.encode("utf-8")).digest()[:16]


def verify_legacy_token(raw: bytes, trust: TrustStore, *, now: float | None = None, skew_s: float = 300) -> LegacyList:
    """Verify a legacy card list token (spec 4); :class:`TokenRejected` says why not."""
    # Protected kid only: the 2026-11-30 amendment of spec 3 (kid looked up in both headers)
    # covers status lists, not this list of spec 4, whose header stays as it was.
    sign1, claims, _label = verify_signed_token(raw, trust, LEGACY_LIST_TYP, kid_unprotected=False)
    iat = numeric_date(claims.get(6))
    exp = numeric_date(claims.get(4))
    if iat is None or exp is None:
        raise TokenRejected("iat or exp missing or not a NumericDate")
    if now is not None and iat > now + skew_s:
        raise TokenRejected(f"iat {iat} is more than {skew_s:g} s ahead of the clock")
    entries = claims.get(CLAIM_CARDS)
    if not isinstance(entries, dict):
        raise TokenRejected("card map (-65537) missing or not a map")
    cards: dict[bytes, LegacyCard] = {}
    for key, value in entries.items():
        if type(key) is not bytes or len(key) != 16 or not isinstance(value, dict):
            raise TokenRejected("a card entry is not bstr(16) -> map")
        sub, card_exp = value.get("sub"), value.get("exp")
        if type(sub) is not str or type(card_exp) is not int:
            raise TokenRejected("a card entry lacks text sub or integer exp")
        cards[key] = LegacyCard(sub, card_exp)
    kid = sign1.kid(protected_only=True)
    assert type(kid) is bytes
    return LegacyList(iat, exp, cards, kid)


def decide_legacy(identifier: str, legacy_list: LegacyList | None, *, clock: Clock, policy: Policy) -> Decision:
    """Decide on a card UID (uppercase hex) or 1D barcode text."""
    checks: dict[str, Any] = dict.fromkeys(CHECKS, "skipped")

    def deny(reason: str, detail: str, check: str | None = "status", subject: str | None = None) -> Decision:
        if check is not None:
            checks[check] = "fail"
        return Decision(False, reason, checks, subject=subject, assurance="low", detail=detail)

    if len(identifier) > MAX_IDENTIFIER_CHARS:
        checks["format"] = "fail"
        return Decision(False, "too_large", checks, assurance="low", detail="identifier too long")
    checks["format"] = "ok"
    if not policy.allow_legacy:
        return deny("legacy_not_allowed", "legacy cards are not accepted on this reader", None)
    if legacy_list is None:
        return deny("unknown_card", "no legacy card list is loaded")
    card = legacy_list.cards.get(card_key(identifier))
    if card is None:
        return deny("unknown_card", "the card is not on the legacy list")
    # Without a trusted clock, only the floor (a time already passed) proves expiry.
    card_expired = clock.now >= card.exp if clock.trusted else clock.floor is not None and card.exp <= clock.floor
    if card_expired:
        return deny("expired", "the card has expired", "validity", card.sub)
    checks["validity"] = "ok"
    warnings: tuple[str, ...] = ()
    if not clock.trusted:
        return deny("clock_untrusted", "list staleness cannot be checked without a trusted clock", "status", card.sub)
    if legacy_list.is_stale(clock.now, policy.max_age_s):
        if policy.on_stale != "allow":
            return deny("status_stale", "the legacy card list is stale", "status", card.sub)
        warnings = ("legacy card list is stale; granted because the policy accepts stale lists",)
    checks["status"] = "ok"
    return Decision(True, "granted", checks, subject=card.sub, assurance="low", warnings=warnings)
