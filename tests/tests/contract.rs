//! The config.json files Podman and containerd really pass (recorded in
//! ../shared/contract), adapted only where they name host paths that do not
//! exist here (rootfs, netns, bind sources), run through create, start,
//! state and delete.

use minirun_tests::{cgroup_dirs_named, contract_dir, require_root, unique_name, wait_until, Bundle, Runtime};
use serde_json::{json, Value};

fn load(name: &str) -> Option<Value> {
    let Some(dir) = contract_dir() else {
        eprintln!("skipped: ../shared/contract is missing");
        return None;
    };
    Some(serde_json::from_slice(&std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))).unwrap())
}

/// The recorded config on a busybox bundle: root.path to the bundle's
/// rootfs, network namespace paths and bind mounts of the client's own
/// files dropped, the cgroup made unique; all the rest as recorded.
fn adapt(mut config: Value, id: &str, cgroup_parent: &str) -> Bundle {
    let mut bundle = Bundle::busybox(&["true"]);
    config["root"]["path"] = json!("rootfs");
    for ns in config["linux"]["namespaces"].as_array_mut().unwrap() {
        ns.as_object_mut().unwrap().remove("path");
    }
    config["mounts"].as_array_mut().unwrap().retain(|m| m["type"] != "bind" || std::path::Path::new(m["source"].as_str().unwrap_or("")).exists());
    config.as_object_mut().unwrap().remove("hooks");
    config["linux"]["cgroupsPath"] = json!(format!("{cgroup_parent}{id}"));
    bundle.config = config;
    bundle.save();
    bundle
}

fn lifecycle(rt: &Runtime, bundle: &Bundle, id: &str) {
    let created = rt.create_with(bundle, id, &["--pid-file", bundle.path().join("init.pid").to_str().unwrap()]);
    assert!(created.status.success(), "create: {}", String::from_utf8_lossy(&created.stderr));
    let state = rt.state(id).unwrap();
    assert_eq!(state["status"], "created");
    assert_eq!(std::fs::read_to_string(bundle.path().join("init.pid")).unwrap(), state["pid"].to_string());
    rt.ok(&["start", id]);
    let status = rt.status(id).unwrap();
    assert!(status == "running" || status == "stopped", "{status}");
}

fn finish(rt: &Runtime, id: &str) {
    rt.ok(&["kill", "--all", id, "9"]);
    rt.wait_status(id, "stopped");
    rt.ok(&["delete", id]);
    assert!(rt.state(id).is_none());
    assert!(cgroup_dirs_named(id).is_empty(), "{:?}", cgroup_dirs_named(id));
}

#[test]
fn containerd_echo_config() {
    require_root!();
    let Some(config) = load("containerd-config-echo.json") else { return };
    let rt = Runtime::new();
    let id = unique_name("ctrd");
    let bundle = adapt(config, &id, "/minirun/");
    lifecycle(&rt, &bundle, &id);
    rt.wait_status(&id, "stopped");
    assert_eq!(bundle.read("stdout"), "hello\n", "stderr: {}", bundle.read("stderr"));
    finish(&rt, &id);
}

/// Podman's httpd container and a second container in its network
/// namespace (as `podman run --network container:...` makes it) that
/// fetches the page: the seccomp profile, sysctl, devices, pids limit,
/// cgroup mount and umask of the recorded configs all apply.
#[test]
fn podman_httpd_and_netns_container_configs() {
    require_root!();
    let (Some(httpd), Some(client)) = (load("podman-config-bridge-httpd.json"), load("podman-config-netns-container.json")) else { return };
    let rt = Runtime::new();
    let id = unique_name("podhttpd");
    let server = adapt(httpd, &id, "/libpod_parent/libpod-");
    std::fs::write(server.rootfs().join("var/www/index.html"), "hello from podman httpd\n").unwrap();
    lifecycle(&rt, &server, &id);
    assert_eq!(rt.status(&id).unwrap(), "running", "httpd stopped: {}", server.read("stderr"));
    let pid = rt.init_pid(&id);
    // httpd may take a moment to listen on port 80 (0x0050) in its netns.
    let listening = wait_until(10, || ["tcp", "tcp6"].iter().any(|f| std::fs::read_to_string(format!("/proc/{pid}/net/{f}")).unwrap_or_default().lines().any(|l| l.contains(":0050 ") && l.contains(" 0A "))));
    assert!(listening, "httpd does not listen on port 80: {}", server.read("stderr"));

    let client_id = unique_name("podclient");
    let mut client_bundle = adapt(client, &client_id, "/libpod_parent/libpod-");
    // Joins the httpd container's netns, as Podman's config did with its pid.
    for ns in client_bundle.config["linux"]["namespaces"].as_array_mut().unwrap() {
        if ns["type"] == "network" {
            ns["path"] = json!(format!("/proc/{pid}/ns/net"));
        }
    }
    client_bundle.save();
    lifecycle(&rt, &client_bundle, &client_id);
    rt.wait_status(&client_id, "stopped");
    assert_eq!(client_bundle.read("stdout"), "hello from podman httpd\n", "stderr: {}", client_bundle.read("stderr"));
    finish(&rt, &client_id);
    assert_eq!(rt.status(&id).unwrap(), "running");
    finish(&rt, &id);
}
