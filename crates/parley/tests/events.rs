//! Protocol part 2 through the real server: message events over WebSocket
//! and HTTP, search, per-user conversation settings synced to the user's
//! other devices, blocking (sends, presence, typing), profiles, read
//! receipts off, and an authorization matrix for every new endpoint and
//! frame (outsider, member, removed member, admin, blocked user).

mod common;

use std::time::Duration;

use common::*;
use parley_client::{Client, SearchRequest};
use parley_proto::api::{
    ConversationSettingsRequest, ProfileRequest, RenameRequest, SendRequest, SettingsRequest,
};
use parley_proto::{
    ClientFrame, ConversationId, ErrorCode, MessageKind, ReceiptStatus, ServerFrame, UserId,
};

fn code<T: std::fmt::Debug>(result: Result<T, parley_client::ClientError>) -> ErrorCode {
    result.expect_err("an error").code().expect("an API error")
}

async fn search(client: &Client, q: &str, conversation: Option<ConversationId>) -> Vec<String> {
    client
        .search(&SearchRequest {
            q,
            conversation_id: conversation,
            ..SearchRequest::default()
        })
        .await
        .expect("search")
        .results
        .into_iter()
        .map(|m| m.text.unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn events_travel_as_messages_and_change_history() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let c = direct(&alice, &bob).await;
    let mut a = alice.connect(None).await.unwrap();
    let mut b = bob.connect(None).await.unwrap();
    a.send_text(c, "t1", "hello bob").await.unwrap();
    assert_eq!(expect_sent(&mut a, "t1").await.0, 1);
    expect_message(&mut b).await;
    // Reaction, reply, edit over WebSocket; each is acked and fanned out.
    b.send_message(c, SendRequest::reaction("r1", 1, "👍"))
        .await
        .unwrap();
    assert_eq!(expect_sent(&mut b, "r1").await.0, 2);
    let (_, reaction) = expect_message(&mut a).await;
    assert_eq!(reaction.kind, MessageKind::Reaction);
    assert_eq!(
        (reaction.target_seq, reaction.emoji.as_deref()),
        (Some(1), Some("👍"))
    );
    b.send_message(c, SendRequest::reply("re1", "hi alice", 1))
        .await
        .unwrap();
    expect_sent(&mut b, "re1").await;
    let (_, reply) = expect_message(&mut a).await;
    let quote = reply.reply_to.expect("quote");
    assert_eq!((quote.seq, quote.text.as_deref()), (1, Some("hello bob")));
    a.send_message(c, SendRequest::edit("e1", 1, "hello, bob"))
        .await
        .unwrap();
    expect_sent(&mut a, "e1").await;
    let (_, edit) = expect_message(&mut b).await;
    assert_eq!(
        (edit.kind, edit.text.as_deref()),
        (MessageKind::Edit, Some("hello, bob"))
    );
    // Refusals come back as errors with the client_msg_id as ref.
    b.send_message(c, SendRequest::edit("e2", 1, "not mine"))
        .await
        .unwrap();
    assert_eq!(expect_error(&mut b, "e2").await.0, ErrorCode::Forbidden);
    b.send_message(c, SendRequest::reaction("r2", 2, "👍"))
        .await
        .unwrap();
    assert_eq!(expect_error(&mut b, "r2").await.0, ErrorCode::BadRequest);
    b.send_message(c, SendRequest::reaction("r3", 999, "👍"))
        .await
        .unwrap();
    assert_eq!(expect_error(&mut b, "r3").await.0, ErrorCode::NotFound);
    // HTTP takes the same bodies; a repeat is a 200 with the original.
    let (deleted, created) = alice
        .send_request(c, &SendRequest::delete("d1", 1))
        .await
        .unwrap();
    assert!(created && deleted.kind == MessageKind::Delete);
    let (again, created) = alice
        .send_request(c, &SendRequest::delete("d1", 1))
        .await
        .unwrap();
    assert!(!created && again.seq == deleted.seq);
    let (forwarded, _) = alice
        .send_request(c, &SendRequest::forward("f1", "look"))
        .await
        .unwrap();
    assert!(forwarded.forwarded);
    let page = bob.history(c, None, None, None).await.unwrap().messages;
    let target = &page[0];
    assert!(target.deleted && target.text.is_none() && target.reactions.is_empty());
    let reply = page.iter().find(|m| m.seq == 3).unwrap();
    assert!(reply.reply_to.as_ref().unwrap().deleted);
    assert_eq!(
        page.iter().find(|m| m.seq == 4).unwrap().text,
        None,
        "the edit's text is purged with its target"
    );
    // Replay by cursor carries events too, in order.
    let mut replay = bob.connect(Some(0)).await.unwrap();
    let mut kinds = Vec::new();
    loop {
        match replay.recv_within(Duration::from_secs(5)).await.unwrap() {
            ServerFrame::Message { message, .. } => kinds.push(message.kind),
            ServerFrame::Synced { .. } => break,
            _ => {}
        }
    }
    assert_eq!(
        kinds,
        [
            MessageKind::Text,
            MessageKind::Reaction,
            MessageKind::Text,
            MessageKind::Edit,
            MessageKind::Delete,
            MessageKind::Text
        ]
    );
    let list = bob.conversations().await.unwrap().conversations;
    assert_eq!(
        list[0].unread_count, 1,
        "only the forward: events never count"
    );
    assert_eq!(
        list[0].last_message.as_ref().map(|m| m.seq),
        Some(forwarded.seq)
    );
}

#[tokio::test]
async fn search_settings_and_profiles() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let c = direct(&alice, &bob).await;
    alice
        .send(c, "m1", "Meet at the 咖啡馆 at noon")
        .await
        .unwrap();
    alice.send(c, "m2", "noon it is").await.unwrap();
    assert_eq!(search(&bob, "咖啡馆", None).await.len(), 1);
    assert_eq!(search(&bob, "NOON", Some(c)).await.len(), 2);
    let first = bob
        .search(&SearchRequest {
            q: "noon",
            limit: Some(1),
            ..SearchRequest::default()
        })
        .await
        .unwrap();
    assert!(first.has_more);
    assert_eq!(first.results[0].text.as_deref(), Some("noon it is"));
    let next = bob
        .search(&SearchRequest {
            q: "noon",
            limit: Some(1),
            before_id: Some(first.results[0].message_id),
            ..SearchRequest::default()
        })
        .await
        .unwrap();
    assert_eq!(next.results.len(), 1);
    assert!(!next.has_more);
    for bad in ["", &"x".repeat(257)] {
        let err = bob
            .search(&SearchRequest {
                q: bad,
                ..SearchRequest::default()
            })
            .await;
        assert_eq!(code(err), ErrorCode::BadRequest);
    }
    // Settings sync live to the user's other devices.
    let bob_phone = server.device("bob").await;
    let mut phone = bob_phone.connect(None).await.unwrap();
    let settings = bob
        .set_conversation_settings(
            c,
            &ConversationSettingsRequest {
                muted_until_ms: Some(-1),
                pinned: Some(true),
                archived: Some(true),
            },
        )
        .await
        .unwrap();
    assert!(settings.pinned && settings.archived && settings.muted_until_ms == -1);
    let frame = expect_frame(&mut phone, "settings", |f| {
        matches!(f, ServerFrame::ConversationSettings { .. })
    })
    .await;
    assert!(matches!(
        frame,
        ServerFrame::ConversationSettings { conversation_id, pinned: true, archived: true, muted_until_ms: -1 }
            if conversation_id == c
    ));
    let listed = &bob.conversations().await.unwrap().conversations[0];
    assert!(listed.pinned && listed.archived && listed.muted_until_ms == -1);
    // Profiles: a display name and an avatar (an image bob uploaded, §9).
    let face = bob
        .upload_media(&png(8, 8), "image/png", Some("face.png"))
        .await
        .unwrap()
        .media_id
        .to_string();
    let me = bob
        .update_me(&ProfileRequest {
            display_name: Some("Bobby".into()),
            avatar_media_id: Some(face.clone()),
        })
        .await
        .unwrap();
    assert_eq!(
        (me.display_name.as_str(), me.avatar_media_id.as_deref()),
        ("Bobby", Some(face.as_str()))
    );
    let seen = alice.find_user("bob").await.unwrap();
    assert_eq!(seen.avatar_media_id.as_deref(), Some(face.as_str()));
    let err = bob
        .update_me(&ProfileRequest {
            display_name: Some("x".repeat(65)),
            avatar_media_id: None,
        })
        .await;
    assert_eq!(code(err), ErrorCode::BadRequest);
}

#[tokio::test]
async fn read_receipts_off_hides_reads_both_ways() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let c = direct(&alice, &bob).await;
    let settings = bob
        .update_settings(&SettingsRequest {
            read_receipts: Some(false),
            push_previews: Some(true),
            ..SettingsRequest::default()
        })
        .await
        .unwrap();
    assert!(!settings.read_receipts && settings.push_previews);
    let mut a = alice.connect(None).await.unwrap();
    let mut b = bob.connect(None).await.unwrap();
    a.send_text(c, "t1", "hi").await.unwrap();
    expect_sent(&mut a, "t1").await;
    expect_message(&mut b).await;
    b.send(&ClientFrame::Receipt {
        conversation_id: c,
        status: ReceiptStatus::Read,
        up_to_seq: 1,
    })
    .await
    .unwrap();
    // Alice hears of the delivery only.
    let frame = expect_frame(&mut a, "receipt", |f| {
        matches!(f, ServerFrame::Receipt { .. })
    })
    .await;
    assert!(matches!(
        frame,
        ServerFrame::Receipt {
            status: ReceiptStatus::Delivered,
            up_to_seq: 1,
            ..
        }
    ));
    let details = alice.conversation(c).await.unwrap();
    let bobs = details
        .members
        .iter()
        .find(|m| m.user_id == uid(&bob))
        .unwrap();
    assert_eq!((bobs.delivered_up_to, bobs.read_up_to), (1, 0));
}

#[tokio::test]
async fn blocking_stops_sends_presence_and_typing() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let c = direct(&alice, &bob).await;
    let g = alice
        .create_group("g", &[uid(&bob)])
        .await
        .unwrap()
        .conversation_id;
    let mut a = alice.connect(None).await.unwrap();
    let mut b = bob.connect(None).await.unwrap();
    b.send(&ClientFrame::PresenceSubscribe {
        user_ids: vec![uid(&alice)],
    })
    .await
    .unwrap();
    expect_frame(&mut b, "alice online", |f| {
        matches!(f, ServerFrame::Presence { online: true, .. })
    })
    .await;
    alice.block(uid(&bob)).await.unwrap();
    assert_eq!(alice.blocks().await.unwrap().user_ids, vec![uid(&bob)]);
    // Bob now sees alice offline, with no last seen, live and over HTTP.
    expect_frame(&mut b, "alice hidden", |f| {
        matches!(
            f,
            ServerFrame::Presence {
                online: false,
                last_seen_ms: None,
                ..
            }
        )
    })
    .await;
    let view = bob.presence(uid(&alice)).await.unwrap();
    assert!(!view.online && view.last_seen_ms.is_none());
    let view = alice.presence(uid(&bob)).await.unwrap();
    assert!(!view.online, "both directions");
    // Bob's sends into the direct conversation: 403; alice's still go.
    assert_eq!(code(bob.send(c, "b1", "hi").await), ErrorCode::Forbidden);
    b.send_text(c, "b2", "hi").await.unwrap();
    assert_eq!(expect_error(&mut b, "b2").await.0, ErrorCode::Forbidden);
    alice.send(c, "a1", "one way").await.unwrap();
    // Groups are not affected; creating the direct conversation works.
    bob.send(g, "b3", "in the group").await.unwrap();
    assert_eq!(direct(&bob, &alice).await, c);
    // Typing is not forwarded either way in the direct conversation.
    b.send(&ClientFrame::Typing {
        conversation_id: c,
        active: true,
    })
    .await
    .unwrap();
    expect_no_frame(&mut a, Duration::from_millis(300), |f| {
        matches!(f, ServerFrame::Typing { .. })
    })
    .await;
    a.send(&ClientFrame::Typing {
        conversation_id: g,
        active: true,
    })
    .await
    .unwrap();
    expect_frame(&mut b, "group typing", |f| {
        matches!(f, ServerFrame::Typing { .. })
    })
    .await;
    alice.unblock(uid(&bob)).await.unwrap();
    bob.send(c, "b4", "thanks").await.unwrap();
    assert!(alice.blocks().await.unwrap().user_ids.is_empty());
}

/// Every new endpoint and frame against outsider, member, removed member,
/// admin and blocked user: refusals where due, and no text, reactions or
/// member lists leaking to those who may not see them.
#[tokio::test]
async fn authorization_matrix() {
    let server = TestServer::start().await;
    let admin = server.user("admin").await;
    let member = server.user("member").await;
    let removed = server.user("removed").await;
    let outsider = server.user("outsider").await;
    let g = admin
        .create_group("g", &[uid(&member), uid(&removed)])
        .await
        .unwrap()
        .conversation_id;
    let (before, _) = member.send(g, "m1", "before removal secret").await.unwrap();
    member
        .send_request(g, &SendRequest::reaction("r1", before.seq, "😂"))
        .await
        .unwrap();
    admin.remove_member(g, uid(&removed)).await.unwrap();
    let (after, _) = member.send(g, "m2", "after removal secret").await.unwrap();
    member
        .send_request(g, &SendRequest::reaction("r2", after.seq, "🙏"))
        .await
        .unwrap();

    // Sending events: outsider and removed member are refused.
    for (who, name) in [(&outsider, "outsider"), (&removed, "removed")] {
        for body in [
            SendRequest::reaction(&format!("{name}-r"), after.seq, "👍"),
            SendRequest::edit(&format!("{name}-e"), after.seq, "x"),
            SendRequest::delete(&format!("{name}-d"), after.seq),
            SendRequest::reply(&format!("{name}-q"), "x", after.seq),
        ] {
            let err = code(who.send_request(g, &body).await);
            assert!(
                matches!(err, ErrorCode::Forbidden | ErrorCode::NotFound),
                "{name}: {err:?}"
            );
        }
    }
    // A member may react, not edit or delete others' messages; the admin
    // may delete.
    member
        .send_request(g, &SendRequest::reaction("r3", after.seq, "👍"))
        .await
        .unwrap();
    let (admins, _) = admin.send(g, "a1", "admin text").await.unwrap();
    assert_eq!(
        code(
            member
                .send_request(g, &SendRequest::edit("e1", admins.seq, "x"))
                .await
        ),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(
            member
                .send_request(g, &SendRequest::delete("d1", admins.seq))
                .await
        ),
        ErrorCode::Forbidden
    );
    admin
        .send_request(g, &SendRequest::delete("d2", before.seq))
        .await
        .unwrap();

    // History and search: the removed member sees up to its removal only
    // (so neither the later text nor its reactions), the outsider nothing.
    let removed_page = removed.history(g, None, None, None).await.unwrap().messages;
    let dump = serde_json::to_string(&removed_page).unwrap();
    for leak in ["after removal secret", "🙏"] {
        assert!(!dump.contains(leak), "{leak} leaked to the removed member");
    }
    assert!(matches!(
        code(outsider.history(g, None, None, None).await),
        ErrorCode::Forbidden | ErrorCode::NotFound
    ));
    assert!(
        search(&removed, "secret", None).await.is_empty(),
        "the one it saw is deleted"
    );
    assert!(search(&removed, "after", Some(g)).await.is_empty());
    assert!(search(&outsider, "secret", None).await.is_empty());
    assert!(search(&outsider, "secret", Some(g)).await.is_empty());
    assert_eq!(
        search(&member, "secret", None).await,
        ["after removal secret"]
    );

    // Listing: the removed member sees the group as left, no members.
    let listed = removed.conversations().await.unwrap().conversations;
    let left = listed.iter().find(|c| c.conversation_id == g).unwrap();
    assert!(left.left && left.members.is_empty());
    let dump = serde_json::to_string(&listed).unwrap();
    assert!(!dump.contains("after removal secret"));
    assert!(
        outsider
            .conversations()
            .await
            .unwrap()
            .conversations
            .is_empty()
    );
    assert!(matches!(
        code(removed.conversation(g).await),
        ErrorCode::Forbidden | ErrorCode::NotFound
    ));

    // Settings: the outsider cannot, the removed member can (its own list).
    let settings = ConversationSettingsRequest {
        archived: Some(true),
        ..ConversationSettingsRequest::default()
    };
    assert!(matches!(
        code(outsider.set_conversation_settings(g, &settings).await),
        ErrorCode::Forbidden | ErrorCode::NotFound
    ));
    assert_eq!(
        code(
            outsider
                .set_conversation_settings(ConversationId(987_654), &settings)
                .await
        ),
        ErrorCode::NotFound
    );
    assert!(
        removed
            .set_conversation_settings(g, &settings)
            .await
            .is_ok()
    );

    // Group avatar: admins only (an image the admin uploaded, §9).
    let logo = admin
        .upload_media(&png(8, 8), "image/png", Some("logo.png"))
        .await
        .unwrap()
        .media_id
        .to_string();
    let avatar = RenameRequest {
        name: None,
        avatar_media_id: Some(logo.clone()),
    };
    assert_eq!(
        code(member.update_group(g, &avatar).await),
        ErrorCode::Forbidden
    );
    assert!(matches!(
        code(outsider.update_group(g, &avatar).await),
        ErrorCode::Forbidden | ErrorCode::NotFound
    ));
    assert_eq!(
        admin
            .update_group(g, &avatar)
            .await
            .unwrap()
            .avatar_media_id
            .as_deref(),
        Some(logo.as_str())
    );

    // Blocks: unknown users are 404, oneself 400; a blocked user learns
    // nothing from presence, and groups still work.
    assert_eq!(
        code(member.block(UserId(987_654)).await),
        ErrorCode::NotFound
    );
    assert_eq!(
        code(member.block(uid(&member)).await),
        ErrorCode::BadRequest
    );
    admin.block(uid(&member)).await.unwrap();
    let view = member.presence(uid(&admin)).await.unwrap();
    assert!(!view.online && view.last_seen_ms.is_none());
    member.send(g, "m3", "still in the group").await.unwrap();
    assert!(
        member.blocks().await.unwrap().user_ids.is_empty(),
        "only one's own list"
    );
}
