#!/usr/bin/env bash
# Start Audacity without a display (under Xvfb) with mod-script-pipe enabled: for CI and servers.
#
#   packaging/audacity/start-headless.sh [HOME_DIR] &     # HOME_DIR defaults to $HOME
#
# Seeds HOME_DIR/.config/audacity/audacity.cfg (daw_plugin.hosts.audacity_setup), gives a fresh
# HOME the one warm-up start it needs, removes stale script pipes, then runs Audacity in the
# foreground until it exits. The pipes /tmp/audacity_script_pipe.{to,from}.$(id -u) appear about
# a second later; `daw-plugin ... --host audacity` then talks to it.
# Needs: apt-get install -y audacity xvfb xauth
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
python="${PYTHON:-$repo/.venv/bin/python}"
[ -x "$python" ] || python=python3
home="$(mkdir -p "${1:-$HOME}" && cd "${1:-$HOME}" && pwd)"
uid="$(id -u)"
cfg="$home/.config/audacity/audacity.cfg"
registry="$home/.config/audacity/pluginregistry.cfg"
xvfb=(xvfb-run -a -s "-screen 0 1280x1024x24")
export NO_AT_BRIDGE=1  # no accessibility bus to wait for

if pgrep -u "$uid" -x audacity >/dev/null; then
    echo "start-headless.sh: an Audacity already runs for this user and owns the script pipes; close it first." >&2
    exit 1
fi

seed() {
    PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" "$python" -m daw_plugin.hosts.audacity_setup "$home" "$@" >/dev/null
}

if [ ! -e "$registry" ]; then
    # A fresh HOME: the first start scans plugins in a helper process that would load the module,
    # take the pipes and drop them on exit. Warm up with the module off until the scan is done.
    seed --module-off
    cp "$cfg" "$cfg.before-warm-up"
    marker="$(mktemp)"
    HOME="$home" "${xvfb[@]}" audacity >/dev/null 2>&1 &
    runner=$!
    for _ in $(seq 900); do  # 90 s at most
        audacity_pid="$(pgrep -P "$runner" -x audacity || true)"
        if [ -e "$registry" ] && [ -n "$audacity_pid" ] && ! pgrep -P "$audacity_pid" >/dev/null \
            && [ $(( $(date +%s) - $(stat -c %Y "$registry") )) -ge 1 ]; then
            break
        fi
        sleep 0.1
    done
    [ -n "${audacity_pid:-}" ] && kill "$audacity_pid" 2>/dev/null || true  # xvfb-run then stops its Xvfb
    wait "$runner" || true
    # The warm-up's config and unsaved project go: the project would bring up crash recovery.
    mv "$cfg.before-warm-up" "$cfg"
    temp="$(sed -n 's/^TempDir=//p' "$cfg" | head -n 1)"
    [ -n "$temp" ] && find "$temp" -maxdepth 1 -name '*.aup3unsaved*' -newer "$marker" -delete
    rm -f "$marker"
    [ -e "$registry" ] || { echo "start-headless.sh: the warm-up start wrote no plugin registry." >&2; exit 1; }
fi

seed
rm -f "/tmp/audacity_script_pipe.to.$uid" "/tmp/audacity_script_pipe.from.$uid"  # left by a killed Audacity
HOME="$home" exec "${xvfb[@]}" audacity
