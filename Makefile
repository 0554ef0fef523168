# minirun: build, test, demo, bench. Run as root (containers need it).
CARGO   ?= cargo
PREFIX  ?= /usr/local
RELEASE := target/release
BIN     := $(RELEASE)/minirun
OCI_BIN := $(RELEASE)/minirun-runc
SHARED  ?= ../shared

.PHONY: all build deps test unit-test integration-test demo demo-oci bench bench-front bench-images bench-network soak install uninstall test-cgroupv2 check-clients parity clippy fuzz clean

all: build

build:
	$(CARGO) build --release --bin minirun
	# A hard link, not a symlink: tools that resolve symlinks (readlink -f)
	# would otherwise call plain `minirun` and reach the other front end.
	ln -f $(BIN) $(OCI_BIN)

# Debian packages the tests need (busybox-static for the test bundles).
deps:
	scripts/install-deps.sh

# rootfs's root tests fork a child per container from the test process;
# forking from a process with several test threads is what minirun itself
# never does, so they run one at a time.
unit-test:
	$(CARGO) test --workspace --exclude minirun-tests --exclude minirun-rootfs
	$(CARGO) test -p minirun-rootfs -- --test-threads=1

# The fault-injection build (MINIRUN_FAULT=<point> kills it there) goes to
# its own target dir, so that it never replaces the real binary.
FAULTS_BIN := target/faults/debug/minirun

integration-test: build
	$(CARGO) build --bin minirun --features minirun-runtime/fault-injection --target-dir target/faults
	MINIRUN=$(CURDIR)/$(BIN) MINIRUN_FAULTS=$(CURDIR)/$(FAULTS_BIN) $(CARGO) test -p minirun-tests -- --test-threads=2

test: deps unit-test integration-test

demo: deps build
	scripts/demo.sh $(CURDIR)/$(BIN)

# The same story on OCI bundles, with `minirun oci` and `minirun network attach`.
demo-oci: deps build
	scripts/demo-oci.sh $(CURDIR)/$(OCI_BIN)

bench: deps build
	$(SHARED)/bench/lifecycle.sh $(CURDIR)/$(OCI_BIN) crun runc

# `minirun run --rm` against `podman run --rm` (crun), and the monitor's
# memory against conmon's, in one run, in a throwaway network namespace.
bench-front: deps build
	scripts/bench-front.sh $(CURDIR)/$(BIN)

# Pull and unpack against skopeo+umoci and podman; start time with a 2 MB and
# a 527 MB image. Loopback registry, stores on a loop-mounted ext4; ~2 minutes.
bench-images: deps build
	scripts/bench-images.sh $(CURDIR)/$(BIN)

# minirun's network set-up, then netavark's and CNI's (the anchors) right after.
bench-network: deps build
	scripts/bench-network.sh $(CURDIR)/$(BIN)
	ANCH_NET_REPS=10 $(SHARED)/bench/netsetup.sh

# A realistic mix of run/exec/stop/rm/ps from two workers for SOAK_MINUTES
# (default 10), in a throwaway network namespace; fails on any failed
# command, on anything left behind, or on monitors' memory or fds growing.
soak: deps build
	scripts/soak.sh $(CURDIR)/$(BIN)

install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/minirun
	ln -f $(DESTDIR)$(PREFIX)/bin/minirun $(DESTDIR)$(PREFIX)/bin/minirun-runc

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/minirun $(DESTDIR)$(PREFIX)/bin/minirun-runc

# cgroup v2 with real controllers, inside a qemu VM (this host is hybrid).
test-cgroupv2: build
	scripts/cgroupv2-vm.sh $(CURDIR)/$(BIN)

# Podman and containerd driving minirun as their OCI runtime.
check-clients: build
	$(SHARED)/checks/install-deps.sh
	$(SHARED)/checks/podman-check.sh $(CURDIR)/$(OCI_BIN)
	$(SHARED)/checks/containerd-check.sh $(CURDIR)/$(OCI_BIN)

# The same busybox image under a private Docker 20.10 daemon and under
# minirun, what the container sees side by side (docs/docker-parity.md).
# Installs docker.io and busybox-static if absent; exit 77/78 means skipped.
parity: build
	python3 scripts/parity/compare.py --minirun $(CURDIR)/$(BIN)

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# cargo-fuzz targets (fuzz/) for a fixed number of inputs each, on stable;
# a few minutes on 2 cores. FUZZ_RUNS, FUZZ_UNPACK_RUNS, FUZZ_MAX_TIME and
# FUZZ_TARGETS tune it (scripts/fuzz.sh).
fuzz:
	CARGO="$(CARGO)" scripts/fuzz.sh

clean:
	$(CARGO) clean
