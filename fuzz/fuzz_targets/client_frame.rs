//! Fuzzes WebSocket client frame parsing: any text either parses to a
//! frame that re-encodes and parses back to itself, or is a `FrameError`;
//! it never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parley_proto::ClientFrame;

fuzz_target!(|data: &[u8]| {
    // Frames arrive as WebSocket text, already valid UTF-8; bytes that are
    // not go through the strict decoder, which must refuse them.
    let Ok(text) = std::str::from_utf8(data) else {
        assert!(parley_proto::decode::object_from_slice::<ClientFrame>(data).is_err());
        return;
    };
    if let Ok(frame) = ClientFrame::parse(text) {
        let again = ClientFrame::parse(&frame.to_json()).expect("an encoded frame parses");
        assert_eq!(again, frame);
        assert!(
            text.trim_start().starts_with('{'),
            "only objects are frames"
        );
    }
});
