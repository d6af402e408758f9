"""The reader's policy after the GatePass decision (reader/gate/policy.py): kinds, lockdown,
groups, schedules, anti-passback, the per-reader gatepass Policy and merging a centre's."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, replace
from datetime import UTC, date, datetime
from typing import Any

import pytest

from reader.gate.policy import (
    PassbackMemory,
    ReaderPolicy,
    Schedule,
    SitePolicy,
    authorize,
    gatepass_policy,
    merge,
    parse_policy_tables,
    parse_window,
    unmatched_readers,
)
from reader.gatepass.legacy import LegacyCard, LegacyList, card_key, decide_legacy
from reader.gatepass.verdict import CHECKS, Clock, Decision, Policy

# 2026-12-22 is a Tuesday.
TUE_1015 = datetime(2026, 12, 22, 10, 15)
SAT_0300 = datetime(2026, 12, 26, 3, 0)
HOLIDAY = date(2026, 12, 25)  # a Friday

SCHEDULES = {
    "office": Schedule("office", (parse_window("mon-fri 07:00-19:00"),)),
    "night-weekend": Schedule("night-weekend", (parse_window("mon-fri 19:00-07:00"),
                                                parse_window("sat,sun 00:00-24:00"))),
    "night": Schedule("night", (parse_window("mon-sun 19:00-07:00"),)),
}


def granted(subject: str | None = "E100", assurance: Any = "high") -> Decision:
    return Decision(
        True, "granted", dict.fromkeys(CHECKS, "ok"), subject, "issuer-a", b"kid1", assurance, b"\x07" * 16,
        None, ("status list is stale; granted because the policy accepts stale lists",),
    )


def site(readers: dict[str, ReaderPolicy] | None = None, **kwargs: Any) -> SitePolicy:
    return SitePolicy(readers=readers or {}, schedules=SCHEDULES, **kwargs)


def run(
    decision: Decision, reader: ReaderPolicy, *, kind: str = "qr", groups: tuple[str, ...] = ("staff",),
    policy: SitePolicy | None = None, when: datetime = TUE_1015, lockdown: bool = False,
    passback: PassbackMemory | None = None, now: float = 1000.0, name: str = "lobby-qr",
) -> Decision:
    return authorize(
        decision, reader_name=name, reader=reader, kind=kind, groups=groups, site=policy or site({name: reader}),
        local_time=when, lockdown=lockdown, passback=passback or PassbackMemory(), now=now,
    )


def assert_refused(decision: Decision, original: Decision, detail: str) -> None:
    assert decision is not original
    assert (decision.granted, decision.reason, decision.detail) == (False, "not_authorized", detail)
    # Everything else the journal shows is the original's.
    kept = ("subject", "issuer", "kid", "assurance", "credential_id", "checks", "warnings")
    assert all(getattr(decision, f) == getattr(original, f) for f in kept)
    assert original.granted and original.reason == "granted"  # the original is left alone


def test_denied_decisions_come_back_unchanged() -> None:
    denied = Decision(False, "expired", dict.fromkeys(CHECKS, "skipped"), detail="the credential has expired")
    strict = ReaderPolicy(kinds=frozenset({"nfc"}), groups=frozenset({"x"}), schedule="office")
    assert run(denied, strict, lockdown=True, when=SAT_0300) is denied


def test_a_granted_decision_passing_every_rule_comes_back_as_it_is() -> None:
    decision = granted()
    assert run(decision, ReaderPolicy(groups=frozenset({"staff"}), schedule="office")) is decision


def test_readers_refuse_kinds_they_do_not_admit() -> None:
    qr_only = ReaderPolicy(kinds=frozenset({"qr"}))
    decision = granted()
    assert_refused(run(decision, qr_only, kind="nfc"), decision, "reader lobby-qr does not admit nfc")
    card = granted("E7", "low")
    assert_refused(run(card, qr_only, kind="legacy", groups=()), card, "reader lobby-qr does not admit legacy")
    assert run(decision, qr_only, kind="qr") is decision


def test_unknown_kinds_and_groups_on_legacy_cards_are_caller_errors() -> None:
    with pytest.raises(ValueError, match="kind must be one of qr, nfc, legacy, not 'bluetooth'"):
        run(granted(), ReaderPolicy(), kind="bluetooth")
    with pytest.raises(ValueError, match="a legacy card carries no groups"):
        run(granted(), ReaderPolicy(legacy_cards=True), kind="legacy", groups=("staff",))


def test_lockdown_admits_only_its_groups_and_never_legacy_cards() -> None:
    policy = site({"lobby-qr": ReaderPolicy()}, lockdown_groups=frozenset({"security", "fire-marshal"}))
    decision = granted()
    assert_refused(run(decision, ReaderPolicy(), policy=policy, lockdown=True), decision,
                   "lockdown: only groups fire-marshal, security pass")
    assert run(decision, ReaderPolicy(), policy=policy, lockdown=True, groups=("staff", "security")) is decision
    card = granted("E7", "low")
    assert_refused(run(card, ReaderPolicy(legacy_cards=True), kind="legacy", groups=(), policy=policy, lockdown=True),
                   card, "lockdown: only groups fire-marshal, security pass; legacy cards never do")
    nobody = site({"lobby-qr": ReaderPolicy()})
    assert_refused(run(decision, ReaderPolicy(), policy=nobody, lockdown=True, groups=("security",)), decision,
                   "lockdown: no credential passes")
    assert run(decision, ReaderPolicy(), policy=policy, lockdown=False) is decision


def test_lockdown_only_refuses_more_it_never_lifts_another_rule() -> None:
    reader = ReaderPolicy(groups=frozenset({"staff", "security"}), schedule="office")
    policy = site({"lobby-qr": reader}, lockdown_groups=frozenset({"security"}))
    decision = granted()
    refused = run(decision, reader, policy=policy, lockdown=True, groups=("security",), when=SAT_0300)
    assert_refused(refused, decision, "schedule office (group security) does not allow Sat 03:00")


def test_reader_groups_refuse_other_groups_and_legacy_cards_which_have_none() -> None:
    reader = ReaderPolicy(groups=frozenset({"it", "ops"}), legacy_cards=True)
    decision = granted()
    assert_refused(run(decision, reader, groups=("staff",)), decision, "reader lobby-qr admits only groups it, ops")
    assert_refused(run(decision, reader, groups=()), decision, "reader lobby-qr admits only groups it, ops")
    card = granted("E7", "low")
    assert_refused(run(card, reader, kind="legacy", groups=()), card,
                   "reader lobby-qr admits only groups it, ops; legacy cards carry none")
    assert run(decision, reader, groups=("staff", "ops")) is decision


def test_the_reader_schedule_applies_to_everyone_without_a_group_schedule() -> None:
    reader = ReaderPolicy(schedule="office")
    decision = granted()
    assert run(decision, reader, when=TUE_1015) is decision
    assert_refused(run(decision, reader, when=SAT_0300), decision,
                   "schedule office (group staff) does not allow Sat 03:00")
    assert_refused(run(decision, reader, when=SAT_0300, groups=()), decision,
                   "schedule office (reader lobby-qr) does not allow Sat 03:00")


def test_group_schedules_pass_when_any_admitted_group_allows_now() -> None:
    reader = ReaderPolicy(schedule="office", group_schedules={"cleaning": "night"})
    decision = granted()
    assert run(decision, reader, groups=("cleaning",), when=SAT_0300) is decision
    assert_refused(run(decision, reader, groups=("cleaning",), when=TUE_1015), decision,
                   "schedule night (group cleaning) does not allow Tue 10:15")
    # Staff falls back to the reader's schedule: either group may open the door.
    assert run(decision, reader, groups=("cleaning", "staff"), when=TUE_1015) is decision
    assert_refused(run(decision, reader, groups=("staff", "cleaning"), when=datetime(2026, 12, 26, 12, 0)),
                   decision, "schedules office (group staff), night (group cleaning) do not allow Sat 12:00")


def test_a_group_the_reader_does_not_admit_never_lifts_a_schedule() -> None:
    # "visitor" has no schedule and no reader schedule applies to it; but this reader
    # admits only cleaning, so the visitor group must not open it outside the night.
    reader = ReaderPolicy(groups=frozenset({"cleaning"}), group_schedules={"cleaning": "night"})
    decision = granted()
    assert_refused(run(decision, reader, groups=("visitor", "cleaning"), when=TUE_1015), decision,
                   "schedule night (group cleaning) does not allow Tue 10:15")
    unrestricted = ReaderPolicy(group_schedules={"cleaning": "night"})
    assert run(decision, unrestricted, groups=("visitor", "cleaning"), when=TUE_1015) is decision


def test_legacy_cards_follow_the_legacy_schedule_else_the_readers() -> None:
    reader = ReaderPolicy(legacy_cards=True, schedule="office", legacy_schedule="night-weekend")
    card = granted("E7", "low")
    assert_refused(run(card, reader, kind="legacy", groups=()), card,
                   "schedule night-weekend (legacy cards) does not allow Tue 10:15")
    assert run(card, reader, kind="legacy", groups=(), when=SAT_0300) is card
    plain = ReaderPolicy(legacy_cards=True, schedule="office")
    assert_refused(run(card, plain, kind="legacy", groups=(), when=SAT_0300), card,
                   "schedule office (reader lobby-qr) does not allow Sat 03:00")


def test_holidays_close_weekday_schedules_and_say_so() -> None:
    reader = ReaderPolicy(schedule="office")
    policy = site({"lobby-qr": reader}, holidays=frozenset({HOLIDAY}))
    decision = granted()
    assert_refused(run(decision, reader, policy=policy, when=datetime(2026, 12, 25, 10, 0)), decision,
                   "schedule office (group staff) does not allow Fri 10:00 (holiday)")


def test_a_schedule_missing_from_the_site_refuses_instead_of_crashing() -> None:
    stray = ReaderPolicy(schedule="nowhere")
    decision = granted()
    assert_refused(run(decision, stray, policy=site()), decision, "schedule nowhere (reader lobby-qr) is not defined")


def test_rules_are_checked_in_their_documented_order() -> None:
    reader = ReaderPolicy(kinds=frozenset({"qr"}), groups=frozenset({"it"}), schedule="office",
                          direction="in", area="lobby")
    policy = site({"lobby-qr": reader}, lockdown_groups=frozenset({"security"}))
    memory = PassbackMemory()
    memory.record("E100", "lobby", "in", 0.0)
    decision = granted()

    def detail(**overrides: Any) -> str | None:
        args: dict[str, Any] = {"kind": "nfc", "lockdown": True, "groups": ("staff",), "when": SAT_0300}
        args.update(overrides)
        return run(decision, reader, policy=policy, passback=memory, now=10.0, **args).detail

    assert detail() == "reader lobby-qr does not admit nfc"
    assert detail(kind="qr") == "lockdown: only groups security pass"
    assert detail(kind="qr", lockdown=False) == "reader lobby-qr admits only groups it"
    assert detail(kind="qr", lockdown=False, groups=("it",)) == "schedule office (group it) does not allow Sat 03:00"
    assert detail(kind="qr", lockdown=False, groups=("it",), when=TUE_1015).startswith("anti-passback:")


# -- anti-passback -----------------------------------------------------------------


ENTRY = ReaderPolicy(direction="in", area="lobby")
EXIT = ReaderPolicy(direction="out", area="lobby")


def test_entering_twice_without_leaving_is_refused_naming_when() -> None:
    memory = PassbackMemory()
    decision = granted()
    assert run(decision, ENTRY, passback=memory, now=100.0) is decision
    memory.record("E100", "lobby", "in", 100.0)  # the daemon records once the door was released
    later = datetime(2026, 12, 22, 10, 15)
    refused = run(decision, ENTRY, passback=memory, now=100.0 + 2 * 3600 + 13 * 60, when=later)
    assert_refused(refused, decision, "anti-passback: already inside area lobby since 08:02")
    assert run(granted("E200"), ENTRY, passback=memory, now=200.0).granted  # someone else


def test_exits_are_never_refused_by_anti_passback() -> None:
    memory = PassbackMemory()
    decision = granted()
    for now in (10.0, 20.0, 30.0):  # leaving twice, or leaving without having entered
        assert run(decision, EXIT, passback=memory, now=now) is decision
        memory.record("E100", "lobby", "out", now)
    memory.record("E100", "lobby", "in", 40.0)
    assert run(decision, EXIT, passback=memory, now=41.0) is decision


def test_leaving_lets_the_subject_enter_again() -> None:
    memory = PassbackMemory()
    memory.record("E100", "lobby", "in", 10.0)
    memory.record("E100", "lobby", "out", 20.0)
    decision = granted()
    assert run(decision, ENTRY, passback=memory, now=30.0) is decision


def test_anti_passback_resets_after_its_time() -> None:
    memory = PassbackMemory()
    memory.record("E100", "lobby", "in", 0.0)
    policy = site({"lobby-qr": ENTRY}, passback_reset_s=600.0)
    decision = granted()
    assert not run(decision, ENTRY, passback=memory, policy=policy, now=599.0).granted
    assert run(decision, ENTRY, passback=memory, policy=policy, now=600.0) is decision


def test_anti_passback_is_per_area_and_only_on_paired_readers() -> None:
    memory = PassbackMemory()
    memory.record("E100", "lobby", "in", 0.0)
    decision = granted()
    assert run(decision, ReaderPolicy(direction="in", area="lab"), passback=memory, now=1.0) is decision
    assert run(decision, ReaderPolicy(direction="in"), passback=memory, now=1.0) is decision
    assert run(decision, ReaderPolicy(area="lobby"), passback=memory, now=1.0) is decision


def test_soft_anti_passback_grants_with_a_warning() -> None:
    memory = PassbackMemory()
    memory.record("E100", "lobby", "in", 0.0)
    policy = site({"lobby-qr": ENTRY}, passback="soft")
    decision = granted()
    result = run(decision, ENTRY, passback=memory, policy=policy, now=60.0, when=TUE_1015)
    assert result.granted and result.reason == "granted"
    assert result.warnings == (*decision.warnings, "anti-passback: already inside area lobby since 10:14 "
                                                   "(soft anti-passback: granted)")


def test_a_decision_without_a_subject_cannot_pass_an_anti_passback_reader() -> None:
    decision = granted(subject=None)
    assert_refused(run(decision, ENTRY), decision, "anti-passback: the credential names no subject to track")


def test_passback_memory_is_bounded_dropping_the_oldest() -> None:
    memory = PassbackMemory(max_entries=3)
    for i in range(5):
        memory.record(f"E{i}", "lobby", "in", float(i))
    assert len(memory) == 3
    assert memory.check("E0", "lobby", "in", 10.0) is None  # forgotten: may enter again
    assert memory.check("E4", "lobby", "in", 10.0) == "anti-passback: already inside area lobby for 0 min"
    memory.record("E2", "lobby", "out", 11.0)  # recording again makes it the youngest
    memory.record("E9", "lobby", "in", 12.0)
    assert memory.check("E2", "lobby", "in", 13.0) is None and memory.check("E3", "lobby", "in", 13.0) is None
    memory.prune(12.0 + 12 * 3600)
    assert len(memory) == 0


def test_passback_memory_refuses_nonsense_settings() -> None:
    with pytest.raises(ValueError):
        PassbackMemory(max_entries=0)
    with pytest.raises(ValueError, match="direction must be 'in' or 'out'"):
        PassbackMemory().record("E1", "lobby", "sideways", 0.0)


# -- the per-reader gatepass Policy ------------------------------------------------


def test_gatepass_policy_takes_the_gate_numbers_and_the_reader_admission() -> None:
    base = Policy(window_s=20, max_age_s=3600, on_stale="allow", allow_static=True, allow_legacy=True)
    reader = ReaderPolicy(groups=frozenset({"staff"}), static_passes=False, legacy_cards=True)
    policy = gatepass_policy(base, reader)
    assert (policy.window_s, policy.max_age_s, policy.on_stale) == (20, 3600, "allow")
    assert (policy.allow_static, policy.allow_legacy, policy.groups) == (False, True, frozenset({"staff"}))
    assert not gatepass_policy(base, replace(reader, kinds=frozenset({"qr"}))).allow_legacy


def test_a_reader_without_the_legacy_kind_gives_the_spec_reason_for_legacy_cards() -> None:
    # The core decides with the reader's gatepass policy: legacy_not_allowed at its place in
    # section 7's order, before anything of the reader's own rules.
    cards = LegacyList(0, 10_000, {card_key("04A1B2C3"): LegacyCard("E7", 9_000)}, b"kid1")
    clock = Clock(1_000.0)
    qr_reader = ReaderPolicy(kinds=frozenset({"qr"}), legacy_cards=True)
    denied = decide_legacy("04A1B2C3", cards, clock=clock, policy=gatepass_policy(Policy(), qr_reader))
    assert denied.reason == "legacy_not_allowed"
    admitted = ReaderPolicy(legacy_cards=True)
    decision = decide_legacy("04A1B2C3", cards, clock=clock, policy=gatepass_policy(Policy(), admitted))
    assert decision.granted and run(decision, admitted, kind="legacy", groups=()) is decision


# -- site policy checks, immutability and merging --------------------------------


@pytest.mark.parametrize(
    ("kwargs", "complaint"),
    [
        ({"readers": {"lobby": ReaderPolicy(schedule="night-shift")}},
         "readers.lobby.schedule: no schedule 'night-shift' (defined: night, night-weekend, office)"),
        ({"readers": {"lobby": ReaderPolicy(group_schedules={"cleaning": "late"})}},
         "readers.lobby.group_schedules.cleaning: no schedule 'late'"),
        ({"readers": {"lobby": ReaderPolicy(legacy_schedule="weekend")}},
         "readers.lobby.legacy_schedule: no schedule 'weekend'"),
        ({"passback": "medium"}, "passback must be 'hard' or 'soft'"),
        ({"passback_reset_s": 0}, "passback_reset_s must be a number of seconds above 0"),
        ({"passback_reset_s": float("inf")}, "passback_reset_s must be"),
        ({"timezone": "Europe"}, "timezone 'Europe' is not a known IANA time zone"),
        ({"readers": {"lobby qr": ReaderPolicy()}}, "a reader name must be"),
        ({"schedules": {"office": SCHEDULES["night"]}}, "schedules.office: must hold the Schedule named 'office'"),
    ],
)
def test_a_site_policy_that_does_not_hold_together_is_refused_by_name(kwargs: dict[str, Any], complaint: str) -> None:
    kwargs.setdefault("schedules", SCHEDULES)
    with pytest.raises(ValueError) as caught:
        SitePolicy(**kwargs)
    assert complaint in str(caught.value)


@pytest.mark.parametrize(
    ("kwargs", "complaint"),
    [
        ({"kinds": frozenset({"qr", "ble"})}, "kinds must be among qr, nfc, legacy"),
        ({"direction": "up"}, "direction must be 'in' or 'out'"),
        ({"area": "the lobby"}, "an area must be"),
        ({"groups": frozenset({""})}, "a group must be"),
        ({"schedule": ""}, "a schedule name must be"),
    ],
)
def test_a_reader_policy_with_impossible_values_is_refused(kwargs: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        ReaderPolicy(**kwargs)


def test_policies_are_immutable_and_do_not_follow_their_sources() -> None:
    source = {"cleaning": "night"}
    reader = ReaderPolicy(group_schedules=source)
    source["cleaning"] = "office"
    assert reader.group_schedules["cleaning"] == "night"
    with pytest.raises(TypeError):
        reader.group_schedules["x"] = "y"  # type: ignore[index]
    readers = {"lobby": reader}
    policy = site(readers)
    readers["other"] = ReaderPolicy()
    assert set(policy.readers) == {"lobby"}
    with pytest.raises(FrozenInstanceError):
        policy.holidays = frozenset()  # type: ignore[misc]


def local_site() -> SitePolicy:
    return SitePolicy(
        readers={
            "lobby-qr": ReaderPolicy(kinds=frozenset({"qr", "nfc"}), static_passes=True, legacy_cards=True,
                                     direction="in", area="lobby", schedule="office"),
            "garage": ReaderPolicy(groups=frozenset({"fleet"})),
        },
        schedules=SCHEDULES, holidays=frozenset({date(2026, 5, 1)}), lockdown_groups=frozenset({"security"}),
        timezone="Europe/Berlin", passback="soft", passback_reset_s=3600.0,
    )


def test_a_central_policy_overrides_admission_and_calendar_but_not_local_hardware() -> None:
    central = parse_policy_tables({
        "readers": {"lobby-qr": {"kinds": ["qr"], "groups": ["staff"], "schedule": "hq-hours"},
                    "elsewhere": {"kinds": ["nfc"]}},
        "schedules": {"hq-hours": {"windows": ["mon-fri 06:00-22:00"]}, "office": {"windows": []}},
        "holidays": {"dates": ["2026-12-25"]},
        "lockdown": {"groups": ["fire-marshal"]},
        "timezone": "Europe/Vienna",
    }, where="central policy/hq.toml")
    local = local_site()
    merged = merge(local, central)
    lobby = merged.readers["lobby-qr"]
    assert (lobby.kinds, lobby.groups, lobby.schedule) == ({"qr"}, {"staff"}, "hq-hours")
    # Local only: static passes, legacy enabling, direction and area.
    assert (lobby.static_passes, lobby.legacy_cards, lobby.direction, lobby.area) == (True, True, "in", "lobby")
    assert merged.readers["garage"] == local.readers["garage"]
    assert "elsewhere" not in merged.readers
    assert unmatched_readers(local, central) == ("elsewhere",)
    assert set(merged.schedules) == {"office", "night", "night-weekend", "hq-hours"}
    assert merged.schedules["office"].windows == ()  # the centre's definition wins
    assert merged.holidays == {date(2026, 12, 25)}  # replaced, not joined
    assert (merged.lockdown_groups, merged.timezone) == ({"fire-marshal"}, "Europe/Vienna")
    assert (merged.passback, merged.passback_reset_s) == ("soft", 3600.0)
    assert merged.origin == "central policy/hq.toml over local"
    assert local.readers["lobby-qr"].schedule == "office"  # the local policy is left as it was


def test_a_central_policy_cannot_enable_legacy_cards_a_reader_refuses_locally() -> None:
    central = parse_policy_tables({"readers": {"garage": {"kinds": ["qr", "nfc", "legacy"]}}}, where="c")
    merged = merge(local_site(), central)
    assert not gatepass_policy(Policy(), merged.readers["garage"]).allow_legacy


def test_a_central_policy_left_out_changes_nothing() -> None:
    local = local_site()
    merged = merge(local, parse_policy_tables({}, where="c"))
    assert (merged.readers, merged.schedules, merged.holidays) == (local.readers, local.schedules, local.holidays)
    assert (merged.lockdown_groups, merged.timezone) == (local.lockdown_groups, local.timezone)


def test_a_central_policy_naming_an_undefined_schedule_is_refused_naming_the_file() -> None:
    central = parse_policy_tables({"readers": {"garage": {"group_schedules": {"fleet": "dawn"}}}},
                                  where="central policy/hq.toml")
    with pytest.raises(ValueError, match=r"^central policy/hq.toml: readers.garage.group_schedules.fleet: "
                                         r"no schedule 'dawn'"):
        merge(local_site(), central)


def test_local_time_follows_the_site_time_zone() -> None:
    policy = SitePolicy(timezone="America/New_York")
    noon_utc = datetime(2026, 12, 22, 12, 0, tzinfo=UTC).timestamp()
    assert policy.local_time(noon_utc).strftime("%a %H:%M") == "Tue 07:00"
