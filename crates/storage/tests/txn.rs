//! Transactions at one node group: visibility, row locks, commit in one and two phases,
//! presumed abort, leader changes and limits.

mod support;

use cairn_common::Value;
use cairn_common::catalog::Catalog;
use cairn_common::expr::{CmpOp, Expr};
use cairn_common::ids::{NodeGroupId, TableId};
use cairn_common::ops::{LockMode, LogEntry, OnDuplicate, ReadOp, ReadResult, TableRef, TxnId, TxnOutcome, TxnStep, WriteOp};
use cairn_storage::txn::{Applied, ControlAttempt};
use cairn_storage::{Limits, Pending, ReadAttempt, Store, TxnLimits, TxnManager, WriteAttempt};
use support::*;

const TERM: u64 = 3;

struct Fixture {
    catalog: Catalog,
    table: TableRef,
    store: Store,
    pending: Pending,
    txns: TxnManager,
    index: u64,
}

fn fixture(limits: TxnLimits) -> Fixture {
    let mut catalog = catalog();
    let def = table("accounts", vec![column("id", int(false), false), column("balance", int(false), false)], vec![0], vec![0], 4);
    let id = create(&mut catalog, def, 1);
    let version = catalog.table(id).unwrap().version;
    Fixture {
        catalog,
        table: TableRef { id, version },
        store: Store::new(NodeGroupId(0)),
        pending: Pending::new(),
        txns: TxnManager::new(limits),
        index: 0,
    }
}

impl Fixture {
    fn row(&self, id: i64, balance: i64) -> Vec<u8> {
        self.catalog.table(self.table.id).unwrap().layout().encode_to_vec(&[Value::Int(id), Value::Int(balance)]).unwrap()
    }

    fn insert(&self, id: i64, balance: i64) -> WriteOp {
        WriteOp::Insert { table: self.table, row: self.row(id, balance), on_duplicate: OnDuplicate::Error }
    }

    fn add(&self, id: i64, amount: i64) -> WriteOp {
        let plus = Expr::Arith {
            op: cairn_common::expr::ArithOp::Add,
            left: Box::new(Expr::Column(1)),
            right: Box::new(Expr::Literal(Value::Int(amount))),
        };
        WriteOp::UpdateKey { table: self.table, key: vec![Value::Int(id)], filter: None, assignments: vec![(1, plus)] }
    }

    fn write(&mut self, txn: Option<TxnStep>, ops: Vec<WriteOp>) -> WriteAttempt {
        self.txns.write(txn, TERM, &self.store, &self.pending, &self.catalog, &ops, &Limits::default()).unwrap()
    }

    fn apply(&mut self, entry: &LogEntry) -> Applied {
        self.index += 1;
        self.txns.apply(entry, self.index, &mut self.store, &self.catalog).unwrap()
    }

    /// An autocommit write, proposed and applied at once.
    fn autocommit(&mut self, ops: Vec<WriteOp>) -> WriteAttempt {
        match self.write(None, ops) {
            WriteAttempt::Propose(ws, outcome) => {
                self.apply(&LogEntry::Write { txn: None, write_set: ws });
                WriteAttempt::Done(outcome)
            }
            other => other,
        }
    }

    fn balance(&mut self, txn: Option<TxnId>, id: i64) -> Option<i64> {
        let op = ReadOp::Get { table: self.table, keys: vec![vec![Value::Int(id)]] };
        let step = txn.map(|txn| TxnStep { txn, seq: 0, known_here: false });
        match self.txns.read(step, TERM, None, &op, &self.store, &self.catalog).unwrap() {
            ReadAttempt::Done(ReadResult::Rows(rows)) => rows[0].as_ref().map(|r| {
                match &self.catalog.table(self.table.id).unwrap().layout().decode(r).unwrap()[1] {
                    Value::Int(b) => *b,
                    other => panic!("{other:?}"),
                }
            }),
            other => panic!("{other:?}"),
        }
    }

    fn count(&mut self, txn: Option<TxnId>) -> u64 {
        let op = ReadOp::Count { table: self.table };
        let step = txn.map(|txn| TxnStep { txn, seq: 0, known_here: false });
        match self.txns.read(step, TERM, None, &op, &self.store, &self.catalog).unwrap() {
            ReadAttempt::Done(ReadResult::Counts(c)) => c.iter().map(|(_, n)| n).sum(),
            other => panic!("{other:?}"),
        }
    }

    fn scan_ids(&mut self, txn: Option<TxnId>, min_balance: i64) -> Vec<i64> {
        let filter = Expr::Compare {
            op: CmpOp::Ge,
            left: Box::new(Expr::Column(1)),
            right: Box::new(Expr::Literal(Value::Int(min_balance))),
            collation: Default::default(),
        };
        let op = ReadOp::Scan {
            table: self.table,
            partitions: vec![],
            filter: Some(filter),
            projection: Some(vec![0]),
            limit: None,
            resume: None,
            max_rows: 1000,
            max_bytes: 1 << 20,
        };
        let layout = self.catalog.table(self.table.id).unwrap().layout().project(&[0]);
        let step = txn.map(|txn| TxnStep { txn, seq: 0, known_here: false });
        match self.txns.read(step, TERM, None, &op, &self.store, &self.catalog).unwrap() {
            ReadAttempt::Done(ReadResult::ScanBatch { rows, .. }) => {
                let mut ids: Vec<i64> = rows
                    .iter()
                    .map(|r| match layout.decode(r).unwrap()[0] {
                        Value::Int(i) => i,
                        ref other => panic!("{other:?}"),
                    })
                    .collect();
                ids.sort();
                ids
            }
            other => panic!("{other:?}"),
        }
    }
}

/// A statement of a transaction; `seq` 1 is its first here, later ones expect state.
fn step(txn: TxnId, seq: u64) -> TxnStep {
    TxnStep { txn, seq, known_here: seq > 1 }
}

fn t(n: u64) -> TxnId {
    TxnId::new(50, n)
}

fn done(attempt: WriteAttempt) {
    assert!(matches!(attempt, WriteAttempt::Done(_)), "{attempt:?}");
}

#[test]
fn a_transaction_sees_its_own_writes_and_nobody_else_does() {
    let mut f = fixture(TxnLimits::default());
    done(f.autocommit(vec![f.insert(1, 100), f.insert(2, 50)]));
    done(f.write(Some(step(t(1), 1)), vec![f.add(1, -30), f.insert(3, 70)]));
    done(f.write(Some(step(t(1), 2)), vec![f.add(1, -10)]));
    assert_eq!(f.balance(Some(t(1)), 1), Some(60), "its own two updates");
    assert_eq!(f.balance(None, 1), Some(100), "READ COMMITTED: others see the committed row");
    assert_eq!(f.balance(Some(t(2)), 3), None, "nor its insert");
    assert_eq!(f.count(Some(t(1))), 3);
    assert_eq!(f.count(None), 2);
    assert_eq!(f.scan_ids(Some(t(1)), 55), vec![1, 3]);
    assert_eq!(f.scan_ids(None, 55), vec![1]);
    let entry = f.txns.commit_one_phase(t(1), TERM).unwrap().expect("it wrote");
    let applied = f.apply(&entry);
    assert!(applied.released);
    assert_eq!(f.balance(None, 1), Some(60));
    assert_eq!(f.balance(None, 3), Some(70));
    assert!(f.txns.locks().is_empty());
}

#[test]
fn conflicting_writers_wait_for_the_lock_and_then_see_the_committed_row() {
    let mut f = fixture(TxnLimits::default());
    done(f.autocommit(vec![f.insert(1, 100)]));
    done(f.write(Some(step(t(1), 1)), vec![f.add(1, 5)]));
    let second = f.write(Some(step(t(2), 1)), vec![f.add(1, 1)]);
    assert!(matches!(second, WriteAttempt::Wait { holder } if holder == t(1)), "{second:?}");
    let autocommit = f.write(None, vec![f.add(1, 1)]);
    assert!(matches!(autocommit, WriteAttempt::Wait { holder } if holder == t(1)), "autocommit writes respect locks");
    // Rows another transaction has not touched are free.
    done(f.autocommit(vec![f.insert(2, 1)]));
    let entry = f.txns.commit_one_phase(t(1), TERM).unwrap().unwrap();
    f.apply(&entry);
    done(f.write(Some(step(t(2), 1)), vec![f.add(1, 1)]));
    assert_eq!(f.balance(Some(t(2)), 1), Some(106), "evaluated again over the committed row");
}

#[test]
fn an_insert_waits_for_an_uncommitted_insert_of_the_same_key() {
    let mut f = fixture(TxnLimits::default());
    done(f.write(Some(step(t(1), 1)), vec![f.insert(7, 1)]));
    assert!(matches!(f.write(Some(step(t(2), 1)), vec![f.insert(7, 2)]), WriteAttempt::Wait { .. }));
    assert!(f.txns.rollback(t(1)));
    // After the rollback the key is free and absent.
    done(f.write(Some(step(t(2), 1)), vec![f.insert(7, 2)]));
    assert_eq!(f.balance(Some(t(2)), 7), Some(2));
    assert_eq!(f.balance(None, 7), None);
}

#[test]
fn duplicate_keys_are_reported_at_statement_time() {
    let mut f = fixture(TxnLimits::default());
    done(f.autocommit(vec![f.insert(1, 1)]));
    let err = f
        .txns
        .write(Some(step(t(1), 1)), TERM, &f.store, &f.pending, &f.catalog, &[f.insert(1, 2)], &Limits::default())
        .unwrap_err();
    assert_eq!(err.code(), 1062);
    // The failed statement left no state here (nothing changed), so the next is the first.
    done(f.write(Some(TxnStep { txn: t(1), seq: 2, known_here: false }), vec![f.insert(2, 2)]));
    let err = f
        .txns
        .write(Some(step(t(1), 3)), TERM, &f.store, &f.pending, &f.catalog, &[f.insert(2, 3)], &Limits::default())
        .unwrap_err();
    assert_eq!(err.code(), 1062, "its own uncommitted insert counts");
}

#[test]
fn rollback_to_a_savepoint_forgets_later_statements() {
    let mut f = fixture(TxnLimits::default());
    done(f.autocommit(vec![f.insert(1, 100)]));
    done(f.write(Some(step(t(1), 1)), vec![f.add(1, 1)]));
    done(f.write(Some(step(t(1), 2)), vec![f.add(1, 10)]));
    done(f.write(Some(step(t(1), 3)), vec![f.insert(9, 9)]));
    f.txns.rollback_to(t(1), 1, &f.catalog).unwrap();
    assert_eq!(f.balance(Some(t(1)), 1), Some(101));
    assert_eq!(f.balance(Some(t(1)), 9), None);
    let entry = f.txns.commit_one_phase(t(1), TERM).unwrap().unwrap();
    f.apply(&entry);
    assert_eq!(f.balance(None, 1), Some(101));
    assert_eq!(f.balance(None, 9), None);
}

#[test]
fn locking_reads_take_shared_and_exclusive_locks() {
    let mut f = fixture(TxnLimits::default());
    done(f.autocommit(vec![f.insert(1, 100)]));
    let get = ReadOp::Get { table: f.table, keys: vec![vec![Value::Int(1)]] };
    let read = |f: &mut Fixture, txn, mode| {
        let step = TxnStep { txn, seq: 1, known_here: false };
        f.txns.read(Some(step), TERM, Some(mode), &get, &f.store, &f.catalog).unwrap()
    };
    assert!(matches!(read(&mut f, t(1), LockMode::Shared), ReadAttempt::Done(_)));
    assert!(matches!(read(&mut f, t(2), LockMode::Shared), ReadAttempt::Done(_)), "shared locks share");
    assert!(matches!(read(&mut f, t(3), LockMode::Exclusive), ReadAttempt::Wait { .. }));
    assert!(matches!(f.write(None, vec![f.add(1, 1)]), WriteAttempt::Wait { .. }));
    f.txns.rollback(t(1));
    f.txns.rollback(t(2));
    assert!(matches!(read(&mut f, t(3), LockMode::Exclusive), ReadAttempt::Done(_)));
    assert!(matches!(read(&mut f, t(4), LockMode::Shared), ReadAttempt::Wait { .. }));
    // A plain read never waits.
    assert_eq!(f.balance(Some(t(4)), 1), Some(100));
}

#[test]
fn two_phase_commit_applies_at_the_decision_and_presumed_abort_wins_races() {
    let mut f = fixture(TxnLimits::default());
    done(f.autocommit(vec![f.insert(1, 100)]));
    let groups = vec![NodeGroupId(0), NodeGroupId(1)];

    // Commit.
    done(f.write(Some(step(t(1), 1)), vec![f.add(1, -40)]));
    let prepare = f.txns.prepare(t(1), TERM, groups.clone(), NodeGroupId(0)).unwrap();
    assert_eq!(f.apply(&prepare).txn, Some((t(1), TxnOutcome::Prepared)));
    assert_eq!(f.balance(None, 1), Some(100), "prepared, not applied");
    assert!(matches!(f.write(None, vec![f.add(1, 1)]), WriteAttempt::Wait { .. }), "locks kept while prepared");
    let ControlAttempt::Propose(decide, TxnOutcome::Committed) = f.txns.decide(t(1), Some(true)) else { panic!() };
    f.apply(&decide);
    assert_eq!(f.balance(None, 1), Some(60));
    assert!(matches!(f.txns.decide(t(1), Some(true)), ControlAttempt::Answer(TxnOutcome::Committed)), "answers repeat");
    // A second Decide already in the log when the first applied reports the first decision.
    let late_abort = LogEntry::Decide { txn: t(1), commit: false };
    assert_eq!(f.apply(&late_abort).txn, Some((t(1), TxnOutcome::Committed)));
    assert_eq!(f.balance(None, 1), Some(60));

    // A participant asks before the coordinator decides: abort is logged first and wins.
    done(f.write(Some(step(t(2), 1)), vec![f.add(1, -60)]));
    let prepare = f.txns.prepare(t(2), TERM, groups.clone(), NodeGroupId(0)).unwrap();
    f.apply(&prepare);
    let ControlAttempt::Propose(abort, TxnOutcome::Aborted) = f.txns.decide(t(2), None) else { panic!() };
    f.apply(&abort);
    assert!(matches!(f.txns.decide(t(2), Some(true)), ControlAttempt::Answer(TxnOutcome::Aborted)));
    assert_eq!(f.balance(None, 1), Some(60));
    assert!(f.txns.locks().is_empty());

    // The question arrives before the prepare itself: the late prepare stays aborted.
    done(f.write(Some(step(t(3), 1)), vec![f.add(1, 5)]));
    let prepare = f.txns.prepare(t(3), TERM, groups, NodeGroupId(0)).unwrap();
    let ControlAttempt::Propose(abort, _) = f.txns.decide(t(3), None) else { panic!() };
    f.apply(&abort);
    assert_eq!(f.apply(&prepare).txn, Some((t(3), TxnOutcome::Aborted)));
    assert!(f.txns.prepared().is_empty());
    assert_eq!(f.balance(None, 1), Some(60));
}

#[test]
fn a_new_leader_relocks_prepared_rows_and_forgets_running_transactions() {
    let mut f = fixture(TxnLimits::default());
    done(f.autocommit(vec![f.insert(1, 100), f.insert(2, 100)]));
    done(f.write(Some(step(t(1), 1)), vec![f.add(1, 1)]));
    let prepare = f.txns.prepare(t(1), TERM, vec![NodeGroupId(0), NodeGroupId(1)], NodeGroupId(1)).unwrap();
    f.apply(&prepare);
    done(f.write(Some(step(t(2), 1)), vec![f.add(2, 1)]));
    // Leadership moves away and comes back (a new term).
    f.txns.lost_leadership();
    f.txns.became_leader(&f.catalog).unwrap();
    let new_term = TERM + 1;
    let blocked = f.txns.write(None, new_term, &f.store, &f.pending, &f.catalog, &[f.add(1, 1)], &Limits::default()).unwrap();
    assert!(matches!(blocked, WriteAttempt::Wait { holder } if holder == t(1)), "the prepared row stays locked");
    let free = f.txns.write(None, new_term, &f.store, &f.pending, &f.catalog, &[f.add(2, 1)], &Limits::default()).unwrap();
    assert!(matches!(free, WriteAttempt::Propose(..)), "the running transaction's lock went with the old leader");
    // Its next statement is refused as a node failure: its first statement went with the old
    // leader, so going on would commit half a transaction.
    let err = f.txns.write(Some(step(t(2), 2)), new_term, &f.store, &f.pending, &f.catalog, &[f.add(2, 1)], &Limits::default());
    assert_eq!(err.unwrap_err().code(), 1297);
    assert!(f.txns.commit_one_phase(t(2), new_term).is_err());
    // The replicated state survives serialization (checkpoints).
    let state = f.txns.replicated_state();
    let mut restored = TxnManager::new(TxnLimits::default());
    restored.restore_replicated_state(&state).unwrap();
    assert_eq!(restored.prepared().len(), 1);
    assert!(restored.restore_replicated_state(b"junk").is_err());
}

#[test]
fn limits_on_locks_and_size_give_mysql_errors() {
    let mut f = fixture(TxnLimits { max_locks: 3, max_bytes: 1 << 20 });
    let ops: Vec<WriteOp> = (0..3).map(|i| f.insert(i, 0)).collect();
    done(f.write(Some(step(t(1), 1)), ops));
    let err = f
        .txns
        .write(Some(step(t(1), 2)), TERM, &f.store, &f.pending, &f.catalog, &[f.insert(10, 0)], &Limits::default())
        .unwrap_err();
    assert_eq!(err.code(), 1206);
    let mut f = fixture(TxnLimits { max_locks: 1000, max_bytes: 100 });
    let ops: Vec<WriteOp> = (0..10).map(|i| f.insert(i, 0)).collect();
    let err = f.txns.write(Some(step(t(1), 1)), TERM, &f.store, &f.pending, &f.catalog, &ops, &Limits::default()).unwrap_err();
    assert_eq!(err.code(), 1197);
}

#[test]
fn transactions_of_a_vanished_coordinator_are_aborted_but_prepared_ones_wait() {
    let mut f = fixture(TxnLimits::default());
    done(f.autocommit(vec![f.insert(1, 1), f.insert(2, 2)]));
    done(f.write(Some(step(TxnId::new(50, 1), 1)), vec![f.add(1, 1)]));
    done(f.write(Some(step(TxnId::new(50, 2), 1)), vec![f.add(2, 1)]));
    done(f.write(Some(step(TxnId::new(51, 1), 1)), vec![f.insert(3, 3)]));
    let prepare = f.txns.prepare(TxnId::new(50, 2), TERM, vec![NodeGroupId(0), NodeGroupId(1)], NodeGroupId(1)).unwrap();
    f.apply(&prepare);
    let aborted = f.txns.abort_coordinated_by(50);
    assert_eq!(aborted, vec![TxnId::new(50, 1)]);
    assert!(matches!(f.write(None, vec![f.add(1, 1)]), WriteAttempt::Propose(..)));
    assert!(matches!(f.write(None, vec![f.add(2, 1)]), WriteAttempt::Wait { .. }), "prepared: only its decision frees it");
    let _ = TableId(0);
}

#[test]
fn a_prepared_transaction_survives_a_checkpoint_and_commits_after_the_restore() {
    use cairn_common::ids::NodeId;
    use cairn_storage::checkpoint::{CheckpointConfig, Cut, FsDisk, Identity, restore_checkpoint, write_checkpoint};

    let mut f = fixture(TxnLimits::default());
    done(f.autocommit(vec![f.insert(1, 100), f.insert(2, 100)]));
    done(f.write(Some(step(t(1), 1)), vec![f.add(1, -40)]));
    let prepare = f.txns.prepare(t(1), TERM, vec![NodeGroupId(0), NodeGroupId(1)], NodeGroupId(1)).unwrap();
    f.apply(&prepare);
    // A transaction decided before the cut is remembered across it (a late question gets the
    // same answer).
    done(f.write(Some(step(t(2), 1)), vec![f.add(2, 7)]));
    let prepare = f.txns.prepare(t(2), TERM, vec![NodeGroupId(0), NodeGroupId(1)], NodeGroupId(0)).unwrap();
    f.apply(&prepare);
    let ControlAttempt::Propose(decide, _) = f.txns.decide(t(2), Some(true)) else { panic!() };
    f.apply(&decide);

    // The checkpoint's cut carries the replicated transaction state with the rows.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let root = dir.path().join("lcp");
    let identity = Identity { cluster_id: 1, node_id: NodeId(1), node_group: NodeGroupId(0) };
    let cut = Cut {
        applied_index: f.index,
        applied_term: TERM,
        catalog_version: f.catalog.version,
        raft_membership: Vec::new(),
        txn_state: f.txns.replicated_state(),
    };
    let completed =
        write_checkpoint(std::sync::Arc::new(FsDisk), &root, identity, &CheckpointConfig::default(), &f.store, cut).unwrap();
    let restored = restore_checkpoint(&FsDisk, &root, completed.manifest.checkpoint_id, &identity, 2).unwrap();

    // A restarted node: the store and the transactions of the checkpoint, nothing else.
    let mut txns = TxnManager::new(TxnLimits::default());
    txns.restore_replicated_state(&restored.manifest.txn_state).unwrap();
    txns.became_leader(&f.catalog).unwrap();
    f.store = restored.store;
    f.txns = txns;
    assert_eq!(f.txns.prepared().keys().copied().collect::<Vec<_>>(), vec![t(1)]);
    assert!(matches!(f.txns.decide(t(2), None), ControlAttempt::Answer(TxnOutcome::Committed)), "decision remembered");
    assert_eq!(f.balance(None, 1), Some(100), "prepared, not applied");
    assert_eq!(f.balance(None, 2), Some(107));
    assert!(matches!(f.write(None, vec![f.add(1, 1)]), WriteAttempt::Wait { .. }), "the prepared row is locked again");
    // The decision arrives after the restart and applies the prepared changes.
    f.apply(&LogEntry::Decide { txn: t(1), commit: true });
    assert_eq!(f.balance(None, 1), Some(60));
    assert!(f.txns.locks().is_empty());
}
