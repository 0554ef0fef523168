#!/usr/bin/env bash
# Runs minirun's cgroup v2 checks inside a qemu VM. This host has hybrid
# cgroups (v1 controllers, a controller-less cgroup2), so only a VM gives a
# cgroup2 hierarchy with cpu, memory, pids, io and cpuset to prove the v2 path.
#
#   scripts/cgroupv2-vm.sh BINARY
#
# BINARY is minirun, driven as `minirun oci ...`. With RUNTIME_STYLE=runc it
# is any runc-compatible runtime driven directly (runc, crun): that checks
# the checks. Prints one PASS/FAIL line per check; exits 0 only if all
# EXPECTED_CHECKS ran and passed.
#
# Environment: VM_TIMEOUT (seconds, default 300); KERNEL (a bzImage to boot
# instead of Debian's 6.1, which is downloaded once into the cache).
#
# Writes only under /var/tmp/minirun-cgroupv2-vm: the kernel and qemu it
# unpacks there, a build dir per run (removed on exit) and last-run.log.
set -euo pipefail

EXPECTED_CHECKS=17     # the PASS/FAIL lines scripts/cgroupv2-vm/checks.sh prints
CACHE=/var/tmp/minirun-cgroupv2-vm
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/cgroupv2-vm
VM_TIMEOUT=${VM_TIMEOUT:-300}
RUNTIME_STYLE=${RUNTIME_STYLE:-minirun}

die() { echo "cgroupv2-vm: $*" >&2; exit 2; }
say() { echo "cgroupv2-vm: $*" >&2; }

[ $# = 1 ] || die "usage: $0 BINARY   (RUNTIME_STYLE=runc for runc or crun)"
BINARY=$(readlink -f "$1")
[ -x "$BINARY" ] || die "$1: not an executable"
case "$RUNTIME_STYLE" in minirun|runc) ;; *) die "RUNTIME_STYLE is minirun or runc" ;; esac
[ "$(id -u)" = 0 ] || die "run as root (apt-get, mknod for the initramfs)"

mkdir -p "$CACHE"
WORK=$(mktemp -d "$CACHE/build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# Two runs at once would download and unpack into the same cache.
exec 9>"$CACHE/lock"
flock 9

t_start=$SECONDS

apt_updated=
apt_update_once() {
    [ -n "$apt_updated" ] && return
    apt-get update -qq
    apt_updated=1
}

install_host_tools() {
    local missing=
    command -v cpio >/dev/null || missing+=" cpio"
    command -v jq >/dev/null || missing+=" jq"
    # The initramfs needs a busybox that runs without libraries.
    if [ ! -x /bin/busybox ] || ldd /bin/busybox >/dev/null 2>&1; then
        missing+=" busybox-static"
    fi
    [ -z "$missing" ] && return
    say "installing$missing"
    apt_update_once
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 $missing >/dev/null
}

# apt-get download PKG... into $WORK/debs, updating the lists if they are stale.
download_debs() {
    mkdir -p "$WORK/debs"
    (cd "$WORK/debs" && apt-get download -qq "$@" 2>/dev/null) || {
        apt_update_once
        (cd "$WORK/debs" && apt-get download -qq "$@")
    }
}

# Debian's qemu-system-x86 (7.2) is not installed but unpacked into the cache:
# installing it would remove the machine's newer qemu-utils (backports, 10.x),
# which its qemu-system-common Breaks.
QEMU=()
setup_qemu() {
    if command -v qemu-system-x86_64 >/dev/null; then
        QEMU=(qemu-system-x86_64)
        return
    fi
    local root=$CACHE/qemu
    QEMU=(env "LD_LIBRARY_PATH=$root/usr/lib/x86_64-linux-gnu"
        "$root/usr/bin/qemu-system-x86_64" -L "$root/usr/share/qemu")
    "${QEMU[@]}" --version >/dev/null 2>&1 && return
    say "unpacking qemu-system-x86 into $root"
    apt_update_once
    # What apt would install besides the host's own packages: qemu and the
    # libraries the host lacks. (Its plan to remove qemu-utils is ignored.)
    local pkgs
    pkgs=$(apt-get install -s --no-install-recommends qemu-system-x86 |
        awk '/^Inst /{ print $2 "=" substr($3, 2) }')
    [ -n "$pkgs" ] || die "apt found nothing to install for qemu-system-x86"
    download_debs $pkgs
    rm -rf "$root.new"
    for deb in "$WORK"/debs/*.deb; do dpkg-deb -x "$deb" "$root.new"; done
    rm -rf "$root" "$WORK/debs"
    mv "$root.new" "$root"
    "${QEMU[@]}" --version >/dev/null || die "unpacked qemu does not run"
}

# Debian's kernel, unpacked (not installed: no initramfs-tools or grub hooks).
setup_kernel() {
    if [ -n "${KERNEL:-}" ]; then
        [ -r "$KERNEL" ] || die "KERNEL=$KERNEL: not readable"
        return
    fi
    KERNEL=$CACHE/kernel/vmlinuz
    [ -s "$KERNEL" ] && return
    apt_update_once
    local pkg
    pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{ print $2; exit }')
    [ -n "$pkg" ] || die "apt-cache knows no kernel behind linux-image-amd64"
    say "unpacking $pkg's vmlinuz into $CACHE/kernel"
    download_debs "$pkg"
    dpkg-deb -x "$WORK"/debs/"$pkg"_*.deb "$WORK/kernel"
    mkdir -p "$CACHE/kernel"
    cp "$WORK"/kernel/boot/vmlinuz-* "$KERNEL.new"
    echo "$pkg" >"$CACHE/kernel/package"
    mv "$KERNEL.new" "$KERNEL"
    rm -rf "$WORK/kernel" "$WORK/debs"
}

# Installs program $2 as $1/usr/bin/$3 and, by ldd, its libraries and the
# dynamic loader at their own paths under $1.
install_program() {
    local dest=$1 prog=$2 name=$3 lib
    for lib in $(ldd "$prog" 2>/dev/null | grep -o '/[^ ]*' | sort -u); do
        mkdir -p "$dest$(dirname "$lib")"
        cp -L "$lib" "$dest$lib"
    done
    install -m 0755 "$prog" "$dest/usr/bin/$name"
}

# busybox with every applet linked where busybox --list-full puts it.
install_busybox() {
    local dest=$1 applet
    mkdir -p "$dest/bin"
    cp /bin/busybox "$dest/bin/busybox"
    for applet in $(/bin/busybox --list-full); do
        mkdir -p "$dest/$(dirname "$applet")"
        [ -e "$dest/$applet" ] || ln -s /bin/busybox "$dest/$applet"
    done
}

# The capabilities a shell in the container needs for the checks (mknod
# among them), as Docker's default set.
CAPS='["CAP_CHOWN","CAP_DAC_OVERRIDE","CAP_FOWNER","CAP_FSETID","CAP_KILL",
       "CAP_SETGID","CAP_SETUID","CAP_SETPCAP","CAP_NET_BIND_SERVICE",
       "CAP_NET_RAW","CAP_SYS_CHROOT","CAP_MKNOD","CAP_AUDIT_WRITE","CAP_SETFCAP"]'

# write_config ID MEMORY_BYTES SHELL_SCRIPT [JQ_FILTER]
# All bundles share /bundles/rootfs; the containers never run at once.
write_config() {
    local id=$1 memory=$2 script=$3 extra=${4:-.}
    mkdir -p "$STAGE/bundles/$id"
    jq -n --arg id "$id" --argjson memory "$memory" --arg script "$script" \
        --argjson caps "$CAPS" '{
        ociVersion: "1.0.2",
        process: {
            terminal: false,
            user: { uid: 0, gid: 0 },
            args: ["sh", "-c", $script],
            env: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"],
            cwd: "/",
            capabilities: { bounding: $caps, effective: $caps, permitted: $caps },
            noNewPrivileges: true
        },
        root: { path: "/bundles/rootfs", readonly: false },
        hostname: $id,
        mounts: [
            { destination: "/proc", type: "proc", source: "proc" },
            { destination: "/dev", type: "tmpfs", source: "tmpfs",
              options: ["nosuid", "strictatime", "mode=755", "size=65536k"] },
            { destination: "/dev/pts", type: "devpts", source: "devpts",
              options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"] },
            { destination: "/sys", type: "sysfs", source: "sysfs",
              options: ["nosuid", "noexec", "nodev", "ro"] }
        ],
        linux: {
            namespaces: [ { type: "pid" }, { type: "ipc" }, { type: "uts" },
                          { type: "mount" }, { type: "network" } ],
            cgroupsPath: ("/minirun-v2/" + $id),
            resources: {
                memory: { limit: $memory },
                pids: { limit: 50 },
                cpu: { shares: 512, quota: 50000, period: 100000 }
            }
        }
    } | '"$extra" >"$STAGE/bundles/$id/config.json"
}

build_initramfs() {
    STAGE=$WORK/root
    # Debian's merged /usr, so that ldd's /lib/... paths land in usr/lib.
    mkdir -p "$STAGE"/usr/{bin,sbin,lib,lib64} "$STAGE"/{dev,proc,sys,run,tmp,etc,newroot,root}
    ln -s usr/bin "$STAGE/bin"; ln -s usr/sbin "$STAGE/sbin"
    ln -s usr/lib "$STAGE/lib"; ln -s usr/lib64 "$STAGE/lib64"
    # The kernel opens /dev/console for init's stdio before anything is mounted.
    mknod -m 600 "$STAGE/dev/console" c 5 1
    install_busybox "$STAGE"
    install_program "$STAGE" "$(command -v jq)" jq

    if [ "$RUNTIME_STYLE" = minirun ]; then
        install_program "$STAGE" "$BINARY" minirun
        echo "RUNTIME='/usr/bin/minirun oci'" >"$STAGE/etc/vmtest.env"
    else
        install_program "$STAGE" "$BINARY" "$(basename "$BINARY")"
        echo "RUNTIME='/usr/bin/$(basename "$BINARY")'" >"$STAGE/etc/vmtest.env"
    fi

    install -m 0755 "$HERE/init" "$STAGE/init"
    install -m 0755 "$HERE/checks.sh" "$STAGE/checks.sh"

    local rootfs=$STAGE/bundles/rootfs
    mkdir -p "$rootfs"/{dev,proc,sys,tmp,etc,root}
    install_busybox "$rootfs"
    write_config res $((64 << 20)) 'exec sleep 300'
    write_config oom $((16 << 20)) \
        'sh -c '\''x=$(dd if=/dev/zero bs=1M count=64 2>/dev/null | tr "\0" a); echo "len=${#x}"'\''; echo "inner-exit=$?"'
    write_config dev $((64 << 20)) '
        echo x >/dev/null && echo null-write=ok || echo null-write=failed
        mknod /dev/allowed c 60 1 || echo mknod-allowed=failed
        mknod /dev/denied c 60 0 || echo mknod-denied=failed
        for n in allowed denied; do echo "$n: $(head -c 1 /dev/$n 2>&1 >/dev/null)"; done' \
        '.linux.resources.devices = [
            { allow: false, access: "rwm" },
            { allow: true, type: "c", major: 1, minor: 3, access: "rwm" },
            { allow: true, type: "c", major: 60, minor: 1, access: "rwm" } ]'

    (cd "$STAGE" && find . | sort | cpio -o -H newc -R 0:0 --quiet) | gzip -1 >"$WORK/initramfs.gz"
}

install_host_tools
setup_qemu
setup_kernel
build_initramfs
t_built=$SECONDS
flock -u 9

log=$CACHE/last-run.log
say "booting $(basename "$KERNEL") with $BINARY ($RUNTIME_STYLE style), up to ${VM_TIMEOUT}s; serial log: $log"
qemu_rc=0
# TCG: KVM fails on this host ("failed to set MSR").
timeout -k 10 "$VM_TIMEOUT" "${QEMU[@]}" -accel tcg -m 1024 -smp 2 \
    -nographic -no-reboot -nic none \
    -kernel "$KERNEL" -initrd "$WORK/initramfs.gz" \
    -append "console=ttyS0 quiet panic=-1 rdinit=/init" \
    </dev/null >"$log" 2>&1 || qemu_rc=$?
t_done=$SECONDS

# The serial log has CRLFs and the firmware's terminal escapes.
lines=$(sed -e 's/\r//g' -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\x1b[A-Za-z]//g' "$log" |
    grep -aE '^(PASS|FAIL|RESULT) ' || true)
grep -E '^(PASS|FAIL) ' <<<"$lines" || true
result=$(grep -E '^RESULT [0-9]+ passed, [0-9]+ failed$' <<<"$lines" | tail -n 1 || true)
echo "${result:-RESULT missing}"
say "setup+initramfs $((t_built - t_start))s, VM $((t_done - t_built))s"

# Both the guest's count and our own must agree: a check that died before
# printing, or a RESULT from a guest that stopped early, is a failure.
n_pass=$(grep -c '^PASS ' <<<"$lines" || true)
n_fail=$(grep -c '^FAIL ' <<<"$lines" || true)
read -r passed failed < <(awk '{ print $2, $4 }' <<<"${result:-RESULT - x -}")
if [ -z "$result" ]; then
    case "$qemu_rc" in
        124|137) say "the VM did not finish within ${VM_TIMEOUT}s" ;;
        *) say "no RESULT line (qemu exit $qemu_rc)" ;;
    esac
    say "last lines of $log:"
    sed -e 's/\r//g' -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\x1b[A-Za-z]//g' "$log" | tail -n 20 >&2
    exit 1
fi
if [ "$failed" != 0 ] || [ "$n_fail" != 0 ] ||
    [ "$passed" -lt "$EXPECTED_CHECKS" ] || [ "$n_pass" -lt "$EXPECTED_CHECKS" ]; then
    say "want $EXPECTED_CHECKS passed and 0 failed (saw $n_pass PASS, $n_fail FAIL lines)"
    exit 1
fi
say "all $EXPECTED_CHECKS cgroup v2 checks passed"
