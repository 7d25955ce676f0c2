//! Docker's multiplexed stream decoder: the same bytes fed whole or cut
//! anywhere give the same frames, the frames re-encode to the bytes they
//! were read from, and only an incomplete frame is held back.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wrun_api::stream::{Demux, HEADER_LEN, encode_into};

fuzz_target!(|input: &[u8]| {
    // The first byte seeds the cut points; the rest is the stream.
    let Some((&seed, bytes)) = input.split_first() else {
        return;
    };
    let whole = frames(bytes, &[bytes.len()]);
    let mut cuts = Vec::new();
    let mut at = 0usize;
    let mut step = usize::from(seed % 13) + 1;
    while at < bytes.len() {
        let n = step.min(bytes.len() - at);
        cuts.push(n);
        at += n;
        step = (step * 7 + usize::from(seed)) % 23 + 1;
    }
    let cut = frames(bytes, &cuts);
    let bytewise = frames(bytes, &vec![1; bytes.len()]);
    assert_eq!(whole, cut, "cutting the stream changed its frames");
    assert_eq!(whole, bytewise, "feeding byte by byte changed the frames");

    let (list, pending) = whole;
    let mut encoded = Vec::new();
    for (stream, payload) in &list {
        encode_into(&mut encoded, *stream, payload);
    }
    assert_eq!(encoded.len() + pending, bytes.len());
    // Re-encoding gives back the input, except the three reserved header
    // bytes, which the decoder ignores and the encoder writes as zeros.
    let mut at = 0;
    for (_, payload) in &list {
        assert_eq!(
            &encoded[at + HEADER_LEN..at + HEADER_LEN + payload.len()],
            &payload[..]
        );
        assert_eq!(encoded[at], bytes[at]);
        assert_eq!(encoded[at + 4..at + 8], bytes[at + 4..at + 8]);
        at += HEADER_LEN + payload.len();
    }
    assert!(
        pending < HEADER_LEN || {
            let len = u32::from_be_bytes(bytes[at + 4..at + 8].try_into().expect("four bytes"));
            pending < HEADER_LEN + len as usize
        },
        "a complete frame was held back"
    );
});

type Frames = (Vec<(u8, Vec<u8>)>, usize);

fn frames(bytes: &[u8], cuts: &[usize]) -> Frames {
    let mut demux = Demux::default();
    let mut out = Vec::new();
    let mut at = 0;
    for &n in cuts {
        demux
            .feed(&bytes[at..at + n], |stream, payload| {
                out.push((stream, payload.to_vec()));
                Ok::<(), ()>(())
            })
            .expect("the sink never fails");
        at += n;
    }
    (out, demux.pending())
}
