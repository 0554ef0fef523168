#!/usr/bin/env bash
# Debian packages minirun's tests need; installs only what is missing.
set -euo pipefail
pkgs="busybox-static iproute2 procps iptables nftables"
missing=$(for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
[ -z "$missing" ] && exit 0
[ "$(id -u)" = 0 ] || { echo "install-deps: need root to install: $missing" >&2; exit 1; }
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 $missing
