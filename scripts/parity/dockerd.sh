#!/usr/bin/env bash
# A private Docker 20.10 daemon for the parity report, on a shared machine.
#
#   dockerd.sh start        starts one; prints shell assignments on stdout:
#                             MRPAR_STATE=/run/minirun-parity-<pid>
#                             DOCKER_HOST=unix:///run/minirun-parity-<pid>/docker.sock
#                             MRPAR_BRIDGE=mrpar<pid>  MRPAR_SUBNET=172.X.0.0/16
#                           exit 0; exit 77 (SKIP) with "SKIP: <reason>" on stderr
#                           when no daemon can be started here; anything else
#                           is an error. A failed start removes what it made.
#   dockerd.sh stop STATE   stops that daemon and removes everything it made.
# MRPAR_DOCKERD_ARGS: more dockerd flags (word-split), e.g. --userland-proxy=false.
#
# What it starts, each under `tini -s` (a subreaper: this machine's pid 1
# reaps no orphans, and containerd's shims are orphans by design):
#   - its own containerd (config, socket, state and root of its own): dockerd
#     would otherwise attach to /run/containerd/containerd.sock whenever that
#     exists, i.e. to someone else's containerd;
#   - dockerd with its own --data-root, --exec-root, --pidfile, -H socket,
#     --config-file, --cgroup-parent, and its own bridge `mrpar<pid>`
#     (--bridge; never docker0, never --bip), addressed with the first /16 of
#     172.31 down to 172.19 that overlaps no route or address on the host;
#   - --ip-forward=false: the daemon never turns on ip_forward (and so never
#     sets the FORWARD policy to DROP, which would cut other bridges off).
#     Published ports are reached through docker-proxy on 127.0.0.1, which
#     needs no forwarding.
# Call it from a subreaper (compare.py is one) or the two tini processes end
# as zombies under pid 1 once they exit.
#
# What stays shared and how it is cleaned: Docker's iptables chains (DOCKER,
# DOCKER-ISOLATION-STAGE-1/2, DOCKER-USER) and the jumps to them are removed
# only when they did not exist before this daemon started and no other
# dockerd is running; rules naming our bridge or subnet are always removed.
# /etc/docker/key.json (20.10 writes it unconditionally) is removed if it did
# not exist before.
set -euo pipefail

SKIP=77
die_skip() { echo "SKIP: $*" >&2; exit $SKIP; }
log() { echo "dockerd.sh: $*" >&2; }

# ---- helpers ---------------------------------------------------------------

# Is pid alive and not a zombie?
alive() {
    local st
    st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# Does pid's command line mention our state dir? (guards against pid reuse)
ours() {
    tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$2"
}

# stop_pid PID MARK SECONDS: TERM, wait, then KILL.
stop_pid() {
    local pid=$1 mark=$2 secs=$3 i
    alive "$pid" && ours "$pid" "$mark" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < secs * 10; i++)); do
        alive "$pid" || return 0
        sleep 0.1
    done
    log "pid $pid did not stop in ${secs}s; KILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do alive "$pid" || return 0; sleep 0.1; done
}

other_dockerd_running() {
    local own=${1:-} p
    for p in /proc/[0-9]*; do
        p=${p#/proc/}
        [ "$p" = "$own" ] && continue
        [ "$(cat "/proc/$p/comm" 2>/dev/null)" = dockerd ] && alive "$p" && return 0
    done
    return 1
}

chain_exists() { iptables -w -t "$1" -S "$2" >/dev/null 2>&1; }

# Deletes every rule of table $1 whose -A line matches the grep -E pattern $2.
delete_rules_matching() {
    local table=$1 pat=$2 line
    iptables-save -t "$table" 2>/dev/null | grep -E '^-A ' | grep -E -- "$pat" | while IFS= read -r line; do
        # shellcheck disable=SC2086 # the saved rule is a word list by design
        eval "iptables -w -t $table -D ${line#-A }" 2>/dev/null || true
    done
}

pick_subnet() {
    python3 - <<'EOF'
import ipaddress, subprocess
used = []
for cmd in (["ip", "-4", "-o", "route", "show", "table", "all"], ["ip", "-4", "-o", "addr", "show"]):
    for line in subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines():
        for w in line.split():
            try:
                n = ipaddress.ip_network(w if "/" in w else w + "/32", strict=False)
            except ValueError:
                continue
            if n.version == 4 and n.prefixlen > 0:
                used.append(n)
for x in range(31, 18, -1):
    cand = ipaddress.ip_network(f"172.{x}.0.0/16")
    if not any(cand.overlaps(u) for u in used):
        print(cand)
        break
EOF
}

# ---- stop ------------------------------------------------------------------

do_stop() {
    local S=$1
    [ -f "$S/made" ] || { log "$S: not a parity daemon's state dir"; return 1; }
    # shellcheck disable=SC1091
    . "$S/made"
    local D=${MRPAR_DATA:-} mark=$S
    export DOCKER_CONFIG=$S/client

    if [ -n "${DOCKERD_TINI:-}" ] && alive "$DOCKERD_TINI" && ours "$DOCKERD_TINI" "$mark"; then
        # Containers first: their shims and docker-proxy processes go with them.
        local ids
        ids=$(timeout 20 docker_client -H "unix://$S/docker.sock" ps -aq 2>/dev/null || true)
        [ -n "$ids" ] && timeout 60 docker_client -H "unix://$S/docker.sock" rm -f $ids >/dev/null 2>&1 || true
        stop_pid "$DOCKERD_TINI" "$mark" 30
    fi
    [ -n "${CONTAINERD_TINI:-}" ] && stop_pid "$CONTAINERD_TINI" "$mark" 15
    # Shims of our containerd left behind (a daemon killed mid-run): only
    # those whose command line names our containerd's socket.
    local p
    for p in /proc/[0-9]*; do
        p=${p#/proc/}
        case "$(cat "/proc/$p/comm" 2>/dev/null)" in containerd-shim*) ours "$p" "$S/containerd.sock" && kill -KILL "$p" 2>/dev/null || true ;; esac
    done

    # Mounts under our directories, deepest first.
    local m
    for m in $(awk '{print $5}' /proc/self/mountinfo | grep -E "^($S|${D:-/nonexistent})(/|$)" | sort -r); do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "cannot unmount $m"
    done

    # Firewall: rules naming our bridge or subnet are ours; Docker's shared
    # chains only if we made them and no other dockerd is running now.
    if [ -n "${MRPAR_BRIDGE:-}" ] && command -v iptables >/dev/null; then
        local pat="[ !]-[io] ${MRPAR_BRIDGE}( |$)|${MRPAR_SUBNET:-nonexistent}"
        pat=${pat//./\\.}
        delete_rules_matching nat "$pat"
        delete_rules_matching filter "$pat"
        if [ "${CHAINS_PREEXISTED:-1}" = 0 ] && ! other_dockerd_running; then
            delete_rules_matching nat '-j DOCKER$'
            delete_rules_matching filter '-j DOCKER(-USER|-ISOLATION-STAGE-1)?$'
            local c
            for c in DOCKER DOCKER-ISOLATION-STAGE-1 DOCKER-ISOLATION-STAGE-2 DOCKER-USER; do
                chain_exists filter "$c" && { iptables -w -t filter -F "$c"; iptables -w -t filter -X "$c"; } || true
            done
            chain_exists nat DOCKER && { iptables -w -t nat -F DOCKER; iptables -w -t nat -X DOCKER; } || true
        elif [ "${CHAINS_PREEXISTED:-1}" = 0 ]; then
            log "another dockerd is running: Docker's shared iptables chains stay"
        fi
    fi
    if [ -n "${MRPAR_BRIDGE:-}" ] && ip link show "$MRPAR_BRIDGE" >/dev/null 2>&1; then
        ip link del "$MRPAR_BRIDGE" || log "cannot delete bridge $MRPAR_BRIDGE"
    fi
    if [ "${KEYJSON_PREEXISTED:-1}" = 0 ] && ! other_dockerd_running; then
        rm -f /etc/docker/key.json
    fi
    if [ -n "${CGROUP_PARENT:-}" ]; then
        local d
        for d in /sys/fs/cgroup/*/"$CGROUP_PARENT" /sys/fs/cgroup/unified/"$CGROUP_PARENT"; do
            [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
        done
    fi
    [ -n "$D" ] && rm -rf "$D"
    rm -rf "$S"
}

docker_client() {
    local c=${DOCKER:-}
    [ -n "$c" ] || { [ -x /usr/bin/docker ] && c=/usr/bin/docker || c=docker; }
    "$c" "$@"
}

# ---- start -----------------------------------------------------------------

do_start() {
    [ "$(id -u)" = 0 ] || die_skip "needs root"
    if ! command -v dockerd >/dev/null || ! command -v containerd >/dev/null || ! command -v runc >/dev/null; then
        log "installing Debian's docker.io"
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker.io tini >&2 ||
            die_skip "dockerd is not installed and apt-get install docker.io failed"
    fi
    command -v dockerd >/dev/null || die_skip "no dockerd after installing docker.io"
    local tini
    tini=$(command -v tini || command -v tini-static || true)
    [ -n "$tini" ] || die_skip "no tini (a subreaper for dockerd and containerd's shims; Debian's tini)"
    command -v iptables >/dev/null || die_skip "no iptables"
    grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || die_skip "no overlayfs"

    local N=$$
    S=/run/minirun-parity-$N
    D=/var/tmp/minirun-parity-$N
    local BR=mrpar$N CG=minirun-parity-$N
    mkdir -m 0700 "$S" "$D" || die_skip "cannot make $S or $D"
    mkdir -p "$S/client"
    # The record `stop` reads; each resource is noted as soon as it exists.
    {
        echo "MRPAR_DATA=$D"
        echo "CGROUP_PARENT=$CG"
        chain_exists filter DOCKER || chain_exists nat DOCKER && echo CHAINS_PREEXISTED=1 || echo CHAINS_PREEXISTED=0
        [ -e /etc/docker/key.json ] && echo KEYJSON_PREEXISTED=1 || echo KEYJSON_PREEXISTED=0
    } >"$S/made"
    trap 'rc=$?; if [ $rc != 0 ]; then log "start failed; cleaning up"; do_stop "$S" || true; fi; exit $rc' EXIT

    # Two parity daemons starting at once must not pick the same subnet: the
    # choice and the address are made under a lock (on this script, so that
    # no lock file is left behind).
    local subnet
    exec 9<"$0"
    flock 9
    subnet=$(pick_subnet)
    [ -n "$subnet" ] || die_skip "no free 172.19-31.0.0/16 for the daemon's bridge"
    local gw=${subnet%.0/16}.1
    echo "MRPAR_BRIDGE=$BR" >>"$S/made"
    echo "MRPAR_SUBNET=$subnet" >>"$S/made"
    ip link add "$BR" type bridge || die_skip "cannot create bridge $BR"
    ip addr add "$gw/16" dev "$BR"
    ip link set "$BR" up
    exec 9<&-

    # containerd of our own.
    cat >"$S/containerd.toml" <<EOF
version = 2
root = "$D/containerd"
state = "$S/containerd"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$S/containerd.sock"
[ttrpc]
  address = "$S/containerd.sock.ttrpc"
[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "$D/opt"
EOF
    setsid "$tini" -s -- containerd --config "$S/containerd.toml" </dev/null >"$S/containerd.log" 2>&1 &
    echo "CONTAINERD_TINI=$!" >>"$S/made"
    local i
    for ((i = 0; i < 100; i++)); do [ -S "$S/containerd.sock" ] && break; sleep 0.1; done
    [ -S "$S/containerd.sock" ] || die_skip "containerd did not start: $(tail -3 "$S/containerd.log" | tr '\n' ' ')"

    echo '{}' >"$S/daemon.json"
    setsid "$tini" -s -- dockerd \
        --config-file "$S/daemon.json" \
        --data-root "$D/docker" --exec-root "$S/exec" --pidfile "$S/dockerd.pid" \
        -H "unix://$S/docker.sock" --containerd "$S/containerd.sock" \
        --bridge "$BR" --ip-forward=false --cgroup-parent "/$CG" \
        --storage-driver overlay2 ${MRPAR_DOCKERD_ARGS:-} \
        </dev/null >"$S/dockerd.log" 2>&1 &
    echo "DOCKERD_TINI=$!" >>"$S/made"
    export DOCKER_CONFIG=$S/client
    for ((i = 0; i < 300; i++)); do
        docker_client -H "unix://$S/docker.sock" version >/dev/null 2>&1 && break
        alive "$(sed -n 's/^DOCKERD_TINI=//p' "$S/made")" || break
        sleep 0.1
    done
    docker_client -H "unix://$S/docker.sock" version >/dev/null 2>&1 ||
        die_skip "dockerd did not start: $(grep -v '^[[:space:]]*$' "$S/dockerd.log" | tail -2 | tr '\n' ' ')"
    trap - EXIT
    echo "MRPAR_STATE=$S"
    echo "DOCKER_HOST=unix://$S/docker.sock"
    echo "DOCKER_CONFIG=$S/client"
    echo "MRPAR_BRIDGE=$BR"
    echo "MRPAR_SUBNET=$subnet"
}

case "${1:-}" in
start) do_start ;;
stop)
    [ -n "${2:-}" ] || { echo "usage: $0 stop STATE_DIR" >&2; exit 2; }
    case "$2" in /run/minirun-parity-[0-9]*) ;; *) echo "$2: not a parity state dir" >&2; exit 2 ;; esac
    do_stop "${2%/}"
    ;;
*)
    echo "usage: $0 start | stop STATE_DIR" >&2
    exit 2
    ;;
esac
