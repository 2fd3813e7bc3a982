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
use super::super::clock::now_ns;
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

/// An accepted TCP connection, made ready for the run if it sends `token` within [`TOKEN_WAIT`];
/// `None` (and closed) if it does not, or if anything about it fails: whoever it was, it is not
/// a child, and must not stop the run.
fn child_stream(mut s: TcpStream, token: &[u8; TOKEN_LEN]) -> Option<Box<dyn ReadWrite>> {
    s.set_nonblocking(false).ok()?;
    s.set_nodelay(true).ok()?;
    s.set_read_timeout(Some(TOKEN_WAIT)).ok()?;
    let mut got = [0u8; TOKEN_LEN];
    s.read_exact(&mut got).ok()?;
    if got != *token {
        return None;
    }
    s.set_read_timeout(None).ok()?;
    Some(Box::new(s))
}

/// The parent's listening socket before the children connected.
struct Listening {
    /// The socket (non-blocking, so accepting can time out).
    listener: Listener,
    /// The run's shape.
    shape: Shape,
}

impl Listening {
    /// Accepts one child's connection before `deadline_ns`. On TCP, a connection that does not
    /// send the run's token within [`TOKEN_WAIT`] is closed, and the wait goes on.
    fn accept(&self, deadline_ns: u64) -> Result<Box<dyn ReadWrite>> {
        loop {
            if now_ns() >= deadline_ns {
                return Err("a child did not connect in time".into());
            }
            let accepted: std::io::Result<Option<Box<dyn ReadWrite>>> = match &self.listener {
                Listener::Unix(l) => l.accept().and_then(|(s, _)| {
                    s.set_nonblocking(false)?;
                    Ok(Some(Box::new(s) as Box<dyn ReadWrite>))
                }),
                Listener::Tcp(l, token) => l.accept().map(|(s, _)| child_stream(s, token)),
            };
            match accepted {
                Ok(Some(s)) => return Ok(s),
                Ok(None) => {} // not one of ours: closed by the drop
                Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(POLL),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl Rendezvous for Listening {
    fn connect(self: Box<Self>, deadline_ns: u64) -> Result<Box<dyn Endpoint>> {
        let mut writers = Vec::with_capacity(self.shape.children);
        for _ in 0..self.shape.children {
            writers.push(self.accept(deadline_ns)?);
        }
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

    /// A local process that connects to the TCP port before the child, without the token, is
    /// closed and not taken for the child.
    #[test]
    fn a_tcp_connection_without_the_token_is_not_taken_for_a_child() {
        let dir = std::env::temp_dir().join(format!("shmbus-tcp-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
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
            // A stranger first: it sends the wrong bytes, then one that sends nothing.
            let mut stranger = TcpStream::connect(&addrs[0]).unwrap();
            stranger.write_all(&[0u8; TOKEN_LEN]).unwrap();
            let _silent = TcpStream::connect(&addrs[0]).unwrap();
            let mut ep = open_child(&shape, &addrs).unwrap();
            let mut buf = [0u8; 8];
            let got = ep.recv(&mut buf, now_ns() + 10_000_000_000).unwrap();
            (matches!(got, Recv::Msg(8)), buf)
        });
        let deadline = now_ns() + 10_000_000_000;
        let mut parent = prepared.rendezvous.connect(deadline).unwrap();
        parent.send(b"the-real").unwrap();
        let (ok, buf) = child.join().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(ok && &buf == b"the-real", "{buf:?}");
    }
}
