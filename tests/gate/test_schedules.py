"""Windows, schedules, holidays and time zones (reader/gate/schedules.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reader.gate.schedules import (
    DAYS,
    HOLIDAY,
    Schedule,
    Window,
    day_label,
    describe_time,
    parse_window,
    site_time,
    zone,
)

# 2026-12-21 is a Monday.
MON = date(2026, 12, 21)
NO_HOLIDAYS: frozenset[date] = frozenset()


def at(day: date, hhmm: str) -> datetime:
    hours, minutes = map(int, hhmm.split(":"))
    return datetime(day.year, day.month, day.day, hours, minutes)


def on(weekday: str, hhmm: str) -> datetime:
    return at(MON + timedelta(days=DAYS.index(weekday)), hhmm)


@pytest.mark.parametrize(
    ("text", "days", "start", "end"),
    [
        ("mon-fri 07:00-19:00", {"mon", "tue", "wed", "thu", "fri"}, 420, 1140),
        ("sat,sun 00:00-24:00", {"sat", "sun"}, 0, 1440),
        ("hol 00:00-24:00", {"hol"}, 0, 1440),
        ("mon-fri 19:00-07:00", {"mon", "tue", "wed", "thu", "fri"}, 1140, 420),
        ("fri-mon 10:00-11:30", {"fri", "sat", "sun", "mon"}, 600, 690),  # wraps through the weekend
        ("tue-tue 00:00-00:01", {"tue"}, 0, 1),
        ("mon,wed,hol 08:15-09:45", {"mon", "wed", "hol"}, 495, 585),
    ],
)
def test_window_texts_parse_to_days_and_minutes(text: str, days: set[str], start: int, end: int) -> None:
    assert parse_window(text) == Window(frozenset(days), start, end)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "is not 'DAYS HH:MM-HH:MM'"),
        ("mon", "is not 'DAYS HH:MM-HH:MM'"),
        ("mon 07:00-19:00 extra", "is not 'DAYS HH:MM-HH:MM'"),
        ("mon 07:00", "is not 'DAYS HH:MM-HH:MM'"),
        ("mon 7:00-19:00", "time '7:00' is not HH:MM"),
        ("mon 07:00–19:00", "is not 'DAYS HH:MM-HH:MM'"),  # an en dash, not a hyphen
        ("mon 07:60-19:00", "time '07:60' is not 00:00..23:59"),
        ("mon 25:00-26:00", "time '25:00' is not 00:00..23:59"),
        ("mon 24:00-07:00", "24:00 only as an end"),
        ("mon 07:00-24:01", "time '24:01'"),
        ("mon 07:00-07:00", "starts where it ends"),
        ("xyz 07:00-08:00", "unknown day 'xyz'"),
        ("Mon 07:00-08:00", "unknown day 'Mon'"),
        ("mon,,tue 07:00-08:00", "unknown day ''"),
        ("mon-hol 07:00-08:00", "day range 'mon-hol'"),
        ("mon-fri-sun 07:00-08:00", "day range"),
        ("mon 07:00-19:00" + " " * 80, "at most 80 characters"),
        (None, "a window is a text"),
        (7, "a window is a text"),
    ],
)
def test_malformed_windows_are_refused_saying_what_is_wrong(text: object, complaint: str) -> None:
    with pytest.raises(ValueError, match=None) as caught:
        parse_window(text)
    assert complaint in str(caught.value)


def test_window_start_minute_is_included_and_end_minute_excluded() -> None:
    window = parse_window("mon-fri 07:00-19:00")
    assert not window.contains(on("tue", "06:59"), NO_HOLIDAYS)
    assert window.contains(on("tue", "07:00"), NO_HOLIDAYS)
    assert window.contains(on("tue", "18:59"), NO_HOLIDAYS)
    assert not window.contains(on("tue", "19:00"), NO_HOLIDAYS)
    assert not window.contains(on("sat", "12:00"), NO_HOLIDAYS)
    whole = parse_window("sun 00:00-24:00")
    assert whole.contains(on("sun", "00:00"), NO_HOLIDAYS) and whole.contains(on("sun", "23:59"), NO_HOLIDAYS)


def test_overnight_window_belongs_to_the_day_it_starts_on() -> None:
    night = parse_window("mon-fri 19:00-07:00")
    assert night.contains(on("mon", "19:00"), NO_HOLIDAYS)
    assert night.contains(on("fri", "23:59"), NO_HOLIDAYS)
    assert night.contains(on("sat", "06:59"), NO_HOLIDAYS)  # Friday's night runs into Saturday
    assert not night.contains(on("sat", "07:00"), NO_HOLIDAYS)
    assert not night.contains(on("sat", "19:00"), NO_HOLIDAYS)
    assert not night.contains(on("mon", "06:00"), NO_HOLIDAYS)  # Sunday night is not listed
    assert night.contains(on("tue", "06:00"), NO_HOLIDAYS)
    assert not night.contains(on("wed", "12:00"), NO_HOLIDAYS)


def test_a_holiday_counts_as_hol_only() -> None:
    thursday_holiday = frozenset({MON + timedelta(days=3)})
    office = Schedule("office", (parse_window("mon-fri 07:00-19:00"),))
    assert office.allows(on("thu", "10:00"), NO_HOLIDAYS)
    assert not office.allows(on("thu", "10:00"), thursday_holiday)
    assert day_label(MON + timedelta(days=3), thursday_holiday) == HOLIDAY
    open_holidays = Schedule("office", (*office.windows, parse_window("hol 09:00-12:00")))
    assert open_holidays.allows(on("thu", "10:00"), thursday_holiday)
    assert not open_holidays.allows(on("thu", "13:00"), thursday_holiday)
    night = parse_window("mon-fri 19:00-07:00")
    # The holiday's own night is not a weekday night, nor is the morning after it...
    assert not night.contains(on("thu", "20:00"), thursday_holiday)
    assert not night.contains(on("fri", "06:00"), thursday_holiday)
    # ...but the night before it runs into the holiday's morning as it started.
    assert night.contains(on("thu", "06:00"), thursday_holiday)


def test_a_schedule_without_windows_allows_never() -> None:
    assert not Schedule("closed", ()).allows(on("mon", "12:00"), NO_HOLIDAYS)


@pytest.mark.parametrize("name", ["Europe", "../etc/passwd", "/etc/passwd", "Europe/Nowhere", "", "a\x00b",
                                  "Europe/Berlin ", "tzdata/__init__.py", 5])
def test_unknown_or_path_like_time_zones_are_refused(name: object) -> None:
    with pytest.raises(ValueError, match="timezone"):
        zone(name)


def test_site_time_is_the_zone_wall_clock() -> None:
    noon_utc = datetime(2026, 7, 1, 10, 0, tzinfo=UTC).timestamp()
    assert site_time(noon_utc, "Europe/Berlin").strftime("%H:%M") == "12:00"  # CEST, UTC+2
    winter = datetime(2026, 1, 5, 10, 0, tzinfo=UTC).timestamp()
    assert site_time(winter, "Europe/Berlin").strftime("%H:%M") == "11:00"
    assert site_time(winter, None).tzinfo is not None


def test_times_are_described_without_the_process_locale() -> None:
    assert describe_time(on("tue", "10:15")) == "Tue 10:15"
    assert describe_time(on("fri", "08:00"), frozenset({MON + timedelta(days=4)})) == "Fri 08:00 (holiday)"


windows = st.tuples(
    st.frozensets(st.sampled_from((*DAYS, HOLIDAY)), min_size=1),
    st.integers(0, 1439),
    st.integers(0, 1440),
).filter(lambda t: t[1] != t[2]).map(lambda t: Window(*t))


@given(windows)
def test_a_window_written_out_parses_back_to_itself(window: Window) -> None:
    assert parse_window(str(window)) == window


@given(st.text(max_size=100))
def test_window_parser_refuses_any_text_with_a_value_error_only(text: str) -> None:
    try:
        window = parse_window(text)
    except ValueError:
        return
    assert isinstance(window, Window)


@given(windows, st.integers(0, 60 * 24 * 14 - 1))
def test_an_overnight_window_is_its_evening_and_the_next_morning(window: Window, minute: int) -> None:
    if window.start_min < window.end_min:
        return
    when = datetime(2026, 12, 21) + timedelta(minutes=minute)
    evening = Window(window.days, window.start_min, 1440)
    yesterday = when - timedelta(days=1)
    morning_of_listed_night = day_label(yesterday.date(), NO_HOLIDAYS) in window.days and (
        when.hour * 60 + when.minute < window.end_min
    )
    assert window.contains(when, NO_HOLIDAYS) == (evening.contains(when, NO_HOLIDAYS) or morning_of_listed_night)
