#!/usr/bin/env python3
"""Docker/minirun parity: the same busybox image run under Docker 20.10 and
under minirun with the same flags; what the container sees, side by side.

    compare.py --minirun target/release/minirun        # the comparison
    compare.py --docker-only --sample FILE             # Docker's facts alone

Each scenario runs under both engines (probe.sh inside the container, or an
exit code, a stop signal, a published port seen from 127.0.0.1). Facts are
normalised (addresses, ids, hostnames, MACs) and compared; the differences
listed in docs/docker-parity.md (section "Intended differences") are
accepted, any other fails.

Exit: 0 no unexpected difference; 1 some; 2 error; 77 skipped (no dockerd
here: the reason is printed as "SKIP: ..."); 78 skipped (minirun has no
Docker-style `run` yet).
"""

import argparse
import ctypes
import fnmatch
import http.client
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
IMAGE = "parity-busybox:latest"
# A reference that can only be looked for on 127.0.0.1 (port 1: nothing
# listens there), so neither engine sends a pull anywhere else.
UNKNOWN_IMAGE = "127.0.0.1:1/parity-nonexistent:latest"
SKIP_DOCKER, SKIP_MINIRUN = 77, 78
CMD_TIMEOUT = 60

# --------------------------------------------------------------------------
# scenarios: (name, flags before the image, kind, extra)
# kind probe: sh /parity/probe.sh; exit: a command's exit code; stop: the
# signal `stop` delivers; port: -p HOSTPORT:80 fetched from 127.0.0.1.
SCENARIOS = [
    ("default", [], "probe", None),
    ("network-none", ["--network", "none"], "probe", None),
    ("network-host", ["--network", "host"], "probe", None),
    ("hostname", ["--hostname", "h1"], "probe", None),
    ("limits", ["--memory", "64m", "--cpus", "1.5", "--pids-limit", "50"], "probe", None),
    ("cap-drop-all", ["--cap-drop", "ALL"], "probe", None),
    ("cap-add-sys-admin", ["--cap-add", "SYS_ADMIN"], "probe", None),
    ("read-only", ["--read-only"], "probe", None),
    ("no-new-privileges", ["--security-opt", "no-new-privileges"], "probe", None),
    ("user-1000", ["-u", "1000:1000"], "probe", None),
    ("env-workdir", ["-e", "A=1", "-w", "/tmp"], "probe", None),
    ("exit-3", [], "exit", ["sh", "-c", "exit 3"]),
    ("exit-missing-command", [], "exit", ["parity-no-such-command"]),
    ("exit-not-executable", [], "exit", ["/etc/passwd"]),
    ("exit-unknown-image", [], "exit-image", ["true"]),
    ("stop-trap", [], "stop", "trap"),
    ("stop-no-trap", [], "stop", "notrap"),
    ("publish", [], "port", None),
]

TRAP_SCRIPT = (
    'for s in TERM INT QUIT HUP USR1 USR2; do trap "echo $s >/out/sig; exit 0" $s; done; '
    'echo ready >/out/ready; while :; do sleep 100 & wait $!; done'
)
NOTRAP_SCRIPT = 'echo ready >/out/ready; while :; do sleep 100 & wait $!; done'
HTTPD_SCRIPT = 'echo parity-ok >/tmp/index.html && exec httpd -f -p 80 -h /tmp'


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# processes: we are a subreaper (dockerd, containerd and their shims outlive
# the commands that start them; this machine's pid 1 reaps no orphans).

LIVE_CHILDREN = set()


def become_subreaper():
    try:
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except Exception as e:  # not fatal: only zombies are at stake
        log(f"prctl(PR_SET_CHILD_SUBREAPER): {e}")


def enter_private_netns():
    """Moves this process (and so everything it starts) into a network
    namespace of its own, with lo up: both engines' bridges, veths,
    firewall rules and published ports live there and vanish with it, no
    one else's bridge (minirun0, docker0) is in sight, and no packet can
    leave the machine. Containers still reach 127.0.0.1 of this namespace
    through the published ports, which is what the publish scenario takes."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x40000000) != 0:  # CLONE_NEWNET
        raise RuntimeError(f"unshare(CLONE_NEWNET): {os.strerror(ctypes.get_errno())}")
    r = run(["ip", "link", "set", "lo", "up"])
    if r.returncode != 0:
        raise RuntimeError(f"ip link set lo up: {r.stderr.strip()}")


def reap_orphans():
    """Reaps exited children that no Popen of ours is waiting for."""
    me = os.getpid()
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) in LIVE_CHILDREN:
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if st[0] == "Z" and int(st[1]) == me:
            try:
                os.waitpid(int(d), os.WNOHANG)
            except ChildProcessError:
                pass


def run(cmd, env=None, timeout=CMD_TIMEOUT, stdin=subprocess.DEVNULL):
    try:
        return subprocess.run(cmd, env=env, stdin=stdin, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        return subprocess.CompletedProcess(cmd, 124, e.stdout or "", f"timed out after {timeout}s")


# --------------------------------------------------------------------------
# engines: both take Docker's syntax; only the command prefix, the image
# import and the clean-up differ.

class Engine:
    name = "?"

    def __init__(self, base, env):
        self.base, self.env = base, env
        self.names = []

    def cmd(self, *args):
        return run(self.base + list(args), env=self.env)

    def popen(self, args, out, err):
        p = subprocess.Popen(self.base + args, env=self.env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        LIVE_CHILDREN.add(p.pid)
        return p

    def name_for(self, tag):
        n = f"mrpar{os.getpid()}-{self.name}-{tag}"
        self.names.append(n)
        return n

    def import_image(self, tar):
        raise NotImplementedError

    def cleanup(self):
        for n in self.names:
            self.cmd("rm", "-f", n)


class Docker(Engine):
    name = "docker"

    def import_image(self, tar):
        r = self.cmd("import", "--change", 'CMD ["sh"]', tar, IMAGE)
        if r.returncode != 0:
            raise RuntimeError(f"docker import: {r.stderr.strip()}")


class Minirun(Engine):
    """minirun's Docker-style front end, every piece of state under one
    temporary directory (never the default roots)."""
    name = "minirun"
    # minirun's default network `bridge` always has this device, whatever
    # --network-root says (netsetup's DEFAULT_BRIDGE).
    DEFAULT_BRIDGE = "minirun0"

    def __init__(self, binary, state_dir):
        self.binary = binary
        self.state = state_dir
        self.may_remove_default_network = False
        help_text = run([binary, "--help"]).stdout
        base = [binary]
        for flag, sub in (("--root", "containers"), ("--network-root", "network"), ("--image-root", "images")):
            if flag in help_text:
                base += [flag, os.path.join(state_dir, sub)]
            else:
                log(f"minirun --help has no {flag}: that state goes to its default place")
        super().__init__(base, dict(os.environ))

    def available(self):
        """None if `minirun run` exists and can run here, else why not."""
        if not os.access(self.binary, os.X_OK):
            return f"{self.binary} is not an executable"
        r = run([self.binary, "run", "--help"])
        if r.returncode != 0:
            return f"`minirun run --help` fails: {(r.stderr or r.stdout).strip().splitlines()[:1]}"
        # A private --network-root would make its default network on
        # someone else's minirun0 (and removing it would delete theirs).
        if link_exists(self.DEFAULT_BRIDGE):
            return (f"{self.DEFAULT_BRIDGE} exists (another minirun's default network); minirun's default network "
                    f"always uses that device, so a parity run would share it and its clean-up would delete it")
        self.may_remove_default_network = True
        return None

    def import_image(self, tar):
        r = self.cmd("import", tar, IMAGE)
        if r.returncode != 0:
            raise RuntimeError(f"minirun import: {r.stderr.strip()}")

    def cleanup(self):
        super().cleanup()
        # Our --root holds only our containers.
        ids = self.cmd("ps", "-a", "-q").stdout.split()
        if ids:
            self.cmd("rm", "-f", *ids)
        self.cmd("rmi", IMAGE)
        self.remove_default_network()

    def remove_default_network(self):
        """`network rm bridge` deletes minirun0: only when we made it and
        nobody else has come to use it meanwhile (no other address on it, no
        ports)."""
        br = self.DEFAULT_BRIDGE
        if not self.may_remove_default_network or not link_exists(br):
            return
        r = self.cmd("network", "inspect", "bridge")
        try:
            subnet = ipaddress.ip_network(json.loads(r.stdout)["network"]["subnet"])
        except (ValueError, KeyError, TypeError):
            log(f"minirun network inspect bridge: no subnet ({r.stderr.strip()}); {br} left alone")
            return
        addrs = run(["ip", "-o", "-4", "addr", "show", "dev", br]).stdout.split()
        foreign = [a for i, a in enumerate(addrs) if i and addrs[i - 1] == "inet" and ipaddress.ip_interface(a).ip not in subnet]
        ports = [l.split(":")[1].strip() for l in run(["ip", "-o", "link", "show", "master", br]).stdout.splitlines()]
        if foreign or ports:
            log(f"{br} now also carries {foreign or ports}: someone else uses it; left alone")
            return
        r = self.cmd("network", "rm", "bridge")
        if r.returncode != 0:
            log(f"minirun network rm bridge: {r.stderr.strip()}")


def link_exists(name):
    """Asked over netlink: /sys/class/net shows the links of the namespace
    that mounted /sys, not of ours."""
    return run(["ip", "link", "show", "dev", name]).returncode == 0


def unmount_under(path):
    """Unmounts what is mounted under path (deepest first); True if nothing is left."""
    def targets():
        with open("/proc/self/mountinfo") as f:
            ms = [l.split()[4] for l in f]
        return sorted((m for m in ms if m == path or m.startswith(path + "/")), reverse=True)
    for m in targets():
        if run(["umount", m]).returncode != 0:
            run(["umount", "-l", m])
    left = targets()
    if left:
        log(f"still mounted under {path}: {left}")
    return not left


# --------------------------------------------------------------------------
# running one scenario under one engine -> {fact: raw value}

def parse_probe(text):
    facts = {}
    for line in text.splitlines():
        k, sep, v = line.partition(": ")
        if not sep:
            k, sep, v = line.partition(":")
        if sep:
            facts[k.strip()] = v
    return facts


def free_port():
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


def http_get(port, path, deadline):
    """GET http://127.0.0.1:port/path (never a proxy), retried until deadline."""
    last = "no answer"
    while time.time() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", path)
            r = c.getresponse()
            body = r.read().decode(errors="replace").strip()
            c.close()
            return str(r.status), body
        except OSError as e:
            last = f"error:{e.__class__.__name__}"
            time.sleep(0.2)
    return last, ""


def wait_file(path, proc, secs):
    end = time.time() + secs
    while time.time() < end:
        if os.path.exists(path):
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def run_scenario(eng, name, flags, kind, extra, work):
    facts = {}
    if kind == "probe":
        r = eng.cmd("run", "--rm", *flags, "-v", f"{HERE}:/parity:ro", IMAGE, "sh", "/parity/probe.sh")
        facts.update(parse_probe(r.stdout))
        facts["exit"] = str(r.returncode)
        if r.returncode != 0 or "probe.end" not in facts:
            facts["stderr"] = r.stderr.strip().replace("\n", " | ")[:300]
    elif kind in ("exit", "exit-image"):
        image = UNKNOWN_IMAGE if kind == "exit-image" else IMAGE
        r = eng.cmd("run", "--rm", *flags, image, *extra)
        facts["exit"] = str(r.returncode)
    elif kind == "stop":
        out = os.path.join(work, f"{eng.name}-{name}")
        os.makedirs(out)
        os.chmod(out, 0o777)
        cname = eng.name_for(name)
        script, grace = (TRAP_SCRIPT, 10) if extra == "trap" else (NOTRAP_SCRIPT, 1)
        with open(os.path.join(out, "run.log"), "w") as log_f:
            p = eng.popen(["run", "--rm", "--name", cname, *flags, "-v", f"{out}:/out", IMAGE, "sh", "-c", script], log_f, log_f)
            try:
                ready = wait_file(os.path.join(out, "ready"), p, 30)
                facts["started"] = "yes" if ready else "no"
                t0 = time.time()
                s = eng.cmd("stop", "-t", str(grace), cname)
                took = time.time() - t0
                facts["stop.exit"] = str(s.returncode)
                try:
                    rc = p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    rc = "timeout"
                facts["run.exit"] = str(rc)
                sig = os.path.join(out, "sig")
                facts["signal"] = open(sig).read().strip() if os.path.exists(sig) else "(none)"
                # After the grace period (KILL) or well before it (the trap).
                facts["stop.waited-grace"] = "yes" if took >= grace - 0.1 else "no"
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
                LIVE_CHILDREN.discard(p.pid)
                eng.cmd("rm", "-f", cname)
    elif kind == "port":
        cname = eng.name_for(name)
        port = free_port()
        r = eng.cmd("run", "-d", "--name", cname, "-p", f"{port}:80", *flags, IMAGE, "sh", "-c", HTTPD_SCRIPT)
        facts["run.exit"] = str(r.returncode)
        facts["run.stdout"] = r.stdout.strip()
        try:
            if r.returncode == 0:
                status, body = http_get(port, "/index.html", time.time() + 15)
                facts["http.status"], facts["http.body"] = status, body
        finally:
            rm = eng.cmd("rm", "-f", cname)
            facts["rm.exit"] = str(rm.returncode)
        # Nothing listens on the port once the container is gone.
        with socket.socket() as s:
            s.settimeout(1)
            facts["port.closed-after-rm"] = "yes" if s.connect_ex(("127.0.0.1", port)) != 0 else "no"
    reap_orphans()
    return facts


# --------------------------------------------------------------------------
# normalisation: what legitimately differs between any two runs

HEX12 = re.compile(r"^[0-9a-f]{12}$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def host_network_view(facts):
    """With --network host the container sees the host's interfaces and
    routes, among them other people's bridges and veths that come and go
    (and each engine's own bridge): only lo and the interface of the default
    route, and the routes through that one, are kept."""
    dev = next((v.split(" dev ")[1].split()[0] for k, v in facts.items() if k.startswith("route4[") and v.startswith("default ") and " dev " in v), None)
    keep = {"lo", dev}
    facts["net.interfaces"] = " ".join(i for i in facts.get("net.interfaces", "").split() if i in keep) + " (+ others)"
    for k in [k for k in facts if k.startswith("net.") and k.count(".") >= 2 and k.split(".")[1] not in keep]:
        del facts[k]
    for fam in ("route4", "route6"):
        lines = [v for k, v in facts.items() if k.startswith(fam + "[")]
        for k in [k for k in facts if k.startswith(fam + "[")]:
            del facts[k]
        for i, v in enumerate((v for v in lines if dev and f" dev {dev}" in f" {v} "), 1):
            facts[f"{fam}[{i}]"] = v


def normalise(raw, flags=()):
    facts = dict(raw)
    if "host" in flags and "--network" in flags:
        host_network_view(facts)
    subst = []  # (regex, replacement), applied to every value
    addr = facts.get("net.eth0.addr4", "").split(" ")[0]
    if "/" in addr:
        iface = ipaddress.ip_interface(addr)
        net = iface.network
        subst += [
            (str(iface.ip), "ADDR"),
            (str(net.network_address), "NET"),
            (str(net.network_address + 1), "GW"),
            (str(net.broadcast_address), "BCAST"),
        ]
        facts["net.eth0.addr4.host-index"] = str(int(iface.ip) - int(net.network_address))
        mac = facts.get("net.eth0.mac", "")
        if mac.lower() == "02:42:" + ":".join(f"{b:02x}" for b in iface.ip.packed):
            facts["net.eth0.mac"] = "02:42+ADDR"
        elif mac and int(mac.split(":")[0], 16) & 2:
            facts["net.eth0.mac"] = "locally-administered(other)"
    host = facts.get("hostname", "")
    if HEX12.match(host):
        subst.append((host, "<id12>"))
    for k in ("run.stdout",):
        if HEX64.match(facts.get(k, "")):
            facts[k] = "<id64>"
    if subst:
        pat = re.compile(r"(?<![\w.:])(" + "|".join(re.escape(a) for a, _ in subst) + r")(?![\w:]|\.\d)")
        table = dict(subst)
        for k, v in facts.items():
            facts[k] = pat.sub(lambda m: table[m.group(1)], v)
    return facts


# --------------------------------------------------------------------------
# intended differences: docs/docker-parity.md, the table between
# <!-- intended-differences:begin --> and <!-- intended-differences:end -->
# | scenario | fact | docker | minirun | reason |   (glob patterns; * any)

def load_intended(path):
    rules = []
    text = open(path).read()
    m = re.search(r"<!-- intended-differences:begin -->(.*?)<!-- intended-differences:end -->", text, re.S)
    if not m:
        raise RuntimeError(f"{path}: no intended-differences section")
    for line in m.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 5 or cells[0] in ("scenario", "") or set(cells[0]) <= set("-: "):
            continue
        rules.append([unbacktick(c) for c in cells])
    return rules


def unbacktick(s):
    return s[1:-1] if len(s) >= 2 and s[0] == s[-1] == "`" else s


def glob(value, pattern):
    """fnmatch with `*` and `?` only: `[` is literal (fact names have
    brackets), and `(empty)` stands for the empty value."""
    if pattern == "(empty)":
        return value == ""
    return fnmatch.fnmatchcase(value, pattern.replace("[", "[[]"))


def intended(rules, scenario, fact, dv, mv):
    for sc, fa, d, m, reason in rules:
        if glob(scenario, sc) and glob(fact, fa) and glob(dv, d) and glob(mv, m):
            return reason
    return None


# --------------------------------------------------------------------------
# report

MISSING = "(missing)"


def clip(s, n):
    return s if len(s) <= n else s[: n - 1] + "…"


def fact_order(keys, order):
    pos = {k: i for i, k in enumerate(order)}
    return sorted(keys, key=lambda k: (pos.get(k, len(pos)), k))


def report(results, rules, show_all, out):
    """results: [(scenario, docker facts, minirun facts)] -> count of unexpected differences."""
    unexpected, intended_n, same_n = 0, 0, 0
    used_rules = set()
    groups = {}  # (fact, docker, minirun) -> scenarios, for the summary
    base = {e: results[0][i + 1] for i, e in enumerate(("docker", "minirun"))}
    lines_full, lines_short = ["scenario\tfact\tdocker\tminirun\tverdict"], []
    w = 44
    hdr = f"{'fact':<{w}} {'docker':<{w}} {'minirun':<{w}} verdict"
    for scen, d, m in results:
        order = list(d.keys()) + [k for k in m if k not in d]
        lines_short += [f"== {scen} ==", hdr]
        shown = 0
        for k in fact_order(set(d) | set(m), order):
            dv, mv = d.get(k, MISSING), m.get(k, MISSING)
            if dv == mv:
                verdict = "same"
                same_n += 1
            else:
                why = intended(rules, scen, k, dv, mv)
                if why:
                    verdict = f"intended: {why}"
                    intended_n += 1
                    used_rules.add(why)
                else:
                    verdict = "DIFFERENT"
                    unexpected += 1
                    groups.setdefault((k, dv, mv), []).append(scen)
            lines_full.append(f"{scen}\t{k}\t{dv}\t{mv}\t{verdict}")
            changed = scen == results[0][0] or dv != base["docker"].get(k, MISSING) or mv != base["minirun"].get(k, MISSING)
            if show_all or verdict != "same" or changed:
                lines_short.append(f"{clip(k, w):<{w}} {clip(dv, w):<{w}} {clip(mv, w):<{w}} {verdict}")
                shown += 1
        if not shown:
            lines_short.append("(as in default, same under both engines)")
        lines_short.append("")
    summary = f"parity: {same_n} same, {intended_n} intended differences, {unexpected} unexpected differences"
    if groups:
        summary += "\nunexpected differences (fact: docker | minirun, in scenarios):"
        for (k, dv, mv), scens in groups.items():
            summary += f"\n  {k}: {dv or '(empty)'} | {mv or '(empty)'}, in {', '.join(scens)}"
    unused = [r[4] for r in rules if r[4] not in used_rules]
    if unused:
        summary += f"\n(intended-difference rules that matched nothing this run: {len(unused)})"
    print("\n".join(lines_short))
    print(summary)
    if out:
        with open(os.path.join(out, "report.txt"), "w") as f:
            f.write("\n".join(lines_full) + "\n" + summary + "\n")
    return unexpected


def write_facts(path, engine_label, results):
    with open(path, "w") as f:
        f.write(f"# {engine_label}: what the container sees, per scenario (scripts/parity/compare.py --docker-only).\n")
        f.write("# Raw values as probe.sh printed them; compare.py normalises addresses, ids and MACs.\n\n")
        for scen, flags, facts in results:
            f.write(f"== {scen}: run {' '.join(flags)}\n")
            for k, v in facts.items():
                f.write(f"{k}: {v}\n")
            f.write("\n")


# --------------------------------------------------------------------------

def start_dockerd():
    r = subprocess.run([os.path.join(HERE, "dockerd.sh"), "start"], stdin=subprocess.DEVNULL, capture_output=True, text=True)
    reap_orphans()
    if r.returncode == SKIP_DOCKER:
        reason = next((l for l in r.stderr.splitlines() if l.startswith("SKIP:")), "SKIP: dockerd cannot start")
        return None, reason
    if r.returncode != 0:
        raise RuntimeError(f"dockerd.sh start failed ({r.returncode}): {r.stderr.strip()}")
    env = dict(l.split("=", 1) for l in r.stdout.splitlines() if "=" in l)
    return env, None


def docker_client(env):
    for c in filter(None, [os.environ.get("DOCKER"), "/usr/bin/docker", shutil.which("docker")]):
        if run([c, "version"], env=env, timeout=20).returncode == 0:
            return c
    raise RuntimeError("no docker client talks to the daemon")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minirun", help="minirun binary (default $MINIRUN or target/release/minirun)")
    ap.add_argument("--docker-only", action="store_true", help="only Docker's side: print (and --sample) its facts")
    ap.add_argument("--sample", help="write Docker's raw facts to this file")
    ap.add_argument("--out", help="keep each engine's raw facts per scenario and report.txt (tab-separated) here")
    ap.add_argument("--all", action="store_true", help="print every fact of every scenario")
    ap.add_argument("--scenario", action="append", help="run only these scenarios (glob; repeatable)")
    ap.add_argument("--intended", default=os.path.join(TOP, "docs", "docker-parity.md"))
    ap.add_argument("--host-netns", action="store_true",
                    help="run in the current network namespace instead of a private one (bridges, rules and ports then on the host)")
    a = ap.parse_args()

    if os.environ.get("MINIRUN_SKIP_PARITY") == "1":
        print("SKIP: MINIRUN_SKIP_PARITY=1")
        return SKIP_DOCKER
    if os.geteuid() != 0:
        print("SKIP: needs root")
        return SKIP_DOCKER
    scenarios = [s for s in SCENARIOS if not a.scenario or any(fnmatch.fnmatch(s[0], p) for p in a.scenario)]
    become_subreaper()
    if not a.host_netns:
        try:
            enter_private_netns()
        except RuntimeError as e:
            print(f"SKIP: no network namespace of our own: {e}")
            return SKIP_DOCKER
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))

    work = tempfile.mkdtemp(prefix="minirun-parity.")
    os.chmod(work, 0o755)
    out = a.out
    if out:
        os.makedirs(out, exist_ok=True)
    minirun = None
    if not a.docker_only:
        binary = os.path.abspath(a.minirun or os.environ.get("MINIRUN") or os.path.join(TOP, "target/release/minirun"))
        minirun = Minirun(binary, os.path.join(work, "minirun"))
        why = minirun.available()
        if why:
            print(f"SKIP: minirun's Docker-style front end is not there: {why}")
            shutil.rmtree(work, ignore_errors=True)
            return SKIP_MINIRUN
    rules = [] if a.docker_only else load_intended(a.intended)

    dockerd_state = None
    docker = None
    try:
        tar = os.path.join(work, "busybox.tar")
        b = run([os.path.join(HERE, "build-image.sh"), tar], timeout=300)
        if b.returncode != 0:
            raise RuntimeError(f"build-image.sh: {b.stderr.strip()}")
        env, skip = start_dockerd()
        if skip:
            print(skip)
            return SKIP_DOCKER
        dockerd_state = env["MRPAR_STATE"]
        denv = dict(os.environ, DOCKER_HOST=env["DOCKER_HOST"], DOCKER_CONFIG=env["DOCKER_CONFIG"])
        docker = Docker([docker_client(denv)], denv)
        log(f"dockerd at {env['DOCKER_HOST']} (bridge {env['MRPAR_BRIDGE']}, {env['MRPAR_SUBNET']})")
        engines = [docker] + ([minirun] if minirun else [])
        for e in engines:
            e.import_image(tar)

        raw = {e.name: [] for e in engines}
        for name, flags, kind, extra in scenarios:
            for e in engines:
                t0 = time.time()
                facts = run_scenario(e, name, flags, kind, extra, work)
                log(f"{e.name:8} {name:22} {time.time() - t0:5.1f}s")
                raw[e.name].append((name, flags, facts))
                if out:
                    with open(os.path.join(out, f"{e.name}-{name}.txt"), "w") as f:
                        f.writelines(f"{k}: {v}\n" for k, v in facts.items())

        if a.sample:
            write_facts(a.sample, "Docker " + run(docker.base + ["version", "-f", "{{.Server.Version}}"], env=denv).stdout.strip(), raw["docker"])
        if a.docker_only:
            for scen, flags, facts in raw["docker"]:
                print(f"== {scen}: run {' '.join(flags)}")
                for k, v in normalise(facts, flags).items():
                    print(f"{k}: {v}")
                print()
            return 0
        results = [(s, normalise(d, f), normalise(m, f)) for (s, f, d), (_, _, m) in zip(raw["docker"], raw["minirun"])]
        bad = report(results, rules, a.all, out)
        return 1 if bad else 0
    except KeyboardInterrupt:
        log("interrupted")
        return 2
    except RuntimeError as e:
        log(f"error: {e}")
        return 2
    finally:
        for e in (docker, minirun):
            if e:
                try:
                    e.cleanup()
                except Exception as ex:
                    log(f"{e.name} clean-up: {ex}")
        if dockerd_state:
            r = run([os.path.join(HERE, "dockerd.sh"), "stop", dockerd_state], timeout=180)
            if r.returncode != 0:
                log(f"dockerd.sh stop: {r.stderr.strip()}")
        if unmount_under(work):
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"{work} left in place")
        reap_orphans()


if __name__ == "__main__":
    sys.exit(main())
