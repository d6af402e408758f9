"""The parser of the centre-overridable policy tables (reader/gate/policy_tables.py)."""

from __future__ import annotations

import tomllib
from datetime import date, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reader.gate.policy_tables import (
    MAX_GROUPS,
    MAX_HOLIDAYS,
    MAX_POLICY_BYTES,
    MAX_READERS,
    MAX_SCHEDULES,
    MAX_WINDOWS,
    PolicyTables,
    ReaderRules,
    parse_policy_tables,
    parse_policy_toml,
    parse_reader_rules,
)
from reader.gate.schedules import parse_window

EXAMPLE = b"""
timezone = "Europe/Berlin"
[readers.lobby-qr]
kinds = ["qr"]
groups = ["staff"]
schedule = "office"
group_schedules = { cleaning = "night" }
legacy_schedule = "night-weekend"
[readers.garage]
groups = []
[schedules.office]
windows = ["mon-fri 07:00-19:00", "sat 08:00-12:00"]
[schedules.night]
windows = ["mon-fri 19:00-07:00"]
[holidays]
dates = ["2026-12-25", 2026-12-26]
[lockdown]
groups = ["security", "fire-marshal"]
"""


def test_the_documented_example_parses_to_what_it_says() -> None:
    tables = parse_policy_toml(EXAMPLE, where="central policy/hq.toml")
    assert tables.origin == "central policy/hq.toml"
    assert tables.timezone == "Europe/Berlin"
    lobby = tables.readers["lobby-qr"]
    assert lobby == ReaderRules(
        kinds=frozenset({"qr"}), groups=frozenset({"staff"}), schedule="office",
        group_schedules={"cleaning": "night"}, legacy_schedule="night-weekend",
    )
    assert tables.readers["garage"] == ReaderRules(groups=frozenset())  # [] = any group, not "not given"
    assert tables.schedules is not None
    assert tables.schedules["office"].windows == (parse_window("mon-fri 07:00-19:00"), parse_window("sat 08:00-12:00"))
    assert tables.holidays == {date(2026, 12, 25), date(2026, 12, 26)}
    assert tables.lockdown_groups == {"security", "fire-marshal"}


def test_absent_tables_are_none_so_the_local_value_stays() -> None:
    assert parse_policy_tables({}, where="x") == PolicyTables({}, None, None, None, None, "x")
    assert parse_reader_rules({}, "readers.a") == ReaderRules()


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        ({"pins": {}}, "x: pins: unknown key (known: readers, schedules, holidays, lockdown, timezone)"),
        ({"readers": {"lobby": {"device": "/dev/ttyUSB0"}}}, "x: readers.lobby.device: unknown key"),
        ({"readers": {"lobby": {"static_passes": True}}}, "x: readers.lobby.static_passes: unknown key"),
        ({"schedules": {"night": {"windows": [], "note": "?"}}}, "x: schedules.night.note: unknown key"),
        ({"holidays": {"dates": [], "region": "BY"}}, "x: holidays.region: unknown key"),
        ({"lockdown": {"groups": [], "by": "cli"}}, "x: lockdown.by: unknown key"),
    ],
)
def test_unknown_keys_are_refused_with_their_key_path(data: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_policy_tables(data, where="x")
    assert str(caught.value).startswith(complaint)


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        ([], "x: the policy: must be a table"),
        ({"readers": []}, "x: readers: must be a table of reader tables"),
        ({"readers": {"lobby": "qr"}}, "x: readers.lobby: must be a table"),
        ({"readers": {"lobby qr": {}}}, "x: readers.lobby qr: a reader name must be"),
        ({"readers": {"a": {"kinds": ["qr", "bluetooth"]}}}, "x: readers.a.kinds[1]: must be qr, nfc or legacy"),
        ({"readers": {"a": {"kinds": "qr"}}}, "x: readers.a.kinds: must be a list"),
        ({"readers": {"a": {"groups": ["staff", ""]}}}, "x: readers.a.groups[1]: a group must be"),
        ({"readers": {"a": {"groups": ["bell\x07"]}}}, "x: readers.a.groups[0]: a group must be"),
        ({"readers": {"a": {"schedule": 5}}}, "x: readers.a.schedule: a schedule name must be"),
        ({"readers": {"a": {"group_schedules": {"staff": ""}}}}, "x: readers.a.group_schedules.staff: a schedule"),
        ({"readers": {"a": {"group_schedules": ["staff"]}}}, "x: readers.a.group_schedules: must be a table"),
        ({"schedules": {"night": {}}}, "x: schedules.night.windows: missing"),
        ({"schedules": {"night": {"windows": "mon 07:00-08:00"}}}, "x: schedules.night.windows: must be a list"),
        ({"schedules": {"night": {"windows": ["mon 07:00-08:00", "mon 8-9"]}}},
         "x: schedules.night.windows[1]: time '8' is not HH:MM"),
        ({"schedules": {"no/slash": {"windows": []}}}, "x: schedules.no/slash: a schedule name must be"),
        ({"holidays": {}}, "x: holidays.dates: missing"),
        ({"holidays": {"dates": ["2026-02-30"]}}, "x: holidays.dates[0]: '2026-02-30' is not a calendar date"),
        ({"holidays": {"dates": ["20261225"]}}, "x: holidays.dates[0]: must be a date like 2026-12-25"),
        ({"holidays": {"dates": [datetime(2026, 12, 25, 8, 0)]}}, "x: holidays.dates[0]: must be a date"),
        ({"lockdown": {}}, "x: lockdown.groups: missing"),
        ({"lockdown": {"groups": "security"}}, "x: lockdown.groups: must be a list"),
        ({"timezone": "Mars/Olympus"}, "x: timezone: timezone 'Mars/Olympus' is not a known IANA time zone"),
        ({"timezone": 1}, "x: timezone: timezone must be an IANA name"),
    ],
)
def test_wrong_values_are_refused_with_their_key_path(data: Any, complaint: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_policy_tables(data, where="x")
    assert str(caught.value).startswith(complaint)


@pytest.mark.parametrize(
    ("data", "limit"),
    [
        ({"readers": {f"r{i}": {} for i in range(MAX_READERS + 1)}}, f"readers: at most {MAX_READERS}"),
        ({"schedules": {f"s{i}": {"windows": []} for i in range(MAX_SCHEDULES + 1)}},
         f"schedules: at most {MAX_SCHEDULES}"),
        ({"schedules": {"s": {"windows": ["mon 07:00-08:00"] * (MAX_WINDOWS + 1)}}},
         f"schedules.s.windows: at most {MAX_WINDOWS}"),
        ({"holidays": {"dates": ["2026-12-25"] * (MAX_HOLIDAYS + 1)}}, f"holidays.dates: at most {MAX_HOLIDAYS}"),
        ({"lockdown": {"groups": ["g"] * (MAX_GROUPS + 1)}}, f"lockdown.groups: at most {MAX_GROUPS}"),
        ({"readers": {"a": {"groups": ["g"] * (MAX_GROUPS + 1)}}}, f"readers.a.groups: at most {MAX_GROUPS}"),
        ({"readers": {"a": {"group_schedules": {f"g{i}": "s" for i in range(MAX_GROUPS + 1)}}}},
         f"readers.a.group_schedules: at most {MAX_GROUPS}"),
        ({"readers": {"a": {"kinds": ["qr", "qr", "qr", "qr"]}}}, "readers.a.kinds: at most 3"),
    ],
)
def test_oversized_central_policies_are_refused_naming_the_limit(data: dict[str, Any], limit: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_policy_tables(data, where="central policy/hq.toml")
    assert str(caught.value).startswith(f"central policy/hq.toml: {limit}")


def test_the_limits_themselves_are_accepted() -> None:
    tables = parse_policy_tables({
        "readers": {f"r{i}": {"groups": [f"g{j}" for j in range(MAX_GROUPS)]} for i in range(3)},
        "schedules": {"s": {"windows": ["mon 07:00-08:00"] * MAX_WINDOWS}},
    }, where="x")
    assert len(tables.readers["r0"].groups or ()) == MAX_GROUPS


@pytest.mark.parametrize(
    ("raw", "complaint"),
    [
        (b"x" * (MAX_POLICY_BYTES + 1), f"more than the {MAX_POLICY_BYTES} a policy may have"),
        (b"timezone = \"\xff\"", "not UTF-8"),
        (b"[schedules\n", "not valid TOML"),
    ],
)
def test_policy_files_that_are_not_bounded_utf8_toml_are_refused(raw: bytes, complaint: str) -> None:
    with pytest.raises(ValueError, match=r"^central policy/hq\.toml: ") as caught:
        parse_policy_toml(raw, where="central policy/hq.toml")
    assert complaint in str(caught.value)


toml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20) | st.dates()
    | st.sampled_from(["mon-fri 07:00-19:00", "Europe/Berlin", "qr", "legacy", "2026-12-25"]),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["readers", "schedules", "holidays", "lockdown", "timezone", "windows",
                                       "dates", "groups", "kinds", "schedule", "group_schedules", "a", "x y"]),
                      children, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.sampled_from(["readers", "schedules", "holidays", "lockdown", "timezone"]), toml_values))
def test_the_table_parser_refuses_anything_with_a_value_error_only(data: dict[str, Any]) -> None:
    try:
        tables = parse_policy_tables(data, where="x")
    except ValueError as exc:
        assert str(exc).startswith("x: ")
        return
    assert isinstance(tables, PolicyTables)


def test_the_example_is_valid_toml_as_documented() -> None:
    # The module docstring shows the same format: keep both in step.
    from reader.gate import policy_tables

    doc = policy_tables.__doc__ or ""
    block = doc.split(".toml``:\n\n", 1)[1].split("\n\nDecisions", 1)[0]
    text = "\n".join(line[4:] for line in block.splitlines())
    tables = parse_policy_tables(tomllib.loads(text), where="docstring")
    assert tables.readers["lobby-qr"].kinds == {"qr"}
