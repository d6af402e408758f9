"""The decision of spec section 7: grant or deny, with the first failing reason.

Pure functions of their arguments: the clock, the trust store, the status lists, the
policy and (for a gate, not for a one-shot check) the replay memory are all passed in.
Every check that can be evaluated on the decoded objects is, so a technician sees all of
what is wrong with a credential; the reason is the earliest failure in :data:`REASONS`.
"""

# Over ~400 lines on purpose: one decision pipeline in spec section 7's order (format, issuer, claims, validity,
# holder, freshness, status), read top to bottom; its hot path keeps its helpers in one module's globals.

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import load_der_public_key

from reader.gatepass.cbor import CborError, loads
from reader.gatepass.claims import (
    KTY_EC2,
    MAX_CLAIMS_ITEMS,
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
    ed25519_key_problem,
    is_supported_alg,
    parse_sign1,
    string_span,
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
    "decide_cose",
    "decide_nfc",
    "decide_text",
]

@dataclass(slots=True)
class _IssuerCredential:
    """An issuer credential parsed for one decision, with its issuer check's outcome."""

    sign1: Sign1
    claims: CredentialClaims
    raw: bytes  # the credential's bytes: the cache key
    kid: bytes | None
    signature_reason: str | None  # None when the issuer signature is good; _UNCHECKED before
    signature_detail: str | None
    # A cryptography public key; text saying why not when the cnf key must not be used.
    holder_key: Any = None


# The issuer check's outcome for one credential's bytes: (kid, failing reason or None, detail).
IssuerVerdict = tuple[bytes | None, str | None, str | None]


class CredentialCache:
    """The issuer signature's verdict on credentials already seen, by their bytes (least
    recently used dropped first): a credential shown again skips the issuer's signature
    verification, the one costly step that depends on its bytes and the trust store alone.

    Everything else is evaluated at every presentation: the bytes are parsed again (~10 us),
    validity, holder signature, freshness and status checked. Bound to one trust store:
    handing it another store clears it. Keyed by the bytes themselves rather than a digest
    of them: a dict compares the whole key, so no collision can mix two credentials.

    Why only the verdict, not the parsed credential (as before): a parsed entry held the
    COSE_Sign1 (payload, Sig_structure, header maps), the claims, and the holder's key as an
    OpenSSL EVP_PKEY with its own copy of the curve (~2.1 KB of C heap). Measured with 4,096
    first-seen ES256 credentials (RSS, tests/gatepass/test_credential_cache_memory.py for
    the Python part): ~6.4 KB per entry then, against the bytes and a small tuple now; a
    full cache went from ~26 MB to a few. The price is on a seen-before decision only:
    ``gate-reader bench verify`` seen_before p50 ~105 -> ~140 us (parse, load the cnf key),
    still well under a first-seen decision's ~230 us, whose issuer verification it skips.

    A credential over ``max_credential_bytes`` is decided but not kept. Real ones are
    250-1000 bytes; a hostile QR code can inflate to 64 KiB, and 4096 of those kept would be
    hundreds of MB on a Raspberry Pi. With the cap the cache stays under ~9 MB whatever is
    shown to the gate.
    """

    def __init__(self, max_entries: int = 4096, max_credential_bytes: int = 2048) -> None:
        self.max_entries = max_entries
        self.max_credential_bytes = max_credential_bytes
        # One map for both roles: the issuer signature over the same bytes is the same
        # whether they are read as a static pass or inside a presentation.
        self._verdicts: dict[bytes, IssuerVerdict] = {}
        self._trust: TrustStore | None = None
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._verdicts)

    def _bind(self, trust: TrustStore) -> None:
        self._verdicts.clear()
        self._trust = trust

    def get(self, raw: bytes, trust: TrustStore) -> IssuerVerdict | None:
        if trust is not self._trust:
            self._bind(trust)
        verdict = self._verdicts.pop(raw, None)
        if verdict is None:
            self.misses += 1
            return None
        self._verdicts[raw] = verdict  # back to the young end
        self.hits += 1
        return verdict

    def put(self, raw: bytes, verdict: IssuerVerdict, trust: TrustStore) -> None:
        if len(raw) > self.max_credential_bytes:
            return
        if trust is not self._trust:
            self._bind(trust)
        self._verdicts[raw] = verdict
        if len(self._verdicts) > self.max_entries:
            del self._verdicts[next(iter(self._verdicts))]


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
        if verify_signature(alg, anchor.public_key, sign1.signature, message, anchor.kind):
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
    claims_map: Any = None,
) -> _IssuerCredential:
    """Parse an issuer credential, with the issuer check's verdict when the cache has it.
    Otherwise the issuer signature is checked later by :func:`_finish_issuer_check`, so that
    a decision's Python work runs ahead of both its signature checks rather than between
    them: right after OpenSSL has run, the CPU's caches hold its tables, not the
    interpreter's (measured with `gate-reader bench verify`: a first-seen decision went from
    ~216 to ~200 us). Raises CoseFormatError when the bytes are not a COSE_Sign1.
    ``claims_map`` is the payload when the caller has decoded it already (a static pass's),
    so it is not decoded twice."""
    verdict = cache.get(credential_bytes, trust) if cache is not None else None
    if sign1 is None:
        sign1 = parse_sign1(credential_bytes)
    problem = None
    if claims_map is None:
        try:
            claims_map = loads(sign1.payload, max_items=MAX_CLAIMS_ITEMS)
        except CborError as exc:
            problem = f"payload is not CBOR ({exc})"
    if problem is not None:
        claims = CredentialClaims(problems=[problem])
    else:
        claims = parse_credential_claims(claims_map, require_cnf=in_presentation)
    holder_key = _holder_public_key(claims.holder_key) if claims.holder_key is not None else None
    if verdict is None:
        return _IssuerCredential(sign1, claims, credential_bytes, None, _UNCHECKED, None, holder_key)
    return _IssuerCredential(sign1, claims, credential_bytes, *verdict, holder_key)


def _finish_issuer_check(entry: _IssuerCredential, trust: TrustStore, cache: CredentialCache | None) -> None:
    """Check the issuer signature of a credential not seen before, and remember it."""
    if entry.signature_reason is not _UNCHECKED:
        return
    verdict = _check_issuer(entry.sign1, trust)
    entry.kid, entry.signature_reason, entry.signature_detail = verdict
    if cache is not None:
        cache.put(entry.raw, verdict, trust)


# SubjectPublicKeyInfo DER of a P-256 key up to its uncompressed point (SEQUENCE, the
# id-ecPublicKey and prime256v1 OIDs, BIT STRING header, 0x04). Loading DER is ~2 us
# faster per first-seen decision than from_encoded_point; both check the point is on the
# curve.
_P256_SPKI_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d03010703420004")


def _holder_public_key(key: HolderKey) -> Any:
    """The holder's key as a cryptography object, or text saying why it is not a valid
    point (spec 2: then the presentation is bad_holder_signature)."""
    try:
        if key.kty == KTY_EC2:
            # P-256 has cofactor 1 and OpenSSL checks the point is on the curve: no small
            # subgroup to fall into, and the identity has no uncompressed encoding.
            return load_der_public_key(_P256_SPKI_PREFIX + key.x + key.y)  # type: ignore[operator]
        problem = ed25519_key_problem(key.x)
        if problem is not None:
            return problem  # OpenSSL would verify a forgery under it: see cose.py
        return ed25519.Ed25519PublicKey.from_public_bytes(key.x)
    except (ValueError, TypeError):
        return "not a valid point"


# Each check below returns its result ("ok", "fail" or "skipped") and records what failed in
# ``failures`` (reason -> detail; the first detail of a reason is kept): plain values rather
# than an accumulator object, because this runs on every decision.
Failures = dict[str, str]


def _check_validity(failures: Failures, claims: CredentialClaims, clock: Clock, policy: Policy) -> CheckResult:
    result: CheckResult = "skipped"
    if claims.exp is not None:
        result = "ok"
        if clock.trusted and clock.now >= claims.exp:
            result = "fail"
            failures.setdefault("expired", "the credential has expired")
        elif not clock.trusted and clock.floor is not None and claims.exp <= clock.floor:
            result = "fail"
            failures.setdefault("expired", "the credential expired before the trusted time floor")
    if claims.nbf is not None:
        if result == "skipped":
            result = "ok"
        if not clock.trusted:
            result = "fail"
            failures.setdefault("clock_untrusted", "nbf cannot be checked without a trusted clock")
        elif clock.now < claims.nbf:
            result = "fail"
            failures.setdefault("not_yet_valid", "the credential is not valid yet (nbf)")
    if claims.iat is not None and clock.trusted:
        if result == "skipped":
            result = "ok"
        if claims.iat > clock.now + policy.skew_s:
            result = "fail"
            failures.setdefault("not_yet_valid", "the credential was issued in the future (iat)")
    return result


def _check_status(
    failures: Failures, warnings: list[str], claims: CredentialClaims, lists: StatusLists, clock: Clock, policy: Policy
) -> CheckResult:
    ref = claims.status
    if ref is None:
        return "skipped"
    status_list = lists.get(ref.uri)
    if status_list is None:
        failures.setdefault("status_unknown", "no trusted status list for the credential's uri")
        return "fail"
    value = status_list.value(ref.idx)
    if value == REVOKED:
        failures.setdefault("revoked", "the credential is revoked")
    elif value == SUSPENDED:
        failures.setdefault("suspended", "the credential is suspended")
    elif value != VALID:
        where = "past the end of the list" if value is None else f"holds unknown value {value}"
        failures.setdefault("status_unknown", f"status index {where}")
    elif not clock.trusted:
        failures.setdefault("clock_untrusted", "list staleness cannot be checked without a trusted clock")
    elif not status_list.is_stale(clock.now, policy.max_age_s):
        return "ok"
    elif policy.on_stale == "allow":
        warnings.append("status list is stale; granted because the policy accepts stale lists")
        return "ok"
    else:
        failures.setdefault("status_stale", "the status list is stale")
    return "fail"


def _split_common_presentation(payload: bytes) -> dict[Any, Any] | None:
    """The presentation map as nearly every holder writes it -- the credential (key 1) and
    iat (2) first, then any of nonce (3), rnonce (4) and gate id (5) in rising order; byte
    strings and text as :func:`string_span` takes them, iat in 0, 4 or 8 more bytes -- split
    by hand; None for anything else, which the CBOR decoder then decides. Like the COSE
    split in cose.py it saves a general decode right after OpenSSL ran, and what it accepts
    the decoder accepts with the same result (tested against it)."""
    try:
        count = payload[0] - 0xA0
        if not 3 <= count <= 5 or payload[1] != PRESENTATION_CREDENTIAL:
            return None
        start, end = string_span(payload, 2)
        if end < 0 or payload[end] != PRESENTATION_IAT:
            return None
        out: dict[Any, Any] = {PRESENTATION_CREDENTIAL: payload[start:end]}
        head = payload[end + 1]
        if head < 24:
            out[PRESENTATION_IAT], pos = head, end + 2
        elif head == 0x1A:
            out[PRESENTATION_IAT], pos = int.from_bytes(payload[end + 2 : end + 6], "big"), end + 6
        elif head == 0x1B:
            out[PRESENTATION_IAT], pos = int.from_bytes(payload[end + 2 : end + 10], "big"), end + 10
        else:
            return None
        last_key = PRESENTATION_IAT
        for _ in range(count - 2):
            key = payload[pos]
            if not last_key < key <= PRESENTATION_GATE:
                return None
            # Keys 3 and 4 hold byte strings, key 5 text.
            text = key == PRESENTATION_GATE
            start, end = string_span(payload, pos + 1, 0x60 if text else 0x40)
            if end < 0 or end > len(payload):
                return None
            value = payload[start:end]
            out[key] = value.decode("utf-8") if text else value
            pos, last_key = end, key
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
            # The claims budget: this may be a static pass, whose payload is the claims.
            outer_payload = loads(outer.payload, max_items=MAX_CLAIMS_ITEMS)
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
            credential = _issuer_credential(cose_bytes, outer, trust, cache, False, outer_payload)
    except (ValueError, CoseFormatError) as exc:
        return _format_failure("malformed", str(exc))

    failures: Failures = {}
    warnings: list[str] = []
    claims = credential.claims
    claims_check: CheckResult = "ok"
    if claims.problems:
        claims_check = "fail"
        failures["malformed"] = "; ".join(claims.problems)
    validity_check = _check_validity(failures, claims, clock, policy)

    freshness_check: CheckResult = "skipped"
    if is_presentation:
        if nfc:
            if nonce == challenge:
                freshness_check = "ok"
            else:
                freshness_check = "fail"
                failures.setdefault("challenge_mismatch", "the answer does not carry the challenge sent")
        else:
            freshness_check = _check_qr_freshness(failures, iat, clock, policy)
            if replay is not None and claims.cti is not None and replay.seen(claims.cti, nonce, clock.now):
                freshness_check = "fail"
                failures.setdefault("replayed", "this code was already used")
    elif not policy.allow_static:
        failures.setdefault("static_not_allowed", "static passes are not allowed on this reader")

    status_check = _check_status(failures, warnings, claims, lists, clock, policy)
    if policy.groups and not policy.groups.intersection(claims.groups):
        failures.setdefault("not_authorized", "none of the credential's groups may pass this reader")

    # The two signature checks last, back to back (see _issuer_credential).
    _finish_issuer_check(credential, trust, cache)
    issuer_check: CheckResult = "ok"
    if credential.signature_reason is not None:
        issuer_check = "fail"
        failures.setdefault(credential.signature_reason, credential.signature_detail or "")
    holder_check = _check_holder(failures, credential, outer) if is_presentation else "skipped"

    if failures:
        reason = min(failures, key=_RANK.__getitem__)
        detail: str | None = failures[reason]
    else:
        reason, detail = GRANTED, None
        if is_presentation and not nfc and replay is not None and claims.cti is not None:
            replay.remember(claims.cti, nonce, iat + policy.window_s)
    checks: dict[str, CheckResult] = {
        "format": "ok",
        "issuer_signature": issuer_check,
        "claims": claims_check,
        "validity": validity_check,
        "holder_signature": holder_check,
        "freshness": freshness_check,
        "status": status_check,
    }
    return Decision(
        not failures,
        reason,
        checks,
        claims.sub,
        claims.iss,
        credential.kid,
        "high" if is_presentation else "static",
        claims.cti,
        detail,
        tuple(warnings) if warnings else (),
        claims.groups,
    )


def _check_holder(failures: Failures, credential: _IssuerCredential, presentation: Sign1) -> CheckResult:
    key = credential.claims.holder_key
    if key is None:
        return "skipped"  # no usable cnf: the claims check already failed
    public_key = credential.holder_key
    if key.kty == KTY_EC2:
        expected_alg, kind = ALG_ES256, "P-256"
    else:
        expected_alg, kind = ALG_EDDSA, "Ed25519"
    if type(public_key) is str:
        failures.setdefault("bad_holder_signature", f"the cnf key is {public_key}")
    elif type(presentation.alg) is not int or presentation.alg != expected_alg:  # -7.0 is not -7
        failures.setdefault("bad_holder_signature", "the presentation alg does not fit the cnf key")
    elif verify_signature(expected_alg, public_key, presentation.signature, presentation.to_be_signed(), kind):
        return "ok"
    else:
        failures.setdefault("bad_holder_signature", "the holder signature does not verify")
    return "fail"


def _check_qr_freshness(failures: Failures, iat: float, clock: Clock, policy: Policy) -> CheckResult:
    if not clock.trusted:
        failures.setdefault("clock_untrusted", "QR freshness cannot be checked without a trusted clock")
    elif iat < clock.now - policy.window_s:
        failures.setdefault("presentation_stale", "the code is older than the freshness window")
    elif iat > clock.now + policy.future_skew_s:
        failures.setdefault("presentation_future", "the code was made in the future")
    else:
        return "ok"
    return "fail"


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
