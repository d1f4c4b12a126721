//! `enigma run FILE --nproc N`: start N local processes of the runtime, for
//! a laptop or one node, the way a user would with a launcher.
//!
//! With OpenMPI's `mpirun` on the `PATH` (the CPU transport needs it, and
//! `dev.sh` installs it) this runs `mpirun -n N enigma-run run FILE ...`
//! with the same arguments minus `--nproc`; without it, N processes are
//! started directly with torchrun-style variables (`RANK`, `WORLD_SIZE`,
//! `LOCAL_RANK`, `MASTER_ADDR`, `MASTER_PORT`), which serve CUDA jobs
//! (NCCL's rendezvous) and make a CPU job say that it needs MPI (E0509).
//!
//! Either way this process supervises the job:
//!
//! - the job runs in its own process group, so Ctrl-C reaches only this
//!   launcher, which asks every rank to checkpoint and stop (SIGUSR1, which
//!   `mpirun` forwards to its processes; each rank treats it like
//!   SIGTERM) and exits with the job's status, 130 for a clean stop;
//! - without `mpirun`, the first process that exits with a failure gets
//!   the others terminated (SIGTERM, then SIGKILL after 10 s), as `mpirun`
//!   would, so a failing rank never leaves the others waiting.
//!
//! Each process's `OMP_NUM_THREADS` defaults to the machine's cores divided
//! by N (at least 1), as torchrun does, so N processes do not fight over
//! the same cores; a value the user set is kept.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::EXIT_USAGE;

/// The arguments without `--nproc N` (or `--nproc=N`).
pub fn strip_nproc(args: &[OsString]) -> Vec<OsString> {
    let mut out = Vec::with_capacity(args.len());
    let mut skip = false;
    for a in args {
        if skip {
            skip = false;
            continue;
        }
        match a.to_str() {
            Some("--nproc") => skip = true,
            Some(s) if s.starts_with("--nproc=") => {}
            _ => out.push(a.clone()),
        }
    }
    out
}

/// The `mpirun` command that starts `n` processes of `program` with
/// `args`, for a machine with `cores` cores, run by root or not.
pub fn mpirun_command(
    mpirun: &Path,
    n: usize,
    cores: usize,
    root: bool,
    threads: Option<usize>,
    program: &Path,
    args: &[OsString],
) -> Vec<OsString> {
    let mut cmd: Vec<OsString> = vec![mpirun.into(), "-n".into(), n.to_string().into()];
    if root {
        // OpenMPI refuses root unless told; containers and CI run as root.
        cmd.push("--allow-run-as-root".into());
    }
    if n > cores {
        cmd.push("--oversubscribe".into());
    }
    // Binding each rank to one core would leave libtorch's other threads
    // nowhere to run; the thread count below shares the cores instead.
    cmd.extend(["--bind-to".into(), "none".into()]);
    if let Some(t) = threads {
        cmd.extend(["-x".into(), format!("OMP_NUM_THREADS={t}").into()]);
    }
    cmd.push(program.into());
    cmd.extend(args.iter().cloned());
    cmd
}

/// `program` on the `PATH`, if there.
fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn is_root() -> bool {
    // The effective uid is the owner of /proc/self.
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
    }
    #[cfg(not(unix))]
    {
        false
    }
}

/// Starts `n` processes of `program` on `args` (the command line without
/// `--nproc`), supervises them, and returns the job's exit status.
pub fn launch(n: usize, program: &Path, args: &[OsString]) -> i32 {
    if n == 0 {
        eprintln!("error: --nproc must be at least 1");
        return EXIT_USAGE;
    }
    let rest = args.get(1..).unwrap_or(&[]);
    let threads = std::env::var_os("OMP_NUM_THREADS")
        .is_none()
        .then(|| (cores() / n).max(1));
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            eprintln!("error: cannot handle signals: {e}");
            return EXIT_USAGE;
        }
    }
    match which("mpirun") {
        Some(mpirun) => {
            let cmd = mpirun_command(&mpirun, n, cores(), is_root(), threads, program, rest);
            let mut c = Command::new(&cmd[0]);
            c.args(&cmd[1..]);
            own_group(&mut c);
            match c.spawn() {
                Ok(child) => supervise(vec![child], &stop),
                Err(e) => {
                    eprintln!("error: cannot start `{}`: {e}", mpirun.display());
                    EXIT_USAGE
                }
            }
        }
        None => {
            let port = free_port();
            let mut children = Vec::new();
            for rank in 0..n {
                let mut c = Command::new(program);
                c.args(rest)
                    .env("RANK", rank.to_string())
                    .env("WORLD_SIZE", n.to_string())
                    .env("LOCAL_RANK", rank.to_string())
                    .env("LOCAL_WORLD_SIZE", n.to_string())
                    .env("MASTER_ADDR", "127.0.0.1")
                    .env("MASTER_PORT", port.to_string());
                if let Some(t) = threads {
                    c.env("OMP_NUM_THREADS", t.to_string());
                }
                own_group(&mut c);
                match c.spawn() {
                    Ok(child) => children.push(child),
                    Err(e) => {
                        eprintln!("error: cannot start `{}`: {e}", program.display());
                        for mut c in children {
                            let _ = c.kill();
                            let _ = c.wait();
                        }
                        return EXIT_USAGE;
                    }
                }
            }
            supervise(children, &stop)
        }
    }
}

/// Puts the child in its own process group, so that the terminal's
/// Ctrl-C reaches only the launcher.
fn own_group(c: &mut Command) {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        c.process_group(0);
    }
}

fn signal(child: &Child, sig: i32) {
    #[cfg(unix)]
    {
        // No libc binding in the front end: `kill` is the portable way.
        let _ = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(child.id().to_string())
            .status();
    }
}

const SIGUSR1: i32 = 10;
const SIGTERM: i32 = 15;

/// Waits for `children`; forwards a stop request as SIGUSR1; ends the rest
/// when one fails. Returns the first failure's status, else 0 (or 130
/// after a stop).
fn supervise(mut children: Vec<Child>, stop: &AtomicBool) -> i32 {
    let mut status: Vec<Option<i32>> = vec![None; children.len()];
    let mut forwarded = false;
    let mut failed_at: Option<Instant> = None;
    let mut first_failure: Option<i32> = None;
    loop {
        if stop.load(Ordering::SeqCst) && !forwarded {
            forwarded = true;
            eprintln!("stopping: every rank checkpoints and stops after its step");
            for c in &children {
                signal(c, SIGUSR1);
            }
        }
        for (i, c) in children.iter_mut().enumerate() {
            if status[i].is_some() {
                continue;
            }
            if let Ok(Some(s)) = c.try_wait() {
                // A process killed by a signal has no code: report 128 + n
                // as shells do.
                #[cfg(unix)]
                let code = {
                    use std::os::unix::process::ExitStatusExt;
                    s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))
                };
                #[cfg(not(unix))]
                let code = s.code().unwrap_or(1);
                status[i] = Some(code);
                if code != 0 && first_failure.is_none() {
                    first_failure = Some(code);
                    failed_at = Some(Instant::now());
                }
            }
        }
        if status.iter().all(Option::is_some) {
            return first_failure.unwrap_or(0);
        }
        if let Some(t) = failed_at {
            // One process failed: end the rest, politely first.
            let sig_kill = t.elapsed() > Duration::from_secs(10);
            for (i, c) in children.iter_mut().enumerate() {
                if status[i].is_none() {
                    if sig_kill {
                        let _ = c.kill();
                    } else if t.elapsed() < Duration::from_millis(150) {
                        signal(c, SIGTERM);
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A port that was free a moment ago, for the rendezvous.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_or(29500, |a| a.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn nproc_is_taken_out_of_the_command_line() {
        assert_eq!(
            strip_nproc(&os(&[
                "enigma", "run", "a.enigma", "--nproc", "2", "--steps", "3"
            ])),
            os(&["enigma", "run", "a.enigma", "--steps", "3"])
        );
        assert_eq!(
            strip_nproc(&os(&["enigma", "run", "--nproc=4", "a.enigma"])),
            os(&["enigma", "run", "a.enigma"])
        );
    }

    #[test]
    fn mpirun_gets_root_oversubscription_and_threads_when_needed() {
        let cmd = mpirun_command(
            Path::new("/usr/bin/mpirun"),
            4,
            2,
            true,
            Some(1),
            Path::new("/x/enigma-run"),
            &os(&["run", "a.enigma"]),
        );
        let text: Vec<&str> = cmd.iter().filter_map(|s| s.to_str()).collect();
        assert_eq!(
            text,
            [
                "/usr/bin/mpirun",
                "-n",
                "4",
                "--allow-run-as-root",
                "--oversubscribe",
                "--bind-to",
                "none",
                "-x",
                "OMP_NUM_THREADS=1",
                "/x/enigma-run",
                "run",
                "a.enigma"
            ]
        );
        let cmd = mpirun_command(
            Path::new("mpirun"),
            2,
            8,
            false,
            None,
            Path::new("enigma-run"),
            &[],
        );
        assert!(!cmd
            .iter()
            .any(|a| a == "--oversubscribe" || a == "--allow-run-as-root"));
    }
}
