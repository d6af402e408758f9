"""The application's exceptions, and the map of every error the project raises on purpose.

Each package that may not import another has its own root (``drivers`` and
``offline_cache`` never import ``reader``; ``reader.gatepass`` imports nothing else of
``reader``). Leaves also inherit the builtin they resemble, so a caller that knows only
``ValueError`` or ``OSError`` still catches them. A denial is never an exception: it is a
:class:`reader.gatepass.verdict.Decision` with a reason of spec section 7.

::

    GateReaderError                 reader.errors: the application (config, commands)
    +-- ConfigError (ValueError)      a wrong setting, option or file a setting names
    +-- CommandFailed                 a command's own failure, with its exit status
    +-- ControlError (ConnectionError)  the running daemon cannot be reached, or refused
    +-- SiteError                     the demo's (or a benchmark's) simulated site failed
        +-- StepFailed                  a demo step did not get what it expects

    GatePassError (ValueError)      reader.gatepass.errors: the credential core
    +-- CborError                     not one well-formed CBOR item within the limits
    +-- CoseFormatError               not a COSE_Sign1 as GatePass accepts it
    +-- EnvelopeError                 the QR text / NFC bytes fail a format check
    +-- TokenRejected                 a status or legacy list token to be ignored
    +-- TrustStoreError               a trust anchor file that cannot be used
    +-- AuthorityError                the test authority cannot do what was asked

    CacheError                      offline_cache.errors: the store, sync and upload
    +-- StoreError (OSError)          the cache database cannot be used
    |   +-- CacheUnusable               nothing in the file is usable (start_empty may act)
    +-- RollbackRefused (ValueError)  an update would take a list back to an older iat
    +-- SyncError                     a sync failed (``check`` names the failed check)
    +-- UploadError                   an upload batch was not accepted

    DriverError                     drivers.errors: the hardware drivers
    +-- DriverConfigError (ValueError)  a driver setting is wrong
    +-- DeviceUnavailable (OSError)     the device is not there or stopped answering
    +-- DriverTimeout (TimeoutError)    a device did not answer within its bound

The command line (``reader.cli``) turns them into one ``gate-reader CMD: error: ...`` line
in one place: ConfigError and TrustStoreError (and usage errors) exit 2, as a configuration
error; CommandFailed carries the command's own status for its failures (see its ``--help``).
"""

from __future__ import annotations


class GateReaderError(Exception):
    """Root of every error the application (``reader`` outside ``reader.gatepass``) raises
    on purpose. Raised as itself nowhere: its leaves say what went wrong."""


class ConfigError(GateReaderError, ValueError):
    """A configuration or command-line value is wrong: a config file that is not valid TOML,
    a key that is unknown, missing or out of range, a file a key or option names that is
    missing, unreadable, too large or of the wrong kind, a cache path that is a directory, a
    time or duration that does not parse or is out of range, a verify request that is not
    valid. The message names the key path, option or file. Commands exit 2 on it."""


class CommandFailed(GateReaderError):
    """A command could not do its job for a reason that is not a wrong setting: the sync's
    repository failed a check or could not be reached, the collector did not take an upload,
    a benchmark's own sanity check failed. Raised only by ``reader.cli`` modules (services
    return their failures as data); the entry point prints the message as the command's one
    error line and exits with ``code`` (1 unless the command documents another)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class ControlError(GateReaderError, ConnectionError):
    """The running daemon's control socket (``reader.daemon.control``) could not be used: no
    daemon runs (no socket, nothing answers), the socket is not the caller's to use
    (permission), the daemon did not answer in time or answered what is not JSON, or it
    refused the request (its message)."""


class SiteError(GateReaderError):
    """The simulated site of ``gate-reader demo`` and ``bench pipeline`` (``reader.demo``)
    failed: a ``gate-reader`` command it runs exited non-zero, the daemon it started exited or
    sent no READY=1 in time, did not stop, refused a control request, or left a journal whose
    hash chain does not check out. The message says which, with the command's stderr or the
    daemon's last log lines."""


class StepFailed(SiteError):
    """A step of the demo's scenario did not get what it expects from the daemon: another
    decision or reason, no decision in time, a relay that moved where it should not (or did
    not move), door events missing or out of order. The demo then exits 1 naming the step."""
