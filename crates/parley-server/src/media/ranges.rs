//! `Range: bytes=…` on downloads served by Parley itself (the `local`
//! backend; on `s3` the redirect's bucket answers ranges). Browsers need it
//! to seek in audio and video. One range only: a request for several, like
//! one Parley cannot read, is answered with the whole object, which RFC
//! 9110 (§14.2) allows; browsers ask for one.

use std::ops::RangeInclusive;

/// What a `Range` header asks of an object of `len` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Wanted {
    /// The whole object (no header, another unit, several ranges, or a
    /// header that does not parse).
    All,
    /// These bytes, inclusive, within the object: 206.
    Part(RangeInclusive<u64>),
    /// Nothing of the object (it starts past the end, or asks for zero
    /// bytes): 416.
    Unsatisfiable,
}

/// Reads `header` (the `Range` value) against an object of `len` bytes.
pub(crate) fn wanted(header: Option<&str>, len: u64) -> Wanted {
    let Some(spec) = header.map(str::trim).and_then(|h| {
        let (unit, spec) = h.split_once('=')?;
        unit.trim()
            .eq_ignore_ascii_case("bytes")
            .then_some(spec.trim())
    }) else {
        return Wanted::All;
    };
    if spec.contains(',') {
        return Wanted::All;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return Wanted::All;
    };
    let number = |s: &str| -> Option<u64> {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (first.trim().is_empty(), last.trim().is_empty()) {
        // `bytes=-N`: the last N bytes.
        (true, false) => match number(last) {
            None => Wanted::All,
            Some(0) => Wanted::Unsatisfiable,
            Some(_) if len == 0 => Wanted::Unsatisfiable,
            Some(n) => Wanted::Part(len.saturating_sub(n)..=len - 1),
        },
        // `bytes=A-` or `bytes=A-B`.
        (false, open) => {
            let Some(start) = number(first) else {
                return Wanted::All;
            };
            let end = if open {
                u64::MAX
            } else {
                match number(last) {
                    Some(end) if end >= start => end,
                    // A last byte before the first is not a range.
                    _ => return Wanted::All,
                }
            };
            if start >= len {
                Wanted::Unsatisfiable
            } else {
                Wanted::Part(start..=end.min(len - 1))
            }
        }
        (true, true) => Wanted::All,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn the_forms_of_one_byte_range() {
        let w = |h: &str| wanted(Some(h), 100);
        assert_eq!(wanted(None, 100), Wanted::All);
        assert_eq!(w("bytes=0-9"), Wanted::Part(0..=9));
        assert_eq!(w("bytes=90-"), Wanted::Part(90..=99));
        assert_eq!(w("bytes=90-1000"), Wanted::Part(90..=99));
        assert_eq!(w("bytes=-10"), Wanted::Part(90..=99));
        assert_eq!(w("bytes=-1000"), Wanted::Part(0..=99));
        assert_eq!(w("Bytes = 5-5"), Wanted::Part(5..=5));
        assert_eq!(w("bytes=100-"), Wanted::Unsatisfiable);
        assert_eq!(w("bytes=100-200"), Wanted::Unsatisfiable);
        assert_eq!(w("bytes=-0"), Wanted::Unsatisfiable);
        assert_eq!(wanted(Some("bytes=0-"), 0), Wanted::Unsatisfiable);
        // Ignored: served whole.
        for h in [
            "bytes=0-1,5-6",
            "items=0-1",
            "bytes=9-5",
            "bytes=a-b",
            "bytes=-",
            "bytes=+1-2",
            "bytes 0-1",
            "bytes=99999999999999999999999-",
        ] {
            assert_eq!(w(h), Wanted::All, "{h}");
        }
    }

    proptest! {
        /// Whatever the header, a part lies inside the object and is not
        /// empty, and a well-formed `A-B` inside it is served exactly.
        #[test]
        fn parts_stay_inside_the_object(header in "\\PC{0,24}", len in 0u64..10_000, a in 0u64..10_000, b in 0u64..10_000) {
            if let Wanted::Part(r) = wanted(Some(&header), len) {
                prop_assert!(r.start() <= r.end() && *r.end() < len);
            }
            let (a, b) = (a.min(b), a.max(b));
            let got = wanted(Some(&format!("bytes={a}-{b}")), len);
            if a < len {
                prop_assert_eq!(got, Wanted::Part(a..=b.min(len - 1)));
            } else {
                prop_assert_eq!(got, Wanted::Unsatisfiable);
            }
        }
    }
}
