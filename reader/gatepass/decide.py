"""The decision of spec section 7: grant or deny, with the first failing reason.

Pure functions of their arguments: the clock, the trust store, the status lists, the
policy and (for a gate, not for a one-shot check) the replay memory are all passed in.
Every check that can be evaluated on the decoded objects is, so a technician sees all of
what is wrong with a credential; the reason is the earliest failure in :data:`REASONS`.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import load_der_public_key

from reader.gatepass.cbor import CborError, loads
from reader.gatepass.claims import (
    KTY_EC2,
    PRESENTATION_CREDENTIAL,
    PRESENTATION_GATE,
    PRESENTATION_IAT,
    PRESENTATION_NONCE,
    PRESENTATION_RNONCE,
    CredentialClaims,
    HolderKey,
    numeric_date,
    parse_credential_claims,
)
from reader.gatepass.cose import (
    ALG_EDDSA,
    ALG_ES256,
    KID_INVALID,
    CoseFormatError,
    Sign1,
    definite_bstr,
    is_supported_alg,
    parse_sign1,
    verify_signature,
)
from reader.gatepass.envelope import DEFAULT_PREFIXES, MAX_NFC_BYTES, EnvelopeError, open_text
from reader.gatepass.statuslist import REVOKED, SUSPENDED, VALID, StatusLists
from reader.gatepass.trust import TrustStore
from reader.gatepass.verdict import (
    _RANK,
    CHECKS,
    DEFAULT_POLICY,
    GRANTED,
    REASONS,
    Assurance,
    CheckResult,
    Clock,
    Decision,
    InMemoryReplay,
    Policy,
    ReplayMemory,
)

__all__ = [
    "CHECKS",
    "GRANTED",
    "REASONS",
    "Assurance",
    "CheckResult",
    "Clock",
    "CredentialCache",
    "Decision",
    "InMemoryReplay",
    "Policy",
    "ReplayMemory",
    "Verifier",
    "decide_cose",
    "decide_nfc",
    "decide_text",
]

@dataclass(slots=True)
class _IssuerCredential:
    """What is known about an issuer credential from its bytes and the trust store alone,
    so it can be cached by the credential's hash."""

    sign1: Sign1
    claims: CredentialClaims
    digest: bytes
    kid: bytes | None
    signature_reason: str | None  # None when the issuer signature is good; _UNCHECKED before
    signature_detail: str | None
    holder_key: Any = None  # a cryptography public key, False if cnf is not a valid point


class CredentialCache:
    """Issuer credentials already parsed and checked, by SHA-256 of their bytes (LRU).

    Only facts that depend on the bytes and the trust store are kept; validity, holder
    signature, freshness and status are evaluated at every presentation. Bound to one trust
    store: handing it another store clears it.
    """

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[bytes, _IssuerCredential] = OrderedDict()
        self._trust: TrustStore | None = None
        self.hits = 0
        self.misses = 0

    def get(self, digest: bytes, trust: TrustStore) -> _IssuerCredential | None:
        if trust is not self._trust:
            self._entries.clear()
            self._trust = trust
            return None
        entry = self._entries.get(digest)
        if entry is None:
            self.misses += 1
            return None
        self._entries.move_to_end(digest)
        self.hits += 1
        return entry

    def put(self, entry: _IssuerCredential, trust: TrustStore) -> None:
        if trust is not self._trust:
            self._entries.clear()
            self._trust = trust
        self._entries[entry.digest] = entry
        if len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


class _Evaluation:
    """Accumulates check results and failures while one presentation is evaluated."""

    __slots__ = ("checks", "failures", "warnings")

    def __init__(self) -> None:
        self.checks: dict[str, CheckResult] = dict.fromkeys(CHECKS, "skipped")
        self.failures: dict[str, str] = {}
        self.warnings: list[str] = []

    def ok(self, check: str) -> None:
        if self.checks[check] != "fail":
            self.checks[check] = "ok"

    def fail(self, check: str | None, reason: str, detail: str) -> None:
        if check is not None:
            self.checks[check] = "fail"
        self.failures.setdefault(reason, detail)

    def first_failure(self) -> tuple[str, str | None]:
        if not self.failures:
            return GRANTED, None
        reason = min(self.failures, key=_RANK.__getitem__)
        return reason, self.failures[reason]


def _format_failure(reason: str, detail: str) -> Decision:
    checks: dict[str, CheckResult] = dict.fromkeys(CHECKS, "skipped")
    checks["format"] = "fail"
    return Decision(False, reason, checks, detail=detail)


def _check_issuer(sign1: Sign1, trust: TrustStore) -> tuple[bytes | None, str | None, str | None]:
    """Issuer signature (spec 1): returns (kid, failing reason or None, detail)."""
    kid = sign1.kid()
    kid_bytes = kid if type(kid) is bytes else None
    alg = sign1.alg
    if not is_supported_alg(alg):
        return kid_bytes, "unsupported_alg", f"alg {alg!r} in the protected header is not supported"
    if kid is None:
        return None, "unknown_issuer", "no kid in either header"
    if kid is KID_INVALID:
        return None, "unknown_issuer", "kid is not a byte string"
    anchors = trust.lookup(kid_bytes)  # type: ignore[arg-type]
    if not anchors:
        return kid_bytes, "unknown_issuer", f"kid {kid_bytes.hex()} is not in the trust store"  # type: ignore[union-attr]
    message = sign1.to_be_signed()
    for anchor in anchors:
        if verify_signature(alg, anchor.public_key, sign1.signature, message):
            return kid_bytes, None, None
    return kid_bytes, "bad_issuer_signature", f"signature does not verify under kid {kid_bytes.hex()}"  # type: ignore[union-attr]


# signature_reason of an entry whose issuer signature has not been checked yet.
_UNCHECKED = "unchecked"


def _issuer_credential(
    credential_bytes: bytes,
    sign1: Sign1 | None,
    trust: TrustStore,
    cache: CredentialCache | None,
    in_presentation: bool,
) -> _IssuerCredential:
    """Parse an issuer credential (or find it in the cache). The issuer signature is checked
    later by :func:`_finish_issuer_check`, so that a decision's Python work runs ahead of
    both its signature checks rather than between them: right after OpenSSL has run, the
    CPU's caches hold its tables, not the interpreter's (measured with `gate-reader bench
    verify`: a first-seen decision went from ~216 to ~200 us). Raises CoseFormatError when
    the bytes are not a COSE_Sign1."""
    # The same bytes read as a static pass or inside a presentation differ in whether cnf
    # is required, so the role is part of the key.
    digest = hashlib.sha256(credential_bytes).digest() + (b"P" if in_presentation else b"S")
    if cache is not None:
        cached = cache.get(digest, trust)
        if cached is not None:
            return cached
    if sign1 is None:
        sign1 = parse_sign1(credential_bytes)
    try:
        claims_map = loads(sign1.payload)
    except CborError as exc:
        claims = CredentialClaims(problems=[f"payload is not CBOR ({exc})"])
    else:
        claims = parse_credential_claims(claims_map, require_cnf=in_presentation)
    holder_key = _holder_public_key(claims.holder_key) if claims.holder_key is not None else None
    return _IssuerCredential(sign1, claims, digest, None, _UNCHECKED, None, holder_key)


def _finish_issuer_check(entry: _IssuerCredential, trust: TrustStore, cache: CredentialCache | None) -> None:
    """Check the issuer signature of a credential not seen before, and remember it."""
    if entry.signature_reason is not _UNCHECKED:
        return
    entry.kid, entry.signature_reason, entry.signature_detail = _check_issuer(entry.sign1, trust)
    if cache is not None:
        cache.put(entry, trust)


# SubjectPublicKeyInfo DER of a P-256 key up to its uncompressed point (SEQUENCE, the
# id-ecPublicKey and prime256v1 OIDs, BIT STRING header, 0x04). Loading DER is ~2 us
# faster per first-seen decision than from_encoded_point; both check the point is on the
# curve.
_P256_SPKI_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d03010703420004")


def _holder_public_key(key: HolderKey) -> Any:
    """The holder's key as a cryptography object, or False if it is not a valid point."""
    try:
        if key.kty == KTY_EC2:
            return load_der_public_key(_P256_SPKI_PREFIX + key.x + key.y)  # type: ignore[operator]
        return ed25519.Ed25519PublicKey.from_public_bytes(key.x)
    except (ValueError, TypeError):
        return False


def _check_validity(ev: _Evaluation, claims: CredentialClaims, clock: Clock, policy: Policy) -> None:
    evaluated = False
    if claims.exp is not None:
        evaluated = True
        if clock.trusted and clock.now >= claims.exp:
            ev.fail("validity", "expired", "the credential has expired")
        elif not clock.trusted and clock.floor is not None and claims.exp <= clock.floor:
            ev.fail("validity", "expired", "the credential expired before the trusted time floor")
    if claims.nbf is not None:
        evaluated = True
        if not clock.trusted:
            ev.fail("validity", "clock_untrusted", "nbf cannot be checked without a trusted clock")
        elif clock.now < claims.nbf:
            ev.fail("validity", "not_yet_valid", "the credential is not valid yet (nbf)")
    if claims.iat is not None and clock.trusted:
        evaluated = True
        if claims.iat > clock.now + policy.skew_s:
            ev.fail("validity", "not_yet_valid", "the credential was issued in the future (iat)")
    if evaluated:
        ev.ok("validity")


def _check_status(ev: _Evaluation, claims: CredentialClaims, lists: StatusLists, clock: Clock, policy: Policy) -> None:
    ref = claims.status
    if ref is None:
        return
    status_list = lists.get(ref.uri)
    if status_list is None:
        ev.fail("status", "status_unknown", "no trusted status list for the credential's uri")
        return
    value = status_list.value(ref.idx)
    if value == REVOKED:
        ev.fail("status", "revoked", "the credential is revoked")
    elif value == SUSPENDED:
        ev.fail("status", "suspended", "the credential is suspended")
    elif value != VALID:
        where = "past the end of the list" if value is None else f"holds unknown value {value}"
        ev.fail("status", "status_unknown", f"status index {where}")
    elif not clock.trusted:
        ev.fail("status", "clock_untrusted", "list staleness cannot be checked without a trusted clock")
    elif status_list.is_stale(clock.now, policy.max_age_s):
        if policy.on_stale == "allow":
            ev.warnings.append("status list is stale; granted because the policy accepts stale lists")
            ev.ok("status")
        else:
            ev.fail("status", "status_stale", "the status list is stale")
    else:
        ev.ok("status")


# Value kind of each presentation key in the common shape (spec 2).
_PRESENTATION_KINDS = {1: "bstr", 2: "uint", 3: "bstr", 4: "bstr", 5: "tstr"}


def _split_common_presentation(payload: bytes) -> dict[Any, Any] | None:
    """The presentation map as nearly every holder writes it -- keys from 1..5 in rising
    order, a byte string credential and nonce, an unsigned iat, a text gate id -- split by
    hand; None for anything else, which the CBOR decoder then decides. Like the COSE split
    in cose.py it saves a general decode right after OpenSSL ran (~4 us a decision), and
    what it accepts the decoder accepts with the same result (tested against it)."""
    try:
        head = payload[0]
        if head >> 5 != 5 or not 3 <= head & 0x1F <= 5:
            return None
        out: dict[Any, Any] = {}
        pos, last_key = 1, 0
        for _ in range(head & 0x1F):
            key = payload[pos]
            kind = _PRESENTATION_KINDS.get(key)
            if kind is None or key <= last_key:
                return None
            pos, last_key = pos + 1, key
            if kind == "uint":
                info = payload[pos]
                if info < 24:
                    value, pos = info, pos + 1
                elif info in (0x1A, 0x1B):
                    size = 4 if info == 0x1A else 8
                    value, pos = int.from_bytes(payload[pos + 1 : pos + 1 + size], "big"), pos + 1 + size
                else:
                    return None
            else:
                raw, pos = definite_bstr(payload, pos, 3 if kind == "tstr" else 2)
                if raw is None:
                    return None
                value = raw.decode("utf-8") if kind == "tstr" else raw
            out[key] = value
    except (IndexError, UnicodeDecodeError):
        return None
    return out if pos == len(payload) else None


def _parse_presentation(payload: dict[Any, Any], nfc: bool) -> tuple[float, bytes]:
    """Presentation fields (spec 2): returns (iat, nonce or rnonce); ValueError if ill-shaped."""
    iat = numeric_date(payload.get(PRESENTATION_IAT))
    if iat is None:
        raise ValueError("presentation iat missing or not a NumericDate")
    if nfc:
        nonce = payload.get(PRESENTATION_RNONCE)
        if type(nonce) is not bytes or len(nonce) != 16:
            raise ValueError("presentation rnonce missing or not 16 bytes")
    else:
        nonce = payload.get(PRESENTATION_NONCE)
        if type(nonce) is not bytes or not 8 <= len(nonce) <= 32:
            raise ValueError("presentation nonce missing or not 8..32 bytes")
    if PRESENTATION_GATE in payload and type(payload[PRESENTATION_GATE]) is not str:
        raise ValueError("presentation gate id is not text")
    return iat, nonce


def decide_cose(
    cose_bytes: bytes,
    *,
    clock: Clock,
    trust: TrustStore,
    lists: StatusLists,
    policy: Policy = DEFAULT_POLICY,
    challenge: bytes | None = None,
    replay: ReplayMemory | None = None,
    cache: CredentialCache | None = None,
) -> Decision:
    """Decide on the COSE bytes of a presentation or static pass (spec 2.1 step 5 onwards).
    ``challenge`` is the NFC rnonce the gate sent; None for a QR or scanner read."""
    nfc = challenge is not None
    try:
        outer = parse_sign1(cose_bytes)
        outer_payload = _split_common_presentation(outer.payload)
        if outer_payload is None:
            outer_payload = loads(outer.payload)
    except (CoseFormatError, CborError) as exc:
        return _format_failure("malformed", str(exc))
    if type(outer_payload) is not dict:
        return _format_failure("malformed", "COSE payload is not a map")
    first = outer_payload.get(PRESENTATION_CREDENTIAL)
    is_presentation = type(first) is bytes
    if not is_presentation and type(first) is not str:
        return _format_failure("malformed", "COSE payload is neither a presentation nor a credential")
    try:
        if is_presentation:
            iat, nonce = _parse_presentation(outer_payload, nfc)
            credential = _issuer_credential(first, None, trust, cache, True)
        else:
            credential = _issuer_credential(cose_bytes, outer, trust, cache, False)
    except (ValueError, CoseFormatError) as exc:
        return _format_failure("malformed", str(exc))

    ev = _Evaluation()
    ev.ok("format")
    claims = credential.claims
    if claims.problems:
        ev.fail("claims", "malformed", "; ".join(claims.problems))
    else:
        ev.ok("claims")
    _check_validity(ev, claims, clock, policy)

    if is_presentation:
        if nfc:
            if nonce == challenge:
                ev.ok("freshness")
            else:
                ev.fail("freshness", "challenge_mismatch", "the answer does not carry the challenge sent")
        else:
            _check_qr_freshness(ev, iat, clock, policy)
            if replay is not None and claims.cti is not None and replay.seen(claims.cti, nonce, clock.now):
                ev.fail("freshness", "replayed", "this code was already used")
    elif not policy.allow_static:
        ev.fail(None, "static_not_allowed", "static passes are not allowed on this reader")

    _check_status(ev, claims, lists, clock, policy)
    if policy.groups and not policy.groups.intersection(claims.groups):
        ev.fail(None, "not_authorized", "none of the credential's groups may pass this reader")

    # The two signature checks last, back to back (see _issuer_credential).
    _finish_issuer_check(credential, trust, cache)
    if credential.signature_reason is None:
        ev.ok("issuer_signature")
    else:
        ev.fail("issuer_signature", credential.signature_reason, credential.signature_detail or "")
    if is_presentation:
        _check_holder(ev, credential, outer)

    reason, detail = ev.first_failure()
    granted = reason == GRANTED
    if granted and is_presentation and not nfc and replay is not None and claims.cti is not None:
        replay.remember(claims.cti, nonce, iat + policy.window_s)
    return Decision(
        granted,
        reason,
        ev.checks,
        subject=claims.sub,
        issuer=claims.iss,
        kid=credential.kid,
        assurance="high" if is_presentation else "static",
        credential_hash=hashlib.sha256(claims.cti).hexdigest()[:16] if claims.cti is not None else None,
        detail=detail,
        warnings=tuple(ev.warnings),
    )


def _check_holder(ev: _Evaluation, credential: _IssuerCredential, presentation: Sign1) -> None:
    key = credential.claims.holder_key
    if key is None:
        return  # no usable cnf: the claims check already failed
    public_key = credential.holder_key
    expected_alg = ALG_ES256 if key.kty == KTY_EC2 else ALG_EDDSA
    if public_key is False:
        ev.fail("holder_signature", "bad_holder_signature", "the cnf key is not a valid point")
    elif type(presentation.alg) is not int or presentation.alg != expected_alg:  # -7.0 is not -7
        ev.fail("holder_signature", "bad_holder_signature", "the presentation alg does not fit the cnf key")
    elif verify_signature(expected_alg, public_key, presentation.signature, presentation.to_be_signed()):
        ev.ok("holder_signature")
    else:
        ev.fail("holder_signature", "bad_holder_signature", "the holder signature does not verify")


def _check_qr_freshness(ev: _Evaluation, iat: float, clock: Clock, policy: Policy) -> None:
    if not clock.trusted:
        ev.fail("freshness", "clock_untrusted", "QR freshness cannot be checked without a trusted clock")
    elif iat < clock.now - policy.window_s:
        ev.fail("freshness", "presentation_stale", "the code is older than the freshness window")
    elif iat > clock.now + policy.future_skew_s:
        ev.fail("freshness", "presentation_future", "the code was made in the future")
    else:
        ev.ok("freshness")


def decide_text(
    text: str,
    *,
    clock: Clock,
    trust: TrustStore,
    lists: StatusLists,
    policy: Policy = DEFAULT_POLICY,
    prefixes: Sequence[str] = DEFAULT_PREFIXES,
    replay: ReplayMemory | None = None,
    cache: CredentialCache | None = None,
) -> Decision:
    """Decide on a QR or 2D barcode text, exactly as read (spec 2.1)."""
    try:
        cose_bytes = open_text(text, prefixes)
    except EnvelopeError as exc:
        return _format_failure(exc.reason, exc.detail)
    return decide_cose(
        cose_bytes, clock=clock, trust=trust, lists=lists, policy=policy, replay=replay, cache=cache
    )


def decide_nfc(
    response: bytes,
    challenge: bytes,
    *,
    clock: Clock,
    trust: TrustStore,
    lists: StatusLists,
    policy: Policy = DEFAULT_POLICY,
    cache: CredentialCache | None = None,
) -> Decision:
    """Decide on the bytes an NFC holder answered to ``challenge`` (spec 2.2)."""
    if len(response) > MAX_NFC_BYTES:
        return _format_failure("too_large", f"NFC answer longer than {MAX_NFC_BYTES} bytes")
    return decide_cose(
        response, clock=clock, trust=trust, lists=lists, policy=policy, challenge=challenge, cache=cache
    )


@dataclass(frozen=True, slots=True)
class Verifier:
    """The pieces a gate decides with, bundled for callers that decide many times."""

    trust: TrustStore
    lists: StatusLists
    policy: Policy = DEFAULT_POLICY
    prefixes: tuple[str, ...] = DEFAULT_PREFIXES
    cache: CredentialCache | None = field(default_factory=CredentialCache)

    def text(self, text: str, clock: Clock, replay: ReplayMemory | None = None) -> Decision:
        return decide_text(
            text, clock=clock, trust=self.trust, lists=self.lists, policy=self.policy,
            prefixes=self.prefixes, replay=replay, cache=self.cache,
        )

    def nfc(self, response: bytes, challenge: bytes, clock: Clock) -> Decision:
        return decide_nfc(
            response, challenge, clock=clock, trust=self.trust, lists=self.lists, policy=self.policy, cache=self.cache
        )
