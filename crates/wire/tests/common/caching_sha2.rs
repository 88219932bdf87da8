//! A server with one `caching_sha2_password` account and MySQL's fast-authentication cache, to
//! drive full authentication with real clients: the fast path succeeds only for an account that
//! already proved its password in full on this server, so a first login always takes the full
//! path (RSA on a plain connection).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use cairn_wire::{AuthRequest, ErrorPacket, RsaKeyPair, RsaKeySource, ServerOptions, caching_sha2_verifier, serve};
use tokio::net::TcpListener;

pub const USER: &str = "carol";
pub const PASSWORD: &str = "s3cret-pässword";

/// What one login attempt told the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    pub cleartext: bool,
    pub accepted: bool,
}

#[derive(Debug, Default)]
pub struct Gate {
    /// Accounts that completed a full authentication: the fast-authentication cache.
    pub cache: Mutex<HashSet<String>>,
    pub attempts: Mutex<Vec<Attempt>>,
}

struct GateHandler {
    gate: Arc<Gate>,
}

impl super::Login for GateHandler {
    fn login(&mut self, request: &AuthRequest<'_>) -> Result<(), ErrorPacket> {
        let verifier = caching_sha2_verifier(PASSWORD);
        let known = request.user == USER;
        let accepted = known
            && if request.cleartext {
                caching_sha2_verifier(request.auth_response) == verifier
            } else {
                self.gate.cache.lock().unwrap().contains(request.user)
                    && cairn_wire::verify_caching_sha2(request.scramble, request.auth_response, &verifier)
            };
        if accepted && request.cleartext {
            self.gate.cache.lock().unwrap().insert(request.user.to_string());
        }
        self.gate.attempts.lock().unwrap().push(Attempt { cleartext: request.cleartext, accepted });
        if accepted {
            Ok(())
        } else {
            let message = format!("Access denied for user '{}'@'127.0.0.1' (using password: YES)", request.user);
            Err(ErrorPacket::new(1045, "28000", message))
        }
    }
}

/// One key pair per test binary: generating one takes a moment in a debug build.
pub fn key_pair() -> &'static RsaKeyPair {
    static PAIR: std::sync::OnceLock<RsaKeyPair> = std::sync::OnceLock::new();
    PAIR.get_or_init(|| RsaKeyPair::generate(2048).expect("generate an RSA key pair"))
}

/// A key source holding [`key_pair`].
pub fn key_source() -> RsaKeySource {
    RsaKeySource::ready(key_pair().clone())
}

/// Starts a server on a free port whose connections use `rsa_key` (plain TCP, no TLS).
pub async fn start(rsa_key: Option<RsaKeySource>) -> (SocketAddr, Arc<Gate>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a free port");
    let addr = listener.local_addr().expect("local address");
    let gate = Arc::new(Gate::default());
    let shared = gate.clone();
    tokio::spawn(async move {
        let mut connection_id = 0;
        while let Ok((stream, peer)) = listener.accept().await {
            connection_id += 1;
            let options = ServerOptions { connection_id, client_addr: Some(peer), rsa_key: rsa_key.clone(), ..ServerOptions::default() };
            let handler = super::LoginOnly(GateHandler { gate: shared.clone() });
            tokio::spawn(async move {
                let _ = serve(stream, handler, options).await;
            });
        }
    });
    (addr, gate)
}
