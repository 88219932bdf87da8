//! Local checkpoints as Raft snapshots: how a replica that fell too far behind gets the
//! leader's state.
//!
//! raft-rs asks the leader for a snapshot when a follower needs entries that were compacted
//! away. The leader does not put rows in the Raft message: [`OfferedSnapshot`] answers with its
//! newest complete local checkpoint's metadata (index, term, membership) and a small
//! [`SnapshotHandle`] naming the checkpoint. The follower's node group loop holds the
//! `MsgSnapshot` back from Raft, fetches the checkpoint's files from the leader over dedicated
//! connections ([`fetch`]: the manifest first, then every data file on its own connection, in
//! parallel, in checksummed chunks), installs them as a local checkpoint of its own (every
//! block verified), restores a store from it, and only then steps the message into Raft. When
//! Raft accepts the snapshot the loop swaps the store in. A fetch that fails is simply tried
//! again with the next `MsgSnapshot` (the leader sends one per heartbeat round while the
//! follower lags).
//!
//! The serving side ([`serve`]) streams a part of a checkpoint from disk on a blocking thread.
//! A checkpoint pruned meanwhile (two newer ones completed) ends the transfer with an error and
//! the follower tries again with the newer one.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use cairn_control::ClusterConfig;
use cairn_proto::Identity as LinkIdentity;
use cairn_proto::link::FrameSender;
use cairn_proto::pb::Frame;
use cairn_proto::recovery::{FetchPart, RecoveryMessage, SnapshotFetch};
use cairn_replication::SnapshotSource as RaftSnapshotSource;
use cairn_replication::eraftpb::{ConfState, Snapshot};
use cairn_storage::Store;
use cairn_storage::checkpoint::{
    CheckpointConfig, FsDisk, Identity, Manifest, SnapshotChunk, SnapshotReceiver, SnapshotSource, lcp_root,
    restore_checkpoint,
};
use protobuf::Message as _;
use serde::{Deserialize, Serialize};

use crate::start::KeptCheckpoint;

/// The chunk size of transfers.
pub const CHUNK_BYTES: usize = 1 << 20;
/// How long one chunk may take to arrive before the transfer is given up.
const CHUNK_TIMEOUT: Duration = Duration::from_secs(30);

/// What a Raft snapshot's data carries: which checkpoint to fetch from whom.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotHandle {
    pub cluster_id: u64,
    pub node_group: u32,
    /// The node holding the checkpoint.
    pub source: u32,
    pub checkpoint_id: u64,
    pub applied_index: u64,
    pub applied_term: u64,
}

impl SnapshotHandle {
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("a snapshot handle always serializes")
    }

    pub fn decode(bytes: &[u8]) -> Option<SnapshotHandle> {
        postcard::from_bytes(bytes).ok()
    }
}

/// The leader's side: the snapshot raft-rs sends, built from the newest complete checkpoint.
#[derive(Clone, Default)]
pub struct OfferedSnapshot {
    current: Arc<Mutex<Option<Snapshot>>>,
}

impl OfferedSnapshot {
    /// Offers `checkpoint` (this node's, complete) from now on.
    pub fn offer(&self, identity: &Identity, checkpoint: &KeptCheckpoint) {
        let Ok(conf_state) = ConfState::parse_from_bytes(&checkpoint.membership) else {
            tracing::warn!(checkpoint = checkpoint.id, "checkpoint membership does not decode; not offering it");
            return;
        };
        let handle = SnapshotHandle {
            cluster_id: identity.cluster_id,
            node_group: identity.node_group.0,
            source: identity.node_id.0,
            checkpoint_id: checkpoint.id,
            applied_index: checkpoint.applied_index,
            applied_term: checkpoint.applied_term,
        };
        let mut snapshot = Snapshot::default();
        snapshot.data = handle.encode().into();
        let metadata = snapshot.mut_metadata();
        metadata.index = checkpoint.applied_index;
        metadata.term = checkpoint.applied_term;
        metadata.set_conf_state(conf_state);
        *self.current.lock().expect("offer lock") = Some(snapshot);
    }

    /// Nothing to offer (the store was replaced).
    pub fn withdraw(&self) {
        *self.current.lock().expect("offer lock") = None;
    }
}

impl RaftSnapshotSource for OfferedSnapshot {
    fn snapshot(&self, request_index: u64, _to: u64) -> Option<Snapshot> {
        let current = self.current.lock().expect("offer lock");
        current.as_ref().filter(|s| s.get_metadata().index >= request_index).cloned()
    }
}

/// A fetched, installed and restored checkpoint, ready to replace the store.
pub struct Fetched {
    pub handle: SnapshotHandle,
    pub store: Store,
    pub manifest: Manifest,
    pub bytes: u64,
    pub elapsed: Duration,
}

/// Everything a fetch needs.
#[derive(Clone)]
pub struct FetchContext {
    pub config: ClusterConfig,
    pub link_identity: LinkIdentity,
    pub data_dir: PathBuf,
    pub identity: Identity,
    pub checkpoint_config: CheckpointConfig,
    pub restore_threads: usize,
}

/// Opens a dedicated connection to `address` and asks for one part; yields its chunks.
async fn request_part(
    context: &FetchContext,
    address: &str,
    fetch: SnapshotFetch,
    mut chunk: impl FnMut(SnapshotChunk) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    let mut link = cairn_proto::connect(address, &context.link_identity)
        .await
        .with_context(|| format!("cannot connect to {address} for a snapshot"))?;
    let part = fetch.part;
    link.sender
        .send(Frame { request_id: 1, body: Some(RecoveryMessage::Fetch(fetch).into_body()) })
        .await
        .map_err(|_| anyhow::anyhow!("the snapshot connection closed"))?;
    let mut bytes = 0u64;
    loop {
        let frame = tokio::time::timeout(CHUNK_TIMEOUT, link.receiver.recv())
            .await
            .map_err(|_| anyhow::anyhow!("no snapshot chunk of {part:?} within {CHUNK_TIMEOUT:?}"))?
            .ok_or_else(|| anyhow::anyhow!("the snapshot source closed the connection during {part:?}"))?;
        let Some(message) = frame.body.as_ref().and_then(RecoveryMessage::from_body) else { continue };
        match message {
            RecoveryMessage::Chunk { bytes: encoded, last } => {
                if !encoded.is_empty() {
                    let decoded = SnapshotChunk::decode(&encoded)?;
                    bytes += decoded.data.len() as u64;
                    chunk(decoded)?;
                }
                if last {
                    return Ok(bytes);
                }
            }
            RecoveryMessage::Refused(reason) => bail!("the snapshot source refused {part:?}: {reason}"),
            other => bail!("unexpected answer during a snapshot transfer: {other:?}"),
        }
    }
}

/// Fetches checkpoint `handle` from its source node, installs it as this node's newest local
/// checkpoint and restores a store from it.
pub async fn fetch(context: FetchContext, handle: SnapshotHandle) -> anyhow::Result<Fetched> {
    let started = std::time::Instant::now();
    let source = context
        .config
        .data_node(cairn_common::ids::NodeId(handle.source))
        .with_context(|| format!("snapshot source {} is not a data node", handle.source))?
        .address();
    let receiver = Arc::new(Mutex::new(SnapshotReceiver::new(
        Arc::new(FsDisk),
        &lcp_root(&context.data_dir),
        context.identity,
        &context.checkpoint_config,
    )?));
    let accept = |receiver: &Arc<Mutex<SnapshotReceiver>>, chunk: SnapshotChunk| -> anyhow::Result<()> {
        receiver.lock().map_err(|_| anyhow::anyhow!("snapshot receiver poisoned"))?.accept(chunk)?;
        Ok(())
    };
    let request = |part| SnapshotFetch { checkpoint_id: handle.checkpoint_id, part, chunk_bytes: CHUNK_BYTES as u32 };
    let result: anyhow::Result<u64> = async {
        let mut total = request_part(&context, &source, request(FetchPart::Manifest), |c| accept(&receiver, c)).await?;
        let files = receiver
            .lock()
            .map_err(|_| anyhow::anyhow!("snapshot receiver poisoned"))?
            .source_manifest()
            .map(|m| m.files.len())
            .context("the manifest did not arrive whole")?;
        // Every data file on its own connection, all at once. Appends to the files happen
        // under the receiver's lock; the network transfers overlap.
        let mut tasks = Vec::new();
        for index in 0..files {
            let (context, source, receiver) = (context.clone(), source.clone(), receiver.clone());
            let fetch = request(FetchPart::File(index as u32));
            tasks.push(tokio::spawn(async move {
                request_part(&context, &source, fetch, |chunk| {
                    let receiver = receiver.clone();
                    // The disk write is short (one chunk) and keeps chunks of a file in order.
                    tokio::task::block_in_place(|| accept(&receiver, chunk))
                })
                .await
            }));
        }
        for task in tasks {
            total += task.await.map_err(|e| anyhow::anyhow!("a snapshot transfer task failed: {e}"))??;
        }
        Ok(total)
    }
    .await;
    let receiver = Arc::try_unwrap(receiver)
        .map_err(|_| anyhow::anyhow!("snapshot transfer tasks still hold the receiver"))?
        .into_inner()
        .map_err(|_| anyhow::anyhow!("snapshot receiver poisoned"))?;
    let bytes = match result {
        Ok(bytes) => bytes,
        Err(e) => {
            let _ = receiver.abandon();
            return Err(e);
        }
    };
    let (data_dir, identity, threads) = (context.data_dir.clone(), context.identity, context.restore_threads);
    let (store, manifest) = tokio::task::spawn_blocking(move || -> anyhow::Result<(Store, Manifest)> {
        let completed = receiver.install()?;
        if let Some(e) = completed.prune_error {
            tracing::warn!(error = %e, "could not remove older checkpoints after installing a snapshot");
        }
        let id = completed.manifest.checkpoint_id;
        let restored = restore_checkpoint(&FsDisk, &lcp_root(&data_dir), id, &identity, threads)?;
        Ok((restored.store, restored.manifest))
    })
    .await
    .map_err(|e| anyhow::anyhow!("the snapshot install task failed: {e}"))??;
    if manifest.applied_index != handle.applied_index || manifest.applied_term != handle.applied_term {
        bail!(
            "the fetched checkpoint is at {}@{}, the snapshot said {}@{}",
            manifest.applied_index,
            manifest.applied_term,
            handle.applied_index,
            handle.applied_term
        );
    }
    Ok(Fetched { handle, store, manifest, bytes, elapsed: started.elapsed() })
}

/// Streams the requested part of local checkpoint `fetch.checkpoint_id` to a peer, on a blocking
/// thread (reads are plain file reads).
pub fn serve(data_dir: PathBuf, identity: Identity, fetch: SnapshotFetch, request_id: u64, sender: FrameSender) {
    let runtime = tokio::runtime::Handle::current();
    std::thread::spawn(move || {
        let send = |message: RecoveryMessage| {
            runtime.block_on(sender.send(Frame { request_id, body: Some(message.into_body()) })).is_ok()
        };
        let chunk_bytes = (fetch.chunk_bytes as usize).clamp(4 << 10, cairn_storage::checkpoint::transfer::MAX_CHUNK_BYTES);
        let source = match SnapshotSource::open(
            Arc::new(FsDisk),
            &lcp_root(&data_dir),
            fetch.checkpoint_id,
            &identity,
            chunk_bytes,
        ) {
            Ok(source) => source,
            Err(e) => {
                send(RecoveryMessage::Refused(format!("checkpoint {} cannot be sent: {e}", fetch.checkpoint_id)));
                return;
            }
        };
        let chunks: Box<dyn Iterator<Item = Result<SnapshotChunk, cairn_storage::checkpoint::CheckpointError>>> =
            match fetch.part {
                FetchPart::Manifest => Box::new(source.manifest_chunks().into_iter().map(Ok)),
                FetchPart::File(index) if (index as usize) < source.file_count() => {
                    Box::new(source.file_chunks(index as usize))
                }
                FetchPart::File(index) => {
                    send(RecoveryMessage::Refused(format!("checkpoint {} has no data file {index}", fetch.checkpoint_id)));
                    return;
                }
            };
        for chunk in chunks {
            match chunk {
                Ok(chunk) => {
                    if !send(RecoveryMessage::Chunk { bytes: chunk.encode(), last: false }) {
                        return;
                    }
                }
                Err(e) => {
                    send(RecoveryMessage::Refused(e.to_string()));
                    return;
                }
            }
        }
        send(RecoveryMessage::Chunk { bytes: Vec::new(), last: true });
    });
}
