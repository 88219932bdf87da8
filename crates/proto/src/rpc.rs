//! Request/response over a [`Link`]: many requests in flight on one connection, matched to
//! their replies by `request_id`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::link::{FrameSender, Link, Peer};
use crate::pb::{Frame, frame::Body};

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum RpcError {
    #[error("the connection to node {0} is closed")]
    Closed(u32),
    #[error("node {0} did not answer within {1:?}")]
    Timeout(u32, Duration),
}

/// Which half of the request-id space this end of a link uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdSpace {
    /// The side that connected: ids from 1.
    Connector,
    /// The side that accepted: ids from 2^63.
    Acceptor,
}

type PendingMap = Arc<Mutex<HashMap<u64, oneshot::Sender<Body>>>>;

/// The calling side of a link. Cheap to clone; every clone shares the connection.
#[derive(Clone)]
pub struct RpcClient {
    sender: FrameSender,
    pending: PendingMap,
    /// Set when the connection's reader ends (the peer closed or died): no reply can come.
    closed: Arc<std::sync::atomic::AtomicBool>,
    next_id: Arc<AtomicU64>,
    pub peer: Peer,
}

impl RpcClient {
    /// Takes over a link. Frames that are not replies (pushes from the peer) go to the returned
    /// receiver; it closes when the connection does.
    pub fn new(link: Link) -> (RpcClient, mpsc::UnboundedReceiver<Frame>) {
        RpcClient::with_id_space(link, IdSpace::Connector)
    }

    /// Like [`RpcClient::new`], for either end of a link. When both ends call each other over
    /// one connection, each must use its own id space so that a request from the peer is never
    /// taken for a reply to one of ours.
    pub fn with_id_space(link: Link, space: IdSpace) -> (RpcClient, mpsc::UnboundedReceiver<Frame>) {
        let Link { peer, sender, mut receiver } = link;
        let pending: PendingMap = Arc::default();
        let (push_tx, push_rx) = mpsc::unbounded_channel();
        let reader_pending = pending.clone();
        let closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader_closed = closed.clone();
        let peer_node = peer.node_id;
        tokio::spawn(async move {
            while let Some(frame) = receiver.recv().await {
                let waiter = if frame.request_id != 0 {
                    reader_pending.lock().expect("pending map lock").remove(&frame.request_id)
                } else {
                    None
                };
                match (waiter, frame.body) {
                    (Some(waiter), Some(body)) => {
                        let _ = waiter.send(body);
                    }
                    (None, Some(body)) => {
                        if push_tx.send(Frame { request_id: frame.request_id, body: Some(body) }).is_err() {
                            // Nobody listens for pushes; replies still flow.
                        }
                    }
                    (_, None) => {}
                }
            }
            tracing::debug!(peer = peer_node, "link closed");
            // Mark first, then drop the waiters: a caller registering after this sees the mark.
            reader_closed.store(true, Ordering::SeqCst);
            reader_pending.lock().expect("pending map lock").clear();
        });
        let first_id = match space {
            IdSpace::Connector => 1,
            IdSpace::Acceptor => 1 << 63,
        };
        (RpcClient { sender, pending, closed, next_id: Arc::new(AtomicU64::new(first_id)), peer }, push_rx)
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst) || self.sender.is_closed()
    }

    /// Sends a request and waits for its reply.
    pub async fn call(&self, body: Body, timeout: Duration) -> Result<Body, RpcError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().expect("pending map lock").insert(id, tx);
        let node = self.peer.node_id;
        if self.closed.load(Ordering::SeqCst) {
            // The reader ended (and may have cleared the waiters before we registered).
            self.pending.lock().expect("pending map lock").remove(&id);
            return Err(RpcError::Closed(node));
        }
        if self.sender.send(Frame { request_id: id, body: Some(body) }).await.is_err() {
            self.pending.lock().expect("pending map lock").remove(&id);
            return Err(RpcError::Closed(node));
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => Err(RpcError::Closed(node)),
            Err(_) => {
                self.pending.lock().expect("pending map lock").remove(&id);
                Err(RpcError::Timeout(node, timeout))
            }
        }
    }

    /// Sends a frame that expects no reply.
    pub async fn notify(&self, body: Body) -> Result<(), RpcError> {
        self.sender
            .send(Frame { request_id: 0, body: Some(body) })
            .await
            .map_err(|_| RpcError::Closed(self.peer.node_id))
    }

    pub fn sender(&self) -> &FrameSender {
        &self.sender
    }
}
