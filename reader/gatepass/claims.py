"""CWT claims of an issuer credential and of a holder presentation (spec sections 1 and 2).

Each claim is checked on its own so that one bad claim does not hide the others: the
signature and validity checks still run on whatever fields are usable, as spec section 1
asks. ``problems`` lists what is wrong, in words a technician can act on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

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
# The item budget of a credential's claims map (and of a presentation's payload, which may
# be a static pass's claims), decoded before any signature is checked. A credential with
# every claim of spec 1 and twenty groups is about 60 items and 420 bytes; 512 leaves room
# for many more groups and unknown claims, and bounds what a hostile code costs (see
# docs/formats.md, "Strict, bounded parsing"). Inputs of up to 512 bytes also stay on the
# fast engine (cbor.py).
MAX_CLAIMS_ITEMS = 512
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


# Named tuples rather than frozen dataclasses: both are immutable, and a tuple is built
# in a third of the time (each credential a gate has not seen makes one of each).
class HolderKey(NamedTuple):
    """The holder's public key from ``cnf``, as raw coordinates (validated when used)."""

    kty: int
    x: bytes
    y: bytes | None = None


class StatusRef(NamedTuple):
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


def _numeric_date_claim(claims: dict[Any, Any], key: int, name: str, required: bool, problems: list[str]) -> Any:
    if key not in claims:
        if required:
            problems.append(f"{name} missing")
        return None
    value = numeric_date(claims[key])
    if value is None:
        problems.append(f"{name} is not a NumericDate")
    return value


def _optional_text(claims: dict[Any, Any], key: str, problems: list[str]) -> str | None:
    if key not in claims:
        return None
    value = claims[key]
    if type(value) is str:
        return value
    problems.append(f"{key} is not text")
    return None


def parse_credential_claims(claims: Any, *, require_cnf: bool) -> CredentialClaims:
    """Check the claims map of spec section 1; every problem is recorded, none raised.

    Written as one pass over local values, because every credential a gate has not seen
    before comes through here ahead of its two signature checks."""
    if type(claims) is not dict:
        return CredentialClaims(problems=["payload is not a CBOR map"])
    problems: list[str] = []
    get = claims.get

    iss = get(CLAIM_ISS)
    if type(iss) is not str:
        iss = None
        problems.append("iss missing or not text")
    sub = get(CLAIM_SUB)
    if type(sub) is not str:
        sub = None
        problems.append("sub missing or not text")
    exp = _numeric_date_claim(claims, CLAIM_EXP, "exp", True, problems)
    iat = _numeric_date_claim(claims, CLAIM_IAT, "iat", True, problems)
    has_nbf = CLAIM_NBF in claims
    nbf = _numeric_date_claim(claims, CLAIM_NBF, "nbf", False, problems) if has_nbf else None

    cti = get(CLAIM_CTI)
    if type(cti) is not bytes or len(cti) != 16:
        cti = None
        problems.append("cti missing or not 16 bytes")

    holder_key = None
    if CLAIM_CNF in claims:
        holder_key = _holder_key(claims[CLAIM_CNF])
        if holder_key is None:
            problems.append("cnf is not a P-256 or Ed25519 COSE_Key")
    elif require_cnf:
        problems.append("cnf missing from a credential inside a presentation")

    status = None
    if CLAIM_STATUS in claims:
        status = _status_ref(claims[CLAIM_STATUS])
        if status is None:
            problems.append("status is not {status_list: {idx: uint, uri: text}}")

    name = _optional_text(claims, "name", problems)
    org = _optional_text(claims, "org", problems)
    carrier = _optional_text(claims, "car", problems)
    if carrier is not None and carrier not in ("mobile", "card"):
        problems.append('car is neither "mobile" nor "card"')
        carrier = None
    groups: tuple[str, ...] = ()
    if "grp" in claims:
        value = claims["grp"]
        if type(value) is list and all(type(g) is str for g in value):
            groups = tuple(value)
        else:
            problems.append("grp is not an array of text")
    return CredentialClaims(
        iss, sub, exp, nbf, iat, cti, holder_key, status, name, org, groups, carrier, has_nbf, problems
    )
