"""The credential core's errors: one root, :class:`GatePassError`, so that ``reader.gatepass``
stands alone (it imports nothing else of ``reader``) and a caller can catch everything it
raises on purpose in one clause. The root is a ``ValueError``: each of these says that some
bytes, a file or an argument is not what GatePass accepts.

A denial is never one of these: :func:`reader.gatepass.decide.decide_text` and its siblings
turn every format failure into a :class:`reader.gatepass.verdict.Decision` with a reason.
These reach callers that parse or build on their own (the sync job, the authority, tests).
``reader/errors.py`` draws the whole tree of the project.
"""

from __future__ import annotations


class GatePassError(ValueError):
    """Root of every error ``reader.gatepass`` raises on purpose."""


class CborError(GatePassError):
    """The bytes are not exactly one well-formed CBOR item within the decoder's limits:
    truncated or trailing data, reserved encodings, invalid UTF-8, duplicate map keys,
    nesting deeper than ``max_depth`` or more than ``max_items`` items
    (:func:`reader.gatepass.cbor.loads`)."""


class CoseFormatError(GatePassError):
    """The bytes are not a COSE_Sign1 as GatePass accepts it (spec section 1): not exactly
    one CBOR item, another tag or nesting, a protected header that is not an empty bstr or
    an encoded map, an unprotected header that is not a map, or a payload that is not a bstr
    (:func:`reader.gatepass.cose.parse_sign1`)."""


class EnvelopeError(GatePassError):
    """The text or NFC bytes fail one of the format checks of spec 2.1/2.2
    (:func:`reader.gatepass.envelope.open_text`).

    ``reason`` is ``malformed`` (unknown prefix, bad base45, bad zlib) or ``too_large``
    (text over 4096 characters, inflated data over 64 KiB, NFC response over 4096 bytes)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class TokenRejected(GatePassError):
    """A status list or legacy card list token is to be ignored (spec 3 and 4): wrong typ or
    alg (both must be protected), kid missing (from the protected header, for a legacy card
    list) or untrusted, bad signature, malformed claims, a list that does not inflate within
    bounds, or an iat ahead of a trusted clock (:mod:`reader.gatepass.statuslist`,
    :mod:`reader.gatepass.legacy`)."""


class TrustStoreError(GatePassError):
    """A trust anchor file cannot be used (:mod:`reader.gatepass.trust`): unreadable or
    larger than its bound, no certificate or public key in it, a block that does not parse,
    a private key where only public material belongs, or a key that would prove nothing (an
    Ed25519 point of small order or not canonically encoded, an RSA key under 2048 bits or
    with an exponent other than 65537). The message names the file and block. The command
    line treats it as a configuration error (exit 2)."""


class AuthorityError(GatePassError):
    """A request to the test authority (:mod:`reader.gatepass.authority`) cannot be met: an
    unknown algorithm name, a key file that is not the kind expected, a holder key that
    GatePass cannot bind (only ES256 and EdDSA), or an argument out of range (a status value
    wider than the list's bits). ``gate-reader authority`` prints it as its one error line
    (exit 2)."""
