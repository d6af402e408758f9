"""Token Status List tokens, CWT form (spec section 3), and the per-uri set a gate holds.

A token that fails any check is *ignored*, never fatal: :func:`verify_status_token` raises
:class:`TokenRejected` with the reason, and callers log it and go on without the token.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from reader.gatepass.claims import numeric_date
from reader.gatepass.cose import (
    HEADER_TYP,
    KID_INVALID,
    CoseFormatError,
    Sign1,
    is_supported_alg,
    parse_sign1,
    verify_signature,
)
from reader.gatepass.errors import TokenRejected
from reader.gatepass.trust import TrustStore

STATUS_LIST_TYP = "application/statuslist+cwt"
MAX_TOKEN_BYTES = 32 << 20  # the compressed list of a 16 MiB list still fits with room
MAX_LIST_BYTES = 16 << 20

CLAIM_SUB = 2
CLAIM_EXP = 4
CLAIM_IAT = 6
CLAIM_TTL = 65534
CLAIM_STATUS_LIST = 65533

VALID = 0
REVOKED = 1
SUSPENDED = 2




def verify_signed_token(
    raw: bytes, trust: TrustStore, typ: str, *, kid_unprotected: bool = False
) -> tuple[Sign1, dict[Any, Any], str]:
    """Check an issuer-signed list token's envelope, typ, kid and signature.

    The typ and the alg count only in the protected header. The kid does too unless
    ``kid_unprotected``: then it is looked up as a credential's is, protected header first,
    then unprotected (spec 3 as amended 2026-11-30, for status lists only).
    Returns the Sign1, its claims map and the label of the anchor that verified it.
    """
    if len(raw) > MAX_TOKEN_BYTES:
        raise TokenRejected(f"token larger than {MAX_TOKEN_BYTES} bytes")
    try:
        sign1 = parse_sign1(raw)
    except CoseFormatError as exc:
        raise TokenRejected(f"not a COSE_Sign1 ({exc})") from None
    if sign1.protected.get(HEADER_TYP) != typ:
        raise TokenRejected(f"protected typ is not {typ}")
    if not is_supported_alg(sign1.alg):
        raise TokenRejected("unsupported alg")
    kid = sign1.kid(protected_only=not kid_unprotected)
    if kid is None or kid is KID_INVALID:
        where = "either header" if kid_unprotected else "the protected header"
        raise TokenRejected(f"kid is not a byte string in {where}")
    anchors = trust.lookup(kid)  # type: ignore[arg-type]
    if not anchors:
        raise TokenRejected(f"kid {kid.hex()} is not trusted")  # type: ignore[union-attr]
    message = sign1.to_be_signed()
    for anchor in anchors:
        if verify_signature(sign1.alg, anchor.public_key, sign1.signature, message, anchor.kind):
            break
    else:
        raise TokenRejected(f"signature does not verify under kid {kid.hex()}")  # type: ignore[union-attr]
    try:
        from reader.gatepass.cbor import CborError, loads

        claims = loads(sign1.payload, max_items=1 << 20)
    except CborError as exc:
        raise TokenRejected(f"claims are not CBOR ({exc})") from None
    if type(claims) is not dict:
        raise TokenRejected("claims are not a map")
    return sign1, claims, anchor.label


@dataclass(frozen=True, slots=True)
class StatusList:
    """One verified status list token, its list inflated and ready for lookups."""

    uri: str
    iat: int | float
    exp: int | float | None
    ttl: int | None
    bits: int
    data: bytes
    kid: bytes
    raw: bytes

    def value(self, idx: int) -> int | None:
        """The status value at ``idx``, or None when the index is past the end."""
        bit = idx * self.bits
        byte = bit >> 3
        if byte >= len(self.data):
            return None
        return (self.data[byte] >> (bit & 7)) & ((1 << self.bits) - 1)

    @property
    def entries(self) -> int:
        return len(self.data) * 8 // self.bits

    def is_stale(self, now: float, max_age_s: float) -> bool:
        """Spec 3: stale when ``now >= exp`` or ``now > iat + max_age``."""
        return (self.exp is not None and now >= self.exp) or now > self.iat + max_age_s


def _inflate_list(lst: bytes) -> bytes:
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(lst, MAX_LIST_BYTES + 1)
    except zlib.error as exc:
        raise TokenRejected(f"lst is not a zlib stream ({exc})") from None
    if len(data) > MAX_LIST_BYTES:
        raise TokenRejected(f"lst inflates past {MAX_LIST_BYTES} bytes")
    if not inflater.eof or inflater.unused_data:
        raise TokenRejected("lst is a truncated zlib stream or has data after it")
    return data


def verify_status_token(
    raw: bytes, trust: TrustStore, *, now: float | None = None, skew_s: float = 300
) -> StatusList:
    """Verify a status list token (spec 3). ``now`` is a *trusted* clock, or None when the
    gate has none: then the "iat ahead of the clock" rule cannot be applied."""
    sign1, claims, _label = verify_signed_token(raw, trust, STATUS_LIST_TYP, kid_unprotected=True)
    uri = claims.get(CLAIM_SUB)
    if type(uri) is not str:
        raise TokenRejected("sub (the list uri) missing or not text")
    iat = numeric_date(claims.get(CLAIM_IAT))
    if iat is None:
        raise TokenRejected("iat missing or not a NumericDate")
    exp = None
    if CLAIM_EXP in claims:
        exp = numeric_date(claims[CLAIM_EXP])
        if exp is None:
            raise TokenRejected("exp is not a NumericDate")
    ttl = claims.get(CLAIM_TTL)
    if ttl is not None and (type(ttl) is not int or ttl < 0):
        raise TokenRejected("ttl is not an unsigned integer")
    status_list = claims.get(CLAIM_STATUS_LIST)
    if type(status_list) is not dict:
        raise TokenRejected("status_list claim missing or not a map")
    bits = status_list.get("bits")
    lst = status_list.get("lst")
    if type(bits) is not int or bits not in (1, 2, 4, 8):
        raise TokenRejected("bits is not 1, 2, 4 or 8")
    if type(lst) is not bytes:
        raise TokenRejected("lst is not a byte string")
    if now is not None and iat > now + skew_s:
        raise TokenRejected(f"iat {iat} is more than {skew_s:g} s ahead of the clock")
    kid = sign1.kid()  # where verify_signed_token found it: protected first, then unprotected
    assert type(kid) is bytes
    return StatusList(uri, iat, exp, ttl, bits, _inflate_list(lst), kid, raw)


class StatusLists:
    """The newest verified token per uri; an older (or equal-iat) one never replaces it."""

    def __init__(self, lists: Iterable[StatusList] = ()) -> None:
        self._by_uri: dict[str, StatusList] = {}
        for status_list in lists:
            self.offer(status_list)

    def offer(self, status_list: StatusList) -> bool:
        """Keep ``status_list`` if it is newer than the one held for its uri; True if kept."""
        held = self._by_uri.get(status_list.uri)
        if held is not None and status_list.iat <= held.iat:
            return False
        self._by_uri[status_list.uri] = status_list
        return True

    def get(self, uri: str) -> StatusList | None:
        return self._by_uri.get(uri)

    def __iter__(self) -> Iterator[StatusList]:
        return iter(self._by_uri.values())

    def __len__(self) -> int:
        return len(self._by_uri)
