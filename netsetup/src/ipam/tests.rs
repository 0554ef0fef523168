use std::fs;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult, Pid};

use super::*;
use crate::network::NetworkStore;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn me() -> LeaseOwner {
    LeaseOwner::of_process(std::process::id() as i32).expect("we are running")
}

/// A store in a temporary directory with one network on `subnet`.
fn setup(subnet: &str) -> (tempfile::TempDir, NetworkStore, Ipam) {
    let dir = tempfile::tempdir().unwrap();
    let store = NetworkStore::open(dir.path()).unwrap();
    let network = store.create("net", Some(subnet.parse().unwrap()), false, &[]).unwrap();
    let ipam = Ipam::open(dir.path(), &network).unwrap();
    (dir, store, ipam)
}

/// A child that only sleeps: a lease owner we can kill.
struct Child(Pid);

impl Child {
    fn spawn() -> Self {
        // SAFETY: the child calls only async-signal-safe functions (pause).
        match unsafe { fork() }.unwrap() {
            ForkResult::Child => loop {
                // SAFETY: pause has no preconditions.
                unsafe { libc::pause() };
            },
            ForkResult::Parent { child } => Child(child),
        }
    }

    fn owner(&self) -> LeaseOwner {
        LeaseOwner::of_process(self.0.as_raw()).expect("child is running")
    }

    fn kill_and_reap(self) {
        kill(self.0, Signal::SIGKILL).unwrap();
        waitpid(self.0, None).unwrap();
        std::mem::forget(self);
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = kill(self.0, Signal::SIGKILL);
        let _ = waitpid(self.0, None);
    }
}

#[test]
fn allocation_starts_after_the_gateway_and_never_hands_out_reserved_addresses() {
    let (_dir, _store, ipam) = setup("10.1.0.0/29");
    let got: Vec<Ipv4Addr> = (0..5).map(|i| ipam.allocate(&format!("c{i}"), me(), None).unwrap()).collect();
    assert_eq!(got, ["10.1.0.2", "10.1.0.3", "10.1.0.4", "10.1.0.5", "10.1.0.6"].map(ip));
    let err = ipam.allocate("c5", me(), None).unwrap_err();
    assert!(matches!(err, IpamError::Full { .. }));
    assert_eq!(err.to_string(), "network net (10.1.0.0/29): no free address left");
}

#[test]
fn a_slash_30_has_room_for_one_container() {
    let (_dir, _store, ipam) = setup("10.2.0.0/30");
    assert_eq!(ipam.allocate("only", me(), None).unwrap(), ip("10.2.0.2"));
    let err = ipam.allocate("second", me(), None).unwrap_err();
    assert_eq!(err.to_string(), "network net (10.2.0.0/30): no free address left");
}

#[test]
fn released_addresses_are_reused_lowest_first() {
    let (_dir, _store, ipam) = setup("10.3.0.0/24");
    for id in ["a", "b", "c", "d"] {
        ipam.allocate(id, me(), None).unwrap();
    }
    assert_eq!(ipam.release("c").unwrap(), Some(ip("10.3.0.4")));
    assert_eq!(ipam.release("b").unwrap(), Some(ip("10.3.0.3")));
    assert_eq!(ipam.release("b").unwrap(), None, "release is idempotent");
    assert_eq!(ipam.release("never").unwrap(), None);
    assert_eq!(ipam.allocate("e", me(), None).unwrap(), ip("10.3.0.3"));
    assert_eq!(ipam.allocate("f", me(), None).unwrap(), ip("10.3.0.4"));
    assert_eq!(ipam.allocate("g", me(), None).unwrap(), ip("10.3.0.6"));
    let leases = ipam.leases().unwrap();
    let order: Vec<&str> = leases.iter().map(|l| l.container_id.as_str()).collect();
    assert_eq!(order, ["a", "e", "f", "d", "g"], "listed in address order");
}

#[test]
fn the_same_container_gets_its_lease_again() {
    let (_dir, _store, ipam) = setup("10.4.0.0/24");
    let first = ipam.allocate("same", me(), None).unwrap();
    assert_eq!(ipam.allocate("same", me(), None).unwrap(), first);
    assert_eq!(ipam.allocate("same", me(), Some(first)).unwrap(), first);
    assert_eq!(ipam.leases().unwrap().len(), 1);
    let err = ipam.allocate("same", me(), Some(ip("10.4.0.9"))).unwrap_err();
    assert!(matches!(err, IpamError::AlreadyLeased { .. }), "{err}");
}

#[test]
fn requested_addresses() {
    let (_dir, _store, ipam) = setup("10.5.0.0/24");
    assert_eq!(ipam.allocate("x", me(), Some(ip("10.5.0.200"))).unwrap(), ip("10.5.0.200"));
    // The lowest free address is still the first one.
    assert_eq!(ipam.allocate("y", me(), None).unwrap(), ip("10.5.0.2"));
    let err = ipam.allocate("z", me(), Some(ip("10.5.0.200"))).unwrap_err();
    assert_eq!(err.to_string(), "address 10.5.0.200 on network net is already leased to container x");
    let err = ipam.allocate("z", me(), Some(ip("10.6.0.9"))).unwrap_err();
    assert_eq!(err.to_string(), "address 10.6.0.9 is not in network net (10.5.0.0/24)");
    for (address, role) in [("10.5.0.0", "network"), ("10.5.0.1", "gateway"), ("10.5.0.255", "broadcast")] {
        let err = ipam.allocate("z", me(), Some(ip(address))).unwrap_err();
        assert!(matches!(err, IpamError::Reserved { role: r, .. } if r == role), "{address}: {err}");
    }
    assert_eq!(ipam.leases().unwrap().len(), 2, "failed requests leave nothing behind");
}

#[test]
fn bad_callers_are_refused() {
    let (_dir, _store, ipam) = setup("10.6.0.0/24");
    assert!(matches!(ipam.allocate("", me(), None), Err(IpamError::EmptyContainerId)));
    let impostor = LeaseOwner { pid: std::process::id() as i32, start_time: me().start_time + 1 };
    assert!(matches!(ipam.allocate("c", impostor, None), Err(IpamError::OwnerNotRunning { .. })));
    let nobody = LeaseOwner { pid: -5, start_time: 0 };
    assert!(matches!(ipam.allocate("c", nobody, None), Err(IpamError::OwnerNotRunning { .. })));
    let mut forged = ipam.network().clone();
    forged.name = "../escape".into();
    assert!(matches!(Ipam::open(_dir.path(), &forged), Err(IpamError::Network(_))));
}

#[test]
fn lease_of_a_killed_owner_is_reclaimed() {
    let (_dir, _store, ipam) = setup("10.7.0.0/24");
    let child = Child::spawn();
    let owner = child.owner();
    assert!(owner.is_running());
    assert_eq!(ipam.allocate("doomed", owner, None).unwrap(), ip("10.7.0.2"));
    assert_eq!(ipam.allocate("alive", me(), None).unwrap(), ip("10.7.0.3"));
    assert!(ipam.reclaim_stale().unwrap().is_empty(), "a running owner keeps its lease");
    child.kill_and_reap();
    assert!(!owner.is_running());
    let stale = ipam.reclaim_stale().unwrap();
    assert_eq!(stale, [Lease { container_id: "doomed".into(), address: ip("10.7.0.2"), owner }]);
    assert!(ipam.reclaim_stale().unwrap().is_empty());
    assert_eq!(ipam.allocate("next", me(), None).unwrap(), ip("10.7.0.2"));
}

#[test]
fn allocate_reclaims_stale_leases_by_itself() {
    let (_dir, _store, ipam) = setup("10.8.0.0/30");
    let child = Child::spawn();
    ipam.allocate("doomed", child.owner(), None).unwrap();
    assert!(matches!(ipam.allocate("waiting", me(), None), Err(IpamError::Full { .. })));
    child.kill_and_reap();
    assert_eq!(ipam.allocate("waiting", me(), None).unwrap(), ip("10.8.0.2"));
}

#[test]
fn lease_whose_owner_pid_was_reused_is_reclaimed() {
    let (dir, _store, ipam) = setup("10.9.0.0/24");
    ipam.allocate("before-reboot", me(), None).unwrap();
    ipam.allocate("now", me(), None).unwrap();
    // As after a reboot: the recorded pid runs again, but it is another
    // process, started at another time.
    let path = dir.path().join("leases/net.json");
    let mut file: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    file["leases"][0]["owner"]["start_time"] = (me().start_time + 1).into();
    fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();
    let stale = ipam.reclaim_stale().unwrap();
    assert_eq!(stale.len(), 1);
    assert_eq!(stale[0].container_id, "before-reboot");
    assert_eq!(ipam.leases().unwrap().len(), 1);
}

#[test]
fn an_empty_lease_file_left_by_a_power_cut_means_no_leases() {
    let (dir, _store, ipam) = setup("10.10.0.0/24");
    ipam.allocate("a", me(), None).unwrap();
    fs::write(dir.path().join("leases/net.json"), "").unwrap();
    assert!(ipam.leases().unwrap().is_empty());
    assert_eq!(ipam.allocate("b", me(), None).unwrap(), "10.10.0.2".parse::<std::net::Ipv4Addr>().unwrap());
}

#[test]
fn corrupt_lease_files_are_errors_naming_the_file_and_are_left_alone() {
    let (dir, _store, ipam) = setup("10.10.0.0/24");
    ipam.allocate("a", me(), None).unwrap();
    let path = dir.path().join("leases/net.json");
    let owner = serde_json::to_string(&me()).unwrap();
    let lease = |id: &str, address: &str| format!(r#"{{"container_id":"{id}","address":"{address}","owner":{owner}}}"#);
    let cases = [
        "{\"leases\": [".to_string(),
        "[]".to_string(),
        r#"{"leases":[{"container_id":"a","address":"not an ip","owner":{"pid":1,"start_time":1}}]}"#.to_string(),
        format!(r#"{{"leases":[{},{}]}}"#, lease("a", "10.10.0.2"), lease("b", "10.10.0.2")),
        format!(r#"{{"leases":[{},{}]}}"#, lease("a", "10.10.0.2"), lease("a", "10.10.0.3")),
        format!(r#"{{"leases":[{}]}}"#, lease("a", "10.99.0.2")),
        format!(r#"{{"leases":[{}]}}"#, lease("a", "10.10.0.1")),
        format!(r#"{{"leases":[{}]}}"#, lease("", "10.10.0.2")),
    ];
    for content in cases {
        fs::write(&path, &content).unwrap();
        let err = ipam.allocate("b", me(), None).unwrap_err();
        assert!(matches!(err, IpamError::Corrupt { .. }), "{content:?}: {err}");
        assert!(err.to_string().contains(&path.display().to_string()), "{err}");
        assert!(matches!(ipam.leases(), Err(IpamError::Corrupt { .. })));
        assert!(matches!(ipam.release("a"), Err(IpamError::Corrupt { .. })));
        assert!(matches!(ipam.reclaim_stale(), Err(IpamError::Corrupt { .. })));
        assert_eq!(fs::read_to_string(&path).unwrap(), content, "a corrupt file is never rewritten");
    }
}

#[test]
fn leases_follow_their_network() {
    let (dir, store, ipam) = setup("10.11.0.0/24");
    ipam.allocate("a", me(), None).unwrap();
    ipam.release("a").unwrap();
    store.remove("net").unwrap();
    assert!(matches!(ipam.allocate("b", me(), None), Err(IpamError::Network(e)) if matches!(*e, NetworkError::NotFound(_))));
    assert_eq!(ipam.release("a").unwrap(), None, "teardown after the network went away succeeds");
    // Made again on another subnet: the old handle must not write into it.
    store.create("net", Some("10.12.0.0/24".parse().unwrap()), false, &[]).unwrap();
    assert!(matches!(ipam.allocate("b", me(), None), Err(IpamError::NetworkChanged(_))));
    assert_eq!(ipam.release("b").unwrap(), None);
    let fresh = Ipam::open(dir.path(), &store.get("net").unwrap()).unwrap();
    assert_eq!(fresh.allocate("b", me(), None).unwrap(), ip("10.12.0.2"));
}

#[test]
fn fifty_threads_get_fifty_distinct_addresses() {
    let (dir, store, _ipam) = setup("10.13.0.0/24");
    let network = store.get("net").unwrap();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(50));
    let threads: Vec<_> = (0..50)
        .map(|i| {
            let (root, network, barrier) = (dir.path().to_path_buf(), network.clone(), barrier.clone());
            std::thread::spawn(move || {
                // Each thread its own handle, as separate minirun processes would have.
                let ipam = Ipam::open(&root, &network).unwrap();
                barrier.wait();
                ipam.allocate(&format!("thread-{i}"), me(), None).unwrap()
            })
        })
        .collect();
    let addresses: HashSet<Ipv4Addr> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(addresses.len(), 50);
    let leases = Ipam::open(dir.path(), &network).unwrap().leases().unwrap();
    assert_eq!(leases.len(), 50);
    let expected: HashSet<Ipv4Addr> = (2..52).map(|h| Ipv4Addr::new(10, 13, 0, h)).collect();
    assert_eq!(addresses, expected, "no gaps: always the lowest free address");
}

#[test]
fn two_hundred_leases_stay_fast() {
    let (_dir, _store, ipam) = setup("10.14.0.0/24");
    let start = Instant::now();
    for i in 0..200 {
        ipam.allocate(&format!("c{i}"), me(), None).unwrap();
    }
    let bulk = start.elapsed();
    let start = Instant::now();
    assert_eq!(ipam.allocate("c200", me(), None).unwrap(), ip("10.14.0.202"));
    let one = start.elapsed();
    // Generous bounds: each call syncs the file to disk; what matters is
    // that the 201st costs about what the first did.
    assert!(bulk < Duration::from_secs(10), "200 allocations took {bulk:?}");
    assert!(one < Duration::from_secs(1), "the 201st allocation took {one:?}");
}

#[test]
fn start_times_of_processes() {
    let mine = process_start_time(std::process::id() as i32).expect("we are running");
    assert_eq!(process_start_time(std::process::id() as i32), Some(mine));
    for pid in [0, -1, i32::MIN, i32::MAX] {
        assert_eq!(process_start_time(pid), None, "{pid}");
    }
    // A zombie is not running.
    // SAFETY: the child only calls _exit.
    let child = match unsafe { fork() }.unwrap() {
        ForkResult::Child => unsafe { libc::_exit(0) },
        ForkResult::Parent { child } => child,
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::read_to_string(format!("/proc/{child}/stat")).map(|s| !s.contains(") Z ")).unwrap_or(false) {
        assert!(Instant::now() < deadline, "child never became a zombie");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(process_start_time(child.as_raw()), None);
    waitpid(child, None).unwrap();
}

#[test]
fn tiny_and_edge_subnets_never_panic() {
    for (subnet, gateway) in [("10.0.0.0/31", "10.0.0.1"), ("10.0.0.1/32", "10.0.0.1"), ("255.255.255.255/32", "255.255.255.255"), ("0.0.0.0/32", "0.0.0.0")] {
        let network = Network {
            name: "edge".into(),
            bridge: "x".into(),
            subnet: subnet.parse().unwrap(),
            gateway: ip(gateway),
            internal: false,
            created: String::new(),
        };
        assert_eq!(Pool::of(&network).lowest_free(&BTreeSet::new()), None, "{subnet}");
    }
}

#[test]
fn peek_predicts_allocate_and_writes_nothing() {
    let (dir, store, ipam) = setup("10.10.0.0/29");
    let leases_dir = dir.path().join(crate::network::LEASES_DIR);
    let files = || {
        let mut v: Vec<String> = fs::read_dir(&leases_dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    };
    let reader = Ipam::open_read_only(dir.path(), ipam.network()).unwrap();
    // No lease file yet: the first host address after the gateway.
    assert_eq!(reader.peek("a", None).unwrap(), ip("10.10.0.2"));
    assert!(files().is_empty(), "peek made no lock and no lease file: {:?}", files());
    let child = Child::spawn();
    for id in ["a", "b", "c"] {
        let owner = if id == "b" { child.owner() } else { me() };
        assert_eq!(reader.peek(id, None).unwrap(), ipam.allocate(id, owner, None).unwrap(), "{id}");
    }
    let before = fs::read(leases_dir.join("net.json")).unwrap();
    // A container with a lease keeps it; a stale lease counts as free, as allocate reclaims it.
    assert_eq!(reader.peek("a", None).unwrap(), ip("10.10.0.2"));
    assert_eq!(reader.peek("d", None).unwrap(), ip("10.10.0.5"));
    child.kill_and_reap();
    assert_eq!(reader.peek("d", None).unwrap(), ip("10.10.0.3"));
    assert_eq!(reader.peek_leases().unwrap().len(), 3, "the stale lease is still in the file");
    // The same errors as allocate.
    assert!(matches!(reader.peek("d", Some(ip("10.10.0.4"))), Err(IpamError::AddressTaken { .. })));
    assert!(matches!(reader.peek("a", Some(ip("10.10.0.6"))), Err(IpamError::AlreadyLeased { .. })));
    assert!(matches!(reader.peek("d", Some(ip("10.10.0.1"))), Err(IpamError::Reserved { .. })));
    assert!(matches!(reader.peek("", None), Err(IpamError::EmptyContainerId)));
    assert_eq!(reader.peek("d", Some(ip("10.10.0.6"))).unwrap(), ip("10.10.0.6"));
    assert_eq!(fs::read(leases_dir.join("net.json")).unwrap(), before, "peek wrote nothing");
    assert_eq!(ipam.allocate("d", me(), None).unwrap(), ip("10.10.0.3"));

    // A network that is not stored (yet) has no leases, and its directory is not made.
    let empty = tempfile::tempdir().unwrap();
    let unstored = Ipam::open_read_only(empty.path(), ipam.network()).unwrap();
    assert_eq!(unstored.peek("x", None).unwrap(), ip("10.10.0.2"));
    assert_eq!(fs::read_dir(empty.path()).unwrap().count(), 0);
    drop(store);
}
