#!/usr/bin/env bash
# The OCI runtime on a busybox bundle, step by step: what `make demo` shows
# until the Docker-style front end lands. Usage: demo.sh /path/to/minirun-runc
set -euo pipefail
RT=${1:?usage: demo.sh /path/to/minirun-runc}
root=$(mktemp -d /tmp/minirun-demo-root.XXXXXX)
bundle=$(mktemp -d /tmp/minirun-demo-bundle.XXXXXX)
id=minirun-demo-$$
cleanup() { "$RT" --root "$root" delete --force "$id" >/dev/null 2>&1 || true; rm -rf "$root" "$bundle"; }
trap cleanup EXIT

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
mkdir -p "$bundle/rootfs/bin"
cp /bin/busybox "$bundle/rootfs/bin/"
for applet in $(/bin/busybox --list); do ln -sf busybox "$bundle/rootfs/bin/$applet"; done
(cd "$bundle" && "$RT" spec)
# No terminal: the demo's output goes through pipes.
sed -i 's/"terminal": true/"terminal": false/; s/"args": \["sh"\]/"args": ["sleep", "30"]/' "$bundle/config.json"

step "$RT --root $root create --bundle $bundle $id"
"$RT" --root "$root" create --bundle "$bundle" "$id"
step "$RT state $id   # created: the init waits just before execve"
"$RT" --root "$root" state "$id"
step "$RT start $id"
"$RT" --root "$root" start "$id"
pid=$("$RT" --root "$root" state "$id" | sed -n 's/.*"pid": \([0-9]*\).*/\1/p')
step "ls -l /proc/$pid/ns   # its own pid, mount, uts, ipc, net and cgroup namespaces"
ls -l /proc/"$pid"/ns | awk 'NR>1{print $9, $10, $11}'
step "$RT exec $id sh -c 'hostname; ps; ip addr'"
"$RT" --root "$root" exec "$id" sh -c 'echo hostname: $(hostname); ps; ip addr'
step "$RT ps --format json $id"
"$RT" --root "$root" ps --format json "$id"
step "$RT pause $id; state"
"$RT" --root "$root" pause "$id"; "$RT" --root "$root" state "$id" | grep status
step "$RT resume $id; kill $id KILL; delete $id"
"$RT" --root "$root" resume "$id"; "$RT" --root "$root" kill "$id" KILL
sleep 0.2
"$RT" --root "$root" delete "$id"
step "$RT list"
"$RT" --root "$root" list
