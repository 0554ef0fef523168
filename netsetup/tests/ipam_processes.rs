//! IPAM across processes: flock is held per open file description, so only
//! separate processes show that concurrent minirun commands never hand out
//! one address twice. The children are this test binary run again, with
//! `child_allocates` selected and told what to do through the environment.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use minirun_netsetup::ipam::{Ipam, LeaseOwner};
use minirun_netsetup::network::NetworkStore;

const ROOT: &str = "MINIRUN_IPAM_TEST_ROOT";
const CHILD: &str = "MINIRUN_IPAM_TEST_CHILD";
const OWNER: &str = "MINIRUN_IPAM_TEST_OWNER";
const PER_CHILD: usize = 5;

/// Does nothing unless started by one of the tests below.
#[test]
fn child_allocates() {
    let (Ok(root), Ok(child)) = (std::env::var(ROOT), std::env::var(CHILD)) else { return };
    let root = Path::new(&root);
    // Start together, to contend for the lock.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !root.join("go").exists() {
        assert!(Instant::now() < deadline, "never told to go");
        std::thread::sleep(Duration::from_millis(1));
    }
    let owner_pid = match std::env::var(OWNER).as_deref() {
        Ok("self") => std::process::id() as i32,
        Ok(pid) => pid.parse().unwrap(),
        Err(_) => panic!("{OWNER} unset"),
    };
    let owner = LeaseOwner::of_process(owner_pid).expect("owner is running");
    let network = NetworkStore::open(root).unwrap().get("shared").unwrap();
    for k in 0..PER_CHILD {
        // A fresh handle each time, as each minirun command would have.
        Ipam::open(root, &network).unwrap().allocate(&format!("proc{child}-{k}"), owner, None).unwrap();
    }
}

fn spawn_children(root: &Path, count: usize, owner: &str) -> Vec<Child> {
    let me = std::env::current_exe().unwrap();
    (0..count)
        .map(|i| {
            Command::new(&me)
                .args(["--exact", "child_allocates", "--test-threads=1", "--quiet"])
                .env(ROOT, root)
                .env(CHILD, i.to_string())
                .env(OWNER, owner)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect()
}

fn run(root: &Path, count: usize, owner: &str) {
    let children = spawn_children(root, count, owner);
    std::fs::write(root.join("go"), b"").unwrap();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "a child failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn twenty_processes_get_distinct_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let store = NetworkStore::open(dir.path()).unwrap();
    let network = store.create("shared", Some("10.77.0.0/24".parse().unwrap()), false, &[]).unwrap();
    // The leases belong to this process, as they would to each container's
    // init: they must stay live while the children come and go.
    run(dir.path(), 20, &std::process::id().to_string());
    let leases = Ipam::open(dir.path(), &network).unwrap().leases().unwrap();
    assert_eq!(leases.len(), 20 * PER_CHILD);
    let addresses: HashSet<Ipv4Addr> = leases.iter().map(|l| l.address).collect();
    let expected: HashSet<Ipv4Addr> = (2..2 + 20 * PER_CHILD as u8).map(|h| Ipv4Addr::new(10, 77, 0, h)).collect();
    assert_eq!(addresses, expected);
    let ids: HashSet<&str> = leases.iter().map(|l| l.container_id.as_str()).collect();
    assert_eq!(ids.len(), 20 * PER_CHILD);
}

#[test]
fn leases_of_exited_processes_are_reclaimed() {
    let dir = tempfile::tempdir().unwrap();
    let store = NetworkStore::open(dir.path()).unwrap();
    let network = store.create("shared", Some("10.78.0.0/24".parse().unwrap()), false, &[]).unwrap();
    // One child: a second would already reclaim the first one's leases.
    run(dir.path(), 1, "self");
    let ipam = Ipam::open(dir.path(), &network).unwrap();
    assert_eq!(ipam.leases().unwrap().len(), PER_CHILD);
    let stale = ipam.reclaim_stale().unwrap();
    assert_eq!(stale.len(), PER_CHILD);
    assert!(ipam.leases().unwrap().is_empty());
    store.remove("shared").unwrap();
}
