//! The cluster catalog: databases, tables, their columns, keys and partition maps, stored
//! routines (`crate::routine`), and user accounts, roles and grants (`crate::accounts`). The
//! management nodes keep it in their Raft group; every data and SQL node holds a
//! copy pushed to it, tagged with a version that increases with every change.
//!
//! Applying a [`CatalogOp`] is deterministic: every management node applies the same ops in
//! the same order and reaches the same catalog.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::accounts::{AccountOp, AccountOutcome, Accounts};
use crate::collation::Collation;
use crate::error::{Error, ErrorKind, Result};
use crate::ids::{NodeGroupId, PartitionId, TableId};
use crate::routine::{self, RoutineChanges, RoutineDef, RoutineKey, RoutineKind};
use crate::row::RowLayout;
use crate::types::ColumnType;
use crate::value::Value;
use crate::bail;

/// Partitions a table gets per node group unless `PARTITION BY KEY … PARTITIONS n` says
/// otherwise: a fixed multiple, so that adding node groups can move whole partitions.
pub const PARTITIONS_PER_NODE_GROUP: u32 = 8;
/// Most partitions a table may have.
pub const MAX_PARTITIONS: u32 = 1024;
/// Name of the hidden primary key column NDB adds to tables declared without one.
pub const HIDDEN_PK_NAME: &str = "$PK";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ColumnDefault {
    /// No default: an INSERT must give a value unless the column is nullable or AUTO_INCREMENT.
    None,
    Value(Value),
    /// `DEFAULT CURRENT_TIMESTAMP[(fsp)]`.
    CurrentTimestamp,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ColumnDef {
    pub name: String,
    pub ty: ColumnType,
    pub nullable: bool,
    pub default: ColumnDefault,
    pub auto_increment: bool,
    /// `ON UPDATE CURRENT_TIMESTAMP`.
    pub on_update_now: bool,
    /// An explicit `COLLATE` or `CHARACTER SET`, as written; None uses the table's.
    pub collation: Option<String>,
    pub comment: String,
    /// The hidden primary key (`$PK`): never shown by `SELECT *` or `SHOW`.
    pub hidden: bool,
}

impl ColumnDef {
    pub fn new(name: impl Into<String>, ty: ColumnType) -> ColumnDef {
        ColumnDef {
            name: name.into(),
            ty,
            nullable: true,
            default: ColumnDefault::None,
            auto_increment: false,
            on_update_now: false,
            collation: None,
            comment: String::new(),
            hidden: false,
        }
    }

    /// How values of this column compare.
    pub fn comparison(&self) -> Collation {
        match &self.collation {
            Some(name) => Collation::from_name(name).unwrap_or_else(|| self.ty.collation()),
            None => self.ty.collation(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum IndexKind {
    /// An ordered index local to each partition (KEY / INDEX).
    Ordered,
    /// A unique index: a global hidden table partitioned by the unique key (UNIQUE KEY).
    Unique,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum IndexState {
    /// Being backfilled; maintained by writes but not yet used by queries.
    Building,
    Ready,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IndexDef {
    /// Unique within the table.
    pub id: u32,
    pub name: String,
    pub columns: Vec<usize>,
    pub kind: IndexKind,
    pub state: IndexState,
    /// A unique index's hidden index table (in [`Catalog::index_tables`]): one row per base
    /// row whose key has no NULL, holding the key columns then the base table's primary-key
    /// columns, partitioned by the key. None for ordered indexes, and for a unique index in a
    /// definition not yet applied to the catalog (apply creates the table).
    pub table: Option<TableId>,
}

impl IndexDef {
    /// Whether queries may use the index (writes maintain it in every state).
    pub fn is_ready(&self) -> bool {
        self.state == IndexState::Ready
    }
}

/// A FOREIGN KEY clause: accepted and shown by SHOW CREATE TABLE, not enforced (as NDB before
/// 7.3 and as documented in docs/sql.md).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ForeignKeyDef {
    pub name: String,
    pub columns: Vec<String>,
    pub ref_table: String,
    pub ref_columns: Vec<String>,
    pub on_delete: Option<String>,
    pub on_update: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TableDef {
    pub id: TableId,
    /// Bumped by every change to the table's definition.
    pub version: u64,
    pub database: String,
    pub name: String,
    pub columns: Vec<ColumnDef>,
    /// Column indexes of the primary key, in key order.
    pub primary_key: Vec<usize>,
    /// Whether the primary key is the hidden `$PK` column.
    pub hidden_primary_key: bool,
    pub indexes: Vec<IndexDef>,
    pub foreign_keys: Vec<ForeignKeyDef>,
    /// Columns (a subset of the primary key) whose hash picks the partition.
    pub partition_key: Vec<usize>,
    /// Partition i lives on node group `partitions[i]`.
    pub partitions: Vec<NodeGroupId>,
    /// Whether `PARTITION BY KEY` was given (for SHOW CREATE TABLE).
    pub explicit_partitioning: bool,
    /// `AUTO_INCREMENT = n` of CREATE TABLE: the first value handed out.
    pub auto_increment_start: u64,
    pub charset: String,
    pub collation: String,
    /// The ENGINE clause as given (`ndbcluster` if none), echoed by SHOW CREATE TABLE.
    pub engine: String,
    pub comment: String,
    /// The format of rows written now and the earlier layouts stored rows may still have
    /// (online column changes: `cairn_sql::alter_columns`).
    #[serde(default)]
    pub layouts: LayoutHistory,
}

/// A table's row formats: the current one, and every earlier one with how its rows map onto
/// the current columns. Kept in the catalog so that checkpoints, snapshots, backups and
/// restores read old rows as the data nodes do.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LayoutHistory {
    /// The format byte of rows written with the current columns (0 until the first change).
    pub format: u8,
    pub older: Vec<crate::row::OlderLayout>,
}

impl TableDef {
    /// Where the columns of the table as it was at row format `format` are now: entry i is the
    /// current position of that definition's column i (None: dropped since). None when the
    /// format is unknown or is the current one (positions unchanged).
    pub fn positions_since(&self, format: u8) -> Option<Vec<Option<usize>>> {
        let older = self.layouts.older.iter().find(|o| o.format == format)?;
        if format == self.layouts.format {
            return None;
        }
        let mut out = vec![None; older.columns.len()];
        for (now, source) in older.sources.iter().enumerate() {
            if let crate::row::ColumnSource::Column { column, .. } = source {
                if let Some(slot) = out.get_mut(*column) {
                    *slot = Some(now);
                }
            }
        }
        Some(out)
    }

    /// Index of a visible column by name (case-insensitive, as MySQL column names are).
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| !c.hidden && c.name.eq_ignore_ascii_case(name))
    }

    pub fn auto_increment_column(&self) -> Option<usize> {
        self.columns.iter().position(|c| c.auto_increment)
    }

    pub fn layout(&self) -> RowLayout {
        let columns = self.columns.iter().map(|c| (c.ty.clone(), c.nullable)).collect();
        RowLayout::with_history(columns, self.layouts.format, self.layouts.older.clone())
    }

    pub fn partition_count(&self) -> u32 {
        self.partitions.len() as u32
    }

    pub fn node_group_of(&self, partition: PartitionId) -> Option<NodeGroupId> {
        self.partitions.get(partition.0 as usize).copied()
    }

    /// Partitions that live on node group `group`.
    pub fn partitions_on(&self, group: NodeGroupId) -> Vec<PartitionId> {
        (0..self.partitions.len() as u32)
            .filter(|p| self.partitions[*p as usize] == group)
            .map(PartitionId)
            .collect()
    }

    /// Checks the invariants a table definition must hold before it enters the catalog.
    pub fn validate(&self) -> Result<()> {
        if self.columns.iter().all(|c| c.hidden) {
            bail!(TableMustHaveColumns, "A table must have at least 1 column");
        }
        let mut seen = HashMap::new();
        for (i, c) in self.columns.iter().enumerate() {
            if let Some(_) = seen.insert(c.name.to_ascii_lowercase(), i) {
                bail!(DuplicateColumn, "Duplicate column name '{}'", c.name);
            }
        }
        if self.primary_key.is_empty() {
            return Err(Error::internal("table has no primary key (not even a hidden one)"));
        }
        for &k in self.primary_key.iter().chain(&self.partition_key) {
            if k >= self.columns.len() {
                return Err(Error::internal("key column index out of range"));
            }
        }
        for ix in &self.indexes {
            if ix.columns.is_empty() || ix.columns.iter().any(|&c| c >= self.columns.len()) {
                return Err(Error::internal(format!("index {} names a column out of range", ix.name)));
            }
        }
        for &k in &self.partition_key {
            if !self.primary_key.contains(&k) {
                bail!(
                    SyntaxError,
                    "A PRIMARY KEY must include all columns in the table's partitioning function"
                );
            }
        }
        let autos: Vec<usize> = (0..self.columns.len()).filter(|&i| self.columns[i].auto_increment).collect();
        if autos.len() > 1 {
            bail!(WrongAutoKey, "Incorrect table definition; there can be only one auto column and it must be defined as a key");
        }
        if let Some(&a) = autos.first() {
            let keyed = self.primary_key.first() == Some(&a)
                || self.indexes.iter().any(|ix| ix.columns.first() == Some(&a));
            if !keyed || !self.columns[a].ty.is_integer() {
                bail!(WrongAutoKey, "Incorrect table definition; there can be only one auto column and it must be defined as a key");
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatabaseDef {
    pub name: String,
    pub charset: String,
    pub collation: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Catalog {
    /// Increases with every applied op.
    pub version: u64,
    pub databases: BTreeMap<String, DatabaseDef>,
    pub tables: BTreeMap<TableId, TableDef>,
    /// The hidden tables of unique indexes, by id. They are tables to the data nodes (reads
    /// and writes name them like any table) but not to SQL users: `table_by_name` and
    /// `tables_in` do not see them; [`Catalog::table`] does.
    pub index_tables: BTreeMap<TableId, TableDef>,
    /// Accounts, roles and grants (`crate::accounts`).
    pub accounts: Accounts,
    pub next_table_id: u32,
    /// Stored functions and procedures (`crate::routine`).
    pub routines: BTreeMap<RoutineKey, RoutineDef>,
    /// (database, table name) → id; rebuilt after deserializing.
    #[serde(skip)]
    names: HashMap<(String, String), TableId>,
}

/// A change to the catalog, as the management nodes replicate it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum CatalogOp {
    CreateDatabase { name: String, charset: String, collation: String, if_not_exists: bool },
    DropDatabase { name: String, if_exists: bool },
    /// The definition's id, version and (unless explicit) partitions are filled in on apply.
    CreateTable { table: TableDef, if_not_exists: bool },
    DropTable { database: String, name: String, if_exists: bool },
    /// Replaces a table's definition (ALTER TABLE, CREATE/DROP INDEX, RENAME TABLE, an index
    /// turning Ready) if it is still at `expected_version`: the SQL node computes the new
    /// definition from the one it read, and a concurrent change makes it start over. The id,
    /// partitions and the hidden tables of unchanged unique indexes are kept; unique indexes
    /// without a table get one; the tables of dropped unique indexes are dropped.
    AlterTable { database: String, name: String, expected_version: u64, table: TableDef },
    /// Account, role and grant changes (`crate::accounts`), applied together or not at all.
    Accounts(Vec<AccountOp>),
    /// CREATE [OR REPLACE] FUNCTION/PROCEDURE [IF NOT EXISTS]; the version is set on apply.
    CreateRoutine { routine: RoutineDef, or_replace: bool, if_not_exists: bool },
    /// ALTER FUNCTION/PROCEDURE: characteristics only (the body changes by CREATE OR REPLACE).
    AlterRoutine { database: String, kind: RoutineKind, name: String, changes: RoutineChanges },
    DropRoutine { database: String, kind: RoutineKind, name: String, if_exists: bool },
    /// Changes nothing: a node proposes it to learn the newest catalog version (everything
    /// committed before it), then waits until its own copy is that new. An SQL node does this
    /// before saying a routine does not exist, so that a routine created through another SQL
    /// node a moment ago is found.
    Barrier,
}

/// What applying an op did, for the caller's reply.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum CatalogOutcome {
    /// Nothing changed (IF [NOT] EXISTS matched); the message becomes a warning (1007/1050/…).
    Unchanged { note: Option<(ErrorKind, String)> },
    DatabaseCreated,
    DatabaseDropped { tables: Vec<TableId> },
    TableCreated { id: TableId },
    TableDropped { id: TableId },
    TableAltered { id: TableId, version: u64 },
    /// Accounts changed; notes for IF [NOT] EXISTS.
    Accounts(AccountOutcome),
    RoutineCreated,
    RoutineAltered,
    RoutineDropped,
}

impl Catalog {
    pub fn new() -> Catalog {
        Catalog { next_table_id: 1, ..Default::default() }
    }

    /// Restores the name index after deserialization; call on every decoded catalog.
    pub fn reindex(&mut self) {
        self.names = self
            .tables
            .values()
            .map(|t| ((t.database.clone(), t.name.clone()), t.id))
            .collect();
    }

    pub fn database(&self, name: &str) -> Option<&DatabaseDef> {
        self.databases.get(name)
    }

    /// A table by id: a user table or the hidden table of a unique index.
    pub fn table(&self, id: TableId) -> Option<&TableDef> {
        self.tables.get(&id).or_else(|| self.index_tables.get(&id))
    }

    /// The base table and unique index whose hidden table is `index_table`.
    pub fn unique_index_of(&self, index_table: TableId) -> Option<(&TableDef, &IndexDef)> {
        if !self.index_tables.contains_key(&index_table) {
            return None;
        }
        self.tables.values().find_map(|t| t.indexes.iter().find(|ix| ix.table == Some(index_table)).map(|ix| (t, ix)))
    }

    /// The key name a duplicate in `table`'s primary key is reported under: `PRIMARY` for a
    /// user table, the index name for the hidden table of a unique index.
    pub fn key_name(&self, table: TableId) -> String {
        match self.unique_index_of(table) {
            Some((_, ix)) => ix.name.clone(),
            None => "PRIMARY".to_string(),
        }
    }

    /// Creates the hidden tables of `table`'s unique indexes that have none, placing their
    /// partitions like the base table's count over `node_groups`.
    fn create_index_tables(&mut self, table: &mut TableDef, node_groups: &[NodeGroupId]) -> Result<()> {
        for i in 0..table.indexes.len() {
            if table.indexes[i].kind != IndexKind::Unique || table.indexes[i].table.is_some() {
                continue;
            }
            let mut hidden = index_table_def(table, &table.indexes[i])?;
            let count = table.partitions.len().max(1);
            hidden.partitions = (0..count).map(|p| node_groups[p % node_groups.len()]).collect();
            hidden.id = TableId(self.next_table_id);
            hidden.version = self.version + 1;
            self.next_table_id += 1;
            table.indexes[i].table = Some(hidden.id);
            self.index_tables.insert(hidden.id, hidden);
        }
        Ok(())
    }

    /// Forgets the hidden tables of a table's unique indexes.
    fn drop_index_tables(&mut self, table: &TableDef) {
        for ix in &table.indexes {
            if let Some(id) = ix.table {
                self.index_tables.remove(&id);
            }
        }
    }

    /// Table by name; database and table names are case-sensitive (lower_case_table_names=0).
    pub fn table_by_name(&self, database: &str, name: &str) -> Option<&TableDef> {
        let id = self.names.get(&(database.to_string(), name.to_string()))?;
        self.tables.get(id)
    }

    pub fn tables_in(&self, database: &str) -> impl Iterator<Item = &TableDef> {
        self.tables.values().filter(move |t| t.database == database)
    }

    /// A stored function or procedure by name (routine names are case-insensitive).
    pub fn routine(&self, database: &str, kind: RoutineKind, name: &str) -> Option<&RoutineDef> {
        self.routines.get(&RoutineKey::new(database, kind, name))
    }

    /// Every routine, ordered by database, kind, then lower-cased name (information_schema
    /// and SHOW … STATUS list them from here).
    pub fn all_routines(&self) -> impl Iterator<Item = &RoutineDef> {
        self.routines.values()
    }

    /// Applies one op. `node_groups` are the cluster's node groups, for partition placement.
    /// On error the catalog is unchanged.
    pub fn apply(&mut self, op: CatalogOp, node_groups: &[NodeGroupId]) -> Result<CatalogOutcome> {
        let outcome = match op {
            // No new version: the barrier's reply carries the current one.
            CatalogOp::Barrier => return Ok(CatalogOutcome::Unchanged { note: None }),
            CatalogOp::CreateDatabase { name, charset, collation, if_not_exists } => {
                if self.databases.contains_key(&name) {
                    let message = format!("Can't create database '{name}'; database exists");
                    if if_not_exists {
                        return Ok(CatalogOutcome::Unchanged { note: Some((ErrorKind::DatabaseExists, message)) });
                    }
                    return Err(Error::new(ErrorKind::DatabaseExists, message));
                }
                self.databases.insert(name.clone(), DatabaseDef { name, charset, collation });
                CatalogOutcome::DatabaseCreated
            }
            CatalogOp::DropDatabase { name, if_exists } => {
                if self.databases.remove(&name).is_none() {
                    let message = format!("Can't drop database '{name}'; database doesn't exist");
                    if if_exists {
                        return Ok(CatalogOutcome::Unchanged { note: Some((ErrorKind::DatabaseDropMissing, message)) });
                    }
                    return Err(Error::new(ErrorKind::DatabaseDropMissing, message));
                }
                let doomed: Vec<TableId> = self.tables_in(&name).map(|t| t.id).collect();
                for id in &doomed {
                    if let Some(t) = self.tables.remove(id) {
                        self.drop_index_tables(&t);
                        self.names.remove(&(t.database, t.name));
                    }
                }
                // A database's routines go with it, as in MySQL.
                self.routines.retain(|key, _| key.database != name);
                CatalogOutcome::DatabaseDropped { tables: doomed }
            }
            CatalogOp::CreateTable { mut table, if_not_exists } => {
                if !self.databases.contains_key(&table.database) {
                    bail!(UnknownDatabase, "Unknown database '{}'", table.database);
                }
                if self.table_by_name(&table.database, &table.name).is_some() {
                    let message = format!("Table '{}' already exists", table.name);
                    if if_not_exists {
                        return Ok(CatalogOutcome::Unchanged { note: Some((ErrorKind::TableExists, message)) });
                    }
                    return Err(Error::new(ErrorKind::TableExists, message));
                }
                table.validate()?;
                if node_groups.is_empty() {
                    return Err(Error::temporary("the cluster has no node groups to place the table on"));
                }
                let count = if table.partitions.is_empty() {
                    PARTITIONS_PER_NODE_GROUP * node_groups.len() as u32
                } else {
                    table.partitions.len() as u32
                };
                if count == 0 || count > MAX_PARTITIONS {
                    bail!(SyntaxError, "Number of partitions must be between 1 and {MAX_PARTITIONS}");
                }
                table.partitions = (0..count).map(|p| node_groups[p as usize % node_groups.len()]).collect();
                table.id = TableId(self.next_table_id);
                table.version = self.version + 1;
                self.next_table_id += 1;
                for ix in &mut table.indexes {
                    ix.table = None;
                }
                self.create_index_tables(&mut table, node_groups)?;
                let id = table.id;
                self.names.insert((table.database.clone(), table.name.clone()), id);
                self.tables.insert(id, table);
                CatalogOutcome::TableCreated { id }
            }
            CatalogOp::DropTable { database, name, if_exists } => {
                let Some(id) = self.names.get(&(database.clone(), name.clone())).copied() else {
                    let message = format!("Unknown table '{database}.{name}'");
                    if if_exists {
                        return Ok(CatalogOutcome::Unchanged { note: Some((ErrorKind::UnknownTableDrop, message)) });
                    }
                    return Err(Error::new(ErrorKind::UnknownTableDrop, message));
                };
                self.names.remove(&(database, name));
                if let Some(t) = self.tables.remove(&id) {
                    self.drop_index_tables(&t);
                }
                CatalogOutcome::TableDropped { id }
            }
            CatalogOp::AlterTable { database, name, expected_version, table } => {
                return self.alter_table(database, name, expected_version, table, node_groups);
            }
            CatalogOp::Accounts(ops) => {
                // Applied to a copy so that a failing op in the list leaves nothing behind.
                let mut accounts = self.accounts.clone();
                let mut outcome = AccountOutcome::default();
                for op in ops {
                    outcome.notes.extend(accounts.apply(op)?.notes);
                }
                self.accounts = accounts;
                CatalogOutcome::Accounts(outcome)
            }
            CatalogOp::CreateRoutine { mut routine, or_replace, if_not_exists } => {
                if !self.databases.contains_key(&routine.database) {
                    bail!(UnknownDatabase, "Unknown database '{}'", routine.database);
                }
                routine.validate()?;
                let key = RoutineKey::new(&routine.database, routine.kind, &routine.name);
                if self.routines.contains_key(&key) && !or_replace {
                    let error = routine::already_exists(routine.kind, &routine.name);
                    if if_not_exists {
                        return Ok(CatalogOutcome::Unchanged { note: Some((error.kind, error.message)) });
                    }
                    return Err(error);
                }
                routine.version = self.version + 1;
                self.routines.insert(key, routine);
                CatalogOutcome::RoutineCreated
            }
            CatalogOp::AlterRoutine { database, kind, name, changes } => {
                let Some(r) = self.routines.get_mut(&RoutineKey::new(&database, kind, &name)) else {
                    return Err(routine::does_not_exist(kind, &database, &name));
                };
                if let Some(comment) = changes.comment {
                    r.comment = comment;
                }
                if let Some(security) = changes.security {
                    r.security = security;
                }
                if let Some(access) = changes.data_access {
                    r.data_access = access;
                }
                r.modified_micros = changes.modified_micros;
                r.version = self.version + 1;
                CatalogOutcome::RoutineAltered
            }
            CatalogOp::DropRoutine { database, kind, name, if_exists } => {
                if self.routines.remove(&RoutineKey::new(&database, kind, &name)).is_none() {
                    let error = routine::does_not_exist(kind, &database, &name);
                    if if_exists {
                        return Ok(CatalogOutcome::Unchanged { note: Some((error.kind, error.message)) });
                    }
                    return Err(error);
                }
                CatalogOutcome::RoutineDropped
            }
        };
        self.version += 1;
        Ok(outcome)
    }
}


impl Catalog {
    fn alter_table(
        &mut self,
        database: String,
        name: String,
        expected_version: u64,
        mut table: TableDef,
        node_groups: &[NodeGroupId],
    ) -> Result<CatalogOutcome> {
        let Some(id) = self.names.get(&(database.clone(), name.clone())).copied() else {
            bail!(NoSuchTable, "Table '{database}.{name}' doesn't exist");
        };
        let current = self.tables.get(&id).cloned().ok_or_else(|| Error::internal("a named table is missing"))?;
        if current.version != expected_version {
            return Err(Error::new(
                ErrorKind::ClusterTemporary,
                format!("table {database}.{name} changed while the statement ran (definition {} is now {}); retry", expected_version, current.version),
            ));
        }
        if !self.databases.contains_key(&table.database) {
            bail!(UnknownDatabase, "Unknown database '{}'", table.database);
        }
        let renamed = (table.database.clone(), table.name.clone()) != (database.clone(), name.clone());
        if renamed && self.names.contains_key(&(table.database.clone(), table.name.clone())) {
            bail!(TableExists, "Table '{}' already exists", table.name);
        }
        table.validate()?;
        // What the data nodes rely on stays: the id and the placement of the partitions.
        table.id = id;
        table.partitions = current.partitions.clone();
        // A unique index keeps its hidden table only if it is the same index (same id and columns;
        // a column change may have moved the columns, which the layout history tells).
        let moved = table.positions_since(current.layouts.format);
        let now_at = |columns: &[usize]| -> Vec<Option<usize>> {
            columns.iter().map(|&c| match &moved { Some(map) => map.get(c).copied().flatten(), None => Some(c) }).collect()
        };
        for ix in &mut table.indexes {
            let same = current.indexes.iter().any(|old| {
                old.id == ix.id && now_at(&old.columns) == ix.columns.iter().map(|&c| Some(c)).collect::<Vec<_>>() && old.kind == ix.kind && old.table == ix.table
            });
            if !same || ix.kind != IndexKind::Unique {
                ix.table = None;
            }
        }
        let kept: Vec<TableId> = table.indexes.iter().filter_map(|ix| ix.table).collect();
        for old in &current.indexes {
            if let Some(t) = old.table {
                if !kept.contains(&t) {
                    self.index_tables.remove(&t);
                }
            }
        }
        self.create_index_tables(&mut table, node_groups)?;
        table.version = self.version + 1;
        let version = table.version;
        if renamed {
            self.names.remove(&(database, name));
            self.names.insert((table.database.clone(), table.name.clone()), id);
            for ix in &table.indexes {
                if let Some(hidden) = ix.table.and_then(|t| self.index_tables.get_mut(&t)) {
                    hidden.database = table.database.clone();
                }
            }
        }
        self.tables.insert(id, table);
        self.version += 1;
        Ok(CatalogOutcome::TableAltered { id, version })
    }
}

/// The hidden table of a unique index of `base`: the key columns (NOT NULL: rows with a NULL in
/// the key have no entry, so any number of them may exist, as in MySQL), then the base table's
/// primary-key columns; keyed and partitioned by the key columns. Id, version and partitions
/// are filled in by the catalog.
pub fn index_table_def(base: &TableDef, index: &IndexDef) -> Result<TableDef> {
    let mut columns = Vec::with_capacity(index.columns.len() + base.primary_key.len());
    let plain = |c: &ColumnDef, name: String| ColumnDef {
        name,
        ty: c.ty.clone(),
        nullable: false,
        default: ColumnDefault::None,
        auto_increment: false,
        on_update_now: false,
        collation: c.collation.clone(),
        comment: String::new(),
        hidden: false,
    };
    for (i, &c) in index.columns.iter().enumerate() {
        let column = base.columns.get(c).ok_or_else(|| Error::internal("index column out of range"))?;
        columns.push(plain(column, format!("k{i}")));
    }
    for (i, &c) in base.primary_key.iter().enumerate() {
        let column = base.columns.get(c).ok_or_else(|| Error::internal("primary-key column out of range"))?;
        columns.push(plain(column, format!("p{i}")));
    }
    let key: Vec<usize> = (0..index.columns.len()).collect();
    Ok(TableDef {
        id: TableId(0),
        version: 0,
        database: base.database.clone(),
        name: format!("{}${}", base.name, index.name),
        columns,
        primary_key: key.clone(),
        hidden_primary_key: false,
        indexes: Vec::new(),
        foreign_keys: Vec::new(),
        partition_key: key,
        partitions: Vec::new(),
        explicit_partitioning: false,
        auto_increment_start: 1,
        charset: base.charset.clone(),
        collation: base.collation.clone(),
        engine: base.engine.clone(),
        comment: format!("unique index {} of {}", index.name, base.name),
        layouts: Default::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{ColumnType, IntWidth};

    fn table(db: &str, name: &str) -> TableDef {
        let mut id = ColumnDef::new("id", ColumnType::Int { width: IntWidth::Int, unsigned: true, display: None });
        id.nullable = false;
        TableDef {
            id: TableId(0),
            version: 0,
            database: db.into(),
            name: name.into(),
            columns: vec![id, ColumnDef::new("name", ColumnType::VarChar { length: 64, binary: false })],
            primary_key: vec![0],
            hidden_primary_key: false,
            indexes: vec![],
            foreign_keys: vec![],
            partition_key: vec![0],
            partitions: vec![],
            explicit_partitioning: false,
            auto_increment_start: 1,
            charset: "utf8mb4".into(),
            collation: "utf8mb4_general_ci".into(),
            engine: "ndbcluster".into(),
            comment: String::new(),
            layouts: Default::default(),
        }
    }

    fn create_db(name: &str) -> CatalogOp {
        CatalogOp::CreateDatabase { name: name.into(), charset: "utf8mb4".into(), collation: "utf8mb4_general_ci".into(), if_not_exists: false }
    }

    #[test]
    fn create_and_drop_with_errors_mysql_gives() {
        let groups = [NodeGroupId(0), NodeGroupId(1)];
        let mut c = Catalog::new();
        c.apply(create_db("calmail"), &groups).unwrap();
        assert_eq!(c.apply(create_db("calmail"), &groups).unwrap_err().code(), 1007);
        let op = CatalogOp::CreateTable { table: table("nope", "t"), if_not_exists: false };
        assert_eq!(c.apply(op, &groups).unwrap_err().code(), 1049);
        let op = CatalogOp::CreateTable { table: table("calmail", "account"), if_not_exists: false };
        let CatalogOutcome::TableCreated { id } = c.apply(op.clone(), &groups).unwrap() else { panic!() };
        let t = c.table(id).unwrap();
        assert_eq!(t.partitions.len(), 16);
        assert_eq!(t.partitions_on(NodeGroupId(1)).len(), 8, "partitions spread over both node groups");
        assert_eq!(c.apply(op, &groups).unwrap_err().code(), 1050);
        assert!(c.table_by_name("calmail", "account").is_some());
        assert!(c.table_by_name("calmail", "Account").is_none(), "table names are case-sensitive");
        let drop = CatalogOp::DropDatabase { name: "calmail".into(), if_exists: false };
        assert_eq!(c.apply(drop, &groups).unwrap(), CatalogOutcome::DatabaseDropped { tables: vec![id] });
        assert!(c.table(id).is_none());
        let drop = CatalogOp::DropTable { database: "calmail".into(), name: "account".into(), if_exists: true };
        assert!(matches!(c.apply(drop, &groups).unwrap(), CatalogOutcome::Unchanged { .. }));
    }

    #[test]
    fn table_ids_are_never_reused() {
        let groups = [NodeGroupId(0)];
        let mut c = Catalog::new();
        c.apply(create_db("d"), &groups).unwrap();
        let mk = |c: &mut Catalog| match c.apply(CatalogOp::CreateTable { table: table("d", "t"), if_not_exists: false }, &groups).unwrap() {
            CatalogOutcome::TableCreated { id } => id,
            other => panic!("{other:?}"),
        };
        let first = mk(&mut c);
        c.apply(CatalogOp::DropTable { database: "d".into(), name: "t".into(), if_exists: false }, &groups).unwrap();
        assert_ne!(mk(&mut c), first);
    }

    fn routine(db: &str, name: &str, kind: RoutineKind) -> RoutineDef {
        use crate::routine::{DataAccess, RoutineType, SqlSecurity};
        RoutineDef {
            database: db.into(),
            name: name.into(),
            kind,
            version: 0,
            params: vec![],
            returns: (kind == RoutineKind::Function).then(|| RoutineType { ty: ColumnType::bigint(), collation: None }),
            param_list: String::new(),
            body: "RETURN 1".into(),
            definer_user: "root".into(),
            definer_host: "%".into(),
            security: SqlSecurity::Definer,
            deterministic: false,
            data_access: DataAccess::ContainsSql,
            comment: String::new(),
            sql_mode: String::new(),
            character_set_client: "utf8mb4".into(),
            collation_connection: "utf8mb4_0900_ai_ci".into(),
            database_collation: "utf8mb4_0900_ai_ci".into(),
            created_micros: 0,
            modified_micros: 0,
        }
    }

    #[test]
    fn routines_are_per_database_per_kind_and_case_insensitive() {
        let groups = [NodeGroupId(0)];
        let mut c = Catalog::new();
        let create = |r: RoutineDef, or_replace: bool, if_not_exists: bool| CatalogOp::CreateRoutine { routine: r, or_replace, if_not_exists };
        assert_eq!(c.apply(create(routine("d", "f", RoutineKind::Function), false, false), &groups).unwrap_err().code(), 1049);
        c.apply(create_db("d"), &groups).unwrap();
        assert_eq!(c.apply(create(routine("d", "f", RoutineKind::Function), false, false), &groups).unwrap(), CatalogOutcome::RoutineCreated);
        let first = c.routine("d", RoutineKind::Function, "F").unwrap().version;
        assert_eq!(first, c.version, "a routine carries the version that created it");
        // A procedure of the same name lives in its own name space.
        c.apply(create(routine("d", "f", RoutineKind::Procedure), false, false), &groups).unwrap();
        let err = c.apply(create(routine("d", "F", RoutineKind::Function), false, false), &groups).unwrap_err();
        assert_eq!((err.code(), err.message.as_str()), (1304, "FUNCTION F already exists"));
        assert!(matches!(c.apply(create(routine("d", "f", RoutineKind::Function), false, true), &groups).unwrap(), CatalogOutcome::Unchanged { note: Some(_) }));
        c.apply(create(routine("d", "f", RoutineKind::Function), true, false), &groups).unwrap();
        assert!(c.routine("d", RoutineKind::Function, "f").unwrap().version > first, "OR REPLACE gives a new version");
        let drop = |if_exists| CatalogOp::DropRoutine { database: "d".into(), kind: RoutineKind::Function, name: "F".into(), if_exists };
        assert_eq!(c.apply(drop(false), &groups).unwrap(), CatalogOutcome::RoutineDropped);
        let err = c.apply(drop(false), &groups).unwrap_err();
        assert_eq!((err.code(), err.message.as_str()), (1305, "FUNCTION d.F does not exist"));
        assert!(matches!(c.apply(drop(true), &groups).unwrap(), CatalogOutcome::Unchanged { .. }));
        let mut bad = routine("d", "g", RoutineKind::Function);
        bad.name = "x".repeat(65);
        assert_eq!(c.apply(create(bad, false, false), &groups).unwrap_err().code(), 1458);
        // Dropping the database drops its routines; the catalog round-trips through postcard.
        let bytes = postcard::to_stdvec(&c).unwrap();
        let back: Catalog = postcard::from_bytes(&bytes).unwrap();
        assert!(back.routine("d", RoutineKind::Procedure, "f").is_some());
        c.apply(CatalogOp::DropDatabase { name: "d".into(), if_exists: false }, &groups).unwrap();
        assert_eq!(c.all_routines().count(), 0);
    }

    #[test]
    fn catalog_survives_serialization() {
        let groups = [NodeGroupId(0)];
        let mut c = Catalog::new();
        c.apply(create_db("d"), &groups).unwrap();
        c.apply(CatalogOp::CreateTable { table: table("d", "t"), if_not_exists: false }, &groups).unwrap();
        let bytes = postcard::to_stdvec(&c).unwrap();
        let mut back: Catalog = postcard::from_bytes(&bytes).unwrap();
        back.reindex();
        assert_eq!(back.version, c.version);
        assert!(back.table_by_name("d", "t").is_some());
    }
}
