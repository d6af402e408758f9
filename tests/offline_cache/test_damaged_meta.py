"""Numbers the store keeps in its ``meta`` table and reads back (the time floor, the generation
counter, the upload times), as a person editing the file or a bad disk could leave them: text,
negative, NaN, infinite, absurdly large, a BLOB. Each is refused with a StoreError naming the
key, what it holds and the command that writes it again, never a bare ValueError/TypeError
from float()/int(), and never guessed at; the write path that owns each value repairs it."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from offline_cache.errors import StoreError
from offline_cache.store import Store, SyncUpdate

# (NaN cannot be kept: SQLite stores it as NULL, which reads as "no value", as it should)
DAMAGED = ["abc", "", "1e999", -1, -0.5, float("inf"), float("-inf"), 1e300, 2**63 - 1, b"\x00\x01"]
A = "https://gates.example/status/a"


def _set(store: Store, key: str, value: Any) -> None:
    # as a person with the sqlite3 shell would: straight into the table
    store.connection.execute("UPDATE meta SET value = ? WHERE key = ?", (value, key))


READS: dict[str, tuple[Callable[[Store], Any], str]] = {  # key: (the getter, the recovery it names)
    "time_floor": (lambda s: s.time_floor(), "gate-reader sync"),
    "generation": (lambda s: s.generation(), "gate-reader sync"),
    "upload_last_attempt": (lambda s: s.upload_state(), "gate-reader upload"),
    "upload_last_success": (lambda s: s.upload_state(), "gate-reader upload"),
}


@pytest.mark.parametrize("key", sorted(READS))
@pytest.mark.parametrize("value", DAMAGED, ids=repr)
def test_damaged_meta_numbers_are_refused_naming_the_key_and_the_recovery(store: Store, key: str,
                                                                          value: Any) -> None:
    if key.startswith("upload_"):
        store.record_upload(1000.0, None)  # the keys exist once an upload was tried
    _set(store, key, value)
    getter, recovery = READS[key]
    with pytest.raises(StoreError) as caught:
        getter(store)
    message = str(caught.value)
    assert f"meta.{key} holds " in message and recovery in message and str(store.path) in message
    assert len(message) < 400  # an edited value may be long: it is cut, not echoed whole


@pytest.mark.parametrize("value", [0, 1.5, 1_800_000_000, 253_402_300_799])
def test_usable_meta_times_read_back_as_floats(store: Store, value: float) -> None:
    _set(store, "time_floor", value)
    assert store.time_floor() == float(value)


def test_a_long_damaged_value_is_cut_in_the_message(store: Store) -> None:
    _set(store, "time_floor", "9" * 5000 + "x")
    with pytest.raises(StoreError, match=r"holds '9{30,40}\.\.\., not a time"):
        store.time_floor()


@pytest.mark.parametrize("value", DAMAGED, ids=repr)
def test_a_damaged_time_floor_is_written_again_by_the_next_floor(store: Store, value: Any) -> None:
    _set(store, "time_floor", value)
    assert store.time_floor(damaged=math.inf) == math.inf  # sync's view: the clock untrusted for now
    store.apply_sync(SyncUpdate(None, [(A, 1500.0, None, b"a")], None, {}, 1500.0, 2000.0))
    assert store.time_floor() == 1500.0 and store.meta("time_floor_source") == "sync"
    _set(store, "time_floor", value)
    store.raise_time_floor(1200.0, "ntp")  # below nothing: a damaged floor is no floor to keep
    assert store.time_floor() == 1200.0


@pytest.mark.parametrize("value", ["abc", -3, 2.5, None, 2**63 - 1], ids=repr)
def test_a_damaged_generation_is_written_again_by_the_next_sync(store: Store, value: Any) -> None:
    store.apply_sync(SyncUpdate(b"PEM", [], None, {}, None, 1000.0))
    _set(store, "generation", value)
    result = store.apply_sync(SyncUpdate(None, [], None, {}, None, 2_000_000.0))  # nothing new offered
    # written again to a value no counter reaches, so a reader that held the old one reloads
    assert result.generation == store.generation() == 2_000_000


def test_a_damaged_upload_time_is_written_again_by_the_next_upload(store: Store) -> None:
    store.record_upload(1000.0, None)
    _set(store, "upload_last_attempt", "yesterday")
    _set(store, "upload_last_success", float("nan"))
    store.record_upload(1100.0, None)
    assert store.upload_state() == {"last_attempt": 1100.0, "last_success": 1100.0, "last_error": None}


def test_an_edited_upload_error_is_shown_not_raised(store: Store) -> None:
    store.record_upload(1000.0, "collector down")
    _set(store, "upload_last_error", b"\xff\xfe")
    assert store.upload_state()["last_error"] == repr(b"\xff\xfe")
