"""CWT claims of an issuer credential and of a holder presentation (spec sections 1 and 2).

Each claim is checked on its own so that one bad claim does not hide the others: the
signature and validity checks still run on whatever fields are usable, as spec section 1
asks. ``problems`` lists what is wrong, in words a technician can act on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

CLAIM_ISS = 1
CLAIM_SUB = 2
CLAIM_EXP = 4
CLAIM_NBF = 5
CLAIM_IAT = 6
CLAIM_CTI = 7
CLAIM_CNF = 8
CLAIM_STATUS = 65535

PRESENTATION_CREDENTIAL = 1
PRESENTATION_IAT = 2
PRESENTATION_NONCE = 3
PRESENTATION_RNONCE = 4
PRESENTATION_GATE = 5

MAX_NUMERIC_DATE = 2**63 - 1
KTY_OKP = 1
KTY_EC2 = 2
CRV_P256 = 1
CRV_ED25519 = 6


def numeric_date(value: Any) -> int | float | None:
    """The value as a NumericDate (RFC 8392), or None when it is not one.

    Untagged integer or finite float in [0, 2^63 - 1]; a bool, text, tag (bignums too),
    NaN or infinity is not.
    """
    kind = type(value)
    if kind is int:
        return value if 0 <= value <= MAX_NUMERIC_DATE else None
    if kind is float:
        return value if math.isfinite(value) and 0 <= value <= MAX_NUMERIC_DATE else None
    return None


@dataclass(frozen=True, slots=True)
class HolderKey:
    """The holder's public key from ``cnf``, as raw coordinates (validated when used)."""

    kty: int
    x: bytes
    y: bytes | None = None


@dataclass(frozen=True, slots=True)
class StatusRef:
    """A credential's entry in a Token Status List."""

    uri: str
    idx: int


@dataclass(slots=True)
class CredentialClaims:
    """The claims GatePass reads; a field is None when absent or unusable."""

    iss: str | None = None
    sub: str | None = None
    exp: int | float | None = None
    nbf: int | float | None = None
    iat: int | float | None = None
    cti: bytes | None = None
    holder_key: HolderKey | None = None
    status: StatusRef | None = None
    name: str | None = None
    org: str | None = None
    groups: tuple[str, ...] = ()
    carrier: str | None = None
    has_nbf: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _holder_key(cnf: Any) -> HolderKey | None:
    if type(cnf) is not dict:
        return None
    key = cnf.get(1)
    if type(key) is not dict:
        return None
    kty = key.get(1)
    crv = key.get(-1)
    x = key.get(-2)
    if type(kty) is not int or type(crv) is not int or type(x) is not bytes or len(x) != 32:
        return None
    if kty == KTY_EC2 and crv == CRV_P256:
        y = key.get(-3)
        if type(y) is not bytes or len(y) != 32:
            return None
        return HolderKey(KTY_EC2, x, y)
    if kty == KTY_OKP and crv == CRV_ED25519:
        return HolderKey(KTY_OKP, x)
    return None


def _status_ref(value: Any) -> StatusRef | None:
    if type(value) is not dict:
        return None
    entry = value.get("status_list")
    if type(entry) is not dict:
        return None
    idx = entry.get("idx")
    uri = entry.get("uri")
    if type(idx) is not int or idx < 0 or type(uri) is not str:
        return None
    return StatusRef(uri, idx)


def _optional_text(claims: dict[Any, Any], key: Any, out: CredentialClaims, name: str) -> str | None:
    if key not in claims:
        return None
    value = claims[key]
    if type(value) is not str:
        out.problems.append(f"{name} is not text")
        return None
    return value


def parse_credential_claims(claims: Any, *, require_cnf: bool) -> CredentialClaims:
    """Check the claims map of spec section 1; every problem is recorded, none raised."""
    out = CredentialClaims()
    if type(claims) is not dict:
        out.problems.append("payload is not a CBOR map")
        return out
    problems = out.problems

    for key, name in ((CLAIM_ISS, "iss"), (CLAIM_SUB, "sub")):
        value = claims.get(key)
        if type(value) is str:
            setattr(out, name, value)
        else:
            problems.append(f"{name} missing or not text")

    for key, name, required in ((CLAIM_EXP, "exp", True), (CLAIM_IAT, "iat", True), (CLAIM_NBF, "nbf", False)):
        if key not in claims:
            if required:
                problems.append(f"{name} missing")
            continue
        if key == CLAIM_NBF:
            out.has_nbf = True
        value = numeric_date(claims[key])
        if value is None:
            problems.append(f"{name} is not a NumericDate")
        else:
            setattr(out, name, value)

    cti = claims.get(CLAIM_CTI)
    if type(cti) is bytes and len(cti) == 16:
        out.cti = cti
    else:
        problems.append("cti missing or not 16 bytes")

    if CLAIM_CNF in claims:
        out.holder_key = _holder_key(claims[CLAIM_CNF])
        if out.holder_key is None:
            problems.append("cnf is not a P-256 or Ed25519 COSE_Key")
    elif require_cnf:
        problems.append("cnf missing from a credential inside a presentation")

    if CLAIM_STATUS in claims:
        out.status = _status_ref(claims[CLAIM_STATUS])
        if out.status is None:
            problems.append("status is not {status_list: {idx: uint, uri: text}}")

    out.name = _optional_text(claims, "name", out, "name")
    out.org = _optional_text(claims, "org", out, "org")
    out.carrier = _optional_text(claims, "car", out, "car")
    if out.carrier is not None and out.carrier not in ("mobile", "card"):
        problems.append('car is neither "mobile" nor "card"')
        out.carrier = None
    if "grp" in claims:
        groups = claims["grp"]
        if type(groups) is list and all(type(g) is str for g in groups):
            out.groups = tuple(groups)
        else:
            problems.append("grp is not an array of text")
    return out
