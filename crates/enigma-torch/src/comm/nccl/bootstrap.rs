//! The NCCL unique ids, exchanged before any NCCL communicator exists:
//! a [`Bootstrap`] all-gathers a blob from every rank, over a TCP
//! rendezvous at `MASTER_ADDR:MASTER_PORT` ([`TcpBootstrap`]) or over MPI.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::super::CommError;

// Bootstrap: exchanging NCCL unique ids.

/// Exchanges small blobs among all ranks of the world before any
/// communicator exists; NCCL needs one to hand each group's unique id from
/// its first rank to the others.
pub trait Bootstrap {
    /// Gives every rank every rank's `mine`, in rank order.
    fn all_gather_bytes(&mut self, mine: &[u8]) -> Result<Vec<Vec<u8>>, CommError>;
}

/// A [`Bootstrap`] over TCP: rank 0 listens on the master address and
/// port, the others connect to it; rank 0 relays all blobs.
pub struct TcpBootstrap {
    /// This rank and the number of ranks.
    rank: usize,
    world: usize,
    /// `addr:port` of rank 0, for messages.
    endpoint: String,
    /// How long any one wait for a peer may last.
    timeout: Duration,
    links: Links,
}

/// The connections of a [`TcpBootstrap`].
pub(super) enum Links {
    /// World of one: nothing to exchange.
    Alone,
    /// Rank 0: one stream per other rank, in rank order.
    Root(Vec<TcpStream>),
    /// Any other rank: the stream to rank 0.
    Leaf(TcpStream),
}

/// The greeting a rank sends rank 0, and rank 0's answer once everyone has
/// arrived; it keeps stray connections and other jobs on the same port out.
pub(super) const HELLO: &[u8; 8] = b"ENIGMAB1";

/// The largest blob the bootstrap accepts; anything bigger is garbage.
pub(super) const MAX_FRAME: u64 = 1 << 30;

impl TcpBootstrap {
    /// Connects rank `rank` of `world`: rank 0 listens on `addr:port` and
    /// waits for all others; the others connect, retrying until rank 0
    /// listens. Returns when every rank has arrived, or fails after
    /// `timeout` (which also bounds every later wait for a peer).
    pub fn connect(
        addr: &str,
        port: u16,
        rank: usize,
        world: usize,
        timeout: Duration,
    ) -> Result<TcpBootstrap, CommError> {
        let endpoint = format!("{addr}:{port}");
        if world == 0 || rank >= world {
            return Err(CommError::new(format!(
                "bootstrap via {endpoint}: rank {rank} is not in a world of {world}"
            )));
        }
        // A zero timeout would mean "no timeout" to the socket calls.
        let timeout = timeout.max(Duration::from_millis(1));
        let mut boot = TcpBootstrap {
            rank,
            world,
            endpoint,
            timeout,
            links: Links::Alone,
        };
        if world == 1 {
            return Ok(boot);
        }
        boot.links = if rank == 0 {
            Links::Root(boot.accept_all(addr, port)?)
        } else {
            Links::Leaf(boot.join(addr, port)?)
        };
        Ok(boot)
    }

    /// Rank 0: listens and collects one stream per other rank, then tells
    /// them all that everyone is there.
    fn accept_all(&self, addr: &str, port: u16) -> Result<Vec<TcpStream>, CommError> {
        let deadline = Instant::now() + self.timeout;
        // Listen on every interface, of the family `addr` resolves to,
        // rather than on `addr` itself: a host name often resolves to a
        // loopback address on the host it names (Debian maps it to
        // 127.0.1.1), where the other nodes could not reach it.
        let v6 = (addr, port)
            .to_socket_addrs()
            .map(|mut a| a.next().is_some_and(|a| a.is_ipv6()))
            .unwrap_or(false);
        let any: &str = if v6 { "::" } else { "0.0.0.0" };
        let listener = TcpListener::bind((any, port))
            .map_err(|e| self.fail(&format!("listening on port {port}"), &e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| self.fail("configuring the listener", &e))?;
        let mut slots: Vec<Option<TcpStream>> = (1..self.world).map(|_| None).collect();
        while slots.iter().any(Option::is_none) {
            match listener.accept() {
                Ok((mut stream, peer)) => {
                    // A real rank greets at once; a silent stray must not
                    // hold up the others for long.
                    self.configure(&stream, deadline, Duration::from_secs(5))?;
                    stream
                        .set_nonblocking(false)
                        .map_err(|e| self.fail("configuring a connection", &e))?;
                    let mut hello = [0u8; 24];
                    if stream.read_exact(&mut hello).is_err() || &hello[..8] != HELLO {
                        // Not one of ours (a port scan, a stale client):
                        // ignore it and keep waiting for the real ranks.
                        continue;
                    }
                    let their_rank = read_u64(&hello[8..16]);
                    let their_world = read_u64(&hello[16..24]);
                    if their_world != self.world as u64 {
                        return Err(self.fail(
                            "greeting",
                            &format!(
                                "{peer} claims rank {their_rank} of a world of {their_world}, but this world has {} ranks",
                                self.world
                            ),
                        ));
                    }
                    let slot = usize::try_from(their_rank)
                        .ok()
                        .filter(|&r| r >= 1 && r < self.world)
                        .and_then(|r| slots.get_mut(r - 1));
                    match slot {
                        Some(slot @ None) => *slot = Some(stream),
                        Some(Some(_)) => {
                            return Err(self.fail(
                                "greeting",
                                &format!("{peer} claims rank {their_rank}, which already connected"),
                            ))
                        }
                        None => {
                            return Err(self.fail(
                                "greeting",
                                &format!("{peer} claims rank {their_rank}, which is not a rank of this world"),
                            ))
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        let missing: Vec<String> = slots
                            .iter()
                            .enumerate()
                            .filter(|(_, s)| s.is_none())
                            .map(|(i, _)| (i + 1).to_string())
                            .collect();
                        return Err(self.fail(
                            "waiting for the other ranks",
                            &format!(
                                "ranks {} did not connect within {:?}",
                                missing.join(", "),
                                self.timeout
                            ),
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.fail("accepting a connection", &e)),
            }
        }
        let streams: Vec<TcpStream> = slots.into_iter().flatten().collect();
        let mut ready = Vec::with_capacity(16);
        ready.extend_from_slice(HELLO);
        ready.extend_from_slice(&(self.world as u64).to_le_bytes());
        for (i, mut s) in streams.iter().enumerate() {
            s.write_all(&ready)
                .map_err(|e| self.fail(&format!("telling rank {} everyone is there", i + 1), &e))?;
        }
        Ok(streams)
    }

    /// Any rank but 0: connects to rank 0 (retrying while it is not
    /// listening yet), greets it and waits until everyone is there.
    fn join(&self, addr: &str, port: u16) -> Result<TcpStream, CommError> {
        let deadline = Instant::now() + self.timeout;
        let mut stream = loop {
            let attempt = (addr, port).to_socket_addrs().and_then(|addrs| {
                let mut last =
                    io::Error::new(io::ErrorKind::NotFound, "the address resolves to nothing");
                for a in addrs {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match TcpStream::connect_timeout(
                        &a,
                        left.clamp(Duration::from_millis(1), Duration::from_secs(5)),
                    ) {
                        Ok(s) => return Ok(s),
                        Err(e) => last = e,
                    }
                }
                Err(last)
            });
            match attempt {
                Ok(s) => break s,
                Err(e) if Instant::now() >= deadline => {
                    return Err(self.fail(
                        "connecting to rank 0",
                        &format!("gave up after {:?}: {e}", self.timeout),
                    ))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        self.configure(&stream, deadline, self.timeout)?;
        let mut hello = Vec::with_capacity(24);
        hello.extend_from_slice(HELLO);
        hello.extend_from_slice(&(self.rank as u64).to_le_bytes());
        hello.extend_from_slice(&(self.world as u64).to_le_bytes());
        stream
            .write_all(&hello)
            .map_err(|e| self.fail("greeting rank 0", &e))?;
        let mut ready = [0u8; 16];
        stream
            .read_exact(&mut ready)
            .map_err(|e| self.fail("waiting for rank 0 to see every rank", &e))?;
        if &ready[..8] != HELLO || read_u64(&ready[8..]) != self.world as u64 {
            return Err(self.fail(
                "waiting for rank 0 to see every rank",
                &"rank 0 answered with something other than an enigma bootstrap greeting",
            ));
        }
        Ok(stream)
    }

    /// Sets the timeouts of a connection while connecting: reads wait
    /// until `deadline` but at most `cap` (and at least a millisecond),
    /// writes the full timeout.
    fn configure(
        &self,
        stream: &TcpStream,
        deadline: Instant,
        cap: Duration,
    ) -> Result<(), CommError> {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .clamp(Duration::from_millis(1), cap.max(Duration::from_millis(1)));
        stream
            .set_read_timeout(Some(left))
            .and_then(|()| stream.set_write_timeout(Some(self.timeout)))
            .and_then(|()| stream.set_nodelay(true))
            .map_err(|e| self.fail("configuring a connection", &e))
    }

    /// Gives the connections the full timeout once everyone has arrived.
    fn relax(&self, stream: &TcpStream) -> Result<(), CommError> {
        stream
            .set_read_timeout(Some(self.timeout))
            .map_err(|e| self.fail("configuring a connection", &e))
    }

    /// A bootstrap error naming this rank, the endpoint and the step.
    fn fail(&self, what: &str, e: &dyn fmt::Display) -> CommError {
        CommError::new(format!(
            "bootstrap rank {} of {} via {}: {what}: {e}",
            self.rank, self.world, self.endpoint
        ))
    }

    /// A bootstrap I/O error, saying so when it was the timeout.
    fn io_fail(&self, what: &str, e: &io::Error) -> CommError {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                self.fail(what, &format!("no answer within {:?}", self.timeout))
            }
            _ => self.fail(what, e),
        }
    }
}

impl Bootstrap for TcpBootstrap {
    fn all_gather_bytes(&mut self, mine: &[u8]) -> Result<Vec<Vec<u8>>, CommError> {
        match &self.links {
            Links::Alone => Ok(vec![mine.to_vec()]),
            Links::Root(streams) => {
                let mut all = Vec::with_capacity(self.world);
                all.push(mine.to_vec());
                for (i, mut s) in streams.iter().enumerate() {
                    self.relax(s)?;
                    let blob = read_frame(&mut s).map_err(|e| {
                        self.io_fail(&format!("receiving rank {}'s part", i + 1), &e)
                    })?;
                    all.push(blob);
                }
                let mut reply = Vec::new();
                reply.extend_from_slice(&(all.len() as u64).to_le_bytes());
                for blob in &all {
                    push_frame(&mut reply, blob);
                }
                for (i, mut s) in streams.iter().enumerate() {
                    s.write_all(&reply).map_err(|e| {
                        self.io_fail(&format!("sending all parts to rank {}", i + 1), &e)
                    })?;
                }
                Ok(all)
            }
            Links::Leaf(stream) => {
                let mut s = stream;
                self.relax(s)?;
                let mut frame = Vec::with_capacity(8 + mine.len());
                push_frame(&mut frame, mine);
                s.write_all(&frame)
                    .map_err(|e| self.io_fail("sending this rank's part to rank 0", &e))?;
                let mut count = [0u8; 8];
                s.read_exact(&mut count)
                    .map_err(|e| self.io_fail("receiving all parts from rank 0", &e))?;
                if read_u64(&count) != self.world as u64 {
                    return Err(self.fail(
                        "receiving all parts from rank 0",
                        &format!(
                            "rank 0 sent {} parts for {} ranks",
                            read_u64(&count),
                            self.world
                        ),
                    ));
                }
                (0..self.world)
                    .map(|r| {
                        read_frame(&mut s).map_err(|e| {
                            self.io_fail(&format!("receiving rank {r}'s part from rank 0"), &e)
                        })
                    })
                    .collect()
            }
        }
    }
}

/// Appends a length-prefixed frame.
pub(super) fn push_frame(out: &mut Vec<u8>, blob: &[u8]) {
    out.extend_from_slice(&(blob.len() as u64).to_le_bytes());
    out.extend_from_slice(blob);
}

/// Reads one length-prefixed frame.
pub(super) fn read_frame(r: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 8];
    r.read_exact(&mut len)?;
    let len = read_u64(&len);
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a frame of {len} bytes is announced, more than the {MAX_FRAME} allowed"),
        ));
    }
    let mut blob = vec![0u8; len as usize];
    r.read_exact(&mut blob)?;
    Ok(blob)
}

/// A little-endian u64 from the first 8 bytes of `b` (callers pass 8).
pub(super) fn read_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}
