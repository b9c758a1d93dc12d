//! Fuzzes the token verifier: no input panics, and none verifies unless it
//! is a token this key issued (the fuzzer cannot forge an HMAC, so any
//! accepted input must be byte-for-byte one we issued).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use parley_server::auth::{Authenticator, Identity};

const NOW_MS: i64 = 1_700_000_000_000;

fn authenticator() -> &'static (Authenticator, String) {
    static AUTH: OnceLock<(Authenticator, String)> = OnceLock::new();
    AUTH.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("parley-fuzz-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let auth = Authenticator::open(&dir, 3600, 256, 1).expect("authenticator");
        let identity = Identity {
            user: "u1".parse().expect("user id"),
            device: "d1".parse().expect("device id"),
        };
        let (token, _) = auth.issue(identity, NOW_MS);
        (auth, token)
    })
}

fuzz_target!(|data: &[u8]| {
    let (auth, issued) = authenticator();
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if auth.verify(text, NOW_MS).is_ok() {
        assert_eq!(text, issued, "only the issued token verifies");
    }
});
