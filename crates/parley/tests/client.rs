//! `parley-client` features the bench relies on: a socket over a TCP
//! stream the caller connected itself (its own source address and socket
//! options), and typed answers where the protocol has a body.

mod common;

use common::*;
use parley_proto::api::PresenceVisibility;
use parley_proto::close_code;

#[tokio::test]
async fn a_socket_over_a_callers_stream_authenticates_and_sends() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let conversation = direct(&alice, &bob).await;
    // The bench binds to a chosen 127.0.0.x; any loopback address works.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_zero_linger().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let stream = socket.connect(server.addr).await.unwrap();
    let mut socket = alice.connect_over(stream, None, None).await.unwrap();
    let ready = socket.ready.expect("ready kept");
    assert_eq!(ready.user_id, uid(&alice));
    socket.send_text(conversation, "k1", "hello").await.unwrap();
    let (seq, _) = expect_sent(&mut socket, "k1").await;
    assert_eq!(seq, 1);
    // Logging out closes it with the protocol's code.
    alice.logout().await.unwrap();
    expect_close(&mut socket, close_code::UNAUTHORIZED).await;
}

#[tokio::test]
async fn settings_answer_with_the_settings_in_force() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let settings = alice
        .set_presence_visibility(PresenceVisibility::Nobody)
        .await
        .unwrap();
    assert_eq!(settings.presence_visibility, PresenceVisibility::Nobody);
}
