//! Image processing at `complete`: decode with limits (a decompression
//! bomb is refused from its header, before any pixel is allocated), apply
//! the EXIF orientation, and re-encode, which strips every metadata block
//! (GPS included) from what is served: the full-size image and one
//! thumbnail per [`ThumbnailSize`]. CPU-bound and synchronous: callers run
//! it on the blocking pool.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};
use parley_proto::api::{ThumbnailSize, ThumbnailView};

/// The decoding limits.
#[derive(Debug, Clone, Copy)]
pub struct ImageLimits {
    /// Longest side accepted, in pixels.
    pub max_side: u32,
    /// Most bytes one decode may allocate.
    pub max_alloc: u64,
}

impl ImageLimits {
    /// The limits a server with `config` decodes under
    /// (`media_max_image_side`, `media_max_decode_bytes`).
    pub fn of(config: &crate::Config) -> ImageLimits {
        ImageLimits {
            max_side: config.media_max_image_side,
            max_alloc: config.media_max_decode_bytes,
        }
    }
}

/// Why an image was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRefusal {
    /// Its dimensions or its decoded size pass the limits.
    TooLarge(String),
    /// The bytes do not decode as the declared format.
    Undecodable(String),
}

/// What processing produced.
pub struct Processed {
    /// Pixel width after orientation.
    pub width: u32,
    /// Pixel height after orientation.
    pub height: u32,
    /// The image re-encoded at full size (oriented, no metadata); `None`
    /// for GIF, served as uploaded (it carries no EXIF, and re-encoding
    /// would drop its animation).
    pub display: Option<Vec<u8>>,
    /// One thumbnail per size, smallest first: its bytes (JPEG, or PNG
    /// when the image has transparency) and its view.
    pub thumbnails: Vec<(Vec<u8>, ThumbnailView)>,
}

/// Decodes `bytes` as `content_type` within `limits` and renders what is
/// served.
///
/// The decoders read untrusted bytes, and one that panics on them refuses
/// the upload (`Undecodable`, 415) instead of failing the request: png
/// 0.18.1 panics on a palette whose length is not a multiple of three
/// (found by the `media` fuzz target; `testdata/palette_panic.png`).
pub fn process(
    bytes: &[u8],
    content_type: &str,
    limits: ImageLimits,
) -> Result<Processed, ImageRefusal> {
    std::panic::catch_unwind(|| process_unguarded(bytes, content_type, limits)).unwrap_or_else(
        |_| {
            Err(ImageRefusal::Undecodable(
                "the image does not decode: its decoder failed on it".into(),
            ))
        },
    )
}

fn process_unguarded(
    bytes: &[u8],
    content_type: &str,
    limits: ImageLimits,
) -> Result<Processed, ImageRefusal> {
    let format = ImageFormat::from_mime_type(content_type)
        .ok_or_else(|| ImageRefusal::Undecodable(format!("{content_type} is not an image")))?;
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut decode_limits = Limits::default();
    decode_limits.max_image_width = Some(limits.max_side);
    decode_limits.max_image_height = Some(limits.max_side);
    decode_limits.max_alloc = Some(limits.max_alloc);
    reader.limits(decode_limits);
    let mut decoder = reader.into_decoder().map_err(refusal)?;
    let (w, h) = decoder.dimensions();
    let side = limits.max_side;
    if w > side || h > side {
        return Err(ImageRefusal::TooLarge(format!(
            "the image is {w}x{h} pixels; the limit is {side} on each side"
        )));
    }
    let orientation = decoder.orientation().map_err(refusal)?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(refusal)?;
    image.apply_orientation(orientation);
    let display = match format {
        ImageFormat::Gif => None,
        other => Some(encode(&image, other)?),
    };
    let mut thumbnails = Vec::with_capacity(ThumbnailSize::ALL.len());
    for size in ThumbnailSize::ALL {
        let max = size.max_side();
        let thumb = if image.width() > max || image.height() > max {
            image.thumbnail(max, max)
        } else {
            image.clone()
        };
        let format = if thumb.color().has_alpha() {
            ImageFormat::Png
        } else {
            ImageFormat::Jpeg
        };
        let view = ThumbnailView {
            size,
            width: thumb.width(),
            height: thumb.height(),
        };
        thumbnails.push((encode(&thumb, format)?, view));
    }
    Ok(Processed {
        width: image.width(),
        height: image.height(),
        display,
        thumbnails,
    })
}

/// Encodes `image` as `format` (JPEG at quality 85; PNG and WebP
/// lossless), which writes pixels only.
fn encode(image: &DynamicImage, format: ImageFormat) -> Result<Vec<u8>, ImageRefusal> {
    let mut out = Vec::new();
    let result = match format {
        ImageFormat::Jpeg => image
            .to_rgb8()
            .write_with_encoder(JpegEncoder::new_with_quality(&mut out, 85)),
        ImageFormat::Png => image.write_with_encoder(PngEncoder::new(&mut out)),
        other => image.write_to(&mut Cursor::new(&mut out), other),
    };
    result.map_err(refusal)?;
    Ok(out)
}

fn refusal(err: image::ImageError) -> ImageRefusal {
    match err {
        image::ImageError::Limits(limit) => {
            ImageRefusal::TooLarge(format!("the image passes the decoding limits: {limit}"))
        }
        other => ImageRefusal::Undecodable(format!("the image does not decode: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ImageLimits = ImageLimits {
        max_side: 4000,
        max_alloc: 64 << 20,
    };

    fn png(width: u32, height: u32) -> Vec<u8> {
        let image = DynamicImage::new_rgb8(width, height);
        let mut out = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn thumbnails_fit_their_sizes_and_keep_the_aspect() {
        let processed = process(&png(1000, 500), "image/png", LIMITS).unwrap();
        assert_eq!((processed.width, processed.height), (1000, 500));
        let views: Vec<_> = processed.thumbnails.iter().map(|(_, v)| *v).collect();
        assert_eq!(views[0].width, 96);
        assert_eq!(views[0].height, 48);
        assert_eq!(views[2].width, 800);
        assert!(processed.display.is_some());
    }

    #[test]
    fn an_image_over_the_limits_is_refused_before_decoding() {
        // (The boundary suite sends a real bomb: a header claiming
        // 100,000 x 100,000 pixels.)
        let wide = png(LIMITS.max_side + 1, 1);
        let err = process(&wide, "image/png", LIMITS).err().unwrap();
        assert!(matches!(err, ImageRefusal::TooLarge(_)), "{err:?}");
    }

    #[test]
    fn an_image_its_decoder_panics_on_is_undecodable() {
        let bytes = include_bytes!("testdata/palette_panic.png");
        let err = process(bytes, "image/png", LIMITS).err().unwrap();
        assert!(matches!(err, ImageRefusal::Undecodable(_)), "{err:?}");
    }

    #[test]
    fn garbage_is_undecodable() {
        let err = process(b"<html></html>", "image/png", LIMITS)
            .err()
            .unwrap();
        assert!(matches!(err, ImageRefusal::Undecodable(_)), "{err:?}");
    }
}
