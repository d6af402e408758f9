"""Fixtures the verifier's tests share: one ES256 issuer per module and a trust store holding
its certificate. A module that needs another issuer (EdDSA, say) defines its own ``issuer``;
``trust`` then holds that one's certificate."""

from __future__ import annotations

import pytest

from reader.gatepass.authority import Issuer
from reader.gatepass.trust import TrustStore, anchors_from_pem


@pytest.fixture(scope="module")
def issuer() -> Issuer:
    return Issuer.generate("ES256")


@pytest.fixture(scope="module")
def trust(issuer: Issuer) -> TrustStore:
    return TrustStore(anchors_from_pem(issuer.certificate_pem, "issuer"))
