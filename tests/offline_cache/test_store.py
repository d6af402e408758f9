"""The cache database (offline_cache/store.py, schema.py): opening, refusing bad files,
migrations, all-or-nothing sync updates, the change marker, the time floor, the replay
memory, and a sync process killed with SIGKILL while it writes."""

# Over ~400 lines on purpose: one class's transactions, rollbacks and crash safety, on shared fixtures.

from __future__ import annotations

import hashlib
import os
import random
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from offline_cache import schema
from offline_cache.errors import RollbackRefused, StoreError
from offline_cache.store import Store, SyncUpdate

from . import apply_worker

A = "https://gates.example/status/a"
B = "https://gates.example/status/b"


def update(
    status: list[tuple[str, float, float | None, bytes]] | None = None,
    *,
    trust: bytes | None = None,
    legacy: tuple[float, float | None, bytes] | None = None,
    versions: dict[str, int] | None = None,
    floor: float | None = None,
    at: float = 1000.0,
) -> SyncUpdate:
    return SyncUpdate(trust, status or [], legacy, versions or {}, floor, at)


def snapshot(store: Store) -> tuple:
    """Everything sync wrote, for before/after comparisons."""
    return (
        store.trust_pem(),
        store.status_tokens(),
        store.legacy_token(),
        store.generation(),
        store.time_floor(),
        store.sync_state(),
    )


# -- opening, creating, refusing ------------------------------------------------------


def test_create_open_reopen(db_path: Path) -> None:
    with Store.open(db_path, create=True) as store:
        epoch = store.epoch_id
        assert len(epoch) == 32 and int(epoch, 16) >= 0
        assert store.generation() == 0 and store.time_floor() is None
        assert store.status_tokens() == [] and store.legacy_token() is None and store.trust_pem() is None
        conn = store.connection
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
        assert store.meta("schema_version") == schema.SCHEMA_VERSION
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(db_path.parent.stat().st_mode) == 0o700
    with Store.open(db_path) as again:
        assert again.epoch_id == epoch  # made once, with the database
    with Store.open(db_path, create=True) as again:
        assert again.epoch_id == epoch
    other = db_path.with_name("other.db")
    with Store.open(other, create=True) as fresh:
        assert fresh.epoch_id != epoch


def test_close_is_idempotent_and_closed_store_refuses(store: Store) -> None:
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.generation()


def test_opening_an_up_to_date_database_does_not_import_sqlite_utils(store: Store) -> None:
    code = (
        "import sys\nfrom offline_cache.store import Store\n"
        f"Store.open({str(store.path)!r}).close()\nprint('sqlite_utils' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_missing_file(db_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist") as info:
        Store.open(db_path)
    assert str(db_path) in str(info.value)
    assert not db_path.exists() and not db_path.parent.exists()  # nothing created behind our back


@pytest.mark.parametrize("content", [b"garbage " * 1000, os.urandom(8192), b"SQLite format 3\x00" + b"\xff" * 200])
def test_garbage_file(db_path: Path, content: bytes) -> None:
    db_path.parent.mkdir()
    db_path.write_bytes(content)
    for create in (False, True):
        with pytest.raises(StoreError) as info:
            Store.open(db_path, create=create)
        assert str(db_path) in str(info.value)
    assert db_path.read_bytes() == content  # never "repaired" by overwriting


def _real_database(db_path: Path, megabytes: int = 1) -> int:
    """A cache with a few lists and journal rows, closed (so the WAL is checkpointed away)."""
    with Store.open(db_path, create=True) as store:
        blob = os.urandom(megabytes * 1_000_000)
        store.apply_sync(update([(A, 10, None, blob), (B, 10, None, blob[:1000])], trust=b"PEM"))
        store.connection.executemany(
            "INSERT INTO replay VALUES (?, ?, ?)", [(os.urandom(16), os.urandom(16), 1e9) for _ in range(2000)]
        )
    assert not db_path.with_name(db_path.name + "-wal").exists()
    return db_path.stat().st_size


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.02, 200])
def test_truncated_database(db_path: Path, keep: float) -> None:
    size = _real_database(db_path)
    os.truncate(db_path, int(size * keep) if keep < 1 else int(keep))
    with pytest.raises(StoreError) as info:
        Store.open(db_path)
    assert str(db_path) in str(info.value)


def test_damaged_page_is_caught_at_open(db_path: Path) -> None:
    """A zeroed page in the middle of the file (here inside a list's overflow chain) reads
    fine until a decision needs it; ``PRAGMA quick_check`` at open finds it."""
    size = _real_database(db_path)
    with open(db_path, "r+b") as file:
        file.seek(size // 4096 // 2 * 4096)
        file.write(bytes(4096))
    Store.open(db_path, check=False).close()
    with pytest.raises(StoreError, match="corrupt") as info:
        Store.open(db_path)
    assert str(db_path) in str(info.value) and "\n" not in str(info.value)


def test_truncated_to_nothing_is_empty_not_a_fresh_cache(db_path: Path) -> None:
    _real_database(db_path)
    os.truncate(db_path, 0)
    with pytest.raises(StoreError, match="empty") as info:
        Store.open(db_path)  # the daemon must not silently start from nothing
    assert str(db_path) in str(info.value)
    with Store.open(db_path, create=True) as store:  # unless asked to (start empty)
        assert store.generation() == 0


def test_someone_elses_database(db_path: Path) -> None:
    db_path.parent.mkdir()
    with sqlite3.connect(db_path) as conn:
        conn.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY)")
    with pytest.raises(StoreError, match="not a gate-reader cache"):
        Store.open(db_path, create=True)
    with sqlite3.connect(db_path) as conn:
        assert [row[0] for row in conn.execute("SELECT name FROM sqlite_master")] == ["photos"]


def test_schema_newer_than_code_is_refused(store: Store, db_path: Path) -> None:
    store.connection.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (schema.SCHEMA_VERSION + 1,))
    store.close()
    with pytest.raises(StoreError, match="newer than this program") as info:
        Store.open(db_path)
    assert str(db_path) in str(info.value)


def _add_note_column(db) -> None:  # a v2 migration, as a later issue would add one
    db["status_lists"].add_column("note", str)
    db["meta"].insert({"key": "note_default", "value": "none"})


def _broken_migration(db) -> None:
    db["half_done"].create({"id": int}, pk="id")
    raise RuntimeError("migration bug")


def test_migration_path_keeps_data_and_is_all_or_nothing(store: Store, db_path: Path) -> None:
    """A v1 database (the current one) migrated by a v2 list: data kept, version 2. A
    migration that fails half-way leaves the database exactly at v1."""
    store.apply_sync(update([(A, 10, None, b"list")]))
    conn = store.connection
    with pytest.raises(RuntimeError, match="migration bug"):
        schema.migrate(conn, db_path, [*schema.MIGRATIONS, _broken_migration])
    assert store.meta("schema_version") == 1
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'half_done'").fetchone()[0] == 0
    assert schema.migrate(conn, db_path, [*schema.MIGRATIONS, _add_note_column]) == 1
    assert store.meta("schema_version") == 2 and store.meta("note_default") == "none"
    assert [token.raw for token in store.status_tokens()] == [b"list"]
    assert schema.migrate(conn, db_path, [*schema.MIGRATIONS, _add_note_column]) == 2  # nothing to do
    with pytest.raises(StoreError, match="newer"):
        schema.migrate(conn, db_path)  # the v1 program meets the v2 database


def test_empty_file_is_created_when_asked(db_path: Path) -> None:
    db_path.parent.mkdir()
    db_path.touch()  # v0: an empty file, e.g. made by an installer
    with pytest.raises(StoreError, match="empty"):
        Store.open(db_path)
    with Store.open(db_path, create=True) as store:
        assert store.meta("schema_version") == schema.SCHEMA_VERSION


# -- sync updates ---------------------------------------------------------------------


def test_apply_sync_stores_everything(store: Store) -> None:
    result = store.apply_sync(
        update(
            [(A, 10, 99, b"a10"), (B, 20, None, b"b20")],
            trust=b"PEM1",
            legacy=(5, 50, b"legacy5"),
            versions={"root": 1, "timestamp": 7, "snapshot": 3, "targets": 2},
            floor=20,
        )
    )
    assert sorted(result.written) == sorted([A, B, "legacy"]) and result.unchanged == []
    assert result.trust_changed and result.generation == 1 == store.generation()
    tokens = {token.uri: token for token in store.status_tokens()}
    assert tokens[A].raw == b"a10" and tokens[A].iat == 10 and tokens[A].exp == 99
    assert tokens[A].sha256 == hashlib.sha256(b"a10").hexdigest() and tokens[A].stored_at == 1000
    assert store.held_iat(B) == 20 and store.held_iat("https://nope") is None
    legacy = store.legacy_token()
    assert legacy is not None and (legacy.uri, legacy.iat, legacy.exp, legacy.raw) == ("legacy", 5, 50, b"legacy5")
    assert store.trust_pem() == b"PEM1" and store.time_floor() == 20
    state = store.sync_state()
    assert state["last_attempt"] == state["last_success"] == 1000 and state["last_error"] is None
    assert state["tuf_versions"] == {"root": 1, "timestamp": 7, "snapshot": 3, "targets": 2}


def test_rollback_refused_applies_nothing(store: Store) -> None:
    store.apply_sync(update([(A, 10, None, b"a10"), (B, 10, None, b"b10")], trust=b"PEM1", legacy=(5, 50, b"L5")))
    store.record_sync_failure("earlier failure", 1500)
    before = snapshot(store)
    newer_a_older_b = update(
        [(A, 20, None, b"a20"), (B, 9, None, b"b9")],
        trust=b"PEM2",
        legacy=(6, 60, b"L6"),
        versions={"timestamp": 9},
        floor=1e9,
        at=2000,
    )
    with pytest.raises(RollbackRefused, match=B):
        store.apply_sync(newer_a_older_b)
    assert snapshot(store) == before  # not A, not trust, not the floor, not the sync state
    with pytest.raises(RollbackRefused, match="legacy"):
        store.apply_sync(update([(A, 20, None, b"a20")], legacy=(4, 50, b"L4"), at=2000))
    assert snapshot(store) == before


def test_equal_iat_and_same_bytes_are_not_rewritten(store: Store) -> None:
    first = store.apply_sync(update([(A, 10, None, b"a10"), (B, 10, None, b"b10")], trust=b"PEM", at=1000))
    assert first.generation == 1
    same_iat = (B, 10, None, b"other bytes, same iat")
    again = store.apply_sync(update([(A, 10, None, b"a10"), same_iat], trust=b"PEM", at=2000))
    assert again.written == [] and sorted(again.unchanged) == sorted([A, B]) and not again.trust_changed
    assert again.generation == 1 == store.generation()  # nothing changed: no new generation
    tokens = {token.uri: token for token in store.status_tokens()}
    assert tokens[B].raw == b"b10"  # spec 3: on equal iat keep the one held
    assert tokens[A].stored_at == tokens[B].stored_at == 1000  # not rewritten
    assert store.sync_state()["last_success"] == 2000  # but the successful sync is recorded
    newer = store.apply_sync(update([(A, 11, None, b"a11"), (B, 10, None, b"b10")], at=3000))
    assert newer.written == [A] and newer.unchanged == [B] and newer.generation == 2
    assert store.apply_sync(update(trust=b"PEM2")).generation == 3  # trust alone counts


def test_newest_of_duplicate_uris_wins(store: Store) -> None:
    result = store.apply_sync(update([(A, 10, None, b"a10"), (A, 12, None, b"a12"), (A, 11, None, b"a11")]))
    assert result.written == [A] and store.status_tokens()[0].raw == b"a12"


def test_unknown_tuf_role_is_a_programming_error(store: Store) -> None:
    with pytest.raises(ValueError, match="unknown roles"):
        store.apply_sync(update(versions={"mirror": 1}))


def test_sync_failure_keeps_data(store: Store) -> None:
    store.apply_sync(update([(A, 10, None, b"a10")], trust=b"PEM", versions={"timestamp": 4}, at=1000))
    data = snapshot(store)[:5]
    store.record_sync_failure("timestamp rollback: version 3 < 4\nsecond line", 2000)
    state = store.sync_state()
    assert state["last_attempt"] == 2000 and state["last_success"] == 1000
    assert state["last_error"] == "timestamp rollback: version 3 < 4 second line"  # one line
    assert state["tuf_versions"]["timestamp"] == 4
    assert snapshot(store)[:5] == data
    store.apply_sync(update(at=3000))
    assert store.sync_state()["last_error"] is None


# -- new data is cheap to notice --------------------------------------------------------


def test_second_store_notices_a_commit(store: Store, db_path: Path) -> None:
    with Store.open(db_path) as daemon:
        version, generation = daemon.data_version(), daemon.generation()
        rounds = 10_000
        started = time.perf_counter()
        for _ in range(rounds):
            daemon.data_version()
        per_poll_us = (time.perf_counter() - started) / rounds * 1e6
        print(f"\ndata_version() poll: {per_poll_us:.2f} us")
        assert daemon.data_version() == version  # nothing happened yet

        store.apply_sync(update([(A, 10, None, b"a10")]))
        assert daemon.data_version() != version
        assert daemon.generation() == generation + 1
        assert [token.raw for token in daemon.status_tokens()] == [b"a10"]

        version = daemon.data_version()
        store.record_sync_failure("server unreachable", 2000)  # a commit, but no new data
        assert daemon.data_version() != version and daemon.generation() == generation + 1


def test_reading_sees_one_update_whole(store: Store, db_path: Path) -> None:
    store.apply_sync(update([(A, 10, None, b"a10"), (B, 10, None, b"b10")], trust=b"PEM1"))
    with Store.open(db_path) as daemon, daemon.reading():
        first = daemon.status_tokens()
        store.apply_sync(update([(A, 11, None, b"a11"), (B, 11, None, b"b11")], trust=b"PEM2"))
        assert daemon.trust_pem() == b"PEM1" and daemon.status_tokens() == first and daemon.generation() == 1
    assert daemon.path == store.path


# -- trusted time and replay memory ---------------------------------------------------


def test_time_floor_never_lowers(store: Store) -> None:
    store.raise_time_floor(1000, "ntp")
    store.raise_time_floor(900, "ntp")
    assert store.time_floor() == 1000
    store.apply_sync(update(floor=950))
    assert store.time_floor() == 1000
    store.apply_sync(update(floor=1200))
    assert store.time_floor() == 1200 and store.meta("time_floor_source") == "sync"
    store.raise_time_floor(1300.5, "ntp")
    assert store.time_floor() == 1300.5 and store.meta("time_floor_source") == "ntp"
    with pytest.raises(ValueError):
        store.raise_time_floor(float("inf"), "ntp")


def test_replay_memory(store: Store) -> None:
    cti, nonce = os.urandom(16), os.urandom(16)
    assert not store.replay_seen(cti, nonce, 100)
    store.replay_remember(cti, nonce, keep_until=130)
    assert store.replay_seen(cti, nonce, 100) and store.replay_seen(cti, nonce, 130)
    assert not store.replay_seen(cti, os.urandom(16), 100) and not store.replay_seen(os.urandom(16), nonce, 100)
    store.replay_remember(cti, nonce, keep_until=120)  # never shortens
    assert store.replay_seen(cti, nonce, 125)
    store.replay_remember(cti, nonce, keep_until=140)  # extends
    store.replay_remember(b"other", b"pair", keep_until=110)
    assert store.replay_prune(now=135) == 1
    assert store.replay_seen(cti, nonce, 135) and not store.replay_seen(cti, nonce, 141)
    assert store.replay_prune(now=141) == 1 and store.replay_prune(now=1e9) == 0


# -- kill -9 while sync applies ---------------------------------------------------------


def _last(progress: Path, word: str) -> int:
    numbers = [int(line.split()[1]) for line in progress.read_text().splitlines() if line.startswith(word + " ")]
    return numbers[-1] if numbers else -1


def _check_after_kill(db_path: Path, progress: Path) -> int:
    """The database opens, is intact, and holds exactly one complete update: return it."""
    with Store.open(db_path) as store:  # quick_check included
        assert store.connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        with store.reading():
            n = store.generation() - 1  # one update, one generation
            tokens = {token.uri: token for token in store.status_tokens()}
            legacy = store.legacy_token()
            trust, floor, state = store.trust_pem(), store.time_floor(), store.sync_state()
    assert _last(progress, "done") <= n <= _last(progress, "start")
    if n < 0:
        assert tokens == {} and legacy is None and trust is None
        return n
    assert legacy is not None
    tokens["legacy"] = legacy
    assert set(tokens) == set(apply_worker.SIZES)
    for uri, token in tokens.items():
        assert hashlib.sha256(token.raw).hexdigest() == token.sha256, uri
        assert token.raw == apply_worker.expected_raw(uri, n), f"{uri}: not the bytes of update {n}"
        assert token.iat == apply_worker.IAT0 + n and token.stored_at == apply_worker.AT0 + n
    assert trust == apply_worker.expected_trust(n) and floor == apply_worker.IAT0 + n
    assert state["last_success"] == apply_worker.AT0 + n and state["tuf_versions"]["timestamp"] == n + 1
    return n


def test_kill_9_during_apply_never_leaves_a_mix(db_path: Path, tmp_path: Path) -> None:
    kills, deadline = 50, time.monotonic() + 35
    progress = tmp_path / "progress"
    progress.touch()
    rng = random.Random()
    applied: list[int] = []
    lost_in_flight = 0
    for _ in range(kills):
        worker = subprocess.Popen(
            [sys.executable, apply_worker.__file__, str(db_path), str(progress)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
            time.sleep(rng.uniform(0.0, 0.25))
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            if worker.stdout is not None:
                worker.stdout.close()
        assert worker.returncode == -signal.SIGKILL
        n = _check_after_kill(db_path, progress)
        lost_in_flight += n < _last(progress, "start")
        applied.append(n)
        assert time.monotonic() < deadline, "the kill loop is too slow for this machine"
    print(f"\n{kills} kills: {applied[-1] + 1} updates applied; {lost_in_flight} kills landed inside an apply")
    assert applied == sorted(applied) and applied[-1] >= kills  # it did write, and never went back


def test_migrating_does_not_load_numpy(tmp_path: Path) -> None:
    """sqlite-utils would import numpy (installed for opencv), 12 MB of memory for nothing;
    a migration hides it, and numpy stays importable afterwards."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from offline_cache.store import Store\n"
        f"Store.open(Path({str(tmp_path / 'cache.db')!r}), create=True).close()\n"
        "assert 'sqlite_utils' in sys.modules, 'the migration ran'\n"
        "assert 'numpy' not in sys.modules, 'numpy was loaded'\n"
        "import numpy\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
