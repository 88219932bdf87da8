//! Leader-side evaluation: turning a batch of [`WriteOp`]s into the [`WriteSet`] the leader
//! proposes, and the [`WriteOutcome`] the SQL node turns into affected rows.
//!
//! Evaluation reads three layers, top first: the batch being built (so later ops see earlier
//! ones: a multi-row INSERT with a key twice fails with 1062), the [`Pending`] overlay of write
//! sets proposed but not applied, and the [`Store`]. It changes none of them: the caller
//! proposes the write set, records it with [`Pending::add`], and applies it when committed.
//! The leader's single-threaded event loop is the row lock: nothing interleaves with one
//! evaluation.
//!
//! A batch is atomic: if any op fails, evaluation returns the error and no write set. An empty
//! write set (an INSERT IGNORE that ignored everything, an UPDATE that changed nothing) needs no
//! proposal.
//!
//! Counting (MySQL's affected rows are `inserted + deleted + changed + upserted`; with
//! CLIENT_FOUND_ROWS, `inserted + deleted + matched + upserted`):
//! - INSERT of a new key: `inserted`. INSERT IGNORE of an existing key: `ignored`.
//! - REPLACE of an existing key: `deleted` and `inserted` (MySQL counts 2 even when the rows
//!   are identical).
//! - ON DUPLICATE KEY UPDATE of an existing key: `matched`; if the row changed, also `changed`
//!   and `upserted` (MySQL counts 2; 0 when unchanged, 1 with CLIENT_FOUND_ROWS).
//! - UPDATE: `matched` for rows that passed the filter, `changed` for those whose stored bytes
//!   changed. LIMIT counts matched rows, as MySQL's does.
//! - DELETE: `deleted`. TRUNCATE counts nothing (MySQL reports 0 rows affected).
//!
//! Assignments run left to right and each sees the columns the earlier ones set, as in MySQL's
//! single-table UPDATE; assigned values are converted with [`crate::coerce`] in strict mode.
//! An UPDATE that changes the primary key deletes the old row and puts the new one; if the new
//! key lives on another node group the op fails with [`cross_group_move`]'s error and the SQL
//! node moves the row itself.
//!
//! Left out: `ON UPDATE CURRENT_TIMESTAMP` columns (the data node has no clock; the SQL node
//! must send the assignment, and then it applies even when nothing else changed), and raising
//! the AUTO_INCREMENT counter on an explicit insert of a larger value (the SQL node reserves
//! with `at_least`).

use std::collections::HashMap;
use std::rc::Rc;

use cairn_common::catalog::{Catalog, TableDef};
use cairn_common::expr::{EvalContext, Expr};
use cairn_common::ids::{PartitionId, TableId};
use cairn_common::key::{encode_key, partition_of_row};
use cairn_common::ops::{OnDuplicate, RowChange, TableRef, WriteOp, WriteOutcome, WriteSet};
use cairn_common::row::MAX_ROW_BYTES;
use cairn_common::types::ColumnType;
use cairn_common::value::{Value, format_double};
use cairn_common::{Error, ErrorKind, Result};

use crate::arena::{PAGE_BYTES, class_of};
use crate::coerce::{Coercion, coerce};
use crate::pending::{Lookup, Overlay, Pending, put_cost};
use crate::schema::TableSchema;
use crate::store::{Store, resolve_table};

/// Row changes one batch may make: NDB's default MaxNoOfConcurrentOperations.
pub const DEFAULT_MAX_BATCH_ROWS: u64 = 32_768;
/// Bytes of rows and keys one write set may carry (it is one Raft log entry).
pub const DEFAULT_MAX_BATCH_BYTES: u64 = 16 << 20;

/// Bounds on one evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// DataMemory: a batch that would take the store beyond it fails with 1114.
    pub data_memory_bytes: u64,
    /// Row changes (puts and deletes) in one write set.
    pub max_rows: u64,
    /// Bytes of rows and keys in one write set.
    pub max_bytes: u64,
}

impl Limits {
    /// The default per-batch limits under a DataMemory of `data_memory_bytes`.
    pub fn new(data_memory_bytes: u64) -> Limits {
        Limits { data_memory_bytes, max_rows: DEFAULT_MAX_BATCH_ROWS, max_bytes: DEFAULT_MAX_BATCH_BYTES }
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::new(u64::MAX)
    }
}

/// Evaluates a batch of write ops against the store as the pending write sets will leave it.
/// Returns the write set to propose and what it does, or the first op's error (and nothing).
pub fn evaluate(
    store: &Store,
    pending: &Pending,
    catalog: &Catalog,
    ops: &[WriteOp],
    limits: &Limits,
) -> Result<(WriteSet, WriteOutcome)> {
    evaluate_in(store, &[pending], catalog, ops, limits)
}

/// Like [`evaluate`], reading through several overlays, newest first: a transaction's own
/// uncommitted writes over the leader's pending write sets over the store.
pub fn evaluate_in(
    store: &Store,
    layers: &[&Pending],
    catalog: &Catalog,
    ops: &[WriteOp],
    limits: &Limits,
) -> Result<(WriteSet, WriteOutcome)> {
    let mut evaluator = Evaluator {
        store,
        layers: layers.iter().map(|p| p.overlay()).collect(),
        catalog,
        limits,
        batch: Overlay::default(),
        changes: Vec::new(),
        outcome: WriteOutcome::default(),
        memory_delta: 0,
        bytes: 0,
        grown_table: None,
        new_page_classes: Vec::new(),
        schemas: HashMap::new(),
    };
    for (at, op) in ops.iter().enumerate() {
        evaluator.op(op, at as u64 + 1)?;
    }
    evaluator.check_memory(layers.iter().map(|p| p.bytes()).sum())?;
    let mut outcome = evaluator.outcome;
    outcome.changes = evaluator.changes.len() as u64;
    Ok((WriteSet { changes: evaluator.changes }, outcome))
}

/// The error for an UPDATE whose new primary key belongs to another node group.
pub fn cross_group_move(def: &TableDef, from: PartitionId, to: PartitionId) -> Error {
    Error::new(
        ErrorKind::ClusterError,
        format!(
            "the update moves a row of {}.{} from partition {from} to partition {to} on node group {}; \
             the SQL node must move it (delete and insert)",
            def.database,
            def.name,
            def.node_group_of(to).map_or_else(|| "?".to_string(), |g| g.to_string())
        ),
    )
}

/// MySQL's 1062 for a primary key given by the full row `values`.
pub fn duplicate_entry(def: &TableDef, values: &[Value]) -> Error {
    duplicate_entry_for(def, values, "PRIMARY")
}

/// MySQL's 1062 for the primary key of `def` given by the full row `values`, reported under
/// `key_name` (`PRIMARY`, or the unique index whose hidden table `def` is).
pub fn duplicate_entry_for(def: &TableDef, values: &[Value], key_name: &str) -> Error {
    let parts: Vec<String> = def
        .primary_key
        .iter()
        .map(|&c| match values.get(c) {
            Some(v) => key_part_text(v, &def.columns[c].ty),
            None => String::new(),
        })
        .collect();
    let entry: String = parts.join("-").chars().take(192).collect();
    Error::new(ErrorKind::DuplicateKey, format!("Duplicate entry '{entry}' for key '{key_name}'"))
}

fn key_part_text(value: &Value, ty: &ColumnType) -> String {
    match value {
        Value::Null => "NULL".to_string(),
        Value::DateTime(dt) => dt.format(ty.fsp()),
        Value::Time(t) => t.format(ty.fsp()),
        Value::Double(v) => format_double(*v),
        other => other.to_text().into_owned(),
    }
}

/// A row an UPDATE/DELETE WHERE matched, before it is changed.
struct Candidate {
    partition: PartitionId,
    key: Vec<u8>,
    row: Vec<u8>,
}

struct Evaluator<'a> {
    store: &'a Store,
    /// Overlays below the batch, newest first.
    layers: Vec<&'a Overlay>,
    catalog: &'a Catalog,
    limits: &'a Limits,
    batch: Overlay,
    changes: Vec<RowChange>,
    outcome: WriteOutcome,
    /// Memory the write set adds to the store (negative when it frees more).
    memory_delta: i64,
    bytes: u64,
    /// The first table the batch grows, named by a 1114 error.
    grown_table: Option<TableId>,
    /// Size classes for which the batch needs a new arena page (each charged a whole page).
    new_page_classes: Vec<usize>,
    schemas: HashMap<TableId, SchemaRef<'a>>,
}

/// A table's schema: the store's when it has the same definition version, else built once per
/// batch from the catalog.
#[derive(Clone)]
enum SchemaRef<'a> {
    Store(&'a TableSchema),
    Built(Rc<TableSchema>),
}

impl std::ops::Deref for SchemaRef<'_> {
    type Target = TableSchema;

    fn deref(&self) -> &TableSchema {
        match self {
            SchemaRef::Store(s) => s,
            SchemaRef::Built(s) => s,
        }
    }
}

fn strict_context() -> EvalContext<'static> {
    let mut ctx = EvalContext::detached();
    ctx.strict = true;
    ctx
}

impl<'a> Evaluator<'a> {
    fn table(&mut self, table: TableRef) -> Result<(&'a TableDef, SchemaRef<'a>)> {
        let def = resolve_table(self.catalog, table)?;
        let schema = match self.schemas.get(&table.id) {
            Some(s) => s.clone(),
            None => {
                let store: &'a Store = self.store;
                let s = match store.schema(table.id) {
                    Some(s) if s.def.version == def.version => SchemaRef::Store(s),
                    _ => SchemaRef::Built(Rc::new(TableSchema::new(def)?)),
                };
                self.schemas.insert(table.id, s.clone());
                s
            }
        };
        Ok((def, schema))
    }

    fn ensure_local(&self, def: &TableDef, partition: PartitionId) -> Result<()> {
        if def.node_group_of(partition) == Some(self.store.node_group()) {
            return Ok(());
        }
        Err(Error::temporary(format!(
            "partition {partition} of table {}.{} is not held by node group {}; refresh the partition map and retry",
            def.database,
            def.name,
            self.store.node_group()
        )))
    }

    /// The row with this key as the batch, the pending write sets and the store leave it.
    fn lookup(&self, table: TableId, partition: PartitionId, key: &[u8]) -> Option<Vec<u8>> {
        for layer in std::iter::once(&self.batch).chain(self.layers.iter().copied()) {
            match layer.lookup(table, partition, key) {
                Lookup::Row(row) => return Some(row.to_vec()),
                Lookup::Deleted => return None,
                Lookup::Unknown => {}
            }
        }
        self.store.get_encoded(table, partition, key).map(<[u8]>::to_vec)
    }

    fn auto_increment_next(&self, table: TableId) -> u64 {
        let mut next = self.store.auto_increment_next(table);
        for layer in self.layers.iter().rev().copied().chain(std::iter::once(&self.batch)) {
            if let Some((value, authoritative)) = layer.auto_increment(table) {
                next = if authoritative { value } else { next.max(value) };
            }
        }
        next
    }

    fn count_change(&mut self, bytes: usize) -> Result<()> {
        if self.changes.len() as u64 >= self.limits.max_rows {
            return Err(Error::new(
                ErrorKind::TooManyRows,
                format!(
                    "The statement changes more than {} rows in one node group (MaxNoOfConcurrentOperations); split it into smaller ones",
                    self.limits.max_rows
                ),
            ));
        }
        self.bytes += bytes as u64;
        if self.bytes > self.limits.max_bytes {
            return Err(Error::new(
                ErrorKind::TooManyRows,
                format!(
                    "The statement writes more than {} bytes in one node group; split it into smaller ones",
                    self.limits.max_bytes
                ),
            ));
        }
        Ok(())
    }

    fn record_put(
        &mut self,
        table: TableId,
        partition: PartitionId,
        key: &[u8],
        row: Vec<u8>,
        old_len: Option<usize>,
    ) -> Result<()> {
        self.count_change(row.len() + key.len())?;
        let mut cost = put_cost(row.len()) as i64 - old_len.map_or(0, |len| put_cost(len) as i64);
        // Rows take memory a page at a time: a row whose size class has no free cell left
        // costs a whole page.
        let class = class_of(row.len());
        if let Some(class) = class {
            let same_cell = old_len.is_some_and(|len| class_of(len) == Some(class));
            if !same_cell && !self.store.has_room_for(row.len()) && !self.new_page_classes.contains(&class) {
                self.new_page_classes.push(class);
                // Spare pages are counted as used already; only pages beyond them are new.
                if self.new_page_classes.len() > self.store.spare_pages() {
                    cost += PAGE_BYTES as i64;
                }
            }
        }
        self.memory_delta += cost;
        if cost > 0 && self.grown_table.is_none() {
            self.grown_table = Some(table);
        }
        self.batch.put(table, partition, key, &row);
        self.changes.push(RowChange::Put { table, partition, row });
        Ok(())
    }

    fn record_delete(&mut self, table: TableId, partition: PartitionId, key: &[u8], old_len: usize) -> Result<()> {
        self.count_change(key.len())?;
        self.memory_delta -= put_cost(old_len) as i64;
        self.batch.delete(table, partition, key);
        self.changes.push(RowChange::Delete { table, partition, key: key.to_vec() });
        Ok(())
    }

    fn op(&mut self, op: &WriteOp, op_number: u64) -> Result<()> {
        match op {
            WriteOp::Insert { table, row, on_duplicate } => self.insert(*table, row, on_duplicate, op_number),
            WriteOp::UpdateKey { table, key, filter, assignments } => {
                let (def, schema) = self.table(*table)?;
                let (partition, encoded) = self.key_location(def, &schema, key)?;
                let Some(row) = self.lookup(def.id, partition, &encoded) else { return Ok(()) };
                let values = schema.layout.decode(&row)?;
                if !passes(filter.as_ref(), &values)? {
                    return Ok(());
                }
                self.outcome.matched += 1;
                let candidate = Candidate { partition, key: encoded, row };
                if self.update_row(def, &schema, &candidate, values, assignments, None, 1)? {
                    self.outcome.changed += 1;
                }
                Ok(())
            }
            WriteOp::DeleteKey { table, key, filter } => {
                let (def, schema) = self.table(*table)?;
                let (partition, encoded) = self.key_location(def, &schema, key)?;
                let Some(row) = self.lookup(def.id, partition, &encoded) else { return Ok(()) };
                if filter.is_some() && !passes(filter.as_ref(), &schema.layout.decode(&row)?)? {
                    return Ok(());
                }
                self.record_delete(def.id, partition, &encoded, row.len())?;
                self.outcome.deleted += 1;
                Ok(())
            }
            WriteOp::UpdateWhere { table, filter, assignments, limit } => {
                let (def, schema) = self.table(*table)?;
                let candidates = self.collect(def, &schema, filter.as_ref(), *limit)?;
                for (at, candidate) in candidates.into_iter().enumerate() {
                    // An earlier row of this statement may have moved onto or away from this
                    // key; work on the row as it is now.
                    let Some(row) = self.lookup(def.id, candidate.partition, &candidate.key) else { continue };
                    let values = schema.layout.decode(&row)?;
                    if row != candidate.row && !passes(filter.as_ref(), &values)? {
                        continue;
                    }
                    self.outcome.matched += 1;
                    let current = Candidate { row, ..candidate };
                    if self.update_row(def, &schema, &current, values, assignments, None, at as u64 + 1)? {
                        self.outcome.changed += 1;
                    }
                }
                Ok(())
            }
            WriteOp::DeleteWhere { table, filter, limit } => {
                let (def, schema) = self.table(*table)?;
                let candidates = self.collect(def, &schema, filter.as_ref(), *limit)?;
                for candidate in candidates {
                    let Some(row) = self.lookup(def.id, candidate.partition, &candidate.key) else { continue };
                    self.record_delete(def.id, candidate.partition, &candidate.key, row.len())?;
                    self.outcome.deleted += 1;
                }
                Ok(())
            }
            WriteOp::Truncate { table } => {
                let (def, _) = self.table(*table)?;
                self.count_change(0)?;
                self.batch.truncate(def.id);
                self.changes.push(RowChange::Truncate { table: def.id });
                Ok(())
            }
            WriteOp::ReserveAutoIncrement { table, count, at_least } => {
                let (def, _) = self.table(*table)?;
                if *count == 0 {
                    return Err(Error::internal("ReserveAutoIncrement of zero values"));
                }
                let first = self.auto_increment_next(def.id).max(*at_least).max(def.auto_increment_start).max(1);
                let next = first.checked_add(*count).ok_or_else(|| {
                    Error::new(
                        ErrorKind::ValueOutOfRange,
                        format!("AUTO_INCREMENT of {}.{} cannot go beyond {}", def.database, def.name, u64::MAX),
                    )
                })?;
                self.count_change(0)?;
                self.batch.set_auto_increment(def.id, next);
                self.changes.push(RowChange::AutoIncrement { table: def.id, next });
                if self.outcome.auto_increment.is_none() {
                    self.outcome.auto_increment = Some(first);
                }
                Ok(())
            }
        }
    }

    /// The partition and encoding of a primary key given as values; the partition must be
    /// held here.
    fn key_location(&self, def: &TableDef, schema: &TableSchema, key: &[Value]) -> Result<(PartitionId, Vec<u8>)> {
        let encoded = schema.encode_key_values(key)?;
        let partition = schema.partition_of_key(key, &encoded)?;
        self.ensure_local(def, partition)?;
        Ok((partition, encoded))
    }

    fn insert(&mut self, table: TableRef, row: &[u8], on_duplicate: &OnDuplicate, op_number: u64) -> Result<()> {
        let (def, schema) = self.table(table)?;
        if row.len() > MAX_ROW_BYTES {
            return Err(Error::new(
                ErrorKind::RowTooLarge,
                format!("Row size too large. The maximum row size is {MAX_ROW_BYTES} bytes"),
            ));
        }
        let values = schema.layout.decode(row)?;
        let mut key = Vec::with_capacity(16);
        encode_key(def, &def.primary_key, &values, &mut key)?;
        let partition = partition_of_row(def, &values)?;
        self.ensure_local(def, partition)?;
        let Some(existing) = self.lookup(def.id, partition, &key) else {
            self.record_put(def.id, partition, &key, row.to_vec(), None)?;
            self.outcome.inserted += 1;
            return Ok(());
        };
        match on_duplicate {
            OnDuplicate::Error => Err(duplicate_entry_for(def, &values, &self.catalog.key_name(def.id))),
            OnDuplicate::Ignore => {
                self.outcome.ignored += 1;
                Ok(())
            }
            OnDuplicate::Replace => {
                self.record_put(def.id, partition, &key, row.to_vec(), Some(existing.len()))?;
                self.outcome.deleted += 1;
                self.outcome.inserted += 1;
                Ok(())
            }
            OnDuplicate::Update(assignments) => {
                let old_values = schema.layout.decode(&existing)?;
                self.outcome.matched += 1;
                let candidate = Candidate { partition, key, row: existing };
                if self.update_row(def, &schema, &candidate, old_values, assignments, Some(&values), op_number)? {
                    self.outcome.changed += 1;
                    self.outcome.upserted += 1;
                }
                Ok(())
            }
        }
    }

    /// Applies assignments to a row; returns whether its stored bytes changed.
    #[allow(clippy::too_many_arguments)]
    fn update_row(
        &mut self,
        def: &TableDef,
        schema: &TableSchema,
        current: &Candidate,
        values: Vec<Value>,
        assignments: &[(u32, Expr)],
        proposed: Option<&[Value]>,
        row_number: u64,
    ) -> Result<bool> {
        let width = values.len();
        // The expression input: the row being updated, then (ON DUPLICATE KEY UPDATE) the
        // proposed row for VALUES(col).
        let mut input = values;
        if let Some(p) = proposed {
            input.extend_from_slice(p);
        }
        let mut ctx = strict_context();
        let mut coercion = Coercion::strict();
        coercion.row = row_number;
        for (column, expr) in assignments {
            let column = *column as usize;
            let def_column =
                def.columns.get(column).filter(|_| column < width).ok_or_else(|| {
                    Error::internal(format!("assignment to column {column} of a {width}-column table"))
                })?;
            let value = expr.eval(&input, &mut ctx)?;
            input[column] = coerce(value, def_column, &mut coercion)?;
        }
        input.truncate(width);
        let new_values = input;
        let new_row = schema.layout.encode_to_vec(&new_values)?;
        if new_row == current.row {
            return Ok(false);
        }
        let mut new_key = Vec::with_capacity(current.key.len());
        encode_key(def, &def.primary_key, &new_values, &mut new_key)?;
        if new_key == current.key {
            self.record_put(def.id, current.partition, &current.key, new_row, Some(current.row.len()))?;
            return Ok(true);
        }
        let new_partition = partition_of_row(def, &new_values)?;
        if def.node_group_of(new_partition) != Some(self.store.node_group()) {
            return Err(cross_group_move(def, current.partition, new_partition));
        }
        if self.lookup(def.id, new_partition, &new_key).is_some() {
            return Err(duplicate_entry_for(def, &new_values, &self.catalog.key_name(def.id)));
        }
        self.record_delete(def.id, current.partition, &current.key, current.row.len())?;
        self.record_put(def.id, new_partition, &new_key, new_row, None)?;
        Ok(true)
    }

    /// Rows of this node group's partitions of the table that pass `filter`, as the layers
    /// show them, up to `limit`: store rows in slot order, then rows only the overlays hold, in
    /// key order (so that which rows a LIMIT picks is deterministic).
    fn collect(
        &self,
        def: &TableDef,
        schema: &TableSchema,
        filter: Option<&Expr>,
        limit: Option<u64>,
    ) -> Result<Vec<Candidate>> {
        let limit = limit.unwrap_or(u64::MAX);
        let mut found = Vec::new();
        if limit == 0 {
            return Ok(found);
        }
        let table = def.id;
        // The overlays that can be seen: newest first, down to (and including) the first one
        // that hides everything below it (a pending TRUNCATE); the store only if none does.
        let mut visible: Vec<&Overlay> = Vec::with_capacity(self.layers.len() + 1);
        let mut store_hidden = false;
        for layer in std::iter::once(&self.batch).chain(self.layers.iter().copied()) {
            visible.push(layer);
            if layer.hides_below(table) {
                store_hidden = true;
                break;
            }
        }
        let mut values = Vec::with_capacity(schema.layout.column_count());
        let mut key = Vec::new();
        for partition in self.store.local_partitions(def) {
            let overlaid = visible.iter().any(|layer| layer.touches(table, partition));
            if !store_hidden {
                for (_, row) in self.store.partition_rows(table, partition) {
                    if overlaid {
                        key.clear();
                        schema.primary_key(row, &mut key)?;
                        if visible.iter().any(|layer| layer.lookup(table, partition, &key) != Lookup::Unknown) {
                            continue;
                        }
                    }
                    values.clear();
                    schema.layout.decode_into(row, &mut values)?;
                    if !passes(filter, &values)? {
                        continue;
                    }
                    let key = schema.primary_key_vec(row)?;
                    if self.take(&mut found, Candidate { partition, key, row: row.to_vec() }, limit)? {
                        return Ok(found);
                    }
                }
            }
            // Rows the overlays hold, the newest image of each key; a newer layer's tombstone
            // hides an older layer's image.
            let mut overlay_rows: Vec<(&[u8], &[u8])> = Vec::new();
            let mut seen: std::collections::HashSet<&[u8]> = std::collections::HashSet::new();
            for layer in &visible {
                if let Some(rows) = layer.partition(table, partition) {
                    for (k, r) in rows {
                        if seen.insert(&k[..]) {
                            if let Some(image) = r.image.as_deref() {
                                overlay_rows.push((&k[..], image));
                            }
                        }
                    }
                }
            }
            overlay_rows.sort_unstable_by(|a, b| a.0.cmp(b.0));
            for (k, row) in overlay_rows {
                values.clear();
                schema.layout.decode_into(row, &mut values)?;
                if !passes(filter, &values)? {
                    continue;
                }
                if self.take(&mut found, Candidate { partition, key: k.to_vec(), row: row.to_vec() }, limit)? {
                    return Ok(found);
                }
            }
        }
        Ok(found)
    }

    /// Adds a candidate; returns true when the limit is reached.
    fn take(&self, found: &mut Vec<Candidate>, candidate: Candidate, limit: u64) -> Result<bool> {
        if (found.len() + self.changes.len()) as u64 >= self.limits.max_rows {
            return Err(Error::new(
                ErrorKind::TooManyRows,
                format!(
                    "The statement changes more than {} rows in one node group (MaxNoOfConcurrentOperations); split it into smaller ones",
                    self.limits.max_rows
                ),
            ));
        }
        found.push(candidate);
        Ok(found.len() as u64 >= limit)
    }

    fn check_memory(&self, overlay_bytes: u64) -> Result<()> {
        if self.memory_delta <= 0 {
            return Ok(());
        }
        let used = self.store.memory_used().saturating_add(overlay_bytes);
        if used.saturating_add(self.memory_delta as u64) <= self.limits.data_memory_bytes {
            return Ok(());
        }
        let name = self
            .grown_table
            .and_then(|t| self.catalog.table(t))
            .map_or_else(|| "?".to_string(), |def| def.name.clone());
        Err(Error::new(ErrorKind::TableFull, format!("The table '{name}' is full")))
    }
}

fn passes(filter: Option<&Expr>, values: &[Value]) -> Result<bool> {
    match filter {
        Some(filter) => filter.matches(values, &mut EvalContext::detached()),
        None => Ok(true),
    }
}
