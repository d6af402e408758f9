#!/usr/bin/env bash
# gate-reader's installer: the one command facility staff run on a Pi (docs/install-guide.md).
#
#   sudo scripts/install.sh [--config FILE] [--root-json FILE] [--wheels DIR] [--rtc MODEL] [--no-start]
#   sudo scripts/install.sh --uninstall [--purge]
#   scripts/install.sh --root DIR ...          everything into a scratch tree (tests, staging)
#
# Idempotent: a second run changes no file. An existing /etc/gate-reader/gate-reader.toml (and
# root.json) is never overwritten; an upgrade (a run from a newer source) builds the new
# environment beside the old one, switches over in one rename, and keeps config, keys, cache and
# event journal. Every bad input stops it before it changes anything; a config the new version
# refuses (`gate-reader check-config`: a wrong pin, an unknown driver, a bad URL) stops it once
# the new environment is built (beside the running one, which goes on running) and before
# anything else changes: no user, file, unit, link or boot setting, nothing enabled or started.
set -euo pipefail
umask 022

usage() {
    cat <<'EOF'
usage: install.sh [options]
  --config FILE     the site's config, installed when the gate has none (never over an existing one);
                    needed on a first install: it must have a [door] table (the example's is commented out)
  --root-json FILE  the TUF root.json to pin, installed when the gate has none
  --wheels DIR      install offline from this wheel directory (pip --no-index --find-links DIR);
                    make it with `pip wheel '.[metrics]' -w DIR` on a machine with internet, same
                    CPU and Python
  --rtc MODEL       a real-time clock on I2C: adds dtoverlay=i2c-rtc,MODEL to config.txt (e.g. ds3231);
                    later runs keep it; --rtc none takes it out
  --no-start        install and enable, but do not start or restart anything
  --root DIR        install into DIR instead of / (no systemctl, udevadm or modprobe is run for real;
                    the environment there runs from DIR's paths: for tests and staging, not for images)
  --uninstall       remove the program, units and rules; keep config, cache and event journal
  --purge           with --uninstall: also remove /etc/gate-reader and /var/lib/gate-reader
EOF
}

say() { printf 'install: %s\n' "$*"; }
warn() { printf 'install: WARNING: %s\n' "$*" >&2; }
die() { printf 'install: error: %s\n' "$*" >&2; exit "${2:-1}"; }

SRC=$(cd "$(dirname "$0")/.." && pwd)
ROOT="" SITE_CONFIG="" ROOT_JSON="" WHEELS="" RTC="" START=1 ACTION=install PURGE=0
while [ $# -gt 0 ]; do
    case $1 in
        --root|--config|--root-json|--wheels|--rtc)
            { [ $# -ge 2 ] && [ -n "$2" ]; } || die "$1 needs a value" 2
            case $1 in
                --root) ROOT=$(realpath -m -- "$2") ;;
                --config) SITE_CONFIG=$(realpath -m -- "$2") ;;
                --root-json) ROOT_JSON=$(realpath -m -- "$2") ;;
                --wheels) WHEELS=$(realpath -m -- "$2") ;;
                --rtc) RTC=$2 ;;
            esac
            shift 2 ;;
        --no-start) START=0; shift ;;
        --uninstall) ACTION=uninstall; shift ;;
        --purge) PURGE=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" 2 ;;
    esac
done
[ "$PURGE" = 0 ] || [ "$ACTION" = uninstall ] || die "--purge goes with --uninstall" 2
[ "$ROOT" != / ] || ROOT=""

# Paths on the gate; P prefixes them with --root.
P=$ROOT
OPT=$P/opt/gate-reader
ETC=$P/etc/gate-reader
STATE=$P/var/lib/gate-reader
UNITS=$P/usr/local/lib/systemd/system
DROPINS=$P/etc/systemd/system
CONFIG=$ETC/gate-reader.toml
SYSUSERS=$P/usr/local/lib/sysusers.d/gate-reader.conf
TMPFILES=$P/usr/local/lib/tmpfiles.d/gate-reader.conf
JOURNALD=$P/usr/local/lib/systemd/journald.conf.d/gate-reader.conf
WATCHDOG=$P/usr/local/lib/systemd/system.conf.d/gate-reader-watchdog.conf
UDEV=$P/etc/udev/rules.d/70-gate-reader.rules
MODPROBE=$P/etc/modprobe.d/gate-reader-nfc.conf
BIN_LINK=$P/usr/local/bin/gate-reader
GATE_UNITS=(gate-reader.service gate-reader-sync.service gate-reader-sync.timer)
# The extras every gate gets. metrics: prometheus-client, for [metrics] listen (a loopback
# endpoint). Always installed rather than only when the config sets listen: it is pure Python
# without dependencies, 0.7 MB of an environment of ~300 MB (measured: du of the installed
# prometheus_client in the production environment), and a gate whose config gains `listen` later
# would otherwise meet an environment without it and refuse to start. It opens no port unless
# [metrics] listen is set. From a wheel directory its wheel must be there too (checked first).
EXTRAS=metrics

# LIVE: this machine's own systemd runs, so units are started and rules reloaded for real.
# Otherwise (--root, a chroot, a container) files and enable links are written and the rest is
# reported as not run.
LIVE=0
if [ -z "$ROOT" ] && [ -d /run/systemd/system ]; then LIVE=1; fi
if [ -z "$ROOT" ] && [ "$(id -u)" != 0 ]; then die "run it as root (sudo $0 ...)" 2; fi
AS_ROOT=0
if [ "$(id -u)" = 0 ]; then AS_ROOT=1; fi

not_run() { say "not run here (${ROOT:+--root }${ROOT:-systemd is not running}): $*"; }
# shellcheck source=scripts/install_files.sh
. "$(dirname "$0")/install_files.sh"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

helper() { "$PY" "$SRC/scripts/install_site.py" "$@"; }

# --- checks before anything changes --------------------------------------------------------

pick_python() {  # the distribution's python3 first, as scripts/bootstrap.sh does (PGO/LTO build)
    usable() { "$1" -c 'import sys, ensurepip, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }
    if [ -n "${PYTHON:-}" ]; then
        usable "$PYTHON" || die "PYTHON=$PYTHON is not Python 3.11+ with venv and ensurepip" 2
        PY=$PYTHON
    elif usable /usr/bin/python3; then PY=/usr/bin/python3
    elif usable python3; then PY=python3
    else die "no Python 3.11+ with venv found: sudo apt install python3 python3-venv" 2
    fi
}

preflight() {
    pick_python
    { [ -f "$SRC/pyproject.toml" ] && [ -d "$SRC/systemd" ]; } ||
        die "run the installer from the gate-reader source (the folder with pyproject.toml), not from $SRC" 2
    if [ -n "$WHEELS" ]; then [ -d "$WHEELS" ] || die "--wheels $WHEELS: no such directory" 2; fi
    if [ -n "$SITE_CONFIG" ]; then [ -f "$SITE_CONFIG" ] || die "--config $SITE_CONFIG: no such file" 2; fi
    if [ -n "$ROOT_JSON" ]; then helper check-root-json "$ROOT_JSON" || exit 2; fi

    # The config the gate will run with: the one it has, else the site's, else the example.
    if [ -f "$CONFIG" ]; then
        CONFIG_SOURCE=$CONFIG
        if [ -n "$SITE_CONFIG" ] && ! cmp -s "$SITE_CONFIG" "$CONFIG"; then
            warn "kept the gate's own ${CONFIG#"$ROOT"}; $SITE_CONFIG was NOT installed (move the old one away first to replace it)"
        fi
    elif [ -n "$SITE_CONFIG" ]; then CONFIG_SOURCE=$SITE_CONFIG
    else CONFIG_SOURCE=$SRC/config/gate-reader.example.toml
    fi
    BOOT_CONFIG=$(boot_file config.txt)
    if [ -z "$RTC" ] && [ -n "$BOOT_CONFIG" ]; then  # the clock chip a previous run was given
        RTC=$(helper block-rtc "$BOOT_CONFIG") || exit 2
    fi
    [ "$RTC" != none ] || RTC=""
    helper render ${RTC:+--rtc "$RTC"} --name /etc/gate-reader/gate-reader.toml "$CONFIG_SOURCE" "$WORK" || exit 2
    declare -gA SITE=()
    local key value
    while IFS='=' read -r key value; do SITE[$key]=$value; done < "$WORK/summary"
    # The daemon this installs and starts refuses to start without [door] (check-config says so
    # too, but only once the environment is built), and the relay's power-on level comes from it:
    # refused here, before anything changes. The example config has [door] commented out on
    # purpose: a default relay polarity that is wrong for the site's board would hold its door
    # released, so the site states its own.
    [ "${SITE[door]}" = 1 ] || die "${CONFIG_SOURCE#"$ROOT"}: door: missing: the gate's daemon (gate-reader run) does not start without a [door] table (the pins it drives), and the relay's power-on level is set from it; give --config SITE.toml with one (the example config's [door] section, uncommented and set)" 2

    TAG=$(helper tag "$SRC" --extras "$EXTRAS" ${WHEELS:+--wheels "$WHEELS"}) || exit 2

    if [ -n "$BOOT_CONFIG" ]; then
        helper splice "$BOOT_CONFIG" "$WORK/config.txt.block" > "$WORK/config.txt.new" || exit 2
    elif [ "${SITE[pin_factory]}" != mock ]; then
        die "no $P/boot/firmware/config.txt or $P/boot/config.txt: on a Pi the relay's level at power-on is set there (door.pin_factory = ${SITE[pin_factory]}); a machine that is not a Pi needs door.pin_factory = \"mock\"" 2
    fi
}

# --- install steps -------------------------------------------------------------------------

install_user() {
    put "$SRC/systemd/sysusers.d/gate-reader.conf" "$SYSUSERS" 0644
    if command -v systemd-sysusers >/dev/null; then
        if [ -n "$ROOT" ]; then
            mkdir -p "$P/etc"
            systemd-sysusers --root="$ROOT" "$SYSUSERS" >/dev/null
        else
            systemd-sysusers "$SYSUSERS" >/dev/null
        fi
    elif [ -z "$ROOT" ]; then  # no systemd-sysusers: the same user by hand
        id gate-reader >/dev/null 2>&1 || useradd --system --user-group --home-dir /var/lib/gate-reader \
            --no-create-home --shell /usr/sbin/nologin --comment "gate-reader daemon" gate-reader
        local g; for g in gpio dialout plugdev video; do getent group "$g" >/dev/null || groupadd --system "$g"; done
    else
        die "--root needs systemd-sysusers to make the user in the tree"
    fi
}

install_dirs() {
    ensure_dir "$OPT" 0755 root:root
    ensure_dir "$ETC" 0750 root:gate-reader
    ensure_dir "$STATE" 0700 gate-reader:gate-reader
    put "$SRC/systemd/tmpfiles.d/gate-reader.conf" "$TMPFILES" 0644
}

# The environment: /opt/gate-reader/venvs/VERSION-HASH, and /opt/gate-reader/.venv a link to
# it. A new source builds a new one beside the running one (build_venv, before anything else
# changes, so that the new version can check the config first); the link is switched in one
# rename (switch_venv), so a power cut leaves the old or the new environment, whole. The one
# before stays for a rollback.
build_venv() {
    local venv=$OPT/venvs/$TAG made
    if [ -f "$venv/.gate-reader-complete" ]; then return; fi
    rm -rf "$venv"  # what an interrupted run left
    # the folders this makes: a failed build takes them away again, so a first install that
    # fails here leaves the machine as it was
    made=$(LC_ALL=C mkdir -pv "$OPT/venvs" | sed -n "s/^mkdir: created directory '\(.*\)'$/\1/p" | tac)
    say "building the environment $TAG (pip; a few minutes on a Pi)"
    fail_build() {
        rm -rf "$venv"
        local dir; while IFS= read -r dir; do [ -z "$dir" ] || rmdir "$dir" 2>/dev/null || true; done <<< "$made"
        die "$@"
    }
    "$PY" -m venv "$venv" || fail_build "python -m venv failed"
    local spec=() log=$WORK/pip.log
    if [ -n "$WHEELS" ]; then
        spec=(--no-index --find-links "$WHEELS" "gate-reader[$EXTRAS]==${TAG%%-*}")
    else  # a copy, so the source (maybe a read-only stick) gets no build/ or egg-info
        mkdir "$WORK/src"
        cp -r "$SRC/pyproject.toml" "$SRC/README.md" "$SRC/reader" "$SRC/drivers" "$SRC/offline_cache" "$WORK/src/"
        find "$WORK/src" -name __pycache__ -prune -exec rm -rf {} +
        spec=("$WORK/src[$EXTRAS]")
    fi
    # No test extra: a gate gets the program and its libraries, no test tools.
    if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${spec[@]}" >"$log" 2>&1; then
        cat "$log" >&2
        fail_build "pip could not install gate-reader (log above)${WHEELS:+; is every wheel in $WHEELS, built for this CPU and Python version?}"
    fi
    "$venv/bin/gate-reader" --help >/dev/null || fail_build "the new environment's gate-reader does not run"
    echo "$TAG" > "$venv/.gate-reader-complete"
}

# The config the gate will run with, checked by the version about to run it, before anything
# else changes: an error (key path and what is expected, every one at once) stops the install
# with the running version, its units and its config as they were. Warnings (a device not
# plugged in, a root.json still to come) are shown and do not stop it. Under --root the paths
# the config names are the machine's, not the tree's: only warnings can differ.
check_site_config() {
    local out status=0
    out=$("$OPT/venvs/$TAG/bin/gate-reader" check-config --config "$CONFIG_SOURCE" 2>&1) || status=$?
    printf '%s\n' "$out" | sed 's/^/install: check-config: /'
    if [ "$status" != 0 ]; then
        local running=""
        if [ -L "$OPT/.venv" ]; then running="; the installed version, its units and config are unchanged"; fi
        die "${CONFIG_SOURCE#"$ROOT"}: the gate would not start with this config (errors above): fix it and run the installer again; nothing was installed or started${running} (the new environment stays built in ${OPT#"$ROOT"}/venvs/$TAG for the next run)" 2
    fi
}

VENV_CHANGED=0
switch_venv() {
    local current
    current=$(readlink "$OPT/.venv" 2>/dev/null || true)
    if [ "$current" = "venvs/$TAG" ]; then
        say "environment $TAG is current"
        return
    fi
    # A plain directory there is an environment made by hand before this installer: replaced.
    if [ -d "$OPT/.venv" ] && [ ! -L "$OPT/.venv" ]; then rm -rf "$OPT/.venv"; fi
    put_link "venvs/$TAG" "$OPT/.venv"
    VENV_CHANGED=1
    local old
    for old in "$OPT"/venvs/*; do
        case ${old##*/} in "$TAG"|"${current#venvs/}") ;; *) rm -rf "$old"; say "removed the old environment ${old##*/}" ;; esac
    done
}

CONFIG_CHANGED=0
install_config() {
    if [ "$CONFIG_SOURCE" != "$CONFIG" ]; then
        put "$CONFIG_SOURCE" "$CONFIG" 0640 root:gate-reader
        CONFIG_CHANGED=1
    else  # the gate's own: content untouched, but the daemon must be able to read it
        fix_meta "$CONFIG" 0640 root:gate-reader
    fi
    put "$SRC/config/gate-reader.example.toml" "$ETC/gate-reader.example.toml" 0644
    # The TUF root goes where the config's [sync] root says (default /etc/gate-reader/root.json).
    local pinned=$P${SITE[sync_root]}
    if [ -f "$pinned" ]; then
        if [ -n "$ROOT_JSON" ] && ! cmp -s "$ROOT_JSON" "$pinned"; then
            warn "kept the pinned ${pinned#"$ROOT"}; $ROOT_JSON was NOT installed (re-pinning is deliberate: remove the old one first)"
        fi
    elif [ -n "$ROOT_JSON" ]; then
        put "$ROOT_JSON" "$pinned" 0644
    else
        warn "no TUF root at ${SITE[sync_root]}: sync fails until it is there (install.sh --root-json FILE)"
    fi
}

UNITS_CHANGED=0 JOURNALD_CHANGED=0 WATCHDOG_CHANGED=0 UDEV_CHANGED=0
install_units() {
    local unit
    for unit in "${GATE_UNITS[@]}"; do
        put "$SRC/systemd/$unit" "$UNITS/$unit" 0644
        UNITS_CHANGED=$((UNITS_CHANGED | PUT_CHANGED))
    done
    put "$WORK/gate-reader.service.conf" "$DROPINS/gate-reader.service.d/50-site.conf" 0644
    UNITS_CHANGED=$((UNITS_CHANGED | PUT_CHANGED))
    put "$WORK/gate-reader-sync.timer.conf" "$DROPINS/gate-reader-sync.timer.d/50-site.conf" 0644
    UNITS_CHANGED=$((UNITS_CHANGED | PUT_CHANGED))
    put "$SRC/systemd/journald.conf.d/gate-reader.conf" "$JOURNALD" 0644
    JOURNALD_CHANGED=$PUT_CHANGED
    put "$SRC/systemd/system.conf.d/gate-reader-watchdog.conf" "$WATCHDOG" 0644
    WATCHDOG_CHANGED=$PUT_CHANGED
    put "$SRC/systemd/udev/70-gate-reader.rules" "$UDEV" 0644
    UDEV_CHANGED=$PUT_CHANGED
    put "$SRC/systemd/modprobe.d/gate-reader-nfc.conf" "$MODPROBE" 0644
    put_link /opt/gate-reader/.venv/bin/gate-reader "$BIN_LINK"
    # What the units' Documentation= points at, and this script, for --uninstall on the gate.
    put "$SRC/README.md" "$OPT/README.md" 0644
    local doc
    for doc in "$SRC"/docs/*; do
        case $doc in *.md|*.svg) put "$doc" "$OPT/docs/${doc##*/}" 0644 ;; esac
    done
    put "$SRC/scripts/install.sh" "$OPT/scripts/install.sh" 0755
    put "$SRC/scripts/install_files.sh" "$OPT/scripts/install_files.sh" 0644
    put "$SRC/scripts/install_site.py" "$OPT/scripts/install_site.py" 0644
    put "$SRC/scripts/install_bootfiles.py" "$OPT/scripts/install_bootfiles.py" 0644
    put "$SRC/scripts/install_wheels.py" "$OPT/scripts/install_wheels.py" 0644
}

# config.txt: the managed block (relay level from power-on, watchdog, UART, RTC); cmdline.txt: no
# serial console on the header UART when a reader uses it.
install_boot() {
    if [ -z "$BOOT_CONFIG" ]; then
        say "no config.txt here (door.pin_factory = mock): boot-time pin states not set"
        return
    fi
    if ! cmp -s "$WORK/config.txt.new" "$BOOT_CONFIG"; then
        cp "$WORK/config.txt.new" "$BOOT_CONFIG.gate-reader-new"
        sync "$BOOT_CONFIG.gate-reader-new"
        mv -f "$BOOT_CONFIG.gate-reader-new" "$BOOT_CONFIG"
        say "wrote the gate-reader block in ${BOOT_CONFIG#"$ROOT"} (takes effect at the next boot)"
        REBOOT=1
    fi
    local model=""
    if [ -r "$P/proc/device-tree/model" ]; then model=$(tr -d '\0' < "$P/proc/device-tree/model"); fi
    case "$model,${SITE[uart_names]}" in
        *"Raspberry Pi 5"*,*serial0*) warn "on this $model, /dev/serial0 is the debug connector, not GPIO 14/15: name the reader's device /dev/ttyAMA0 (nfc: tty:AMA0:pn532)" ;;
        *"Raspberry Pi "[34]*,*ttyAMA0*) warn "on this $model, /dev/ttyAMA0 is the Bluetooth UART: name the reader's device /dev/serial0 (nfc: tty:serial0:pn532)" ;;
    esac
    local cmdline; cmdline=$(dirname "$BOOT_CONFIG")/cmdline.txt
    if [ "${SITE[uart]}" = 1 ] && [ -f "$cmdline" ]; then
        helper strip-console "$cmdline" > "$WORK/cmdline.txt" || exit 2
        if ! cmp -s "$WORK/cmdline.txt" "$cmdline"; then
            [ -e "$cmdline.gate-reader-orig" ] || cp -p "$cmdline" "$cmdline.gate-reader-orig"
            cp "$WORK/cmdline.txt" "$cmdline.gate-reader-new"
            sync "$cmdline.gate-reader-new"
            mv -f "$cmdline.gate-reader-new" "$cmdline"
            say "removed the serial console on the header UART from ${cmdline#"$ROOT"} (the original is ${cmdline#"$ROOT"}.gate-reader-orig)"
            REBOOT=1
        fi
    fi
}

# Network time (the gate's clock decides freshness and expiry), and a battery-backed clock
# when there is one.
install_time() {
    local ts=""
    if unit_file chrony.service; then ts=chrony.service
    elif unit_file systemd-timesyncd.service; then ts=systemd-timesyncd.service
    fi
    if [ -n "$ts" ]; then
        systemctl_enable "$ts"
        if [ "$LIVE" = 1 ]; then systemctl start "$ts"; fi
        say "time synchronisation: $ts enabled"
    else
        warn "no time synchronisation (chrony or systemd-timesyncd) installed: sudo apt install systemd-timesyncd"
    fi
    if [ -e "$P/sys/class/rtc/rtc0" ]; then
        say "real-time clock found: rtc0 ($(cat "$P/sys/class/rtc/rtc0/name" 2>/dev/null || echo unnamed)); the kernel sets the clock from it at boot"
    elif [ -n "$RTC" ]; then
        say "real-time clock: dtoverlay=i2c-rtc,$RTC in config.txt, active after the next boot"
    else
        say "no real-time clock: after each boot the clock comes from network time (the gate's time floor guards it meanwhile)"
    fi
}

activate() {
    systemctl_enable gate-reader.service gate-reader-sync.timer
    if [ "$LIVE" = 0 ]; then
        not_run "systemctl daemon-reload; udevadm control --reload; systemctl start gate-reader.service gate-reader-sync.timer"
        return
    fi
    systemctl daemon-reload
    systemd-tmpfiles --create "$TMPFILES"
    [ "$WATCHDOG_CHANGED" = 0 ] || systemctl daemon-reexec  # system.conf.d is read at (re)exec
    [ "$JOURNALD_CHANGED" = 0 ] || systemctl restart systemd-journald
    if [ "$UDEV_CHANGED" = 1 ] && command -v udevadm >/dev/null; then
        udevadm control --reload
        udevadm trigger --subsystem-match=usb --subsystem-match=tty --subsystem-match=gpio
    fi
    local mod loaded=()
    for mod in port100 pn533_usb pn533_i2c pn532_uart pn533 nfc; do
        [ ! -d "/sys/module/$mod" ] || loaded+=("$mod")
    done
    if [ "${#loaded[@]}" -gt 0 ] && ! modprobe -r "${loaded[@]}"; then
        warn "the kernel's NFC drivers (${loaded[*]}) could not be unloaded: reboot before using the NFC reader"
    fi
    if systemctl is-active --quiet pcscd.service pcscd.socket 2>/dev/null; then
        warn "pcscd is running: it takes ACR122U-type readers away from gate-reader. Stop it for good with: sudo systemctl disable --now pcscd.socket pcscd.service"
    fi
    if [ "$START" = 0 ]; then
        say "--no-start: units enabled, not started"
        return
    fi
    if systemctl is-active --quiet gate-reader.service &&
        [ $((VENV_CHANGED | UNITS_CHANGED | CONFIG_CHANGED)) = 1 ]; then
        systemctl restart gate-reader.service gate-reader-sync.timer
    else
        systemctl start gate-reader.service gate-reader-sync.timer
    fi
}

# The last step: the selftest (`gate-reader diag selftest`, every check that needs no person). A
# failure does not undo anything: the gate is installed, and the table says what is missing and how
# to fix each part (the sync server down, a reader not plugged in...). Without this machine's own
# systemd (--root, a chroot) nothing runs and the config's paths are not this tree's: only the
# config is checked.
post_install_check() {
    local size gate_reader=$OPT/.venv/bin/gate-reader status=0
    size=$(du -sm "$OPT/venvs/$TAG" | cut -f1)
    say "done: gate-reader $TAG (environment ${size} MB) in ${OPT#"$ROOT"}, config ${CONFIG#"$ROOT"}"
    say "  sync every ${SITE[interval_s]} s; door ${SITE[lock_type]}, relay ${SITE[relay]}, pins via ${SITE[pin_factory]}; ${SITE[readers]} reader device(s) allowed"
    [ "${REBOOT:-0}" = 0 ] || say "  config.txt or cmdline.txt changed: reboot so the boot-time settings take effect (sudo reboot)"
    if [ "$LIVE" = 0 ]; then  # the config was checked before anything changed (check_site_config)
        not_run "gate-reader diag selftest --config /etc/gate-reader/gate-reader.toml"
        return
    fi
    say "selftest (gate-reader diag selftest --config /etc/gate-reader/gate-reader.toml):"
    "$gate_reader" diag selftest --config "$CONFIG" | sed 's/^/install:   /' || status=$?
    if [ "$status" = 0 ]; then
        say "selftest: all pass; next: the commissioning checklist in /opt/gate-reader/docs/install-guide.md"
    else
        warn "installed, but the selftest found problems (above): each FAIL names its likely cause and the next step; fix them, then run: sudo gate-reader diag selftest"
    fi
}

uninstall() {
    pick_python
    # config.txt first, while this script's helper is still there (it may run from /opt/gate-reader,
    # which goes below); a broken block stops it before anything is removed.
    local boot unit
    boot=$(boot_file config.txt)
    if [ -n "$boot" ]; then helper unsplice "$boot" > "$WORK/config.txt" || exit 2; fi
    if [ "$LIVE" = 1 ]; then
        systemctl disable --now --quiet "${GATE_UNITS[@]}" 2>/dev/null || true
    elif unit_file gate-reader.service; then
        systemctl --root="${ROOT:-/}" disable --quiet "${GATE_UNITS[@]}" 2>/dev/null || true
    fi
    if [ -n "$boot" ] && ! cmp -s "$WORK/config.txt" "$boot"; then
        cp "$WORK/config.txt" "$boot.gate-reader-new" && sync "$boot.gate-reader-new"
        mv -f "$boot.gate-reader-new" "$boot"
        say "removed the gate-reader block from ${boot#"$ROOT"}"
    fi
    for unit in "${GATE_UNITS[@]}"; do rm -f "$UNITS/$unit"; done
    rm -rf "$DROPINS/gate-reader.service.d" "$DROPINS/gate-reader-sync.timer.d"
    rm -f "$SYSUSERS" "$TMPFILES" "$JOURNALD" "$WATCHDOG" "$UDEV" "$MODPROBE"
    [ "$(readlink "$BIN_LINK" 2>/dev/null)" != /opt/gate-reader/.venv/bin/gate-reader ] || rm -f "$BIN_LINK"
    rm -rf "$OPT"
    if [ -n "$boot" ] && [ -f "$(dirname "$boot")/cmdline.txt.gate-reader-orig" ]; then
        say "the serial console stays off; cmdline.txt.gate-reader-orig beside config.txt holds the line from before"
    fi
    if [ "$PURGE" = 1 ]; then
        rm -rf "$ETC" "$STATE"
        say "purged ${ETC#"$ROOT"} and ${STATE#"$ROOT"} (config, keys, cache and event journal)"
    else
        say "kept ${ETC#"$ROOT"} (config, root.json, keys) and ${STATE#"$ROOT"} (cache, event journal, gate key); --purge removes them"
    fi
    say "kept the system user gate-reader (a later install reuses it) and the system journal"
    if [ "$LIVE" = 1 ]; then
        systemctl daemon-reload
        if command -v udevadm >/dev/null; then udevadm control --reload; fi
    else
        not_run "systemctl daemon-reload; udevadm control --reload"
    fi
}

if [ "$ACTION" = uninstall ]; then
    uninstall
    exit 0
fi
preflight
build_venv
check_site_config
install_user
install_dirs
switch_venv
install_config
install_units
install_boot
install_time
activate
post_install_check
