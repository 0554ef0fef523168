#!/usr/bin/env bash
# Cost of giving a container a bridged network with minirun, measured the way
# ../shared/bench/netsetup.sh measures netavark and CNI: one container's
# attach + detach (without and with one published port), then the attach of
# one more container while N are attached. Everything runs inside a
# throwaway network namespace: the host's links and rules are not touched.
# Usage: bench-network.sh /path/to/minirun   Env: REPS=20 SCALE="1 50 200"
set -euo pipefail
MINIRUN=${1:?usage: bench-network.sh /path/to/minirun}
REPS=${REPS:-20}
SCALE=${SCALE:-"1 50 200"}

if [ "${MINIRUN_BENCH_INSIDE:-}" != 1 ]; then
    exec env MINIRUN_BENCH_INSIDE=1 unshare --net --fork "$0" "$@"
fi
ip link set lo up
root=$(mktemp -d /tmp/minirun-bench-net.XXXXXX)
holders=()
cleanup() {
    set +e   # a holder already gone must not stop the others being killed
    for p in "${holders[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    rm -rf "$root"
}
trap cleanup EXIT
mr() { "$MINIRUN" --network-root "$root" "$@"; }
now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f", m/1e6}'; }
# A process that holds a network namespace, as a container would; sets $pid.
holder() { unshare --net sleep 3600 >/dev/null 2>&1 & pid=$!; holders+=("$pid"); }

single() { # single VARIANT -> median ms of attach and of detach
    local variant=$1 i pid t0 t1 t2 ports=() a=() d=()
    [ "$variant" = ports ] && ports=(-p 29100:80)
    for i in $(seq 1 "$REPS"); do
        holder
        t0=$(now); mr network attach bridge --netns /proc/$pid/ns/net --id s$i --pid "$pid" "${ports[@]}" >/dev/null
        t1=$(now); mr network detach s$i; t2=$(now)
        a+=($((t1 - t0))); d+=($((t2 - t1)))
        kill -KILL "$pid"; wait "$pid" 2>/dev/null || true
        # From a clean slate each time, as netsetup.sh does: no bridge, no rules.
        mr network rm bridge >/dev/null
    done
    printf '%-28s attach %6s ms   detach %6s ms\n' "single, $variant" "$(printf '%s\n' "${a[@]}" | median)" "$(printf '%s\n' "${d[@]}" | median)"
}

scale() {
    local n=0 target pid t0 t1 probes=()
    for target in $SCALE; do
        while [ $n -lt "$target" ]; do
            n=$((n + 1)); holder
            mr network attach bridge --netns /proc/$pid/ns/net --id c$n --pid "$pid" -p $((30000 + n)):80 >/dev/null
        done
        probes=()
        for i in 1 2 3 4 5; do
            holder
            t0=$(now); mr network attach bridge --netns /proc/$pid/ns/net --id probe$i --pid "$pid" -p 29999:80 >/dev/null; t1=$(now)
            mr network detach probe$i
            probes+=($((t1 - t0)))
        done
        printf '%-28s attach %6s ms\n' "probe with $n attached, port" "$(printf '%s\n' "${probes[@]}" | median)"
    done
    for i in $(seq 1 $n); do mr network detach c$i; done
    mr network rm bridge >/dev/null
}

echo "# minirun network set-up, medians ($REPS reps; scale $SCALE), in a throwaway netns"
single plain
single ports
scale
