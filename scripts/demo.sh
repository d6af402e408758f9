#!/usr/bin/env bash
# The main job (README): set up .venv/ if needed, then walk one employee through a gate,
# offline, with the test authority: an issuer, a phone key, a credential with a revocation
# entry, a QR code shown at the gate (also written as a PNG), an NFC tap, and the same
# credential after the centre revoked it. Every step is a real gate-reader command.
# Outputs go to demo-out/ (or $1).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
out=${1:-demo-out}
rm -rf "$out" && mkdir -p "$out"
gr=.venv/bin/gate-reader
uri=https://status.demo.example/lists/1

step() { printf '\n== %s\n' "$*"; }

step "The centre makes an issuer key and certificate (the gate trusts $out/issuer.pem)"
$gr authority issuer --alg ES256 --out "$out" --cn "Demo Ministry Issuer"
step "Alice's phone makes its device key; the centre issues her credential bound to it"
$gr authority holder --alg ES256 --out "$out/alice.key"
$gr authority issue --issuer-key "$out/issuer.key" --issuer-cert "$out/issuer.pem" \
    --holder "$out/alice.key" --sub E2026-0042 --name "Alice Demo" --group lobby \
    --days 365 --status-uri "$uri" --status-idx 42 --out "$out/alice.cwt"
step "The centre publishes a status list: nobody revoked yet"
$gr authority status-list --issuer-key "$out/issuer.key" --issuer-cert "$out/issuer.pem" \
    --uri "$uri" --size 1024 --out "$out/status.cwt"

step "Alice shows a fresh QR code at the gate ($out/alice-qr.png)"
code=$($gr authority present --holder "$out/alice.key" --credential "$out/alice.cwt" --png "$out/alice-qr.png")
$gr verify --trust "$out/issuer.pem" --status "$out/status.cwt" "$code" || true

step "Someone replays a screenshot of that code a minute later"
$gr verify --trust "$out/issuer.pem" --status "$out/status.cwt" \
    --at "$(( $(date +%s) + 60 ))" "$code" || true

step "Alice taps her phone on the NFC reader: the gate sends a fresh challenge"
challenge=$(.venv/bin/python -c 'import secrets; print(secrets.token_hex(16))')
answer=$($gr authority answer --holder "$out/alice.key" --credential "$out/alice.cwt" \
    --rnonce "$challenge" --gate-id demo-gate-1)
$gr verify --trust "$out/issuer.pem" --status "$out/status.cwt" --nfc "$challenge" "$answer" || true

step "The centre revokes Alice's credential; the gate gets the new list"
$gr authority status-list --issuer-key "$out/issuer.key" --issuer-cert "$out/issuer.pem" \
    --uri "$uri" --size 1024 --revoked 42 --out "$out/status.cwt"
code=$($gr authority present --holder "$out/alice.key" --credential "$out/alice.cwt")
$gr verify --trust "$out/issuer.pem" --status "$out/status.cwt" "$code" || true

step "Done: every decision above was made offline from the files in $out/"
