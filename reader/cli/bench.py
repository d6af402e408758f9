"""``gate-reader bench``: the options of each benchmark, and the benchmark itself
(``reader.bench``) named as ``module:function`` and imported only when it runs, so that
``bench --help`` loads neither OpenCV, nfcpy, pyserial nor TUF. Each prints its figures;
the last line is one JSON object. Timing claims live here, never in timed asserts.
"""

from __future__ import annotations

import argparse
import importlib

#: Each benchmark: what runs it.
KINDS: dict[str, str] = {
    "verify": "reader.bench.verify:run",
    "sync": "reader.bench.cache:run_sync_bench",
    "journal": "reader.bench.cache:run_journal_bench",
    "scanner": "reader.bench.scanner:run",
    "qr": "reader.bench.qr:run",
    "nfc": "reader.bench.nfc:run",
    "pipeline": "reader.bench.pipeline:run",
}


def _run(args: argparse.Namespace) -> int:
    module_name, _, function = KINDS[args.bench].partition(":")
    return int(getattr(importlib.import_module(module_name), function)(args) or 0)


def _kind(kinds: argparse._SubParsersAction, name: str, summary: str, description: str) -> argparse.ArgumentParser:
    parser = kinds.add_parser(name, help=summary, description=description)
    # ``label`` names the benchmark in its error line: "gate-reader bench nfc: error: ...".
    parser.set_defaults(func=_run, label=f"bench {name}")
    return parser


def configure(parser: argparse.ArgumentParser) -> None:
    """Fill in ``gate-reader bench`` and its benchmarks."""
    parser.description = "Measure the project's speed figures and print them; the last line is one JSON object."
    kinds = parser.add_subparsers(dest="bench", metavar="WHAT", required=True)

    p = _kind(
        kinds, "verify", "decisions per second and per-decision latency against the signature floor",
        "Time QR decisions (text in, decision out) for first-seen credentials with ES256 issuer "
        "and ES256 holder keys, and the two raw signature verifications alone (the floor), interleaved in one "
        "run. Then the same for a credential seen before (its issuer check comes from the credential cache). "
        "Prints decisions_per_s, p50_us, p99_us, floor_us and ratio = p50_us / floor_us.",
    )
    p.add_argument("--count", type=int, default=2000, help="decisions per measurement (default %(default)s)")
    p.add_argument("--json", action="store_true", help="print only the JSON object")

    p = _kind(
        kinds, "sync", "sync time and memory for a 1.2M-credential list; no-change sync; revocation latency",
        "Publish a status list covering --entries credentials (--revoked-percent revoked) in a TUF "
        "repository served on loopback, then time 'gate-reader sync' in a child process (wall time and peak "
        "RSS, TUF refresh included); repeat with nothing changed and count the requests; revoke one "
        "credential and measure how long until 'verify --config' denies it with syncs every --interval "
        "seconds; time the status lookup a decision makes.",
    )
    p.add_argument("--entries", type=int, default=1_200_000, help="credentials the list covers (default %(default)s)")
    p.add_argument("--revoked-percent", type=float, default=2.0, help="share revoked (default %(default)s)")
    p.add_argument("--interval", type=float, default=30.0, help="sync period for the latency figure (default 30 s)")
    p.add_argument("--json", action="store_true", help="print only the JSON object")

    p = _kind(
        kinds, "journal", "durable journal appends per second, and 1,000 decisions with upload running",
        "Append journal records one by one (each committed with WAL and synchronous=FULL, durable "
        "across power loss) and report appends per second; then make --decisions QR decisions, each "
        "journaled after it is made, while the uploader sends the journal to a loopback collector in another "
        "thread, and report decisions per second and the per-decision latency with the append.",
    )
    p.add_argument("--appends", type=int, default=2000, help="single appends to time (default %(default)s)")
    p.add_argument("--decisions", type=int, default=1000, help="decisions with upload running (default %(default)s)")
    p.add_argument("--json", action="store_true", help="print only the JSON object")

    p = _kind(
        kinds, "scanner", "serial scanner: line received to presentation emitted (median, p99)",
        "Write --count real GatePass QR texts (ES256 issuer and holder), one line at a time, to a "
        "pty whose other end the serial scanner source reads with pyserial, and time each from the moment the "
        "line's terminator is written to the presentation emitted. Prints median_ms and p99_ms.",
    )
    p.add_argument("--count", type=int, default=500, help="lines to time (default %(default)s)")
    p.add_argument("--json", action="store_true", help="print only the JSON object")

    p = _kind(
        kinds, "qr", "QR decode time (zxing-cpp and zbar), camera end to end, idle camera CPU",
        "Render real GatePass QR presentations into 640x480 and 1280x720 frames and time: the "
        "decode per frame with zxing-cpp and zbar side by side (median, p99), the camera source end to end from "
        "frame read to presentation emitted, and the CPU an idle camera at 15 fps costs (percent of one core). "
        "zbar is skipped, with the reason, where pyzbar or libzbar0 is missing. The last line is one JSON object.",
    )
    p.add_argument("--frames", type=int, default=100, help="frames per decoder and size (default %(default)s)")
    p.add_argument("--codes", type=int, default=20, help="presentations per end-to-end run (default %(default)s)")
    p.add_argument("--idle-seconds", type=float, default=5.0, help="idle camera run length (default %(default)s)")
    p.add_argument("--json", action="store_true", help="print only the JSON object")

    p = _kind(
        kinds, "nfc", "NFC over the udp simulator: activation to presentation emitted (median, p99, APDUs per tap)",
        "Tap --taps times with a GatePass holder whose issuer and device keys are ES256, then as "
        "many with EdDSA ones, on nfcpy's udp driver with the card emulator, and time each tap from the target "
        "found to the presentation emitted. Prints median_ms, p99_ms and apdus_per_tap, overall and per alg; "
        "every presentation must be granted by decide_nfc (checked untimed).",
    )
    p.add_argument("--taps", type=int, default=200, help="taps per algorithm (default %(default)s)")
    p.add_argument("--gate-id", default="bench-gate-01", help="the gate id sent in the challenge")
    p.add_argument("--json", action="store_true", help="print only the JSON object")

    p = _kind(
        kinds, "pipeline", "the daemon: read to relay per source, the tap as felt, READY, RSS, idle CPU, "
        "sustained rate, revocation to refusal",
        "Run the gate daemon on the demo's simulated site. In this process: from each presentation read "
        "(Presentation.read_at) to the mock relay pin's change, first-seen credentials, --count per source (NFC, "
        "camera, scanner, Wiegand), and --taps NFC taps from the phone entering the field (at a random moment of "
        "the reader's poll cycle) to the relay. As a child process (gate-reader run): time to READY=1, RSS after "
        "the start and after --decisions decisions, CPU while idle with NFC polling and the camera at 15 fps, "
        "--rate presentations per second across all sources for --sustained-s seconds (lost, reordered, journal "
        "complete, latency), and revocation to refusal with a sync timer of --sync-interval-s (figures for the "
        "30 s timer derived from the measured parts). The last line is one JSON object (p50_ms and p99_ms: read "
        "to relay).",
    )
    p.add_argument("--count", type=int, default=100,
                   help="presentations per source, read to relay (default %(default)s)")
    p.add_argument("--taps", type=int, default=20, help="NFC taps at a random phase (default %(default)s)")
    p.add_argument("--decisions", type=int, default=10_000, help="decisions before the last RSS (default %(default)s)")
    p.add_argument("--idle-s", type=float, default=10.0, help="idle CPU measurement (default %(default)s s)")
    p.add_argument("--sustained-s", type=float, default=10.0,
                   help="sustained run length (default %(default)s s; the figure of record uses 60)")
    p.add_argument("--rate", type=float, default=50.0, help="sustained presentations per second (default %(default)s)")
    p.add_argument("--revocation-trials", type=int, default=5, help="revocations timed (default %(default)s)")
    p.add_argument("--sync-interval-s", type=float, default=3.0,
                   help="the sync timer's period while timing revocations (default %(default)s s)")
    p.add_argument("--json", action="store_true", help="print only the JSON object")
