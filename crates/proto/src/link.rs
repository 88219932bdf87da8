//! Authenticated, framed TCP connections between nodes.
//!
//! [`connect`] and [`accept`] run the handshake (Challenge → Hello → Welcome/Refused) and hand
//! back a [`Link`]: a [`FrameSender`] whose writer task coalesces every frame queued while the
//! previous write was in flight into one `write` call (so requests to the same node share
//! syscalls and TCP segments), and a [`FrameReceiver`].
//!
//! With a [`LinkTls`] in the node's [`Identity`], both run a mutual TLS handshake first and the
//! secret handshake and all frames travel inside it ([`crate::tls`]); without one the link is
//! plain TCP. With TLS, the accepting side also checks that the node id and role a peer claims
//! in its Hello are the ones its certificate names ([`crate::tls::check_peer_certificate`]).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::frame::{Decoded, FrameDecoder, encode_frame};
use crate::handshake;
use crate::pb::{Challenge, Frame, Hello, Refused, Role, Welcome, frame::Body};
use crate::tls::LinkTls;

/// The receiving half of a link's byte stream: a TCP read half, or one half of a TLS stream.
type ReadHalf = Box<dyn AsyncRead + Send + Unpin>;
/// The sending half of a link's byte stream.
type WriteHalf = Box<dyn AsyncWrite + Send + Unpin>;

/// Bumped on any incompatible change to frames or payloads; both ends must agree.
pub const PROTOCOL_VERSION: u32 = 1;
/// How long a handshake may take before the connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Frames queued for one connection before senders wait (or `try_send` fails).
pub const SEND_QUEUE: usize = 8192;
/// The writer flushes once this much is buffered even if more frames wait.
const WRITE_BATCH_BYTES: usize = 1 << 20;

/// Who this node is, for handshakes.
#[derive(Clone, Debug)]
pub struct Identity {
    pub node_id: u32,
    pub role: Role,
    pub secret: String,
    pub software_version: String,
    /// Mutual TLS with the cluster CA on every link this node opens or accepts; None: plain TCP.
    pub tls: Option<LinkTls>,
}

/// The other end of a link, as it proved itself.
#[derive(Clone, Debug)]
pub struct Peer {
    pub node_id: u32,
    pub role: Role,
    pub software_version: String,
    pub address: Option<SocketAddr>,
    /// An admin client proved the admin credential (see [`accept_admin`]), not only the
    /// cluster secret.
    pub admin_credential: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("handshake timed out")]
    Timeout,
    #[error("connection closed during the handshake")]
    Closed,
    #[error("refused by the peer: {0}")]
    Refused(String),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("TLS handshake failed: {0}")]
    Tls(std::io::Error),
}

pub struct Link {
    pub peer: Peer,
    pub sender: FrameSender,
    pub receiver: FrameReceiver,
}

/// Queues frames for a connection's writer task. Cheap to clone.
#[derive(Clone, Debug)]
pub struct FrameSender {
    tx: mpsc::Sender<Frame>,
}

#[derive(Debug, thiserror::Error)]
#[error("the connection is closed")]
pub struct Closed;

impl FrameSender {
    /// Queues a frame, waiting if the queue is full.
    pub async fn send(&self, frame: Frame) -> Result<(), Closed> {
        self.tx.send(frame).await.map_err(|_| Closed)
    }

    /// Queues a frame if there is room; for senders that must not wait (event loops). Raft
    /// tolerates the loss of a message, so callers drop on a full queue.
    pub fn try_send(&self, frame: Frame) -> Result<(), Closed> {
        match self.tx.try_send(frame) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Closed),
        }
    }

    /// Queues a frame if there is room and hands it back otherwise, for senders that must not
    /// wait but must not lose the frame either (a data node's loop thread answering a request).
    pub fn try_enqueue(&self, frame: Frame) -> Result<(), mpsc::error::TrySendError<Frame>> {
        self.tx.try_send(frame)
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// A sender attached to no connection, and the receiving end of its queue: for tests of code
    /// that answers through a link.
    pub fn detached(capacity: usize) -> (FrameSender, mpsc::Receiver<Frame>) {
        let (tx, rx) = mpsc::channel(capacity);
        (FrameSender { tx }, rx)
    }
}

pub struct FrameReceiver {
    read: ReadHalf,
    buf: BytesMut,
    decoder: FrameDecoder,
    peer_node: u32,
}

impl FrameReceiver {
    /// The next good frame; None once the connection is closed or can no longer be trusted.
    /// Bad frames are logged and skipped.
    pub async fn recv(&mut self) -> Option<Frame> {
        loop {
            match self.decoder.decode(&mut self.buf) {
                Ok(Some(Decoded::Frame(frame))) => return Some(frame),
                Ok(Some(Decoded::Dropped(reason))) => {
                    tracing::warn!(peer = self.peer_node, %reason, "dropped a bad frame");
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(peer = self.peer_node, error = %e, "closing connection");
                    return None;
                }
            }
            match self.read.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }
}

fn spawn_writer(mut write: WriteHalf, peer_node: u32) -> FrameSender {
    let (tx, mut rx) = mpsc::channel::<Frame>(SEND_QUEUE);
    tokio::spawn(async move {
        let mut buf = Vec::with_capacity(64 * 1024);
        while let Some(first) = rx.recv().await {
            buf.clear();
            encode_frame(&first, &mut buf);
            // Coalesce everything that queued up meanwhile into the same write.
            while buf.len() < WRITE_BATCH_BYTES {
                match rx.try_recv() {
                    Ok(next) => encode_frame(&next, &mut buf),
                    Err(_) => break,
                }
            }
            if let Err(e) = write.write_all(&buf).await {
                tracing::debug!(peer = peer_node, error = %e, "write failed; closing link");
                break;
            }
            if buf.capacity() > 4 * WRITE_BATCH_BYTES {
                buf = Vec::with_capacity(64 * 1024);
            }
        }
        let _ = write.shutdown().await;
    });
    FrameSender { tx }
}

async fn read_one(read: &mut ReadHalf, buf: &mut BytesMut, decoder: &FrameDecoder) -> Result<Frame, LinkError> {
    loop {
        match decoder.decode(buf).map_err(|e| LinkError::Protocol(e.to_string()))? {
            Some(Decoded::Frame(frame)) => return Ok(frame),
            Some(Decoded::Dropped(reason)) => return Err(LinkError::Protocol(reason)),
            None => {}
        }
        if read.read_buf(buf).await? == 0 {
            return Err(LinkError::Closed);
        }
    }
}

async fn write_one(write: &mut WriteHalf, frame: Frame) -> Result<(), LinkError> {
    let mut out = Vec::new();
    encode_frame(&frame, &mut out);
    write.write_all(&out).await?;
    Ok(())
}

fn body(frame: Body) -> Frame {
    Frame { request_id: 0, body: Some(frame) }
}

/// Handshakes are small: bound them tightly so a stranger cannot make us buffer much.
const HANDSHAKE_MAX_FRAME: usize = 64 * 1024;

/// With TLS, why the node id and role a peer claims are not the ones its certificate names
/// (None when they are, or without TLS). Admin clients may present any certificate of the CA:
/// the admin credential, not the certificate, decides what they may do.
fn certificate_mismatch(
    me: &Identity,
    peer_certificate: Option<&rustls_pki_types::CertificateDer<'static>>,
    hello: &Hello,
) -> Option<String> {
    me.tls.as_ref()?;
    let role = Role::try_from(hello.role).unwrap_or(Role::Unspecified);
    if role == Role::Admin {
        return None;
    }
    let Some(certificate) = peer_certificate else {
        // The accepting TLS config requires a client certificate, so this cannot happen; refuse
        // rather than admit a node whose certificate could not be checked.
        return Some(format!("node {} presented no certificate", hello.node_id));
    };
    crate::tls::check_peer_certificate(certificate, hello.node_id, role)
        .err()
        .map(|reason| format!("node {} claims to be {role:?} node {}, but {reason}", hello.node_id, hello.node_id))
}

/// Connects to `addr` and proves `me` to the node there.
pub async fn connect(addr: &str, me: &Identity) -> Result<Link, LinkError> {
    let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| LinkError::Timeout)??;
    stream.set_nodelay(true)?;
    let address = stream.peer_addr().ok();
    let decoder = FrameDecoder::new(HANDSHAKE_MAX_FRAME);
    let mut buf = BytesMut::with_capacity(4096);
    let handshake = async {
        let (mut read, mut write): (ReadHalf, WriteHalf) = match &me.tls {
            Some(tls) => {
                let stream = tls.connect(addr, stream).await.map_err(LinkError::Tls)?;
                let (read, write) = tokio::io::split(stream);
                (Box::new(read), Box::new(write))
            }
            None => {
                let (read, write) = stream.into_split();
                (Box::new(read), Box::new(write))
            }
        };
        let challenge = match read_one(&mut read, &mut buf, &decoder).await?.body {
            Some(Body::Challenge(c)) => c,
            Some(Body::Refused(r)) => return Err(LinkError::Refused(r.reason)),
            other => return Err(LinkError::Protocol(format!("expected a challenge, got {other:?}"))),
        };
        if challenge.protocol_version != PROTOCOL_VERSION {
            return Err(LinkError::Protocol(format!(
                "peer speaks protocol {} and this node {}",
                challenge.protocol_version, PROTOCOL_VERSION
            )));
        }
        let hello = Hello {
            protocol_version: PROTOCOL_VERSION,
            node_id: me.node_id,
            role: me.role as i32,
            proof: handshake::proof(&me.secret, &challenge.nonce, me.node_id, me.role as i32).into(),
            software_version: me.software_version.clone(),
        };
        write_one(&mut write, body(Body::Hello(hello))).await?;
        match read_one(&mut read, &mut buf, &decoder).await?.body {
            Some(Body::Welcome(w)) => Ok((w.node_id, read, write)),
            Some(Body::Refused(r)) => Err(LinkError::Refused(r.reason)),
            other => Err(LinkError::Protocol(format!("expected welcome, got {other:?}"))),
        }
    };
    let (peer_node, read, write) =
        tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await.map_err(|_| LinkError::Timeout)??;
    let sender = spawn_writer(write, peer_node);
    Ok(Link {
        peer: Peer {
            node_id: peer_node,
            role: Role::Unspecified,
            software_version: String::new(),
            address,
            admin_credential: false,
        },
        sender,
        receiver: FrameReceiver { read, buf, decoder: FrameDecoder::default(), peer_node },
    })
}

/// Runs the accepting side of the handshake on `stream`. `admit` sees the proven identity and
/// may refuse it (wrong role for that node id, node id already connected, ...).
pub async fn accept(
    stream: TcpStream,
    me: &Identity,
    admit: impl FnOnce(&Hello) -> Result<(), String>,
) -> Result<Link, LinkError> {
    accept_admin(stream, me, None, admit).await
}

/// [`accept`], where an admin client (role Admin) may prove `admin_password` instead of the
/// cluster secret; the link's [`Peer::admin_credential`] says which it proved. Only the Admin
/// role may: a node that proves the admin password is refused, so the admin credential cannot
/// make a node, and the cluster secret alone does not make an administrator.
pub async fn accept_admin(
    stream: TcpStream,
    me: &Identity,
    admin_password: Option<&str>,
    admit: impl FnOnce(&Hello) -> Result<(), String>,
) -> Result<Link, LinkError> {
    stream.set_nodelay(true)?;
    let address = stream.peer_addr().ok();
    let decoder = FrameDecoder::new(HANDSHAKE_MAX_FRAME);
    let mut buf = BytesMut::with_capacity(4096);
    let nonce = handshake::new_nonce();
    let handshake = async {
        // The peer's certificate (verified against the cluster CA by the TLS handshake), whose
        // node name is checked against the node id the peer claims below.
        let mut peer_certificate = None;
        let (mut read, mut write): (ReadHalf, WriteHalf) = match &me.tls {
            Some(tls) => {
                let stream = match tls.accept(stream).await {
                    Ok(stream) => stream,
                    Err(e) => {
                        // No certificate, one from another CA, or no TLS at all: the peer never
                        // reaches the secret handshake. The audit trail names it.
                        tracing::warn!(
                            target: "audit",
                            event = "handshake_refused",
                            peer = ?address,
                            error = %e,
                            "refused a connection: TLS handshake failed"
                        );
                        return Err(LinkError::Tls(e));
                    }
                };
                peer_certificate =
                    stream.get_ref().1.peer_certificates().and_then(|chain| chain.first()).map(|c| c.clone().into_owned());
                let (read, write) = tokio::io::split(stream);
                (Box::new(read), Box::new(write))
            }
            None => {
                let (read, write) = stream.into_split();
                (Box::new(read), Box::new(write))
            }
        };
        let challenge = Challenge { protocol_version: PROTOCOL_VERSION, nonce: nonce.clone().into(), node_id: me.node_id };
        write_one(&mut write, body(Body::Challenge(challenge))).await?;
        let hello = match read_one(&mut read, &mut buf, &decoder).await?.body {
            Some(Body::Hello(h)) => h,
            other => return Err(LinkError::Protocol(format!("expected hello, got {other:?}"))),
        };
        let proved_admin = hello.role == Role::Admin as i32
            && admin_password.is_some_and(|p| handshake::verify(p, &nonce, hello.node_id, hello.role, &hello.proof));
        let refusal = if hello.protocol_version != PROTOCOL_VERSION {
            Some(format!("protocol version {} is not {}", hello.protocol_version, PROTOCOL_VERSION))
        } else if !proved_admin && !handshake::verify(&me.secret, &nonce, hello.node_id, hello.role, &hello.proof) {
            Some(format!("node {} did not prove the cluster secret", hello.node_id))
        } else if let Some(reason) = certificate_mismatch(me, peer_certificate.as_ref(), &hello) {
            Some(reason)
        } else {
            admit(&hello).err()
        };
        if let Some(reason) = refusal {
            tracing::warn!(
                target: "audit",
                event = "handshake_refused",
                node = hello.node_id,
                role = hello.role,
                peer = ?address,
                %reason,
                "refused a connection"
            );
            let _ = write_one(&mut write, body(Body::Refused(Refused { reason: reason.clone() }))).await;
            return Err(LinkError::Refused(reason));
        }
        write_one(&mut write, body(Body::Welcome(Welcome { node_id: me.node_id }))).await?;
        Ok((hello, proved_admin, read, write))
    };
    let (hello, admin_credential, read, write) = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(result) => result?,
        Err(_) => {
            // A peer that never finishes the handshake (a plaintext node waiting for a challenge
            // that a TLS listener never sends, or one that sends nothing) is refused here, and
            // the audit trail says so whichever side's timeout fires first.
            tracing::warn!(
                target: "audit",
                event = "handshake_refused",
                peer = ?address,
                "refused a connection: no handshake within {HANDSHAKE_TIMEOUT:?}"
            );
            return Err(LinkError::Timeout);
        }
    };
    let role = Role::try_from(hello.role).unwrap_or(Role::Unspecified);
    let sender = spawn_writer(write, hello.node_id);
    Ok(Link {
        peer: Peer { node_id: hello.node_id, role, software_version: hello.software_version, address, admin_credential },
        sender,
        receiver: FrameReceiver { read, buf, decoder: FrameDecoder::default(), peer_node: hello.node_id },
    })
}
