//! Typed payloads of `Recovery` frames: node restarts, backups and snapshot transfers.
//!
//! Three conversations use them:
//!
//! - **Node control** (management node → data node, over the data node's registration link):
//!   `N STOP`, `N RESTART [-n] [-i]`, `N START`, `ALL RESTART`, `SHUTDOWN`. The data node acks
//!   and then stops; its angel process restarts it as asked (see `cairn-datad`'s `angel`).
//! - **Backups** (management node ↔ data nodes): the management node asks every node group's
//!   leader to hold new writes and order a backup marker into its Raft log
//!   ([`BackupRequest::Barrier`]), releases the writes once every group has placed its marker
//!   ([`BackupRequest::Release`]), and hears from each data node that writes the backup of its
//!   group when it started and completed ([`BackupEvent`], sent unasked with request id 0).
//! - **Snapshot transfer** (data node → data node, over dedicated connections): a replica that
//!   fell behind the leader's compacted log fetches the leader's newest local checkpoint: the
//!   manifest, then every data file on its own connection, in checksummed chunks.
//!
//! Both ends always run the same protocol version (checked in the handshake), so postcard's
//! compact, schema-less encoding is safe here, as for the other typed payloads.

use serde::{Deserialize, Serialize};

/// One `Recovery` frame's body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum RecoveryMessage {
    /// Management node → data node (or its angel while it waits for `N START`).
    Node(NodeAction),
    /// Management node → data node.
    Backup(BackupRequest),
    /// Data node → management node, unasked.
    BackupEvent(BackupEvent),
    /// Data node → data node: send me part of a checkpoint.
    Fetch(SnapshotFetch),
    /// One chunk of a fetched part (`SnapshotChunk::encode` bytes, which carry their own
    /// checksum); `last` marks the end of the part.
    Chunk { bytes: Vec<u8>, last: bool },
    /// The answer to a request that needs no more than "done".
    Ack,
    /// The request was refused or failed; the text says why.
    Refused(String),
    /// The answer to [`BackupRequest::Barrier`] from the node group's leader.
    BackupPlaced { node_group: u32, index: u64 },
}

/// What a management node asks a data node to do with itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeAction {
    /// `N STOP`: stop, and stay stopped (the angel exits too).
    Stop,
    /// `N RESTART`: stop and start again; `initial` (`-i`) wipes the node's checkpoints and
    /// Raft log first so that it copies everything from a live replica; `no_start` (`-n`)
    /// stops and waits for `N START`.
    Restart { initial: bool, no_start: bool },
    /// `N START`: start a node that waits after `N RESTART -n`.
    Start,
}

/// Backup coordination, from the management node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum BackupRequest {
    /// To every data node: if you lead your node group, hold new writes and propose the marker
    /// of backup `backup_id`; answer [`RecoveryMessage::BackupPlaced`] with its log index. Other
    /// nodes answer `Refused("not the leader")`. `catalog` is the management node's catalog
    /// (postcard), stored with the backup; the writes stay held until `Release` or
    /// `hold_ms` passes.
    Barrier { backup_id: u32, catalog: Vec<u8>, hold_ms: u64 },
    /// Every node group placed its marker: take writes again.
    Release { backup_id: u32 },
    /// `ABORT BACKUP`: stop writing the backup and remove its files.
    Abort { backup_id: u32 },
}

/// What a data node reports about a backup it writes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum BackupEvent {
    /// The marker was applied: the backup of node group `node_group` is being written here,
    /// consistent at log index `index`.
    Started { backup_id: u32, node: u32, node_group: u32, index: u64 },
    /// The backup of the node group is complete and durable.
    Completed { backup_id: u32, node: u32, node_group: u32, index: u64, records: u64, data_bytes: u64 },
    /// Writing the backup failed (or it was aborted); its files were removed.
    Failed { backup_id: u32, node: u32, reason: String },
}

/// A request for part of a local checkpoint, to the node that holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotFetch {
    /// The checkpoint's id on the sending node.
    pub checkpoint_id: u64,
    pub part: FetchPart,
    /// The largest chunk payload wanted.
    pub chunk_bytes: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FetchPart {
    Manifest,
    /// The data file at this index of the manifest's file list.
    File(u32),
}

impl RecoveryMessage {
    pub fn encode(&self) -> bytes::Bytes {
        crate::data::encode(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<RecoveryMessage, cairn_common::Error> {
        crate::data::decode(bytes)
    }

    /// The frame body carrying this message.
    pub fn into_body(self) -> crate::pb::frame::Body {
        crate::pb::frame::Body::Recovery(crate::pb::Recovery { body: self.encode() })
    }

    /// The message in a frame body, if it is a `Recovery` frame that decodes.
    pub fn from_body(body: &crate::pb::frame::Body) -> Option<RecoveryMessage> {
        match body {
            crate::pb::frame::Body::Recovery(recovery) => RecoveryMessage::decode(&recovery.body).ok(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_garbage_is_an_error() {
        let messages = [
            RecoveryMessage::Node(NodeAction::Restart { initial: true, no_start: false }),
            RecoveryMessage::Backup(BackupRequest::Barrier { backup_id: 3, catalog: vec![1, 2], hold_ms: 5000 }),
            RecoveryMessage::Fetch(SnapshotFetch { checkpoint_id: 9, part: FetchPart::File(2), chunk_bytes: 1 << 20 }),
            RecoveryMessage::BackupEvent(BackupEvent::Completed {
                backup_id: 1,
                node: 2,
                node_group: 0,
                index: 77,
                records: 10,
                data_bytes: 999,
            }),
        ];
        for message in messages {
            let body = message.clone().into_body();
            assert_eq!(RecoveryMessage::from_body(&body), Some(message));
        }
        assert!(RecoveryMessage::decode(&[0xff, 0xff, 0xff]).is_err());
    }
}
