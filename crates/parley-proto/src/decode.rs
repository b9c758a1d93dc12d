//! Strict decoding of what clients send: every HTTP request body and every
//! WebSocket frame goes through [`object_from_slice`] or
//! [`object_from_str`], so the wire format is decided in one place.
//!
//! Two things serde would otherwise let through:
//! - **Positional forms.** serde reads a struct (and an internally tagged
//!   enum) from a JSON array as readily as from an object, which made
//!   `["name","password"]` a second, undocumented wire format. Only objects
//!   with named fields are the protocol, so anything whose first token is
//!   not `{` is refused here.
//! - **Invalid UTF-8 in ignored places.** `serde_json::from_slice` skips
//!   over fields it does not need without validating them, so bad bytes in
//!   an unknown field went unnoticed. The whole input is validated first.

use serde::de::DeserializeOwned;

/// Why an input is not a valid protocol object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

/// Decodes a JSON object from bytes that must be valid UTF-8 throughout.
pub fn object_from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let text = std::str::from_utf8(bytes).map_err(|err| {
        DecodeError(format!(
            "the body is not valid UTF-8 (at byte {})",
            err.valid_up_to()
        ))
    })?;
    object_from_str(text)
}

/// Decodes a JSON object (not an array or any other value) from `text`.
pub fn object_from_str<T: DeserializeOwned>(text: &str) -> Result<T, DecodeError> {
    require_object(text)?;
    serde_json::from_str(text).map_err(|err| DecodeError(format!("invalid JSON: {err}")))
}

/// Refuses anything whose first JSON token is not `{`.
fn require_object(text: &str) -> Result<(), DecodeError> {
    // JSON's own whitespace; anything else before the value is invalid
    // JSON anyway and is reported as such by the parser.
    let first = text
        .bytes()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    match first {
        Some(b'{') => Ok(()),
        None => Err(DecodeError("expected a JSON object, got nothing".into())),
        Some(b'[') => Err(DecodeError(
            "expected a JSON object with named fields, got an array".into(),
        )),
        Some(_) => Err(DecodeError("expected a JSON object".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClientFrame;
    use crate::api::RegisterRequest;

    #[test]
    fn objects_decode_and_arrays_do_not() {
        let ok: RegisterRequest =
            object_from_str(r#" {"username":"ann","password":"secret123"}"#).unwrap();
        assert_eq!(ok.username, "ann");
        // serde alone accepts the positional form: make sure we do not.
        assert!(serde_json::from_str::<RegisterRequest>(r#"["ann","secret123"]"#).is_ok());
        for refused in [
            r#"["ann","secret123"]"#,
            "\n [\"ann\",\"secret123\"]",
            r#""ann""#,
            "42",
            "null",
            "",
            "   ",
        ] {
            assert!(
                object_from_str::<RegisterRequest>(refused).is_err(),
                "{refused:?} must be refused"
            );
        }
    }

    #[test]
    fn invalid_utf8_anywhere_is_refused() {
        let body = b"{\"username\":\"ann\",\"password\":\"secret123\",\"junk\":\"\xc0\xaf\"}";
        // serde alone skips the ignored field's bytes: make sure we do not.
        assert!(serde_json::from_slice::<RegisterRequest>(body).is_ok());
        let err = object_from_slice::<RegisterRequest>(body).unwrap_err();
        assert!(err.0.contains("UTF-8"), "{err}");
    }

    #[test]
    fn frames_in_positional_form_are_refused() {
        assert!(ClientFrame::parse(r#"["send","k","c1","text","hi"]"#).is_err());
        assert!(ClientFrame::parse(r#"["ping"]"#).is_err());
        assert!(ClientFrame::parse(r#"{"type":"ping"}"#).is_ok());
    }
}
