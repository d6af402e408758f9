"""``gate-reader authority publish`` and ``revoke``: the centre's side of distribution.

``publish`` puts issuer certificates, status lists and the legacy card list into a TUF
repository (offline_cache.publish) that any static web server can serve to the gates.
``revoke`` is the one command an operator runs to revoke (or suspend, or restore) a
credential: it updates the list's state kept in the repository folder, signs a new list
with a newer iat, and publishes it with new targets, snapshot and timestamp metadata.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from reader import authority_cli_args as a
from reader.gatepass.authority import AuthorityError, build_status_list
from reader.gatepass.statuslist import MAX_LIST_BYTES

STATE_DIR = "lists"  # inside the repository folder; not served (only metadata/ and targets/ are)
_VALUES = {"revoke": 1, "suspend": 2, "restore": 0}


def add_actions(actions: Any, action: Any, load_issuer: Any) -> None:
    """Add ``publish`` and ``revoke`` to the authority's actions (``action`` builds one
    parser the way authority_cli does; ``load_issuer`` reads --issuer-key/--issuer-cert)."""
    p = action(
        actions, "publish", _cmd_publish, "publish certificates and lists to a TUF repository",
        "Create (--init) or update a TUF repository folder (root, targets, snapshot, timestamp metadata, "
        "python-tuf layout, consistent snapshots) holding trust/issuers.pem, status/NAME.cwt and "
        "legacy/cards.cwt, ready for any static web server: serve REPO/public/ and nothing else (its "
        "metadata/ and targets/ are the gates' sync URLs). --init makes the four role keys under REPO/keys/ "
        "(mode 0600, beside public/, never served) and REPO/public/metadata/root.json, the file every gate "
        "pins at install. Each run signs new targets, snapshot and timestamp versions.",
        "gate-reader authority publish --repo repo --init --trust keys/issuer.pem --status s1.cwt",
    )
    p.add_argument("--repo", required=True, metavar="DIR", help="the repository folder")
    p.add_argument("--init", action="store_true", help="create the repository and its keys first")
    p.add_argument("--trust", action="append", default=[], metavar="PEM",
                   help="issuer certificates the gates trust; all given are bundled into trust/issuers.pem")
    p.add_argument("--status", action="append", default=[], metavar="FILE",
                   help="a status list token to publish as status/<file name> (repeatable)")
    p.add_argument("--legacy", metavar="FILE", help="the legacy card list token, published as legacy/cards.cwt")
    p.add_argument("--remove", action="append", default=[], metavar="TARGET",
                   help="a target path to withdraw, such as status/old.cwt (repeatable)")
    p.add_argument("--timestamp-only", action="store_true",
                   help="only sign a new timestamp (renew its 1-day expiry); run it daily from a timer")
    p.set_defaults(load_issuer=load_issuer)

    p = action(
        actions, "revoke", _cmd_revoke, "revoke, suspend or restore credentials and publish at once",
        "Change entries of a status list kept in the repository (REPO/lists/NAME.json holds its uri, size, "
        "bits and non-zero entries), sign the list again with a newer iat, and publish it as "
        "status/NAME.cwt with new metadata: the gates deny the credential after their next sync. The first "
        "use of a NAME creates the list and needs --uri and --size.",
        "gate-reader authority revoke --repo repo --issuer-key keys/issuer.key --issuer-cert keys/issuer.pem "
        "--list s1 --idx 42",
    )
    a.add_issuer_options(p)
    p.add_argument("--repo", required=True, metavar="DIR", help="the repository folder (made by publish --init)")
    p.add_argument("--list", required=True, metavar="NAME", help="the list's name: status/NAME.cwt")
    p.add_argument("--idx", action="append", default=[], metavar="IDX[,IDX...]",
                   help="indexes to change: single, comma-separated or ranges A-B (repeatable)")
    change = p.add_mutually_exclusive_group()
    change.add_argument("--suspend", dest="change", action="store_const", const="suspend",
                        help="suspend (value 2, needs a list of 2 or more bits) instead of revoking")
    change.add_argument("--restore", dest="change", action="store_const", const="restore",
                        help="make the entries valid again (value 0)")
    p.add_argument("--uri", help="the list's uri, for a new list (the credentials' --status-uri)")
    p.add_argument("--size", metavar="N", help="entries of a new list")
    p.add_argument("--bits", default="2", metavar="{1,2,4,8}", help="bits per entry of a new list (default 2)")
    p.add_argument("--exp-days", default="7", metavar="D",
                   help="the signed list expires after D days (default 7); gates treat it as stale then")
    p.set_defaults(change="revoke", load_issuer=load_issuer)


def _open_repository(args: argparse.Namespace) -> Any:
    from offline_cache.publish import Repository  # python-tuf loads only for these commands

    repo = Path(args.repo)
    if getattr(args, "init", False):
        return Repository.init(repo)
    if not (repo / "public" / "metadata" / "root.json").exists():
        raise AuthorityError(f"--repo {repo}: no repository there (create one with publish --init)")
    return Repository.open(repo)


def _cmd_publish(args: argparse.Namespace) -> int:
    repo = _open_repository(args)
    if args.timestamp_only:
        version = repo.refresh_timestamp()
        print(f"timestamp: version {version}")
        return 0
    if args.trust:
        repo.put_target("trust/issuers.pem", b"".join(a.read_bytes(path, "--trust") for path in args.trust))
    for path in args.status:
        repo.put_target(f"status/{Path(path).name}", a.read_bytes(path, "--status", MAX_LIST_BYTES))
    if args.legacy:
        repo.put_target("legacy/cards.cwt", a.read_bytes(args.legacy, "--legacy", MAX_LIST_BYTES))
    for target in args.remove:
        repo.remove_target(target)
    versions = repo.publish()
    for role, version in sorted(versions.items()):
        print(f"{role}: version {version}")
    for target, digest in sorted(repo.targets().items()):
        print(f"target: {target} sha256:{digest[:16]}")
    print(f"serve: {Path(args.repo) / 'public'} (only that folder; the keys stay beside it)")
    print(f"pin at install: {Path(args.repo) / 'public' / 'metadata' / 'root.json'}")
    return 0


def _load_state(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    if path.exists():
        state = json.loads(path.read_text())
        if args.uri is not None and args.uri != state["uri"]:
            raise AuthorityError(f"--uri {args.uri} differs from the list's uri {state['uri']}")
        return state
    if args.uri is None or args.size is None:
        raise AuthorityError(f"list {args.list} does not exist yet: give --uri and --size to create it")
    bits = int(a.choice(args.bits, "--bits", ("1", "2", "4", "8")))
    size = a.integer(args.size, "--size", 1, MAX_LIST_BYTES * 8 // bits)
    return {"uri": args.uri, "size": size, "bits": bits, "values": {}, "iat": 0}


def _cmd_revoke(args: argparse.Namespace) -> int:
    if not args.list.replace("-", "").replace("_", "").isalnum():
        raise AuthorityError(f"--list {args.list!r}: letters, digits, '-' and '_' only")
    repo = _open_repository(args)
    state_path = Path(args.repo) / STATE_DIR / f"{args.list}.json"
    state = _load_state(state_path, args)
    value = _VALUES[args.change]
    if value >= 1 << state["bits"]:
        raise AuthorityError(f"a {state['bits']}-bit list cannot hold value {value} (--suspend needs 2 bits)")
    indexes = set(a.index_ranges(args.idx, "--idx", state["size"]))
    if not indexes:
        raise AuthorityError("--idx: give at least one index")
    values = {int(k): v for k, v in state["values"].items()}
    for index in indexes:
        if value:
            values[index] = value
        else:
            values.pop(index, None)
    # A newer iat than any list published before, even within the same second: gates keep
    # the largest iat and ignore an equal one.
    iat = max(int(time.time()), int(state["iat"]) + 1)
    exp = iat + int(a.integer(args.exp_days, "--exp-days", 1, 3650)) * 86_400
    token = build_status_list(args.load_issuer(args), uri=state["uri"], size=state["size"], values=values,
                              iat=iat, bits=state["bits"], exp=exp)
    repo.put_target(f"status/{args.list}.cwt", token)
    versions = repo.publish()
    state.update(values={str(k): v for k, v in sorted(values.items())}, iat=iat)
    state_path.parent.mkdir(parents=True, exist_ok=True)
    a.write_atomic(state_path, json.dumps(state, indent=1).encode())
    print(f"{args.change}: {len(indexes)} entr{'y' if len(indexes) == 1 else 'ies'} of {state['uri']}")
    print(f"list: status/{args.list}.cwt iat {iat}, {sum(1 for v in values.values() if v == 1)} revoked, "
          f"{sum(1 for v in values.values() if v == 2)} suspended")
    print(f"published: targets v{versions.get('targets')}, snapshot v{versions.get('snapshot')}, "
          f"timestamp v{versions.get('timestamp')}")
    return 0
