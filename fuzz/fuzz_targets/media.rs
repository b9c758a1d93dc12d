//! Fuzzes what `complete` does with uploaded bytes, through the server's
//! own functions: the type sniffed from the first bytes against the
//! declared one (`media::verify::check_sniffed`) and, for an image that
//! passes, the decode under the default limits with orientation and
//! thumbnails (`media::thumbs::process`). No input panics; a processed
//! image is within the side limit and each thumbnail within its size.
//!
//! The first byte picks the declared type from the default allow-list;
//! the rest is the upload.
//!
//! `PARLEY_FUZZ_IMAGE_MAX_SIDE` and `PARLEY_FUZZ_IMAGE_MAX_DECODE_BYTES`
//! lower the decode limits (`media_max_image_side`,
//! `media_max_decode_bytes`) for long runs: a few hundred bytes of JPEG
//! can declare a 9,000-pixel square within the default limits, which takes
//! seconds to decode, re-encode and thumbnail, and the fuzzer then spends
//! its time there. The code paths are the same with smaller limits (images
//! over them are refused from their header, the rest decoded, oriented,
//! re-encoded and thumbnailed); docs/fuzzing.md records which limits a run
//! used.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use parley_server::Config;
use parley_server::media::thumbs::{self, ImageLimits};
use parley_server::media::verify;

struct Setup {
    types: Vec<String>,
    limits: ImageLimits,
    max_image_bytes: u64,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        // libfuzzer-sys's panic hook aborts on every panic, even one caught
        // (`thumbs::process` catches a decoder's panic and refuses the
        // image, as the server does). Back to the default hook: a panic
        // that escapes the target still aborts (libfuzzer-sys catches it
        // around each input and aborts).
        drop(std::panic::take_hook());
        let mut config = Config::default();
        let lowered = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
        if let Some(side) = lowered("PARLEY_FUZZ_IMAGE_MAX_SIDE") {
            config.media_max_image_side = side.try_into().unwrap_or(u32::MAX);
        }
        if let Some(bytes) = lowered("PARLEY_FUZZ_IMAGE_MAX_DECODE_BYTES") {
            config.media_max_decode_bytes = bytes;
        }
        Setup {
            types: config.media_allowed_types.clone(),
            limits: ImageLimits::of(&config),
            max_image_bytes: config.media_max_image_bytes,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let setup = setup();
    let declared = verify::normalize(&setup.types[pick as usize % setup.types.len()]);
    // `complete` sniffs the first SNIFF_BYTES of the upload.
    let head = &bytes[..bytes.len().min(verify::SNIFF_BYTES)];
    if verify::check_sniffed(&declared, head).is_err() {
        return;
    }
    // ... and decodes images up to media_max_image_bytes.
    if !declared.starts_with("image/") || bytes.len() as u64 > setup.max_image_bytes {
        return;
    }
    if let Ok(processed) = thumbs::process(bytes, &declared, setup.limits) {
        let side = setup.limits.max_side;
        assert!(processed.width <= side && processed.height <= side);
        for (encoded, view) in &processed.thumbnails {
            let max = view.size.max_side();
            assert!(view.width <= max && view.height <= max, "{view:?}");
            assert!(!encoded.is_empty());
        }
    }
});
