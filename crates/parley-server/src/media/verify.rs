//! What `complete` checks in the bytes themselves: the type sniffed from
//! the first bytes (with `infer`) against the declared one. Pure, so the
//! rules are unit-tested here.

/// How many leading bytes are sniffed.
pub const SNIFF_BYTES: usize = 8192;

/// A content type in its canonical form: lower case, no parameters, the
/// common aliases folded (`image/jpg` is `image/jpeg`, ...).
pub fn normalize(content_type: &str) -> String {
    let base = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match base.as_str() {
        "image/jpg" | "image/pjpeg" => "image/jpeg".into(),
        "audio/x-wav" | "audio/wave" | "audio/vnd.wave" => "audio/wav".into(),
        "audio/mp3" | "audio/x-mpeg" => "audio/mpeg".into(),
        "audio/m4a" | "audio/x-m4a" => "audio/mp4".into(),
        "application/x-zip-compressed" => "application/zip".into(),
        _ => base,
    }
}

/// Whether the bytes are served inline (`image/`, `video/`, `audio/`);
/// anything else is served as an attachment.
pub(crate) fn is_inline(content_type: &str) -> bool {
    ["image/", "video/", "audio/"]
        .iter()
        .any(|family| content_type.starts_with(family))
}

/// Checks the type sniffed from `head` against the `declared` one
/// (already normalized). Images, PDFs and ZIPs must be exactly what they
/// claim; audio and video must be some audio or video container (they
/// share containers: a WebM voice note sniffs as video); other declared
/// types (plain text, `application/octet-stream`) are served as
/// attachments with `nosniff` whatever they hold, so they pass.
pub fn check_sniffed(declared: &str, head: &[u8]) -> Result<(), String> {
    let sniffed = infer::get(head).map(|kind| normalize(kind.mime_type()));
    let exact =
        declared.starts_with("image/") || matches!(declared, "application/pdf" | "application/zip");
    let av = declared.starts_with("audio/") || declared.starts_with("video/");
    let ok = if exact {
        sniffed.as_deref() == Some(declared)
    } else if av {
        sniffed
            .as_deref()
            .is_some_and(|s| s.starts_with("audio/") || s.starts_with("video/"))
    } else {
        true
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "the bytes are {}, not the declared {declared}",
            sniffed.as_deref().unwrap_or("of an unknown type")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    const HTML: &[u8] = b"<!DOCTYPE html><html><script>alert(1)</script></html>";

    #[test]
    fn aliases_fold_and_parameters_go() {
        assert_eq!(normalize("Image/JPG; q=1"), "image/jpeg");
        assert_eq!(normalize("audio/x-wav"), "audio/wav");
        assert_eq!(normalize("text/plain; charset=utf-8"), "text/plain");
    }

    #[test]
    fn an_image_must_be_what_it_claims() {
        assert!(check_sniffed("image/png", PNG).is_ok());
        let err = check_sniffed("image/png", HTML).unwrap_err();
        assert!(err.contains("text/html"), "{err}");
        assert!(check_sniffed("image/jpeg", PNG).is_err());
        assert!(check_sniffed("image/png", b"").is_err());
    }

    #[test]
    fn audio_and_video_share_containers_and_files_pass() {
        // An EBML header naming the webm doc type, padded as a real file is.
        let mut webm = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm".to_vec();
        webm.resize(512, 0);
        assert!(check_sniffed("audio/webm", &webm).is_ok());
        assert!(check_sniffed("audio/webm", HTML).is_err());
        assert!(check_sniffed("text/plain", HTML).is_ok());
        assert!(check_sniffed("application/pdf", HTML).is_err());
        assert!(is_inline("video/mp4") && !is_inline("text/html"));
    }
}
