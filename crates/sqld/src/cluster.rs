//! The cluster client: how an SQL node reaches node groups.
//!
//! One multiplexed connection per data node, opened on first use and reopened after a failure;
//! concurrent requests from every session share it (and its writer coalesces them into one
//! write). Requests go to the node-group leader this node last saw; a "not leader, try N"
//! answer moves them there at once, and "no leader yet" retries the other replicas with a short
//! pause, within an overall deadline.
//!
//! Retries are only made when they cannot apply a write twice: a read may always be retried; a
//! write only when the data node says it did not take it (not the leader) or it was never sent.
//! A write whose answer was lost gets MySQL error 1297 (temporary, outcome unknown), as NDB
//! reports a transaction cut off by a node failure.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_common::catalog::{Catalog, CatalogOp, CatalogOutcome};
use cairn_common::ids::{NodeGroupId, NodeId};
use cairn_common::ops::{LockMode, ReadOp, ReadResult, TxnControl, TxnId, TxnOutcome, TxnStep, WriteOp, WriteOutcome};
use cairn_common::{Error, ErrorKind, Result};
use cairn_control::ClusterConfig;
use cairn_mgmd::client::ManagementClient;
use cairn_proto::data::{DataError, DataReply, DataRequestBody, DataResponseBody, decode, encode};
use cairn_proto::pb::{DataRequest, frame::Body};
use cairn_proto::{Identity, RpcClient, RpcError};
use cairn_sql::backend::Backend;

/// How long one statement's request may keep trying to find a leader.
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

pub struct ClusterClient {
    management: Arc<ManagementClient>,
    config: ClusterConfig,
    identity: Identity,
    connections: Mutex<HashMap<NodeId, RpcClient>>,
    /// Per data node, held while a connection to it is opened, so that statements starting
    /// together open one connection, not one each: a data node takes a closed connection from
    /// an SQL node as that node's end and aborts every transaction it coordinates there, so a
    /// spare connection dropped after a race would abort transactions on the one kept. Per
    /// node, so that a connect hanging on a dead node holds up no other node.
    connecting: Mutex<HashMap<NodeId, Arc<tokio::sync::Mutex<()>>>>,
    leaders: Mutex<HashMap<NodeGroupId, NodeId>>,
}

/// Whether a request may be sent again after a failure that leaves its fate unknown.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Idempotence {
    Read,
    Write,
}

impl ClusterClient {
    pub fn new(management: Arc<ManagementClient>, identity: Identity) -> ClusterClient {
        let config = management.config.clone();
        ClusterClient { management, config, identity, connections: Mutex::default(), connecting: Mutex::default(), leaders: Mutex::default() }
    }

    fn open_connection(&self, node: NodeId) -> Option<RpcClient> {
        self.connections.lock().expect("connections lock").get(&node).filter(|c| !c.is_closed()).cloned()
    }

    async fn connection(&self, node: NodeId) -> std::result::Result<RpcClient, String> {
        if let Some(client) = self.open_connection(node) {
            return Ok(client);
        }
        let gate = self.connecting.lock().expect("connecting lock").entry(node).or_default().clone();
        let _connecting = gate.lock().await;
        // Another statement may have opened it while this one waited.
        if let Some(client) = self.open_connection(node) {
            return Ok(client);
        }
        let address = self.config.data_node(node).map(|d| d.address()).ok_or("unknown data node")?;
        let link = tokio::time::timeout(CONNECT_TIMEOUT, cairn_proto::connect(&address, &self.identity))
            .await
            .map_err(|_| format!("connecting to data node {node} at {address} timed out"))?
            .map_err(|e| format!("data node {node} at {address}: {e}"))?;
        let (client, _pushes) = RpcClient::new(link);
        self.connections.lock().expect("connections lock").insert(node, client.clone());
        Ok(client)
    }

    fn first_target(&self, group: NodeGroupId) -> Option<NodeId> {
        if let Some(leader) = self.leaders.lock().expect("leaders lock").get(&group) {
            return Some(*leader);
        }
        self.config.members_of(group).first().map(|d| d.id)
    }

    fn next_member(&self, group: NodeGroupId, after: NodeId) -> NodeId {
        let members = self.config.members_of(group);
        let at = members.iter().position(|d| d.id == after).unwrap_or(0);
        members[(at + 1) % members.len()].id
    }

    async fn call(&self, group: NodeGroupId, body: DataRequestBody, kind: Idempotence) -> Result<DataReply> {
        let Some(mut target) = self.first_target(group) else {
            return Err(Error::internal(format!("node group {group} has no data nodes in the config")));
        };
        let payload = encode(&body);
        let deadline = Instant::now() + REQUEST_DEADLINE;
        let mut last_problem = String::from("no attempt made");
        let mut pause = Duration::from_millis(5);
        while Instant::now() < deadline {
            let client = match self.connection(target).await {
                Ok(client) => client,
                Err(problem) => {
                    last_problem = problem;
                    target = self.next_member(group, target);
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(200));
                    continue;
                }
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            let request = Body::DataRequest(DataRequest { body: payload.clone() });
            let reply = match client.call(request, remaining).await {
                Ok(Body::DataResponse(response)) => response,
                Ok(other) => return Err(Error::internal(format!("unexpected answer from data node {target}: {other:?}"))),
                Err(RpcError::Closed(_)) | Err(RpcError::Timeout(..)) if kind == Idempotence::Write => {
                    self.connections.lock().expect("connections lock").remove(&target);
                    return Err(Error::temporary(format!(
                        "data node {target} failed during a write; the write may or may not have been applied"
                    )));
                }
                Err(e) => {
                    last_problem = e.to_string();
                    self.connections.lock().expect("connections lock").remove(&target);
                    target = self.next_member(group, target);
                    continue;
                }
            };
            let body: DataResponseBody = decode(&reply.body)?;
            match body {
                Ok(reply) => {
                    self.leaders.lock().expect("leaders lock").insert(group, target);
                    return Ok(reply);
                }
                Err(DataError::NotLeader { leader: Some(leader) }) if leader != target.0 => {
                    target = NodeId(leader);
                }
                Err(DataError::NotLeader { .. }) => {
                    last_problem = format!("node group {group} has no leader (election in progress?)");
                    target = self.next_member(group, target);
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(200));
                }
                Err(DataError::Unavailable(why)) if kind == Idempotence::Read => {
                    last_problem = why;
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(200));
                }
                Err(DataError::Unavailable(why)) => return Err(Error::temporary(why)),
                Err(DataError::SchemaMismatch { table, have, wanted }) => {
                    return Err(Error::new(
                        ErrorKind::TableDefinitionChanged,
                        format!(
                            "Table definition has changed, please retry transaction (table {table} is at definition {have}, the statement planned with {wanted})"
                        ),
                    ));
                }
                Err(DataError::Failed(e)) => return Err(e),
            }
        }
        Err(Error::temporary(format!("node group {group} is unavailable: {last_problem}")))
    }
}

impl Backend for ClusterClient {
    fn catalog(&self) -> Arc<Catalog> {
        self.management.catalog_now()
    }

    fn node_groups(&self) -> Vec<NodeGroupId> {
        self.config.node_groups()
    }

    async fn ddl(&self, op: CatalogOp) -> Result<CatalogOutcome> {
        self.management.ddl(op).await
    }

    async fn sync_catalog(&self) -> Result<()> {
        // The barrier is ordered after every committed change, and `ddl` returns once this
        // node's catalog includes it.
        self.management.ddl(CatalogOp::Barrier).await.map(|_| ())
    }

    async fn read(&self, group: NodeGroupId, op: ReadOp) -> Result<ReadResult> {
        match self.call(group, DataRequestBody::Read(op), Idempotence::Read).await? {
            DataReply::Read(result) => Ok(result),
            _ => Err(Error::internal("a read was answered as something else")),
        }
    }

    async fn pause(&self, millis: u64) {
        tokio::time::sleep(Duration::from_millis(millis)).await;
    }

    async fn write(&self, group: NodeGroupId, ops: Vec<WriteOp>) -> Result<WriteOutcome> {
        match self.call(group, DataRequestBody::Write(ops), Idempotence::Write).await? {
            DataReply::Write(outcome) => Ok(outcome),
            _ => Err(Error::internal("a write was answered as something else")),
        }
    }

    async fn txn_read(&self, group: NodeGroupId, step: TxnStep, lock: Option<LockMode>, op: ReadOp) -> Result<ReadResult> {
        // Reads never change what they read; a locking read taken twice is still one lock.
        match self.call(group, DataRequestBody::TxnRead { step, lock, op }, Idempotence::Read).await? {
            DataReply::Read(result) => Ok(result),
            _ => Err(Error::internal("a read was answered as something else")),
        }
    }

    async fn txn_write(&self, group: NodeGroupId, step: TxnStep, ops: Vec<WriteOp>) -> Result<WriteOutcome> {
        match self.call(group, DataRequestBody::TxnWrite { step, ops }, Idempotence::Write).await? {
            DataReply::Write(outcome) => Ok(outcome),
            _ => Err(Error::internal("a write was answered as something else")),
        }
    }

    async fn txn_control(&self, group: NodeGroupId, txn: TxnId, control: TxnControl) -> Result<TxnOutcome> {
        // Committing or preparing twice could not apply twice (the transaction is gone or already
        // prepared after the first), but their answers decide what the client is told, so a lost
        // answer is reported, not retried. Decisions and rollbacks may be sent again.
        let kind = match control {
            TxnControl::CommitOnePhase | TxnControl::Prepare { .. } => Idempotence::Write,
            _ => Idempotence::Read,
        };
        match self.call(group, DataRequestBody::Txn { txn, control }, kind).await? {
            DataReply::Txn(outcome) => Ok(outcome),
            _ => Err(Error::internal("a transaction request was answered as something else")),
        }
    }
}
