//! The one conformance suite for every [`Store`] implementation.
//!
//! Each check is a plain async function over a [`Backend`]; the
//! `conformance!` macro at the bottom runs every one of them against SQLite
//! (a temp file) and PostgreSQL (a fresh database per test on the machine's
//! server, `PARLEY_TEST_POSTGRES_URL` to override; skipped when unreachable
//! unless `CI=true`). A behaviour written here holds for both engines.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parley_proto::api::{ConversationKind, PresenceVisibility};
use parley_proto::{
    ConversationId, DeviceId, MessageKind, ReceiptStatus, Role, SystemEvent, UserId,
};
use parley_store::*;
use support::fixtures::{device, user};

/// Where a test's data lives; `open` may be called again (a restart, or a
/// second process on the same data).
enum Backend {
    Sqlite(tempfile::TempDir),
    Postgres(support::TestDatabase),
}

impl Backend {
    fn sqlite() -> Backend {
        Backend::Sqlite(tempfile::tempdir().expect("temp dir"))
    }

    async fn postgres() -> Option<Backend> {
        match support::TestDatabase::create().await {
            Ok(db) => Some(Backend::Postgres(db)),
            Err(why) => {
                support::skip_or_fail(&why);
                None
            }
        }
    }

    fn config(&self) -> StoreConfig {
        match self {
            Backend::Sqlite(dir) => support::fixtures::sqlite_config(dir.path()),
            Backend::Postgres(db) => db.config(),
        }
    }

    async fn try_open(&self) -> StoreResult<(Arc<dyn Store>, CommitReceiver)> {
        parley_store::open(&self.config()).await
    }

    async fn open(&self) -> (Arc<dyn Store>, CommitReceiver) {
        self.try_open().await.expect("open store")
    }
}

const MAX: usize = 1024;

fn text(conversation: ConversationId, sender: UserId, device: DeviceId, key: &str) -> NewMessage {
    NewMessage {
        conversation_id: conversation,
        sender_id: sender,
        sender_device_id: device,
        client_msg_id: key.into(),
        text: format!("text of {key}"),
        reply_to_seq: None,
        now_ms: 3_000,
        ..NewMessage::default()
    }
}

async fn group(store: &dyn Store, creator: UserId, members: &[UserId]) -> ConversationRecord {
    store
        .create_group(NewGroup {
            creator,
            name: "friends".into(),
            member_ids: members.to_vec(),
            max_members: MAX,
            now_ms: 4_000,
        })
        .await
        .expect("create group")
}

fn change(conversation: ConversationId, actor: UserId, kind: GroupChangeKind) -> GroupChange {
    GroupChange {
        conversation,
        actor,
        kind,
        max_members: MAX,
        now_ms: 5_000,
    }
}

async fn history_all(
    store: &dyn Store,
    conversation: ConversationId,
    viewer: UserId,
) -> StoreResult<Vec<u64>> {
    let (messages, _) = store
        .history(HistoryQuery {
            conversation,
            viewer,
            before_seq: None,
            after_seq: Some(0),
            limit: 100,
        })
        .await?;
    Ok(messages.iter().map(|m| m.seq).collect())
}

/// The next `n` announcements, waiting for each: the store answers the
/// caller before it announces, so an event may trail its call a little.
async fn take(events: &mut CommitReceiver, n: usize) -> Vec<Committed> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let event = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .expect("an announcement within 10 s")
            .expect("the commit stream is open");
        out.push(event);
    }
    out
}

/// Every event already announced, without waiting.
fn drain(events: &mut CommitReceiver) -> Vec<Committed> {
    let mut out = Vec::new();
    while let Ok(event) = events.try_recv() {
        out.push(event);
    }
    out
}

fn message_seqs(events: &[Committed]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match e {
            Committed::Message { message, .. } => Some(message.seq),
            Committed::Receipt(_) => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The checks.

async fn users_devices_and_revocation(backend: &Backend) {
    let (store, _events) = backend.open().await;
    let store = &*store;
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    assert_ne!(alice, bob);
    let taken = store
        .create_user(NewUser {
            username: "alice".into(),
            display_name: "other".into(),
            password_hash: "x".into(),
            now_ms: 1,
            is_admin: false,
        })
        .await;
    assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");

    let record = store
        .user_by_username("alice")
        .await
        .unwrap()
        .expect("alice");
    assert_eq!(record.id, alice);
    assert_eq!(record.display_name, "ALICE");
    assert_eq!(record.password_hash, "$argon2id$fake");
    assert_eq!(record.presence_visibility, PresenceVisibility::Everyone);
    assert_eq!(record.last_seen_ms, None);
    assert_eq!(record.created_at_ms, 1_000);
    assert_eq!(store.user_by_id(alice).await.unwrap(), Some(record));
    assert_eq!(store.user_by_id(UserId(987_654)).await.unwrap(), None);
    assert_eq!(store.user_by_username("nobody").await.unwrap(), None);

    store
        .set_presence_visibility(alice, PresenceVisibility::Nobody)
        .await
        .unwrap();
    store.set_last_seen(alice, 500).await.unwrap();
    store.set_last_seen(alice, 400).await.unwrap();
    let record = store.user_by_id(alice).await.unwrap().unwrap();
    assert_eq!(record.presence_visibility, PresenceVisibility::Nobody);
    assert_eq!(record.last_seen_ms, Some(500), "last seen never goes back");

    let phone = store
        .create_device(alice, "phone".into(), 10)
        .await
        .unwrap();
    let laptop = store
        .create_device(alice, "laptop".into(), 11)
        .await
        .unwrap();
    assert_eq!(phone.user_id, alice);
    assert_eq!(phone.name, "phone");
    assert_eq!(phone.created_at_ms, 10);
    assert!(matches!(
        store.create_device(UserId(987_654), "x".into(), 1).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        store.devices(alice).await.unwrap(),
        vec![phone.clone(), laptop.clone()]
    );
    assert!(store.devices(bob).await.unwrap().is_empty());
    assert!(store.revoked_devices().await.unwrap().is_empty());

    assert!(matches!(
        store.revoke_device(bob, phone.id, 20).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.revoke_device(alice, DeviceId(987_654), 20).await,
        Err(StoreError::NotFound(_))
    ));
    store.revoke_device(alice, phone.id, 20).await.unwrap();
    store.revoke_device(alice, phone.id, 21).await.unwrap();
    assert_eq!(store.devices(alice).await.unwrap(), vec![laptop]);
    assert_eq!(store.revoked_devices().await.unwrap(), vec![phone.id]);
    store.shutdown().await;
}

async fn direct_get_or_create_is_idempotent(backend: &Backend) {
    let (store_arc, _events) = backend.open().await;
    let store = &*store_arc;
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    let (first, created) = store.get_or_create_direct(alice, bob, 10).await.unwrap();
    assert!(created);
    assert_eq!(first.kind, ConversationKind::Direct);
    assert_eq!(first.last_seq, 0);
    assert_eq!(first.name, None);
    let ids: Vec<UserId> = first.members.iter().map(|m| m.user_id).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&alice) && ids.contains(&bob));
    assert!(
        first
            .members
            .iter()
            .all(|m| m.role == Role::Member && m.joined_seq == 1)
    );
    let (again, created) = store.get_or_create_direct(bob, alice, 11).await.unwrap();
    assert!(!created);
    assert_eq!(again.id, first.id);
    assert_eq!(store.conversation(first.id).await.unwrap(), Some(again));

    // Concurrent calls still make one conversation.
    let carol = user(store, "carol").await;
    let calls: Vec<_> = (0..8)
        .map(|i| {
            let store = store_arc.clone();
            let (a, b) = if i % 2 == 0 {
                (alice, carol)
            } else {
                (carol, alice)
            };
            tokio::spawn(async move { store.get_or_create_direct(a, b, 12).await.unwrap() })
        })
        .collect();
    let mut results = Vec::new();
    for call in calls {
        results.push(call.await.unwrap());
    }
    assert_eq!(results.iter().filter(|(_, created)| *created).count(), 1);
    assert!(
        results
            .iter()
            .all(|(record, _)| record.id == results[0].0.id)
    );

    assert!(matches!(
        store.get_or_create_direct(alice, alice, 1).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.get_or_create_direct(alice, UserId(987_654), 1).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        store.conversation(ConversationId(987_654)).await.unwrap(),
        None
    );
    store.shutdown().await;
}

async fn group_administration(backend: &Backend) {
    let (store, mut events) = backend.open().await;
    let store = &*store;
    let admin = user(store, "admin").await;
    let bob = user(store, "bob").await;
    let carol = user(store, "carol").await;
    let dave = user(store, "dave").await;
    let outsider = user(store, "outsider").await;

    // Creation: the creator is admin; duplicates and the creator are ignored.
    let g = store
        .create_group(NewGroup {
            creator: admin,
            name: "  friends  ".into(),
            member_ids: vec![bob, bob, admin, carol],
            max_members: MAX,
            now_ms: 4_000,
        })
        .await
        .unwrap();
    assert_eq!(g.kind, ConversationKind::Group);
    assert_eq!(g.name.as_deref(), Some("friends"));
    assert_eq!(g.last_seq, 1);
    let roles: Vec<(UserId, Role)> = g.members.iter().map(|m| (m.user_id, m.role)).collect();
    assert_eq!(
        roles,
        vec![
            (admin, Role::Admin),
            (bob, Role::Member),
            (carol, Role::Member)
        ]
    );
    let created = take(&mut events, 1).await;
    let [
        Committed::Message {
            message,
            recipients,
        },
    ] = created.as_slice()
    else {
        panic!("one created message: {created:?}")
    };
    assert_eq!(message.kind, MessageKind::System);
    assert_eq!(message.event, Some(SystemEvent::Created));
    assert_eq!(message.user_ids, Some(vec![admin, bob, carol]));
    assert_eq!(message.name.as_deref(), Some("friends"));
    assert_eq!(recipients.len(), 3);
    assert!(recipients.iter().all(|r| r.cursor == 1));

    // Creation refusals.
    let too_big = store
        .create_group(NewGroup {
            creator: admin,
            name: "big".into(),
            member_ids: vec![bob, carol],
            max_members: 2,
            now_ms: 1,
        })
        .await;
    assert!(
        matches!(too_big, Err(StoreError::TooLarge(_))),
        "{too_big:?}"
    );
    let unknown = store
        .create_group(NewGroup {
            creator: admin,
            name: "x".into(),
            member_ids: vec![UserId(987_654)],
            max_members: MAX,
            now_ms: 1,
        })
        .await;
    assert!(
        matches!(unknown, Err(StoreError::NotFound(_))),
        "{unknown:?}"
    );
    let bad_name = store
        .create_group(NewGroup {
            creator: admin,
            name: "   ".into(),
            member_ids: vec![],
            max_members: MAX,
            now_ms: 1,
        })
        .await;
    assert!(
        matches!(bad_name, Err(StoreError::Invalid(_))),
        "{bad_name:?}"
    );
    assert!(drain(&mut events).is_empty(), "refusals announce nothing");

    // Only admins administer; outsiders cannot even try.
    let add_dave = GroupChangeKind::Add { users: vec![dave] };
    for (actor, kind) in [
        (bob, add_dave.clone()),
        (
            bob,
            GroupChangeKind::Rename {
                name: "mine".into(),
            },
        ),
        (bob, GroupChangeKind::Remove { user: carol }),
        (
            bob,
            GroupChangeKind::SetRole {
                user: bob,
                role: Role::Admin,
            },
        ),
        (outsider, add_dave.clone()),
        (outsider, GroupChangeKind::Remove { user: outsider }),
    ] {
        let refused = store.change_group(change(g.id, actor, kind.clone())).await;
        assert!(
            matches!(refused, Err(StoreError::Forbidden(_))),
            "{kind:?}: {refused:?}"
        );
    }
    let missing = store
        .change_group(change(ConversationId(987_654), admin, add_dave.clone()))
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );
    let unknown_user = store
        .change_group(change(
            g.id,
            admin,
            GroupChangeKind::Add {
                users: vec![UserId(987_654)],
            },
        ))
        .await;
    assert!(
        matches!(unknown_user, Err(StoreError::NotFound(_))),
        "{unknown_user:?}"
    );
    let over = store
        .change_group(GroupChange {
            max_members: 3,
            ..change(g.id, admin, add_dave.clone())
        })
        .await;
    assert!(matches!(over, Err(StoreError::TooLarge(_))), "{over:?}");
    let (direct, _) = store.get_or_create_direct(admin, bob, 1).await.unwrap();
    let not_group = store
        .change_group(change(direct.id, admin, add_dave.clone()))
        .await;
    assert!(
        matches!(not_group, Err(StoreError::Invalid(_))),
        "{not_group:?}"
    );
    assert!(drain(&mut events).is_empty());

    // Add: a system message every member (the new one included) receives.
    let g2 = store
        .change_group(change(g.id, admin, add_dave.clone()))
        .await
        .unwrap();
    assert_eq!(g2.last_seq, 2);
    assert_eq!(g2.member(dave).unwrap().joined_seq, 2);
    assert_eq!(g2.member(dave).unwrap().role, Role::Member);
    let added = take(&mut events, 1).await;
    let [
        Committed::Message {
            message,
            recipients,
        },
    ] = added.as_slice()
    else {
        panic!("{added:?}")
    };
    assert_eq!(message.event, Some(SystemEvent::MemberAdded));
    assert_eq!(message.user_ids, Some(vec![dave]));
    assert_eq!(message.sender_id, admin);
    assert_eq!(recipients.len(), 4);
    // Adding present members changes nothing and says nothing.
    let same = store
        .change_group(change(g.id, admin, add_dave.clone()))
        .await
        .unwrap();
    assert_eq!(same.last_seq, 2);
    assert!(drain(&mut events).is_empty());

    // Rename.
    let renamed = store
        .change_group(change(
            g.id,
            admin,
            GroupChangeKind::Rename {
                name: "pals".into(),
            },
        ))
        .await
        .unwrap();
    assert_eq!(renamed.name.as_deref(), Some("pals"));
    assert_eq!(renamed.last_seq, 3);
    let bad = store
        .change_group(change(
            g.id,
            admin,
            GroupChangeKind::Rename { name: "".into() },
        ))
        .await;
    assert!(matches!(bad, Err(StoreError::Invalid(_))));

    // Roles: promote bob; the last admin cannot be demoted.
    let promoted = store
        .change_group(change(
            g.id,
            admin,
            GroupChangeKind::SetRole {
                user: bob,
                role: Role::Admin,
            },
        ))
        .await
        .unwrap();
    assert_eq!(promoted.member(bob).unwrap().role, Role::Admin);
    assert_eq!(promoted.last_seq, 4);
    let demote_self = store
        .change_group(change(
            g.id,
            bob,
            GroupChangeKind::SetRole {
                user: bob,
                role: Role::Member,
            },
        ))
        .await
        .unwrap();
    assert_eq!(demote_self.member(bob).unwrap().role, Role::Member);
    let last_admin = store
        .change_group(change(
            g.id,
            admin,
            GroupChangeKind::SetRole {
                user: admin,
                role: Role::Member,
            },
        ))
        .await;
    assert!(
        matches!(last_admin, Err(StoreError::Invalid(_))),
        "{last_admin:?}"
    );
    let missing_member = store
        .change_group(change(
            g.id,
            admin,
            GroupChangeKind::SetRole {
                user: outsider,
                role: Role::Admin,
            },
        ))
        .await;
    assert!(matches!(missing_member, Err(StoreError::NotFound(_))));
    let events_now = take(&mut events, 3).await;
    let roles: Vec<(Option<SystemEvent>, Option<Role>)> = events_now
        .iter()
        .filter_map(|e| match e {
            Committed::Message { message, .. } => Some((message.event, message.role)),
            Committed::Receipt(_) => None,
        })
        .collect();
    assert_eq!(
        roles,
        vec![
            (Some(SystemEvent::Renamed), None),
            (Some(SystemEvent::RoleChanged), Some(Role::Admin)),
            (Some(SystemEvent::RoleChanged), Some(Role::Member)),
        ]
    );

    // Removal: the removed member receives its removal, and nothing after.
    let removed = store
        .change_group(change(g.id, admin, GroupChangeKind::Remove { user: carol }))
        .await
        .unwrap();
    assert!(removed.member(carol).is_none());
    let removal = take(&mut events, 1).await;
    let [
        Committed::Message {
            message,
            recipients,
        },
    ] = removal.as_slice()
    else {
        panic!("{removal:?}")
    };
    assert_eq!(message.event, Some(SystemEvent::MemberRemoved));
    assert_eq!(message.user_ids, Some(vec![carol]));
    assert!(recipients.iter().any(|r| r.user_id == carol));
    let removal_seq = message.seq;
    let missing = store
        .change_group(change(g.id, admin, GroupChangeKind::Remove { user: carol }))
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );
    let (admin_device, carol_device) = (device(store, admin).await, device(store, carol).await);
    let after = store
        .append_message(text(g.id, admin, admin_device, "after-carol"))
        .await
        .unwrap();
    let after_events = take(&mut events, 1).await;
    let [Committed::Message { recipients, .. }] = after_events.as_slice() else {
        panic!("{after_events:?}")
    };
    assert!(recipients.iter().all(|r| r.user_id != carol));
    let refused = store
        .append_message(text(g.id, carol, carol_device, "ghost"))
        .await;
    assert!(
        matches!(refused, Err(StoreError::Forbidden(_))),
        "{refused:?}"
    );
    let carol_sees = history_all(store, g.id, carol).await.unwrap();
    assert_eq!(carol_sees.last(), Some(&removal_seq));
    assert!(!carol_sees.contains(&after.message.seq));
    let carol_inbox = store.inbox_since(carol, 0, 100).await.unwrap();
    assert_eq!(
        carol_inbox.last().map(|e| e.message.seq),
        Some(removal_seq),
        "the removal is the last thing carol receives"
    );

    // Leaving: any member may remove itself.
    let left = store
        .change_group(change(g.id, dave, GroupChangeKind::Remove { user: dave }))
        .await
        .unwrap();
    assert!(left.member(dave).is_none());
    let leave = take(&mut events, 1).await;
    assert!(matches!(
        leave.as_slice(),
        [Committed::Message { message, .. }] if message.event == Some(SystemEvent::MemberLeft) && message.sender_id == dave
    ));

    // The last admin leaving promotes the longest-standing member.
    let before = store.conversation(g.id).await.unwrap().unwrap();
    let handed = store
        .change_group(change(g.id, admin, GroupChangeKind::Remove { user: admin }))
        .await
        .unwrap();
    assert_eq!(handed.last_seq, before.last_seq + 2);
    assert_eq!(handed.member(bob).unwrap().role, Role::Admin);
    let handover = take(&mut events, 2).await;
    // (event, user_ids, role, number of recipients)
    type Seen = (
        Option<SystemEvent>,
        Option<Vec<UserId>>,
        Option<Role>,
        usize,
    );
    let kinds: Vec<Seen> = handover
        .iter()
        .filter_map(|e| match e {
            Committed::Message {
                message,
                recipients,
            } => Some((
                message.event,
                message.user_ids.clone(),
                message.role,
                recipients.len(),
            )),
            Committed::Receipt(_) => None,
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            (Some(SystemEvent::MemberLeft), Some(vec![admin]), None, 2),
            (
                Some(SystemEvent::RoleChanged),
                Some(vec![bob]),
                Some(Role::Admin),
                1
            ),
        ]
    );
    // Re-admission by the new admin.
    let back = store
        .change_group(change(
            g.id,
            bob,
            GroupChangeKind::Add { users: vec![admin] },
        ))
        .await
        .unwrap();
    assert_eq!(back.member(admin).unwrap().role, Role::Member);
    store.shutdown().await;
}

async fn history_follows_membership_periods(backend: &Backend) {
    let (store, _events) = backend.open().await;
    let store = &*store;
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    let stranger = user(store, "stranger").await;
    let alice_device = device(store, alice).await;
    let g = group(store, alice, &[bob]).await; // seq 1
    for i in 0..3 {
        store
            .append_message(text(g.id, alice, alice_device, &format!("a{i}")))
            .await
            .unwrap(); // 2..=4
    }
    store
        .change_group(change(g.id, alice, GroupChangeKind::Remove { user: bob }))
        .await
        .unwrap(); // 5
    for i in 0..2 {
        store
            .append_message(text(g.id, alice, alice_device, &format!("b{i}")))
            .await
            .unwrap(); // 6, 7
    }
    store
        .change_group(change(
            g.id,
            alice,
            GroupChangeKind::Add { users: vec![bob] },
        ))
        .await
        .unwrap(); // 8
    store
        .append_message(text(g.id, alice, alice_device, "c0"))
        .await
        .unwrap(); // 9

    assert_eq!(
        history_all(store, g.id, alice).await.unwrap(),
        (1..=9).collect::<Vec<_>>()
    );
    assert_eq!(
        history_all(store, g.id, bob).await.unwrap(),
        vec![1, 2, 3, 4, 5, 8, 9]
    );
    let rejoined = store.conversation(g.id).await.unwrap().unwrap();
    let bob_member = rejoined.member(bob).unwrap();
    assert_eq!(bob_member.joined_seq, 8);
    assert_eq!(
        (bob_member.delivered_up_to, bob_member.read_up_to),
        (7, 7),
        "a member's cursors start below its joining seq"
    );

    // Keyset paging: newest first by default, pages ascending inside.
    let page = |before: Option<u64>, after: Option<u64>, limit| HistoryQuery {
        conversation: g.id,
        viewer: alice,
        before_seq: before,
        after_seq: after,
        limit,
    };
    let (newest, more) = store.history(page(None, None, 3)).await.unwrap();
    assert_eq!(
        newest.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![7, 8, 9]
    );
    assert!(more);
    let (older, more) = store.history(page(Some(7), None, 3)).await.unwrap();
    assert_eq!(
        older.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![4, 5, 6]
    );
    assert!(more);
    let (oldest, more) = store.history(page(Some(4), None, 10)).await.unwrap();
    assert_eq!(
        oldest.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert!(!more);
    let (forward, more) = store.history(page(None, Some(2), 2)).await.unwrap();
    assert_eq!(
        forward.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![3, 4]
    );
    assert!(more);
    let (window, more) = store.history(page(Some(6), Some(3), 100)).await.unwrap();
    assert_eq!(window.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![4, 5]);
    assert!(!more);
    let (clamped, _) = store.history(page(None, None, 0)).await.unwrap();
    assert_eq!(clamped.len(), 1, "limit is clamped to 1..=100");
    let (bob_page, _) = store
        .history(HistoryQuery {
            viewer: bob,
            ..page(None, Some(4), 100)
        })
        .await
        .unwrap();
    assert_eq!(
        bob_page.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![5, 8, 9]
    );
    let stored = &newest[2];
    assert_eq!(stored.text.as_deref(), Some("text of c0"));
    assert_eq!(stored.client_msg_id.as_deref(), Some("c0"));
    assert_eq!(stored.sender_device_id, Some(alice_device));

    assert!(matches!(
        history_all(store, g.id, stranger).await,
        Err(StoreError::Forbidden(_))
    ));
    assert!(matches!(
        history_all(store, ConversationId(987_654), alice).await,
        Err(StoreError::NotFound(_))
    ));
    store.shutdown().await;
}

async fn append_dedup_and_reopen(backend: &Backend) {
    let (store, mut events) = backend.open().await;
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    let carol = user(&*store, "carol").await;
    let alice_device = device(&*store, alice).await;
    let carol_device = device(&*store, carol).await;
    let (direct, _) = store.get_or_create_direct(alice, bob, 1).await.unwrap();

    let first = store
        .append_message(text(direct.id, alice, alice_device, "k1"))
        .await
        .unwrap();
    assert!(!first.duplicate);
    assert_eq!(first.message.seq, 1);
    assert_eq!(first.message.kind, MessageKind::Text);
    assert_eq!(first.message.sender_device_id, Some(alice_device));
    let repeat = store
        .append_message(NewMessage {
            text: "different text, same key".into(),
            ..text(direct.id, alice, alice_device, "k1")
        })
        .await
        .unwrap();
    assert!(repeat.duplicate);
    assert_eq!(repeat.message, first.message);
    // The key is per sender: bob may use it too.
    let bob_device = device(&*store, bob).await;
    let bobs = store
        .append_message(text(direct.id, bob, bob_device, "k1"))
        .await
        .unwrap();
    assert!(!bobs.duplicate);
    assert_eq!(bobs.message.seq, 2);
    let announced = take(&mut events, 2).await;
    assert_eq!(
        message_seqs(&announced),
        vec![1, 2],
        "a repeat announces nothing"
    );

    // Sender's own cursors move with its sends.
    let conversation = store.conversation(direct.id).await.unwrap().unwrap();
    assert_eq!(conversation.last_seq, 2);
    let alice_member = conversation.member(alice).unwrap();
    assert_eq!(
        (alice_member.delivered_up_to, alice_member.read_up_to),
        (1, 1)
    );

    // Refusals.
    let outsider = store
        .append_message(text(direct.id, carol, carol_device, "x"))
        .await;
    assert!(
        matches!(outsider, Err(StoreError::Forbidden(_))),
        "{outsider:?}"
    );
    let missing = store
        .append_message(text(ConversationId(987_654), alice, alice_device, "y"))
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );
    for reply in [0, 3, 99] {
        let bad = store
            .append_message(NewMessage {
                reply_to_seq: Some(reply),
                ..text(direct.id, alice, alice_device, &format!("r{reply}"))
            })
            .await;
        assert!(
            matches!(bad, Err(StoreError::Invalid(_))),
            "reply to {reply}: {bad:?}"
        );
    }
    let reply = store
        .append_message(NewMessage {
            reply_to_seq: Some(1),
            ..text(direct.id, alice, alice_device, "r1")
        })
        .await
        .unwrap();
    assert_eq!(reply.message.seq, 3);
    assert_eq!(reply.message.reply_to_seq, Some(1));

    // Appends called one after another commit in call order, even when
    // awaited later (the contract the server's pipelined sends rely on).
    let pending: Vec<PendingAppend> = (0..20)
        .map(|i| store.append_message(text(direct.id, alice, alice_device, &format!("p{i}"))))
        .collect();
    let mut seqs = Vec::new();
    for append in pending {
        seqs.push(append.await.unwrap().message.seq);
    }
    assert_eq!(seqs, (4..24).collect::<Vec<_>>());

    // A restart keeps dedup.
    store.shutdown().await;
    drop(store);
    let (store, _events) = backend.open().await;
    let again = store
        .append_message(text(direct.id, alice, alice_device, "k1"))
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.message, first.message);
    let next = store
        .append_message(text(direct.id, alice, alice_device, "k-new"))
        .await
        .unwrap();
    assert_eq!(next.message.seq, 24);
    store.shutdown().await;
}

/// Two store instances (two processes on one database) and many tasks
/// append into one conversation at once: `seq`s stay unique and gapless,
/// every member's inbox cursors unique and increasing.
async fn gapless_under_concurrency(backend: &Backend) {
    const SENDERS: usize = 4;
    const PER_TASK: usize = 40;
    let (first, mut first_events) = backend.open().await;
    let (second, mut second_events) = backend.open().await;
    let mut users = Vec::new();
    for i in 0..SENDERS {
        let id = user(&*first, &format!("sender{i}")).await;
        users.push((id, device(&*first, id).await));
    }
    let ids: Vec<UserId> = users.iter().map(|u| u.0).collect();
    let g = group(&*first, ids[0], &ids[1..]).await;
    let (direct, _) = first.get_or_create_direct(ids[0], ids[1], 1).await.unwrap();
    let _ = take(&mut first_events, 1).await;

    let mut tasks = Vec::new();
    for (i, &(sender, device)) in users.iter().enumerate() {
        for (instance, store) in [(0, first.clone()), (1, second.clone())] {
            let conversation = if i == 1 && instance == 1 {
                direct.id
            } else {
                g.id
            };
            tasks.push(tokio::spawn(async move {
                let mut seqs = Vec::new();
                // Five sends in flight at a time, as a busy socket would.
                for chunk in 0..PER_TASK / 5 {
                    let pending: Vec<PendingAppend> = (0..5)
                        .map(|k| {
                            let key = format!("{instance}-{chunk}-{k}");
                            store.append_message(text(conversation, sender, device, &key))
                        })
                        .collect();
                    for append in pending {
                        let appended = append.await.expect("append under contention");
                        assert!(!appended.duplicate);
                        seqs.push(appended.message.seq);
                    }
                }
                (conversation, seqs)
            }));
        }
    }
    let mut per_conversation: HashMap<ConversationId, Vec<u64>> = HashMap::new();
    for task in tasks {
        let (conversation, seqs) = task.await.unwrap();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "one task's sends keep their order"
        );
        per_conversation
            .entry(conversation)
            .or_default()
            .extend(seqs);
    }
    let mut group_seqs = per_conversation.remove(&g.id).unwrap();
    group_seqs.sort_unstable();
    let expected: Vec<u64> = (2..2 + group_seqs.len() as u64).collect();
    assert_eq!(group_seqs, expected, "group seqs are unique and gapless");
    let mut direct_seqs = per_conversation.remove(&direct.id).unwrap();
    direct_seqs.sort_unstable();
    assert_eq!(direct_seqs, (1..=PER_TASK as u64).collect::<Vec<_>>());
    assert_eq!(
        history_all(&*second, g.id, ids[2]).await.unwrap().len(),
        100.min(group_seqs.len() + 1)
    );

    // Every user's inbox: cursors 1..=n, each message once, per conversation
    // in seq order.
    for &user in &ids {
        let head = second.inbox_head(user).await.unwrap();
        let mut entries = Vec::new();
        let mut since = 0;
        loop {
            let page = first.inbox_since(user, since, 100).await.unwrap();
            let Some(last) = page.last() else { break };
            since = last.cursor;
            entries.extend(page);
        }
        let cursors: Vec<u64> = entries.iter().map(|e| e.cursor).collect();
        assert_eq!(
            cursors,
            (1..=head).collect::<Vec<_>>(),
            "inbox cursors of {user}"
        );
        let mut last_seq: HashMap<ConversationId, u64> = HashMap::new();
        for entry in &entries {
            let previous = last_seq.insert(entry.message.conversation_id, entry.message.seq);
            assert!(
                previous.is_none_or(|p| p < entry.message.seq),
                "inbox is in seq order"
            );
        }
        let expected = group_seqs.len()
            + 1
            + if user == ids[0] || user == ids[1] {
                PER_TASK
            } else {
                0
            };
        assert_eq!(entries.len(), expected);
    }

    // Each process announces its own commits in commit order.
    let total = group_seqs.len() + direct_seqs.len();
    let (mut first_seen, mut second_seen) = (Vec::new(), Vec::new());
    for _ in 0..500 {
        first_seen.extend(drain(&mut first_events));
        second_seen.extend(drain(&mut second_events));
        if first_seen.len() + second_seen.len() >= total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        first_seen.len() + second_seen.len(),
        total,
        "every commit announced once"
    );
    assert!(!first_seen.is_empty() && !second_seen.is_empty());
    for events in [first_seen, second_seen] {
        let mut last: HashMap<ConversationId, u64> = HashMap::new();
        let mut cursors: HashMap<UserId, u64> = HashMap::new();
        for event in events {
            if let Committed::Message {
                message,
                recipients,
            } = event
            {
                let previous = last.insert(message.conversation_id, message.seq);
                assert!(
                    previous.is_none_or(|p| p < message.seq),
                    "events in seq order"
                );
                for r in recipients {
                    let previous = cursors.insert(r.user_id, r.cursor);
                    assert!(previous.is_none_or(|p| p < r.cursor), "cursors increase");
                }
            }
        }
    }
    first.shutdown().await;
    second.shutdown().await;
}

async fn receipts_are_monotonic(backend: &Backend) {
    let (store, mut events) = backend.open().await;
    let store = &*store;
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    let carol = user(store, "carol").await;
    let alice_device = device(store, alice).await;
    let (direct, _) = store.get_or_create_direct(alice, bob, 1).await.unwrap();
    for i in 0..5 {
        store
            .append_message(text(direct.id, alice, alice_device, &format!("d{i}")))
            .await
            .unwrap();
    }
    let _ = take(&mut events, 5).await;

    let delivered = store
        .advance_receipt(
            direct.id,
            bob,
            Some(DeviceId(77)),
            ReceiptStatus::Delivered,
            3,
        )
        .await
        .unwrap();
    assert!(delivered.advanced);
    assert_eq!((delivered.delivered_up_to, delivered.read_up_to), (3, 0));
    assert_eq!(delivered.kind, ConversationKind::Direct);
    assert_eq!(delivered.device_id, Some(DeviceId(77)));
    assert_eq!(delivered.summary, None);
    assert_eq!(
        delivered.members.len(),
        2,
        "a direct receipt goes to both members"
    );
    let announced = take(&mut events, 1).await;
    assert!(matches!(announced.as_slice(), [Committed::Receipt(c)] if *c == delivered));

    let backwards = store
        .advance_receipt(direct.id, bob, None, ReceiptStatus::Delivered, 1)
        .await
        .unwrap();
    assert!(!backwards.advanced);
    assert_eq!(backwards.delivered_up_to, 3);
    assert!(drain(&mut events).is_empty(), "no change, no announcement");

    let read = store
        .advance_receipt(direct.id, bob, None, ReceiptStatus::Read, 4)
        .await
        .unwrap();
    assert!(read.advanced);
    assert_eq!(
        (read.delivered_up_to, read.read_up_to),
        (4, 4),
        "read implies delivered"
    );
    let capped = store
        .advance_receipt(direct.id, bob, None, ReceiptStatus::Read, 1_000)
        .await
        .unwrap();
    assert_eq!(
        (capped.delivered_up_to, capped.read_up_to),
        (5, 5),
        "capped at last seq"
    );
    let stored = store.conversation(direct.id).await.unwrap().unwrap();
    let bob_member = stored.member(bob).unwrap();
    assert_eq!((bob_member.delivered_up_to, bob_member.read_up_to), (5, 5));
    let _ = take(&mut events, 2).await;

    assert!(matches!(
        store
            .advance_receipt(direct.id, carol, None, ReceiptStatus::Read, 1)
            .await,
        Err(StoreError::Forbidden(_))
    ));
    assert!(matches!(
        store
            .advance_receipt(ConversationId(987_654), bob, None, ReceiptStatus::Read, 1)
            .await,
        Err(StoreError::NotFound(_))
    ));

    // Groups: a summary only when the minimum over all members advances.
    let g = group(store, alice, &[bob, carol]).await; // seq 1
    for i in 0..3 {
        store
            .append_message(text(g.id, alice, alice_device, &format!("g{i}")))
            .await
            .unwrap(); // 2..=4
    }
    let _ = take(&mut events, 4).await;
    let bob_delivered = store
        .advance_receipt(g.id, bob, None, ReceiptStatus::Delivered, 4)
        .await
        .unwrap();
    assert!(bob_delivered.advanced);
    assert_eq!(bob_delivered.summary, None, "carol is still behind");
    assert_eq!(
        bob_delivered.members,
        vec![bob],
        "only the member's own devices hear it"
    );
    let carol_delivered = store
        .advance_receipt(g.id, carol, None, ReceiptStatus::Delivered, 3)
        .await
        .unwrap();
    assert_eq!(carol_delivered.summary, Some((3, 0)));
    assert_eq!(
        carol_delivered.members.len(),
        3,
        "a summary goes to everyone"
    );
    let carol_read = store
        .advance_receipt(g.id, carol, None, ReceiptStatus::Read, 4)
        .await
        .unwrap();
    assert_eq!(
        carol_read.summary,
        Some((4, 0)),
        "read implies delivered; bob has read nothing"
    );
    let carol_again = store
        .advance_receipt(g.id, carol, None, ReceiptStatus::Read, 4)
        .await
        .unwrap();
    assert!(!carol_again.advanced);
    assert_eq!(carol_again.summary, None);
    let bob_read = store
        .advance_receipt(g.id, bob, None, ReceiptStatus::Read, 2)
        .await
        .unwrap();
    assert_eq!(bob_read.summary, Some((4, 2)));
    let record = store.conversation(g.id).await.unwrap().unwrap();
    assert_eq!((record.delivered_all_up_to, record.read_all_up_to), (4, 2));
    let receipts: Vec<Option<(u64, u64)>> = take(&mut events, 4)
        .await
        .into_iter()
        .filter_map(|e| match e {
            Committed::Receipt(change) => Some(change.summary),
            Committed::Message { .. } => None,
        })
        .collect();
    assert_eq!(
        receipts,
        vec![None, Some((3, 0)), Some((4, 0)), Some((4, 2))]
    );
    store.shutdown().await;
}

async fn conversation_list(backend: &Backend) {
    let (store, _events) = backend.open().await;
    let store = &*store;
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    let bob_device = device(store, bob).await;
    let (direct, _) = store.get_or_create_direct(alice, bob, 10).await.unwrap();
    let g = group(store, alice, &[bob]).await;
    for i in 0..3 {
        store
            .append_message(text(direct.id, bob, bob_device, &format!("b{i}")))
            .await
            .unwrap();
    }
    store
        .advance_receipt(direct.id, alice, None, ReceiptStatus::Read, 1)
        .await
        .unwrap();
    let list = store.conversations_for(alice).await.unwrap();
    assert_eq!(
        list.iter().map(|s| s.conversation.id).collect::<Vec<_>>(),
        vec![direct.id, g.id],
        "most recent activity first"
    );
    assert_eq!(
        list[0].unread_count, 2,
        "others' messages above the read cursor"
    );
    assert_eq!(list[0].last_message.as_ref().map(|m| m.seq), Some(3));
    assert_eq!(list[0].conversation.member(alice).unwrap().read_up_to, 1);
    assert_eq!(
        list[1].last_message.as_ref().map(|m| m.event),
        Some(Some(SystemEvent::Created))
    );
    assert_eq!(list[1].unread_count, 0);
    store
        .change_group(change(g.id, alice, GroupChangeKind::Remove { user: bob }))
        .await
        .unwrap();
    let bobs = store.conversations_for(bob).await.unwrap();
    // §11: a group the user left or was removed from stays listed, marked
    // `left`, with no members; only the direct conversation is active.
    assert_eq!(
        bobs.iter()
            .filter(|s| !s.left)
            .map(|s| s.conversation.id)
            .collect::<Vec<_>>(),
        vec![direct.id]
    );
    let left = bobs.iter().find(|s| s.conversation.id == g.id).unwrap();
    assert!(left.left && left.conversation.members.is_empty());
    store.shutdown().await;
}

async fn inbox_replay_and_retention(backend: &Backend) {
    let (store, mut events) = backend.open().await;
    let store = &*store;
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    let alice_device = device(store, alice).await;
    assert_eq!(store.inbox_head(alice).await.unwrap(), 0);
    assert!(store.inbox_since(alice, 0, 10).await.unwrap().is_empty());
    let (direct, _) = store.get_or_create_direct(alice, bob, 1).await.unwrap();
    for i in 0..6 {
        store
            .append_message(text(direct.id, alice, alice_device, &format!("m{i}")))
            .await
            .unwrap();
    }
    // The commit stream's cursors are the inbox's.
    let announced: Vec<(u64, Vec<Recipient>)> = take(&mut events, 6)
        .await
        .into_iter()
        .filter_map(|e| match e {
            Committed::Message {
                message,
                recipients,
            } => Some((message.seq, recipients)),
            Committed::Receipt(_) => None,
        })
        .collect();
    assert_eq!(announced.len(), 6);
    for (seq, recipients) in &announced {
        assert_eq!(
            recipients.len(),
            2,
            "own messages reach the sender's other devices too"
        );
        assert!(recipients.iter().all(|r| r.cursor == *seq));
    }

    assert_eq!(store.inbox_head(bob).await.unwrap(), 6);
    let all = store.inbox_since(bob, 0, 100).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.cursor).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5, 6]
    );
    assert_eq!(all[2].message.client_msg_id.as_deref(), Some("m2"));
    let tail = store.inbox_since(bob, 4, 100).await.unwrap();
    assert_eq!(
        tail.iter().map(|e| e.cursor).collect::<Vec<_>>(),
        vec![5, 6]
    );
    let limited = store.inbox_since(bob, 0, 2).await.unwrap();
    assert_eq!(limited.len(), 2);
    assert!(store.inbox_since(bob, 6, 100).await.unwrap().is_empty());
    assert!(matches!(
        store.inbox_since(bob, 7, 100).await,
        Err(StoreError::ResyncRequired)
    ));
    assert!(matches!(
        store.inbox_since(UserId(987_654), 0, 10).await,
        Err(StoreError::NotFound(_))
    ));

    // Pruning everything older than now drops the six entries per user.
    let cutoff = parley_proto::now_ms() + 1;
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(store.prune_inbox(cutoff).await.unwrap(), 12);
    assert_eq!(store.prune_inbox(cutoff).await.unwrap(), 0);
    for since in [0, 3, 5] {
        assert!(
            matches!(
                store.inbox_since(bob, since, 10).await,
                Err(StoreError::ResyncRequired)
            ),
            "since {since} is older than what is kept"
        );
    }
    assert!(store.inbox_since(bob, 6, 10).await.unwrap().is_empty());
    let later = store
        .append_message(text(direct.id, alice, alice_device, "later"))
        .await
        .unwrap();
    let kept = store.inbox_since(bob, 6, 10).await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].cursor, 7, "cursors continue after pruning");
    assert_eq!(kept[0].message, later.message);
    assert_eq!(store.inbox_head(bob).await.unwrap(), 7);

    // What a socket reads when it opens is the head and the page after
    // its `since`, as the two reads give them; a `since` older than what
    // is kept still comes with the head.
    let opening = store.inbox_opening(bob, None, 10).await.unwrap();
    assert_eq!(opening.head, 7);
    assert!(opening.first_page.is_none());
    let opening = store.inbox_opening(bob, Some(6), 10).await.unwrap();
    assert_eq!(opening.head, 7);
    assert_eq!(
        opening.first_page.unwrap().unwrap(),
        store.inbox_since(bob, 6, 10).await.unwrap()
    );
    let opening = store.inbox_opening(bob, Some(3), 10).await.unwrap();
    assert_eq!(opening.head, 7);
    assert!(matches!(
        opening.first_page,
        Some(Err(StoreError::ResyncRequired))
    ));
    let unknown = store
        .inbox_opening(UserId(987_654), Some(0), 10)
        .await
        .unwrap();
    assert_eq!(unknown.head, 0);
    assert!(matches!(
        unknown.first_page,
        Some(Err(StoreError::NotFound(_)))
    ));
    store.shutdown().await;
}

/// The same keys arriving through two processes at once: one username, one
/// direct pair, one `(sender, client_msg_id)`. Exactly one of each is
/// stored; the others answer as a conflict, an existing conversation, or a
/// repeat of the original.
async fn races_between_processes(backend: &Backend) {
    let (first, _first_events) = backend.open().await;
    let (second, _second_events) = backend.open().await;
    let stores = [first.clone(), second.clone()];

    let mut signups = Vec::new();
    for i in 0..8 {
        let store = stores[i % 2].clone();
        signups.push(tokio::spawn(async move {
            store
                .create_user(NewUser {
                    username: "contested".into(),
                    display_name: format!("try {i}"),
                    password_hash: "x".into(),
                    now_ms: 1,
                    is_admin: false,
                })
                .await
        }));
    }
    let mut winners = 0;
    for signup in signups {
        match signup.await.unwrap() {
            Ok(_) => winners += 1,
            Err(StoreError::Conflict(_)) => {}
            Err(err) => panic!("unexpected: {err}"),
        }
    }
    assert_eq!(winners, 1, "one account per username");

    let alice = user(&*first, "alice").await;
    let bob = user(&*first, "bob").await;
    let alice_device = device(&*first, alice).await;
    let mut directs = Vec::new();
    for i in 0..8 {
        let store = stores[i % 2].clone();
        directs.push(tokio::spawn(async move {
            store.get_or_create_direct(alice, bob, 1).await.unwrap()
        }));
    }
    let mut created = 0;
    let mut ids = Vec::new();
    for direct in directs {
        let (record, was_created) = direct.await.unwrap();
        created += usize::from(was_created);
        ids.push(record.id);
    }
    assert_eq!(created, 1, "one direct conversation per pair");
    assert!(ids.iter().all(|id| *id == ids[0]));

    // Every key sent through both processes at once, several times.
    let mut sends = Vec::new();
    for key in 0..10 {
        for copy in 0..4 {
            let store = stores[copy % 2].clone();
            let message = text(ids[0], alice, alice_device, &format!("k{key}"));
            sends.push(tokio::spawn(async move {
                store.append_message(message).await.unwrap()
            }));
        }
    }
    let mut originals: HashMap<String, (u64, parley_proto::MessageId)> = HashMap::new();
    let mut fresh = 0;
    for send in sends {
        let appended = send.await.unwrap();
        fresh += usize::from(!appended.duplicate);
        let key = appended.message.client_msg_id.clone().unwrap();
        let seen = (appended.message.seq, appended.message.message_id);
        let previous = originals.insert(key, seen);
        assert!(
            previous.is_none_or(|p| p == seen),
            "a repeat returns the original"
        );
    }
    assert_eq!(fresh, 10, "each key stored once");
    let seqs = history_all(&*second, ids[0], bob).await.unwrap();
    assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
    first.shutdown().await;
    second.shutdown().await;
}

/// Two processes send into several groups whose members overlap, so every
/// batch locks several conversations and users: no deadlock is left
/// unresolved, and every conversation and inbox stays gapless.
async fn crossing_conversations_between_processes(backend: &Backend) {
    const GROUPS: usize = 4;
    const PER_TASK: usize = 25;
    let (first, _first_events) = backend.open().await;
    let (second, _second_events) = backend.open().await;
    let mut users = Vec::new();
    for i in 0..GROUPS + 1 {
        let id = user(&*first, &format!("member{i}")).await;
        users.push((id, device(&*first, id).await));
    }
    // Group g holds users g and g+1 (and user 0 everywhere): neighbours share
    // members, so batches of different groups touch the same user rows.
    let mut groups = Vec::new();
    for g in 0..GROUPS {
        let mut members = vec![users[g + 1].0];
        if g > 0 {
            members.push(users[g].0);
        }
        groups.push(group(&*first, users[0].0, &members).await.id);
    }
    let mut tasks = Vec::new();
    for (instance, store) in [first.clone(), second.clone()].into_iter().enumerate() {
        for g in 0..GROUPS {
            // The two processes walk the groups in opposite orders.
            let order: Vec<ConversationId> = if instance == 0 {
                groups
                    .iter()
                    .cycle()
                    .skip(g)
                    .take(GROUPS)
                    .copied()
                    .collect()
            } else {
                groups
                    .iter()
                    .rev()
                    .cycle()
                    .skip(g)
                    .take(GROUPS)
                    .copied()
                    .collect()
            };
            let (sender, sender_device) = users[0];
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for n in 0..PER_TASK {
                    let pending: Vec<PendingAppend> = order
                        .iter()
                        .map(|&conversation| {
                            let key = format!("{instance}-{g}-{n}-{conversation}");
                            store.append_message(text(conversation, sender, sender_device, &key))
                        })
                        .collect();
                    for append in pending {
                        append.await.expect("append across conversations");
                    }
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    let per_group = (2 * GROUPS * PER_TASK) as u64;
    for &g in &groups {
        let record = second.conversation(g).await.unwrap().unwrap();
        assert_eq!(record.last_seq, per_group + 1);
    }
    for &(user, _) in &users {
        let head = second.inbox_head(user).await.unwrap();
        let mut cursors = Vec::new();
        let mut since = 0;
        loop {
            let page = first.inbox_since(user, since, 100).await.unwrap();
            let Some(last) = page.last() else { break };
            since = last.cursor;
            cursors.extend(page.iter().map(|e| e.cursor));
        }
        assert_eq!(cursors, (1..=head).collect::<Vec<_>>(), "inbox of {user}");
    }
    let everywhere = second.inbox_head(users[0].0).await.unwrap();
    assert_eq!(everywhere, GROUPS as u64 * (per_group + 1));
    if let Backend::Postgres(db) = backend {
        // The global lock order means PostgreSQL never had to break a
        // deadlock (its statistics arrive within about a second).
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        let row = client
            .query_one(
                "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, i64>(0), 0, "deadlocks between the two writers");
    }
    first.shutdown().await;
    second.shutdown().await;
}

/// Receipts for one group from two processes at once: cursors end at the
/// maximum asked, and the announced group summary never goes back.
async fn concurrent_receipts_between_processes(backend: &Backend) {
    let (first, mut first_events) = backend.open().await;
    let (second, mut second_events) = backend.open().await;
    let admin = user(&*first, "admin").await;
    let admin_device = device(&*first, admin).await;
    let mut readers = Vec::new();
    for i in 0..4 {
        readers.push(user(&*first, &format!("reader{i}")).await);
    }
    let g = group(&*first, admin, &readers).await;
    for i in 0..30 {
        first
            .append_message(text(g.id, admin, admin_device, &format!("m{i}")))
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for (r, &reader) in readers.iter().enumerate() {
        for (instance, store) in [first.clone(), second.clone()].into_iter().enumerate() {
            tasks.push(tokio::spawn(async move {
                for up_to in (1..=31).filter(|s| s % 2 == instance as u64) {
                    let status = if (up_to + r as u64).is_multiple_of(3) {
                        ReceiptStatus::Read
                    } else {
                        ReceiptStatus::Delivered
                    };
                    store
                        .advance_receipt(g.id, reader, None, status, up_to)
                        .await
                        .unwrap();
                }
                store
                    .advance_receipt(g.id, reader, None, ReceiptStatus::Read, 31)
                    .await
                    .unwrap();
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    let record = first.conversation(g.id).await.unwrap().unwrap();
    for member in &record.members {
        assert_eq!((member.delivered_up_to, member.read_up_to), (31, 31));
    }
    assert_eq!(
        (record.delivered_all_up_to, record.read_all_up_to),
        (31, 31)
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    for events in [&mut first_events, &mut second_events] {
        let mut last = (0, 0);
        let mut per_user: HashMap<UserId, (u64, u64)> = HashMap::new();
        for event in drain(events) {
            if let Committed::Receipt(change) = event {
                if let Some(summary) = change.summary {
                    assert!(
                        summary.0 >= last.0 && summary.1 >= last.1,
                        "summary went back"
                    );
                    assert!(summary != last, "a summary only when the minimum advances");
                    last = summary;
                }
                let cursors = (change.delivered_up_to, change.read_up_to);
                let previous = per_user.insert(change.user_id, cursors);
                assert!(
                    previous.is_none_or(|p| p.0 <= cursors.0 && p.1 <= cursors.1),
                    "a member's cursors never go back"
                );
                assert!(
                    change.read_up_to <= change.delivered_up_to,
                    "read implies delivered"
                );
            }
        }
    }
    first.shutdown().await;
    second.shutdown().await;
}

async fn newer_schema_is_refused(backend: &Backend) {
    let (store, _events) = backend.open().await;
    store.shutdown().await;
    drop(store);
    match backend {
        Backend::Sqlite(dir) => {
            let conn = rusqlite::Connection::open(dir.path().join("parley.db")).unwrap();
            conn.execute("UPDATE schema_meta SET value=999 WHERE key='version'", [])
                .unwrap();
        }
        Backend::Postgres(db) => {
            let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(connection);
            client
                .execute("UPDATE schema_meta SET value=999 WHERE key='version'", &[])
                .await
                .unwrap();
        }
    }
    match backend.try_open().await {
        Err(err) => assert!(err.to_string().contains("newer than this binary"), "{err}"),
        Ok(_) => panic!("a newer schema must be refused"),
    }
}

/// A user's inbox interleaves its conversations, skips what it missed while
/// removed, and replays exactly the announced (cursor, message) pairs from
/// any cursor, in pages. SQLite stores the inbox as runs per conversation,
/// so this is where a run that breaks or resumes must be right.
async fn inbox_interleaves_conversations(backend: &Backend) {
    let (store, mut events) = backend.open().await;
    let store = &*store;
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    let carol = user(store, "carol").await;
    let alice_device = device(store, alice).await;
    let carol_device = device(store, carol).await;
    let (direct, _) = store.get_or_create_direct(alice, bob, 1).await.unwrap();
    let team = group(store, alice, &[bob, carol]).await.id;
    let mut expected: Vec<(u64, ConversationId, u64)> = Vec::new();
    let record = |events: Vec<Committed>, expected: &mut Vec<(u64, ConversationId, u64)>| {
        for event in events {
            if let Committed::Message {
                message,
                recipients,
            } = event
                && let Some(r) = recipients.iter().find(|r| r.user_id == bob)
            {
                expected.push((r.cursor, message.conversation_id, message.seq));
            }
        }
    };
    record(take(&mut events, 1).await, &mut expected);
    let pattern = [
        direct.id, team, team, direct.id, team, direct.id, direct.id, team,
    ];
    for (i, &conversation) in pattern.iter().enumerate() {
        let (sender, sender_device) = if i % 3 == 0 && conversation == team {
            (carol, carol_device)
        } else {
            (alice, alice_device)
        };
        store
            .append_message(text(conversation, sender, sender_device, &format!("a{i}")))
            .await
            .unwrap();
    }
    record(take(&mut events, pattern.len()).await, &mut expected);
    // Bob is removed, misses two group messages, and is re-added.
    store
        .change_group(change(team, alice, GroupChangeKind::Remove { user: bob }))
        .await
        .unwrap();
    record(take(&mut events, 1).await, &mut expected);
    for i in 0..2 {
        store
            .append_message(text(team, carol, carol_device, &format!("away{i}")))
            .await
            .unwrap();
    }
    store
        .append_message(text(direct.id, alice, alice_device, "meanwhile"))
        .await
        .unwrap();
    record(take(&mut events, 3).await, &mut expected);
    store
        .change_group(change(
            team,
            alice,
            GroupChangeKind::Add { users: vec![bob] },
        ))
        .await
        .unwrap();
    store
        .append_message(text(team, carol, carol_device, "back"))
        .await
        .unwrap();
    record(take(&mut events, 2).await, &mut expected);

    let cursors: Vec<u64> = expected.iter().map(|e| e.0).collect();
    assert_eq!(
        cursors,
        (1..=expected.len() as u64).collect::<Vec<_>>(),
        "consecutive cursors"
    );
    assert_eq!(store.inbox_head(bob).await.unwrap(), expected.len() as u64);
    for since in 0..=expected.len() {
        for limit in [1, 3, 100] {
            let got: Vec<(u64, ConversationId, u64)> = store
                .inbox_since(bob, since as u64, limit)
                .await
                .unwrap()
                .into_iter()
                .map(|e| (e.cursor, e.message.conversation_id, e.message.seq))
                .collect();
            let want: Vec<_> = expected.iter().skip(since).take(limit).copied().collect();
            assert_eq!(got, want, "since {since} limit {limit}");
        }
    }
}

/// A write lock taken from outside the store, so its writer waits.
enum OutsideLock {
    Sqlite(rusqlite::Connection),
    Postgres(tokio_postgres::Client),
}

impl Backend {
    /// Takes a lock the writer must wait for before it can write to
    /// `conversation`: SQLite's write lock on the file, or PostgreSQL's row
    /// lock on the conversation.
    async fn lock_writes(&self, conversation: ConversationId) -> OutsideLock {
        match self {
            Backend::Sqlite(dir) => {
                let conn = rusqlite::Connection::open(dir.path().join("parley.db")).unwrap();
                conn.execute_batch("BEGIN IMMEDIATE").unwrap();
                OutsideLock::Sqlite(conn)
            }
            Backend::Postgres(db) => {
                let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(connection);
                client.batch_execute("BEGIN").await.unwrap();
                client
                    .execute(
                        "SELECT 1 FROM conversations WHERE id = $1 FOR UPDATE",
                        &[&conversation.0],
                    )
                    .await
                    .unwrap();
                OutsideLock::Postgres(client)
            }
        }
    }
}

impl OutsideLock {
    /// Returns once the store's writer is waiting for this lock. SQLite's
    /// writer checks abandoned sends after it got the lock, so there is
    /// nothing to wait for; PostgreSQL's checks them while it fills a batch,
    /// so it must be inside its batch (waiting on the row) first.
    async fn writer_waiting(&self) {
        let OutsideLock::Postgres(client) = self else {
            return;
        };
        for _ in 0..500 {
            let waiting: i64 = client
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity
                     WHERE datname = current_database() AND wait_event_type = 'Lock'",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            if waiting > 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the writer never waited for the row lock");
    }

    async fn release(self) {
        match self {
            OutsideLock::Sqlite(conn) => conn.execute_batch("COMMIT").unwrap(),
            OutsideLock::Postgres(client) => client.batch_execute("COMMIT").await.unwrap(),
        }
    }
}

/// A send whose future is dropped before the writer reaches it is not
/// written: no seq is used, nothing is announced, and the same key sent
/// again later is a new message, not a duplicate.
async fn abandoned_sends_are_not_written(backend: &Backend) {
    let (store, mut events) = backend.open().await;
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    let alice_device = device(&*store, alice).await;
    let (direct, _) = store.get_or_create_direct(alice, bob, 1).await.unwrap();
    let first = store
        .append_message(text(direct.id, alice, alice_device, "k1"))
        .await
        .unwrap();
    assert_eq!(first.message.seq, 1);

    let lock = backend.lock_writes(direct.id).await;
    let kept = store.append_message(text(direct.id, alice, alice_device, "k2"));
    let kept = tokio::spawn(kept);
    lock.writer_waiting().await;
    // Enqueued, then its asker goes away (a socket closing does this).
    drop(store.append_message(text(direct.id, alice, alice_device, "k3")));
    lock.release().await;
    assert_eq!(kept.await.unwrap().unwrap().message.seq, 2);
    let after = store
        .append_message(text(direct.id, alice, alice_device, "k4"))
        .await
        .unwrap();
    assert_eq!(after.message.seq, 3, "k3 took no seq");
    assert_eq!(message_seqs(&take(&mut events, 3).await), vec![1, 2, 3]);
    let again = store
        .append_message(text(direct.id, alice, alice_device, "k3"))
        .await
        .unwrap();
    assert!(!again.duplicate, "k3 was never stored");
    assert_eq!(again.message.seq, 4);
    assert_eq!(
        history_all(&*store, direct.id, alice).await.unwrap(),
        vec![1, 2, 3, 4]
    );
    store.shutdown().await;
}

/// Runs each named check against every backend.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(&super::Backend::sqlite()).await;
                }
            )*
        }
        mod postgres_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(backend) = super::Backend::postgres().await else { return };
                    super::$name(&backend).await;
                }
            )*
        }
    };
}

conformance!(
    users_devices_and_revocation,
    abandoned_sends_are_not_written,
    direct_get_or_create_is_idempotent,
    group_administration,
    history_follows_membership_periods,
    append_dedup_and_reopen,
    gapless_under_concurrency,
    receipts_are_monotonic,
    conversation_list,
    inbox_replay_and_retention,
    inbox_interleaves_conversations,
    newer_schema_is_refused,
    races_between_processes,
    crossing_conversations_between_processes,
    concurrent_receipts_between_processes,
);
