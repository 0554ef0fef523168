#!/usr/bin/env bash
# Soak test of the Docker-style front end: for SOAK_MINUTES (default 10) two
# workers drive a realistic mix of `run -d` (bridge, a user-defined network,
# published ports, --network none, some with --init), `exec`, `stop`, `rm`,
# `rm -f`, `run --rm` in the foreground, `ps` and fetches through published
# ports, each keeping a small pool of live containers, while a long-lived
# "anchor" container runs throughout. A sampler records, every
# SOAK_SAMPLE_SECONDS, the memory (PSS, anonymous) and open fds of every minirun
# process (the detached monitors, the anchor's among them, and the commands
# running at that moment) and what minirun has made: firewall rules and set
# elements, IPAM leases, attachments, veths, mounts, cgroups, state dirs.
#
# At the end, with every container removed, it fails if anything is not back
# to the baseline measured before the loop (exactly), if the monitors' memory
# or fds grew from the first third of the run to the last (PSS: more than
# x1.25 + 512 KiB; fds: at all), or if any command failed. It prints a
# summary, and the same as markdown tables for the README.
#
# Everything happens in a network and mount namespace of the script's own
# (bridges, veths, nftables/iptables rules and mounts never reach the host),
# with state roots of its own under a temporary dir; traffic goes only to
# 127.0.0.1 inside that namespace.
#
# Usage: soak.sh /path/to/minirun   (as root)
# Environment: SOAK_MINUTES (10), SOAK_WORKERS (2), SOAK_POOL (containers
# per worker, 3), SOAK_SAMPLE_SECONDS (5), SOAK_SEED (random), SOAK_KEEP (a
# dir to copy the samples, operation log and errors into).
set -uo pipefail
MINIRUN=$(readlink -f "${1:?usage: soak.sh /path/to/minirun}")
MINUTES=${SOAK_MINUTES:-10}
WORKERS=${SOAK_WORKERS:-2}
POOL=${SOAK_POOL:-3}
SAMPLE_SECONDS=${SOAK_SAMPLE_SECONDS:-5}
SEED=${SOAK_SEED:-$$}
OP_TIMEOUT=120
here=$(cd "$(dirname "$0")" && pwd)

# ---- outside: a work dir, the namespaces, and a check of the host after ----
if [ -z "${SOAK_INNER:-}" ]; then
    [ "$(id -u)" = 0 ] || { echo "soak: needs root" >&2; exit 1; }
    work=$(mktemp -d /var/tmp/minirun-soak.XXXXXX)
    trap 'rm -rf "$work"' EXIT
    # A private mount namespace too: the containers' rootfs mounts, and any
    # netns bind mounts, stay in it.
    SOAK_INNER=$work unshare --net --mount --propagation private -- "$0" "$@"
    rc=$?
    # The namespaces are gone with the inner script; what could still be on
    # the host is a process of ours (a monitor or a container that outlived
    # it) or a mount under the work dir.
    left=0
    for p in /proc/[0-9]*; do
        cmd=$(tr '\0' ' ' 2>/dev/null < "$p/cmdline") || continue
        if [[ $cmd == *"$work/"* ]]; then
            echo "soak: process left: ${p#/proc/} $cmd" >&2
            kill -9 "${p#/proc/}" 2>/dev/null
            left=1
        fi
    done
    if grep -qF -- "$work/" /proc/self/mountinfo; then
        echo "soak: mounts left on the host:" >&2
        grep -F -- "$work/" /proc/self/mountinfo >&2
        left=1
    fi
    [ $left = 0 ] || { echo "soak: FAIL: left on the host" >&2; exit 1; }
    exit $rc
fi

# ---- inside the namespaces ------------------------------------------------
work=$SOAK_INNER
ip link set lo up
root=$work/containers netroot=$work/network imgroot=$work/images
tag=soak-$$
net=soak$$
mr() { "$MINIRUN" --root "$root" --image-root "$imgroot" --network-root "$netroot" "$@"; }
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }

cleanup() {
    set +e
    touch "$work/stop"
    for pid in ${bg_pids:-}; do kill "$pid" 2>/dev/null; done
    wait 2>/dev/null
    for c in $(mr ps -aq --no-trunc 2>/dev/null); do mr rm -f "$c" >/dev/null 2>&1; done
    mr network rm "$net" >/dev/null 2>&1
    mr network rm bridge >/dev/null 2>&1
    if [ -n "${SOAK_KEEP:-}" ]; then
        mkdir -p "$SOAK_KEEP" && cp "$work"/samples "$work"/ops.* "$work"/errors.log "$SOAK_KEEP"/ 2>/dev/null
    fi
}
trap cleanup EXIT

# ---- what is counted -------------------------------------------------------
# minirun's firewall state in this netns: nftables rules and set/map elements
# (each carries a `minirun...` comment, in minirun's table and in the
# iptables-nft tables' coexistence rules) and iptables-legacy rules.
count_rules() {
    local n l
    n=$(nft list ruleset 2>/dev/null | grep -o 'comment "minirun' | wc -l)
    l=$(iptables-legacy-save 2>/dev/null | grep -c minirun)
    echo $((n + l))
}
count_leases() { cat "$netroot"/leases/*.json 2>/dev/null | grep -o '"container_id"' | wc -l; }
count_attachments() { find "$netroot/attachments" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
count_veths() { ip -o link show type veth | wc -l; }
count_mounts() { grep -cF -- "$work/" /proc/self/mountinfo; }
# Container dirs and runtime state dirs under --root.
count_state() {
    local a b
    a=$(find "$root" -mindepth 1 -maxdepth 1 ! -name .lock ! -name .runtime | wc -l)
    b=$(find "$root/.runtime" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
    echo $((a + b))
}
# Cgroups are /minirun/<id> in each hierarchy (as tests/src/lib.rs's
# cgroup_dirs_named finds them); other users of the machine have theirs
# there too, so only the ids of our containers (short ids, in $work/ids)
# count.
count_cgroups() {
    find /sys/fs/cgroup -mindepth 2 -maxdepth 3 -type d -path '*/minirun/*' -printf '%f\n' 2>/dev/null |
        cut -c1-12 | grep -cxF -f "$work/ids"
}
# minirun processes of this soak: pid, kind. A monitor counts as one
# ("monitor", or "anchor" for the anchor's) while it waits on a running
# container: at least 1 s old (a start takes well under that) and with the
# container's init as its child. Starting (before shed_startup_memory) and
# finishing (releasing the network) it briefly holds more pages and a few
# more fds, as the commands do: those samples are "transient", reported but
# not held to the growth check.
minirun_pids() {
    local p comm cmd uptime start ticks children
    ticks=$(getconf CLK_TCK)
    read -r uptime _ < /proc/uptime
    for p in /proc/[0-9]*; do
        # By name, not by /proc/PID/exe: minirun runs from a detached
        # read-only mount of its binary (CVE-2019-5736), whose path reads "/".
        { comm=$(< "$p/comm"); } 2>/dev/null || continue
        [ "$comm" = minirun ] || continue
        cmd=$(tr '\0' ' ' 2>/dev/null < "$p/cmdline") || continue
        [[ $cmd == *"$root"* ]] || continue
        if [[ $cmd == *__monitor* ]]; then
            start=$(sed 's/.*) //' "$p/stat" 2>/dev/null | cut -d' ' -f20) || continue
            { children=$(< "$p/task/${p#/proc/}/children"); } 2>/dev/null || continue
            if [ -n "$children" ] && awk -v u="$uptime" -v s="$start" -v t="$ticks" 'BEGIN {exit !(u - s / t >= 1)}'; then
                case $cmd in *"$anchor_id"*) echo "${p#/proc/} anchor" ;; *) echo "${p#/proc/} monitor" ;; esac
                continue
            fi
        fi
        echo "${p#/proc/} transient"
    done
}
resources() {
    printf 'rules=%s leases=%s attachments=%s veths=%s mounts=%s cgroups=%s state=%s procs=%s\n' \
        "$(count_rules)" "$(count_leases)" "$(count_attachments)" "$(count_veths)" "$(count_mounts)" \
        "$(count_cgroups)" "$(count_state)" "$(minirun_pids | wc -l)"
}

# One sample, a line: seconds since the start, then per kind of process the
# max PSS, max anonymous memory (the heap: what a leak makes grow; PSS also
# moves with file pages faulting back in after the monitor's
# shed_startup_memory) in KiB and the max open fds, then the resource counts.
sample() {
    local t=$1 pid kind pss anon fds
    declare -A mpss=() manon=() mfd=()
    while read -r pid kind; do
        read -r pss anon < <(awk '/^Pss:/ {p=$2} /^Anonymous:/ {a=$2} END {print p+0, a+0}' "/proc/$pid/smaps_rollup" 2>/dev/null)
        fds=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
        [ "${pss:-0}" -gt 0 ] || continue   # gone meanwhile
        [ "$pss" -gt "${mpss[$kind]:-0}" ] && mpss[$kind]=$pss
        [ "$anon" -gt "${manon[$kind]:-0}" ] && manon[$kind]=$anon
        [ "$fds" -gt "${mfd[$kind]:-0}" ] && mfd[$kind]=$fds
    done < <(minirun_pids)
    printf '%s' "$t"
    for kind in monitor anchor transient; do printf ' %s %s %s' "${mpss[$kind]:-0}" "${manon[$kind]:-0}" "${mfd[$kind]:-0}"; done
    printf ' %s\n' "$(resources | sed 's/[a-z]*=//g')"
}

# ---- the operations ----------------------------------------------------------
# Every operation appends "op ok|err ms" to its worker's file; a failure is
# logged with the command and its output.
record() { echo "$1 $2 $3" >> "$work/ops.$W"; }
fail() { # fail OP COMMAND DETAIL MS
    record "$1" err "$4"
    { printf '[%s] worker %s: %s failed: %s\n' "$(date +%T)" "$W" "$1" "$2"; sed 's/^/    /' <<< "$3"; } >> "$work/errors.log"
    log "ERROR: worker $W: $1: $2: $(head -c 300 <<< "$3")"
}
# op NAME ARGS...: `minirun ARGS...` under a timeout; its stdout in $out.
op() {
    local name=$1 t0 rc; shift
    t0=$(now_ms)
    timeout -k 10 "$OP_TIMEOUT" "$MINIRUN" --root "$root" --image-root "$imgroot" --network-root "$netroot" "$@" \
        > "$work/out.$W" 2> "$work/err.$W" < /dev/null
    rc=$?
    out=$(< "$work/out.$W")
    if [ $rc != 0 ]; then
        fail "$name" "minirun $* (exit $rc)" "$(cat "$work/err.$W" "$work/out.$W")" $(($(now_ms) - t0))
        return 1
    fi
    record "$name" ok $(($(now_ms) - t0))
}
# expect NAME WHAT GOT WANT: an output check; a mismatch is an error too.
expect() {
    [ "$3" = "$4" ] && return 0
    fail "$1" "$2: unexpected output" "got: $3
want: $4" 0
    return 1
}
# http NAME PORT: the page of an httpd container through its published port
# (DNAT from 127.0.0.1); retried for a few seconds after a start. (Not with
# busybox-static's wget: its static glibc's resolver crashes on some hosts.)
if command -v curl >/dev/null; then
    fetch() { curl -sS --max-time 5 "$1"; }
else
    fetch() { wget -qO- -T 5 "$1"; }
fi
http() {
    local t0 i got
    t0=$(now_ms)
    for i in $(seq 50); do
        got=$(fetch "http://127.0.0.1:$2/" 2>&1) && [ "$got" = "soak" ] && break
        sleep 0.1
    done
    if [ "$got" != soak ]; then fail http "wget http://127.0.0.1:$2/ for $1" "$got" $(($(now_ms) - t0)); return 1; fi
    record http ok $(($(now_ms) - t0))
}

# A worker: a pool of up to POOL containers of its own (so that no worker
# removes a container another is using), everything else shared with the
# other workers (networks, leases, firewall, the root's lock).
worker() {
    W=$1
    RANDOM=$((SEED + W))
    local names=() ports=() n=0 i r name port id args
    while [ ! -e "$work/stop" ]; do
        r=$((RANDOM % 100))
        if [ ${#names[@]} -lt 2 ] || { [ ${#names[@]} -lt "$POOL" ] && [ $r -lt 25 ]; }; then
            n=$((n + 1)) name=$tag-w$W-$n port=- args=()
            [ $((RANDOM % 3)) = 0 ] && args+=(--init)
            case $((RANDOM % 4)) in
                0) port=$((20000 + W * 1000 + n % 1000))
                   args+=(-p "$port:80" "${httpd[@]}") ;;
                1) args+=(--network "$net" busybox sleep 3600) ;;
                2) args+=(--network none busybox sleep 3600) ;;
                3) args+=(busybox sleep 3600) ;;
            esac
            op run-d run -d --name "$name" "${args[@]}" || { sleep 1; continue; }
            id=$out
            echo "${id:0:12}" >> "$work/ids"
            names+=("$name") ports+=("$port")
            [ "$port" = - ] || http "$name" "$port"
        elif [ $r -lt 45 ]; then
            # exec into one of ours, or now and then into the anchor
            name=${names[RANDOM % ${#names[@]}]}
            [ $((RANDOM % 4)) = 0 ] && name=$tag-anchor
            op exec exec "$name" sh -c 'echo hi' && expect exec "exec $name" "$out" hi
        elif [ $r -lt 55 ]; then
            i=$((RANDOM % ${#names[@]}))
            op stop stop -t 1 "${names[i]}" && op rm rm "${names[i]}"
            unset 'names[i]' 'ports[i]'; names=("${names[@]}") ports=("${ports[@]}")
        elif [ $r -lt 65 ]; then
            i=$((RANDOM % ${#names[@]}))
            op rm-f rm -f "${names[i]}"
            unset 'names[i]' 'ports[i]'; names=("${names[@]}") ports=("${ports[@]}")
        elif [ $r -lt 80 ]; then
            case $((RANDOM % 3)) in 0) args=(--network none) ;; 1) args=(--network "$net") ;; 2) args=() ;; esac
            if op run-rm run --rm "${args[@]}" busybox sh -c 'echo fg; hostname'; then
                echo "${out#*$'\n'}" >> "$work/ids"
                expect run-rm "run --rm ${args[*]}" "${out%%$'\n'*}" fg
            fi
        elif [ $r -lt 90 ]; then
            if op ps ps -a; then
                for name in "${names[@]}" "$tag-anchor"; do
                    grep -q " $name\$" <<< "$out" || { expect ps "ps -a lists $name" "$(grep -c . <<< "$out") lines without it" "a line for $name"; break; }
                done
            fi
        else
            # a fetch through a published port: ours, or the anchor's
            port=19999
            for i in "${!ports[@]}"; do [ "${ports[i]}" = - ] || port=${ports[i]}; done
            http "port $port" "$port"
        fi
    done
    # Drain: the pool goes the way of `rm -f`.
    for name in "${names[@]}"; do op rm-f rm -f "$name"; done
}

sampler() {
    local start=$1
    while [ ! -e "$work/stop" ]; do
        sample $(( $(now_ms) / 1000 - start )) >> "$work/samples"
        sleep "$SAMPLE_SECONDS"
    done
}

# ---- set-up and baseline -----------------------------------------------------
log "soak: $MINUTES min, $WORKERS workers, pool $POOL each, sample every ${SAMPLE_SECONDS}s, seed $SEED, work dir $work"
: > "$work/ids"
# The busybox image `make parity` uses: Debian's busybox-static, no internet.
"$here/parity/build-image.sh" "$work/busybox.tar" || exit 1
# A web server whose page says "soak", for the fetches through published ports.
httpd=(busybox sh -c 'echo soak > /var/www/index.html && exec httpd -f -p 80 -h /var/www')
mr import "$work/busybox.tar" busybox:latest >/dev/null || exit 1
mr network create "$net" >/dev/null || exit 1
# First use makes the default bridge and minirun's base rules: they belong
# to the baseline, as does $net.
for n in bridge "$net"; do
    mr run --rm --network "$n" busybox hostname >> "$work/ids" || exit 1
done
anchor_id=none
baseline=$(resources)
log "baseline: $baseline"

W=0
op run-d run -d --name "$tag-anchor" -p 19999:80 "${httpd[@]}" || exit 1
anchor_id=$out
echo "${anchor_id:0:12}" >> "$work/ids"
http anchor 19999

start=$(( $(now_ms) / 1000 ))
deadline=$((start + MINUTES * 60))
bg_pids=""
sampler "$start" & bg_pids+=" $!"
for w in $(seq "$WORKERS"); do worker "$w" & bg_pids+=" $!"; done
next=0
while [ "$(date +%s)" -lt "$deadline" ]; do
    sleep 5
    if [ "$(date +%s)" -ge "$next" ]; then
        log "$(( $(date +%s) - start ))s: $(cat "$work"/ops.* 2>/dev/null | wc -l) operations, $(grep -c ' err ' "$work"/ops.* 2>/dev/null | awk -F: '{s+=$NF} END {print s+0}') errors; $(tail -1 "$work/samples" 2>/dev/null | awk '{print "monitor PSS " $2 " KiB, fds " $4 "; anchor PSS " $5 " KiB, fds " $7}')"
        next=$(( $(date +%s) + 60 ))
    fi
done
touch "$work/stop"
log "time is up; the workers drain their pools"
for pid in $bg_pids; do wait "$pid"; done
bg_pids=""
W=0
op stop stop -t 1 "$tag-anchor" && op rm rm "$tag-anchor"
left=$(mr ps -aq --no-trunc)
if [ -n "$left" ]; then
    fail leftover "ps -aq after the drain" "$(mr ps -a --no-trunc; for c in $left; do mr inspect "$c"; done)" 0
    for c in $left; do mr rm -f "$c" >/dev/null; done
fi

# ---- end state ------------------------------------------------------------------
# rm returns when its container is gone; allow a few seconds anyway for
# anything asynchronous, and say so if it was needed.
end=$(resources)
for i in $(seq 50); do
    [ "$end" = "$baseline" ] && break
    sleep 0.2
    end=$(resources)
done
[ "$i" -gt 1 ] && log "note: the end state took $((i - 1)) x 0.2 s to settle"

python3 - "$work" "$MINUTES" "$baseline" "$end" <<'PY'
import glob, os, statistics, sys
work, minutes, baseline, end = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
failures = []

ops = {}
for f in sorted(glob.glob(os.path.join(work, "ops.*"))):
    for line in open(f):
        name, status, ms = line.split()
        o = ops.setdefault(name, {"ok": 0, "err": 0, "ms": []})
        o[status] += 1
        if status == "ok":
            o["ms"].append(int(ms))
errors = sum(o["err"] for o in ops.values())
if errors:
    failures.append(f"{errors} failed operations (see above and errors.log)")

cols = ["t"] + [f"{k}_{m}" for k in ("monitor", "anchor", "transient") for m in ("pss", "anon", "fd")] + \
       ["rules", "leases", "attachments", "veths", "mounts", "cgroups", "state", "procs"]
samples = [dict(zip(cols, map(int, l.split()))) for l in open(os.path.join(work, "samples")) if l.strip()]
span = max(minutes * 60, 1)
first = [s for s in samples if s["t"] < span / 3]
last = [s for s in samples if s["t"] >= 2 * span / 3]
mem = []
for kind, checked in (("monitor", True), ("anchor", True), ("transient", False)):
    for metric in ("pss", "anon", "fd"):
        key = f"{kind}_{metric}"
        a = max((s[key] for s in first if s[key]), default=0)
        b = max((s[key] for s in last if s[key]), default=0)
        verdict = "-"
        if checked and a and b:
            bad = b > a if metric == "fd" else b > a * 1.25 + 512
            verdict = "FAIL" if bad else "ok"
            if bad:
                failures.append(f"{kind} {metric}: {a} in the first third, {b} in the last")
        elif checked:
            # The anchor is always there; a short run may have caught no
            # monitor of the pool between its start and its end.
            verdict = "no samples"
            if kind == "anchor":
                failures.append(f"{kind} {metric}: no samples in the first or last third")
        mem.append((kind, metric, a, b, verdict))

parse = lambda s: dict(kv.split("=") for kv in s.split())
base, endc = parse(baseline), parse(end)
peak = {k: max((s[k] for s in samples), default=0) for k in base}
res = []
for k in base:
    ok = base[k] == endc[k]
    res.append((k, base[k], peak[k], endc[k], "ok" if ok else "FAIL"))
    if not ok:
        failures.append(f"{k}: {base[k]} before, {endc[k]} after")

units = {"pss": "PSS KiB", "anon": "anon KiB", "fd": "fds"}
what = {"monitor": "monitors (pool)", "anchor": "anchor's monitor", "transient": "commands, monitors starting or ending (not checked)"}
def table(md):
    out = []
    def row(cells, head=False):
        if md:
            out.append("| " + " | ".join(map(str, cells)) + " |")
            if head:
                out.append("|" + "|".join(" --- " for _ in cells) + "|")
        else:
            out.append("  ".join(f"{c!s:>14}" if i else f"{c!s:<52}" for i, c in enumerate(cells)))
    total = sum(o["ok"] + o["err"] for o in ops.values())
    out.append(f"soak: {minutes:g} min, {len(samples)} samples, {total} operations, {errors} errors")
    out.append("")
    row(["operation", "done", "errors", "median ms", "max ms"], True)
    for name, o in sorted(ops.items()):
        ms = o["ms"] or [0]
        row([name, o["ok"] + o["err"], o["err"], int(statistics.median(ms)), max(ms)])
    out.append("")
    row(["process, max", "first third", "last third", "verdict"], True)
    for kind, metric, a, b, v in mem:
        row([f"{what[kind]} {units[metric]}", a, b, v])
    out.append("")
    row(["resource", "baseline", "peak", "end", "verdict"], True)
    for r in res:
        row(list(r))
    return "\n".join(out)

print()
print(table(False))
print()
print("Markdown:")
print()
print(table(True))
print()
if failures:
    print("soak: FAIL")
    for f in failures:
        print("  - " + f)
    err_log = os.path.join(work, "errors.log")
    if os.path.exists(err_log):
        print("\nerrors:")
        print(open(err_log).read())
    sys.exit(1)
print("soak: PASS")
PY
