#!/usr/bin/env bash
# `minirun run --rm` against `podman run --rm` (crun, netavark) on the same
# busybox image, bridge and none, in one run, as ratios; then the host-side
# memory (PSS) of what supervises one detached container: minirun's monitor
# against podman's conmon. Everything happens in a network namespace of its
# own, with state roots of its own, so nothing on the host is touched.
# Usage: bench-front.sh /path/to/minirun [RUNS]   (as root)
set -euo pipefail
MINIRUN=${1:?usage: bench-front.sh /path/to/minirun [RUNS]}
RUNS=${2:-30}
for tool in hyperfine podman conmon crun; do
    command -v "$tool" >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hyperfine podman conmon crun >/dev/null
done
if [ -z "${BENCH_FRONT_INNER:-}" ]; then
    exec env BENCH_FRONT_INNER=1 unshare --net -- "$0" "$@"
fi
ip link set lo up
work=$(mktemp -d /var/tmp/minirun-bench-front.XXXXXX)
mr() { "$MINIRUN" --root "$work/minirun/containers" --image-root "$work/minirun/images" --network-root "$work/minirun/network" "$@"; }
pm() { podman --root "$work/podman/root" --runroot "$work/podman/run" --cgroup-manager cgroupfs --runtime crun "$@"; }
cleanup() {
    set +e
    for c in $(mr ps -aq 2>/dev/null); do mr rm -f "$c" >/dev/null 2>&1; done
    mr network rm bridge >/dev/null 2>&1
    pm rm -af >/dev/null 2>&1
    pm system reset -f >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT

rootfs=$work/rootfs
mkdir -p "$rootfs/bin" "$rootfs/etc"
cp /bin/busybox "$rootfs/bin/"
for applet in $(/bin/busybox --list); do [ "$applet" = busybox ] || ln -s busybox "$rootfs/bin/$applet"; done
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$rootfs/etc/passwd"
tar -C "$rootfs" -cf "$work/busybox.tar" .
mr import "$work/busybox.tar" busybox:latest >/dev/null
pm import "$work/busybox.tar" localhost/busybox:latest >/dev/null
# First use makes each engine's bridge and rules; not what is measured.
mr run --rm busybox true
pm run --rm localhost/busybox true

export -f mr pm
export MINIRUN work
hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$work/times.json" \
    -n "minirun bridge" "$MINIRUN --root $work/minirun/containers --image-root $work/minirun/images --network-root $work/minirun/network run --rm --network bridge busybox true" \
    -n "minirun none" "$MINIRUN --root $work/minirun/containers --image-root $work/minirun/images --network-root $work/minirun/network run --rm --network none busybox true" \
    -n "podman bridge" "podman --root $work/podman/root --runroot $work/podman/run --cgroup-manager cgroupfs --runtime crun run --rm --network bridge localhost/busybox true" \
    -n "podman none" "podman --root $work/podman/root --runroot $work/podman/run --cgroup-manager cgroupfs --runtime crun run --rm --network none localhost/busybox true" \
    >/dev/null

# Host memory per detached container: the PSS of its supervisor (minirun's
# monitor, podman's conmon), averaged over COUNT containers of each, so that
# what they share (program text, libc) is split as it is in real use.
COUNT=${BENCH_FRONT_COUNT:-10}
pss_sum() { local total=0; for p in "$@"; do total=$((total + $(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup"))); done; echo "$total"; }
for i in $(seq "$COUNT"); do
    mr run -d busybox sleep 600 >/dev/null
    pm run -d --name "benchsleep$i" localhost/busybox sleep 600 >/dev/null
done
sleep 1
monitors=$(pgrep -f -- "--root $work/minirun/containers .*__monitor")
conmons=$(pgrep -f "conmon .*-n benchsleep")
monitor_pss=$(( $(pss_sum $monitors) / $(echo $monitors | wc -w) ))
conmon_pss=$(( $(pss_sum $conmons) / $(echo $conmons | wc -w) ))

python3 - "$work/times.json" "$monitor_pss" "$conmon_pss" <<'PY'
import json, sys
results = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
median = lambda name: results[name]["median"] * 1000
print("| network | minirun run --rm | podman run --rm (crun) | podman / minirun |")
print("| --- | --- | --- | --- |")
for mode in ("bridge", "none"):
    m, p = median(f"minirun {mode}"), median(f"podman {mode}")
    print(f"| {mode} | {m:.1f} ms | {p:.1f} ms | {p / m:.1f}x |")
mon, con = int(sys.argv[2]), int(sys.argv[3])
print(f"\nPSS of the supervisor of a detached container (average of several): minirun monitor {mon} KiB, conmon {con} KiB (monitor / conmon = {mon / con:.2f})")
PY
