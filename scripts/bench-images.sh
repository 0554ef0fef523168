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
# end.
# All stores (minirun, podman, skopeo/umoci, TMPDIR) live on an ext4 file system
# of their own, with a journal, loop-mounted in /var/tmp/minirun-bench-images.XXXXXX
# (sparse, ~3 GB used at the peak); all of it is removed at the end, even on
# failure. Why not the host's file system: here it is ext4 without a journal,
# where creating files soon after anyone on the machine deleted many costs
# seconds more (the inode allocator skips recently freed inodes), so pulls
# measured there mostly measure the neighbours. BENCH_LOOPFS=0 measures in the
# work directory itself anyway. Runs are split into rounds, the tools taking
# turns, so that a busy spell on the shared machine falls on all of them.
# Usage: bench-images.sh /path/to/minirun   (as root; about 2 minutes)
# Env: PULL_RUNS=10 START_RUNS=60 ROUNDS=2 BENCH_OWN_REGISTRY=1 (ignore :5000)
#      BENCH_LOOPFS=1 CLI_IMAGES_DIR=/var/tmp/cli-images
set -euo pipefail
usage="usage: bench-images.sh /path/to/minirun   (as root)"
MINIRUN=${1:?$usage}
PULL_RUNS=${PULL_RUNS:-10}
START_RUNS=${START_RUNS:-60}
ROUNDS=${ROUNDS:-2}
IMAGES_SRC=${CLI_IMAGES_DIR:-/var/tmp/cli-images}
[ "$(id -u)" = 0 ] || { echo "$usage" >&2; exit 2; }
[ -x "$MINIRUN" ] || { echo "not an executable: $MINIRUN" >&2; exit 2; }
MINIRUN=$(readlink -f "$MINIRUN")
log() { echo "[bench-images] $*" >&2; }

need=()
for tool in hyperfine skopeo umoci podman curl python3 mkfs.ext4; do command -v "$tool" >/dev/null || need+=("$tool"); done
[ -x /bin/busybox ] || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
    need=("${need[@]/mkfs.ext4/e2fsprogs}")
    log "installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

work=$(mktemp -d /var/tmp/minirun-bench-images.XXXXXX)
F=$work/fs            # where every store lives (a file system of our own)
reg_pid=""
hf_pid=""
# empty.sh DIR... : unmount whatever is mounted below each DIR (deepest first;
# nothing should be), remove it, and flush the file system: the next run starts
# from an empty store and a clean page cache.
cat > "$work/empty.sh" <<EOF
#!/bin/sh
for d in "\$@"; do
    findmnt -rn -o TARGET | awk -v p="\$d/" 'index(\$0, p) == 1' | sort -r | while read -r m; do umount "\$m" || umount -l "\$m"; done
    rm -rf "\$d"
done
sync -f "$F"
EOF
chmod +x "$work/empty.sh"
cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM HUP
    if [ -n "$hf_pid" ]; then kill -TERM "$hf_pid" 2>/dev/null; wait "$hf_pid" 2>/dev/null; fi
    if [ -d "$F/run" ]; then
        for c in $(mr ps -aq 2>/dev/null); do mr rm -f "$c" >/dev/null 2>&1; done
    fi
    if [ -n "$reg_pid" ]; then
        kill "$reg_pid" 2>/dev/null; wait "$reg_pid" 2>/dev/null
        log "stopped our registry (pid $reg_pid)"
    fi
    findmnt -rn -o TARGET | awk -v p="$work/" 'index($0, p) == 1' | sort -r | while read -r m; do umount "$m" || umount -l "$m"; done
    # The loop device goes with the unmount (autoclear); detach it if not.
    for dev in $(losetup -n -O NAME -j "$work/fs.img" 2>/dev/null); do losetup -d "$dev"; done
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

mkdir -p "$F"
if [ "${BENCH_LOOPFS:-1}" = 1 ]; then
    truncate -s 12G "$work/fs.img"
    mkfs.ext4 -q -F "$work/fs.img"
    mount -o loop,noinit_itable "$work/fs.img" "$F"   # no background inode-table zeroing while timing
fi
export TMPDIR=$F/tmp   # skopeo's and podman's temporary blobs stay in here
mkdir -p "$TMPDIR"
mr() { "$MINIRUN" --root "$F/run/containers" --image-root "$F/run/images" --network-root "$F/run/network" "$@"; }

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

# reap.py CMD... : run CMD in a process group of its own, as the "child
# subreaper" of all it starts. SIGINT/SIGTERM/SIGHUP are passed on to that group
# (and end the run); orphans are reaped here, as this machine's pid 1 does not
# reap them, and whatever is left of the group once CMD has ended is killed.
cat > "$work/reap.py" <<'EOF'
import ctypes, os, signal, sys, time
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
pid = os.fork()
if pid == 0:
    os.setpgid(0, 0)
    for s in sigs:
        signal.signal(s, signal.SIG_DFL)
    os.execvp(sys.argv[1], sys.argv[1:])
try:
    os.setpgid(pid, pid)
except OSError:
    pass
def killpg(sig):
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
for s in sigs:
    signal.signal(s, lambda sig, _: killpg(sig))
def children():
    me = str(os.getpid())
    for d in os.listdir("/proc"):
        try:
            if d.isdigit() and open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()[1] == me:
                yield int(d)
        except (OSError, IndexError):
            pass
status, deadline = None, None
while True:
    try:
        p, st = os.waitpid(-1, 0 if deadline is None else os.WNOHANG)
    except ChildProcessError:
        break
    if p == pid:
        status = st
        killpg(signal.SIGKILL)
        deadline = time.time() + 10
    elif p == 0:
        if time.time() > deadline:
            left = list(children())
            print(f"reap.py: killing what {sys.argv[1]} left behind: {left}", file=sys.stderr)
            for c in left:
                os.kill(c, signal.SIGKILL)
            deadline = time.time() + 10
        time.sleep(0.05)
code = os.waitstatus_to_exitcode(status) if status is not None else 1
sys.exit(128 - code if code < 0 else code)
EOF

# rounds NAME WARMUP RUNS_PER_ROUND HYPERFINE_ARGS... : ROUNDS hyperfine runs
# (warmups in the first only), each exporting $work/NAME.ROUND.json.
rounds() {
    local name=$1 warmup=$2 runs=$3 r
    shift 3
    for r in $(seq "$ROUNDS"); do
        # In the background, so that a signal reaches our trap at once.
        python3 "$work/reap.py" hyperfine -N --style basic --warmup "$([ "$r" = 1 ] && echo "$warmup" || echo 0)" \
            --runs "$runs" --export-json "$work/$name.$r.json" "$@" </dev/null >&2 &
        hf_pid=$!
        wait "$hf_pid" || { rc=$?; hf_pid=""; exit "$rc"; }
        hf_pid=""
    done
}
per_round() { echo $(( ($1 + ROUNDS - 1) / ROUNDS )); }

# ---- 1. pull + unpack into an empty store -------------------------------
P=$F/pull
mkdir -p "$P"
cat > "$work/skopeo-umoci.sh" <<EOF
#!/bin/sh
set -e
mkdir -p $P/skopeo
skopeo copy --quiet --src-tls-verify=false docker://$IMAGE oci:$P/skopeo/oci:bookworm
exec umoci unpack --image $P/skopeo/oci:bookworm $P/skopeo/bundle >/dev/null
EOF
chmod +x "$work/skopeo-umoci.sh"
# podman 4.3 refuses a runroot longer than 50 characters: keep it short.
pm_run=$F/pmrun
[ ${#pm_run} -le 50 ] || { log "podman runroot path too long: $pm_run"; exit 1; }
log "pull + unpack of $IMAGE: 1 warmup + $ROUNDS x $(per_round "$PULL_RUNS") runs each of minirun, skopeo+umoci, podman"
rounds pull 1 "$(per_round "$PULL_RUNS")" \
    --prepare "$work/empty.sh $P/mr" -n "minirun pull" \
    "$MINIRUN --root $P/mr/containers --image-root $P/mr/images --network-root $P/mr/network pull -q $IMAGE" \
    --prepare "$work/empty.sh $P/skopeo" -n "skopeo copy + umoci unpack" "$work/skopeo-umoci.sh" \
    --prepare "$work/empty.sh $P/pm $pm_run" -n "podman pull" \
    "podman --root $P/pm/root --runroot $pm_run --tmpdir $P/pm/tmp --storage-driver overlay --events-backend none pull -q --tls-verify=false $IMAGE"
"$work/empty.sh" "$P" "$pm_run"

# ---- 2. container start, small vs big image -----------------------------
rootfs=$F/rootfs
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/root" "$rootfs/tmp"
cp /bin/busybox "$rootfs/bin/"
for applet in $(/bin/busybox --list); do [ "$applet" = busybox ] || ln -s busybox "$rootfs/bin/$applet"; done
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$rootfs/etc/passwd"
printf 'root:x:0:\n' > "$rootfs/etc/group"
tar -C "$rootfs" -cf "$F/small.tar" .
mkdir -p "$rootfs/data/files"
head -c 450M /dev/urandom > "$rootfs/data/big.bin"
head -c 50M /dev/urandom | split -b 4096 -a 4 - "$rootfs/data/files/f"
tar -C "$rootfs" -cf "$F/big.tar" .
log "importing the small and big images, pulling debian (not timed)"
mr import "$F/small.tar" bench-small:latest >/dev/null
mr import "$F/big.tar" bench-big:latest >/dev/null
mr pull -q "$IMAGE" >/dev/null
rm -rf "$rootfs" "$F/small.tar" "$F/big.tar"
unpacked() { mr image inspect "$1" | python3 -c '
import json, subprocess, sys
d = json.load(sys.stdin)
d = d[0] if isinstance(d, list) else d
print(sum(int(subprocess.check_output(["du", "-sb", l]).split()[0]) for l in d["Layers"]))'; }
small_size=$(unpacked bench-small:latest)
big_size=$(unpacked bench-big:latest)
debian_size=$(unpacked "$IMAGE")
# The imports leave ~1 GB of dirty pages (in our file system, then in its
# backing file); let writeback finish so that it does not stall timed runs.
sync -f "$F"; sync -f "$work"
for img in bench-small:latest bench-big:latest "$IMAGE"; do mr run --rm --network none "$img" true; done
run="$MINIRUN --root $F/run/containers --image-root $F/run/images --network-root $F/run/network run --rm --network none"
log "container start: 3 warmups + $ROUNDS x $(per_round "$START_RUNS") runs per image"
rounds start 3 "$(per_round "$START_RUNS")" \
    -n "busybox" "$run bench-small:latest true" \
    -n "busybox + 500 MiB" "$run bench-big:latest true" \
    -n "debian:bookworm" "$run $IMAGE true"

# ---- report -------------------------------------------------------------
python3 - "$work" "$ROUNDS" "$IMAGE" "$small_size" "$big_size" "$debian_size" "${BENCH_LOOPFS:-1}" <<'PY'
import json, statistics, sys
work, rounds, image = sys.argv[1], int(sys.argv[2]), sys.argv[3]
sizes = dict(zip(("busybox", "busybox + 500 MiB", "debian:bookworm"), map(int, sys.argv[4:7])))
fs = "a journaled ext4 of its own (loop)" if sys.argv[7] == "1" else "the host's file system"

def load(name):
    times = {}
    for r in range(1, rounds + 1):
        for res in json.load(open(f"{work}/{name}.{r}.json"))["results"]:
            times.setdefault(res["command"], []).extend(res["times"])
    return times

def stats(t):
    q1, _, q3 = statistics.quantiles(t, n=4)
    return statistics.median(t), min(t), max(t), q1, q3

pull = load("pull")
n = len(pull["minirun pull"])
m = statistics.median(pull["minirun pull"])
print(f"### Pull and unpack of `{image}` into an empty store on {fs} (median of {n} runs in {rounds} rounds, 1 warmup)\n")
print("| tool | median | min … max | median / minirun's |")
print("| --- | ---: | ---: | ---: |")
for name in ("minirun pull", "skopeo copy + umoci unpack", "podman pull"):
    med, lo, hi, _, _ = stats(pull[name])
    print(f"| {name} | {med:.2f} s | {lo:.2f} … {hi:.2f} s | {med / m:.2f}x |")
others = {k: statistics.median(pull[k]) for k in ("skopeo copy + umoci unpack", "podman pull")}
met = all(m <= 0.5 * t for t in others.values())
print("\nTarget, minirun at most half of their time: " + ("met" if met else "NOT met") + " ("
      + ", ".join(f"minirun / {k} = {m / t:.2f}" for k, t in others.items()) + ")\n")

start = load("start")
n = len(start["busybox"])
s = stats(start["busybox"])
print(f"### Container start, `minirun run --rm --network none IMAGE true` (median of {n} runs in {rounds} rounds, 3 warmups)\n")
print("| image | unpacked size | median | interquartile range | median / busybox's |")
print("| --- | ---: | ---: | ---: | ---: |")
for name in ("busybox", "busybox + 500 MiB", "debian:bookworm"):
    med, _, _, q1, q3 = stats(start[name])
    print(f"| {name} | {sizes[name] / 1e6:.1f} MB | {med * 1000:.1f} ms | {q1 * 1000:.1f} … {q3 * 1000:.1f} ms | {med / s[0]:.2f} |")
b = stats(start["busybox + 500 MiB"])
diff = b[0] - s[0]
noise = max(s[4] - s[3], b[4] - b[3])
print(f"\nTarget, start time independent of image size: " + ("met" if abs(diff) <= noise else "NOT met")
      + f" (big − small = {diff * 1000:+.1f} ms; the larger interquartile range is {noise * 1000:.1f} ms)")
PY
