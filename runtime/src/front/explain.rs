//! `minirun run --explain`: what `run` would do for these flags, printed as
//! a script a person could run as root, in minirun's order, and done by
//! nothing. Each part is planned by the code that does it: the OCI spec
//! by `build_spec`, the cgroup directories by the cgroup manager, the
//! network by netsetup's own explainer. minirun itself uses syscalls and
//! netlink where the script uses `mount`, `ip`, `nft` or `iptables`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use minirun_netsetup::ports::parse_port_spec;
use minirun_rootfs::image::config::RunDefaults;
use minirun_rootfs::image::store::{ImageRecord, ImageStore};
use oci_spec::runtime::{LinuxNamespaceType, Mount, Spec};

use super::engine::store::NetworkMode;
use super::engine::{Engine, EngineError};
use super::run_spec::{build_spec, EtcFiles, NetnsChoice, RunConfig, SpecContext};

pub fn print(engine: &Engine, config: &RunConfig, mode: &NetworkMode, image: &ImageRecord, defaults: &RunDefaults) -> Result<(), EngineError> {
    print!("{}", script(engine, config, mode, image, defaults)?);
    Ok(())
}

pub fn script(engine: &Engine, config: &RunConfig, mode: &NetworkMode, image: &ImageRecord, defaults: &RunDefaults) -> Result<String, EngineError> {
    let id = super::engine::store::random_id();
    let short = &id[..12];
    let dir = engine.store.dir(&id);
    let rootfs = dir.join("rootfs");
    let images = ImageStore::open(&engine.image_root).map_err(|e| EngineError::Other(e.to_string()))?;
    let layers = images.layer_dirs(image).map_err(|e| EngineError::Other(e.to_string()))?;
    let hostname = config.hostname.clone().unwrap_or_else(|| short.to_string());
    let netns_name = format!("minirun-{short}");
    let netns = match mode {
        NetworkMode::Host => NetnsChoice::Host,
        NetworkMode::Container(other) => {
            let owner = engine.store.resolve(other)?;
            NetnsChoice::Join(format!("/proc/{}/ns/net", owner.state.init.map(|i| i.pid).unwrap_or(0)).into())
        }
        _ => NetnsChoice::Join(format!("/run/netns/{netns_name}").into()),
    };
    // User names are looked up in the image's passwd: the top layer that has one.
    let lookup_root = layers.iter().rev().find(|l| l.join("etc/passwd").exists()).cloned().unwrap_or_else(|| rootfs.clone());
    let (hostname_file, hosts, resolv) = (dir.join("hostname"), dir.join("hosts"), dir.join("resolv.conf"));
    let ctx = SpecContext {
        rootfs: &lookup_root,
        hostname: &hostname,
        netns,
        etc_files: EtcFiles { hostname: &hostname_file, hosts: &hosts, resolv_conf: &resolv },
        cgroups_path: format!("/minirun/{id}"),
    };
    let spec = build_spec(config, defaults, &ctx).map_err(|e| EngineError::Usage(e.to_string()))?;

    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "\n# 1. the rootfs: the image's layers ({}, {}) read-only below, a writable layer of the container's own above", config.image, &image.id);
    let _ = writeln!(w, "mkdir -p $C/rootfs $C/upper $C/work");
    let lower: Vec<String> = layers.iter().rev().map(|l| l.display().to_string()).collect();
    let _ = writeln!(w, "mount -t overlay overlay -o lowerdir={},upperdir=$C/upper,workdir=$C/work $C/rootfs", lower.join(":"));
    let _ = writeln!(w, "\n# 2. who and where the container is: /etc/hostname, /etc/hosts, /etc/resolv.conf (bind-mounted in step 5)");
    let _ = writeln!(w, "echo {hostname} > $C/hostname");
    let _ = writeln!(w, "printf '127.0.0.1\\tlocalhost\\n::1\\tlocalhost ip6-localhost ip6-loopback\\n' > $C/hosts");
    let _ = writeln!(w, "grep -v '^nameserver 127\\.' /etc/resolv.conf > $C/resolv.conf || true");
    cgroup_steps(w, &spec, &id)?;
    let netns_needed = matches!(mode, NetworkMode::Bridge(_) | NetworkMode::None);
    let _ = writeln!(w, "\n# 4. the namespaces: minirun clones the container's init straight into new ones; here the network namespace comes first, by name, as in the seed article");
    match mode {
        _ if netns_needed => {
            let _ = writeln!(w, "ip netns add {netns_name}");
        }
        NetworkMode::Host => {
            let _ = writeln!(w, "# --network host: no network namespace; the container uses the host's interfaces");
        }
        NetworkMode::Container(other) => {
            let _ = writeln!(w, "# --network container:{other}: the container joins that container's network namespace, {}", ctx_join(&spec));
        }
        _ => {}
    }
    if let NetworkMode::Bridge(network) = mode {
        let ports = config.publish.iter().map(|p| parse_port_spec(p)).collect::<Result<Vec<_>, _>>().map_err(|e| EngineError::Usage(e.to_string()))?.concat();
        let _ = writeln!(w, "\n# 5. the network (`{network}`): minirun does this to the init's namespace before it lets the init exec");
        for line in minirun_netsetup::explain::attach_commands(&engine.net, network, &id, &format!("/run/netns/{netns_name}"), &ports)? {
            let _ = writeln!(w, "{line}");
        }
        let _ = writeln!(w, "# ... and the address goes into /etc/hosts");
        let _ = writeln!(w, "printf \"$(ip netns exec {netns_name} ip -4 -o addr show eth0 | awk '{{print $4}}' | cut -d/ -f1)\\t{hostname}\\n\" >> $C/hosts");
    } else if matches!(mode, NetworkMode::None) {
        let _ = writeln!(w, "\n# 5. --network none: only lo, up");
        let _ = writeln!(w, "ip netns exec {netns_name} ip link set lo up");
    }
    init_steps(w, &spec, &rootfs, netns_needed.then_some(netns_name.as_str()), &id);
    let _ = writeln!(w, "\n# when the command exits, its supervisor undoes it all: the port rules, the veth and the lease, the cgroup, the mounts (and $C with --rm or `minirun rm`)");
    // The container's paths and id as variables, so that the script reads
    // (and can be run) as one story.
    let body = out.replace(&dir.display().to_string(), "$C").replace(&id, "$ID");
    Ok(format!(
        "#!/bin/sh -e\n# minirun run --explain: what `minirun run` does for these flags, in its order, as commands.\n\
         # Nothing was done. The id below is one this run would get; the address is the one free now.\n\
         export ID={id}\nexport C={}\n{body}",
        dir.display()
    ))
}

fn ctx_join(spec: &Spec) -> String {
    namespace_path(spec, LinuxNamespaceType::Network).map(|p| p.display().to_string()).unwrap_or_default()
}

fn namespace_path(spec: &Spec, kind: LinuxNamespaceType) -> Option<PathBuf> {
    spec.linux().as_ref()?.namespaces().as_ref()?.iter().find(|n| n.typ() == kind)?.path().clone()
}

/// The container's cgroup, made where the cgroup manager would make it,
/// with the limits the flags asked for in the files Docker's table names.
fn cgroup_steps(w: &mut String, spec: &Spec, id: &str) -> Result<(), EngineError> {
    let manager = crate::cgroups::manager_for(Some(&format!("/minirun/{id}")), id, false).map_err(|e| EngineError::Other(e.to_string()))?;
    let dirs = manager.host_paths();
    let _ = writeln!(w, "\n# 3. the cgroup: a directory per controller, then the limits");
    for (_, dir) in &dirs {
        let _ = writeln!(w, "mkdir -p {}", dir.display());
    }
    let resources = spec.linux().as_ref().and_then(|l| l.resources().clone());
    let find = |controller: &str| dirs.iter().find(|(c, _)| c.split(',').any(|c| c == controller) || c.is_empty()).map(|(_, d)| d.clone());
    let v2 = dirs.iter().any(|(c, _)| c.is_empty());
    let mut set = |controller: &str, file: &str, value: String| {
        if let Some(dir) = find(controller) {
            let _ = writeln!(w, "echo {value} > {}", dir.join(file).display());
        }
    };
    if let Some(r) = &resources {
        if let Some(m) = r.memory() {
            if let Some(limit) = m.limit() {
                set("memory", if v2 { "memory.max" } else { "memory.limit_in_bytes" }, limit.to_string());
                if let Some(swap) = m.swap() {
                    match v2 {
                        true => set("memory", "memory.swap.max", if swap < 0 { "max".into() } else { (swap - limit).to_string() }),
                        false => set("memory", "memory.memsw.limit_in_bytes", swap.to_string()),
                    }
                }
            }
        }
        if let Some(cpu) = r.cpu() {
            if let (Some(quota), Some(period)) = (cpu.quota(), cpu.period()) {
                match v2 {
                    true => set("cpu", "cpu.max", format!("'{quota} {period}'")),
                    false => {
                        set("cpu", "cpu.cfs_period_us", period.to_string());
                        set("cpu", "cpu.cfs_quota_us", quota.to_string());
                    }
                }
            }
            if let Some(shares) = cpu.shares() {
                set("cpu", if v2 { "cpu.weight" } else { "cpu.shares" }, shares.to_string());
            }
        }
        if let Some(pids) = r.pids() {
            set("pids", "pids.max", if pids.limit() <= 0 { "max".into() } else { pids.limit().to_string() });
        }
    }
    Ok(())
}

/// The init: its cgroup, its namespaces, its mounts and pivot_root, then
/// the user's process with Docker's capabilities.
fn init_steps(w: &mut String, spec: &Spec, rootfs: &Path, netns: Option<&str>, id: &str) {
    let flags: Vec<&str> = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default()
        .iter()
        .filter(|n| n.path().is_none())
        .filter_map(|n| match n.typ() {
            LinuxNamespaceType::Pid => Some("--pid --fork"),
            LinuxNamespaceType::Mount => Some("--mount --propagation private"),
            LinuxNamespaceType::Uts => Some("--uts"),
            LinuxNamespaceType::Ipc => Some("--ipc"),
            LinuxNamespaceType::Cgroup => Some("--cgroup"),
            _ => None,
        })
        .collect();
    let enter = netns.map(|n| format!("ip netns exec {n} ")).unwrap_or_default();
    let _ = writeln!(w, "\n# 6. the init, in the cgroup and the new namespaces: mounts as the OCI spec lists them, pivot_root into the rootfs, then the command");
    let _ = writeln!(w, "{enter}unshare {} sh -e <<'INIT'", flags.join(" "));
    let _ = writeln!(w, "for d in /sys/fs/cgroup/*/minirun/{id} /sys/fs/cgroup/minirun/{id}; do [ -d \"$d\" ] && echo $$ > \"$d/cgroup.procs\"; done");
    if let Some(hostname) = spec.hostname() {
        let _ = writeln!(w, "hostname {hostname}");
    }
    let root = rootfs.display().to_string();
    for mount in spec.mounts().clone().unwrap_or_default() {
        let _ = writeln!(w, "{}", mount_command(&mount, &root));
    }
    let _ = writeln!(w, "cd {root} && mkdir -p .old-root && pivot_root . .old-root && cd / && umount -l /.old-root && rmdir /.old-root");
    let linux = spec.linux().clone().unwrap_or_default();
    for path in linux.masked_paths().clone().unwrap_or_default() {
        let _ = writeln!(w, "mount --bind /dev/null {path} 2>/dev/null || mount -t tmpfs -o ro tmpfs {path} 2>/dev/null || true  # masked");
    }
    for path in linux.readonly_paths().clone().unwrap_or_default() {
        let _ = writeln!(w, "mount --bind {path} {path} && mount -o remount,bind,ro {path} 2>/dev/null || true  # read-only");
    }
    let process = spec.process().clone().unwrap_or_default();
    let mut caps: Vec<String> = process
        .capabilities()
        .as_ref()
        .and_then(|c| c.bounding().clone())
        .unwrap_or_default()
        .iter()
        .map(|c| c.to_string().trim_start_matches("CAP_").to_lowercase())
        .collect();
    caps.sort();
    let caps = if caps.is_empty() { "-all".to_string() } else { format!("-all,+{}", caps.join(",+")) };
    let user = process.user();
    let args: Vec<String> = process.args().clone().unwrap_or_default().iter().map(|a| shell_quote(a)).collect();
    let seccomp = if linux.seccomp().is_some() { "the default seccomp filter (Docker's profile) is loaded too, which setpriv cannot do" } else { "no seccomp filter" };
    let _ = writeln!(w, "cd {}", process.cwd().display());
    let _ = writeln!(w, "# Docker's capabilities only, the user, no_new_privs={}; {seccomp}", process.no_new_privileges().unwrap_or(false));
    let env: Vec<String> = process.env().clone().unwrap_or_default().iter().map(|e| shell_quote(e)).collect();
    let _ = writeln!(
        w,
        "exec env -i {} setpriv --reuid {} --regid {} --clear-groups --bounding-set {caps} --inh-caps -all {} {}",
        env.join(" "),
        user.uid(),
        user.gid(),
        if process.no_new_privileges().unwrap_or(false) { "--no-new-privs" } else { "" },
        args.join(" ")
    );
    let _ = writeln!(w, "INIT");
}

fn mount_command(mount: &Mount, root: &str) -> String {
    let target = format!("{root}{}", mount.destination().display());
    let options = mount.options().clone().unwrap_or_default();
    let source = mount.source().as_ref().map(|s| s.display().to_string()).unwrap_or_else(|| "none".into());
    match mount.typ().as_deref() {
        Some("bind") => {
            let ro = options.iter().any(|o| o == "ro");
            let mut line = format!("mount --rbind {source} {target}");
            if ro {
                line += &format!(" && mount -o remount,bind,ro {target}");
            }
            line
        }
        typ => {
            let options: Vec<&String> = options.iter().filter(|o| !matches!(o.as_str(), "rprivate" | "private")).collect();
            let options = options.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",");
            let options = if options.is_empty() { String::new() } else { format!(" -o {options}") };
            format!("mkdir -p {target} && mount -t {}{options} {source} {target}", typ.unwrap_or("none"))
        }
    }
}

fn shell_quote(word: &str) -> String {
    if !word.is_empty() && word.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b)) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}
