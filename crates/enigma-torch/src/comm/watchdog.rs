//! A per-collective timeout for communicators that have none.
//!
//! MPI's blocking collectives wait forever for a rank that stopped
//! answering (a hung data read, a deadlocked driver, a node that froze
//! without dying). [`Watched`] wraps any [`Communicator`]: before each
//! operation it notes what is in flight, and a watchdog thread ends the
//! process when one has lasted longer than the `collective_timeout`
//! setting, naming the operation, its group, the step, and the ranks of
//! the group that have not reached it. Ending this process is enough: the
//! launcher then ends the rest of the job.
//!
//! Which ranks did not arrive is read from heartbeats: every rank's
//! watchdog writes, once a second, how many operations it has started on
//! each group to `<run>/.ranks/rank-<N>` (the run directory is shared by
//! the ranks of a job on one node, and on clusters it sits on the shared
//! filesystem). A rank whose count for the group is behind this rank's, or
//! whose heartbeat has stopped, is named.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use tch::Tensor;

use super::{CommError, Communicator};
use enigma::plan::program::Group;
use enigma::run::failure;

/// What is being waited for.
#[derive(Clone, Debug)]
struct InFlight {
    op: &'static str,
    group: Option<usize>,
    since: Instant,
}

#[derive(Debug, Default)]
struct State {
    current: Option<InFlight>,
    /// Operations started, per group id.
    started: Vec<u64>,
}

/// A communicator whose every operation is watched.
pub struct Watched<C: Communicator> {
    inner: C,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// How the watchdog watches.
#[derive(Clone, Debug)]
pub struct Settings {
    pub timeout: Duration,
    /// Where heartbeats go (`<run>/.ranks`), if anywhere.
    pub heartbeats: Option<PathBuf>,
    pub groups: Vec<Group>,
    /// Ranks in the world (the group after `groups`).
    pub world: usize,
}

impl<C: Communicator> Watched<C> {
    pub fn new(inner: C, settings: Settings) -> Watched<C> {
        let state = Arc::new(Mutex::new(State {
            current: None,
            started: vec![0; settings.groups.len() + 1],
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let rank = inner.rank();
        let thread = {
            let state = state.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("enigma-watchdog".into())
                .spawn(move || watch(rank, settings, state, stop))
                .ok()
        };
        Watched {
            inner,
            state,
            stop,
            thread,
        }
    }

    /// The wrapped communicator.
    pub fn inner_mut(&mut self) -> &mut C {
        &mut self.inner
    }

    fn run<R>(
        &mut self,
        op: &'static str,
        group: Option<usize>,
        f: impl FnOnce(&mut C) -> Result<R, CommError>,
    ) -> Result<R, CommError> {
        if let Ok(mut s) = self.state.lock() {
            if let Some(c) = group.and_then(|g| s.started.get_mut(g)) {
                *c += 1;
            }
            s.current = Some(InFlight {
                op,
                group,
                since: Instant::now(),
            });
        }
        let r = f(&mut self.inner);
        if let Ok(mut s) = self.state.lock() {
            s.current = None;
        }
        r
    }
}

impl<C: Communicator> Drop for Watched<C> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn watch(rank: usize, settings: Settings, state: Arc<Mutex<State>>, stop: Arc<AtomicBool>) {
    let tick = Duration::from_millis(200);
    let mut last_beat = Instant::now() - Duration::from_secs(10);
    if let Some(dir) = &settings.heartbeats {
        let _ = std::fs::create_dir_all(dir);
    }
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(tick);
        let (current, started) = match state.lock() {
            Ok(s) => (s.current.clone(), s.started.clone()),
            Err(_) => return,
        };
        if let Some(dir) = &settings.heartbeats {
            if last_beat.elapsed() >= Duration::from_secs(1) {
                last_beat = Instant::now();
                beat(dir, rank, &started);
            }
        }
        let Some(c) = current else { continue };
        if c.since.elapsed() < settings.timeout {
            continue;
        }
        let world = enigma::plan::program::Group {
            kind: enigma::plan::program::GroupKind::Data,
            axes: Vec::new(),
            ranks: (0..settings.world).collect(),
        };
        let group = c.group.and_then(|g| {
            settings
                .groups
                .get(g)
                .or((g == settings.groups.len()).then_some(&world))
                .map(|x| (g, x))
        });
        let (what, missing) = match group {
            Some((g, grp)) => {
                let mine = started.get(g).copied().unwrap_or(0);
                let missing = settings
                    .heartbeats
                    .as_ref()
                    .map(|dir| missing(dir, rank, g, mine, &grp.ranks));
                (
                    format!(
                        "`{}` over the {} group {g} (ranks {:?})",
                        c.op,
                        grp.kind.as_str(),
                        grp.ranks
                    ),
                    missing,
                )
            }
            None => (format!("`{}`", c.op), None),
        };
        let who = match missing {
            Some(m) if !m.is_empty() => format!("; ranks that did not arrive: {}", m.join(", ")),
            Some(_) => "; every rank's heartbeat shows it arrived, so the transport itself stalled"
                .to_string(),
            None => String::new(),
        };
        let cause = format!(
            "error[E0508]: {what} did not complete within {} s (`collective_timeout` in the `parallel` block){who}",
            settings.timeout.as_secs()
        );
        eprintln!("error: {}: {cause}", failure::whereabouts());
        if let Some(p) = failure::record(&cause) {
            eprintln!("  recorded in {}", p.display());
        }
        std::process::exit(failure::EXIT_RANK_FAILED);
    }
}

/// Writes this rank's heartbeat: the operations started per group.
fn beat(dir: &std::path::Path, rank: usize, started: &[u64]) {
    let text: Vec<String> = started.iter().map(u64::to_string).collect();
    let tmp = dir.join(format!(".rank-{rank}.tmp"));
    if std::fs::write(&tmp, text.join(" ")).is_ok() {
        let _ = std::fs::rename(&tmp, dir.join(format!("rank-{rank}")));
    }
}

/// The ranks of `ranks` whose heartbeat shows fewer than `mine` operations
/// started on group `g`, or that has not been written for 5 s.
fn missing(dir: &std::path::Path, me: usize, g: usize, mine: u64, ranks: &[usize]) -> Vec<String> {
    let mut out = Vec::new();
    for &r in ranks.iter().filter(|&&r| r != me) {
        let path = dir.join(format!("rank-{r}"));
        let meta = std::fs::metadata(&path).ok();
        let stale = meta
            .and_then(|m| m.modified().ok())
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_none_or(|age| age > Duration::from_secs(5));
        let theirs = std::fs::read_to_string(&path).ok().and_then(|s| {
            s.split_whitespace()
                .nth(g)
                .and_then(|v| v.parse::<u64>().ok())
        });
        match theirs {
            Some(t) if t < mine => out.push(format!(
                "{r} (at operation {t} of the group, this rank at {mine}{})",
                if stale { ", heartbeat stopped" } else { "" }
            )),
            None => out.push(format!("{r} (no heartbeat)")),
            Some(_) if stale => out.push(format!("{r} (heartbeat stopped)")),
            Some(_) => {}
        }
    }
    out
}

impl<C: Communicator> Communicator for Watched<C> {
    fn rank(&self) -> usize {
        self.inner.rank()
    }
    fn size(&self) -> usize {
        self.inner.size()
    }
    fn transport(&self) -> &'static str {
        self.inner.transport()
    }
    fn world(&self) -> usize {
        self.inner.world()
    }
    fn group_rank(&self, group: usize) -> Result<(usize, usize), CommError> {
        self.inner.group_rank(group)
    }
    fn all_reduce(&mut self, group: usize, t: &mut Tensor) -> Result<(), CommError> {
        self.run("all_reduce", Some(group), |c| c.all_reduce(group, t))
    }
    fn all_gather(
        &mut self,
        group: usize,
        input: &Tensor,
        output: &mut Tensor,
    ) -> Result<(), CommError> {
        self.run("all_gather", Some(group), |c| {
            c.all_gather(group, input, output)
        })
    }
    fn reduce_scatter(
        &mut self,
        group: usize,
        input: &Tensor,
        output: &mut Tensor,
    ) -> Result<(), CommError> {
        self.run("reduce_scatter", Some(group), |c| {
            c.reduce_scatter(group, input, output)
        })
    }
    fn broadcast(&mut self, group: usize, t: &mut Tensor, root: usize) -> Result<(), CommError> {
        self.run("broadcast", Some(group), |c| c.broadcast(group, t, root))
    }
    fn send(&mut self, t: &Tensor, peer: usize) -> Result<(), CommError> {
        self.run("send", None, |c| c.send(t, peer))
    }
    fn recv(&mut self, t: &mut Tensor, peer: usize) -> Result<(), CommError> {
        self.run("recv", None, |c| c.recv(t, peer))
    }
    fn exchange(
        &mut self,
        sends: &[(&Tensor, usize)],
        recvs: &mut [(&mut Tensor, usize)],
    ) -> Result<(), CommError> {
        self.run("exchange", None, |c| c.exchange(sends, recvs))
    }
    fn barrier(&mut self, group: usize) -> Result<(), CommError> {
        self.run("barrier", Some(group), |c| c.barrier(group))
    }
    fn finish(&mut self) {
        self.inner.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_behind_or_silent_are_named() {
        let dir = std::env::temp_dir().join(format!("enigma-watchdog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        beat(&dir, 0, &[7, 3]);
        beat(&dir, 1, &[6, 3]);
        beat(&dir, 2, &[7, 3]);
        // Rank 0 waits in its 7th operation on group 0: rank 1 is at its
        // 6th, rank 3 never wrote a heartbeat, rank 2 arrived.
        let m = missing(&dir, 0, 0, 7, &[0, 1, 2, 3]);
        assert_eq!(
            m,
            vec![
                "1 (at operation 6 of the group, this rank at 7)".to_string(),
                "3 (no heartbeat)".to_string()
            ]
        );
        assert!(missing(&dir, 0, 1, 3, &[0, 1, 2]).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
