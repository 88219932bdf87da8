//! Handshake and RPC over real loopback TCP.

use std::time::Duration;

use cairn_proto::pb::{AdminCommand, AdminReply, Frame, frame::Body};
use cairn_proto::{Identity, Role, RpcClient, accept, connect};
use tokio::net::TcpListener;

fn identity(node_id: u32, role: Role, secret: &str) -> Identity {
    Identity { node_id, role, secret: secret.into(), software_version: "test".into(), tls: None }
}

/// An echo server: answers every AdminCommand with an AdminReply of the same text.
async fn echo_server(secret: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let me = identity(49, Role::Mgmd, secret);
                let admit = |hello: &cairn_proto::pb::Hello| {
                    if hello.node_id == 13 { Err("node 13 is not in the config".to_string()) } else { Ok(()) }
                };
                let Ok(mut link) = accept(stream, &me, admit).await else { return };
                while let Some(frame) = link.receiver.recv().await {
                    if let Some(Body::AdminCommand(cmd)) = frame.body {
                        let reply = Frame {
                            request_id: frame.request_id,
                            body: Some(Body::AdminReply(AdminReply { text: cmd.command, ok: true })),
                        };
                        if link.sender.send(reply).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn rpc_round_trips_and_many_requests_share_a_connection() {
    let addr = echo_server("secret").await;
    let link = connect(&addr, &identity(1, Role::Admin, "secret")).await.unwrap();
    assert_eq!(link.peer.node_id, 49);
    let (client, _pushes) = RpcClient::new(link);
    let calls = (0..200).map(|i| {
        let client = client.clone();
        async move {
            let body = Body::AdminCommand(AdminCommand { command: format!("cmd {i}") });
            match client.call(body, Duration::from_secs(5)).await.unwrap() {
                Body::AdminReply(r) => assert_eq!(r.text, format!("cmd {i}")),
                other => panic!("unexpected {other:?}"),
            }
        }
    });
    let handles: Vec<_> = calls.map(tokio::spawn).collect();
    for h in handles {
        h.await.unwrap();
    }
}

#[tokio::test]
async fn wrong_secret_is_refused() {
    let addr = echo_server("secret").await;
    let err = connect(&addr, &identity(1, Role::Datad, "guess")).await.err().expect("must be refused");
    assert!(err.to_string().contains("did not prove the cluster secret"), "{err}");
}

#[tokio::test]
async fn admission_callback_can_refuse() {
    let addr = echo_server("secret").await;
    let err = connect(&addr, &identity(13, Role::Datad, "secret")).await.err().expect("must be refused");
    assert!(err.to_string().contains("not in the config"), "{err}");
}

#[tokio::test]
async fn a_silent_peer_times_out_instead_of_hanging() {
    // A listener that accepts and never speaks.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let _held = listener.accept().await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let started = std::time::Instant::now();
    assert!(connect(&addr, &identity(1, Role::Sqld, "s")).await.is_err());
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// A server whose admin clients may prove `admin_password`; answers each command with whether
/// the link proved it.
async fn admin_server(admin_password: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let me = identity(49, Role::Mgmd, "secret");
                let Ok(mut link) = cairn_proto::accept_admin(stream, &me, Some(admin_password), |_| Ok(())).await else {
                    return;
                };
                while let Some(frame) = link.receiver.recv().await {
                    let text = format!("admin={}", link.peer.admin_credential);
                    let body = Some(Body::AdminReply(AdminReply { text, ok: true }));
                    if link.sender.send(Frame { request_id: frame.request_id, body }).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

async fn admin_flag(addr: &str, me: &Identity) -> String {
    let (client, _) = RpcClient::new(connect(addr, me).await.unwrap());
    match client.call(Body::AdminCommand(AdminCommand { command: "x".into() }), Duration::from_secs(5)).await.unwrap() {
        Body::AdminReply(r) => r.text,
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn only_an_admin_client_may_prove_the_admin_password() {
    let addr = admin_server("admin-password").await;
    assert_eq!(admin_flag(&addr, &identity(0, Role::Admin, "admin-password")).await, "admin=true");
    assert_eq!(admin_flag(&addr, &identity(0, Role::Admin, "secret")).await, "admin=false");
    // A node cannot join with the admin password in place of the cluster secret.
    let err = connect(&addr, &identity(3, Role::Datad, "admin-password")).await.err().expect("must be refused");
    assert!(err.to_string().contains("did not prove the cluster secret"), "{err}");
    assert!(connect(&addr, &identity(0, Role::Admin, "guess")).await.is_err());
}
