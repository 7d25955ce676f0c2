//! Docker's multiplexed stream (`attach`, `logs` without a TTY): frames of
//! an 8-byte header (stream, three zero bytes, big-endian length) and the
//! payload. The one encoder and decoder of the format in wrun.

/// The stream number of stdin (as echoed by some clients).
pub const STDIN: u8 = 0;
/// The stream number of stdout.
pub const STDOUT: u8 = 1;
/// The stream number of stderr.
pub const STDERR: u8 = 2;

/// Bytes of a frame header.
pub const HEADER_LEN: usize = 8;

/// The header of a frame of `len` payload bytes on `stream`. A payload is
/// at most `u32::MAX` bytes; callers split larger writes.
pub fn header(stream: u8, len: usize) -> [u8; HEADER_LEN] {
    let len = u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes();
    [stream, 0, 0, 0, len[0], len[1], len[2], len[3]]
}

/// Appends one frame (header and payload) to `out`.
pub fn encode_into(out: &mut Vec<u8>, stream: u8, payload: &[u8]) {
    out.extend_from_slice(&header(stream, payload.len()));
    out.extend_from_slice(payload);
}

/// One frame, header and payload.
pub fn encode(stream: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    encode_into(&mut out, stream, payload);
    out
}

/// The stream and payload length a header announces.
pub fn parse_header(h: &[u8; HEADER_LEN]) -> (u8, usize) {
    (h[0], u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize)
}

/// The complete frame at the start of `bytes`: its stream, its payload and
/// the bytes it takes; `None` until the whole frame is there.
pub fn split_frame(bytes: &[u8]) -> Option<(u8, &[u8], usize)> {
    let head: &[u8; HEADER_LEN] = bytes.get(..HEADER_LEN)?.try_into().ok()?;
    let (stream, len) = parse_header(head);
    let payload = bytes.get(HEADER_LEN..HEADER_LEN.checked_add(len)?)?;
    Some((stream, payload, HEADER_LEN + len))
}

/// Splits a multiplexed stream that arrives in pieces into its frames.
#[derive(Default)]
pub struct Demux {
    pending: Vec<u8>,
}

impl Demux {
    /// Feeds bytes; calls `out(stream, payload)` for each complete frame.
    pub fn feed<E>(
        &mut self,
        bytes: &[u8],
        mut out: impl FnMut(u8, &[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        self.pending.extend_from_slice(bytes);
        let mut at = 0;
        while let Some((stream, payload, used)) = split_frame(&self.pending[at..]) {
            out(stream, payload)?;
            at += used;
        }
        self.pending.drain(..at);
        Ok(())
    }

    /// Bytes of an incomplete frame still held.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_in_any_split() {
        let mut wire = encode(STDOUT, b"one\n");
        encode_into(&mut wire, STDERR, b"oops\n");
        encode_into(&mut wire, STDOUT, b"");
        for cut in 0..wire.len() {
            let mut demux = Demux::default();
            let mut got = Vec::new();
            for piece in [&wire[..cut], &wire[cut..]] {
                demux
                    .feed(piece, |s, p| {
                        got.push((s, p.to_vec()));
                        Ok::<_, ()>(())
                    })
                    .unwrap();
            }
            assert_eq!(
                got,
                vec![
                    (STDOUT, b"one\n".to_vec()),
                    (STDERR, b"oops\n".to_vec()),
                    (STDOUT, Vec::new())
                ],
                "cut at {cut}"
            );
            assert_eq!(demux.pending(), 0);
        }
    }

    #[test]
    fn a_header_announces_its_stream_and_length() {
        assert_eq!(header(STDERR, 258), [2, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(parse_header(&header(STDOUT, 70_000)), (STDOUT, 70_000));
        assert!(split_frame(&header(STDOUT, 5)).is_none(), "payload missing");
    }
}
