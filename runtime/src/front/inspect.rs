//! `minirun inspect`: containers as Docker-shaped JSON (the fields that
//! scripts read most: State, NetworkSettings, Mounts, Config, HostConfig).

use serde_json::{json, Value};

use super::engine::store::{ContainerRecord, NetworkMode, Status};
use super::engine::Engine;
use super::ps::state_name;
use super::stop::for_each;

pub fn inspect(engine: &Engine, names: &[String]) -> Result<(), String> {
    engine.reclaim();
    let mut out = Vec::new();
    let result = for_each(names, |name| {
        let record = engine.store.resolve(name).map_err(|e| e.to_string())?;
        out.push(describe(engine, &record));
        Ok(())
    });
    println!("{}", serde_json::to_string_pretty(&Value::Array(out)).expect("JSON values serialize"));
    result
}

pub fn describe(engine: &Engine, r: &ContainerRecord) -> Value {
    let dir = engine.store.dir(&r.id);
    let spec: Option<oci_spec::runtime::Spec> = std::fs::read(dir.join("config.json")).ok().and_then(|b| serde_json::from_slice(&b).ok());
    let running = r.is_running();
    let mounts: Vec<Value> = spec
        .as_ref()
        .and_then(|s| s.mounts().clone())
        .unwrap_or_default()
        .iter()
        .filter(|m| m.typ().as_deref() == Some("bind") && !is_etc_file(&m.destination().display().to_string()))
        .map(|m| {
            let options = m.options().clone().unwrap_or_default();
            json!({
                "Type": "bind",
                "Source": m.source().as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
                "Destination": m.destination().display().to_string(),
                "Mode": if options.iter().any(|o| o == "ro") { "ro" } else { "" },
                "RW": !options.iter().any(|o| o == "ro"),
                "Propagation": "rprivate",
            })
        })
        .collect();
    let (ip, prefix, gateway, mac) = match &r.attachment {
        Some(a) => (a.address.addr().to_string(), a.address.prefix_len(), a.gateway.to_string(), a.mac.clone()),
        None => (String::new(), 0, String::new(), String::new()),
    };
    let mut ports = serde_json::Map::new();
    for p in r.attachment.iter().flat_map(|a| &a.ports) {
        let key = format!("{}/{}", p.container_port, p.protocol);
        let binding = json!({"HostIp": p.host_ip.map(|i| i.to_string()).unwrap_or_else(|| "0.0.0.0".into()), "HostPort": p.host_port.to_string()});
        ports.entry(key).or_insert_with(|| json!([])).as_array_mut().expect("made as an array").push(binding);
    }
    let networks = match (&r.network, &r.attachment) {
        (NetworkMode::Bridge(name), attachment) => json!({ name.clone(): {
            "Gateway": gateway, "IPAddress": ip, "IPPrefixLen": prefix, "MacAddress": mac,
            "NetworkID": name, "EndpointID": attachment.as_ref().map(|a| a.host_veth.clone()).unwrap_or_default(),
        }}),
        (NetworkMode::Host, _) => json!({"host": {}}),
        (NetworkMode::None, _) => json!({"none": {}}),
        (NetworkMode::Container(_), _) => json!({}),
    };
    let process = spec.as_ref().and_then(|s| s.process().clone());
    let resources = spec.as_ref().and_then(|s| s.linux().clone()).and_then(|l| l.resources().clone());
    let memory = resources.as_ref().and_then(|r| r.memory().as_ref()).and_then(|m| m.limit()).unwrap_or(0);
    let cpu = resources.as_ref().and_then(|r| r.cpu().clone());
    let nano_cpus = cpu.as_ref().and_then(|c| Some(c.quota()? as u64 * 1_000_000_000 / c.period()?)).unwrap_or(0);
    json!({
        "Id": r.id,
        "Created": r.created,
        "Path": r.args.first().cloned().unwrap_or_default(),
        "Args": r.args.iter().skip(1).collect::<Vec<_>>(),
        "State": {
            "Status": state_name(r),
            "Running": running,
            "Paused": false,
            "Restarting": false,
            "OOMKilled": r.state.oom_killed,
            "Dead": false,
            "Pid": if running { r.state.init.map(|i| i.pid).unwrap_or(0) } else { 0 },
            "ExitCode": r.state.exit_code.unwrap_or(0),
            "Error": r.state.error.clone().unwrap_or_default(),
            "StartedAt": r.state.started_at.clone().unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
            "FinishedAt": r.state.finished_at.clone().filter(|_| r.status() == Status::Exited).unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
        },
        "Image": r.image_id,
        "ResolvConfPath": dir.join("resolv.conf"),
        "HostnamePath": dir.join("hostname"),
        "HostsPath": dir.join("hosts"),
        "LogPath": dir.join(super::engine::supervisor::LOG_FILE),
        "Name": format!("/{}", r.name),
        "Driver": "overlay",
        "Platform": "linux",
        "HostConfig": {
            "NetworkMode": r.network.display(),
            "AutoRemove": r.auto_remove,
            "Memory": memory,
            "NanoCpus": nano_cpus,
            "PidsLimit": resources.as_ref().and_then(|r| r.pids().as_ref()).map(|p| p.limit()).unwrap_or(0),
            "ReadonlyRootfs": spec.as_ref().and_then(|s| s.root().as_ref()).and_then(|root| root.readonly()).unwrap_or(false),
            "Privileged": false,
            "PortBindings": r.publish,
        },
        "Mounts": mounts,
        "Config": {
            "Hostname": r.hostname,
            "User": process.as_ref().map(|p| format!("{}:{}", p.user().uid(), p.user().gid())).unwrap_or_default(),
            "Tty": r.tty,
            "OpenStdin": r.interactive,
            "Env": r.env,
            "Cmd": r.args,
            "Image": r.image,
            "WorkingDir": r.working_dir,
            "Labels": r.labels,
            "StopSignal": nix::sys::signal::Signal::try_from(r.stop_signal).map(|s| s.as_str().to_string()).unwrap_or_default(),
        },
        "NetworkSettings": {
            "IPAddress": ip,
            "IPPrefixLen": prefix,
            "Gateway": gateway,
            "MacAddress": mac,
            "Ports": ports,
            "Networks": networks,
        },
    })
}

fn is_etc_file(destination: &str) -> bool {
    matches!(destination, "/etc/hosts" | "/etc/hostname" | "/etc/resolv.conf")
}
