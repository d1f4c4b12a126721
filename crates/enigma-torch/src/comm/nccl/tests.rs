//! Tests of loading, bootstrapping and planning NCCL communicators that
//! run without a GPU, and a one-rank GPU smoke test that runs where there
//! is one.

use std::ffi::{OsStr, OsString};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::*;
use enigma::plan::program::GroupKind;
use std::thread;

const LIBTORCH_LIB: &str = env!("ENIGMA_LIBTORCH_LIB");

/// Set in the environment of the child test process.
const CHILD_ENV: &str = "ENIGMA_NCCL_TEST_CHILD";

fn g(kind: GroupKind, axes: &[&str], ranks: &[usize]) -> Group {
    Group {
        kind,
        axes: axes.iter().map(|s| s.to_string()).collect(),
        ranks: ranks.to_vec(),
    }
}

fn hybrid() -> Vec<Group> {
    vec![
        g(GroupKind::Data, &["node", "gpu"], &[0, 1, 2, 3]),
        g(GroupKind::Zero, &["gpu"], &[0, 1]),
        g(GroupKind::Replica, &["node"], &[0, 2]),
        g(GroupKind::Replica, &["node"], &[1, 3]),
        g(GroupKind::Zero, &["gpu"], &[2, 3]),
    ]
}

/// A port nothing listens on right now (the OS picked it for us).
fn free_port() -> u16 {
    let l = TcpListener::bind(("127.0.0.1", 0)).expect("bind an ephemeral port");
    l.local_addr().expect("local address").port()
}

/// A fresh directory for one test.
fn scratch_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("enigma-nccl-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create a scratch dir");
    d
}

/// The wheel's NCCL, if this libtorch comes with it.
fn venv_nccl() -> Option<PathBuf> {
    match locate_with(None, Path::new(LIBTORCH_LIB)) {
        Ok(p) => Some(p),
        Err(e) => {
            eprintln!("note: skipping, the venv has no NCCL: {e}");
            None
        }
    }
}

#[test]
fn version_codes_split() {
    assert_eq!(NcclVersion::from_code(22809).to_string(), "2.28.9");
    assert_eq!(NcclVersion::from_code(2708).to_string(), "2.7.8");
}

#[test]
fn bogus_override_is_a_clear_error() {
    let e = locate_with(
        Some(OsStr::new("/nonexistent/libnccl.so.2")),
        Path::new(LIBTORCH_LIB),
    )
    .expect_err("a missing file must fail");
    assert!(e.message.contains(NCCL_LIB_ENV), "{e}");
    assert!(e.message.contains("/nonexistent/libnccl.so.2"), "{e}");
    let e = load_with(Some(OsStr::new("/nonexistent")), Path::new(LIBTORCH_LIB))
        .expect_err("a missing path must fail");
    assert!(e.message.contains("ENIGMA_NCCL_LIB=/nonexistent"), "{e}");
}

#[test]
fn override_may_name_a_directory() {
    let d = scratch_dir("override");
    std::fs::write(d.join(NCCL_FILE), b"not really a library").expect("write");
    let found = locate_with(Some(d.as_os_str()), Path::new("/nowhere")).expect("found");
    assert_eq!(
        found,
        std::fs::canonicalize(d.join(NCCL_FILE)).expect("canonical")
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn shim_dir_links_and_is_reused() {
    let base = scratch_dir("shim");
    let target = base.join("libnccl.so.2");
    std::fs::write(&target, b"x").expect("write");
    let d1 = shim_dir_in(&base, &target).expect("made");
    let d2 = shim_dir_in(&base, &target).expect("reused");
    assert_eq!(d1, d2);
    assert_eq!(
        std::fs::read_link(d1.join(CUDARC_NAME)).expect("link"),
        target
    );
    let mode = std::fs::metadata(&d1).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    // A directory others may write to is refused, not used.
    std::fs::set_permissions(&d1, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let e = shim_dir_in(&base, &target).expect_err("refused");
    assert!(e.message.contains("refusing"), "{e}");
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn library_path_puts_the_shim_first() {
    let p = library_path_with(Path::new("/s"), Some(OsStr::new("/a:/b")));
    assert_eq!(p, OsString::from("/s:/a:/b"));
    assert_eq!(
        library_path_with(Path::new("/s"), None),
        OsString::from("/s")
    );
}

/// In this process NCCL either loads (a RUNPATH or LD_LIBRARY_PATH made
/// it reachable) with torch's version, or fails saying what to put on
/// LD_LIBRARY_PATH; it never panics.
#[test]
fn load_in_process_succeeds_or_explains() {
    if venv_nccl().is_none() {
        return;
    }
    match load_with(None, Path::new(LIBTORCH_LIB)) {
        Ok(lib) => assert_eq!(lib.version.code, 22809),
        Err(e) => {
            assert!(e.message.contains("LD_LIBRARY_PATH="), "{e}");
            assert!(e.message.contains("enigma-nccl-"), "{e}");
            assert!(version().is_err());
        }
    }
}

/// Starts this test binary again with the symlink directory on
/// LD_LIBRARY_PATH (what `reexec_if_needed` does) and runs
/// `child_probe` there: NCCL loads and reports 2.28.9.
#[test]
fn load_in_child_with_library_path() {
    let Some(lib) = venv_nccl() else { return };
    let shim = shim_dir(&lib).expect("shim dir");
    let exe = std::env::current_exe().expect("test binary");
    let module = module_path!();
    let name = format!(
        "{}::child_probe",
        module.split_once("::").map_or(module, |(_, rest)| rest)
    );
    let out = Command::new(exe)
        .args([name.as_str(), "--exact", "--nocapture", "--test-threads=1"])
        .env(
            "LD_LIBRARY_PATH",
            library_path_with(&shim, std::env::var_os("LD_LIBRARY_PATH").as_deref()),
        )
        .env(CHILD_ENV, "1")
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("NCCL-VERSION 22809"),
        "child said:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("1 passed"),
        "the child test did not run:\n{stdout}"
    );
}

/// The child half of `load_in_child_with_library_path`; does nothing
/// when run directly.
#[test]
fn child_probe() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let lib = load(Path::new(LIBTORCH_LIB)).expect("NCCL loads with the shim on LD_LIBRARY_PATH");
    println!("NCCL-VERSION {}", lib.version.code);
    assert_eq!(lib.version, NcclVersion::from_code(22809));
    // A unique id needs no GPU.
    assert!(nccl::get_uniqueid().is_ok());
    let mut boot =
        TcpBootstrap::connect("127.0.0.1", 0, 0, 1, Duration::from_secs(1)).expect("alone");
    let groups = vec![g(GroupKind::Data, &["gpu"], &[0])];
    let usable = cuda_present().expect("probe") && tch::Cuda::is_available();
    match NcclComm::new(0, 1, &groups, 0, &mut boot) {
        Err(e) => {
            println!("NCCL-COMM-ERROR {e}");
            assert!(!usable, "a GPU is there, yet: {e}");
            assert!(e.message.contains("CUDA"), "{e}");
        }
        Ok(mut comm) => {
            assert!(usable);
            single_rank_smoke(&mut comm);
            println!("NCCL-COMM-SMOKE ok");
        }
    }
}

/// With one rank every collective is a copy: checks the calls go
/// through on a real GPU (only reached there).
fn single_rank_smoke(comm: &mut NcclComm) {
    let dev = Device::Cuda(0);
    assert_eq!(comm.group_rank(0), Ok((0, 1)));
    for kind in [Kind::Float, Kind::BFloat16] {
        let mut t = Tensor::arange(8, (kind, dev));
        let want = t.copy();
        comm.all_reduce(0, &mut t).expect("all_reduce");
        comm.broadcast(0, &mut t, 0).expect("broadcast");
        let mut out = Tensor::zeros([8], (kind, dev));
        comm.all_gather(0, &t, &mut out).expect("all_gather");
        let mut part = Tensor::zeros([8], (kind, dev));
        comm.reduce_scatter(0, &out, &mut part)
            .expect("reduce_scatter");
        comm.barrier(0).expect("barrier");
        assert!(part.equal(&want) && out.equal(&want));
    }
    let mut wrong = Tensor::zeros([4], (Kind::Int64, dev));
    assert!(comm.all_reduce(0, &mut wrong).is_err());
    let mut cpu = Tensor::zeros([4], (Kind::Float, Device::Cpu));
    assert!(comm.all_reduce(0, &mut cpu).is_err());
}

/// Without a loadable NCCL or libcuda, setting up fails with a message,
/// not a panic.
#[test]
fn new_without_gpu_is_a_clear_error() {
    if cuda_present().unwrap_or(false) {
        eprintln!("note: skipping, this machine has a CUDA driver");
        return;
    }
    let mut boot =
        TcpBootstrap::connect("127.0.0.1", 0, 0, 1, Duration::from_secs(1)).expect("alone");
    let groups = vec![g(GroupKind::Data, &["gpu"], &[0])];
    let e = match NcclComm::new(0, 1, &groups, 0, &mut boot) {
        Err(e) => e,
        Ok(_) => panic!("no GPU, yet a communicator"),
    };
    assert!(
        e.message.contains("NCCL") || e.message.contains("CUDA"),
        "{e}"
    );
}

#[test]
fn bad_groups_are_refused_before_any_library_call() {
    let e = plan_comms(0, 2, &[g(GroupKind::Data, &["gpu"], &[0, 2])]).expect_err("rank 2 of 2");
    assert!(e.message.contains("group 0"), "{e}");
    let overlapping = vec![
        g(GroupKind::Zero, &["gpu"], &[0, 1]),
        g(GroupKind::Zero, &["gpu"], &[1, 2]),
    ];
    let e = plan_comms(0, 3, &overlapping).expect_err("overlap");
    assert!(e.message.contains("both hold rank 1"), "{e}");
    assert!(plan_comms(2, 2, &[]).is_err());
}

#[test]
fn plan_reuses_a_world_group_and_follows_partitions() {
    let groups = hybrid();
    let p = plan_comms(3, 4, &groups).expect("plan");
    assert_eq!(p.world_group, Some(0));
    let keys: Vec<(u32, usize, usize, usize)> = p
        .specs
        .iter()
        .map(|s| (s.key, s.root, s.pos, s.size))
        .collect();
    assert_eq!(keys, vec![(0, 0, 3, 4), (4, 2, 1, 2), (3, 1, 1, 2)]);
    // Without a world group, a world communicator comes first.
    let p = plan_comms(1, 4, &groups[1..]).expect("plan");
    assert_eq!(p.world_group, None);
    assert_eq!(
        p.specs[0],
        CommSpec {
            key: WORLD_KEY,
            root: 0,
            pos: 1,
            size: 4
        }
    );
}

/// Runs `f(rank, bootstrap)` on `world` threads over a real TCP
/// bootstrap on 127.0.0.1, rank 0 starting last so the others retry.
fn on_ranks<T: Send + 'static>(
    world: usize,
    f: impl Fn(usize, &mut TcpBootstrap) -> T + Send + Sync + Clone + 'static,
) -> Vec<T> {
    let port = free_port();
    let handles: Vec<_> = (0..world)
        .rev()
        .map(|rank| {
            let f = f.clone();
            let h = thread::spawn(move || {
                let mut b =
                    TcpBootstrap::connect("127.0.0.1", port, rank, world, Duration::from_secs(20))
                        .unwrap_or_else(|e| panic!("rank {rank}: {e}"));
                f(rank, &mut b)
            });
            thread::sleep(Duration::from_millis(100));
            h
        })
        .collect();
    let mut out: Vec<T> = handles
        .into_iter()
        .map(|h| h.join().expect("rank thread"))
        .collect();
    out.reverse();
    out
}

#[test]
fn tcp_bootstrap_gathers_three_ranks() {
    let results = on_ranks(3, |rank, b| {
        let first = b
            .all_gather_bytes(format!("rank {rank}").as_bytes())
            .expect("first");
        // Uneven sizes, an empty part and a big one.
        let blob = vec![rank as u8; [0, 3, 1 << 20][rank]];
        let second = b.all_gather_bytes(&blob).expect("second");
        (first, second)
    });
    for (first, second) in results {
        assert_eq!(
            first,
            vec![b"rank 0".to_vec(), b"rank 1".to_vec(), b"rank 2".to_vec()]
        );
        assert_eq!(second, vec![vec![], vec![1u8; 3], vec![2u8; 1 << 20]]);
    }
}

#[test]
fn ids_reach_every_member_of_their_group() {
    let results = on_ranks(4, |rank, b| {
        let plan = plan_comms(rank, 4, &hybrid()[1..]).expect("plan");
        let mut n = 0u8;
        let mut fake = || {
            n += 1;
            Ok([rank as u8 * 16 + n; ID_BYTES])
        };
        let ids = exchange_ids(rank, 4, &plan.specs, b, &mut fake).expect("exchange");
        plan.specs
            .iter()
            .map(|s| s.key)
            .zip(ids.iter().map(|id| id[0]))
            .collect::<Vec<_>>()
    });
    // Rank r's ids: world from rank 0; zero group from its first rank;
    // replica group from its first rank, each root's n-th id.
    assert_eq!(results[0], vec![(WORLD_KEY, 1), (0, 2), (1, 3)]);
    assert_eq!(results[1], vec![(WORLD_KEY, 1), (0, 2), (2, 16 + 1)]);
    assert_eq!(results[2], vec![(WORLD_KEY, 1), (3, 32 + 1), (1, 3)]);
    assert_eq!(results[3], vec![(WORLD_KEY, 1), (3, 32 + 1), (2, 16 + 1)]);
}

#[test]
fn tcp_bootstrap_without_rank_zero_times_out_naming_the_address() {
    let port = free_port();
    let e = match TcpBootstrap::connect("127.0.0.1", port, 1, 2, Duration::from_millis(300)) {
        Err(e) => e,
        Ok(_) => panic!("nobody listens"),
    };
    assert!(e.message.contains(&format!("127.0.0.1:{port}")), "{e}");
    assert!(e.message.contains("rank 1 of 2"), "{e}");
}

#[test]
fn tcp_bootstrap_root_names_missing_ranks() {
    let port = free_port();
    let e = match TcpBootstrap::connect("127.0.0.1", port, 0, 3, Duration::from_millis(300)) {
        Err(e) => e,
        Ok(_) => panic!("nobody connects"),
    };
    assert!(e.message.contains("ranks 1, 2 did not connect"), "{e}");
}

#[test]
fn tcp_bootstrap_refuses_a_world_mismatch() {
    let port = free_port();
    let root = thread::spawn(move || {
        TcpBootstrap::connect("127.0.0.1", port, 0, 2, Duration::from_secs(10)).err()
    });
    let leaf = TcpBootstrap::connect("127.0.0.1", port, 1, 3, Duration::from_secs(2));
    let e = root.join().expect("root thread").expect("root must refuse");
    assert!(e.message.contains("world of 3"), "{e}");
    assert!(leaf.is_err());
}
