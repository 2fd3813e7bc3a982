//! `floor` and `futex`: the two reference points, ping-pong only.
//!
//! Both move one word through one shared page ([`SharedLine`]). The initiator announces message
//! `k` by storing `2k + 1`, the echo answers with `2k + 2`, so each side waits for the other
//! side's parity; all ones means [`msg::END`]. `floor` busy-spins on a `u64` (one cache line moving
//! between the two cores: the hardware floor). `futex` sleeps in `FUTEX_WAIT` on a `u32` and the
//! sender always issues `FUTEX_WAKE`, without `FUTEX_PRIVATE_FLAG` (private futexes are keyed by
//! address space and never wake another process): the floor of any sleeping transport.

use std::time::Duration;

use super::super::Result;
use super::super::clock::now_ns;
use super::super::msg;
use super::super::plan::Transport;
use super::super::shm::SharedLine;
use super::{Endpoint, Names, Prepared, Recv, Rendezvous, Shape, addr};

/// Longest single `FUTEX_WAIT`, so the deadline is checked regularly.
const WAIT_SLICE: Duration = Duration::from_millis(10);

/// Spins between two deadline checks of the floor.
const SPINS_PER_CHECK: u32 = 1024;

/// Creates the shared page and returns the initiator's end.
pub fn prepare(shape: &Shape, names: &Names) -> Result<Prepared> {
    if !shape.duplex || shape.children != 1 {
        return Err("floor and futex measure ping-pong only".into());
    }
    let name = names.shm();
    let line = SharedLine::create(&name).map_err(|e| format!("shm_open({name}): {e}"))?;
    let end = LineEndpoint {
        line,
        initiator: true,
        futex: shape.transport == Transport::Futex,
    };
    Ok(Prepared {
        child_addrs: vec![vec![name]],
        rendezvous: Box::new(Connected(end)),
    })
}

/// Maps the page the parent created and returns the echo's end.
pub fn open_child(shape: &Shape, addrs: &[String]) -> Result<Box<dyn Endpoint>> {
    let name = addr(addrs, 0)?;
    let line = SharedLine::open(name).map_err(|e| format!("shm_open({name}): {e}"))?;
    let futex = shape.transport == Transport::Futex;
    Ok(Box::new(LineEndpoint {
        line,
        initiator: false,
        futex,
    }))
}

/// A parent end that needs no connecting.
struct Connected(LineEndpoint);

impl Rendezvous for Connected {
    fn connect(self: Box<Self>, _deadline_ns: u64) -> Result<Box<dyn Endpoint>> {
        Ok(Box::new(self.0))
    }
}

/// One side of the floor or futex ping-pong.
struct LineEndpoint {
    /// The shared page.
    line: SharedLine,
    /// The initiator writes odd values and waits for even ones; the echo the reverse.
    initiator: bool,
    /// Futex word and sleeping (`futex`) rather than a spun-on `u64` (`floor`).
    futex: bool,
}

impl LineEndpoint {
    /// The word that carries sequence `seq` from this side.
    fn encode(&self, seq: u64) -> u64 {
        match seq {
            msg::END => u64::MAX,
            s if self.initiator => 2 * s + 1,
            s => 2 * s + 2,
        }
    }

    /// Whether `word` was written by the other side.
    fn is_peers(&self, word: u64) -> bool {
        // The initiator waits for an even word (the echo's), the echo for an odd one.
        (word & 1 == 1) != self.initiator
    }

    /// Stores the received sequence into `buf` (`word` is from the peer).
    fn deliver(buf: &mut [u8], word: u64, all_ones: u64) -> Recv {
        let seq = if word == all_ones {
            msg::END
        } else {
            (word - 1) / 2
        };
        msg::put_seq(buf, seq);
        Recv::Msg(buf.len())
    }

    /// Busy-spins until the peer's word appears.
    fn recv_floor(&self, buf: &mut [u8], deadline_ns: u64) -> Recv {
        loop {
            for _ in 0..SPINS_PER_CHECK {
                let word = self.line.load64();
                if self.is_peers(word) {
                    return Self::deliver(buf, word, u64::MAX);
                }
                std::hint::spin_loop();
            }
            if now_ns() >= deadline_ns {
                return Recv::TimedOut;
            }
        }
    }

    /// Sleeps on the futex until the peer's word appears.
    fn recv_futex(&self, buf: &mut [u8], deadline_ns: u64) -> Result<Recv> {
        loop {
            let word = self.line.load32();
            if self.is_peers(u64::from(word)) {
                return Ok(Self::deliver(buf, u64::from(word), u64::from(u32::MAX)));
            }
            let now = now_ns();
            if now >= deadline_ns {
                return Ok(Recv::TimedOut);
            }
            let left = Duration::from_nanos(deadline_ns - now).min(WAIT_SLICE);
            self.line.wait32(word, left)?;
        }
    }
}

impl Endpoint for LineEndpoint {
    fn send(&mut self, buf: &[u8]) -> Result<()> {
        let word = self.encode(msg::seq(buf));
        if self.futex {
            // Sequence numbers stay below 2^30 (the run's count limit), so the word fits.
            let word = u32::try_from(word).unwrap_or(u32::MAX);
            self.line.store32_wake(word)?;
        } else {
            self.line.store64(word);
        }
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8], deadline_ns: u64) -> Result<Recv> {
        if self.futex {
            self.recv_futex(buf, deadline_ns)
        } else {
            Ok(self.recv_floor(buf, deadline_ns))
        }
    }
}
