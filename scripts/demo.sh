#!/usr/bin/env bash
# The seed article's story told with `minirun run`: a busybox image made
# from Debian's busybox-static (no internet needed), two containers on a
# bridge with their own addresses, a ping between them, a port published and
# fetched from the host, and a third container that shares the first one's
# network namespace (--network container:, as a Kubernetes pod does).
# Usage: demo.sh /path/to/minirun   (as root; cleans up after itself)
set -euo pipefail
MINIRUN=${1:?usage: demo.sh /path/to/minirun}
PORT=${DEMO_PORT:-18480}
net=mrdemo$$
state=$(mktemp -d /tmp/minirun-demo.XXXXXX)
mr() { "$MINIRUN" --root "$state/containers" --image-root "$state/images" --network-root "$state/network" "$@"; }
cleanup() {
    set +e
    for c in $(mr ps -aq 2>/dev/null); do mr rm -f "$c" >/dev/null 2>&1; done
    mr network rm "$net" >/dev/null 2>&1
    # The default network, if any step made it, lives in our own network root.
    mr network rm bridge >/dev/null 2>&1
    rm -rf "$state"
}
trap cleanup EXIT
step() { printf '\n\033[1m# %s\033[0m\n' "$*"; }
show() { printf '\033[2m$ minirun %s\033[0m\n' "$*"; mr "$@"; }

step "An image without internet: busybox-static's binary and its applets, imported as busybox:latest"
rootfs=$state/rootfs
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/www"
cp /bin/busybox "$rootfs/bin/"
for applet in $(/bin/busybox --list); do [ "$applet" = busybox ] || ln -s busybox "$rootfs/bin/$applet"; done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' > "$rootfs/etc/passwd"
printf 'root:x:0:\nnobody:x:65534:\n' > "$rootfs/etc/group"
echo "hello from web" > "$rootfs/www/index.html"
tar -C "$rootfs" -cf "$state/busybox.tar" .
show import "$state/busybox.tar" busybox:latest
show images

step "A network of our own: a Linux bridge, a subnet, NAT out"
show network create "$net"

step "What minirun will do for a container, as commands (nothing is done)"
mr run --explain --network "$net" -p "$PORT:80" busybox httpd -f -p 80 -h /www | grep -v '^mount --bind /dev/null\|^mount --bind /proc' | sed -n '1,60p'  # not head: under pipefail its early exit fails the demo
echo "..."

step "Two containers on it, each in new pid, mount, uts, ipc and net namespaces, with a veth pair to the bridge"
show run -d --name web --network "$net" -p "$PORT:80" busybox httpd -f -p 80 -h /www
show run -d --name client --network "$net" busybox sleep 600
show ps
web_ip=$(mr inspect web | sed -n 's/.*"IPAddress": "\([0-9.]*\)".*/\1/p' | sed -n 1p)
show exec client ip addr show eth0
show exec client ip route

step "Container to container over the bridge"
show exec client ping -c 2 "$web_ip"

step "The published port, from the host (DNAT, 127.0.0.1 included, as curl 127.0.0.1:$PORT with Docker)"
printf '\033[2m$ wget -qO- http://127.0.0.1:%s/\033[0m\n' "$PORT"
/bin/busybox wget -qO- "http://127.0.0.1:$PORT/"

step "A third container joins web's network namespace (--network container:web): same eth0, same address"
show run --rm --network container:web busybox sh -c 'ip addr show eth0; wget -qO- http://127.0.0.1:80/'

step "What minirun set up for the network"
show network inspect --format text "$net"

step "Logs, stop and clean-up: every veth, rule, lease, cgroup and mount goes with the containers"
show logs web
show stop -t 1 web client
show ps -a
show rm web client
show network rm "$net"
echo "done: nothing left"
