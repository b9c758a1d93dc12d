//! Groups: administration, membership semantics, size limits, fan-out to
//! 1,024 members, and group receipts (`receipt_summary`).

mod common;

use std::time::Duration;

use common::*;
use futures_util::future::join_all;
use parley_client::{Client, Method, Socket};
use parley_proto::{
    ClientFrame, ConversationId, ErrorCode, MessageKind, ReceiptStatus, Role, ServerFrame,
    SystemEvent, UserId,
};
use parley_server::Config;

async fn users(server: &TestServer, names: &[&str]) -> Vec<Client> {
    let mut out = Vec::new();
    for name in names {
        out.push(server.user(name).await);
    }
    out
}

async fn expect_system(socket: &mut Socket, event: SystemEvent) -> parley_proto::Message {
    let frame = expect_frame(
        socket,
        "system message",
        |f| matches!(f, ServerFrame::Message { message, .. } if message.event == Some(event)),
    )
    .await;
    match frame {
        ServerFrame::Message { message, .. } => {
            assert_eq!(message.kind, MessageKind::System);
            message
        }
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn create_and_administer_a_group() {
    let server = TestServer::start().await;
    let [alice, bob, carol, dave] =
        <[Client; 4]>::try_from(users(&server, &["alice", "bob", "carol", "dave"]).await)
            .ok()
            .unwrap();
    let mut b = bob.connect(None).await.unwrap();

    let group = alice
        .create_group("  Friends ", &[uid(&bob), uid(&carol), uid(&bob)])
        .await
        .unwrap();
    assert_eq!(group.kind, parley_proto::api::ConversationKind::Group);
    assert_eq!(group.name.as_deref(), Some("Friends"));
    let roles: Vec<(UserId, Role)> = group.members.iter().map(|m| (m.user_id, m.role)).collect();
    assert_eq!(
        roles,
        [
            (uid(&alice), Role::Admin),
            (uid(&bob), Role::Member),
            (uid(&carol), Role::Member)
        ]
    );
    let id = group.conversation_id;

    let created = expect_system(&mut b, SystemEvent::Created).await;
    assert_eq!(created.seq, 1);
    assert_eq!(created.name.as_deref(), Some("Friends"));
    assert_eq!(created.user_ids.as_ref().unwrap().len(), 3);

    // Members may not administer; outsiders neither.
    for (who, expect) in [(&bob, ErrorCode::Forbidden), (&dave, ErrorCode::Forbidden)] {
        assert_eq!(
            who.add_members(id, &[uid(&dave)]).await.unwrap_err().code(),
            Some(expect)
        );
        assert_eq!(
            who.rename_group(id, "Mine").await.unwrap_err().code(),
            Some(expect)
        );
        assert_eq!(
            who.remove_member(id, uid(&carol)).await.unwrap_err().code(),
            Some(expect)
        );
        assert_eq!(
            who.set_role(id, uid(&carol), Role::Admin)
                .await
                .unwrap_err()
                .code(),
            Some(expect)
        );
    }
    let err = dave.conversation(id).await.unwrap_err();
    assert!(matches!(
        err.code(),
        Some(ErrorCode::Forbidden | ErrorCode::NotFound)
    ));

    // Rename and roles are system messages, ordered with the chat.
    alice.send(id, "k1", "hello").await.unwrap();
    let renamed = alice.rename_group(id, "Best friends").await.unwrap();
    assert_eq!(renamed.name.as_deref(), Some("Best friends"));
    let message = expect_system(&mut b, SystemEvent::Renamed).await;
    assert_eq!(message.seq, 3);
    assert_eq!(message.name.as_deref(), Some("Best friends"));
    alice.set_role(id, uid(&bob), Role::Admin).await.unwrap();
    let message = expect_system(&mut b, SystemEvent::RoleChanged).await;
    assert_eq!(message.user_ids.as_deref(), Some(&[uid(&bob)][..]));
    assert_eq!(message.role, Some(Role::Admin));
    // Bob is an admin now.
    bob.add_members(id, &[uid(&dave)]).await.unwrap();
    let added = expect_system(&mut b, SystemEvent::MemberAdded).await;
    assert_eq!(added.user_ids.as_deref(), Some(&[uid(&dave)][..]));
    // Dave sees from his admission on, not before.
    let history = dave.history(id, None, None, None).await.unwrap();
    let seqs: Vec<u64> = history.messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [added.seq]);

    // Listed with name, last message and unread count.
    let list = carol.conversations().await.unwrap();
    let entry = list
        .conversations
        .iter()
        .find(|c| c.conversation_id == id)
        .unwrap();
    assert_eq!(entry.name.as_deref(), Some("Best friends"));
    assert_eq!(entry.last_seq, added.seq);
    assert_eq!(entry.unread_count, added.seq);
    assert_eq!(entry.members.len(), 4);

    // Details with every member's cursors.
    let details = carol.conversation(id).await.unwrap();
    assert_eq!(details.members.len(), 4);
    assert!(
        details
            .members
            .iter()
            .any(|m| m.user_id == uid(&bob) && m.role == Role::Admin)
    );

    // Bad input: empty name, unknown users (nothing created), non-group.
    assert_eq!(
        alice.rename_group(id, "  ").await.unwrap_err().code(),
        Some(ErrorCode::BadRequest)
    );
    let before = alice.conversations().await.unwrap().conversations.len();
    let err = alice
        .create_group("Ghosts", &["u9999".parse().unwrap()])
        .await
        .unwrap_err();
    assert!(matches!(
        err.code(),
        Some(ErrorCode::NotFound | ErrorCode::BadRequest)
    ));
    assert_eq!(
        alice.conversations().await.unwrap().conversations.len(),
        before
    );
    let (status, body) = alice
        .raw(
            Method::POST,
            "/v1/groups",
            Some(r#"{"name":"x","member_ids":["not-an-id"]}"#),
        )
        .await
        .unwrap();
    // Ids are opaque: one that names nobody is unknown, whatever its shape.
    assert_eq!(status, 404, "{body}");
    let direct = direct(&alice, &bob).await;
    let err = alice.rename_group(direct, "nope").await.unwrap_err();
    assert!(matches!(
        err.code(),
        Some(ErrorCode::NotFound | ErrorCode::BadRequest | ErrorCode::Forbidden)
    ));
}

#[tokio::test]
async fn removed_members_get_their_removal_and_nothing_after() {
    let server = TestServer::start().await;
    let [alice, bob, carol] =
        <[Client; 3]>::try_from(users(&server, &["alice", "bob", "carol"]).await)
            .ok()
            .unwrap();
    let id = alice
        .create_group("Team", &[uid(&bob), uid(&carol)])
        .await
        .unwrap()
        .conversation_id;
    alice.send(id, "before", "before removal").await.unwrap();
    let mut b = bob.connect(None).await.unwrap();

    alice.remove_member(id, uid(&bob)).await.unwrap();
    let removal = expect_system(&mut b, SystemEvent::MemberRemoved).await;
    assert_eq!(removal.user_ids.as_deref(), Some(&[uid(&bob)][..]));

    alice.send(id, "after", "after removal").await.unwrap();
    expect_no_frame(&mut b, Duration::from_millis(400), |f| {
        matches!(f, ServerFrame::Message { .. })
    })
    .await;

    // Cannot send, cannot read past the removal, no longer listed.
    let err = bob.send(id, "sneaky", "hi").await.unwrap_err();
    assert!(matches!(
        err.code(),
        Some(ErrorCode::Forbidden | ErrorCode::NotFound)
    ));
    let history = bob.history(id, None, None, None).await.unwrap();
    let seqs: Vec<u64> = history.messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [1, 2, removal.seq], "history ends at the removal");
    // §11: the group stays listed for bob, marked `left`, with no members
    // and nothing after his removal.
    let listed = bob.conversations().await.unwrap().conversations;
    let left = listed
        .iter()
        .find(|c| c.conversation_id == id)
        .expect("still listed");
    assert!(left.left && left.members.is_empty());
    assert_eq!(left.last_seq, removal.seq);
    b.send(&ClientFrame::Typing {
        conversation_id: id,
        active: true,
    })
    .await
    .unwrap();
    let (code, _) = expect_error(&mut b, "typing").await;
    assert!(matches!(code, ErrorCode::Forbidden | ErrorCode::NotFound));

    // Re-admitted: sees from re-admission on, not what happened while away.
    alice.add_members(id, &[uid(&bob)]).await.unwrap();
    let readded = expect_system(&mut b, SystemEvent::MemberAdded).await;
    alice.send(id, "welcome", "welcome back").await.unwrap();
    let (_, welcome) = expect_message(&mut b).await;
    assert_eq!(welcome.text.as_deref(), Some("welcome back"));
    let history = bob.history(id, None, None, None).await.unwrap();
    let seqs: Vec<u64> = history.messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [1, 2, removal.seq, readded.seq, welcome.seq]);
    assert!(
        !seqs.contains(&(removal.seq + 1)),
        "the message sent while away stays hidden"
    );

    // Leaving: any member may remove itself.
    carol.remove_member(id, uid(&carol)).await.unwrap();
    let left = expect_system(&mut b, SystemEvent::MemberLeft).await;
    assert_eq!(left.user_ids.as_deref(), Some(&[uid(&carol)][..]));
}

#[tokio::test]
async fn the_longest_standing_member_inherits_when_the_last_admin_leaves() {
    let server = TestServer::start().await;
    let [alice, bob, carol] =
        <[Client; 3]>::try_from(users(&server, &["alice", "bob", "carol"]).await)
            .ok()
            .unwrap();
    let id = alice
        .create_group("Club", &[uid(&bob)])
        .await
        .unwrap()
        .conversation_id;
    alice.add_members(id, &[uid(&carol)]).await.unwrap();
    let mut c = carol.connect(None).await.unwrap();
    alice.remove_member(id, uid(&alice)).await.unwrap();
    expect_system(&mut c, SystemEvent::MemberLeft).await;
    let promoted = expect_system(&mut c, SystemEvent::RoleChanged).await;
    assert_eq!(promoted.user_ids.as_deref(), Some(&[uid(&bob)][..]));
    let details = bob.conversation(id).await.unwrap();
    let bob_role = details
        .members
        .iter()
        .find(|m| m.user_id == uid(&bob))
        .unwrap()
        .role;
    assert_eq!(bob_role, Role::Admin);
    // The sole admin cannot demote itself.
    assert_eq!(
        bob.set_role(id, uid(&bob), Role::Member)
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::BadRequest)
    );
}

#[tokio::test]
async fn group_size_is_limited() {
    let server = TestServer::start_with(Config {
        max_group_members: 3,
        ..test_config()
    })
    .await;
    let all = users(&server, &["alice", "bob", "carol", "dave"]).await;
    let ids: Vec<UserId> = all.iter().map(uid).collect();
    let err = all[0].create_group("Big", &ids[1..]).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::PayloadTooLarge));
    assert!(
        all[0]
            .conversations()
            .await
            .unwrap()
            .conversations
            .is_empty(),
        "nothing created"
    );
    let id = all[0]
        .create_group("Small", &ids[1..3])
        .await
        .unwrap()
        .conversation_id;
    let err = all[0].add_members(id, &ids[3..]).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::PayloadTooLarge));
    assert_eq!(all[0].conversation(id).await.unwrap().members.len(), 3);
}

#[tokio::test]
async fn receipt_summary_arrives_when_the_last_member_reads() {
    let server = TestServer::start().await;
    let [alice, bob, carol] =
        <[Client; 3]>::try_from(users(&server, &["alice", "bob", "carol"]).await)
            .ok()
            .unwrap();
    let id = alice
        .create_group("Readers", &[uid(&bob), uid(&carol)])
        .await
        .unwrap()
        .conversation_id;
    let mut a = alice.connect(None).await.unwrap();
    let mut b = bob.connect(None).await.unwrap();
    let mut c = carol.connect(None).await.unwrap();
    a.send_text(id, "m", "read me").await.unwrap();
    let (seq, _) = expect_sent(&mut a, "m").await;
    expect_message(&mut b).await;
    expect_message(&mut c).await;

    let read = |up_to_seq| ClientFrame::Receipt {
        conversation_id: id,
        status: ReceiptStatus::Read,
        up_to_seq,
    };
    b.send(&read(seq)).await.unwrap();
    // Not before everyone has read, and never a per-member receipt to others.
    expect_no_frame(&mut a, Duration::from_millis(400), |f| {
        matches!(
            f,
            ServerFrame::ReceiptSummary { .. } | ServerFrame::Receipt { .. }
        )
    })
    .await;
    c.send(&read(seq)).await.unwrap();
    let summary = expect_frame(&mut a, "summary", |f| {
        matches!(f, ServerFrame::ReceiptSummary { .. })
    })
    .await;
    assert_eq!(
        summary,
        ServerFrame::ReceiptSummary {
            conversation_id: id,
            delivered_all_up_to: seq,
            read_all_up_to: seq,
        }
    );
    expect_frame(&mut b, "summary", |f| {
        matches!(f, ServerFrame::ReceiptSummary { .. })
    })
    .await;
    let details = alice.conversation(id).await.unwrap();
    assert_eq!(
        (details.delivered_all_up_to, details.read_all_up_to),
        (seq, seq)
    );
    assert!(details.members.iter().all(|m| m.read_up_to >= seq));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1024_member_group_reaches_everyone_in_order() {
    const MEMBERS: usize = 1024;
    const BURST: u64 = 20;
    let server = TestServer::start_with(Config {
        argon2_memory_kib: 64,
        ..test_config()
    })
    .await;
    // Register and log everyone in, a few at a time.
    let mut clients: Vec<Client> = Vec::with_capacity(MEMBERS);
    for chunk in (0..MEMBERS).collect::<Vec<_>>().chunks(32) {
        let batch = join_all(chunk.iter().map(|i| {
            let api = server.client.clone();
            async move {
                let name = format!("member{i:04}");
                api.register(&name, PASSWORD).await.expect("register");
                api.login(&name, PASSWORD).await.expect("login")
            }
        }))
        .await;
        clients.extend(batch);
    }
    let ids: Vec<UserId> = clients.iter().map(uid).collect();
    let group: ConversationId = clients[0]
        .create_group("Everyone", &ids[1..])
        .await
        .unwrap()
        .conversation_id;
    let mut sockets: Vec<Socket> = Vec::with_capacity(MEMBERS);
    for chunk in clients.chunks(64) {
        let batch = join_all(chunk.iter().map(|c| c.connect(None))).await;
        sockets.extend(batch.into_iter().map(|s| s.expect("connect")));
    }
    let mut sender = sockets.remove(0);
    for i in 0..BURST {
        sender
            .send_text(group, &format!("b{i}"), &format!("burst {i}"))
            .await
            .unwrap();
    }
    for i in 0..BURST {
        let (seq, _) = expect_sent(&mut sender, &format!("b{i}")).await;
        assert_eq!(seq, i + 2, "after the created message");
    }
    let results = join_all(sockets.into_iter().map(|mut socket| async move {
        let mut seqs = Vec::with_capacity(BURST as usize);
        while seqs.len() < BURST as usize {
            let (_, message) = expect_message(&mut socket).await;
            if message.kind == MessageKind::Text {
                seqs.push(message.seq);
            }
        }
        seqs
    }))
    .await;
    let expected: Vec<u64> = (2..BURST + 2).collect();
    for seqs in &results {
        assert_eq!(seqs, &expected, "every member gets every message, in order");
    }
    assert_eq!(results.len(), MEMBERS - 1);
}
