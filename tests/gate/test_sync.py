"""Which fetched targets a sync applies and which it ignores (spec 3, issue 8 item 2),
checked on verify_fetched directly: every target that passes is applied, every other one
is named with why, and only a repository without usable issuer certificates fails."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from offline_cache.errors import SyncError
from offline_cache.store import Store, SyncUpdate
from offline_cache.sync import FetchedTargets
from reader.gate.sync import verify_fetched
from reader.gatepass.authority import Issuer, build_status_list

A = "https://status.example.gov/lists/a"
B = "https://status.example.gov/lists/b"
NOW = time.time()


def fetched(status: dict[str, bytes], trust: bytes | None = None, legacy: bytes | None = None) -> FetchedTargets:
    return FetchedTargets(trust_pem=trust, status=status, legacy=legacy, versions={}, downloaded=[], sha256={})


@pytest.fixture
def issuer() -> Issuer:
    return Issuer.generate("ES256")


def token(issuer: Issuer, uri: str, iat: float, revoked: tuple[int, ...] = ()) -> bytes:
    return build_status_list(issuer, uri=uri, size=64, values={i: 1 for i in revoked}, iat=int(iat))


def apply(store: Store, update: SyncUpdate) -> list[str]:
    return store.apply_sync(update).written


def test_each_bad_target_is_ignored_with_why_and_the_rest_applied(tmp_path: Path, issuer: Issuer) -> None:
    with Store.open(tmp_path / "c.db", create=True) as store:
        stranger = Issuer.generate("ES256")
        update = verify_fetched(store, fetched({
            "status/a.cwt": token(issuer, A, NOW - 60, revoked=(3,)),
            "status/b.cwt": token(stranger, B, NOW - 60),
            "status/junk.cwt": b"not a token",
            "status/ahead.cwt": token(issuer, "https://x/ahead", NOW + 3600),
        }, trust=issuer.certificate_pem), NOW, 300)  # fmt: skip
        assert [uri for uri, *_ in update.status] == [A]
        why = dict(update.ignored)
        assert sorted(why) == ["status/ahead.cwt", "status/b.cwt", "status/junk.cwt"]
        assert "not trusted" in why["status/b.cwt"] and "ahead of the clock" in why["status/ahead.cwt"]
        assert apply(store, update) == [A]
        assert store.sync_state()["ignored"] == [{"target": t, "reason": r} for t, r in sorted(why.items())]


def test_two_targets_for_one_uri_use_the_newer_and_name_the_other(tmp_path: Path, issuer: Issuer) -> None:
    with Store.open(tmp_path / "c.db", create=True) as store:
        update = verify_fetched(store, fetched({
            "status/a-old.cwt": token(issuer, A, NOW - 600),
            "status/a-new.cwt": token(issuer, A, NOW - 60, revoked=(1,)),
        }, trust=issuer.certificate_pem), NOW, 300)  # fmt: skip
        assert [(uri, iat) for uri, iat, _exp, _raw in update.status] == [(A, int(NOW - 60))]
        assert [target for target, _why in update.ignored] == ["status/a-old.cwt"]
        assert "status/a-new.cwt, which is used" in update.ignored[0][1]


def test_an_equal_iat_with_other_content_keeps_the_held_list_and_says_so(tmp_path: Path, issuer: Issuer) -> None:
    iat = NOW - 60
    with Store.open(tmp_path / "c.db", create=True) as store:
        apply(store, verify_fetched(store, fetched({"status/a.cwt": token(issuer, A, iat)}, issuer.certificate_pem),
                                    NOW, 300))  # fmt: skip
        # The issuer re-signs with a revocation but forgets to move iat: spec 3 keeps the
        # held list, and the gate says why the revocation does not arrive.
        update = verify_fetched(store, fetched({"status/a.cwt": token(issuer, A, iat, revoked=(9,))}), NOW, 300)
        assert update.status == [] and "same iat" in dict(update.ignored)["status/a.cwt"]
        # The same bytes again are simply unchanged, not ignored.
        held = store.status_tokens()[0].raw
        assert verify_fetched(store, fetched({"status/a.cwt": held}), NOW, 300).ignored == []


def test_a_broken_issuer_bundle_is_ignored_while_the_gate_holds_one(tmp_path: Path, issuer: Issuer) -> None:
    with Store.open(tmp_path / "c.db", create=True) as store:
        with pytest.raises(SyncError, match=r"trust/issuers\.pem") as failed:  # none held: nothing can be checked
            verify_fetched(store, fetched({}, trust=b"-----BEGIN CERTIFICATE-----\nbroken\n"), NOW, 300)
        assert failed.value.check == "issuer certificates"
        apply(store, verify_fetched(store, fetched({"status/a.cwt": token(issuer, A, NOW - 600)},
                                                   issuer.certificate_pem), NOW, 300))  # fmt: skip
        update = verify_fetched(store, fetched({"status/a.cwt": token(issuer, A, NOW - 60, revoked=(2,))},
                                               trust=b"garbage"), NOW, 300)  # fmt: skip
        assert update.trust_pem is None and [uri for uri, *_ in update.status] == [A]  # the revocation still lands
        assert [target for target, _why in update.ignored] == ["trust/issuers.pem"]
        assert store.trust_pem() == issuer.certificate_pem


def test_a_bad_legacy_list_is_ignored_and_the_lists_applied(tmp_path: Path, issuer: Issuer) -> None:
    with Store.open(tmp_path / "c.db", create=True) as store:
        update = verify_fetched(store, fetched({"status/a.cwt": token(issuer, A, NOW - 60)}, issuer.certificate_pem,
                                               legacy=b"junk"), NOW, 300)  # fmt: skip
        assert update.legacy is None and [t for t, _why in update.ignored] == ["legacy/cards.cwt"]
        assert [uri for uri, *_ in update.status] == [A]


def test_a_bad_central_policy_is_ignored_and_named_and_a_good_one_stored(tmp_path: Path, issuer: Issuer) -> None:
    """The centre's policy/<group>.toml goes the way of a list: a bad one (not TOML, an
    unknown key, a reader naming a schedule nobody defines) is ignored as if absent and
    named, the rest of the sync applied and the policy held kept; a good one is stored in
    the same transaction and moves the generation, so a running daemon picks it up."""
    from reader.gate.config import parse_config
    from reader.gate.state import site_with_central

    config = parse_config('[gate]\nid = "g"\ngroup = "hq"\n[cache]\npath = "/tmp/c.db"\n'
                          '[[readers]]\nname = "cam"\ndriver = "camera"\ndevice = 0\n')
    target = "policy/hq.toml"
    good = b'[readers.cam]\nschedule = "day"\n[schedules.day]\nwindows = ["mon-sun 06:00-22:00"]\n'
    bad = {
        b"readers = 1 = 2": "not valid TOML",
        b"[readers.cam]\ncolour = 1\n": "readers.cam.colour: unknown key",
        b'[readers.cam]\nschedule = "night"\n': "no schedule 'night'",
        b"\xff\xfe": "not UTF-8",
    }
    with Store.open(tmp_path / "c.db", create=True) as store:
        def sync(policy: bytes | None) -> SyncUpdate:
            targets = FetchedTargets(trust_pem=issuer.certificate_pem, status={"status/a.cwt": token(issuer, A, NOW)},
                                     legacy=None, versions={}, downloaded=[], sha256={}, policy=policy)
            return verify_fetched(store, targets, NOW, 300, policy=target, site=config.site)

        for raw, why in bad.items():
            update = sync(raw)
            assert update.policy is None and target in dict(update.ignored) and why in dict(update.ignored)[target]
        store.apply_sync(update)
        assert site_with_central(store, config.site, config.gate.group) == (config.site, None)
        generation = store.generation()
        assert store.apply_sync(sync(good)).written == [target]
        assert store.generation() == generation + 1
        site, problem = site_with_central(store, config.site, config.gate.group)
        assert problem is None and site.readers["cam"].schedule == "day"
        assert site.origin == f"central {target} over local"
        # A bad one later keeps the good one held; the same one again changes nothing.
        store.apply_sync(sync(b"readers = 1 = 2"))
        assert store.apply_sync(sync(good)).written == [] and store.generation() == generation + 1
        assert site_with_central(store, config.site, config.gate.group)[0].readers["cam"].schedule == "day"
