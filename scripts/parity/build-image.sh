#!/bin/sh
# build-image.sh OUT.tar: a busybox root filesystem as a tarball, made
# without internet from Debian's busybox-static (/bin/busybox), for
# `docker import OUT.tar --change 'CMD ["sh"]'` and `minirun import OUT.tar`.
# Applets are relative symlinks (bin/ls -> busybox); etc/passwd and etc/group
# have root and nobody. The tar is reproducible: sorted, owner 0, fixed mtime.
set -eu
out=${1:?usage: build-image.sh OUT.tar}
if [ ! -x /bin/busybox ] || ! /bin/busybox --list >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y busybox-static >&2
fi
# A dynamically linked busybox would not run in a root without libc.
if file -L /bin/busybox 2>/dev/null | grep -q 'dynamically linked'; then
    echo "build-image.sh: /bin/busybox is dynamically linked; install busybox-static" >&2
    exit 1
fi
work=$(mktemp -d /tmp/minirun-parity-rootfs.XXXXXX)
trap 'rm -rf "$work"' EXIT
r=$work/rootfs
mkdir -p "$r/bin" "$r/etc" "$r/root" "$r/tmp" "$r/proc" "$r/sys" "$r/dev" "$r/var/www"
chmod 1777 "$r/tmp"
chmod 0700 "$r/root"
cp /bin/busybox "$r/bin/busybox"
for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -s busybox "$r/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n' >"$r/etc/passwd"
printf 'root:x:0:\nnobody:x:65534:\n' >"$r/etc/group"
tar --sort=name --numeric-owner --owner=0 --group=0 --mtime=@0 -C "$r" -cf "$out" .
