//! The state the management nodes replicate through their Raft group, and how a committed
//! command changes it. Deterministic: every management node applies the same commands in the
//! same order and holds the same state.
//!
//! Soft state (which nodes are connected, their heartbeats) is not here: the management leader
//! keeps it in memory and rebuilds it from heartbeats after a failover.

use cairn_common::accounts::{
    Account, AccountName, AccountOp, AuthPlugin, Credential, GrantTarget, PrivSet, Privilege, level,
};
use cairn_common::catalog::{Catalog, CatalogOp, CatalogOutcome};
use cairn_common::ids::NodeGroupId;
use cairn_common::{Error, Result};
use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

/// A command in the control-plane Raft log.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ControlCommand {
    Catalog(CatalogOp),
    /// A data node of a two-replica node group lost its peer and asks to go on alone with the
    /// group's membership `epoch` (NDB's arbitration). Granted to exactly one node per epoch.
    Arbitrate { group: u32, epoch: u64, node: u32 },
}

/// What applying a command did.
#[derive(Clone, Debug, PartialEq)]
pub enum ControlOutcome {
    Catalog(CatalogOutcome),
    Arbitration { granted: bool },
}

impl ControlCommand {
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("control commands always serialize")
    }

    pub fn decode(bytes: &[u8]) -> Result<ControlCommand> {
        postcard::from_bytes(bytes).map_err(|e| Error::internal(format!("undecodable control command: {e}")))
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ControlState {
    pub catalog: Catalog,
    /// The Raft index of the last command applied.
    pub applied_index: u64,
    /// Per node group, the newest membership epoch arbitrated and the node that won it.
    pub arbitration: std::collections::BTreeMap<u32, (u64, u32)>,
}

impl ControlState {
    pub fn new() -> ControlState {
        ControlState { catalog: Catalog::new(), applied_index: 0, arbitration: Default::default() }
    }

    /// Applies the command at Raft index `index`. Entries at or below the applied index are
    /// ignored (replay after a restart from a snapshot). A command that fails (e.g. CREATE TABLE
    /// of an existing table) changes nothing, and every node reaches the same failure.
    pub fn apply(&mut self, index: u64, command: ControlCommand, node_groups: &[NodeGroupId]) -> Option<Result<ControlOutcome>> {
        if index <= self.applied_index {
            return None;
        }
        self.applied_index = index;
        Some(match command {
            ControlCommand::Catalog(op) => self.catalog.apply(op, node_groups).map(ControlOutcome::Catalog),
            ControlCommand::Arbitrate { group, epoch, node } => {
                let granted = match self.arbitration.get(&group) {
                    // This membership was arbitrated: only its winner may go on.
                    Some((e, winner)) if *e == epoch => *winner == node,
                    // A newer membership exists: the asker is behind and must not go on.
                    Some((e, _)) if *e > epoch => false,
                    _ => {
                        self.arbitration.insert(group, (epoch, node));
                        true
                    }
                };
                Ok(ControlOutcome::Arbitration { granted })
            }
        })
    }

    pub fn snapshot(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("control state always serializes")
    }

    pub fn restore(bytes: &[u8]) -> Result<ControlState> {
        let mut state: ControlState =
            postcard::from_bytes(bytes).map_err(|e| Error::internal(format!("undecodable control snapshot: {e}")))?;
        state.catalog.reindex();
        Ok(state)
    }
}

/// `mysql_native_password`'s stored form: SHA1(SHA1(password)).
pub fn native_password_hash(password: &str) -> [u8; 20] {
    let once = Sha1::digest(password.as_bytes());
    Sha1::digest(once).into()
}

/// What the first management leader proposes for a new cluster: `'root'@'%'` with the
/// config's RootPassword (mysql_native_password, which every client speaks) or none when the
/// config allows a passwordless root, holding every privilege WITH GRANT OPTION.
pub fn root_account_ops(password: Option<&str>) -> Vec<AccountOp> {
    let name = AccountName::new("root", "%");
    let credential = Credential {
        plugin: AuthPlugin::NativePassword,
        verifier: password.filter(|p| !p.is_empty()).map(|p| native_password_hash(p).to_vec()),
    };
    let all = PrivSet::all_at(level::GLOBAL).union(PrivSet::of(&[Privilege::GrantOption]));
    vec![
        AccountOp::Create { accounts: vec![Account::new(name.clone(), credential)], if_not_exists: true },
        AccountOp::Grant { target: GrantTarget::Global, privileges: all, columns: Default::default(), grantees: vec![name] },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_is_idempotent_by_index_and_snapshots_restore() {
        let groups = [NodeGroupId(0)];
        let mut s = ControlState::new();
        let op = ControlCommand::Catalog(CatalogOp::CreateDatabase {
            name: "calmail".into(),
            charset: "utf8mb4".into(),
            collation: "utf8mb4_general_ci".into(),
            if_not_exists: false,
        });
        assert!(s.apply(1, op.clone(), &groups).unwrap().is_ok());
        let arbitrate = |node| ControlCommand::Arbitrate { group: 0, epoch: 7, node };
        assert_eq!(s.apply(10, arbitrate(1), &groups).unwrap().unwrap(), ControlOutcome::Arbitration { granted: true });
        assert_eq!(s.apply(11, arbitrate(2), &groups).unwrap().unwrap(), ControlOutcome::Arbitration { granted: false }, "one winner per epoch");
        assert_eq!(s.apply(12, arbitrate(1), &groups).unwrap().unwrap(), ControlOutcome::Arbitration { granted: true }, "the winner may ask again");
        let newer = ControlCommand::Arbitrate { group: 0, epoch: 9, node: 2 };
        assert_eq!(s.apply(13, newer, &groups).unwrap().unwrap(), ControlOutcome::Arbitration { granted: true });
        assert_eq!(s.apply(14, arbitrate(1), &groups).unwrap().unwrap(), ControlOutcome::Arbitration { granted: false }, "a stale epoch loses");
        let op = ControlCommand::Catalog(CatalogOp::CreateDatabase {
            name: "calmail".into(),
            charset: "utf8mb4".into(),
            collation: "utf8mb4_general_ci".into(),
            if_not_exists: false,
        });
        assert!(s.apply(1, op.clone(), &groups).is_none(), "replayed entry ignored");
        assert_eq!(s.apply(20, op, &groups).unwrap().unwrap_err().code(), 1007);
        let back = ControlState::restore(&s.snapshot()).unwrap();
        assert_eq!(back.applied_index, 20);
        assert_eq!(back.arbitration.get(&0), Some(&(9, 2)));
        assert!(back.catalog.database("calmail").is_some());
        assert!(ControlState::restore(b"garbage").is_err());
    }

    #[test]
    fn native_hash_matches_mysql() {
        // SELECT PASSWORD('secret') in MySQL 5.7 = *14E65567ABDB5135D0CFD9A70B3032C179A49EE7
        let hex: String = native_password_hash("secret").iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(hex, "14E65567ABDB5135D0CFD9A70B3032C179A49EE7");
    }
}
