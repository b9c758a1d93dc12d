//! Conformance of protocol part 2 on both engines: message events (edit,
//! delete, reaction; windows, admin delete, purge, aggregated state,
//! idempotency), replies and their quotes, search visibility, per-user
//! conversation settings, left conversations, blocks and profiles; push
//! registrations, the VAPID secret and pending pushes (§12).
//!
//! Like `conformance.rs`, every check runs on SQLite and on PostgreSQL (a
//! fresh database per test; skipped when unreachable unless `CI=true`).

mod support;

use std::sync::Arc;

use parley_proto::api::ConversationSettings;
use parley_proto::{ConversationId, DeviceId, Message, MessageKind, ReceiptStatus, UserId};
use parley_store::*;
use support::fixtures::{device, user};

enum Backend {
    Sqlite(tempfile::TempDir),
    Postgres(support::TestDatabase),
}

impl Backend {
    fn config(&self) -> StoreConfig {
        match self {
            Backend::Sqlite(dir) => support::fixtures::sqlite_config(dir.path()),
            Backend::Postgres(db) => db.config(),
        }
    }

    async fn open(&self) -> (Arc<dyn Store>, CommitReceiver) {
        parley_store::open(&self.config())
            .await
            .expect("open store")
    }
}

fn send(
    conversation: ConversationId,
    (sender, device): (UserId, DeviceId),
    key: &str,
) -> NewMessage {
    NewMessage {
        conversation_id: conversation,
        sender_id: sender,
        sender_device_id: device,
        client_msg_id: key.into(),
        ..NewMessage::default()
    }
}

fn text(
    conversation: ConversationId,
    who: (UserId, DeviceId),
    key: &str,
    text: &str,
) -> NewMessage {
    NewMessage {
        text: text.into(),
        ..send(conversation, who, key)
    }
}

fn event(
    conversation: ConversationId,
    who: (UserId, DeviceId),
    key: &str,
    kind: MessageKind,
    target: u64,
) -> NewMessage {
    NewMessage {
        kind,
        target_seq: Some(target),
        ..send(conversation, who, key)
    }
}

fn edit(
    conversation: ConversationId,
    who: (UserId, DeviceId),
    key: &str,
    target: u64,
    new: &str,
) -> NewMessage {
    NewMessage {
        text: new.into(),
        ..event(conversation, who, key, MessageKind::Edit, target)
    }
}

fn react(
    conversation: ConversationId,
    who: (UserId, DeviceId),
    key: &str,
    target: u64,
    emoji: &str,
) -> NewMessage {
    NewMessage {
        emoji: Some(emoji.into()),
        ..event(conversation, who, key, MessageKind::Reaction, target)
    }
}

async fn history(store: &dyn Store, conversation: ConversationId, viewer: UserId) -> Vec<Message> {
    store
        .history(HistoryQuery {
            conversation,
            viewer,
            before_seq: None,
            after_seq: None,
            limit: 100,
        })
        .await
        .unwrap()
        .0
}

fn at(messages: &[Message], seq: u64) -> &Message {
    messages
        .iter()
        .find(|m| m.seq == seq)
        .expect("seq in history")
}

async fn person(store: &dyn Store, name: &str) -> (UserId, DeviceId) {
    let id = user(store, name).await;
    (id, device(store, id).await)
}

async fn group(store: &dyn Store, creator: UserId, members: &[UserId]) -> ConversationRecord {
    store
        .create_group(NewGroup {
            creator,
            name: "friends".into(),
            member_ids: members.to_vec(),
            max_members: 1024,
            now_ms: 1,
        })
        .await
        .unwrap()
}

async fn search(
    store: &dyn Store,
    viewer: UserId,
    q: &str,
    conversation: Option<ConversationId>,
) -> Vec<String> {
    store
        .search(SearchQuery {
            viewer,
            text: q.into(),
            conversation,
            before_seq: None,
            before_id: None,
            limit: 50,
        })
        .await
        .unwrap()
        .0
        .into_iter()
        .map(|m| m.text.unwrap_or_default())
        .collect()
}

async fn events_change_their_target(backend: &Backend) {
    let (store, _events) = backend.open().await;
    let store = &*store;
    let alice = person(store, "alice").await;
    let bob = person(store, "bob").await;
    let (direct, _) = store.get_or_create_direct(alice.0, bob.0, 1).await.unwrap();
    let c = direct.id;
    let first = store
        .append_message(text(c, alice, "t1", "hello"))
        .await
        .unwrap();
    assert_eq!(first.message.seq, 1);
    // Reactions: one per member, aggregated by emoji on the target.
    let r1 = store
        .append_message(react(c, bob, "r1", 1, "👍"))
        .await
        .unwrap();
    assert_eq!(
        (r1.message.seq, r1.message.kind),
        (2, MessageKind::Reaction)
    );
    store
        .append_message(react(c, alice, "r2", 1, "❤️"))
        .await
        .unwrap();
    store
        .append_message(react(c, bob, "r3", 1, "❤️"))
        .await
        .unwrap();
    let page = history(store, c, bob.0).await;
    let target = at(&page, 1);
    assert_eq!(target.reactions.len(), 1);
    assert_eq!(target.reactions[0].emoji, "❤️");
    assert_eq!(target.reactions[0].user_ids, vec![alice.0, bob.0]);
    assert_eq!(at(&page, 2).target_seq, Some(1));
    // Edits: the sender's, in the window; the target carries the new text.
    let edited = store
        .append_message(edit(c, alice, "e1", 1, "hello again"))
        .await
        .unwrap();
    assert_eq!(edited.message.seq, 5);
    let page = history(store, c, bob.0).await;
    assert_eq!(at(&page, 1).text.as_deref(), Some("hello again"));
    assert!(at(&page, 1).edited_at_ms.is_some());
    assert_eq!(at(&page, 5).text.as_deref(), Some("hello again"));
    // Refusals: someone else's edit, an event at an event, unknown target.
    let err = store
        .append_message(edit(c, bob, "e2", 1, "mine"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Forbidden(_)), "{err:?}");
    let err = store
        .append_message(react(c, bob, "r4", 2, "👍"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    let err = store
        .append_message(react(c, bob, "r5", 99, "👍"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    let err = store
        .append_message(react(c, bob, "r6", 1, "👍👍"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    let err = store
        .append_message(event(c, bob, "d0", MessageKind::Delete, 1))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Forbidden(_)), "{err:?}");
    // Idempotency of every kind: a repeat answers with the original.
    for (new, seq) in [
        (react(c, bob, "r1", 1, "😮"), 2),
        (edit(c, alice, "e1", 1, "other"), 5),
    ] {
        let repeat = store.append_message(new).await.unwrap();
        assert!(repeat.duplicate);
        assert_eq!(repeat.message.seq, seq);
    }
    // Delete for everyone: a tombstone with seq, sender and time only.
    let deleted = store
        .append_message(event(c, alice, "d1", MessageKind::Delete, 1))
        .await
        .unwrap();
    assert_eq!(deleted.message.seq, 6);
    let repeat = store
        .append_message(event(c, alice, "d1", MessageKind::Delete, 1))
        .await
        .unwrap();
    assert!(repeat.duplicate && repeat.message.seq == 6);
    let page = history(store, c, bob.0).await;
    let tombstone = at(&page, 1);
    assert!(tombstone.deleted);
    assert_eq!(
        (tombstone.text.as_deref(), tombstone.sender_id),
        (None, alice.0)
    );
    assert!(tombstone.reactions.is_empty() && tombstone.edited_at_ms.is_none());
    assert_eq!(at(&page, 5).text, None, "earlier edits are purged");
    let err = store
        .append_message(edit(c, alice, "e3", 1, "back"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Forbidden(_)), "{err:?}");
    // Events never count as unread, nor become the last message.
    // Bob's reactions moved his own cursor to seq 4; alice's edit and
    // delete after it are events, so nothing is unread.
    let list = store.conversations_for(bob.0).await.unwrap();
    assert_eq!(list[0].unread_count, 0, "events are never unread");
    assert_eq!(list[0].last_message.as_ref().map(|m| m.seq), Some(1));
    let list = store.conversations_for(alice.0).await.unwrap();
    assert_eq!(list[0].unread_count, 0, "bob sent only reactions");
    store.shutdown().await;
}

async fn windows_and_admin_delete(backend: &Backend) {
    let (store, _events) = backend.open().await;
    let store = &*store;
    let alice = person(store, "alice").await;
    let bob = person(store, "bob").await;
    let carol = person(store, "carol").await;
    let g = group(store, alice.0, &[bob.0, carol.0]).await.id;
    // seq 1 is the `created` system message.
    store
        .append_message(text(g, bob, "b1", "from bob"))
        .await
        .unwrap();
    let closed = EventWindows {
        edit_ms: -1,
        delete_ms: -1,
    };
    let late = |mut new: NewMessage| {
        new.windows = closed;
        new
    };
    let err = store
        .append_message(late(edit(g, bob, "e1", 2, "x")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Forbidden(_)),
        "edit window: {err:?}"
    );
    let err = store
        .append_message(late(event(g, bob, "d1", MessageKind::Delete, 2)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Forbidden(_)),
        "delete window: {err:?}"
    );
    let err = store
        .append_message(event(g, carol, "d2", MessageKind::Delete, 2))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Forbidden(_)), "a member: {err:?}");
    let err = store
        .append_message(event(g, alice, "d3", MessageKind::Delete, 1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Forbidden(_)),
        "system message: {err:?}"
    );
    // A group admin may delete any message at any time.
    store
        .append_message(late(event(g, alice, "d4", MessageKind::Delete, 2)))
        .await
        .unwrap();
    assert!(at(&history(store, g, carol.0).await, 2).deleted);
    store.shutdown().await;
}

async fn replies_quote_what_the_viewer_sees(backend: &Backend) {
    let (store, mut events) = backend.open().await;
    let store = &*store;
    let alice = person(store, "alice").await;
    let bob = person(store, "bob").await;
    let carol = person(store, "carol").await;
    let g = group(store, alice.0, &[bob.0]).await.id;
    store
        .append_message(text(g, alice, "t1", &"long ".repeat(100)))
        .await
        .unwrap();
    store
        .change_group(GroupChange {
            conversation: g,
            actor: alice.0,
            kind: GroupChangeKind::Add {
                users: vec![carol.0],
            },
            max_members: 1024,
            now_ms: 2,
        })
        .await
        .unwrap();
    let reply = store
        .append_message(NewMessage {
            reply_to_seq: Some(2),
            forwarded: true,
            media: Vec::new(),
            ..text(g, bob, "re", "answer")
        })
        .await
        .unwrap();
    assert!(reply.message.forwarded);
    // Carol joined after seq 2: the one live frame carries no quote.
    assert!(reply.message.reply_to.is_none());
    while let Ok(event) = events.try_recv() {
        if let Committed::Message { message, .. } = event {
            assert!(message.reply_to.is_none() || message.seq != reply.message.seq);
        }
    }
    let for_bob = history(store, g, bob.0).await;
    let quote = at(&for_bob, reply.message.seq)
        .reply_to
        .clone()
        .expect("bob sees the quote");
    assert_eq!(
        (quote.seq, quote.sender_id, quote.deleted),
        (2, alice.0, false)
    );
    assert_eq!(quote.text.unwrap().chars().count(), 200);
    let for_carol = history(store, g, carol.0).await;
    assert!(
        at(&for_carol, reply.message.seq).reply_to.is_none(),
        "no leak to carol"
    );
    // A reply to an event is refused.
    let reaction = store
        .append_message(react(g, bob, "r", 2, "👍"))
        .await
        .unwrap();
    let err = store
        .append_message(NewMessage {
            reply_to_seq: Some(reaction.message.seq),
            ..text(g, bob, "re2", "?")
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    // A deleted target quotes as deleted.
    store
        .append_message(event(g, alice, "d", MessageKind::Delete, 2))
        .await
        .unwrap();
    let quote = at(&history(store, g, bob.0).await, reply.message.seq)
        .reply_to
        .clone()
        .unwrap();
    assert!(quote.deleted && quote.text.is_none());
    store.shutdown().await;
}

async fn search_follows_visibility(backend: &Backend) {
    let (store, _events) = backend.open().await;
    let store = &*store;
    let alice = person(store, "alice").await;
    let bob = person(store, "bob").await;
    let carol = person(store, "carol").await;
    let dave = person(store, "dave").await;
    let g = group(store, alice.0, &[bob.0, carol.0]).await.id;
    for (key, body) in [
        ("m1", "Meet me at the cafe tomorrow"),
        ("m2", "我们明天在咖啡馆见面"),
        ("m3", "Привет, как дела?"),
        ("m4", "100% sure_thing"),
    ] {
        store
            .append_message(text(g, alice, key, body))
            .await
            .unwrap();
    }
    assert_eq!(
        search(store, bob.0, "MEET", None).await,
        ["Meet me at the cafe tomorrow"]
    );
    assert_eq!(
        search(store, bob.0, "咖啡馆", None).await,
        ["我们明天在咖啡馆见面"]
    );
    assert_eq!(
        search(store, bob.0, "咖啡", Some(g)).await,
        ["我们明天在咖啡馆见面"],
        "short: scan"
    );
    assert_eq!(
        search(store, bob.0, "как", None).await,
        ["Привет, как дела?"]
    );
    assert_eq!(
        search(store, bob.0, "0% s", None).await,
        ["100% sure_thing"]
    );
    assert!(
        search(store, bob.0, "%", None).await.len() == 1,
        "wildcards are literal"
    );
    assert!(
        search(store, dave.0, "Meet", None).await.is_empty(),
        "an outsider"
    );
    assert!(search(store, dave.0, "Meet", Some(g)).await.is_empty());
    // Edits match by current text only; deletes match nothing.
    store
        .append_message(edit(g, alice, "e1", 2, "See you at noon"))
        .await
        .unwrap();
    assert!(search(store, bob.0, "tomorrow", None).await.is_empty());
    assert_eq!(
        search(store, bob.0, "noon", None).await,
        ["See you at noon"]
    );
    store
        .append_message(event(g, alice, "d1", MessageKind::Delete, 3))
        .await
        .unwrap();
    assert!(search(store, bob.0, "咖啡馆", None).await.is_empty());
    // A removed member finds what it saw, nothing after its removal.
    store
        .change_group(GroupChange {
            conversation: g,
            actor: alice.0,
            kind: GroupChangeKind::Remove { user: carol.0 },
            max_members: 1024,
            now_ms: 3,
        })
        .await
        .unwrap();
    store
        .append_message(text(g, alice, "m5", "noon after carol"))
        .await
        .unwrap();
    assert_eq!(search(store, bob.0, "noon", None).await.len(), 2);
    assert_eq!(
        search(store, carol.0, "noon", None).await,
        ["See you at noon"]
    );
    // Newest first, with keyset paging.
    let page = store
        .search(SearchQuery {
            viewer: bob.0,
            text: "noon".into(),
            conversation: None,
            before_seq: None,
            before_id: None,
            limit: 1,
        })
        .await
        .unwrap();
    assert!(page.1);
    assert_eq!(page.0[0].text.as_deref(), Some("noon after carol"));
    let next = store
        .search(SearchQuery {
            viewer: bob.0,
            text: "noon".into(),
            conversation: Some(g),
            before_seq: Some(page.0[0].seq),
            before_id: None,
            limit: 1,
        })
        .await
        .unwrap();
    assert_eq!(next.0[0].text.as_deref(), Some("See you at noon"));
    assert!(!next.1);
    let bad = store
        .search(SearchQuery {
            viewer: bob.0,
            text: String::new(),
            conversation: None,
            before_seq: None,
            before_id: None,
            limit: 1,
        })
        .await;
    assert!(matches!(bad, Err(StoreError::Invalid(_))));
    store.shutdown().await;
}

/// Every page of a search, paged with `before_id` (or `before_seq`
/// within one conversation) at `limit` per page: the texts and whether
/// the last page said there was more.
async fn all_pages(
    store: &dyn Store,
    viewer: UserId,
    q: &str,
    conversation: Option<ConversationId>,
    limit: usize,
) -> Vec<String> {
    let mut texts = Vec::new();
    let (mut before_id, mut before_seq) = (None, None);
    loop {
        let (page, more) = store
            .search(SearchQuery {
                viewer,
                text: q.into(),
                conversation,
                before_seq,
                before_id,
                limit,
            })
            .await
            .unwrap();
        assert!(page.len() <= limit);
        assert!(!more || page.len() == limit, "more only after a full page");
        if let Some(last) = page.last() {
            match conversation {
                Some(_) => before_seq = Some(last.seq),
                None => before_id = Some(last.message_id.0),
            }
        }
        texts.extend(page.into_iter().map(|m| m.text.unwrap_or_default()));
        if !more {
            return texts;
        }
    }
}

/// Search runs newest first in windows (`domain::search`): matches in
/// the first small window, in the next ones and far older than all of
/// them (in the last window), among messages of a conversation the viewer
/// is not in, come out exactly as one query over everything would give
/// them, on every page size, indexed and scanned, across conversations
/// and within one.
async fn search_windows_keep_results_and_paging(backend: &Backend) {
    let (store, _events) = backend.open().await;
    let store = &*store;
    let alice = person(store, "alice").await;
    let bob = person(store, "bob").await;
    let carol = person(store, "carol").await;
    let g = group(store, alice.0, &[bob.0]).await.id;
    let (other, _) = store
        .get_or_create_direct(alice.0, carol.0, 1)
        .await
        .unwrap();
    // More messages than the small windows hold (5,376 ids), one in three
    // in a conversation bob is not in.
    const TOTAL: usize = 6_000;
    let needles = [3, 40, 2_000, 5_200, 5_950, 5_990, 5_994, 5_997, 5_999];
    let mut expected = Vec::new();
    for chunk in (0..TOTAL).collect::<Vec<_>>().chunks(500) {
        let sends = chunk.iter().map(|&i| {
            let conversation = if i % 3 == 0 { other.id } else { g };
            let body = if needles.contains(&i) {
                format!("Needle zq {i}")
            } else {
                format!("filler message {i}")
            };
            store.append_message(text(conversation, alice, &format!("w{i}"), &body))
        });
        for appended in futures_util::future::join_all(sends).await {
            let message = appended.unwrap().message;
            if message.conversation_id == g
                && message.text.as_deref().unwrap().starts_with("Needle")
            {
                expected.push((message.message_id.0, message.text.unwrap()));
            }
        }
    }
    expected.sort_by_key(|e| std::cmp::Reverse(e.0));
    let expected: Vec<String> = expected.into_iter().map(|(_, t)| t).collect();
    assert_eq!(
        expected.len(),
        6,
        "needles 40, 2000, 5200, 5950, 5990, 5999"
    );
    for q in ["needle", "zq"] {
        for limit in [1, 2, 4, 50] {
            assert_eq!(
                all_pages(store, bob.0, q, None, limit).await,
                expected,
                "{q} by {limit}"
            );
            assert_eq!(
                all_pages(store, bob.0, q, Some(g), limit).await,
                expected,
                "{q} by {limit} in the group"
            );
        }
        assert!(
            all_pages(store, bob.0, q, Some(other.id), 2)
                .await
                .is_empty()
        );
        assert_eq!(all_pages(store, carol.0, q, None, 50).await.len(), 3);
    }
    store.shutdown().await;
}

/// Captions of media messages (§8, §9) are searched like text: found by
/// any substring (indexed and scanned), by their current text after an
/// edit, never after a delete, and only by who may see them.
async fn search_finds_captions(backend: &Backend) {
    let (store, _events) = backend.open().await;
    let store = &*store;
    let alice = person(store, "alice").await;
    let bob = person(store, "bob").await;
    let dave = person(store, "dave").await;
    let g = group(store, alice.0, &[bob.0]).await.id;
    let mut sent = Vec::new();
    let mut uploaded = Vec::new();
    for (i, (kind, content_type, caption)) in [
        (
            MessageKind::Image,
            "image/png",
            "Sunset over the bay 海边日落",
        ),
        (MessageKind::File, "application/pdf", "Quarterly report"),
        (MessageKind::Image, "image/png", ""),
    ]
    .into_iter()
    .enumerate()
    {
        let media = store
            .create_media(slot(alice.0, content_type, 10, 1_000))
            .await
            .unwrap();
        store
            .complete_media(
                media.id,
                MediaVerified {
                    content_type: content_type.into(),
                    now_ms: 1_500,
                    ..MediaVerified::default()
                },
            )
            .await
            .unwrap();
        let message = store
            .append_message(NewMessage {
                text: caption.into(),
                ..media_message(g, alice, &format!("c{i}"), kind, media.id)
            })
            .await
            .unwrap()
            .message;
        sent.push(message.seq);
        uploaded.push(media.id);
    }
    store
        .append_message(text(g, alice, "t1", "a sunset in text"))
        .await
        .unwrap();
    assert_eq!(
        search(store, bob.0, "SUNSET", None).await,
        ["a sunset in text", "Sunset over the bay 海边日落"]
    );
    assert_eq!(
        search(store, bob.0, "海边", Some(g)).await,
        ["Sunset over the bay 海边日落"],
        "short: scan"
    );
    assert_eq!(
        search(store, bob.0, "report", None).await,
        ["Quarterly report"]
    );
    assert!(search(store, dave.0, "report", None).await.is_empty());
    let found = store
        .search(SearchQuery {
            viewer: bob.0,
            text: "bay".into(),
            conversation: None,
            before_seq: None,
            before_id: None,
            limit: 5,
        })
        .await
        .unwrap()
        .0;
    assert_eq!(found[0].kind, MessageKind::Image);
    assert_eq!(found[0].media.len(), 1);
    // A caption edit changes what matches; a delete removes it.
    store
        .append_message(edit(g, alice, "e1", sent[1], "Annual summary"))
        .await
        .unwrap();
    assert!(search(store, bob.0, "report", None).await.is_empty());
    assert_eq!(
        search(store, bob.0, "summary", None).await,
        ["Annual summary"]
    );
    store
        .append_message(event(g, alice, "d1", MessageKind::Delete, sent[0]))
        .await
        .unwrap();
    assert_eq!(
        search(store, bob.0, "sunset", None).await,
        ["a sunset in text"]
    );
    assert!(search(store, bob.0, "海边", None).await.is_empty());
    // Erasing the sender (§14) ends its media messages as a delete does:
    // captions gone from search and history, media references dropped so
    // the collector takes the files.
    store.erase_user(alice.0, 2_000).await.unwrap();
    assert!(search(store, bob.0, "summary", None).await.is_empty());
    assert!(search(store, bob.0, "sunset", None).await.is_empty());
    let (history, _) = store
        .history(HistoryQuery {
            conversation: g,
            viewer: bob.0,
            before_seq: None,
            after_seq: None,
            limit: 50,
        })
        .await
        .unwrap();
    for seq in &sent {
        let message = history.iter().find(|m| m.seq == *seq).unwrap();
        assert!(message.deleted, "{message:?}");
        assert_eq!(message.text, None);
        assert!(message.media.is_empty());
    }
    let mut collected = store.claim_media_garbage(i64::MAX / 2, 100).await.unwrap();
    collected.sort();
    let mut expected = uploaded.clone();
    expected.sort();
    assert_eq!(collected, expected);
    store.shutdown().await;
}

async fn settings_left_and_blocks(backend: &Backend) {
    let (store, mut events) = backend.open().await;
    let store = &*store;
    let alice = person(store, "alice").await;
    let bob = person(store, "bob").await;
    let carol = person(store, "carol").await;
    let (direct, _) = store.get_or_create_direct(alice.0, bob.0, 1).await.unwrap();
    let g = group(store, alice.0, &[bob.0]).await.id;
    store
        .append_message(text(g, alice, "g1", "latest"))
        .await
        .unwrap();
    // Mute, pin, archive: per user; pinned first.
    let settings = store
        .set_conversation_settings(
            bob.0,
            direct.id,
            SettingsChange {
                muted_until_ms: Some(-1),
                pinned: Some(true),
                ..SettingsChange::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        settings,
        ConversationSettings {
            muted_until_ms: -1,
            pinned: true,
            archived: false
        }
    );
    let list = store.conversations_for(bob.0).await.unwrap();
    assert_eq!(list[0].conversation.id, direct.id, "pinned first");
    assert_eq!(list[0].settings, settings);
    let alices = store.conversations_for(alice.0).await.unwrap();
    assert_eq!(alices[0].conversation.id, g, "alice pinned nothing");
    assert!(!alices[1].settings.pinned);
    let archived = store
        .set_conversation_settings(
            bob.0,
            g,
            SettingsChange {
                archived: Some(true),
                ..SettingsChange::default()
            },
        )
        .await
        .unwrap();
    assert!(archived.archived && !archived.pinned);
    let err = store
        .set_conversation_settings(carol.0, g, SettingsChange::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Forbidden(_)), "{err:?}");
    let err = store
        .set_conversation_settings(carol.0, ConversationId(9999), SettingsChange::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    let err = store
        .set_conversation_settings(
            bob.0,
            g,
            SettingsChange {
                muted_until_ms: Some(-5),
                ..SettingsChange::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    // Leaving: still listed, marked, nothing after the departure.
    store
        .change_group(GroupChange {
            conversation: g,
            actor: bob.0,
            kind: GroupChangeKind::Remove { user: bob.0 },
            max_members: 1024,
            now_ms: 3,
        })
        .await
        .unwrap();
    store
        .append_message(text(g, alice, "g2", "after bob left"))
        .await
        .unwrap();
    let list = store.conversations_for(bob.0).await.unwrap();
    let left = list.iter().find(|s| s.conversation.id == g).unwrap();
    assert!(left.left && left.conversation.members.is_empty());
    assert_eq!(left.conversation.last_seq, 3, "its departure");
    assert_ne!(
        left.last_message
            .as_ref()
            .and_then(|m| m.text.clone())
            .as_deref(),
        Some("after bob left")
    );
    assert!(left.settings.archived, "settings survive leaving");
    assert_eq!(history(store, g, bob.0).await.len(), 3);
    // Blocks: bob cannot send into the direct conversation; alice can.
    store.set_block(alice.0, bob.0, true, 5).await.unwrap();
    store.set_block(alice.0, bob.0, true, 6).await.unwrap();
    assert_eq!(store.blocks(alice.0).await.unwrap(), vec![bob.0]);
    let err = store
        .append_message(text(direct.id, bob, "b1", "hi"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Forbidden(_)), "{err:?}");
    store
        .append_message(text(direct.id, alice, "a1", "hi"))
        .await
        .unwrap();
    assert!(store.get_or_create_direct(bob.0, alice.0, 7).await.is_ok());
    let g2 = group(store, alice.0, &[bob.0]).await.id;
    store
        .append_message(text(g2, bob, "b2", "groups unaffected"))
        .await
        .unwrap();
    assert!(matches!(
        store.set_block(alice.0, alice.0, true, 1).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.set_block(alice.0, UserId(9999), true, 1).await,
        Err(StoreError::NotFound(_))
    ));
    store.set_block(alice.0, bob.0, false, 8).await.unwrap();
    assert!(store.blocks(alice.0).await.unwrap().is_empty());
    store
        .append_message(text(direct.id, bob, "b1", "hi again"))
        .await
        .unwrap();
    // Profiles and read receipts.
    let updated = store
        .update_profile(
            bob.0,
            ProfileChange {
                display_name: Some("  Bobby ".into()),
                read_receipts: Some(false),
                push_previews: Some(true),
                ..ProfileChange::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.display_name, "Bobby");
    assert!(!updated.read_receipts && updated.push_previews);
    let cleared = store
        .update_profile(
            bob.0,
            ProfileChange {
                avatar_media_id: Some(String::new()),
                ..ProfileChange::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (cleared.avatar_media_id, cleared.display_name.as_str()),
        (None, "Bobby")
    );
    assert!(matches!(
        store
            .update_profile(
                bob.0,
                ProfileChange {
                    display_name: Some(" ".into()),
                    ..ProfileChange::default()
                }
            )
            .await,
        Err(StoreError::Invalid(_))
    ));
    while events.try_recv().is_ok() {}
    store
        .append_message(text(direct.id, alice, "a2", "read me"))
        .await
        .unwrap();
    let change = store
        .advance_receipt(direct.id, bob.0, None, ReceiptStatus::Read, 99)
        .await
        .unwrap();
    assert!(change.read_hidden, "bob turned read receipts off");
    store.shutdown().await;
}

/// Delete for everyone leaves no trace of the text in storage: in SQLite
/// the database file itself (after a checkpoint), in PostgreSQL the live
/// rows (dead tuples wait for VACUUM; see docs/storage.md).
async fn delete_purges_storage(backend: &Backend) {
    let (store, _events) = backend.open().await;
    let alice = person(&*store, "alice").await;
    let bob = person(&*store, "bob").await;
    let (direct, _) = store.get_or_create_direct(alice.0, bob.0, 1).await.unwrap();
    let c = direct.id;
    let canary = "zebra-canary-7f3a9c";
    let edited = "okapi-canary-51d2e8";
    store
        .append_message(text(c, alice, "t", &format!("secret {canary} text")))
        .await
        .unwrap();
    store
        .append_message(edit(c, alice, "e", 1, &format!("then {edited}")))
        .await
        .unwrap();
    store
        .append_message(event(c, alice, "d", MessageKind::Delete, 1))
        .await
        .unwrap();
    store.shutdown().await;
    drop(store);
    match backend {
        Backend::Sqlite(dir) => {
            let path = dir.path().join("parley.db");
            {
                let conn = rusqlite::Connection::open(&path).unwrap();
                conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                    .unwrap();
            }
            for entry in std::fs::read_dir(dir.path()).unwrap() {
                let file = entry.unwrap().path();
                let bytes = std::fs::read(&file).unwrap();
                for needle in [canary, edited] {
                    assert!(
                        !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                        "{needle} found in {}",
                        file.display()
                    );
                }
            }
        }
        Backend::Postgres(db) => {
            let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(connection);
            for needle in [canary, edited] {
                let pattern = format!("%{needle}%");
                let found: i64 = client
                    .query_one(
                        "SELECT COUNT(*) FROM messages WHERE text LIKE $1 OR reactions LIKE $1",
                        &[&pattern],
                    )
                    .await
                    .unwrap()
                    .get(0);
                assert_eq!(found, 0, "{needle}");
            }
        }
    }
}

/// Sends, forwards, replies and events called back to back (so one batch
/// may hold them all, mixing PostgreSQL's set-based run of plain sends with
/// the per-op path of events and replies) keep their order, and the
/// conversation list skips the events.
async fn mixed_batches_keep_order(backend: &Backend) {
    let (store, _events) = backend.open().await;
    let store = &*store;
    let alice = person(store, "alice").await;
    let bob = person(store, "bob").await;
    let (direct, _) = store.get_or_create_direct(alice.0, bob.0, 1).await.unwrap();
    let c = direct.id;
    let pending = vec![
        store.append_message(text(c, alice, "t1", "hello")),
        store.append_message(react(c, bob, "r1", 1, "👍")),
        store.append_message(NewMessage {
            forwarded: true,
            media: Vec::new(),
            ..text(c, alice, "t2", "passed on")
        }),
        store.append_message(NewMessage {
            reply_to_seq: Some(1),
            ..text(c, alice, "t3", "answer")
        }),
        store.append_message(text(c, alice, "t4", "newest")),
        store.append_message(edit(c, alice, "e1", 1, "hello again")),
        store.append_message(text(c, alice, "t1", "hello")),
    ];
    let mut answers = Vec::new();
    for append in pending {
        answers.push(append.await.unwrap());
    }
    let seqs: Vec<u64> = answers.iter().map(|a| a.message.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6, 1]);
    assert!(answers[6].duplicate);
    assert_eq!(answers[3].message.reply_to.as_ref().map(|q| q.seq), Some(1));
    let page = history(store, c, bob.0).await;
    assert_eq!(at(&page, 1).text.as_deref(), Some("hello again"));
    assert_eq!(at(&page, 1).reactions.len(), 1);
    assert!(at(&page, 3).forwarded);
    assert_eq!(at(&page, 4).reply_to_seq, Some(1));
    let list = store.conversations_for(bob.0).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].last_message.as_ref().map(|m| m.seq), Some(5));
    // Bob's reaction (seq 2) moved his own cursors past seq 1: alice's 3, 4
    // and 5 are unread, her edit is not counted.
    assert_eq!(list[0].unread_count, 3);
}

/// Administration (§14): the user list pages and searches, disabling
/// refuses logins and revokes devices, a password reset revokes devices,
/// erasure leaves nothing that identifies the person and frees the name,
/// and stats count what is there.
async fn administration(backend: &Backend) {
    let (store, _events) = backend.open().await;
    let store = &*store;
    let admin = store
        .create_user(NewUser {
            username: "root".into(),
            display_name: "Root".into(),
            password_hash: "$argon2id$fake".into(),
            now_ms: 1,
            is_admin: true,
        })
        .await
        .unwrap();
    assert!(admin.is_admin && admin.disabled_at_ms.is_none());
    let alice = person(store, "alice").await;
    let bob = person(store, "bob").await;
    let carol = person(store, "carol").await;
    assert!(!store.user_by_id(alice.0).await.unwrap().unwrap().is_admin);

    let list = |search: Option<&str>, after: Option<UserId>, limit| UserListQuery {
        search: search.map(str::to_owned),
        after,
        limit,
    };
    let names = |users: &[UserRecord]| -> Vec<String> {
        users.iter().map(|u| u.username.clone()).collect()
    };
    let (page, more) = store.list_users(list(None, None, 2)).await.unwrap();
    assert_eq!(
        (names(&page), more),
        (vec!["root".into(), "alice".into()], true)
    );
    let (page, more) = store
        .list_users(list(None, Some(page[1].id), 5))
        .await
        .unwrap();
    assert_eq!(
        (names(&page), more),
        (vec!["bob".into(), "carol".into()], false)
    );
    // Case-insensitive, over username and display name; `%` is literal.
    let (page, _) = store.list_users(list(Some("ARO"), None, 5)).await.unwrap();
    assert_eq!(names(&page), ["carol"]);
    let (page, _) = store.list_users(list(Some("oo"), None, 5)).await.unwrap();
    assert_eq!(names(&page), ["root"]);
    assert!(
        store
            .list_users(list(Some("%"), None, 5))
            .await
            .unwrap()
            .0
            .is_empty()
    );
    assert!(matches!(
        store.list_users(list(None, None, 0)).await,
        Err(StoreError::Invalid(_))
    ));

    // Disable: devices revoked, new logins refused; enable lets logins in
    // again but the old devices stay revoked.
    let (record, revoked) = store.set_user_disabled(bob.0, true, 50).await.unwrap();
    assert_eq!(record.disabled_at_ms, Some(50));
    assert_eq!(revoked, [bob.1]);
    assert!(store.revoked_devices().await.unwrap().contains(&bob.1));
    assert!(matches!(
        store.create_device(bob.0, "again".into(), 51).await,
        Err(StoreError::Forbidden(_))
    ));
    let (record, revoked) = store.set_user_disabled(bob.0, true, 52).await.unwrap();
    assert_eq!(
        (record.disabled_at_ms, revoked.len()),
        (Some(50), 0),
        "idempotent"
    );
    let (record, revoked) = store.set_user_disabled(bob.0, false, 53).await.unwrap();
    assert!(record.disabled_at_ms.is_none() && revoked.is_empty());
    let bob_again = store
        .create_device(bob.0, "again".into(), 54)
        .await
        .unwrap()
        .id;
    assert!(store.revoked_devices().await.unwrap().contains(&bob.1));

    // Password reset: the new hash, every device revoked.
    let revoked = store
        .set_password(carol.0, "$argon2id$new".into(), 60)
        .await
        .unwrap();
    assert_eq!(revoked, [carol.1]);
    assert_eq!(
        store
            .user_by_id(carol.0)
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "$argon2id$new"
    );

    // Erasure.
    let (direct, _) = store.get_or_create_direct(alice.0, bob.0, 1).await.unwrap();
    let canary = "quokka-canary-93be1";
    store
        .append_message(text(
            direct.id,
            (bob.0, bob_again),
            "b1",
            &format!("bob says {canary}"),
        ))
        .await
        .unwrap();
    store
        .append_message(edit(
            direct.id,
            (bob.0, bob_again),
            "b2",
            1,
            &format!("{canary} edited"),
        ))
        .await
        .unwrap();
    store
        .append_message(text(direct.id, alice, "a1", "alice stays"))
        .await
        .unwrap();
    store.set_block(alice.0, carol.0, true, 70).await.unwrap();
    store.set_block(bob.0, carol.0, true, 70).await.unwrap();
    store.set_block(carol.0, bob.0, true, 70).await.unwrap();
    store
        .set_conversation_settings(
            bob.0,
            direct.id,
            SettingsChange {
                pinned: Some(true),
                ..SettingsChange::default()
            },
        )
        .await
        .unwrap();
    let revoked = store.erase_user(bob.0, 80).await.unwrap();
    assert_eq!(revoked, [bob_again]);
    assert!(
        store.user_by_username("bob").await.unwrap().is_none(),
        "name freed"
    );
    let gone = store.user_by_id(bob.0).await.unwrap().unwrap();
    assert_eq!(gone.erased_at_ms, Some(80));
    assert!(gone.disabled_at_ms.is_some() && !gone.is_admin);
    assert!(gone.password_hash.is_empty() && gone.avatar_media_id.is_none());
    assert_ne!(gone.display_name, "BOB");
    assert!(store.devices(bob.0).await.unwrap().is_empty());
    assert!(store.blocks(bob.0).await.unwrap().is_empty());
    assert!(store.blocks(carol.0).await.unwrap().is_empty());
    assert_eq!(store.blocks(alice.0).await.unwrap(), [carol.0]);
    let page = history(store, direct.id, alice.0).await;
    assert!(at(&page, 1).deleted && at(&page, 1).text.is_none());
    assert_eq!(at(&page, 3).text.as_deref(), Some("alice stays"));
    assert!(search(store, alice.0, canary, None).await.is_empty());
    let list = store.conversations_for(bob.0).await.unwrap();
    assert!(list.iter().all(|c| !c.settings.pinned));
    assert!(matches!(
        store.erase_user(bob.0, 81).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.set_user_disabled(bob.0, false, 81).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.set_password(UserId(999_999), "x".into(), 81).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.create_device(bob.0, "x".into(), 82).await,
        Err(StoreError::Forbidden(_))
    ));
    // The name can be registered again, by someone else.
    let new_bob = user(store, "bob").await;
    assert_ne!(new_bob, bob.0);

    let stats = store.stats().await.unwrap();
    assert_eq!(
        stats,
        StoreStats {
            users: 4,
            disabled_users: 0,
            devices: 1,
            conversations: 1,
            messages: 2,
        }
    );
}

fn web_push(endpoint: &str) -> PushTarget {
    PushTarget::WebPush {
        unified: false,
        endpoint: endpoint.into(),
        p256dh: "BKey".into(),
        auth: "secret".into(),
    }
}

fn pending(device: (UserId, DeviceId), conversation: ConversationId, due: i64) -> NewPendingPush {
    NewPendingPush {
        device_id: device.1,
        user_id: device.0,
        conversation_id: conversation,
        urgent: false,
        preview: None,
        due_at_ms: due,
        now_ms: 10,
    }
}

/// The VAPID key (a server secret) is written once: processes starting
/// together with different candidates all end up with the same value, and
/// it survives a restart.
async fn server_secret_is_created_once(backend: &Backend) {
    let (first, _e1) = backend.open().await;
    let (second, _e2) = backend.open().await;
    let mut tries = Vec::new();
    for i in 0..6u8 {
        let store = if i % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        tries.push(tokio::spawn(async move {
            store.server_secret("vapid", vec![i; 4], 1).await.unwrap()
        }));
    }
    let mut values = Vec::new();
    for t in tries {
        values.push(t.await.unwrap());
    }
    assert!(values.windows(2).all(|w| w[0] == w[1]), "{values:?}");
    first.shutdown().await;
    second.shutdown().await;
    let (store, _events) = backend.open().await;
    assert_eq!(
        store.server_secret("vapid", vec![9], 2).await.unwrap(),
        values[0]
    );
    assert_eq!(
        store.server_secret("other", vec![7], 2).await.unwrap(),
        vec![7]
    );
}

/// Registrations: one per device, replaced on re-register, only for the
/// caller's live devices, removed with the device.
async fn push_registrations(backend: &Backend) {
    let (store, _events) = backend.open().await;
    let store = &*store;
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    let phone = device(store, alice).await;
    let bob_phone = device(store, bob).await;
    store
        .set_push_target(alice, phone, web_push("https://a.example/1"), 5)
        .await
        .unwrap();
    store
        .set_push_target(alice, phone, web_push("https://a.example/2"), 6)
        .await
        .unwrap();
    assert_eq!(
        store.push_target(phone).await.unwrap(),
        Some(web_push("https://a.example/2"))
    );
    for (who, which) in [(alice, bob_phone), (alice, DeviceId(987_654))] {
        assert!(matches!(
            store
                .set_push_target(who, which, web_push("https://x"), 7)
                .await,
            Err(StoreError::NotFound(_))
        ));
    }
    let apns = PushTarget::Apns {
        token: "ab01".into(),
        topic: "org.parley.app".into(),
        sandbox: true,
    };
    store
        .set_push_target(bob, bob_phone, apns.clone(), 8)
        .await
        .unwrap();
    assert_eq!(store.push_target(bob_phone).await.unwrap(), Some(apns));
    assert_eq!(store.push_users().await.unwrap(), vec![alice, bob]);
    store.delete_push_target(bob_phone).await.unwrap();
    store.delete_push_target(bob_phone).await.unwrap();
    assert_eq!(store.push_target(bob_phone).await.unwrap(), None);

    let (direct, _) = store.get_or_create_direct(alice, bob, 1).await.unwrap();
    store
        .queue_pushes(vec![pending((alice, phone), direct.id, 100)])
        .await
        .unwrap();
    store.revoke_device(alice, phone, 9).await.unwrap();
    assert_eq!(store.push_target(phone).await.unwrap(), None);
    assert_eq!(
        store.next_push_due().await.unwrap(),
        None,
        "pending push gone too"
    );
    assert!(matches!(
        store
            .set_push_target(alice, phone, web_push("https://x"), 10)
            .await,
        Err(StoreError::NotFound(_))
    ));
}

/// Who is woken: registered recipients that neither muted the
/// conversation nor block the sender.
async fn push_candidates_follow_mute_and_blocks(backend: &Backend) {
    let (store, _events) = backend.open().await;
    let store = &*store;
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    let carol = user(store, "carol").await;
    let bob_phone = device(store, bob).await;
    let bob_laptop = device(store, bob).await;
    let carol_phone = device(store, carol).await;
    let (direct, _) = store.get_or_create_direct(alice, bob, 1).await.unwrap();
    for (u, d) in [(bob, bob_phone), (carol, carol_phone)] {
        store
            .set_push_target(u, d, web_push("https://p.example/x"), 2)
            .await
            .unwrap();
    }
    store
        .update_profile(
            bob,
            ProfileChange {
                push_previews: Some(true),
                ..ProfileChange::default()
            },
        )
        .await
        .unwrap();
    let woken = |now| store.push_candidates(direct.id, alice, vec![bob, carol], now);
    assert_eq!(
        woken(10).await.unwrap(),
        vec![PushCandidate {
            device_id: bob_phone,
            user_id: bob,
            previews: true,
            direct: true,
        }],
        "only registered devices (not the laptop) of members (not carol)"
    );
    let _ = bob_laptop;
    let mute = |until| SettingsChange {
        muted_until_ms: Some(until),
        ..SettingsChange::default()
    };
    store
        .set_conversation_settings(bob, direct.id, mute(1_000))
        .await
        .unwrap();
    assert!(
        woken(10).await.unwrap().iter().all(|c| c.user_id != bob),
        "muted until later"
    );
    assert!(
        woken(2_000).await.unwrap().iter().any(|c| c.user_id == bob),
        "mute over"
    );
    store
        .set_conversation_settings(bob, direct.id, mute(-1))
        .await
        .unwrap();
    assert!(
        woken(2_000).await.unwrap().iter().all(|c| c.user_id != bob),
        "muted forever"
    );
    store
        .set_conversation_settings(bob, direct.id, mute(0))
        .await
        .unwrap();
    store.set_block(bob, alice, true, 3).await.unwrap();
    assert!(
        woken(10).await.unwrap().iter().all(|c| c.user_id != bob),
        "blocks the sender"
    );
    store.set_block(bob, alice, false, 4).await.unwrap();
    assert!(woken(10).await.unwrap().iter().any(|c| c.user_id == bob));
}

/// One pending push per device: a burst coalesces (earliest due time,
/// unread counted); a message during delivery stays pending; retries keep
/// their due time; pending pushes survive a restart.
async fn pending_pushes_coalesce_and_survive(backend: &Backend) {
    let (store, _events) = backend.open().await;
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    let phone = device(&*store, bob).await;
    let unregistered = device(&*store, alice).await;
    let (direct, _) = store.get_or_create_direct(alice, bob, 1).await.unwrap();
    store
        .set_push_target(bob, phone, web_push("https://p.example/b"), 2)
        .await
        .unwrap();
    let mut burst: Vec<NewPendingPush> = [100, 150, 50]
        .iter()
        .map(|&due| pending((bob, phone), direct.id, due))
        .collect();
    burst[1].urgent = true;
    burst[2].preview = Some((alice, "hi".into()));
    burst.push(pending((alice, unregistered), direct.id, 10));
    store.queue_pushes(burst).await.unwrap();
    assert_eq!(
        store.next_push_due().await.unwrap(),
        Some(50),
        "unregistered skipped"
    );
    assert!(store.claim_pushes(40, 1_000, 10).await.unwrap().is_empty());

    // Restart before it is due: it is still there.
    store.shutdown().await;
    drop(store);
    let (store, _events) = backend.open().await;
    let claimed = store.claim_pushes(60, 1_000, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let push = &claimed[0];
    assert_eq!((push.device_id, push.user_id, push.unread), (phone, bob, 3));
    assert!(push.urgent, "the highest urgency is kept");
    assert_eq!(
        push.preview,
        Some((alice, "hi".to_string())),
        "the newest preview"
    );
    assert_eq!(push.target, web_push("https://p.example/b"));
    assert!(
        store.claim_pushes(60, 1_000, 10).await.unwrap().is_empty(),
        "claimed until the lease ends"
    );

    // A message arrives while it is being delivered: it stays pending.
    store
        .queue_pushes(vec![pending((bob, phone), direct.id, 200)])
        .await
        .unwrap();
    store
        .finish_push(phone, push.generation, push.unread)
        .await
        .unwrap();
    let again = store.claim_pushes(200, 1_000, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(
        again[0].unread, 1,
        "only the message that came during delivery"
    );
    // Delivery fails: retried at the given time, not earlier.
    store.retry_push(phone, 500).await.unwrap();
    store
        .queue_pushes(vec![pending((bob, phone), direct.id, 250)])
        .await
        .unwrap();
    assert!(store.claim_pushes(400, 1_000, 10).await.unwrap().is_empty());
    let retried = store.claim_pushes(500, 1_000, 10).await.unwrap();
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].attempts, 1);
    store
        .finish_push(phone, retried[0].generation, retried[0].unread)
        .await
        .unwrap();
    assert_eq!(store.next_push_due().await.unwrap(), None);
    // A lease that ends lets another worker claim it again.
    store
        .queue_pushes(vec![pending((bob, phone), direct.id, 600)])
        .await
        .unwrap();
    assert_eq!(store.claim_pushes(600, 700, 10).await.unwrap().len(), 1);
    assert_eq!(store.claim_pushes(700, 800, 10).await.unwrap().len(), 1);
}

/// Disabling a user, resetting its password or erasing it revokes every
/// device, and with them their push registrations (§12, §14).
async fn revoking_every_device_drops_push_registrations(backend: &Backend) {
    let (store, _events) = backend.open().await;
    let store = &*store;
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    let phone = device(store, alice).await;
    let bob_phone = device(store, bob).await;
    for (who, which) in [(alice, phone), (bob, bob_phone)] {
        store
            .set_push_target(who, which, web_push("https://a.example/1"), 5)
            .await
            .unwrap();
    }
    store.set_user_disabled(alice, true, 10).await.unwrap();
    assert_eq!(store.push_target(phone).await.unwrap(), None);
    assert_eq!(
        store.push_target(bob_phone).await.unwrap(),
        Some(web_push("https://a.example/1")),
        "other users keep theirs"
    );
    store.erase_user(bob, 20).await.unwrap();
    assert_eq!(store.push_target(bob_phone).await.unwrap(), None);
}

/// A pending upload slot of `size` bytes for `owner`.
fn slot(owner: UserId, content_type: &str, size: u64, quota: u64) -> NewMedia {
    NewMedia {
        owner,
        content_type: content_type.into(),
        size,
        sha256: "c2hh".into(),
        filename: Some("a.png".into()),
        now_ms: 1_000,
        expires_at_ms: 2_000,
        quota_bytes: quota,
    }
}

/// A media message naming `media`.
fn media_message(
    conversation: ConversationId,
    who: (UserId, DeviceId),
    key: &str,
    kind: MessageKind,
    media: parley_proto::MediaId,
) -> NewMessage {
    NewMessage {
        kind,
        media: vec![media],
        ..send(conversation, who, key)
    }
}

/// Media (§9): slots and the quota, completion, what a message may
/// reference, who may read it, and the collector's two steps.
async fn media_lifecycle(backend: &Backend) {
    let (store, _events) = backend.open().await;
    let alice = person(&*store, "alice").await;
    let bob = person(&*store, "bob").await;
    let carol = person(&*store, "carol").await;
    let g = group(&*store, alice.0, &[bob.0]).await.id;

    // The quota: 600 + 600 > 1000.
    let photo = store
        .create_media(slot(alice.0, "image/png", 600, 1_000))
        .await
        .unwrap();
    assert_eq!(photo.state, MediaState::Pending);
    assert!(matches!(
        store
            .create_media(slot(alice.0, "image/png", 600, 1_000))
            .await,
        Err(StoreError::TooLarge(_))
    ));
    assert_eq!(store.media_usage(alice.0).await.unwrap(), 600);

    // Pending media cannot be sent.
    let err = store
        .append_message(media_message(g, alice, "m0", MessageKind::Image, photo.id))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    let ready = store
        .complete_media(
            photo.id,
            MediaVerified {
                content_type: "image/png".into(),
                width: Some(3),
                height: Some(2),
                now_ms: 1_500,
                ..MediaVerified::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((ready.state, ready.width), (MediaState::Ready, Some(3)));
    // Only the uploader may read it yet.
    assert!(store.media_visible(photo.id, alice.0).await.unwrap());
    assert!(!store.media_visible(photo.id, bob.0).await.unwrap());
    // Kinds must fit the type; carol may not send what she cannot see.
    assert!(
        store
            .append_message(media_message(g, alice, "m1", MessageKind::Audio, photo.id))
            .await
            .is_err()
    );
    let (direct, _) = store.get_or_create_direct(carol.0, bob.0, 1).await.unwrap();
    assert!(matches!(
        store
            .append_message(media_message(
                direct.id,
                carol,
                "c1",
                MessageKind::Image,
                photo.id
            ))
            .await,
        Err(StoreError::NotFound(_))
    ));
    let sent = store
        .append_message(NewMessage {
            text: "caption".into(),
            ..media_message(g, alice, "m2", MessageKind::Image, photo.id)
        })
        .await
        .unwrap()
        .message;
    assert_eq!(sent.media.len(), 1);
    assert_eq!(sent.media[0].width, Some(3));
    assert_eq!(sent.text.as_deref(), Some("caption"));
    assert!(store.media_visible(photo.id, bob.0).await.unwrap());
    assert!(!store.media_visible(photo.id, carol.0).await.unwrap());
    let (history, _) = store
        .history(HistoryQuery {
            conversation: g,
            viewer: bob.0,
            before_seq: None,
            after_seq: None,
            limit: 50,
        })
        .await
        .unwrap();
    assert_eq!(history.last().unwrap().media, sent.media);

    // A forward by bob makes it carol's to read too.
    store
        .append_message(media_message(
            direct.id,
            bob,
            "b1",
            MessageKind::Image,
            photo.id,
        ))
        .await
        .unwrap();
    assert!(store.media_visible(photo.id, carol.0).await.unwrap());

    // The collector: a pending slot past its expiry is taken; referenced
    // media is not, until its references are deleted.
    let lapsed = store
        .create_media(slot(bob.0, "text/plain", 10, 1_000))
        .await
        .unwrap();
    let claimed = store.claim_media_garbage(10_000, 100).await.unwrap();
    assert_eq!(claimed, vec![lapsed.id]);
    // Claiming again (a crashed run) hands out the same, and forgetting
    // twice is harmless.
    assert_eq!(
        store.claim_media_garbage(10_000, 100).await.unwrap(),
        vec![lapsed.id]
    );
    assert_eq!(store.forget_media(claimed.clone()).await.unwrap(), 1);
    assert_eq!(store.forget_media(claimed).await.unwrap(), 0);
    assert_eq!(store.media_usage(bob.0).await.unwrap(), 0);
    assert!(store.media(lapsed.id).await.unwrap().is_none());

    for (conversation, who, key, target) in [(g, alice, "d1", sent.seq), (direct.id, bob, "d2", 1)]
    {
        store
            .append_message(event(conversation, who, key, MessageKind::Delete, target))
            .await
            .unwrap();
    }
    let far = parley_proto::now_ms() + 1_000;
    let claimed = store.claim_media_garbage(far, 100).await.unwrap();
    assert_eq!(claimed, vec![photo.id]);
    store.forget_media(claimed).await.unwrap();
    assert_eq!(store.media_usage(alice.0).await.unwrap(), 0);
}

/// Ready media of `owner` (completed at 1,500 ms, an orphan from then).
async fn ready_media(store: &dyn Store, owner: UserId, content_type: &str) -> MediaRecord {
    let pending = store
        .create_media(slot(owner, content_type, 10, 1_000_000))
        .await
        .unwrap();
    store
        .complete_media(
            pending.id,
            MediaVerified {
                content_type: content_type.into(),
                now_ms: 1_500,
                ..MediaVerified::default()
            },
        )
        .await
        .unwrap()
}

/// Avatars (§11 with §9): only the actor's own ready image may be one; a
/// user's avatar is anyone's to read, a group's its members'; the
/// collector never takes an avatar, and one replaced or removed is an
/// orphan from then.
async fn avatars_reference_media(backend: &Backend) {
    let (store, _events) = backend.open().await;
    let alice = person(&*store, "alice").await.0;
    let bob = person(&*store, "bob").await.0;
    let carol = person(&*store, "carol").await.0;
    let g = group(&*store, alice, &[bob]).await.id;
    let face = ready_media(&*store, alice, "image/png").await;
    let logo = ready_media(&*store, alice, "image/jpeg").await;
    let pdf = ready_media(&*store, alice, "application/pdf").await;
    let bobs = ready_media(&*store, bob, "image/png").await;
    let pending = store
        .create_media(slot(alice, "image/png", 10, 1_000_000))
        .await
        .unwrap();
    let set = |user: UserId, id: String, now_ms: i64| {
        store.update_profile(
            user,
            ProfileChange {
                avatar_media_id: Some(id),
                now_ms,
                ..ProfileChange::default()
            },
        )
    };
    for (id, why) in [
        (bobs.id.to_string(), "someone else's"),
        ("md7".to_owned(), "not a media id"),
        ("f999999".to_owned(), "unknown"),
    ] {
        let err = set(alice, id, 2_000).await.unwrap_err();
        assert!(matches!(err, StoreError::NotFound(_)), "{why}: {err:?}");
    }
    for (id, why) in [(pdf.id, "not an image"), (pending.id, "not complete")] {
        let err = set(alice, id.to_string(), 2_000).await.unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{why}: {err:?}");
    }
    let me = set(alice, face.id.to_string(), 2_000).await.unwrap();
    assert_eq!(me.avatar_media_id, Some(face.id.to_string()));
    // Anyone may read a user's avatar; a group's, its members.
    assert!(store.media_visible(face.id, carol).await.unwrap());
    assert!(matches!(
        store
            .set_group_avatar(g, bob, logo.id.to_string(), 2_000)
            .await,
        Err(StoreError::Forbidden(_))
    ));
    assert!(matches!(
        store
            .set_group_avatar(g, alice, bobs.id.to_string(), 2_000)
            .await,
        Err(StoreError::NotFound(_))
    ));
    let record = store
        .set_group_avatar(g, alice, logo.id.to_string(), 2_000)
        .await
        .unwrap();
    assert_eq!(record.avatar_media_id, Some(logo.id.to_string()));
    assert!(store.media_visible(logo.id, bob).await.unwrap());
    assert!(!store.media_visible(logo.id, carol).await.unwrap());

    // Long after every grace period, the collector takes the orphans
    // (the pdf, bob's image, the lapsed slot) but neither avatar.
    let far = parley_proto::now_ms() + 1_000_000;
    let claimed = store.claim_media_garbage(far, 100).await.unwrap();
    for kept in [face.id, logo.id] {
        assert!(!claimed.contains(&kept), "{kept} {claimed:?}");
    }
    assert!(claimed.contains(&pdf.id) && claimed.contains(&bobs.id));
    store.forget_media(claimed).await.unwrap();

    // Replacing and removing release the old avatars: orphans from then
    // (5,000 and 6,000), collected only after that.
    let newer = ready_media(&*store, alice, "image/png").await;
    set(alice, newer.id.to_string(), 5_000).await.unwrap();
    store
        .set_group_avatar(g, alice, String::new(), 6_000)
        .await
        .unwrap();
    assert_eq!(
        store
            .conversation(g)
            .await
            .unwrap()
            .unwrap()
            .avatar_media_id,
        None
    );
    assert!(
        store
            .claim_media_garbage(5_000, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.claim_media_garbage(5_001, 100).await.unwrap(),
        vec![face.id]
    );
    assert_eq!(
        store.claim_media_garbage(6_001, 100).await.unwrap(),
        vec![face.id, logo.id]
    );
    // Setting the same avatar again keeps it.
    set(alice, newer.id.to_string(), 7_000).await.unwrap();
    assert!(
        !store
            .claim_media_garbage(far, 100)
            .await
            .unwrap()
            .contains(&newer.id)
    );
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(&super::Backend::Sqlite(tempfile::tempdir().unwrap())).await;
                }
            )*
        }
        mod postgres_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = match super::support::TestDatabase::create().await {
                        Ok(db) => db,
                        Err(why) => return super::support::skip_or_fail(&why),
                    };
                    super::$name(&super::Backend::Postgres(db)).await;
                }
            )*
        }
    };
}

conformance!(
    events_change_their_target,
    windows_and_admin_delete,
    replies_quote_what_the_viewer_sees,
    search_follows_visibility,
    search_windows_keep_results_and_paging,
    search_finds_captions,
    settings_left_and_blocks,
    delete_purges_storage,
    mixed_batches_keep_order,
    administration,
    server_secret_is_created_once,
    push_registrations,
    push_candidates_follow_mute_and_blocks,
    pending_pushes_coalesce_and_survive,
    revoking_every_device_drops_push_registrations,
    media_lifecycle,
    avatars_reference_media,
);
