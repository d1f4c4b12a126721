//! The training stream: batches assembled ahead on a background thread,
//! in the deterministic order of [`Dataset::epoch_batches`].
//!
//! A [`Position`] is the next batch to produce: an epoch and an index into
//! that epoch's batches. Since an epoch's batches depend only on the
//! dataset, the batch size, the seed and the epoch number, a position is
//! all a checkpoint needs: a loader started from it produces exactly the
//! batches the interrupted one would have produced next.
//!
//! The thread sends into a bounded channel, so it is never more than
//! `prefetch` batches ahead (plus the one it is assembling). Dropping or
//! stopping the [`Loader`] sets a flag and drops the receiving end, which
//! wakes a thread blocked on a full channel; the thread then returns and
//! is joined, so stopping never hangs for longer than one batch takes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::{Batch, Dataset, Error, ErrorKind};
use crate::ir::data::Split;

/// Where the training stream is: the next batch is batch `index` of epoch
/// `epoch`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position {
    pub epoch: u64,
    pub index: u64,
}

type Item = Result<(Position, Batch), Error>;

/// Training batches, assembled ahead on a background thread.
pub struct Loader {
    rx: Option<Receiver<Item>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    /// Set once the thread has reported an error or gone away.
    done: bool,
}

impl Loader {
    /// Starts producing the training batches of `batch_size` windows from
    /// position `from`, keeping up to `prefetch` (at least one) ready.
    pub fn start(
        dataset: Arc<Dataset>,
        batch_size: usize,
        seed: u64,
        from: Position,
        prefetch: usize,
    ) -> Loader {
        Loader::start_part(dataset, batch_size, (0, 1), seed, from, prefetch)
    }

    /// Like [`Loader::start`] for data-parallel rank `part.0` of `part.1`:
    /// the stream cuts the same batches of `part.1 x batch_size` windows
    /// that one process would use and assembles only part `part.0` of
    /// each (windows `part.0 x batch_size ..` of it), so the ranks together
    /// train on exactly the one-process batches and each reads only its own
    /// windows. Positions count those global batches, whatever the number
    /// of parts.
    pub fn start_part(
        dataset: Arc<Dataset>,
        batch_size: usize,
        part: (usize, usize),
        seed: u64,
        from: Position,
        prefetch: usize,
    ) -> Loader {
        let (tx, rx) = sync_channel(prefetch.max(1));
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let spawned = std::thread::Builder::new()
            .name("enigma-loader".into())
            .spawn(move || produce(&dataset, batch_size, part, seed, from, &tx, &flag));
        match spawned {
            Ok(handle) => Loader {
                rx: Some(rx),
                stop,
                handle: Some(handle),
                done: false,
            },
            // Without a thread the receiver reports the loader stopped; the
            // first `next` says why.
            Err(_) => Loader {
                rx: None,
                stop,
                handle: None,
                done: false,
            },
        }
    }

    /// The next batch, with the position *after* it: what a checkpoint
    /// taken once the step has used this batch should store. Not an
    /// `Iterator`: the stream never ends, and its errors are values.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<(Position, Batch), Error> {
        let stopped = |why: &str| Error::new(ErrorKind::LoaderStopped, why.to_string());
        if self.done {
            return Err(stopped("the loader stopped after an earlier error"));
        }
        let Some(rx) = &self.rx else {
            self.done = true;
            return Err(stopped("the loader's thread could not be started"));
        };
        match rx.recv() {
            Ok(Ok(item)) => Ok(item),
            Ok(Err(e)) => {
                self.done = true;
                Err(e)
            }
            Err(_) => {
                self.done = true;
                Err(stopped("the loader's thread ended unexpectedly"))
            }
        }
    }

    /// Stops the thread and waits for it (what dropping the loader does).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Dropping the receiver wakes a thread blocked on a full channel.
        self.rx = None;
        if let Some(handle) = self.handle.take() {
            // A thread that panicked has nothing left to clean up.
            let _ = handle.join();
        }
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The thread's loop: assemble the batch at `pos`, send it with the
/// position after it, move on; roll over to the next epoch at its end.
fn produce(
    dataset: &Dataset,
    part_size: usize,
    (part, parts): (usize, usize),
    seed: u64,
    from: Position,
    tx: &SyncSender<Item>,
    stop: &AtomicBool,
) {
    let mut pos = from;
    let batch_size = part_size * parts.max(1);
    let mine = part * part_size..(part + 1) * part_size;
    let mut plan: Option<(u64, Vec<Vec<usize>>)> = None;
    while !stop.load(Ordering::SeqCst) {
        let batches = match &plan {
            Some((epoch, b)) if *epoch == pos.epoch => b,
            _ => {
                let b = dataset.epoch_batches(Split::Train, batch_size, seed, pos.epoch);
                &plan.insert((pos.epoch, b)).1
            }
        };
        if batches.is_empty() {
            let _ = tx.send(Err(Error::new(
                ErrorKind::Window,
                format!(
                    "no session has {batch_size} training windows, so an epoch has no full batch; use a smaller batch or shorter windows"
                ),
            )));
            return;
        }
        let len = batches.len() as u64;
        if pos.index >= len {
            if pos.index > len {
                let _ = tx.send(Err(Error::new(
                    ErrorKind::Window,
                    format!(
                        "the position (epoch {}, batch {}) is past the {len} batches of an epoch; was the batch size or the data changed since the checkpoint?",
                        pos.epoch, pos.index
                    ),
                )));
                return;
            }
            pos = Position {
                epoch: pos.epoch + 1,
                index: 0,
            };
            continue;
        }
        let ids = batches
            .get(pos.index as usize)
            .and_then(|b| b.get(mine.clone()))
            .map(<[usize]>::to_vec)
            .unwrap_or_default();
        let next = if pos.index + 1 == len {
            Position {
                epoch: pos.epoch + 1,
                index: 0,
            }
        } else {
            Position {
                epoch: pos.epoch,
                index: pos.index + 1,
            }
        };
        let item = dataset.batch(Split::Train, &ids).map(|b| (next, b));
        let failed = item.is_err();
        if tx.send(item).is_err() || failed {
            return;
        }
        pos = next;
    }
}
