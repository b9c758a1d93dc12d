//! Administration (protocol §14) at the boundary: the real server on port
//! 0, driven through `parley-client`; the first administrator made with
//! `parley_server::admin::create_user` (what `parley admin create-user`
//! runs) against the running server's store. Erasure is checked by opening
//! the store after the server stopped. `PARLEY_TEST_BACKEND=postgres` runs
//! it all on PostgreSQL.

mod common;

use common::*;
use parley_client::{Client, ClientError, Method};
use parley_proto::api::AdminCreateUserRequest;
use parley_proto::{ErrorCode, Role, UserId, close_code};
use parley_server::accounts::NewAccount;
use parley_store::HistoryQuery;

/// Makes `name` a server administrator through the store and logs it in.
async fn first_admin(server: &TestServer, name: &str) -> Client {
    let record = parley_server::admin::create_user(
        server.config.clone(),
        NewAccount {
            username: name.into(),
            password: PASSWORD.into(),
            display_name: None,
            is_admin: true,
        },
    )
    .await
    .expect("create the first administrator");
    assert!(record.is_admin);
    let admin = server.client.login(name, PASSWORD).await.expect("login");
    assert!(admin.me().await.unwrap().is_admin);
    admin
}

fn code(result: Result<impl std::fmt::Debug, ClientError>) -> ErrorCode {
    match result {
        Err(err) => err
            .code()
            .unwrap_or_else(|| panic!("no protocol code: {err}")),
        Ok(value) => panic!("expected an error, got {value:?}"),
    }
}

/// Every admin endpoint answers 401 without or with a bad token and 403 to
/// a user who is not an administrator, before looking at the request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_refuses_non_administrators() {
    let server = TestServer::start().await;
    let admin = first_admin(&server, "root").await;
    let alice = server.user("alice").await;
    assert!(!alice.me().await.unwrap().is_admin);
    let target = uid(&admin);
    let create = r#"{"username":"mallory","password":"long enough pw"}"#;
    let password = r#"{"password":"long enough pw"}"#;
    let endpoints: Vec<(Method, String, Option<&str>)> = vec![
        (Method::GET, "/v1/admin/users".into(), None),
        (Method::GET, "/v1/admin/users?q=a&limit=5".into(), None),
        (Method::POST, "/v1/admin/users".into(), Some(create)),
        (
            Method::POST,
            format!("/v1/admin/users/{target}/disable"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/admin/users/{target}/enable"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/admin/users/{target}/password"),
            Some(password),
        ),
        (Method::DELETE, format!("/v1/admin/users/{target}"), None),
        (Method::GET, "/v1/admin/stats".into(), None),
    ];
    let anonymous = server.client.clone();
    let forged = server.client.with_token("not.a-token");
    for (method, path, body) in &endpoints {
        for (who, client, status, want) in [
            ("anonymous", &anonymous, 401, "unauthorized"),
            ("bad token", &forged, 401, "unauthorized"),
            ("non-admin", &alice, 403, "forbidden"),
        ] {
            let (got, body) = client.raw(method.clone(), path, *body).await.unwrap();
            assert_eq!(got, status, "{who} {method} {path}: {body}");
            assert_eq!(body["error"]["code"], want, "{who} {method} {path}");
        }
    }
    // Nothing happened: mallory does not exist, root is still enabled.
    let list = admin.admin_users(None, None, None).await.unwrap();
    let names: Vec<&str> = list.users.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(names, ["root", "alice"]);
    assert!(list.users.iter().all(|u| !u.disabled));
}

/// Listing, searching and paging; creating users (admins too) whatever
/// the registration setting; bad input is a 400 and unknown ids a 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_search_and_create() {
    let mut config = test_config();
    config.registration_open = false;
    let server = TestServer::start_with(config).await;
    let admin = first_admin(&server, "root").await;
    for (name, display) in [
        ("alice", "Alice Liddell"),
        ("bob", "Robert"),
        ("carol", "Carol"),
    ] {
        let made = admin
            .admin_create_user(&AdminCreateUserRequest {
                username: name.into(),
                password: PASSWORD.into(),
                display_name: Some(display.into()),
                is_admin: name == "carol",
            })
            .await
            .expect("admin create");
        assert_eq!(
            (made.username.as_str(), made.is_admin),
            (name, name == "carol")
        );
    }
    assert_eq!(
        code(server.client.register("dave", PASSWORD).await),
        ErrorCode::Forbidden,
        "registration stays closed for everyone else"
    );
    let carol = server.client.login("carol", PASSWORD).await.unwrap();
    assert!(carol.me().await.unwrap().is_admin);
    assert_eq!(
        code(
            admin
                .admin_create_user(&AdminCreateUserRequest {
                    username: "alice".into(),
                    password: PASSWORD.into(),
                    display_name: None,
                    is_admin: false,
                })
                .await
        ),
        ErrorCode::Conflict
    );
    for (username, password) in [("No Caps", PASSWORD), ("erin", "short")] {
        let body = AdminCreateUserRequest {
            username: username.into(),
            password: password.into(),
            display_name: None,
            is_admin: false,
        };
        assert_eq!(
            code(admin.admin_create_user(&body).await),
            ErrorCode::BadRequest
        );
    }

    let page = admin.admin_users(None, None, Some(2)).await.unwrap();
    let names: Vec<&str> = page.users.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(names, ["root", "alice"]);
    let next = page.next_after.expect("a next page");
    let page = admin.admin_users(None, Some(next), Some(2)).await.unwrap();
    let names: Vec<&str> = page.users.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(names, ["bob", "carol"]);
    assert_eq!(page.next_after, None);
    // The search matches username or display name, ignoring case.
    let found = admin.admin_users(Some("ROB"), None, None).await.unwrap();
    assert_eq!(found.users.len(), 1);
    assert_eq!(found.users[0].username, "bob");
    let found = admin.admin_users(Some("lidd"), None, None).await.unwrap();
    assert_eq!(found.users[0].username, "alice");
    assert!(
        admin
            .admin_users(Some("_"), None, None)
            .await
            .unwrap()
            .users
            .is_empty()
    );
    for query in ["limit=0", "limit=201", "limit=x", "after=nope"] {
        let (status, body) = admin
            .raw(Method::GET, &format!("/v1/admin/users?{query}"), None)
            .await
            .unwrap();
        assert_eq!(status, 400, "{query}: {body}");
    }
    let nobody = UserId(987_654);
    assert_eq!(code(admin.admin_disable(nobody).await), ErrorCode::NotFound);
    assert_eq!(code(admin.admin_enable(nobody).await), ErrorCode::NotFound);
    assert_eq!(
        code(admin.admin_reset_password(nobody, PASSWORD).await),
        ErrorCode::NotFound
    );
    assert_eq!(code(admin.admin_delete(nobody).await), ErrorCode::NotFound);
    // An administrator cannot lock itself out.
    assert_eq!(
        code(admin.admin_disable(uid(&admin)).await),
        ErrorCode::BadRequest
    );
    assert_eq!(
        code(admin.admin_delete(uid(&admin)).await),
        ErrorCode::BadRequest
    );
}

/// Disabling closes the user's sockets at once and refuses its tokens and
/// logins; enabling lets it log in again (old tokens stay dead). A password
/// reset logs every device out and only the new password works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_enable_and_reset_password() {
    let server = TestServer::start().await;
    let admin = first_admin(&server, "root").await;
    let bob = server.user("bob").await;
    let bob_phone = server.device("bob").await;
    let mut socket = bob.connect(None).await.expect("connect");
    let mut other_socket = bob_phone.connect(None).await.expect("connect");

    let view = admin.admin_disable(uid(&bob)).await.expect("disable");
    assert!(view.disabled && !view.erased);
    expect_close(&mut socket, close_code::UNAUTHORIZED).await;
    expect_close(&mut other_socket, close_code::UNAUTHORIZED).await;
    assert_eq!(code(bob.me().await), ErrorCode::Unauthorized);
    assert_eq!(code(bob_phone.me().await), ErrorCode::Unauthorized);
    assert!(
        bob.connect(None).await.is_err(),
        "old token on a new socket"
    );
    assert_eq!(
        code(server.client.login("bob", PASSWORD).await),
        ErrorCode::Forbidden
    );
    // A wrong password still says only "wrong username or password".
    assert_eq!(
        code(server.client.login("bob", "wrong password").await),
        ErrorCode::Unauthorized
    );
    let listed = admin.admin_users(Some("bob"), None, None).await.unwrap();
    assert!(listed.users[0].disabled);

    let view = admin.admin_enable(uid(&bob)).await.expect("enable");
    assert!(!view.disabled);
    assert_eq!(code(bob.me().await), ErrorCode::Unauthorized, "old token");
    let bob = server.device("bob").await;
    bob.me().await.expect("a new login works");

    let mut socket = bob.connect(None).await.expect("connect");
    admin
        .admin_reset_password(uid(&bob), "a brand new secret")
        .await
        .expect("reset");
    expect_close(&mut socket, close_code::UNAUTHORIZED).await;
    assert_eq!(code(bob.me().await), ErrorCode::Unauthorized);
    assert_eq!(
        code(server.client.login("bob", PASSWORD).await),
        ErrorCode::Unauthorized
    );
    server
        .client
        .login("bob", "a brand new secret")
        .await
        .expect("the new password works");
    assert_eq!(
        code(admin.admin_reset_password(uid(&bob), "short").await),
        ErrorCode::BadRequest
    );
}

/// Erasure closes the sockets, frees the name, and leaves in the store
/// none of what §14 lists: devices, blocks, settings, and the text of
/// every message the user wrote (they read as deleted to the others).
/// Stats count what is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_erases_the_account() {
    let mut server = TestServer::start().await;
    let admin = first_admin(&server, "root").await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let conversation = direct(&alice, &bob).await;
    // A group bob administers alone.
    let group = bob
        .create_group("bob's", &[uid(&alice)])
        .await
        .expect("group")
        .conversation_id;
    let canary = "wombat-canary-2c71f";
    bob.send(conversation, "b1", &format!("bob writes {canary}"))
        .await
        .expect("send");
    alice
        .send(conversation, "a1", "alice answers")
        .await
        .expect("send");
    bob.block(uid(&admin)).await.unwrap();
    alice.block(uid(&bob)).await.unwrap();
    bob.set_conversation_settings(
        conversation,
        &parley_proto::api::ConversationSettingsRequest {
            pinned: Some(true),
            ..Default::default()
        },
    )
    .await
    .unwrap();

    let stats = admin.admin_stats().await.unwrap();
    assert_eq!(
        (
            stats.users,
            stats.devices,
            stats.conversations,
            stats.messages
        ),
        (3, 3, 2, 2)
    );
    let mut socket = bob.connect(None).await.expect("connect");
    let stats = admin.admin_stats().await.unwrap();
    assert!(stats.live_sockets >= 1);

    admin.admin_delete(uid(&bob)).await.expect("delete");
    expect_close(&mut socket, close_code::UNAUTHORIZED).await;
    assert_eq!(code(bob.me().await), ErrorCode::Unauthorized);
    assert_eq!(
        code(server.client.login("bob", PASSWORD).await),
        ErrorCode::Unauthorized
    );
    assert_eq!(
        code(admin.admin_delete(uid(&bob)).await),
        ErrorCode::NotFound
    );
    // Bob left his group; alice, the longest-standing member, is its admin.
    let details = alice.conversation(group).await.unwrap();
    let members: Vec<(UserId, Role)> = details
        .members
        .iter()
        .map(|m| (m.user_id, m.role))
        .collect();
    assert_eq!(members, [(uid(&alice), Role::Admin)]);
    let presence = alice.presence(uid(&bob)).await.unwrap();
    assert!(
        !presence.online && presence.last_seen_ms.is_none(),
        "{presence:?}"
    );
    let history = alice.history(conversation, None, None, None).await.unwrap();
    let first = history.messages.iter().find(|m| m.seq == 1).unwrap();
    assert!(first.deleted && first.text.is_none(), "{first:?}");
    let listed = admin.admin_users(None, None, None).await.unwrap();
    let gone = listed
        .users
        .iter()
        .find(|u| u.user_id == uid(&bob))
        .unwrap();
    assert!(gone.erased && gone.disabled && gone.username != "bob");
    let stats = admin.admin_stats().await.unwrap();
    assert_eq!(
        (
            stats.users,
            stats.devices,
            stats.messages,
            stats.disabled_users
        ),
        (2, 2, 2, 0)
    );
    // The name is free again.
    let new_bob = server.user("bob").await;
    assert_ne!(uid(&new_bob), uid(&bob));

    // Read the store itself once the server has stopped.
    server.shutdown().await;
    let (store, _commits) = parley_store::open(&parley_server::store_config(&server.config))
        .await
        .expect("open the store");
    let record = store.user_by_id(uid(&bob)).await.unwrap().unwrap();
    assert!(record.erased_at_ms.is_some() && record.disabled_at_ms.is_some());
    assert!(record.password_hash.is_empty());
    assert_ne!(record.display_name, "bob");
    assert!(store.devices(uid(&bob)).await.unwrap().is_empty());
    assert!(store.blocks(uid(&bob)).await.unwrap().is_empty());
    assert!(store.blocks(uid(&alice)).await.unwrap().is_empty());
    let summaries = store.conversations_for(uid(&bob)).await.unwrap();
    assert!(summaries.iter().all(|s| !s.settings.pinned));
    let (messages, _) = store
        .history(HistoryQuery {
            conversation,
            viewer: uid(&alice),
            before_seq: None,
            after_seq: None,
            limit: 50,
        })
        .await
        .unwrap();
    let texts: Vec<Option<&str>> = messages.iter().map(|m| m.text.as_deref()).collect();
    assert_eq!(texts, [None, Some("alice answers")]);
    store.shutdown().await;
    drop(store);
    assert_canary_gone(&server, canary).await;
}

/// No byte of `canary` is left in the SQLite files, or in any message row
/// on PostgreSQL.
async fn assert_canary_gone(server: &TestServer, canary: &str) {
    match &server.config.database {
        None => {
            let path = server.config.data_dir.join("parley.db");
            {
                let conn = rusqlite::Connection::open(&path).unwrap();
                conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                    .unwrap();
            }
            for entry in std::fs::read_dir(&server.config.data_dir).unwrap() {
                let file = entry.unwrap().path();
                if file.is_dir() {
                    continue;
                }
                let bytes = std::fs::read(&file).unwrap();
                assert!(
                    !bytes.windows(canary.len()).any(|w| w == canary.as_bytes()),
                    "{canary} found in {}",
                    file.display()
                );
            }
        }
        Some(url) => {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(connection);
            let found: i64 = client
                .query_one(
                    "SELECT COUNT(*) FROM messages WHERE text LIKE $1",
                    &[&format!("%{canary}%")],
                )
                .await
                .unwrap()
                .get(0);
            assert_eq!(found, 0);
        }
    }
}
