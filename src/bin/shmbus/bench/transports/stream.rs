//! `pipe`, `unix` and `tcp`: what a user would pick instead of shared memory.
//!
//! Each is a blocking byte stream; messages have the run's fixed size, so a receive is one
//! `read_exact` and a send one `write_all` (to every receiver in turn for fanout).
//!
//! * `pipe`: named pipes (FIFOs) in the run's private directory: the same kernel pipe as
//!   `pipe(2)`, reachable by name like the other transports. Ping-pong uses one FIFO each way.
//! * `unix`: a `SOCK_STREAM` Unix domain socket bound to a path in the run's directory.
//! * `tcp`: 127.0.0.1 only (an ephemeral port), `TCP_NODELAY` on both ends. Any local process
//!   may connect to the port, so each child first sends a token that the parent wrote into the
//!   run's private (0700) directory: a connection without it is closed and not taken for a
//!   child's.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::Duration;

use rustix::fs::{CWD, Mode, OFlags, fcntl_getfl, fcntl_setfl, mkfifoat};

use super::super::Result;
use super::super::clock::{now_ns, ns};
use super::super::plan::Transport;
use super::{Endpoint, Names, Prepared, Recv, Rendezvous, Shape, addr};

/// Pause between two polls of a rendezvous that is not ready yet.
const POLL: Duration = Duration::from_millis(1);

/// Creates the FIFOs, socket path or TCP port and returns the parent's pending end.
pub fn prepare(shape: &Shape, names: &Names) -> Result<Prepared> {
    match shape.transport {
        Transport::Pipe => prepare_pipe(shape, names),
        Transport::Unix => {
            let path = names.path("unix.sock");
            let listener = UnixListener::bind(&path).map_err(|e| format!("bind {path:?}: {e}"))?;
            listener.set_nonblocking(true)?;
            let addr = path.to_string_lossy().into_owned();
            Ok(Prepared {
                child_addrs: vec![vec![addr]; shape.children],
                rendezvous: Box::new(Listening {
                    listener: Listener::Unix(listener),
                    shape: *shape,
                }),
            })
        }
        _ => {
            let listener = TcpListener::bind("127.0.0.1:0")?;
            listener.set_nonblocking(true)?;
            let addr = listener.local_addr()?.to_string();
            let mut token = [0u8; TOKEN_LEN];
            File::open("/dev/urandom")?.read_exact(&mut token)?;
            let token_path = names.path("tcp.token");
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&token_path)?
                .write_all(&token)?;
            let token_addr = token_path.to_string_lossy().into_owned();
            Ok(Prepared {
                child_addrs: vec![vec![addr, token_addr]; shape.children],
                rendezvous: Box::new(Listening {
                    listener: Listener::Tcp(listener, token),
                    shape: *shape,
                }),
            })
        }
    }
}

/// Connects a child's end.
pub fn open_child(shape: &Shape, addrs: &[String]) -> Result<Box<dyn Endpoint>> {
    match shape.transport {
        Transport::Pipe => {
            // Open order matters: the parent already holds the read end of the reply FIFO, so
            // opening it for writing returns at once; opening the data FIFO for reading then waits
            // for the parent's writer.
            let reply = match shape.duplex {
                true => Some(OpenOptions::new().write(true).open(addr(addrs, 1)?)?),
                false => None,
            };
            let data = File::open(addr(addrs, 0)?)?;
            Ok(Box::new(StreamEndpoint {
                reader: Some(data),
                writers: reply.into_iter().collect(),
            }))
        }
        Transport::Unix => {
            let s = UnixStream::connect(addr(addrs, 0)?)?;
            Ok(Box::new(StreamEndpoint {
                reader: Some(s.try_clone()?),
                writers: vec![s],
            }))
        }
        _ => {
            let token = std::fs::read(addr(addrs, 1)?)?;
            let mut s = TcpStream::connect(addr(addrs, 0)?)?;
            s.set_nodelay(true)?;
            s.write_all(&token)?;
            Ok(Box::new(StreamEndpoint {
                reader: Some(s.try_clone()?),
                writers: vec![s],
            }))
        }
    }
}

/// Makes one FIFO per child (parent to child) and, for ping-pong, one back.
fn prepare_pipe(shape: &Shape, names: &Names) -> Result<Prepared> {
    let data: Vec<PathBuf> = (0..shape.children)
        .map(|i| names.path(&format!("to-child-{i}.fifo")))
        .collect();
    for path in &data {
        mkfifoat(CWD, path, Mode::RUSR | Mode::WUSR)
            .map_err(|e| format!("mkfifo {path:?}: {e}"))?;
    }
    let mut child_addrs: Vec<Vec<String>> = data
        .iter()
        .map(|p| vec![p.to_string_lossy().into_owned()])
        .collect();
    let reply = if shape.duplex {
        let path = names.path("to-parent.fifo");
        mkfifoat(CWD, &path, Mode::RUSR | Mode::WUSR)?;
        // Opened now, non-blocking (a FIFO read end opens without a writer), so the child's
        // blocking open for writing finds a reader at once.
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(OFlags::NONBLOCK.bits() as i32)
            .open(&path)?;
        child_addrs[0].push(path.to_string_lossy().into_owned());
        Some(file)
    } else {
        None
    };
    Ok(Prepared {
        child_addrs,
        rendezvous: Box::new(PendingPipes { data, reply }),
    })
}

/// The parent's FIFOs before the children opened theirs.
struct PendingPipes {
    /// Parent-to-child FIFOs, one per child.
    data: Vec<PathBuf>,
    /// The child-to-parent FIFO's read end (ping-pong only).
    reply: Option<File>,
}

impl Rendezvous for PendingPipes {
    fn connect(self: Box<Self>, deadline_ns: u64) -> Result<Box<dyn Endpoint>> {
        let mut writers = Vec::with_capacity(self.data.len());
        for path in &self.data {
            writers.push(open_fifo_writer(path, deadline_ns)?);
        }
        if let Some(reply) = &self.reply {
            set_blocking(reply)?;
        }
        Ok(Box::new(StreamEndpoint {
            reader: self.reply,
            writers,
        }))
    }
}

/// Opens a FIFO for writing once its reader is there (`ENXIO` until then), then makes it blocking.
fn open_fifo_writer(path: &PathBuf, deadline_ns: u64) -> Result<File> {
    loop {
        let opened = OpenOptions::new()
            .write(true)
            .custom_flags(OFlags::NONBLOCK.bits() as i32)
            .open(path);
        match opened {
            Ok(file) => {
                set_blocking(&file)?;
                return Ok(file);
            }
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NXIO.raw_os_error()) => {
                if now_ns() >= deadline_ns {
                    return Err(format!("no reader opened {path:?} in time").into());
                }
                std::thread::sleep(POLL);
            }
            Err(e) => return Err(format!("open {path:?}: {e}").into()),
        }
    }
}

/// Clears `O_NONBLOCK`.
fn set_blocking(file: &File) -> Result<()> {
    let flags = fcntl_getfl(file)?;
    fcntl_setfl(file, flags - OFlags::NONBLOCK)?;
    Ok(())
}

/// A listening socket (Unix or TCP).
enum Listener {
    /// Unix domain stream socket.
    Unix(UnixListener),
    /// TCP on 127.0.0.1, and the token its children send first.
    Tcp(TcpListener, [u8; TOKEN_LEN]),
}

/// Bytes of the token a TCP child sends before anything else.
const TOKEN_LEN: usize = 16;

/// How long an accepted TCP connection has to send the token (a child sends it right after
/// connecting; the margin is for a loaded machine).
const TOKEN_WAIT: Duration = Duration::from_secs(3);

/// The parent's listening socket before the children connected.
struct Listening {
    /// The socket (non-blocking, so accepting can time out).
    listener: Listener,
    /// The run's shape.
    shape: Shape,
}

impl Listening {
    /// Accepts the children's connections before `deadline_ns`. On TCP every connection must
    /// first send the run's token: connections are accepted and their tokens read without
    /// blocking, side by side, so that strangers (silent, slow or wrong) cost the children
    /// nothing but the few bytes' wait; a connection without the token within [`TOKEN_WAIT`], or
    /// with a wrong one, is closed.
    fn accept_children(&self, deadline_ns: u64) -> Result<Vec<Box<dyn ReadWrite>>> {
        let wanted = self.shape.children;
        let mut children: Vec<Box<dyn ReadWrite>> = Vec::with_capacity(wanted);
        let mut pending: Vec<Pending> = Vec::new();
        while children.len() < wanted {
            let now = now_ns();
            if now >= deadline_ns {
                return Err("a child did not connect in time".into());
            }
            let accepted = match &self.listener {
                Listener::Unix(l) => l.accept().and_then(|(s, _)| {
                    s.set_nonblocking(false)?;
                    children.push(Box::new(s));
                    Ok(())
                }),
                Listener::Tcp(l, _) => l.accept().map(|(s, _)| {
                    // Linux does not pass the listener's O_NONBLOCK on to accepted sockets.
                    if s.set_nonblocking(true).is_ok() {
                        pending.push(Pending {
                            stream: s,
                            got: Vec::with_capacity(TOKEN_LEN),
                            since: now,
                        });
                    }
                    if pending.len() > MAX_PENDING {
                        pending.remove(0); // a flood: the oldest goes
                    }
                }),
            };
            let idle = match accepted {
                Ok(()) => false,
                Err(e) if e.kind() == ErrorKind::WouldBlock => true,
                Err(e) => return Err(e.into()),
            };
            if let Listener::Tcp(_, token) = &self.listener {
                let mut i = 0;
                while i < pending.len() {
                    match pending[i].poll(token, now) {
                        Token::Waiting => i += 1,
                        Token::Wrong => drop(pending.swap_remove(i)),
                        Token::Right => {
                            let p = pending.swap_remove(i);
                            p.stream.set_nonblocking(false)?;
                            p.stream.set_nodelay(true)?;
                            children.push(Box::new(p.stream));
                        }
                    }
                }
            }
            if idle && children.len() < wanted {
                std::thread::sleep(POLL);
            }
        }
        Ok(children)
    }
}

/// Most TCP connections waiting to send their token at once.
const MAX_PENDING: usize = 64;

/// An accepted TCP connection that has not sent the whole token yet.
struct Pending {
    /// The connection (non-blocking).
    stream: TcpStream,
    /// The bytes it sent so far.
    got: Vec<u8>,
    /// When it was accepted (`now_ns`).
    since: u64,
}

/// What a pending connection's token says so far.
enum Token {
    /// Not all of it yet.
    Waiting,
    /// Wrong, late, closed or failed: not a child.
    Wrong,
    /// The run's token: a child.
    Right,
}

impl Pending {
    /// Reads what the connection sent (without blocking) and judges it at `now`.
    fn poll(&mut self, token: &[u8; TOKEN_LEN], now: u64) -> Token {
        let mut buf = [0u8; TOKEN_LEN];
        let want = TOKEN_LEN - self.got.len();
        match self.stream.read(&mut buf[..want]) {
            Ok(0) => return Token::Wrong,
            Ok(n) => self.got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => return Token::Wrong,
        }
        if self.got.len() == TOKEN_LEN {
            return match self.got == token {
                true => Token::Right,
                false => Token::Wrong,
            };
        }
        match now.saturating_sub(self.since) > ns(TOKEN_WAIT) {
            true => Token::Wrong,
            false => Token::Waiting,
        }
    }
}

impl Rendezvous for Listening {
    fn connect(self: Box<Self>, deadline_ns: u64) -> Result<Box<dyn Endpoint>> {
        let writers = self.accept_children(deadline_ns)?;
        let reader = match self.shape.duplex {
            true => Some(writers[0].try_clone_box()?),
            false => None,
        };
        Ok(Box::new(StreamEndpoint { reader, writers }))
    }
}

/// A connected socket that can be split into a reading and a writing handle.
trait ReadWrite: Read + Write {
    /// A second handle on the same socket.
    fn try_clone_box(&self) -> std::io::Result<Box<dyn ReadWrite>>;
}

impl ReadWrite for UnixStream {
    fn try_clone_box(&self) -> std::io::Result<Box<dyn ReadWrite>> {
        Ok(Box::new(self.try_clone()?))
    }
}

impl ReadWrite for TcpStream {
    fn try_clone_box(&self) -> std::io::Result<Box<dyn ReadWrite>> {
        Ok(Box::new(self.try_clone()?))
    }
}

/// A byte-stream end: reads fixed-size messages from `reader`, writes each message to every writer.
struct StreamEndpoint<R, W> {
    /// Where replies (ping-pong) or messages (receiver) come from.
    reader: Option<R>,
    /// Where messages go (one per receiver).
    writers: Vec<W>,
}

impl<R: Read, W: Write> Endpoint for StreamEndpoint<R, W> {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        for w in &mut self.writers {
            w.write_all(msg)?;
        }
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8], _deadline_ns: u64) -> Result<Recv> {
        let reader = self.reader.as_mut().ok_or("this end only sends")?;
        reader.read_exact(buf)?;
        Ok(Recv::Msg(buf.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::plan::{DataPath, Mode};
    use super::*;

    /// Local processes that connect to the TCP port before the child, without the token, are
    /// closed and not taken for the child, and do not hold the child up.
    #[test]
    fn a_tcp_connection_without_the_token_is_not_taken_for_a_child() {
        /// Removes the test's directory, also when the test fails.
        struct Dir(PathBuf);
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
        let dir = std::env::temp_dir().join(format!("shmbus-tcp-token-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir); // left by an earlier run with our pid
        std::fs::create_dir_all(&dir).unwrap();
        let _guard = Dir(dir.clone());
        let names = Names {
            dir: dir.clone(),
            tag: "t".to_owned(),
        };
        let shape = Shape {
            transport: Transport::Tcp,
            mode: Mode::Blocking,
            payload: 8,
            children: 1,
            duplex: false,
            spin: Duration::ZERO,
            path: DataPath::Copy,
            slots: None,
        };
        let prepared = prepare(&shape, &names).unwrap();
        let addrs = prepared.child_addrs[0].clone();
        let child = std::thread::spawn(move || {
            // Strangers first: one sends the wrong bytes, five send nothing.
            let mut stranger = TcpStream::connect(&addrs[0]).unwrap();
            stranger.write_all(&[0u8; TOKEN_LEN]).unwrap();
            let _silent: Vec<TcpStream> = (0..5)
                .map(|_| TcpStream::connect(&addrs[0]).unwrap())
                .collect();
            let mut ep = open_child(&shape, &addrs).unwrap();
            let mut buf = [0u8; 8];
            let got = ep.recv(&mut buf, now_ns() + 10_000_000_000).unwrap();
            (matches!(got, Recv::Msg(8)), buf)
        });
        // Less than one token wait: the silent ones must not be waited for one after another.
        let deadline = now_ns() + ns(TOKEN_WAIT) * 5 / 6;
        let connected = prepared.rendezvous.connect(deadline);
        let mut parent = connected.unwrap();
        parent.send(b"the-real").unwrap();
        let (ok, buf) = child.join().unwrap();
        assert!(ok && &buf == b"the-real", "{buf:?}");
    }
}
