#!/usr/bin/env bash
# The seed article's story with minirun, step by step: OCI containers from a
# busybox bundle, two of them on a bridge with their own addresses, a ping
# between them, a published port fetched from the host, and a third container
# that shares the first one's network namespace (as a Kubernetes pod does).
# Usage: demo.sh /path/to/minirun   (as root; cleans up after itself)
set -euo pipefail
MINIRUN=${1:?usage: demo.sh /path/to/minirun}
PORT=${DEMO_PORT:-18480}
tag=mrdemo$$
root=$(mktemp -d /tmp/minirun-demo-root.XXXXXX)
netroot=$(mktemp -d /tmp/minirun-demo-net.XXXXXX)
work=$(mktemp -d /tmp/minirun-demo.XXXXXX)
oci() { "$MINIRUN" oci --root "$root" "$@"; }
net() { "$MINIRUN" --network-root "$netroot" network "$@"; }
cleanup() {
    set +e
    for c in web client sidecar; do oci delete --force "$tag-$c" >/dev/null 2>&1; net detach "$tag-$c" >/dev/null 2>&1; done
    net rm "$tag" >/dev/null 2>&1
    rm -rf "$root" "$netroot" "$work"
}
trap cleanup EXIT
step() { printf '\n\033[1m# %s\033[0m\n' "$*"; }
show() { printf '\033[2m$ %s\033[0m\n' "$*"; "$@"; }

# A bundle per container: busybox with its applets, and `minirun spec`'s
# config without a terminal.
bundle() { # bundle NAME ARGS-JSON
    local b=$work/$1
    mkdir -p "$b/rootfs/bin" "$b/rootfs/www" "$b/rootfs/etc"
    cp /bin/busybox "$b/rootfs/bin/"
    for applet in $(/bin/busybox --list); do [ "$applet" = busybox ] || ln -sf busybox "$b/rootfs/bin/$applet"; done
    echo "hello from $1" > "$b/rootfs/www/index.html"
    (cd "$b" && "$MINIRUN" oci spec)
    sed -i "s|\"terminal\": true|\"terminal\": false|; s|\"readonly\": true|\"readonly\": false|; s|\"args\": \[\"sh\"\]|\"args\": $2|" "$b/config.json"
}
start() { oci run --detach --bundle "$work/$1" "$tag-$1" </dev/null >/dev/null 2>&1; oci state "$tag-$1" | sed -n 's/.*"pid": \([0-9]*\).*/\1/p'; }

step "Two containers, each in its own namespaces (pid, mount, uts, ipc, net, cgroup)"
bundle web '["httpd", "-f", "-p", "80", "-h", "/www"]'
bundle client '["sleep", "600"]'
web_pid=$(start web); client_pid=$(start client)
echo "web: pid $web_pid, client: pid $client_pid"
show oci exec "$tag-client" ip link

step "A bridge network, and each container attached by a veth pair (eth0 inside)"
show net create "$tag"
web_ip=$(net attach "$tag" --netns /proc/$web_pid/ns/net --id "$tag-web" -p "$PORT:80" | sed -n 's/.*"address": "\([0-9.]*\)\/.*/\1/p')
client_ip=$(net attach "$tag" --netns /proc/$client_pid/ns/net --id "$tag-client" | sed -n 's/.*"address": "\([0-9.]*\)\/.*/\1/p')
echo "web: $web_ip, client: $client_ip"
show oci exec "$tag-client" ip addr show eth0
show oci exec "$tag-client" ip route

step "Container to container over the bridge"
show oci exec --cap CAP_NET_RAW "$tag-client" ping -c 2 "$web_ip"

step "The published port, from the host (DNAT, 127.0.0.1 included)"
show /bin/busybox wget -qO- "http://127.0.0.1:$PORT/"

step "A third container joins web's network namespace (--network container:web)"
bundle sidecar '["sleep", "600"]'
sed -i "s#{ *\"type\": \"network\" *}#{ \"type\": \"network\", \"path\": \"/proc/$web_pid/ns/net\" }#" "$work/sidecar/config.json"
start sidecar >/dev/null
show oci exec "$tag-sidecar" ip addr show eth0
show oci exec "$tag-sidecar" wget -qO- http://127.0.0.1:80/

step "What minirun set up for the network"
show net inspect "$tag"

step "Clean-up: delete the containers, detach them, remove the network"
for c in sidecar client web; do oci delete --force "$tag-$c"; done
for c in client web; do net detach "$tag-$c"; done
show net rm "$tag"
echo "done: nothing left"
