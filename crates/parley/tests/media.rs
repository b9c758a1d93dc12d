//! Media (protocol §9) at the boundary: a real server on 127.0.0.1:0,
//! driven through `parley-client`'s upload and download helpers. Every
//! test runs on each media backend the machine has (see [`backends`]).

mod common;
mod s3s_support;

use std::io::Cursor;
use std::time::Duration;

use common::{TestServer, WAIT, direct, png, test_config, uid};
use image::{DynamicImage, ImageFormat};
use parley_client::{Client, ClientError, SearchRequest, sha256_base64};
use parley_proto::api::{
    MediaUploadRequest, ProfileRequest, RenameRequest, SendRequest, ThumbnailSize,
};
use parley_proto::{ErrorCode, MediaId, MessageKind};
use parley_server::Config;
use parley_server::config::MediaBackend;
use s3s_support::S3sFs;

/// The media backends the suite runs on: `local`, and `s3` against a
/// private s3s-fs (which really checks signatures) when it is installed
/// (`scripts/s3s-fs`; with `CI=true` it must be). The third item keeps
/// that server running.
fn backends() -> Vec<(&'static str, Config, Option<S3sFs>)> {
    let mut all = vec![("local", test_config(), None)];
    if let Some(s3) = S3sFs::start() {
        let config = Config {
            media_backend: MediaBackend::S3,
            s3_endpoint: Some(s3.endpoint.clone()),
            s3_bucket: Some(s3s_support::BUCKET.into()),
            s3_access_key_id: Some(s3s_support::ACCESS_KEY.into()),
            s3_secret_access_key: Some(s3s_support::SECRET_KEY.into()),
            ..test_config()
        };
        all.push(("s3", config, Some(s3)));
    }
    all
}

/// `url` with the last character of its signature (the last query
/// value, on both backends) changed.
fn tampered(url: &str) -> String {
    let mut url = url.to_owned();
    let last = url.pop().expect("a URL");
    url.push(if last == '0' { '1' } else { '0' });
    url
}

/// A JPEG `width`x`height` whose EXIF says "rotate 90° clockwise" and
/// which carries a GPS-looking marker in its EXIF block.
fn jpeg_with_exif(width: u32, height: u32) -> Vec<u8> {
    let image = DynamicImage::new_rgb8(width, height);
    let mut plain = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut plain), ImageFormat::Jpeg)
        .unwrap();
    // TIFF, little-endian: one IFD entry, Orientation (0x0112) = 6.
    let mut tiff = b"II\x2a\x00\x08\x00\x00\x00".to_vec();
    tiff.extend_from_slice(&1u16.to_le_bytes());
    tiff.extend_from_slice(&0x0112u16.to_le_bytes());
    tiff.extend_from_slice(&3u16.to_le_bytes());
    tiff.extend_from_slice(&1u32.to_le_bytes());
    tiff.extend_from_slice(&6u16.to_le_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_le_bytes());
    tiff.extend_from_slice(b"GPS 48.8584N 2.2945E");
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let mut out = plain[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&plain[2..]);
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A real PNG whose header claims 100,000 x 100,000 pixels (30 GB
/// decoded): a decompression bomb.
fn bomb() -> Vec<u8> {
    let mut bomb = png(1, 1);
    bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let crc = crc32(&bomb[12..29]);
    bomb[29..33].copy_from_slice(&crc.to_be_bytes());
    bomb
}

fn api_code(err: ClientError) -> (u16, ErrorCode) {
    match err {
        ClientError::Api { status, code, .. } => (status, code),
        other => panic!("expected an API error, got {other}"),
    }
}

/// The HTTP status of a refusal, from Parley (its JSON error) or from the
/// bucket (S3's XML error, which the client reports as it came).
fn status(err: ClientError) -> u16 {
    match err {
        ClientError::Api { status, .. } => status,
        ClientError::Protocol(text) => text
            .split(' ')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {text}")),
        other => panic!("expected a refusal, got {other}"),
    }
}

fn slot_request(bytes: &[u8], content_type: &str) -> MediaUploadRequest {
    MediaUploadRequest {
        content_type: content_type.into(),
        size: bytes.len() as u64,
        sha256: sha256_base64(bytes),
        filename: None,
    }
}

/// Sends media `id` as a message of `kind` over HTTP.
async fn send_media(
    client: &Client,
    conversation: parley_proto::ConversationId,
    key: &str,
    kind: MessageKind,
    id: MediaId,
    caption: &str,
) -> Result<parley_proto::Message, ClientError> {
    client
        .send_request(conversation, &SendRequest::media(key, kind, id, caption))
        .await
        .map(|(message, _)| message)
}

#[tokio::test]
async fn a_photo_goes_from_upload_to_the_other_side() {
    for (backend, config, _s3) in backends() {
        let server = TestServer::start_with(config).await;
        let alice = server.user("alice").await;
        let bob = server.user("bob").await;
        let conversation = direct(&alice, &bob).await;
        let bytes = png(300, 200);
        let view = alice
            .upload_media(&bytes, "image/png", Some("beach.png"))
            .await
            .unwrap();
        assert_eq!(view.status, "ready", "{backend}");
        assert_eq!((view.width, view.height), (Some(300), Some(200)));
        let sizes: Vec<_> = view.thumbnails.iter().map(|t| t.size).collect();
        assert_eq!(sizes, ThumbnailSize::ALL.to_vec());
        assert_eq!(
            (view.thumbnails[0].width, view.thumbnails[0].height),
            (96, 64)
        );

        // The uploader may read it before any message references it; bob
        // may not.
        assert!(alice.download_media(view.media_id).await.is_ok());
        let err = bob.download_media(view.media_id).await.unwrap_err();
        assert_eq!(api_code(err), (404, ErrorCode::NotFound), "{backend}");

        let sent = send_media(
            &alice,
            conversation,
            "p1",
            MessageKind::Image,
            view.media_id,
            "sunset",
        )
        .await
        .unwrap();
        assert_eq!(sent.kind, MessageKind::Image);
        assert_eq!(sent.text.as_deref(), Some("sunset"));
        assert_eq!(sent.media[0].filename.as_deref(), Some("beach.png"));
        assert_eq!(sent.media[0].width, Some(300));

        let history = bob.history(conversation, None, None, None).await.unwrap();
        let seen = history.messages.iter().find(|m| m.seq == sent.seq).unwrap();
        assert_eq!(seen.media, sent.media, "{backend}: bob sees the media");
        // Its caption is searched like text (§10).
        let found = bob
            .search(&SearchRequest {
                q: "SUNS",
                ..SearchRequest::default()
            })
            .await
            .unwrap();
        assert_eq!(found.results.len(), 1, "{backend}: the caption is found");
        assert_eq!(found.results[0].media, sent.media);

        let full = bob.download_media(view.media_id).await.unwrap();
        assert_eq!(full.content_type, "image/png");
        // On s3 the bucket serves the bytes (a redirect), with its headers.
        assert!(full.nosniff || backend == "s3", "{backend}: nosniff");
        assert!(
            full.disposition.starts_with("inline"),
            "{}",
            full.disposition
        );
        let decoded = image::load_from_memory(&full.bytes).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (300, 200));

        let small = bob
            .thumbnail(view.media_id, ThumbnailSize::S)
            .await
            .unwrap();
        let decoded = image::load_from_memory(&small.bytes).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (96, 64));

        // A capability URL works without a header, for <img src>; changed,
        // it does not.
        let url = bob
            .media_url(view.media_id, Some(ThumbnailSize::M))
            .await
            .unwrap();
        let anonymous = Client::new(format!("http://{}", server.addr));
        let fetched = anonymous.fetch_url(&url.url).await.unwrap();
        assert!(fetched.content_type.starts_with("image/"), "{backend}");
        let other_variant = url.url.replace("v=m", "v=o");
        let err = anonymous.fetch_url(&other_variant).await.unwrap_err();
        assert_eq!(api_code(err).0, 403, "{backend}");
        let err = anonymous.fetch_url(&tampered(&url.url)).await.unwrap_err();
        assert_eq!(api_code(err).0, 403, "{backend}");
    }
}

#[tokio::test]
async fn media_messages_travel_over_the_websocket_too() {
    for (backend, config, _s3) in backends() {
        let server = TestServer::start_with(config).await;
        let alice = server.user("alice").await;
        let bob = server.user("bob").await;
        let conversation = direct(&alice, &bob).await;
        let view = alice
            .upload_media(
                b"%PDF-1.4 a small document",
                "application/pdf",
                Some("a.pdf"),
            )
            .await
            .unwrap();
        let mut alice_socket = alice.connect(None).await.unwrap();
        let mut bob_socket = bob.connect(None).await.unwrap();
        alice_socket
            .send_message(
                conversation,
                SendRequest::media("ws1", MessageKind::File, view.media_id, ""),
            )
            .await
            .unwrap();
        common::expect_sent(&mut alice_socket, "ws1").await;
        let (_, message) = common::expect_message(&mut bob_socket).await;
        assert_eq!(message.kind, MessageKind::File, "{backend}");
        assert_eq!(message.media[0].filename.as_deref(), Some("a.pdf"));
        assert_eq!(message.media[0].content_type, "application/pdf");
        let file = bob.download_media(view.media_id).await.unwrap();
        assert!(file.disposition.starts_with("attachment"), "{backend}");
        // A media kind without media is refused over the socket as well.
        alice_socket
            .send_message(
                conversation,
                SendRequest {
                    media: Vec::new(),
                    ..SendRequest::media("ws2", MessageKind::Image, view.media_id, "")
                },
            )
            .await
            .unwrap();
        let (code, _) = common::expect_error(&mut alice_socket, "ws2").await;
        assert_eq!(code, ErrorCode::BadRequest, "{backend}");
    }
}

#[tokio::test]
async fn exif_orientation_is_applied_and_metadata_stripped() {
    for (backend, config, _s3) in backends() {
        let server = TestServer::start_with(config).await;
        let alice = server.user("alice").await;
        let bytes = jpeg_with_exif(40, 20);
        assert!(bytes.windows(4).any(|w| w == b"Exif"));
        let view = alice
            .upload_media(&bytes, "image/jpeg", None)
            .await
            .unwrap();
        assert_eq!((view.width, view.height), (Some(20), Some(40)), "{backend}");
        let served = alice.download_media(view.media_id).await.unwrap();
        assert!(
            !served
                .bytes
                .windows(4)
                .any(|w| w == b"Exif" || w == b"GPS "),
            "{backend}: no metadata is served"
        );
        let decoded = image::load_from_memory(&served.bytes).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (20, 40));
    }
}

#[tokio::test]
async fn upload_urls_refuse_tampering_expiry_wrong_types_and_replays() {
    for (backend, mut config, _s3) in backends() {
        config.media_upload_url_secs = 2;
        let server = TestServer::start_with(config).await;
        let alice = server.user("alice").await;
        let bytes = png(10, 10);

        let slot = alice
            .create_media(&slot_request(&bytes, "image/png"))
            .await
            .unwrap();
        // A changed signature.
        let mut forged = slot.upload.clone();
        forged.url = tampered(&forged.url);
        let err = alice.put_upload(&forged, bytes.clone()).await.unwrap_err();
        assert_eq!(status(err), 403, "{backend}: tampered");
        // Another content type than the signed one.
        let mut retyped = slot.upload.clone();
        retyped
            .headers
            .insert("content-type".into(), "text/html".into());
        let err = alice.put_upload(&retyped, bytes.clone()).await.unwrap_err();
        assert_eq!(status(err), 403, "{backend}: wrong type");
        // The real one works, and once complete the same URL can no longer
        // replace the verified bytes.
        alice.put_upload(&slot.upload, bytes.clone()).await.unwrap();
        alice.complete_media(slot.media_id).await.unwrap();
        let other = png(10, 10).into_iter().rev().collect::<Vec<_>>();
        let _ = alice.put_upload(&slot.upload, other).await;
        let served = alice.download_media(slot.media_id).await.unwrap();
        let decoded = image::load_from_memory(&served.bytes).unwrap();
        assert_eq!(decoded.width(), 10, "{backend}: verified bytes unchanged");

        // An expired URL.
        let slot = alice
            .create_media(&slot_request(&bytes, "image/png"))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(3_100)).await;
        let err = alice
            .put_upload(&slot.upload, bytes.clone())
            .await
            .unwrap_err();
        assert_eq!(status(err), 403, "{backend}: expired");
    }
}

#[tokio::test]
async fn wrong_bytes_are_caught_at_complete_and_never_usable() {
    for (backend, config, _s3) in backends() {
        let server = TestServer::start_with(config).await;
        let alice = server.user("alice").await;
        let bob = server.user("bob").await;
        let conversation = direct(&alice, &bob).await;
        let declared = png(20, 20);
        let mut other = declared.clone();
        let last = other.len() - 1;
        other[last] ^= 0xFF;
        let slot = alice
            .create_media(&slot_request(&declared, "image/png"))
            .await
            .unwrap();
        // S3 refuses a body that does not match the signed checksum at
        // the PUT itself; either way `complete` re-checks.
        let _ = alice.put_upload(&slot.upload, other).await;
        let err = alice.complete_media(slot.media_id).await.unwrap_err();
        assert_eq!(api_code(err), (400, ErrorCode::BadRequest), "{backend}");
        let err = send_media(
            &alice,
            conversation,
            "w1",
            MessageKind::Image,
            slot.media_id,
            "",
        )
        .await
        .unwrap_err();
        assert_eq!(api_code(err).1, ErrorCode::BadRequest, "{backend}");
        assert!(alice.download_media(slot.media_id).await.is_err());

        // A body longer than declared.
        let slot = alice
            .create_media(&slot_request(&declared, "image/png"))
            .await
            .unwrap();
        let mut longer = declared.clone();
        longer.extend_from_slice(b"more");
        let _ = alice.put_upload(&slot.upload, longer).await;
        assert!(alice.complete_media(slot.media_id).await.is_err());
    }
}

#[tokio::test]
async fn types_are_checked_against_the_allow_list_and_the_bytes() {
    for (backend, mut config, _s3) in backends() {
        config.max_upload_bytes = 1_000_000;
        let server = TestServer::start_with(config).await;
        let alice = server.user("alice").await;
        let html = b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>".to_vec();
        // A PNG that is really HTML.
        let err = alice
            .upload_media(&html, "image/png", Some("cat.png"))
            .await
            .unwrap_err();
        assert_eq!(
            api_code(err),
            (415, ErrorCode::UnsupportedMediaType),
            "{backend}"
        );
        // A type that is not allowed at all.
        let err = alice
            .create_media(&slot_request(&html, "text/html"))
            .await
            .unwrap_err();
        assert_eq!(api_code(err), (415, ErrorCode::UnsupportedMediaType));
        // Too large.
        let mut big = slot_request(&html, "application/pdf");
        big.size = 1_000_001;
        let err = alice.create_media(&big).await.unwrap_err();
        assert_eq!(api_code(err), (413, ErrorCode::PayloadTooLarge));
        // A file is served as an attachment, with its name.
        let view = alice
            .upload_media(b"just text", "text/plain", Some("notes.txt"))
            .await
            .unwrap();
        let served = alice.download_media(view.media_id).await.unwrap();
        assert_eq!(
            served.disposition,
            "attachment; filename=\"notes.txt\"; filename*=UTF-8''notes.txt"
        );
        assert!(served.nosniff || backend == "s3");
        assert_eq!(served.bytes, b"just text");
    }
}

#[tokio::test]
async fn a_decompression_bomb_is_refused() {
    for (backend, config, _s3) in backends() {
        let server = TestServer::start_with(config).await;
        let alice = server.user("alice").await;
        let err = alice
            .upload_media(&bomb(), "image/png", None)
            .await
            .unwrap_err();
        assert_eq!(api_code(err), (400, ErrorCode::BadRequest), "{backend}");
        // The server is fine and carries on.
        let view = alice
            .upload_media(&png(5, 5), "image/png", None)
            .await
            .unwrap();
        assert_eq!(view.width, Some(5));
    }
}

#[tokio::test]
async fn an_image_that_crashes_its_decoder_is_refused_as_undecodable() {
    // Found by the `media` fuzz target: png 0.18.1 panics on this palette.
    let bytes = include_bytes!("../../parley-server/src/media/testdata/palette_panic.png");
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let err = alice
        .upload_media(bytes, "image/png", None)
        .await
        .unwrap_err();
    assert_eq!(api_code(err), (415, ErrorCode::UnsupportedMediaType));
    let view = alice
        .upload_media(&png(5, 5), "image/png", None)
        .await
        .unwrap();
    assert_eq!(view.width, Some(5));
}

#[tokio::test]
async fn only_those_who_may_see_a_message_may_read_its_media() {
    for (backend, config, _s3) in backends() {
        let server = TestServer::start_with(config).await;
        let alice = server.user("alice").await;
        let bob = server.user("bob").await;
        let carol = server.user("carol").await;
        let dave = server.user("dave").await;
        let group = alice
            .create_group("trip", &[uid(&bob), uid(&dave)])
            .await
            .unwrap()
            .conversation_id;
        let before = alice
            .upload_media(&png(8, 8), "image/png", None)
            .await
            .unwrap();
        send_media(&alice, group, "g1", MessageKind::Image, before.media_id, "")
            .await
            .unwrap();
        alice.remove_member(group, uid(&bob)).await.unwrap();
        let after = alice
            .upload_media(&png(9, 9), "image/png", None)
            .await
            .unwrap();
        send_media(&alice, group, "g2", MessageKind::Image, after.media_id, "")
            .await
            .unwrap();

        // Bob saw the first message and still may; the second came after
        // his removal.
        assert!(
            bob.download_media(before.media_id).await.is_ok(),
            "{backend}"
        );
        let err = bob.download_media(after.media_id).await.unwrap_err();
        assert_eq!(api_code(err), (404, ErrorCode::NotFound), "{backend}");
        let err = bob.media_url(after.media_id, None).await.unwrap_err();
        assert_eq!(api_code(err).0, 404);
        assert!(dave.download_media(after.media_id).await.is_ok());
        // Carol was never a member.
        let err = carol.download_media(before.media_id).await.unwrap_err();
        assert_eq!(api_code(err), (404, ErrorCode::NotFound));
        let err = carol
            .thumbnail(before.media_id, ThumbnailSize::S)
            .await
            .unwrap_err();
        assert_eq!(api_code(err).0, 404);
        // Unknown ids answer the same.
        let err = carol.download_media(MediaId(999_999)).await.unwrap_err();
        assert_eq!(api_code(err).0, 404);

        // Carol cannot send media she may not see; dave may forward what
        // he saw, with no new upload, and then carol may read it.
        let carol_dave = direct(&carol, &dave).await;
        let err = send_media(
            &carol,
            carol_dave,
            "c1",
            MessageKind::Image,
            after.media_id,
            "",
        )
        .await
        .unwrap_err();
        assert_eq!(api_code(err).1, ErrorCode::NotFound, "{backend}");
        let forward = SendRequest {
            forwarded: true,
            ..SendRequest::media("d1", MessageKind::Image, after.media_id, "look")
        };
        let (forwarded, _) = dave.send_request(carol_dave, &forward).await.unwrap();
        assert!(forwarded.forwarded);
        assert!(
            carol.download_media(after.media_id).await.is_ok(),
            "{backend}"
        );
    }
}

/// Polls `check` until it holds (garbage collection runs on its own
/// schedule); fails after [`WAIT`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn garbage_collection_keeps_referenced_media_and_removes_orphans() {
    for (backend, mut config, _s3) in backends() {
        config.media_orphan_grace_secs = 0;
        config.media_gc_interval_secs = 1;
        config.media_upload_url_secs = 1;
        let server = TestServer::start_with(config).await;
        let alice = server.user("alice").await;
        let bob = server.user("bob").await;
        let conversation = direct(&alice, &bob).await;
        let kept = alice
            .upload_media(&png(6, 6), "image/png", None)
            .await
            .unwrap();
        let sent = send_media(
            &alice,
            conversation,
            "k1",
            MessageKind::Image,
            kept.media_id,
            "",
        )
        .await
        .unwrap();
        let orphan = alice
            .upload_media(b"orphan", "text/plain", None)
            .await
            .unwrap();
        let never = alice
            .create_media(&slot_request(b"never sent", "text/plain"))
            .await
            .unwrap();
        eventually("the orphan is collected", || async {
            alice.download_media(orphan.media_id).await.is_err()
        })
        .await;
        // Its slot and the never-completed upload are gone too; the
        // referenced media stays.
        eventually("the pending upload is collected", || async {
            matches!(
                alice.complete_media(never.media_id).await,
                Err(ClientError::Api { status: 404, .. })
            )
        })
        .await;
        assert!(bob.download_media(kept.media_id).await.is_ok(), "{backend}");

        // Deleting the message for everyone drops its reference.
        alice
            .send_request(conversation, &SendRequest::delete("k2", sent.seq))
            .await
            .unwrap();
        eventually("media of a deleted message is collected", || async {
            alice.download_media(kept.media_id).await.is_err()
        })
        .await;
    }
}

/// `PATCH /v1/me` and `PATCH /v1/groups/{id}` with `avatar_media_id`.
fn avatar(id: impl ToString) -> ProfileRequest {
    ProfileRequest {
        avatar_media_id: Some(id.to_string()),
        ..ProfileRequest::default()
    }
}

fn group_avatar(id: impl ToString) -> RenameRequest {
    RenameRequest {
        avatar_media_id: Some(id.to_string()),
        ..RenameRequest::default()
    }
}

#[tokio::test]
async fn avatars_are_own_images_readable_by_others_and_kept_from_the_collector() {
    for (backend, mut config, _s3) in backends() {
        config.media_orphan_grace_secs = 0;
        config.media_gc_interval_secs = 1;
        let server = TestServer::start_with(config).await;
        let alice = server.user("alice").await;
        let bob = server.user("bob").await;
        let carol = server.user("carol").await;
        let face = alice
            .upload_media(&png(8, 8), "image/png", None)
            .await
            .unwrap();
        let pdf = alice
            .upload_media(b"%PDF-1.4 tiny", "application/pdf", Some("a.pdf"))
            .await
            .unwrap();
        let bobs = bob
            .upload_media(&png(5, 5), "image/png", None)
            .await
            .unwrap();
        // Only one's own, ready image.
        let err = alice.update_me(&avatar(pdf.media_id)).await.unwrap_err();
        assert_eq!(api_code(err), (400, ErrorCode::BadRequest), "{backend}");
        let err = alice.update_me(&avatar(bobs.media_id)).await.unwrap_err();
        assert_eq!(api_code(err), (404, ErrorCode::NotFound), "{backend}");
        let err = alice.update_me(&avatar("not-an-id")).await.unwrap_err();
        assert_eq!(api_code(err), (404, ErrorCode::NotFound), "{backend}");
        let me = alice.update_me(&avatar(face.media_id)).await.unwrap();
        assert_eq!(me.avatar_media_id, Some(face.media_id.to_string()));
        // Any signed-in user may fetch a user's avatar (carol shares no
        // conversation with alice): it is on her public profile.
        assert!(
            carol.download_media(face.media_id).await.is_ok(),
            "{backend}"
        );
        assert!(
            carol.media_url(face.media_id, None).await.is_ok(),
            "{backend}"
        );

        // A group's avatar: its admin's own image, for its members.
        let group = alice
            .create_group("team", &[uid(&bob)])
            .await
            .unwrap()
            .conversation_id;
        let logo = alice
            .upload_media(&png(6, 6), "image/png", None)
            .await
            .unwrap();
        let err = bob
            .update_group(group, &group_avatar(bobs.media_id))
            .await
            .unwrap_err();
        assert_eq!(api_code(err).0, 403, "{backend}: bob is no admin");
        let updated = alice
            .update_group(group, &group_avatar(logo.media_id))
            .await
            .unwrap();
        assert_eq!(updated.avatar_media_id, Some(logo.media_id.to_string()));
        assert!(bob.download_media(logo.media_id).await.is_ok(), "{backend}");
        let err = carol.download_media(logo.media_id).await.unwrap_err();
        assert_eq!(status(err), 404, "{backend}: carol is no member");

        // The collector (grace 0, every second) takes the unreferenced pdf
        // but never an avatar...
        eventually("the orphan is collected", || async {
            alice.download_media(pdf.media_id).await.is_err()
        })
        .await;
        assert!(
            carol.download_media(face.media_id).await.is_ok(),
            "{backend}"
        );
        assert!(bob.download_media(logo.media_id).await.is_ok(), "{backend}");
        // ...until it is replaced or removed: then it is an orphan.
        let newer = alice
            .upload_media(&png(7, 7), "image/png", None)
            .await
            .unwrap();
        alice.update_me(&avatar(newer.media_id)).await.unwrap();
        alice.update_group(group, &group_avatar("")).await.unwrap();
        eventually("the replaced avatars are collected", || async {
            alice.download_media(face.media_id).await.is_err()
                && alice.download_media(logo.media_id).await.is_err()
        })
        .await;
        assert!(
            carol.download_media(newer.media_id).await.is_ok(),
            "{backend}"
        );
    }
}

/// `GET path` over plain HTTP/1.1 with extra `headers`: the status, the
/// response headers (lower-cased names) and the body. The client library
/// has no way to send `Range`, and this is what a browser sends.
async fn get_raw(
    server: &TestServer,
    path: &str,
    headers: &str,
) -> (u16, std::collections::HashMap<String, String>, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).await.unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let fields = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, fields, raw[split + 4..].to_vec())
}

#[tokio::test]
async fn local_downloads_answer_byte_ranges() {
    let server = TestServer::start_with(test_config()).await;
    let alice = server.user("alice").await;
    // A "voice note": bytes the server keeps as uploaded.
    let audio = [
        b"OggS".as_slice(),
        &(0..=255u8).cycle().take(5_000).collect::<Vec<_>>(),
    ]
    .concat();
    let media = alice
        .upload_media(&audio, "audio/ogg", Some("note.ogg"))
        .await
        .unwrap();
    let url = alice.media_url(media.media_id, None).await.unwrap().url;
    let token = format!("Authorization: Bearer {}\r\n", alice.token().unwrap());
    let direct = format!("/v1/media/{}", media.media_id);
    for (path, auth) in [(url.as_str(), ""), (direct.as_str(), token.as_str())] {
        let (status, headers, body) = get_raw(&server, path, auth).await;
        assert_eq!((status, body.len()), (200, audio.len()), "{path}");
        assert_eq!(headers["accept-ranges"], "bytes");
        let asks = [
            ("bytes=0-3", 0..4),
            ("bytes=4000-", 4000..audio.len()),
            ("bytes=-10", audio.len() - 10..audio.len()),
            ("bytes=100-99999", 100..audio.len()),
        ];
        for (range, want) in asks {
            let (status, headers, body) =
                get_raw(&server, path, &format!("{auth}Range: {range}\r\n")).await;
            assert_eq!(status, 206, "{path} {range}");
            assert_eq!(body, audio[want.clone()], "{path} {range}");
            assert_eq!(
                headers["content-range"],
                format!("bytes {}-{}/{}", want.start, want.end - 1, audio.len())
            );
            assert_eq!(headers["content-length"], want.len().to_string());
            assert_eq!(headers["x-content-type-options"], "nosniff");
        }
        let (status, headers, _) =
            get_raw(&server, path, &format!("{auth}Range: bytes=9999-\r\n")).await;
        assert_eq!(status, 416, "{path}");
        assert_eq!(headers["content-range"], format!("bytes */{}", audio.len()));
        // Several ranges, or a validator Parley never sent: the whole.
        for extra in [
            "Range: bytes=0-1,5-6\r\n",
            "Range: bytes=0-1\r\nIf-Range: \"x\"\r\n",
        ] {
            let (status, _, body) = get_raw(&server, path, &format!("{auth}{extra}")).await;
            assert_eq!((status, body.len()), (200, audio.len()), "{path} {extra}");
        }
    }
}

#[tokio::test]
async fn the_quota_bounds_what_one_user_stores() {
    for (backend, mut config, _s3) in backends() {
        config.media_quota_bytes = 1_000;
        let server = TestServer::start_with(config).await;
        let alice = server.user("alice").await;
        let bob = server.user("bob").await;
        alice
            .upload_media(&[b'a'; 600], "text/plain", None)
            .await
            .unwrap();
        let err = alice
            .upload_media(&[b'b'; 600], "text/plain", None)
            .await
            .unwrap_err();
        assert_eq!(
            api_code(err),
            (413, ErrorCode::PayloadTooLarge),
            "{backend}"
        );
        // Another user has a quota of its own.
        bob.upload_media(&[b'c'; 600], "text/plain", None)
            .await
            .unwrap();
    }
}

/// The numbers in BENCHMARKS.md ("Media"): a 50 MB file up and down, 1,000
/// small images up (with their thumbnails) and down, and the decode +
/// thumbnail time per image, on each backend. Not a check: run it by hand,
/// in release, `cargo test --release -p parley --test media -- --ignored
/// --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn measure_throughput() {
    use std::time::Instant;
    async fn image_seconds(client: &Client) -> (f64, f64) {
        let (_, body) = client
            .raw(parley_client::Method::GET, "/metrics", None)
            .await
            .unwrap();
        let text = body.as_str().unwrap_or_default().to_owned();
        let value = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        (
            value("parley_media_image_seconds_sum"),
            value("parley_media_image_seconds_count"),
        )
    }
    // PARLEY_MEDIA_MEASURE=s3 measures one backend only.
    let only = std::env::var("PARLEY_MEDIA_MEASURE").ok();
    for (backend, mut config, _s3) in backends() {
        if only.as_deref().is_some_and(|o| o != backend) {
            continue;
        }
        config.http_requests_per_token_per_sec = 1_000_000.0;
        config.media_quota_bytes = 4 << 30;
        let server = TestServer::start_with(config).await;
        let alice = server.user("alice").await;

        let big: Vec<u8> = (0..50_000_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        let started = Instant::now();
        let view = alice
            .upload_media(&big, "application/octet-stream", Some("big.bin"))
            .await
            .unwrap();
        let up = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let down = alice.download_media(view.media_id).await.unwrap();
        let down_s = started.elapsed().as_secs_f64();
        assert_eq!(down.bytes.len(), big.len());
        println!(
            "{backend}: 50 MB upload (slot + PUT + complete) {up:.2} s = {:.0} MB/s; download {down_s:.2} s = {:.0} MB/s",
            50.0 / up,
            50.0 / down_s
        );

        let small = png(64, 64);
        let (sum0, count0) = image_seconds(&server.client).await;
        let started = Instant::now();
        let mut ids = Vec::with_capacity(1000);
        for _ in 0..1000 {
            ids.push(
                alice
                    .upload_media(&small, "image/png", None)
                    .await
                    .unwrap()
                    .media_id,
            );
        }
        let up = started.elapsed().as_secs_f64();
        let (sum1, count1) = image_seconds(&server.client).await;
        let started = Instant::now();
        for &id in &ids {
            alice.download_media(id).await.unwrap();
        }
        let down_s = started.elapsed().as_secs_f64();
        println!(
            "{backend}: 1,000 images 64x64 PNG ({} B) one after another: upload {up:.2} s = {:.0}/s; download {down_s:.2} s = {:.0}/s; decode + 3 thumbnails {:.2} ms per image",
            small.len(),
            1000.0 / up,
            1000.0 / down_s,
            (sum1 - sum0) / (count1 - count0).max(1.0) * 1000.0
        );

        let photo = {
            let image = DynamicImage::ImageRgb8(image::RgbImage::from_fn(4000, 3000, |x, y| {
                image::Rgb([(x / 16) as u8, (y / 12) as u8, ((x + y) / 28) as u8])
            }));
            let mut out = Vec::new();
            image
                .write_to(&mut Cursor::new(&mut out), ImageFormat::Jpeg)
                .unwrap();
            out
        };
        let (sum0, count0) = image_seconds(&server.client).await;
        let started = Instant::now();
        for _ in 0..2 {
            alice
                .upload_media(&photo, "image/jpeg", None)
                .await
                .unwrap();
        }
        let total = started.elapsed().as_secs_f64();
        let (sum1, count1) = image_seconds(&server.client).await;
        println!(
            "{backend}: 2 photos 4000x3000 JPEG ({} KB): {:.0} ms per upload; decode + orient + re-encode + 3 thumbnails {:.0} ms per image",
            photo.len() / 1000,
            total / 2.0 * 1000.0,
            (sum1 - sum0) / (count1 - count0).max(1.0) * 1000.0
        );
    }
}
