//! A small TCP proxy of ours in front of each member's peer port, for network partitions.
//!
//! Every member advertises its proxy's port as its peer URL, so every peer connection to
//! member `j` passes through proxy `j`. A connection's sending member is found from the
//! kernel's socket table: the client socket's inode (`/proc/net/tcp`) is held open by exactly
//! one process, whose pid the proxy knows (`/proc/<pid>/fd`). A cut pair `(i, j)` then drops
//! connections from `i` to `j` in either direction, as a network partition would:
//! established connections are shut down, and new ones are accepted and held without being
//! forwarded (the sender sees a connection that never answers) until the cut heals.
//! A delayed member's links carry every chunk that long later, in order, with jitter
//! (a slow network rather than a broken one).
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

struct Conn {
    from: Option<usize>,
    to: usize,
    /// Held (never forwarded) because the pair was cut when it arrived.
    held: bool,
    streams: Vec<TcpStream>,
    /// Cleared when the connection ended (its threads are done).
    alive: Arc<AtomicBool>,
}

impl Conn {
    fn close(&self) {
        for s in &self.streams {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

#[derive(Default)]
struct Shared {
    /// Member index -> pid of its current process.
    pids: Mutex<Vec<Option<u32>>>,
    /// (from, to) pairs that cannot talk; always holds both directions.
    cut: Mutex<HashSet<(usize, usize)>>,
    conns: Mutex<Vec<Conn>>,
    /// Member index -> (latency, jitter) added to every chunk on its links.
    delay: Mutex<HashMap<usize, (Duration, Duration)>>,
    /// Listening ports, to wake their accept loops on close.
    ports: Mutex<Vec<u16>>,
    closed: AtomicBool,
}

/// The proxies of one cluster.
#[derive(Clone, Default)]
pub struct Net {
    shared: Arc<Shared>,
}

impl Net {
    pub fn new() -> Net {
        Net::default()
    }

    /// Start a proxy for member `to` forwarding to `upstream` (its real peer port); returns
    /// the proxy's port (bound here, so no other process can take it).
    pub fn proxy(&self, to: usize, upstream: u16) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        self.shared.ports.lock().unwrap().push(port);
        let shared = self.shared.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if shared.closed.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                accept(&shared, stream, to, upstream);
            }
        });
        port
    }

    /// Member `i` now runs as process `pid`.
    pub fn set_pid(&self, i: usize, pid: u32) {
        let mut pids = self.shared.pids.lock().unwrap();
        if pids.len() <= i {
            pids.resize(i + 1, None);
        }
        pids[i] = Some(pid);
    }

    /// Cut every link between a member of `a` and a member of `b`.
    pub fn partition(&self, a: &[usize], b: &[usize]) {
        {
            let mut cut = self.shared.cut.lock().unwrap();
            for &i in a {
                for &j in b {
                    cut.insert((i, j));
                    cut.insert((j, i));
                }
            }
        }
        let cut = self.shared.cut.lock().unwrap().clone();
        for c in self.shared.conns.lock().unwrap().iter() {
            if let Some(from) = c.from {
                if !c.held && cut.contains(&(from, c.to)) {
                    c.close();
                }
            }
        }
    }

    /// Cut member `i` off from all of `n` members.
    pub fn isolate(&self, i: usize, n: usize) {
        let others: Vec<usize> = (0..n).filter(|&j| j != i).collect();
        self.partition(&[i], &others);
    }

    /// Every link works again; held connections are closed so that senders reconnect.
    pub fn heal(&self) {
        self.shared.cut.lock().unwrap().clear();
        let mut conns = self.shared.conns.lock().unwrap();
        for c in conns.iter().filter(|c| c.held) {
            c.close();
        }
        conns.retain(|c| !c.held);
    }

    /// Every chunk on a link of member `i`, either way, arrives `latency` plus up to
    /// `jitter` later (never before the chunk sent before it).
    pub fn delay(&self, i: usize, latency: Duration, jitter: Duration) {
        self.shared
            .delay
            .lock()
            .unwrap()
            .insert(i, (latency, jitter));
    }

    /// No link is delayed any more.
    pub fn undelay(&self) {
        self.shared.delay.lock().unwrap().clear();
    }

    pub fn is_cut(&self) -> bool {
        !self.shared.cut.lock().unwrap().is_empty()
    }

    /// Stop every proxy and close every connection.
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        for c in self.shared.conns.lock().unwrap().drain(..) {
            c.close();
        }
        for port in self.shared.ports.lock().unwrap().drain(..) {
            let _ = TcpStream::connect(("127.0.0.1", port));
        }
    }
}

fn accept(shared: &Arc<Shared>, client: TcpStream, to: usize, upstream: u16) {
    let from = match (client.peer_addr(), client.local_addr()) {
        (Ok(peer), Ok(local)) => {
            let pids = shared.pids.lock().unwrap().clone();
            sender(peer, local, &pids)
        }
        _ => None,
    };
    let cut = from.is_some_and(|f| shared.cut.lock().unwrap().contains(&(f, to)));
    if cut {
        // Accepted but never forwarded: read and drop until closed (by heal or the sender).
        let held = client.try_clone().unwrap();
        let alive = Arc::new(AtomicBool::new(true));
        shared.conns.lock().unwrap().push(Conn {
            from,
            to,
            held: true,
            streams: vec![held],
            alive: alive.clone(),
        });
        std::thread::spawn(move || {
            let mut client = client;
            let mut buf = [0u8; 16 * 1024];
            while matches!(client.read(&mut buf), Ok(n) if n > 0) {}
            alive.store(false, Ordering::SeqCst);
        });
        return;
    }
    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let alive = Arc::new(AtomicBool::new(true));
    {
        let mut conns = shared.conns.lock().unwrap();
        // Forget connections that ended.
        conns.retain(|c| c.alive.load(Ordering::SeqCst));
        conns.push(Conn {
            from,
            to,
            held: false,
            streams: vec![client.try_clone().unwrap(), server.try_clone().unwrap()],
            alive: alive.clone(),
        });
    }
    let link = (from, to);
    pump(
        client.try_clone().unwrap(),
        server.try_clone().unwrap(),
        None,
        shared.clone(),
        link,
    );
    pump(server, client, Some(alive), shared.clone(), link);
}

/// The delay a chunk on the link `(from, to)` takes now, if either end is delayed.
fn delay_of(shared: &Shared, (from, to): (Option<usize>, usize), salt: u64) -> Option<Duration> {
    let delays = shared.delay.lock().unwrap();
    let (latency, jitter) = from
        .and_then(|f| delays.get(&f))
        .into_iter()
        .chain(delays.get(&to))
        .max()
        .copied()?;
    // jitter from a hash of the chunk's number: no shared random state
    let spread = (jitter.as_micros() as u64).max(1);
    let extra = (salt.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 16) % spread;
    Some(latency + Duration::from_micros(extra))
}

/// Copy `a` to `b` on a thread; when either side ends, shut both (and clear `alive`).
/// Chunks go through a second thread that holds each until its delay is over.
fn pump(
    mut a: TcpStream,
    mut b: TcpStream,
    alive: Option<Arc<AtomicBool>>,
    shared: Arc<Shared>,
    link: (Option<usize>, usize),
) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let (a2, b2) = (a.try_clone().ok(), b.try_clone().ok());
    std::thread::spawn(move || {
        let mut buf = [0u8; 64 * 1024];
        let mut due = Instant::now();
        let mut n_chunk = 0u64;
        loop {
            match a.read(&mut buf) {
                Ok(n) if n > 0 => {
                    n_chunk += 1;
                    let now = Instant::now();
                    // in order: never due before the chunk sent before it
                    due = match delay_of(&shared, link, n_chunk) {
                        Some(d) => (now + d).max(due),
                        None => now.max(due),
                    };
                    if tx.send((due, buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
                _ => break,
            }
        }
        drop(tx);
    });
    std::thread::spawn(move || {
        for (due, chunk) in rx {
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if b.write_all(&chunk).is_err() {
                break;
            }
        }
        for s in a2.iter().chain(b2.iter()) {
            let _ = s.shutdown(Shutdown::Both);
        }
        if let Some(alive) = alive {
            alive.store(false, Ordering::SeqCst);
        }
    });
}

/// Which member opened the connection from `peer` to `local`: the inode of its socket from
/// /proc/net/tcp, then the member process that holds that inode.
fn sender(peer: SocketAddr, local: SocketAddr, pids: &[Option<u32>]) -> Option<usize> {
    let inode = socket_inode(peer, local)?;
    let target = format!("socket:[{inode}]");
    for (i, pid) in pids.iter().enumerate() {
        let Some(pid) = pid else { continue };
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(link) = std::fs::read_link(fd.path()) {
                if link.to_string_lossy() == target {
                    return Some(i);
                }
            }
        }
    }
    None
}

/// The inode of the socket whose local end is `peer` and remote end `local` (IPv4 only).
fn socket_inode(peer: SocketAddr, local: SocketAddr) -> Option<u64> {
    let hex = |a: SocketAddr| -> Option<String> {
        let SocketAddr::V4(v4) = a else { return None };
        let o = v4.ip().octets();
        Some(format!(
            "{:02X}{:02X}{:02X}{:02X}:{:04X}",
            o[3],
            o[2],
            o[1],
            o[0],
            v4.port()
        ))
    };
    let (want_local, want_remote) = (hex(peer)?, hex(local)?);
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.len() > 9 && f[1] == want_local && f[2] == want_remote)
            .then(|| f[9].parse().ok())
            .flatten()
    })
}
