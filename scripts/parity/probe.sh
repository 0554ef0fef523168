#!/bin/sh
# probe.sh: runs INSIDE a container (busybox sh) and prints what the
# container sees as `key: value` lines, one fact a line, for compare.py to
# set side by side:
#     docker run --rm -v $PWD/scripts/parity:/parity:ro IMAGE sh /parity/probe.sh
# Values are raw except for numbers that change from one run to the next of
# the same engine (pipe and socket inodes); compare.py normalises addresses,
# ids and hostnames. Every probe that changes something (mount, mknod,
# unshare, writes) acts inside the container only and undoes itself.

say() { printf '%s: %s\n' "$1" "$2"; }
# One line from a file, or "absent" / "unreadable".
val() {
    if [ ! -e "$1" ]; then echo absent
    elif [ ! -r "$1" ]; then echo unreadable
    else v=$(cat "$1" 2>/dev/null) || { echo unreadable; return; }; printf '%s\n' "$v" | tr '\t\n' '  ' | sed 's/  */ /g; s/ $//'; echo
    fi
}
# "ok" or "fail:<the error's last part>" for a command.
try() {
    if err=$("$@" 2>&1 >/dev/null); then echo ok
    else echo "fail:$(printf '%s' "$err" | tail -n 1 | sed 's/.*: //')"
    fi
}
# Same for a shell snippet.
trysh() {
    if err=$(sh -c "$1" 2>&1 >/dev/null); then echo ok
    else echo "fail:$(printf '%s' "$err" | tail -n 1 | sed 's/.*: //')"
    fi
}
fdlink() { readlink "$1" 2>/dev/null | sed 's/^\(pipe\|socket\|anon_inode\):.*/\1/' || echo closed; }

# Taken first, by globbing only (no fork yet): the processes this pid
# namespace holds and the descriptors the shell was given (0-2 and the
# script it reads; more is something the engine leaked).
set -- /proc/[0-9]*
nproc_start=$#
set -- /proc/$$/fd/*
fds_start=$(for f in "$@"; do printf '%s ' "${f##*/}"; done | sed 's/ $//')
set --

say probe.version 1

# -- process ---------------------------------------------------------------
say pid "$$"
say pid1.cmdline "$(tr '\0' ' ' </proc/1/cmdline | sed 's/ $//')"
say processes.at-start "$nproc_start"
say uid "$(id -u)"
say gid "$(id -g)"
say groups "$(id -G)"
say user "$(id -un 2>/dev/null || echo '?')"
say cwd "$(pwd)"
say umask "$(umask)"
say stdin "$(fdlink /proc/$$/fd/0)"
say stdout "$(fdlink /proc/$$/fd/1)"
say stderr "$(fdlink /proc/$$/fd/2)"
say fds.at-start "$(echo $fds_start | tr ' ' '\n' | sort -n | tr '\n' ' ' | sed 's/ $//')"
say oom_score_adj "$(val /proc/self/oom_score_adj)"
say ulimit.nofile "$(ulimit -Sn)/$(ulimit -Hn)"
say ulimit.nproc "$(ulimit -Su)/$(ulimit -Hu)"
say ulimit.core "$(ulimit -Sc)/$(ulimit -Hc)"
say ulimit.stack "$(ulimit -Ss)/$(ulimit -Hs)"
say ulimit.memlock "$(ulimit -Sl)/$(ulimit -Hl)"
for k in CapInh CapPrm CapEff CapBnd CapAmb Seccomp Seccomp_filters NoNewPrivs Groups; do
    say "status.$k" "$(sed -n "s/^$k:[[:space:]]*//p" /proc/self/status | sed 's/[[:space:]]*$//')"
done

# -- environment -----------------------------------------------------------
env | sort | while IFS= read -r kv; do
    case "$kv" in *=*) say "env[${kv%%=*}]" "${kv#*=}" ;; esac
done
for k in PATH HOSTNAME HOME TERM; do
    eval "[ -n \"\${$k+set}\" ]" || say "env[$k]" "(unset)"
done

# -- names and files the engine writes -------------------------------------
say hostname "$(hostname)"
say hostname.file "$(val /etc/hostname)"
say domainname "$(val /proc/sys/kernel/domainname)"
i=0
while IFS= read -r l; do i=$((i + 1)); say "hosts[$i]" "$(printf '%s' "$l" | tr '\t' ' ' | sed 's/  */ /g; s/ $//')"; done </etc/hosts
i=0
while IFS= read -r l; do i=$((i + 1)); say "resolv[$i]" "$(printf '%s' "$l" | tr '\t' ' ' | sed 's/  */ /g; s/ $//')"; done </etc/resolv.conf

# -- network ---------------------------------------------------------------
say net.interfaces "$(ls /sys/class/net | sort | tr '\n' ' ' | sed 's/ $//')"
for ifc in $(ls /sys/class/net | sort); do
    say "net.$ifc.mtu" "$(val /sys/class/net/$ifc/mtu)"
    say "net.$ifc.mac" "$(val /sys/class/net/$ifc/address)"
    say "net.$ifc.operstate" "$(val /sys/class/net/$ifc/operstate)"
    say "net.$ifc.flags" "$(ip -o link show dev "$ifc" | sed -n 's/^[0-9]*: [^:]*: <\([^>]*\)>.*/\1/p')"
    say "net.$ifc.addr4" "$(ip -o -4 addr show dev "$ifc" | awk '{printf "%s%s", (n++ ? " " : ""), $4; for (i = 5; i < NF; i++) if ($i == "brd") printf " brd %s", $(i + 1)}')"
    say "net.$ifc.addr6" "$(ip -o -6 addr show dev "$ifc" 2>/dev/null | awk '{printf "%s%s/%s", (n++ ? " " : ""), $4, $6}')"
    say "net.$ifc.disable_ipv6" "$(val /proc/sys/net/ipv6/conf/$ifc/disable_ipv6)"
done
i=0
ip -4 route show | sed 's/  */ /g; s/ $//' | while IFS= read -r l; do i=$((i + 1)); say "route4[$i]" "$l"; done
i=0
ip -6 route show 2>/dev/null | sed 's/  */ /g; s/ $//' | while IFS= read -r l; do i=$((i + 1)); say "route6[$i]" "$l"; done
for s in net/ipv4/ping_group_range net/ipv4/ip_unprivileged_port_start net/ipv4/ip_forward net/ipv6/conf/all/disable_ipv6; do
    say "sysctl.$(echo "$s" | tr / .)" "$(val /proc/sys/$s)"
done
say ping.lo "$(try ping -c 1 -W 1 127.0.0.1)"

# -- mounts (target: type options; sources are the engine's business) ------
# Options whose values are host paths (overlay's lowerdir, ...) are dropped.
seen=" "
while read -r src tgt typ opts rest; do
    opts=$(printf '%s' "$opts" | tr , '\n' | grep -v '^[a-z_]*=/' | tr '\n' , | sed 's/,$//')
    key=$tgt
    case "$seen" in *" $tgt "*) n=2; while case "$seen" in *" $tgt#$n "*) true ;; *) false ;; esac; do n=$((n + 1)); done; key="$tgt#$n" ;; esac
    seen="$seen$key "
    say "mount[$key]" "$typ $opts"
done </proc/self/mounts

# -- /dev ------------------------------------------------------------------
say dev.entries "$(ls -A /dev | sort | tr '\n' ' ' | sed 's/ $//')"
for d in $(ls -A /dev | sort); do
    [ -e "/dev/$d" ] || [ -L "/dev/$d" ] || continue
    say "dev[$d]" "$(stat -c '%F %t:%T %a %u:%g' "/dev/$d" 2>/dev/null | sed 's/^symbolic link.*/symlink -> '"$(readlink "/dev/$d" | sed 's/[/&]/\\&/g')"'/')"
done

# -- cgroup limits (v1 and v2 spellings; whichever exist) -------------------
say cgroup.top "$(ls /sys/fs/cgroup 2>/dev/null | sort | tr '\n' ' ' | sed 's/ $//')"
for f in memory/memory.limit_in_bytes memory/memory.memsw.limit_in_bytes memory/memory.soft_limit_in_bytes \
    memory/memory.swappiness memory/memory.kmem.limit_in_bytes cpu/cpu.cfs_quota_us cpu/cpu.cfs_period_us cpu/cpu.shares \
    cpu,cpuacct/cpu.cfs_quota_us cpu,cpuacct/cpu.cfs_period_us cpu,cpuacct/cpu.shares cpuset/cpuset.cpus pids/pids.max \
    blkio/blkio.weight memory.max memory.swap.max memory.high memory.low cpu.max cpu.weight pids.max cpuset.cpus; do
    [ -e "/sys/fs/cgroup/$f" ] && say "cgroup[$f]" "$(val "/sys/fs/cgroup/$f")"
done
# Is the container at the root of its cgroup view (cgroup namespace) or not?
say cgroup.self "$(awk -F: '{print ($3 == "/" ? "root" : "nested")}' /proc/self/cgroup | sort | uniq -c | awk '{printf "%s%s=%s", (n++ ? " " : ""), $2, $1}')"

# -- what the container may not do ----------------------------------------
if [ -e /proc/kcore ]; then say kcore.size "$(stat -c %s /proc/kcore)"; else say kcore.size absent; fi
for p in /proc/acpi /proc/asound /proc/interrupts /proc/kcore /proc/keys /proc/latency_stats /proc/sched_debug \
    /proc/scsi /proc/timer_list /proc/timer_stats /sys/firmware /sys/devices/virtual/powercap; do
    if [ ! -e "$p" ]; then r=absent
    elif [ -d "$p" ]; then [ -z "$(ls -A "$p" 2>/dev/null)" ] && r=empty-dir || r=dir
    elif [ -n "$(head -c 1 "$p" 2>/dev/null)" ]; then r=readable
    else r=empty
    fi
    say "masked[$p]" "$r"
done
dn=$(cat /proc/sys/kernel/domainname 2>/dev/null)
say write.procsys "$(trysh "echo '$dn' > /proc/sys/kernel/domainname")"
if [ -e /proc/sysrq-trigger ]; then say write.sysrq-trigger "$(trysh ': > /proc/sysrq-trigger')"; else say write.sysrq-trigger absent; fi
say write.root "$(trysh 'touch /.probe-rw && rm -f /.probe-rw')"
say write.tmp "$(trysh 'touch /tmp/.probe-rw && rm -f /tmp/.probe-rw')"
say write.devshm "$(trysh 'touch /dev/shm/.probe-rw && rm -f /dev/shm/.probe-rw')"
say mount.tmpfs "$(trysh 'mount -t tmpfs probe /root && umount /root')"
blk=$(for b in /sys/class/block/*; do case "${b##*/}" in loop*|ram*|zram*) ;; *) [ -e "$b/dev" ] && { cat "$b/dev"; break; } ;; esac; done)
if [ -n "$blk" ]; then
    say mknod.disk "$(trysh "mknod /dev/.probe-disk b ${blk%%:*} ${blk#*:}")"
    say open.disk "$(trysh 'head -c 1 /dev/.probe-disk')"
    rm -f /dev/.probe-disk 2>/dev/null
fi
say unshare.net "$(try unshare -n true)"
say chown "$(trysh 'touch /tmp/.probe-own 2>/dev/null || exit 0; chown 1:1 /tmp/.probe-own; r=$?; rm -f /tmp/.probe-own; exit $r')"
say probe.end done
