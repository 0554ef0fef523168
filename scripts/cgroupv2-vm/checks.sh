#!/bin/sh
# The cgroup v2 checks, run by /init inside the VM. One line per check,
# "PASS name" or "FAIL name: details", then "RESULT n passed, m failed".
# The host script knows how many checks there are (EXPECTED_CHECKS): keep the
# two in step when adding one. A check whose setup failed still runs and
# fails, so the count stays the same.

. /etc/vmtest.env     # RUNTIME: the command words, e.g. "/usr/bin/minirun oci"
CG=/sys/fs/cgroup/minirun-v2
passed=0
failed=0

# A hung runtime must cost one check, not the whole VM timeout.
rt() { timeout 60 $RUNTIME --root /run/mr "$@"; }

pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() {
    name=$1; shift
    echo "FAIL $name: $(printf '%s' "$*" | tr '\n' ' ')"
    failed=$((failed + 1))
}
check_eq() { # name actual expected
    if [ "$2" = "$3" ]; then pass "$1"; else fail "$1" "got '$2', want '$3'"; fi
}
state_of() { rt state "$1" 2>/dev/null | jq -r ".$2"; }
wait_status() { # id status seconds
    n=$(($3 * 5))
    while [ "$n" -gt 0 ]; do
        [ "$(state_of "$1" status)" = "$2" ] && return 0
        sleep 0.2; n=$((n - 1))
    done
    return 1
}
# The last lines of a runtime's output, for a failure's details.
tail_of() { tail -n 3 "$1" 2>/dev/null; }

controllers=$(cat /sys/fs/cgroup/cgroup.subtree_control)
missing=""
for c in cpu memory pids; do
    case " $controllers " in *" $c "*) ;; *) missing="$missing $c" ;; esac
done
if [ -z "$missing" ]; then
    pass vm-controllers
else
    fail vm-controllers "root subtree_control '$controllers' lacks$missing"
fi

# (a) limits of a running container, converted as runc converts them.
# The container inherits our stdio: keep it off pipes, or $(...) would wait
# for `sleep 300`.
if rt create --bundle /bundles/res res </dev/null >/tmp/res.out 2>&1 &&
    rt start res </dev/null >>/tmp/res.out 2>&1 && wait_status res running 10; then
    pass create-start
else
    fail create-start "$(tail_of /tmp/res.out) status=$(state_of res status)"
fi
pid=$(state_of res pid)
check_eq memory.max "$(cat $CG/res/memory.max 2>&1)" 67108864
check_eq pids.max "$(cat $CG/res/pids.max 2>&1)" 50
# shares 512 -> 1 + ((512 - 2) * 9999) / 262142
check_eq cpu.weight "$(cat $CG/res/cpu.weight 2>&1)" 20
check_eq cpu.max "$(cat $CG/res/cpu.max 2>&1)" "50000 100000"
if grep -qx "$pid" $CG/res/cgroup.procs 2>/dev/null; then
    pass cgroup.procs
else
    fail cgroup.procs "init pid '$pid' not in: $(cat $CG/res/cgroup.procs 2>&1)"
fi

# (b)
ps_json=$(rt ps --format json res 2>&1)
if [ -n "$pid" ] && printf '%s' "$ps_json" | jq -e --argjson p "$pid" 'any(.[]; . == $p)' >/dev/null 2>&1; then
    pass ps-json
else
    fail ps-json "init pid '$pid', ps says: $ps_json"
fi

# (c) The freeze is asynchronous in the kernel; cgroup.events says when done.
out=$(rt pause res 2>&1)
n=25
while [ "$n" -gt 0 ] && ! grep -qx "frozen 1" $CG/res/cgroup.events 2>/dev/null; do
    sleep 0.2; n=$((n - 1))
done
freeze=$(cat $CG/res/cgroup.freeze 2>&1)
frozen=$(grep frozen $CG/res/cgroup.events 2>&1)
status=$(state_of res status)
if [ "$freeze" = 1 ] && [ "$frozen" = "frozen 1" ] && [ "$status" = paused ]; then
    pass pause
else
    fail pause "cgroup.freeze=$freeze events='$frozen' status=$status $out"
fi
out=$(rt resume res 2>&1)
freeze=$(cat $CG/res/cgroup.freeze 2>&1)
status=$(state_of res status)
if [ "$freeze" = 0 ] && [ "$status" = running ]; then
    pass resume
else
    fail resume "cgroup.freeze=$freeze status=$status $out"
fi

# (e) Only a cgroup that was there can prove its removal.
existed=no; [ -d $CG/res ] && existed=yes
out=$(rt delete --force res 2>&1)
if [ $existed = yes ] && [ ! -e $CG/res ] && ! rt state res >/dev/null 2>&1; then
    pass delete-force
else
    fail delete-force "cgroup existed before: $existed; after: $(ls -d $CG/res 2>&1) $out"
fi

# (d) The inner shell holds 64 MiB in a variable against a 16 MiB limit
# (no swap in the VM); tr because shells drop NUL bytes.
if rt create --bundle /bundles/oom oom </dev/null >/tmp/oom.out 2>&1 &&
    rt start oom </dev/null >>/tmp/oom.out 2>&1 && wait_status oom stopped 120; then
    if grep -qx "inner-exit=137" /tmp/oom.out; then
        pass oom-killed
    else
        fail oom-killed "output: $(tail_of /tmp/oom.out)"
    fi
else
    fail oom-killed "status=$(state_of oom status) $(tail_of /tmp/oom.out)"
fi
oom_kills=$(awk '$1 == "oom_kill" { print $2 }' $CG/oom/memory.events 2>/dev/null)
if [ "${oom_kills:-0}" -ge 1 ]; then
    pass oom-events
else
    fail oom-events "memory.events: $(cat $CG/oom/memory.events 2>&1)"
fi
existed=no; [ -d $CG/oom ] && existed=yes
out=$(rt delete oom 2>&1)
if [ $existed = yes ] && [ ! -e $CG/oom ]; then
    pass oom-delete
else
    fail oom-delete "cgroup existed before: $existed; after: $(ls -d $CG/oom 2>&1) $out"
fi

# (f) The runtimes add the OCI default devices (null, zero, full, random,
# urandom, tty, ptmx, pts, tun) and mknod of any node to every config, so the
# denied device is one outside that set: 60:0 (local/experimental, no driver).
# Its twin 60:1 is allowed: opening it fails with ENXIO from the missing
# driver, which proves the EPERM on 60:0 comes from the device filter.
rt run --bundle /bundles/dev dev </dev/null >/tmp/dev.out 2>&1
if grep -qx "null-write=ok" /tmp/dev.out; then
    pass devices-null
else
    fail devices-null "$(tail_of /tmp/dev.out)"
fi
if grep -q "^allowed: .*No such device or address" /tmp/dev.out; then
    pass devices-allowed-enxio
else
    fail devices-allowed-enxio "$(grep -e '^allowed' -e mknod /tmp/dev.out || tail_of /tmp/dev.out)"
fi
if grep -q "^denied: .*Operation not permitted" /tmp/dev.out; then
    pass devices-denied-eperm
else
    fail devices-denied-eperm "$(grep -e '^denied' -e mknod /tmp/dev.out || tail_of /tmp/dev.out)"
fi

echo "RESULT $passed passed, $failed failed"
