//! The benchmark's message header: the first 16 payload bytes, little-endian.
//!
//! | bytes | field |
//! |-------|-------|
//! | 0..8  | sequence number, counted from 0; [`END`] ends the run |
//! | 8..16 | `CLOCK_MONOTONIC` ns: intended send time (open loop), send time (stream), or, in the [`END`] message, the number of messages sent |
//!
//! Ping-pong needs only the sequence number (its initiator keeps the times), so its payload may be
//! as small as 8 bytes; the other scenarios need 16 and use 64.

/// Sequence number of the message that ends a run.
pub const END: u64 = u64::MAX;

/// Smallest payload of ping-pong.
pub const MIN_PINGPONG: usize = 8;

/// Bytes of the header every message starts with: sequence number, then send time.
pub const HEADER: usize = 16;

/// Writes the sequence number into `buf[0..8]`.
#[inline]
pub fn put_seq(buf: &mut [u8], seq: u64) {
    buf[..8].copy_from_slice(&seq.to_le_bytes());
}

/// Writes the timestamp (or count) into `buf[8..16]`.
#[inline]
pub fn put_time(buf: &mut [u8], t: u64) {
    buf[8..16].copy_from_slice(&t.to_le_bytes());
}

/// Reads the sequence number.
#[inline]
pub fn seq(buf: &[u8]) -> u64 {
    u64::from_le_bytes(buf[..8].try_into().expect("8 bytes"))
}

/// Reads the timestamp (or count).
#[inline]
pub fn time(buf: &[u8]) -> u64 {
    u64::from_le_bytes(buf[8..16].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let mut buf = [0u8; 64];
        put_seq(&mut buf, 42);
        put_time(&mut buf, 7_000_000_001);
        assert_eq!((seq(&buf), time(&buf)), (42, 7_000_000_001));
    }
}
