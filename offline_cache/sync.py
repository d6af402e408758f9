"""The gate's TUF client step: refresh metadata and fetch the targets of spec section 5.

Everything TUF promises (signatures, thresholds, rollback, freeze/expiry, mix-and-match,
length and hash of every download, root rotation) is python-tuf's ``ngclient``; this module
only wires it to the gate: a cache directory, a network deadline, the three kinds of target,
and one ``SyncError(check, message)`` per failure so ``gate-reader sync`` can print one line.

What is *not* checked here: the GatePass signatures, ``typ`` and ``iat`` of the tokens. The
caller (reader/) verifies those before storing anything.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import urllib3
from tuf.api import exceptions
from tuf.api.metadata import Metadata, Root, Snapshot, Targets, Timestamp
from tuf.ngclient import Updater, UpdaterConfig
from tuf.ngclient.urllib3_fetcher import Urllib3Fetcher

from offline_cache.errors import SyncError
from offline_cache.watchdog import Watchdog, watched_pool_classes

logger = logging.getLogger(__name__)

USER_AGENT = "gate-reader"
TRUST_TARGET = "trust/issuers.pem"
LEGACY_TARGET = "legacy/cards.cwt"

# One connect retry (a refused connect costs nothing); no read retries: a retried read would
# restart the per-read timeout and stretch the total past the deadline. Each sync makes a
# new pool, so a stale keep-alive connection (the usual reason for read retries) is rare.
_RETRIES = urllib3.Retry(total=5, connect=1, read=0, redirect=3, status=0, other=0)


@dataclass(frozen=True)
class FetchedTargets:
    """The verified targets after a sync: bytes that TUF vouches for (not yet checked
    against the issuer keys), and what the sync did."""

    trust_pem: bytes | None
    status: dict[str, bytes]  # "status/<name>.cwt" -> token bytes
    legacy: bytes | None
    versions: dict[str, int]  # root, timestamp, snapshot, targets after the refresh
    downloaded: list[str]  # target paths fetched over the network this time (others came from the cache)
    sha256: dict[str, str]  # path -> hex, every target above
    policy: bytes | None = None  # the centre's policy/<group>.toml, when asked for and published


class _FetchFailed(exceptions.DownloadError):
    """A network failure the fetcher already classified (``check`` as in SyncError)."""

    def __init__(self, check: str, message: str) -> None:
        super().__init__(message)
        self.check = check


def _network_error(url: str, err: BaseException, timeout_s: float) -> _FetchFailed:
    """Name a urllib3 failure. Order matters: NewConnectionError *is* a
    ConnectTimeoutError in urllib3 2, so a refused connection must be tested first (the stock
    Urllib3Fetcher reports it as a SlowRetrievalError)."""
    if isinstance(err, urllib3.exceptions.MaxRetryError) and err.reason is not None:
        err = err.reason
    if isinstance(err, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ProxyError):
        return _FetchFailed("server unreachable", f"cannot connect to {url}: {_reason(err)}")
    if isinstance(err, urllib3.exceptions.ConnectTimeoutError):
        return _FetchFailed("server unreachable", f"no connection to {url} within {timeout_s:g} s")
    if isinstance(err, urllib3.exceptions.TimeoutError):
        return _FetchFailed("server timeout", f"{url} sent nothing for {timeout_s:g} s")
    if isinstance(err, urllib3.exceptions.ProtocolError):
        return _FetchFailed("connection dropped", f"connection to {url} broke: {_reason(err)}")
    if isinstance(err, urllib3.exceptions.SSLError):
        return _FetchFailed("tls", f"TLS with {url} failed: {_reason(err)}")
    return _FetchFailed("network", f"fetching {url} failed: {_reason(err)}")


def _reason(err: BaseException) -> str:
    """The innermost cause, e.g. 'ConnectionRefusedError' instead of urllib3's wrappers."""
    while err.__cause__ is not None or err.__context__ is not None:
        err = err.__cause__ or err.__context__  # type: ignore[assignment]
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


class _DeadlineFetcher(Urllib3Fetcher):
    """ngclient's urllib3 fetcher with a total deadline for the whole sync.

    The per-read socket timeout alone does not bound a sync: a server dribbling one byte
    every few seconds never trips it. Every read of a body is a ``read1`` (returns what
    arrived, instead of blocking for a full chunk), the deadline is checked before each one,
    and the socket timeout is lowered to the time left. What no check between reads can
    reach (the response head, the TLS handshake) the watchdog ends at the deadline.
    """

    def __init__(self, timeout_s: float, total_timeout_s: float, chunk_size: int = 64 * 1024) -> None:
        super().__init__(socket_timeout=timeout_s, chunk_size=chunk_size, app_user_agent=USER_AGENT)  # type: ignore[arg-type]
        self._timeout_s = timeout_s
        self._total_s = total_timeout_s
        self._deadline = time.monotonic() + total_timeout_s
        self._watchdog = Watchdog()
        self._watchdog.arm(total_timeout_s)
        self._pools = watched_pool_classes(self._watchdog)
        self.urls: list[str] = []  # every URL requested, in order (the last one names a failure)

    def close(self) -> None:
        self._watchdog.close()

    def _time_left(self, url: str) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0 or self._watchdog.expired:
            raise self._deadline_error(url)
        return min(self._timeout_s, left)

    def _deadline_error(self, url: str) -> _FetchFailed:
        return _FetchFailed("server timeout", f"sync exceeded its {self._total_s:g} s deadline while fetching {url}")

    def _error(self, url: str, err: urllib3.exceptions.HTTPError, timeout: float) -> _FetchFailed:
        """A socket timeout that was cut down to the time left *is* the deadline expiring,
        and so is any failure after the watchdog ended the connection."""
        if self._watchdog.expired:
            return self._deadline_error(url)
        failed = _network_error(url, err, timeout)
        if failed.check == "server timeout" and timeout < self._timeout_s:
            return self._deadline_error(url)
        return failed

    def _fetch(self, url: str) -> Iterator[bytes]:
        timeout = self._time_left(url)
        self.urls.append(url)
        parts = urllib3.util.parse_url(url)
        # ngclient's proxy-aware pool managers, with connections the watchdog can end.
        self._proxy_env.get_pool_manager(parts.scheme, parts.host).pool_classes_by_scheme = self._pools
        try:
            response = self._proxy_env.request(
                "GET",
                url,
                preload_content=False,
                timeout=urllib3.Timeout(connect=timeout, read=timeout),
                retries=_RETRIES,
            )
        except urllib3.exceptions.HTTPError as e:
            raise self._error(url, e, timeout) from e
        if response.status >= 400:
            response.close()
            response.release_conn()
            raise exceptions.DownloadHTTPError(f"HTTP {response.status} for {url}", response.status)
        return self._body(url, response)

    def _body(self, url: str, response: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
        """The body in whatever pieces arrive, checking the deadline between them. A
        response not read to the end is closed, never put back in the pool half-read."""
        complete = False
        try:
            while True:
                timeout = self._time_left(url)
                sock = getattr(response.connection, "sock", None)
                if sock is not None:
                    sock.settimeout(timeout)
                chunk = response.read1(self.chunk_size)
                if self._watchdog.expired:  # a shut-down socket reads as a clean end
                    raise self._deadline_error(url)
                if not chunk:
                    complete = True
                    return
                yield chunk
        except urllib3.exceptions.HTTPError as e:
            raise self._error(url, e, timeout) from e
        finally:
            if not complete:
                response.close()
            response.release_conn()


def _wanted(path: str, policy: str | None = None) -> bool:
    """The targets a gate uses (spec section 5, and its group's policy when it names one);
    anything else in targets.json is ignored."""
    if path in (TRUST_TARGET, LEGACY_TARGET) or (policy is not None and path == policy):
        return True
    name = path.removeprefix("status/")
    return name != path and name.endswith(".cwt") and "/" not in name and len(name) > len(".cwt")


def fetch_targets(
    *,
    metadata_url: str,
    targets_url: str,
    root: bytes,
    cache_dir: Path,
    timeout_s: float = 10.0,
    total_timeout_s: float = 60.0,
    max_target_bytes: int = 64 << 20,
    policy: str | None = None,
) -> FetchedTargets:
    """Refresh the TUF metadata against the pinned ``root`` and return the verified targets.

    Unchanged targets come from ``cache_dir/tuf/targets`` (ngclient checks them against the
    new targets.json), so a sync when nothing changed makes only TUF's metadata requests.
    Raises SyncError(check, one-line message) on any failure; the TUF cache then still holds
    the last verified state (ngclient persists a metadata file only after verifying it).
    ``policy`` names one more target to fetch when published (``policy/<group>.toml``)."""
    tuf_dir = Path(cache_dir) / "tuf"
    metadata_dir, target_dir = tuf_dir / "metadata", tuf_dir / "targets"
    try:
        for d in (tuf_dir, metadata_dir, target_dir):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        raise SyncError("cache directory", _one_line(f"cannot create {e.filename}: {e.strerror}")) from e

    fetcher = _DeadlineFetcher(timeout_s, total_timeout_s)
    try:
        return _refresh_and_fetch(fetcher, metadata_url, targets_url, root, metadata_dir, target_dir, max_target_bytes,
                                  policy)
    finally:
        fetcher.close()  # the watchdog's timer and socket duplicates end with the sync


def _refresh_and_fetch(
    fetcher: _DeadlineFetcher, metadata_url: str, targets_url: str, root: bytes,
    metadata_dir: Path, target_dir: Path, max_target_bytes: int, policy: str | None = None,
) -> FetchedTargets:  # fmt: skip
    try:
        updater = Updater(
            str(metadata_dir),
            metadata_url,
            str(target_dir),
            targets_url,
            fetcher=fetcher,
            config=UpdaterConfig(app_user_agent=USER_AGENT),
            bootstrap=root,
        )
    except (exceptions.RepositoryError, ValueError, TypeError, KeyError) as e:
        raise SyncError("bad root", _one_line(f"the pinned root.json is not usable TUF root metadata: {e}")) from e
    except OSError as e:
        raise SyncError("cache write", _one_line(f"cannot write the TUF cache in {metadata_dir}: {e}")) from e

    stage, current = "metadata", ""
    contents: dict[str, bytes] = {}
    downloaded: list[str] = []
    keep: set[str] = set()
    try:
        updater.refresh()
        versions = {role: _version(metadata_dir, role) for role in (Root.type, Timestamp.type, Snapshot.type)}
        targets_md = Metadata[Targets].from_file(str(metadata_dir / "targets.json"))
        versions[Targets.type] = targets_md.signed.version
        stage = "target"
        for current in sorted(p for p in targets_md.signed.targets if _wanted(p, policy)):
            info = updater.get_targetinfo(current)
            if info is None:  # cannot happen: the path came from the verified targets.json
                raise SyncError("bad metadata", f"{current} is in targets.json but ngclient cannot find it")
            if info.length > max_target_bytes:
                raise SyncError("target too large", f"{current} is {info.length} bytes, limit {max_target_bytes}")
            local = updater.find_cached_target(info)
            if local is None:
                local = updater.download_target(info)
                downloaded.append(current)
            data = Path(local).read_bytes()
            info.verify_length_and_hashes(data)  # what we return is what TUF verified
            contents[current] = data
            keep.add(Path(local).name)
    except SyncError:
        raise
    except Exception as e:
        error = _to_sync_error(e, stage, current, fetcher.urls[-1] if fetcher.urls else metadata_url)
        logger.debug("sync failed (%s)", error.check, exc_info=True)
        raise error from e

    _prune(target_dir, keep)
    result = FetchedTargets(
        trust_pem=contents.get(TRUST_TARGET),
        status={p: b for p, b in contents.items() if p.startswith("status/")},
        legacy=contents.get(LEGACY_TARGET),
        versions=versions,
        downloaded=downloaded,
        sha256={p: hashlib.sha256(b).hexdigest() for p, b in contents.items()},
        policy=contents.get(policy) if policy is not None else None,
    )
    logger.info(
        "TUF sync: timestamp v%s snapshot v%s targets v%s, %s targets, downloaded %s",
        versions[Timestamp.type],
        versions[Snapshot.type],
        versions[Targets.type],
        len(contents),
        downloaded,
    )
    return result


def _version(metadata_dir: Path, role: str) -> int:
    """The version of a role as ngclient persisted it (only ever after verifying it)."""
    return Metadata.from_file(str(metadata_dir / f"{role}.json")).signed.version


def _prune(target_dir: Path, keep: set[str]) -> None:
    """Drop cached files of targets no longer published (a removed status list must not
    linger on disk); a failure here costs only disk space, so it is logged, not raised."""
    for f in target_dir.iterdir():
        if f.name not in keep:
            with contextlib.suppress(OSError):
                f.unlink()
                logger.debug("removed stale cached target %s", f.name)


def _one_line(text: str) -> str:
    return " ".join(text.split())


_VERSION_CHECKS = (  # python-tuf 7 BadVersionNumberError messages -> check
    ("new timestamp version", "timestamp rollback"),
    ("new snapshot version", "snapshot rollback"),
    ("expected targets.json version", "targets rollback"),
    ("expected root version", "root version"),
    ("expected snapshot version", "snapshot version"),
    ("expected targets", "targets version"),
)


def _to_sync_error(e: Exception, stage: str, target: str, url: str) -> SyncError:
    """Map python-tuf's (and our fetcher's) exceptions to a short check and one line."""
    where = f"target {target}" if stage == "target" else url
    if isinstance(e, _FetchFailed):
        return SyncError(e.check, _one_line(str(e)))
    if isinstance(e, exceptions.DownloadHTTPError):
        return SyncError("server error", _one_line(str(e)))
    if isinstance(e, exceptions.DownloadLengthMismatchError):
        if stage == "target":
            return SyncError("target hash", _one_line(f"{where} is longer than targets.json says: {e}"))
        return SyncError("metadata too large", _one_line(f"{where}: {e}"))
    if isinstance(e, exceptions.SlowRetrievalError):
        return SyncError("server timeout", _one_line(f"{where}: too slow"))
    if isinstance(e, exceptions.DownloadError):
        return SyncError("network", _one_line(f"{where}: {e}"))
    if isinstance(e, exceptions.ExpiredMetadataError):
        return SyncError("expired metadata", _one_line(f"the repository serves expired metadata: {e}"))
    if isinstance(e, exceptions.BadVersionNumberError):
        text = str(e).lower()
        check = next((c for prefix, c in _VERSION_CHECKS if text.startswith(prefix)), "metadata version")
        return SyncError(check, _one_line(f"refused metadata from {url}: {e}"))
    if isinstance(e, exceptions.UnsignedMetadataError):
        return SyncError("metadata signature", _one_line(f"{url} is not signed by the trusted keys: {e}"))
    if isinstance(e, exceptions.LengthOrHashMismatchError):
        if stage == "target":
            return SyncError("target hash", _one_line(f"{where} does not match its hash in targets.json: {e}"))
        return SyncError("metadata hash", _one_line(f"{url} does not match the length/hash its parent lists: {e}"))
    if isinstance(e, exceptions.RepositoryError):
        return SyncError("bad metadata", _one_line(f"{url}: {e}"))
    if isinstance(e, OSError):
        return SyncError("cache write", _one_line(f"TUF cache: {e}"))
    # A bug, not a state of the network: the traceback goes to the debug log and the one
    # line below, which the caller reports once, names the exception.
    logger.debug("unexpected error during TUF sync", exc_info=e)
    return SyncError("internal error", _one_line(f"{type(e).__name__}: {e}"))
