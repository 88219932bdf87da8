//! Writes to tables with unique indexes: keeping each index's hidden table in step with the
//! base rows, in the same write batches.
//!
//! A unique index is a hidden table partitioned by the unique key, one entry per base row whose
//! key has no NULL: the key, then the base row's primary key (`catalog::index_table_def`). Its
//! primary key is the unique key, so a second entry with the same key fails with 1062 on the
//! data node that holds it, under that node group's row lock, whichever SQL node sends it. The
//! entry writes of a statement travel in the same per-node-group write batches as its base-row
//! writes, through the statement's access (`txn::Access`): one Raft entry when they all fit one
//! node group's batch, otherwise the statement's implicit transaction (two-phase commit across
//! the node groups), or the open transaction. Rows and entries change together or not at all.
//!
//! An *orphan* (an entry whose row is gone or no longer has the key) can only come from a
//! cluster restored to an inconsistent point or from a bug; readers ignore orphans anyway (a
//! lookup reads the row and checks the key again), and writers that meet one delete it (guarded
//! by its primary key) before writing the key.
//!
//! Paths:
//! - **Plain INSERT**: base rows and entries are inserted in one round (1062 from whichever
//!   batch meets a duplicate, named after its key; the statement is taken back whole). It is
//!   then run again on the checked path, which names the exact duplicate (and repairs
//!   orphans, after which it may succeed).
//! - **Checked path** (INSERT IGNORE, REPLACE, ON DUPLICATE KEY UPDATE, a retried INSERT,
//!   UPDATE of key columns, DELETE): the entries of every key the statement proposes are read
//!   (one round), then the rows they point at and the rows with the proposed primary keys (a
//!   second round); the statement is then played row by row over that state on the SQL node,
//!   exactly as MySQL's sequential semantics say (a later row sees the earlier rows' effects),
//!   and the resulting row images and entry changes are sent (a third round). Outside an
//!   explicit transaction the reads take no locks: a concurrent write between the reads and
//!   the writes makes the statement fail with 1062 (a duplicate) rather than break an index.
//!
//! INSERT IGNORE on any table takes the checked path, so that every skipped row gets its 1062
//! warning with the key, as MySQL gives.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use cairn_common::catalog::{IndexDef, IndexKind, TableDef};
use cairn_common::collation::Collation;
use cairn_common::error::{Error, ErrorKind};
use cairn_common::expr::{CmpOp, Expr, Warning, WarningLevel};
use cairn_common::ids::NodeGroupId;
use cairn_common::key;
use cairn_common::ops::{OnDuplicate, TableRef, WriteOp, WriteOutcome};
use cairn_common::row::RowLayout;
use cairn_common::Value;
use cairn_storage::coerce::{Coercion, coerce};

use crate::backend::Backend;
use crate::exec::{Exec, fetch_keys};
use crate::join::join_all;

/// Whether writes to the table must keep unique-index entries.
pub(crate) fn has_unique(table: &TableDef) -> bool {
    table.indexes.iter().any(|ix| ix.kind == IndexKind::Unique)
}

/// Whether an UPDATE assigning these columns changes entries: a unique key column, or a
/// primary-key column (entries hold the primary key).
pub(crate) fn update_touches_entries(table: &TableDef, assigned: &[u32]) -> bool {
    has_unique(table)
        && assigned.iter().any(|&c| {
            let c = c as usize;
            table.primary_key.contains(&c) || table.indexes.iter().any(|ix| ix.kind == IndexKind::Unique && ix.columns.contains(&c))
        })
}

/// A unique index with its hidden table.
struct UniqueIndex {
    def: IndexDef,
    hidden: Arc<TableDef>,
    layout: Arc<RowLayout>,
}

impl UniqueIndex {
    fn table_ref(&self) -> TableRef {
        TableRef { id: self.hidden.id, version: self.hidden.version }
    }

    /// The key of a base row in this index (None when a key column is NULL: no entry).
    fn key(&self, row: &[Value]) -> Option<Vec<Value>> {
        let key: Vec<Value> = self.def.columns.iter().map(|&c| row[c].clone()).collect();
        (!key.iter().any(Value::is_null)).then_some(key)
    }

    /// The entry row of a base row: key, then primary key.
    fn entry(&self, base: &TableDef, row: &[Value]) -> Option<Vec<Value>> {
        let mut entry = self.key(row)?;
        entry.extend(base.primary_key.iter().map(|&c| row[c].clone()));
        Some(entry)
    }

    fn encode_key(&self, key: &[Value]) -> Result<Vec<u8>, Error> {
        encode(&self.hidden, &self.hidden.primary_key, key)
    }

    fn group(&self, key: &[Value]) -> Result<NodeGroupId, Error> {
        group_of(&self.hidden, key)
    }
}

fn encode(table: &TableDef, columns: &[usize], values: &[Value]) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(16);
    key::encode_key_values(table, columns, values, &mut out)?;
    Ok(out)
}

fn group_of(table: &TableDef, key_values: &[Value]) -> Result<NodeGroupId, Error> {
    let partition = key::partition_of_primary_key(table, key_values)?;
    table.node_group_of(partition).ok_or_else(|| Error::internal("partition without a node group"))
}

fn pk_of(table: &TableDef, row: &[Value]) -> Vec<Value> {
    table.primary_key.iter().map(|&c| row[c].clone()).collect()
}

fn unique_indexes<B: Backend>(exec: &Exec<B>, table: &TableDef) -> Result<Vec<UniqueIndex>, Error> {
    let catalog = exec.engine.backend.catalog();
    let mut out = Vec::new();
    for ix in table.indexes.iter().filter(|ix| ix.kind == IndexKind::Unique) {
        let id = ix.table.ok_or_else(|| Error::internal(format!("unique index {} has no table", ix.name)))?;
        let hidden = catalog
            .table(id)
            .ok_or_else(|| Error::temporary(format!("the table of index {} is not known here yet; retry", ix.name)))?;
        let hidden = Arc::new(hidden.clone());
        out.push(UniqueIndex { def: ix.clone(), layout: exec.engine.layout(&hidden), hidden });
    }
    Ok(out)
}

/// A guard that a hidden-table row points at this primary key (its columns after the key).
fn points_at(ix: &UniqueIndex, pk: &[Value]) -> Option<Expr> {
    let width = ix.def.columns.len();
    let parts = pk
        .iter()
        .enumerate()
        .map(|(i, v)| Expr::Compare {
            op: CmpOp::NullSafeEq,
            left: Box::new(Expr::Column((width + i) as u32)),
            right: Box::new(Expr::Literal(v.clone())),
            collation: Collation::Binary,
        })
        .collect();
    Expr::conjunction(parts)
}

/// 1062 for a key of a unique index (or the primary key), worded as MySQL words it.
fn duplicate(table: &TableDef, ix: Option<&UniqueIndex>, row: &[Value]) -> Error {
    match ix {
        Some(ix) => {
            let entry = ix.entry(table, row).unwrap_or_default();
            cairn_storage::evaluate::duplicate_entry_for(&ix.hidden, &entry, &ix.def.name)
        }
        None => cairn_storage::evaluate::duplicate_entry(table, row),
    }
}

/// Write batches per node group, each op with the op that undoes it (if there is one).
#[derive(Default)]
struct Ops {
    by_group: BTreeMap<NodeGroupId, Vec<(WriteOp, Option<WriteOp>)>>,
}

impl Ops {
    fn push(&mut self, group: NodeGroupId, op: WriteOp, undo: Option<WriteOp>) {
        self.by_group.entry(group).or_default().push((op, undo));
    }

    fn is_empty(&self) -> bool {
        self.by_group.is_empty()
    }
}

/// Sends the statement's batches through its access: one Raft entry when they fit one node
/// group's batch, otherwise the statement's implicit transaction (or the open one), so rows and
/// entries change together or not at all.
async fn send<B: Backend>(exec: &Exec<B>, ops: Ops) -> Result<(), Error> {
    let ops: BTreeMap<NodeGroupId, Vec<WriteOp>> = ops.by_group.into_iter().map(|(g, list)| (g, list.into_iter().map(|(op, _)| op).collect())).collect();
    exec.access.write_groups(ops).await.map(|_| ())
}

/// What the statement knows of the rows and entries it may touch: read before it plays, then
/// changed by each row it plays.
struct State {
    /// Rows by encoded primary key (None: known absent).
    rows: HashMap<Vec<u8>, Option<Vec<Value>>>,
    /// Per index, the encoded key → encoded primary key of the row that has it (None: free).
    entries: Vec<HashMap<Vec<u8>, Option<Vec<u8>>>>,
    /// Stale entries found while reading: (index, key, the primary key they point at).
    orphans: Vec<(usize, Vec<Value>, Vec<Value>)>,
}

/// Reads what playing rows with these images needs: the rows with their primary keys, the
/// entries of their unique keys, and the rows those entries point at.
async fn read_state<B: Backend>(exec: &Exec<B>, table: &TableDef, indexes: &[UniqueIndex], images: &[Vec<Value>]) -> Result<State, Error> {
    // Round 1: the entries of every proposed key, every index at once.
    let mut wanted_keys: Vec<Vec<Vec<Value>>> = vec![Vec::new(); indexes.len()];
    for row in images {
        for (i, ix) in indexes.iter().enumerate() {
            if let Some(k) = ix.key(row) {
                wanted_keys[i].push(k);
            }
        }
    }
    let futures: Vec<_> = indexes.iter().zip(wanted_keys.iter()).map(|(ix, keys)| fetch_keys(exec, &ix.hidden, keys.clone())).collect();
    let found_entries = join_all(futures).await;
    let mut entry_rows: Vec<Vec<(Vec<u8>, Vec<Value>)>> = Vec::with_capacity(indexes.len());
    for (ix, found) in indexes.iter().zip(found_entries) {
        let mut list = Vec::new();
        for (encoded, bytes) in found? {
            list.push((encoded, ix.layout.decode(&bytes)?));
        }
        entry_rows.push(list);
    }
    // Round 2: the rows with the proposed primary keys and the rows the entries point at.
    let mut pks: Vec<Vec<Value>> = images.iter().map(|r| pk_of(table, r)).collect();
    for (ix, list) in indexes.iter().zip(&entry_rows) {
        let width = ix.def.columns.len();
        for (_, entry) in list {
            pks.push(entry[width..].to_vec());
        }
    }
    let mut seen = HashSet::new();
    pks.retain(|k| encode(table, &table.primary_key, k).is_ok_and(|e| seen.insert(e)));
    let found_rows = fetch_keys(exec, table, pks.clone()).await?;
    let layout = exec.engine.layout(table);
    let mut state = State { rows: HashMap::new(), entries: vec![HashMap::new(); indexes.len()], orphans: Vec::new() };
    for pk in &pks {
        let encoded = encode(table, &table.primary_key, pk)?;
        let row = match found_rows.get(&encoded) {
            Some(bytes) => Some(layout.decode(bytes)?),
            None => None,
        };
        state.rows.insert(encoded, row);
    }
    for (i, ix) in indexes.iter().enumerate() {
        for k in &wanted_keys[i] {
            state.entries[i].entry(ix.encode_key(k)?).or_insert(None);
        }
        let width = ix.def.columns.len();
        for (encoded_key, entry) in &entry_rows[i] {
            let pk = entry[width..].to_vec();
            let pk_encoded = encode(table, &table.primary_key, &pk)?;
            // An entry counts only if its row exists and still has the key.
            let valid = match state.rows.get(&pk_encoded) {
                Some(Some(row)) => ix.key(row).map(|k| ix.encode_key(&k)).transpose()?.as_ref() == Some(encoded_key),
                _ => false,
            };
            if valid {
                state.entries[i].insert(encoded_key.clone(), Some(pk_encoded));
            } else {
                state.orphans.push((i, entry[..width].to_vec(), pk));
            }
        }
    }
    Ok(state)
}

/// Plays a statement's row changes over the state and collects the writes.
struct Player<'a, B: Backend> {
    exec: &'a mut Exec<B>,
    table: &'a TableDef,
    indexes: &'a [UniqueIndex],
    state: State,
    ops: Ops,
    outcome: WriteOutcome,
}

impl<B: Backend> Player<'_, B> {
    fn table_ref(&self) -> TableRef {
        TableRef { id: self.table.id, version: self.table.version }
    }

    /// Deletes the stale entries met while reading, before anything writes their keys.
    fn clear_orphans(&mut self) -> Result<(), Error> {
        for (i, k, pk) in std::mem::take(&mut self.state.orphans) {
            let ix = &self.indexes[i];
            let group = ix.group(&k)?;
            let op = WriteOp::DeleteKey { table: ix.table_ref(), key: k, filter: points_at(ix, &pk) };
            self.ops.push(group, op, None);
        }
        Ok(())
    }

    /// The first row the image would clash with: the primary key first, then each unique
    /// index in definition order (as MySQL checks them). `own` is the row being updated.
    fn conflict(&self, image: &[Value], own: Option<&[u8]>) -> Result<Option<(Option<usize>, Vec<u8>)>, Error> {
        let pk = encode(self.table, &self.table.primary_key, &pk_of(self.table, image))?;
        if own != Some(pk.as_slice()) {
            if let Some(Some(_)) = self.state.rows.get(&pk) {
                return Ok(Some((None, pk)));
            }
        }
        for (i, ix) in self.indexes.iter().enumerate() {
            let Some(k) = ix.key(image) else { continue };
            if let Some(Some(owner)) = self.state.entries[i].get(&ix.encode_key(&k)?) {
                if Some(owner.as_slice()) != own {
                    return Ok(Some((Some(i), owner.clone())));
                }
            }
        }
        Ok(None)
    }

    fn row(&self, pk: &[u8]) -> Option<Vec<Value>> {
        self.state.rows.get(pk).cloned().flatten()
    }

    fn insert(&mut self, image: Vec<Value>) -> Result<(), Error> {
        let pk_values = pk_of(self.table, &image);
        let pk = encode(self.table, &self.table.primary_key, &pk_values)?;
        let layout = self.exec.engine.layout(self.table);
        let group = group_of(self.table, &pk_values)?;
        let op = WriteOp::Insert { table: self.table_ref(), row: layout.encode_to_vec(&image)?, on_duplicate: OnDuplicate::Error };
        self.ops.push(group, op, None);
        for (i, ix) in self.indexes.iter().enumerate() {
            let Some(entry) = ix.entry(self.table, &image) else { continue };
            let k = entry[..ix.def.columns.len()].to_vec();
            self.state.entries[i].insert(ix.encode_key(&k)?, Some(pk.clone()));
            let op = WriteOp::Insert { table: ix.table_ref(), row: ix.layout.encode_to_vec(&entry)?, on_duplicate: OnDuplicate::Error };
            self.ops.push(ix.group(&k)?, op, None);
        }
        self.state.rows.insert(pk, Some(image));
        self.outcome.inserted += 1;
        Ok(())
    }

    fn delete(&mut self, pk: &[u8]) -> Result<(), Error> {
        let Some(old) = self.row(pk) else { return Ok(()) };
        let pk_values = pk_of(self.table, &old);
        let group = group_of(self.table, &pk_values)?;
        self.ops.push(group, WriteOp::DeleteKey { table: self.table_ref(), key: pk_values.clone(), filter: None }, None);
        for (i, ix) in self.indexes.iter().enumerate() {
            let Some(k) = ix.key(&old) else { continue };
            self.state.entries[i].insert(ix.encode_key(&k)?, None);
            let op = WriteOp::DeleteKey { table: ix.table_ref(), key: k.clone(), filter: points_at(ix, &pk_values) };
            self.ops.push(ix.group(&k)?, op, None);
        }
        self.state.rows.insert(pk.to_vec(), None);
        self.outcome.deleted += 1;
        Ok(())
    }

    /// Replaces the row `old` (primary key `pk`) by `new`; the caller checked for clashes.
    fn change(&mut self, pk: &[u8], old: &[Value], new: Vec<Value>) -> Result<(), Error> {
        let new_pk_values = pk_of(self.table, &new);
        let new_pk = encode(self.table, &self.table.primary_key, &new_pk_values)?;
        if new_pk != pk {
            // A new primary key is another row: delete, then insert (entries follow).
            self.delete(pk)?;
            self.insert(new)?;
            self.outcome.deleted -= 1;
            self.outcome.inserted -= 1;
            return Ok(());
        }
        let group = group_of(self.table, &new_pk_values)?;
        let assignments: Vec<(u32, Expr)> = new
            .iter()
            .enumerate()
            .filter(|(c, v)| old[*c] != **v)
            .map(|(c, v)| (c as u32, Expr::Literal(v.clone())))
            .collect();
        self.ops.push(group, WriteOp::UpdateKey { table: self.table_ref(), key: new_pk_values.clone(), filter: None, assignments }, None);
        for (i, ix) in self.indexes.iter().enumerate() {
            let (before, after) = (ix.key(old), ix.key(&new));
            let (eb, ea) = (before.as_ref().map(|k| ix.encode_key(k)).transpose()?, after.as_ref().map(|k| ix.encode_key(k)).transpose()?);
            if eb == ea {
                continue;
            }
            if let (Some(k), Some(e)) = (before, eb) {
                self.state.entries[i].insert(e, None);
                let op = WriteOp::DeleteKey { table: ix.table_ref(), key: k.clone(), filter: points_at(ix, &new_pk_values) };
                self.ops.push(ix.group(&k)?, op, None);
            }
            if let (Some(entry), Some(e)) = (ix.entry(self.table, &new), ea) {
                self.state.entries[i].insert(e, Some(new_pk.clone()));
                let k = entry[..ix.def.columns.len()].to_vec();
                let op = WriteOp::Insert { table: ix.table_ref(), row: ix.layout.encode_to_vec(&entry)?, on_duplicate: OnDuplicate::Error };
                self.ops.push(ix.group(&k)?, op, None);
            }
        }
        self.state.rows.insert(pk.to_vec(), Some(new));
        Ok(())
    }

    fn duplicate(&self, index: Option<usize>, image: &[Value]) -> Error {
        duplicate(self.table, index.map(|i| &self.indexes[i]), image)
    }

    fn warn(&mut self, error: Error) {
        self.exec.add_warnings(vec![Warning { level: WarningLevel::Warning, code: error.code(), message: error.message }]);
    }

    /// Evaluates ON DUPLICATE KEY UPDATE's assignments over the existing row and the proposed
    /// one (`VALUES(col)`), left to right, each stored as its column stores it.
    fn upsert_image(&mut self, existing: &[Value], proposed: &[Value], assignments: &[(u32, Expr)], row_number: u64) -> Result<Vec<Value>, Error> {
        let width = existing.len();
        let mut input = existing.to_vec();
        input.extend_from_slice(proposed);
        let mut coercion = Coercion::strict();
        coercion.row = row_number;
        for (column, e) in assignments {
            let c = *column as usize;
            let def = self.table.columns.get(c).filter(|_| c < width).ok_or_else(|| Error::internal("assignment to a column out of range"))?;
            let v = self.exec.eval(e, &input)?;
            input[c] = coerce(v, def, &mut coercion)?;
        }
        self.exec.add_warnings(coercion.warnings);
        input.truncate(width);
        Ok(input)
    }
}

/// INSERT (every ON DUPLICATE mode) of full rows into a table with unique indexes, or INSERT
/// IGNORE into any table. Returns the statement's counts and which rows went in as new rows.
pub(crate) async fn insert<B: Backend>(exec: &mut Exec<B>, table: &TableDef, on_duplicate: &OnDuplicate, rows: Vec<Vec<Value>>) -> Result<(WriteOutcome, Vec<bool>), Error> {
    let indexes = unique_indexes(exec, table)?;
    if matches!(on_duplicate, OnDuplicate::Error) {
        // One round: rows and entries together; undone and retried checked if it fails.
        let mut ops = Ops::default();
        let layout = exec.engine.layout(table);
        let table_ref = TableRef { id: table.id, version: table.version };
        for row in &rows {
            let pk = pk_of(table, row);
            let undo = WriteOp::DeleteKey { table: table_ref, key: pk.clone(), filter: None };
            ops.push(group_of(table, &pk)?, WriteOp::Insert { table: table_ref, row: layout.encode_to_vec(row)?, on_duplicate: OnDuplicate::Error }, Some(undo));
            for ix in &indexes {
                let Some(entry) = ix.entry(table, row) else { continue };
                let k = entry[..ix.def.columns.len()].to_vec();
                let undo = WriteOp::DeleteKey { table: ix.table_ref(), key: k.clone(), filter: points_at(ix, &pk) };
                let op = WriteOp::Insert { table: ix.table_ref(), row: ix.layout.encode_to_vec(&entry)?, on_duplicate: OnDuplicate::Error };
                ops.push(ix.group(&k)?, op, Some(undo));
            }
        }
        match send(exec, ops).await {
            Ok(()) => return Ok((WriteOutcome { inserted: rows.len() as u64, ..Default::default() }, vec![true; rows.len()])),
            Err(e) if e.kind == ErrorKind::DuplicateKey => {}
            Err(e) => return Err(e),
        }
    }
    let state = read_state(exec, table, &indexes, &rows).await?;
    let mut player = Player { exec, table, indexes: &indexes, state, ops: Ops::default(), outcome: WriteOutcome::default() };
    player.clear_orphans()?;
    let mut inserted = vec![false; rows.len()];
    for (n, row) in rows.into_iter().enumerate() {
        let Some((index, owner)) = player.conflict(&row, None)? else {
            player.insert(row)?;
            inserted[n] = true;
            continue;
        };
        match on_duplicate {
            OnDuplicate::Error => return Err(player.duplicate(index, &row)),
            OnDuplicate::Ignore => {
                let warning = player.duplicate(index, &row);
                player.warn(warning);
                player.outcome.ignored += 1;
            }
            OnDuplicate::Replace => {
                // Every row the new one clashes with goes (MySQL's REPLACE), then it comes in.
                player.delete(&owner)?;
                while let Some((_, other)) = player.conflict(&row, None)? {
                    player.delete(&other)?;
                }
                player.insert(row)?;
                inserted[n] = true;
            }
            OnDuplicate::Update(assignments) => {
                let existing = player.row(&owner).ok_or_else(|| Error::internal("a clashing row vanished from the statement's state"))?;
                player.outcome.matched += 1;
                let new = player.upsert_image(&existing, &row, assignments, n as u64 + 1)?;
                if new == existing {
                    continue;
                }
                if let Some((index, _)) = player.conflict(&new, Some(&owner))? {
                    return Err(player.duplicate(index, &new));
                }
                player.change(&owner, &existing, new)?;
                player.outcome.changed += 1;
                player.outcome.upserted += 1;
            }
        }
    }
    let Player { ops, outcome, .. } = player;
    if !ops.is_empty() {
        send(exec, ops).await?;
    }
    Ok((outcome, inserted))
}

/// UPDATE of rows already read (`rows`, in the order the statement meets them) with new images
/// computed by `assign`, keeping unique entries; 1062 when a new key clashes.
pub(crate) async fn update<B: Backend>(
    exec: &mut Exec<B>,
    table: &TableDef,
    rows: Vec<Vec<Value>>,
    assign: &mut (dyn FnMut(&mut Exec<B>, Vec<Value>, u64) -> Result<Vec<Value>, Error> + Send),
) -> Result<WriteOutcome, Error> {
    let indexes = unique_indexes(exec, table)?;
    // New images first (they decide which keys to read).
    let mut changes = Vec::with_capacity(rows.len());
    for (n, old) in rows.into_iter().enumerate() {
        let new = assign(exec, old.clone(), n as u64 + 1)?;
        changes.push((old, new));
    }
    let mut images: Vec<Vec<Value>> = changes.iter().map(|(_, new)| new.clone()).collect();
    images.extend(changes.iter().map(|(old, _)| old.clone()));
    let state = read_state(exec, table, &indexes, &images).await?;
    let mut player = Player { exec, table, indexes: &indexes, state, ops: Ops::default(), outcome: WriteOutcome::default() };
    player.clear_orphans()?;
    for (old, new) in changes {
        let pk = encode(table, &table.primary_key, &pk_of(table, &old))?;
        // The row as this statement left it (an earlier row of it may have changed it).
        let Some(current) = player.row(&pk) else { continue };
        player.outcome.matched += 1;
        if new == current {
            continue;
        }
        if let Some((index, _)) = player.conflict(&new, Some(&pk))? {
            return Err(player.duplicate(index, &new));
        }
        player.change(&pk, &current, new)?;
        player.outcome.changed += 1;
    }
    let Player { ops, outcome, .. } = player;
    if !ops.is_empty() {
        send(exec, ops).await?;
    }
    Ok(outcome)
}

/// DELETE of rows already read, with their entries.
pub(crate) async fn delete<B: Backend>(exec: &mut Exec<B>, table: &TableDef, rows: Vec<Vec<Value>>) -> Result<WriteOutcome, Error> {
    let indexes = unique_indexes(exec, table)?;
    let mut player = Player {
        exec,
        table,
        indexes: &indexes,
        state: State { rows: HashMap::new(), entries: vec![HashMap::new(); indexes.len()], orphans: Vec::new() },
        ops: Ops::default(),
        outcome: WriteOutcome::default(),
    };
    for row in rows {
        let pk = encode(table, &table.primary_key, &pk_of(table, &row))?;
        if player.state.rows.contains_key(&pk) {
            continue;
        }
        player.state.rows.insert(pk.clone(), Some(row));
        player.delete(&pk)?;
    }
    let Player { ops, outcome, .. } = player;
    if !ops.is_empty() {
        send(exec, ops).await?;
    }
    Ok(outcome)
}

/// The hidden tables of a table's unique indexes (for TRUNCATE).
pub(crate) fn hidden_tables<B: Backend>(exec: &Exec<B>, table: &TableDef) -> Result<Vec<Arc<TableDef>>, Error> {
    Ok(unique_indexes(exec, table)?.into_iter().map(|ix| ix.hidden).collect())
}
