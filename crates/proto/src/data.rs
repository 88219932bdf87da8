//! Typed payloads carried inside `DataRequest` / `DataResponse` frames (SQL node → data node)
//! and `DdlRequest` / `DdlResponse` frames (any node → management node).

use cairn_common::Error;
use cairn_common::ops::{LockMode, ReadOp, ReadResult, TxnControl, TxnId, TxnOutcome, TxnStep, WriteOp, WriteOutcome};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum DataRequestBody {
    Read(ReadOp),
    /// An atomic batch for one node group.
    Write(Vec<WriteOp>),
    /// A read served by whichever replica receives it, from its own applied state, without
    /// confirming leadership: possibly stale. For diagnostics and tests that compare replicas
    /// (never used to answer SQL).
    LocalRead(ReadOp),
    /// A read inside a transaction: sees its own writes, and with `lock` locks what it returns.
    TxnRead { step: TxnStep, lock: Option<LockMode>, op: ReadOp },
    /// A statement of a transaction: evaluated and locked now, applied at commit.
    TxnWrite { step: TxnStep, ops: Vec<WriteOp> },
    /// Commit, prepare, decide, roll back (see `TxnControl`).
    Txn { txn: TxnId, control: TxnControl },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum DataReply {
    Read(ReadResult),
    Write(WriteOutcome),
    Txn(TxnOutcome),
}

/// Why a data node did not serve a request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum DataError {
    /// This node is not the ready leader of its node group; try the hinted node (if any).
    NotLeader { leader: Option<u32> },
    /// The request was planned against another definition of a table; refresh and replan.
    SchemaMismatch { table: u32, have: u64, wanted: u64 },
    /// The node cannot serve now (starting, shutting down, lost leadership mid-request: the
    /// outcome of a write is then unknown).
    Unavailable(String),
    /// The request ran and failed for a reason the user must see (duplicate key, ...).
    Failed(Error),
}

pub type DataResponseBody = Result<DataReply, DataError>;

/// Encodes a payload; payloads are plain data and always serialize.
pub fn encode<T: Serialize>(value: &T) -> bytes::Bytes {
    postcard::to_stdvec(value).expect("payloads always serialize").into()
}

/// Decodes a payload, with a clear error for garbage.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    postcard::from_bytes(bytes).map_err(|e| Error::internal(format!("undecodable payload: {e}")))
}
