#!/usr/bin/env bash
# The image side of minirun, in one run, with hyperfine:
#  1. Pull and unpack of debian:bookworm from a loopback registry into an empty
#     store: `minirun pull` against `skopeo copy` + `umoci unpack` and against
#     `podman pull` (overlay storage). Target: minirun at most half their time.
#  2. Container start, `minirun run --rm --network none IMAGE true`, with a
#     small image (busybox, imported), a ~500 MB one (the same busybox plus
#     450 MiB of random data in one file and 50 MiB in 12,800 small files,
#     imported) and the pulled debian. Target: the same within noise (the
#     rootfs is an overlay of the unpacked layers, not a copy).
# Uses the registry on 127.0.0.1:5000 (../shared/checks/registry.sh) if it
# serves library/debian:bookworm; otherwise starts a docker-registry of its own
# on a free loopback port, pushes debian there with skopeo (from
# $CLI_IMAGES_DIR/debian-oci, or a debootstrap'ed rootfs) and stops it at the
# end. Every store (minirun, podman, skopeo/umoci, TMPDIR) is under
# /var/tmp/minirun-bench-images.XXXXXX (about 5 GB at the peak: each pull run
# gets a store of its own), removed at the end, even on failure. ~4 minutes.
# Usage: bench-images.sh /path/to/minirun   (as root)
# Env: PULL_RUNS=7 START_RUNS=30 BENCH_OWN_REGISTRY=1 (ignore the one on :5000)
#      CLI_IMAGES_DIR=/var/tmp/cli-images
set -euo pipefail
usage="usage: bench-images.sh /path/to/minirun   (as root)"
MINIRUN=${1:?$usage}
PULL_RUNS=${PULL_RUNS:-7}
START_RUNS=${START_RUNS:-30}
IMAGES_SRC=${CLI_IMAGES_DIR:-/var/tmp/cli-images}
[ "$(id -u)" = 0 ] || { echo "$usage" >&2; exit 2; }
[ -x "$MINIRUN" ] || { echo "not an executable: $MINIRUN" >&2; exit 2; }
MINIRUN=$(readlink -f "$MINIRUN")
log() { echo "[bench-images] $*" >&2; }

need=()
for tool in hyperfine skopeo umoci podman curl python3; do command -v "$tool" >/dev/null || need+=("$tool"); done
[ -x /bin/busybox ] || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

work=$(mktemp -d /var/tmp/minirun-bench-images.XXXXXX)
reg_pid=""
cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM HUP
    if [ -d "$work/run" ]; then
        for c in $(mr ps -aq 2>/dev/null); do mr rm -f "$c" >/dev/null 2>&1; done
    fi
    if [ -n "$reg_pid" ]; then
        kill "$reg_pid" 2>/dev/null; wait "$reg_pid" 2>/dev/null
        log "stopped our registry (pid $reg_pid)"
    fi
    # Nothing should be mounted under $work by now; if something is, unmount it
    # (deepest first) rather than delete through it.
    findmnt -rn -o TARGET | awk -v p="$work/" 'index($0, p) == 1' | sort -r | while read -r m; do umount -l "$m"; done
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
export TMPDIR=$work/tmp   # skopeo's and podman's temporary blobs stay in here
mkdir -p "$TMPDIR"
mr() { "$MINIRUN" --root "$work/run/containers" --image-root "$work/run/images" --network-root "$work/run/network" "$@"; }

# ---- registry -----------------------------------------------------------
has_debian() { curl -fsS -m 5 -o /dev/null -H 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' "http://$1/v2/library/debian/manifests/bookworm" 2>/dev/null; }
if [ "${BENCH_OWN_REGISTRY:-0}" != 1 ] && has_debian 127.0.0.1:5000; then
    REG=127.0.0.1:5000
    log "using the registry already running on $REG"
else
    command -v docker-registry >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry >/dev/null
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    REG=127.0.0.1:$port
    mkdir -p "$work/registry/data"
    cat > "$work/registry/config.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: $work/registry/data
http:
  addr: $REG
health:
  storagedriver:
    enabled: false
EOF
    docker-registry serve "$work/registry/config.yml" >"$work/registry/log" 2>&1 </dev/null &
    reg_pid=$!
    for _ in $(seq 50); do curl -fsS -m 2 -o /dev/null "http://$REG/v2/" 2>/dev/null && break; sleep 0.2; done
    curl -fsS -m 2 -o /dev/null "http://$REG/v2/" || { log "our registry did not come up:"; tail "$work/registry/log" >&2; exit 1; }
    log "started our registry on $REG (pid $reg_pid)"
    src=$IMAGES_SRC/debian-oci
    if ! umoci ls --layout "$src" 2>/dev/null | grep -qx bookworm; then
        # As ../shared/checks/registry.sh builds it: debootstrap minbase, one layer.
        mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
        [ -n "$mirror" ] || mirror=$(awk '$1=="deb"{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
        [ -n "$mirror" ] || { log "no $src and no Debian mirror in the apt sources"; exit 1; }
        command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
        log "no $src: debootstrap --variant=minbase bookworm from $mirror (a few minutes, not timed)"
        debootstrap --variant=minbase bookworm "$work/debian-rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
            || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
        rm -rf "$work/debian-rootfs"/var/cache/apt/archives/*.deb "$work/debian-rootfs"/var/lib/apt/lists/*
        tar -C "$work/debian-rootfs" --numeric-owner --xattrs --exclude='./dev/*' --exclude='./proc/*' \
            --exclude='./sys/*' -cf "$work/debian.tar" .
        src=$work/debian-oci
        umoci init --layout "$src"
        umoci new --image "$src:bookworm"
        umoci raw add-layer --image "$src:bookworm" "$work/debian.tar"
        umoci config --image "$src:bookworm" --os linux --architecture amd64 \
            --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --config.cmd bash
        rm -rf "$work/debian-rootfs" "$work/debian.tar"
    fi
    skopeo copy --quiet --dest-tls-verify=false "oci:$src:bookworm" "docker://$REG/library/debian:bookworm"
fi
IMAGE=$REG/library/debian:bookworm

# ---- 1. pull + unpack into an empty store -------------------------------
# Every run gets new, empty directories, and nothing is deleted until the end:
# on ext4 without a journal (as here) creating files right after deleting
# thousands costs far more (the allocator skips recently freed inodes), which
# would make each run pay for the clean-up of the one before. Each run starts
# with nothing dirty in the page cache (sync of this file system).
P=$work/pull
mkdir -p "$P"
cat > "$work/minirun-pull.sh" <<EOF
#!/bin/sh
d=\$(mktemp -d $P/minirun.XXXXXX)
exec $MINIRUN --root \$d/containers --image-root \$d/images --network-root \$d/network pull -q $IMAGE
EOF
cat > "$work/skopeo-umoci.sh" <<EOF
#!/bin/sh
set -e
d=\$(mktemp -d $P/skopeo.XXXXXX)
skopeo copy --quiet --src-tls-verify=false docker://$IMAGE oci:\$d/oci:bookworm
exec umoci unpack --image \$d/oci:bookworm \$d/bundle >/dev/null
EOF
cat > "$work/podman-pull.sh" <<EOF
#!/bin/sh
d=\$(mktemp -d $P/podman.XXXXXX)
r=\$(mktemp -d $work/r.XXXXXX)   # podman 4.3 refuses a runroot longer than 50 characters
exec podman --root \$d/root --runroot \$r --tmpdir \$d/tmp --storage-driver overlay --events-backend none pull -q --tls-verify=false $IMAGE
EOF
chmod +x "$work/minirun-pull.sh" "$work/skopeo-umoci.sh" "$work/podman-pull.sh"
log "pull + unpack of $IMAGE: 1 warmup + $PULL_RUNS runs each of minirun, skopeo+umoci, podman"
hyperfine -N --style basic --warmup 1 --runs "$PULL_RUNS" --export-json "$work/pull.json" --prepare "sync -f $P" \
    -n "minirun pull" "$work/minirun-pull.sh" \
    -n "skopeo copy + umoci unpack" "$work/skopeo-umoci.sh" \
    -n "podman pull" "$work/podman-pull.sh" >&2

# ---- 2. container start, small vs big image -----------------------------
rootfs=$work/rootfs
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/root" "$rootfs/tmp"
cp /bin/busybox "$rootfs/bin/"
for applet in $(/bin/busybox --list); do [ "$applet" = busybox ] || ln -s busybox "$rootfs/bin/$applet"; done
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$rootfs/etc/passwd"
printf 'root:x:0:\n' > "$rootfs/etc/group"
tar -C "$rootfs" -cf "$work/small.tar" .
mkdir -p "$rootfs/data/files"
head -c 450M /dev/urandom > "$rootfs/data/big.bin"
head -c 50M /dev/urandom | split -b 4096 -a 4 - "$rootfs/data/files/f"
tar -C "$rootfs" -cf "$work/big.tar" .
log "importing the small and big images, pulling debian (not timed)"
mr import "$work/small.tar" bench-small:latest >/dev/null
mr import "$work/big.tar" bench-big:latest >/dev/null
mr pull -q "$IMAGE" >/dev/null
unpacked() { mr image inspect "$1" | python3 -c '
import json, subprocess, sys
d = json.load(sys.stdin)
d = d[0] if isinstance(d, list) else d
print(sum(int(subprocess.check_output(["du", "-sb", l]).split()[0]) for l in d["Layers"]))'; }
small_size=$(unpacked bench-small:latest)
big_size=$(unpacked bench-big:latest)
debian_size=$(unpacked "$IMAGE")
# The imports leave ~1 GB of dirty pages; let writeback finish so that it does
# not stall the first timed runs.
sync
for img in bench-small:latest bench-big:latest "$IMAGE"; do mr run --rm --network none "$img" true; done
run="$MINIRUN --root $work/run/containers --image-root $work/run/images --network-root $work/run/network run --rm --network none"
log "container start: 3 warmups + $START_RUNS runs per image"
hyperfine -N --style basic --warmup 3 --runs "$START_RUNS" --export-json "$work/start.json" \
    -n "busybox" "$run bench-small:latest true" \
    -n "busybox + 500 MiB" "$run bench-big:latest true" \
    -n "debian:bookworm" "$run $IMAGE true" >&2

# ---- report -------------------------------------------------------------
python3 - "$work/pull.json" "$work/start.json" "$IMAGE" "$PULL_RUNS" "$START_RUNS" \
    "$small_size" "$big_size" "$debian_size" <<'PY'
import json, statistics, sys
pull_json, start_json, image, pull_runs, start_runs = sys.argv[1:6]
sizes = dict(zip(("busybox", "busybox + 500 MiB", "debian:bookworm"), map(int, sys.argv[6:9])))
load = lambda f: {r["command"]: r for r in json.load(open(f))["results"]}
def quart(r):
    q = statistics.quantiles(r["times"], n=4)
    return q[0], q[2]
ms = lambda s: f"{s * 1000:.1f} ms"
sec = lambda s: f"{s:.2f} s"

pull = load(pull_json)
m = pull["minirun pull"]["median"]
print(f"### Pull and unpack of `{image}` into an empty store (median of {pull_runs} runs, 1 warmup)\n")
print("| tool | median | min … max | time / minirun's |")
print("| --- | ---: | ---: | ---: |")
for name in ("minirun pull", "skopeo copy + umoci unpack", "podman pull"):
    r = pull[name]
    print(f"| {name} | {sec(r['median'])} | {sec(r['min'])} … {sec(r['max'])} | {r['median'] / m:.2f}x |")
others = {n: pull[n]["median"] for n in ("skopeo copy + umoci unpack", "podman pull")}
met = all(m <= 0.5 * t for t in others.values())
print("\nTarget, minirun at most half of their time: " + ("met" if met else "NOT met") + " ("
      + ", ".join(f"minirun / {n} = {m / t:.2f}" for n, t in others.items()) + ")\n")

start = load(start_json)
s = start["busybox"]
print(f"### Container start, `minirun run --rm --network none IMAGE true` (median of {start_runs} runs, 3 warmups)\n")
print("| image | unpacked size | median | interquartile range | median / busybox's |")
print("| --- | ---: | ---: | ---: | ---: |")
for name in ("busybox", "busybox + 500 MiB", "debian:bookworm"):
    r = start[name]
    q1, q3 = quart(r)
    print(f"| {name} | {sizes[name] / 1e6:.1f} MB | {ms(r['median'])} | {ms(q1)} … {ms(q3)} | {r['median'] / s['median']:.2f} |")
b = start["busybox + 500 MiB"]
diff = abs(b["median"] - s["median"])
noise = max(q3 - q1 for q1, q3 in map(quart, (s, b)))
print(f"\nTarget, start time independent of image size: " + ("met" if diff <= noise else "NOT met")
      + f" (big − small = {(b['median'] - s['median']) * 1000:+.1f} ms; the larger interquartile range is {noise * 1000:.1f} ms)")
PY
