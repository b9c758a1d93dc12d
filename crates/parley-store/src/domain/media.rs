//! Media (protocol §9): the shape of a media message, what a message may
//! reference, and decoding media rows. Engines read the media row inside
//! the message's transaction and carry the answer out in their own SQL.

use parley_proto::api::ThumbnailView;
use parley_proto::{MediaId, MediaInfo, MessageKind, UserId};

use crate::error::{StoreError, StoreResult};
use crate::model::{MediaRecord, MediaState, NewMessage};

/// The columns a [`MediaRow`] is read from, in order. Both schemas name
/// them alike.
pub(crate) const MEDIA_COLUMNS: &str = "id, owner_id, state, content_type, size, sha256, filename, width, height, \
                                        duration_ms, thumbnails, created_at_ms, expires_at_ms";

/// A stored media row, as the [`MEDIA_COLUMNS`] hold it.
#[derive(Debug, Clone, Default)]
pub(crate) struct MediaRow {
    pub(crate) id: i64,
    pub(crate) owner_id: i64,
    pub(crate) state: String,
    pub(crate) content_type: String,
    pub(crate) size: i64,
    pub(crate) sha256: String,
    pub(crate) filename: Option<String>,
    pub(crate) width: Option<i64>,
    pub(crate) height: Option<i64>,
    pub(crate) duration_ms: Option<i64>,
    /// The stored JSON of the thumbnails.
    pub(crate) thumbnails: Option<String>,
    pub(crate) created_at_ms: i64,
    pub(crate) expires_at_ms: i64,
}

impl MediaRow {
    /// The record.
    pub(crate) fn into_record(self) -> MediaRecord {
        let dimension = |v: Option<i64>| v.and_then(|v| u32::try_from(v).ok());
        MediaRecord {
            id: MediaId(self.id),
            owner: UserId(self.owner_id),
            state: MediaState::parse(&self.state),
            content_type: self.content_type,
            size: super::to_u64(self.size),
            sha256: self.sha256,
            filename: self.filename,
            width: dimension(self.width),
            height: dimension(self.height),
            duration_ms: self.duration_ms.map(super::to_u64),
            thumbnails: self
                .thumbnails
                .as_deref()
                .map(ThumbnailView::decode_list)
                .unwrap_or_default(),
            created_at_ms: self.created_at_ms,
            expires_at_ms: self.expires_at_ms,
        }
    }
}

/// The thumbnails as stored (JSON), `None` when there are none.
pub(crate) fn encode_thumbnails(thumbnails: &[ThumbnailView]) -> Option<String> {
    (!thumbnails.is_empty()).then(|| ThumbnailView::encode_list(thumbnails))
}

/// Checks that `size` more bytes fit `quota` next to the `used` ones.
pub(crate) fn check_quota(used: u64, size: u64, quota: u64) -> StoreResult<()> {
    if used.saturating_add(size) > quota {
        return Err(quota_refusal(quota));
    }
    Ok(())
}

/// Why an upload does not fit its owner's quota.
pub(crate) fn quota_refusal(quota: u64) -> StoreError {
    StoreError::TooLarge(format!(
        "this upload would pass your storage quota of {quota} bytes"
    ))
}

/// Checks the media part of a send's shape: a media kind names exactly one
/// media item (its text is an optional caption); other kinds name none.
pub(crate) fn check_shape(new: &NewMessage) -> StoreResult<()> {
    if new.kind.is_media() {
        if new.media.len() != 1 {
            return Err(StoreError::Invalid(
                "a media message names exactly one media item".into(),
            ));
        }
        if new.target_seq.is_some() || new.emoji.is_some() {
            return Err(StoreError::Invalid(
                "a media message takes no target_seq or emoji".into(),
            ));
        }
    } else if !new.media.is_empty() {
        return Err(StoreError::Invalid(
            "only image, video, audio and file messages carry media".into(),
        ));
    }
    Ok(())
}

/// Decides whether `sender` may put `media` (as read in the message's
/// transaction) in a message of `kind`: it must be ready, and be the
/// sender's own upload or visible to the sender (a forward, `sees` says
/// whether a message the sender may see references it); an image message
/// needs an image, and so on (`file` takes anything). Unknown and
/// invisible media are alike: `not_found`.
pub(crate) fn check_attach(
    kind: MessageKind,
    sender: UserId,
    media: Option<&MediaRecord>,
    sees: bool,
) -> StoreResult<MediaInfo> {
    let Some(media) = media.filter(|m| m.owner == sender || sees) else {
        return Err(StoreError::NotFound("media"));
    };
    if media.state != MediaState::Ready {
        return Err(StoreError::Invalid(
            "the media is not ready: complete its upload first".into(),
        ));
    }
    let family = match kind {
        MessageKind::Image => Some("image/"),
        MessageKind::Video => Some("video/"),
        MessageKind::Audio => Some("audio/"),
        _ => None,
    };
    if let Some(family) = family
        && !media.content_type.starts_with(family)
    {
        return Err(StoreError::Invalid(format!(
            "a {} message needs {family}* media, not {}",
            kind.as_str(),
            media.content_type
        )));
    }
    Ok(media.info())
}

/// What an avatar change names: `None` removes the avatar (`""`); a
/// string that is not a media id names no media (`MediaId::UNKNOWN`,
/// which [`check_avatar`] refuses as `not_found`, as for any unknown id).
pub(crate) fn avatar_target(id: &str) -> Option<MediaId> {
    (!id.is_empty()).then(|| id.parse().unwrap_or(MediaId::UNKNOWN))
}

/// Decides whether `media` (as read where the change is made) may become
/// an avatar set by `actor` (a user's own, or a group's by its admin): it
/// must be the actor's own upload, ready, and an image. Someone else's
/// media and unknown ids are alike: `not_found`. Engines then take it off
/// the orphan list (an avatar is a reference: the collector never takes
/// it) and release the avatar it replaces.
pub(crate) fn check_avatar(actor: UserId, media: Option<&MediaRecord>) -> StoreResult<()> {
    let Some(media) = media.filter(|m| m.owner == actor) else {
        return Err(StoreError::NotFound("media"));
    };
    if media.state != MediaState::Ready {
        return Err(StoreError::Invalid(
            "the media is not ready: complete its upload first".into(),
        ));
    }
    if !media.content_type.starts_with("image/") {
        return Err(StoreError::Invalid(format!(
            "an avatar is an image, not {}",
            media.content_type
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(owner: i64, content_type: &str) -> MediaRecord {
        MediaRow {
            id: 1,
            owner_id: owner,
            state: "ready".into(),
            content_type: content_type.into(),
            size: 10,
            ..MediaRow::default()
        }
        .into_record()
    }

    #[test]
    fn media_messages_name_exactly_one_item() {
        let mut new = NewMessage {
            kind: MessageKind::Image,
            ..NewMessage::default()
        };
        assert!(check_shape(&new).is_err());
        new.media = vec![MediaId(1)];
        assert!(check_shape(&new).is_ok());
        new.media.push(MediaId(2));
        assert!(check_shape(&new).is_err());
        new.kind = MessageKind::Text;
        new.media = vec![MediaId(1)];
        assert!(check_shape(&new).is_err());
    }

    #[test]
    fn attach_needs_ready_visible_media_of_the_kind() {
        let sender = UserId(1);
        let own = ready(1, "image/png");
        assert!(check_attach(MessageKind::Image, sender, Some(&own), false).is_ok());
        assert!(check_attach(MessageKind::File, sender, Some(&own), false).is_ok());
        assert!(matches!(
            check_attach(MessageKind::Audio, sender, Some(&own), false),
            Err(StoreError::Invalid(_))
        ));
        let theirs = ready(2, "image/png");
        assert!(matches!(
            check_attach(MessageKind::Image, sender, Some(&theirs), false),
            Err(StoreError::NotFound(_))
        ));
        assert!(check_attach(MessageKind::Image, sender, Some(&theirs), true).is_ok());
        let pending = MediaRecord {
            state: MediaState::Pending,
            ..own
        };
        assert!(matches!(
            check_attach(MessageKind::Image, sender, Some(&pending), false),
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(
            check_attach(MessageKind::Image, sender, None, true),
            Err(StoreError::NotFound(_))
        ));
    }

    #[test]
    fn avatars_are_the_actors_own_ready_images() {
        let actor = UserId(1);
        assert_eq!(avatar_target(""), None);
        assert_eq!(avatar_target("f7"), Some(MediaId(7)));
        assert_eq!(avatar_target("md7"), Some(MediaId::UNKNOWN));
        assert!(check_avatar(actor, Some(&ready(1, "image/png"))).is_ok());
        for (media, why) in [
            (None, "unknown"),
            (Some(ready(2, "image/png")), "someone else's"),
        ] {
            assert!(
                matches!(
                    check_avatar(actor, media.as_ref()),
                    Err(StoreError::NotFound(_))
                ),
                "{why}"
            );
        }
        let pending = MediaRecord {
            state: MediaState::Pending,
            ..ready(1, "image/png")
        };
        for media in [pending, ready(1, "application/pdf")] {
            assert!(matches!(
                check_avatar(actor, Some(&media)),
                Err(StoreError::Invalid(_))
            ));
        }
    }
}
