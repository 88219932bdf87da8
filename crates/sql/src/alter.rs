//! Online schema changes: `CREATE INDEX`, `DROP INDEX`, `ALTER TABLE … ADD/DROP INDEX`,
//! `RENAME TABLE` / `ALTER TABLE … RENAME`.
//!
//! No table is copied and writes do not stop. A new index goes through two catalog changes:
//!
//! 1. The index enters the table's definition in state **Building**. From the moment a node
//!    has that definition, writes maintain the index: data nodes keep ordered indexes as they
//!    apply rows, SQL nodes write unique-index entries with every row they write. Requests
//!    planned with the older definition are refused by data nodes that have the new one
//!    ("definition changed"), and the SQL node replans them with the new one and sends them
//!    again (`session`); a data node that lags parks requests planned with the newer one
//!    until its catalog catches up. So once every node group's leader has answered a request
//!    naming the new definition, every later write maintains the index.
//! 2. The existing rows are indexed while writes go on: ordered indexes by each data node,
//!    a slice of rows per round of its loop (`cairn_storage::indexing`); unique indexes by this
//!    SQL node, which scans the table a page at a time and inserts the missing entries (a key
//!    held by another row fails the statement with 1062 and the index is removed, as MySQL's
//!    `ALTER TABLE … ADD UNIQUE` fails). When every node group reports its ordered index
//!    complete, or the scan is done, the index turns **Ready** and plans start using it.
//!
//! Dropping an index is one catalog change; data nodes forget an ordered index when they see
//! it, and free a unique index's hidden table through their logs. Renaming changes names only.
//!
//! If the SQL node running the statement dies between the two changes, the index stays
//! Building: maintained but unused. Running the same statement again finds it and resumes.
//!
//! Column changes (ADD/DROP/MODIFY/CHANGE/RENAME COLUMN) are planned by `alter_columns`: a new
//! row format in the definition, no row rewritten. A statement that changes columns and adds
//! indexes makes the column change first, then builds the indexes on the new definition.

use std::sync::Arc;

use sqlparser::ast::{self, AlterTableOperation, TableConstraint};

use cairn_common::catalog::{CatalogOp, CatalogOutcome, IndexDef, IndexKind, IndexState, TableDef};
use cairn_common::collation::Collation;
use cairn_common::expr::{CmpOp, Expr};
use cairn_common::error::{Error, ErrorKind};
use cairn_common::ids::NodeGroupId;
use cairn_common::ops::{OnDuplicate, ReadOp, ReadResult, TableRef, WriteOp};
use cairn_common::{Value, bail, err};

use crate::backend::Backend;
use crate::exec::{Exec, ScanStream, fetch_keys};
use crate::join::join_all;
use crate::outcome::RowStream;
use crate::parse::TableName;

/// How long a node group may take to build an ordered index before the statement gives up
/// (the index stays Building; running the statement again resumes waiting).
const INDEX_BUILD_DEADLINE_MS: u64 = 30 * 60 * 1000;
/// Pause between checks of an index build.
const POLL_MS: u64 = 20;

/// A schema change, ready to run.
#[derive(Debug)]
pub(crate) struct AlterPlan {
    pub database: String,
    pub name: String,
    pub current: TableDef,
    pub new: TableDef,
    /// Indexes (by id) of `new` to build before they turn Ready.
    pub building: Vec<u32>,
    /// Whether the statement changes columns (then `new` may have a new row format).
    pub columns_changed: bool,
    /// Stored values to check against their column's new definition first: (column of
    /// `current`, column of `new`).
    pub checks: Vec<(usize, usize)>,
}

fn index_columns(table: &TableDef, columns: &[ast::IndexColumn]) -> Result<Vec<usize>, Error> {
    let mut out = Vec::with_capacity(columns.len());
    for c in columns {
        let name = match &c.column.expr {
            ast::Expr::Identifier(i) => i.value.clone(),
            // KEY (name(10)): a prefix length, which Cairn keeps whole.
            ast::Expr::Function(f) if f.name.0.len() == 1 => f.name.to_string().trim_matches('`').to_string(),
            other => return Err(Error::not_supported(format!("functional key parts ({other})"))),
        };
        let i = table.column_index(&name).ok_or_else(|| err!(KeyColumnMissing, "Key column '{name}' doesn't exist in table"))?;
        out.push(i);
    }
    if out.is_empty() {
        return Err(crate::lexer::syntax_error_near(")", 1));
    }
    Ok(out)
}

/// Adds an index to a definition (in state Building), named as MySQL names it when no name
/// is given. Returns its id.
fn add_index(def: &mut TableDef, name: Option<String>, columns: Vec<usize>, kind: IndexKind) -> Result<u32, Error> {
    let taken = |def: &TableDef, n: &str| n.eq_ignore_ascii_case("PRIMARY") || def.indexes.iter().any(|ix| ix.name.eq_ignore_ascii_case(n));
    let name = match name {
        Some(n) => {
            if taken(def, &n) {
                bail!(DuplicateKeyName, "Duplicate key name '{n}'");
            }
            n
        }
        None => {
            let base = def.columns[columns[0]].name.clone();
            let mut candidate = base.clone();
            let mut n = 2;
            while taken(def, &candidate) {
                candidate = format!("{base}_{n}");
                n += 1;
            }
            candidate
        }
    };
    let id = def.indexes.iter().map(|ix| ix.id).max().unwrap_or(0) + 1;
    def.indexes.push(IndexDef { id, name, columns, kind, state: IndexState::Building, table: None });
    Ok(id)
}

fn drop_index(def: &mut TableDef, name: &str) -> Result<(), Error> {
    let Some(at) = def.indexes.iter().position(|ix| ix.name.eq_ignore_ascii_case(name)) else {
        bail!(CantDropFieldOrKey, "Can't DROP '{name}'; check that column/key exists");
    };
    let ix = def.indexes.remove(at);
    if def.auto_increment_column().is_some_and(|a| ix.columns.first() == Some(&a) && def.primary_key.first() != Some(&a))
        && !def.indexes.iter().any(|other| other.columns.first() == ix.columns.first())
    {
        bail!(WrongAutoKey, "Incorrect table definition; there can be only one auto column and it must be defined as a key");
    }
    Ok(())
}

fn base_plan(table: &TableDef) -> AlterPlan {
    AlterPlan {
        database: table.database.clone(),
        name: table.name.clone(),
        current: table.clone(),
        new: table.clone(),
        building: Vec::new(),
        columns_changed: false,
        checks: Vec::new(),
    }
}

/// `CREATE [UNIQUE] INDEX`. An index of the same name and columns still Building (its
/// statement was cut off) is resumed.
pub(crate) fn plan_create_index(table: &TableDef, ix: &ast::CreateIndex) -> Result<AlterPlan, Error> {
    let mut plan = base_plan(table);
    let columns = index_columns(table, &ix.columns)?;
    let kind = if ix.unique { IndexKind::Unique } else { IndexKind::Ordered };
    let name = match &ix.name {
        Some(n) => Some(n.to_string().trim_matches('`').to_string()),
        None => return Err(crate::lexer::syntax_error_near("ON", 1)),
    };
    if let Some(existing) = table.indexes.iter().find(|x| Some(x.name.as_str()) == name.as_deref()) {
        if existing.state == IndexState::Building && existing.columns == columns && existing.kind == kind {
            plan.building.push(existing.id);
            return Ok(plan);
        }
        if ix.if_not_exists {
            return Ok(plan);
        }
    }
    let id = add_index(&mut plan.new, name, columns, kind)?;
    plan.building.push(id);
    Ok(plan)
}

pub(crate) fn plan_drop_index(table: &TableDef, name: &str) -> Result<AlterPlan, Error> {
    if name.eq_ignore_ascii_case("PRIMARY") {
        return Err(Error::not_supported("dropping the primary key"));
    }
    let mut plan = base_plan(table);
    drop_index(&mut plan.new, name)?;
    Ok(plan)
}

pub(crate) fn plan_rename(table: &TableDef, to: &TableName, current_database: Option<&str>) -> Result<AlterPlan, Error> {
    let mut plan = base_plan(table);
    plan.new.database = match &to.database {
        Some(db) => db.clone(),
        None => current_database.map(str::to_string).unwrap_or_else(|| table.database.clone()),
    };
    plan.new.name = to.name.clone();
    if plan.new.name.is_empty() || plan.new.name.len() > 64 {
        bail!(WrongArguments, "Incorrect table name '{}'", plan.new.name);
    }
    Ok(plan)
}

/// `ALTER TABLE`'s operations applied to the definition.
pub(crate) fn plan_alter(
    catalog: &cairn_common::catalog::Catalog,
    table: &TableDef,
    operations: &[AlterTableOperation],
    current_database: Option<&str>,
) -> Result<AlterPlan, Error> {
    let mut plan = base_plan(table);
    let mut columns = crate::alter_columns::ColumnWork::new(table);
    for op in operations {
        if crate::alter_columns::is_column_operation(op) {
            if let Some(unique) = crate::alter_columns::apply_operation(&mut plan.new, &mut columns, op, catalog)? {
                let at = plan.new.column_index(&unique).ok_or_else(|| Error::internal("an added column vanished"))?;
                let id = add_index(&mut plan.new, None, vec![at], IndexKind::Unique)?;
                plan.building.push(id);
            }
            plan.building.retain(|id| plan.new.indexes.iter().any(|ix| ix.id == *id));
            continue;
        }
        match op {
            AlterTableOperation::AddConstraint { constraint, .. } => match constraint {
                TableConstraint::Unique(u) => {
                    let columns = index_columns(&plan.new, &u.columns)?;
                    let name = u.index_name.as_ref().or(u.name.as_ref()).map(|i| i.value.clone());
                    let id = add_index(&mut plan.new, name, columns, IndexKind::Unique)?;
                    plan.building.push(id);
                }
                TableConstraint::Index(ix) => {
                    let columns = index_columns(&plan.new, &ix.columns)?;
                    let id = add_index(&mut plan.new, ix.name.as_ref().map(|i| i.value.clone()), columns, IndexKind::Ordered)?;
                    plan.building.push(id);
                }
                TableConstraint::PrimaryKey(_) => return Err(Error::not_supported("changing the primary key")),
                TableConstraint::FulltextOrSpatial(_) => return Err(Error::not_supported("FULLTEXT and SPATIAL indexes")),
                other => return Err(Error::not_supported(format!("ALTER TABLE ADD {other}"))),
            },
            AlterTableOperation::DropIndex { name } => {
                drop_index(&mut plan.new, &name.value)?;
                plan.building.retain(|id| plan.new.indexes.iter().any(|ix| ix.id == *id));
            }
            AlterTableOperation::DropPrimaryKey { .. } => return Err(Error::not_supported("dropping the primary key")),
            AlterTableOperation::DropForeignKey { name, .. } => {
                let before = plan.new.foreign_keys.len();
                plan.new.foreign_keys.retain(|fk| !fk.name.eq_ignore_ascii_case(&name.value));
                if plan.new.foreign_keys.len() == before {
                    bail!(CantDropFieldOrKey, "Can't DROP '{}'; check that column/key exists", name.value);
                }
            }
            AlterTableOperation::RenameTable { table_name } => {
                let to = match table_name {
                    ast::RenameTableNameKind::As(n) | ast::RenameTableNameKind::To(n) => crate::plan::object_table_name(n)?,
                };
                let renamed = plan_rename(&plan.new, &to, current_database)?;
                plan.new.database = renamed.new.database;
                plan.new.name = renamed.new.name;
            }
            // Every change here is online already: ALGORITHM and LOCK change nothing.
            AlterTableOperation::Algorithm { .. } | AlterTableOperation::Lock { .. } => {}
            other => return Err(Error::not_supported(format!("ALTER TABLE {other}"))),
        }
    }
    if columns.touched {
        crate::alter_columns::finish_layouts(table, &mut plan.new, &columns)?;
        plan.new.validate()?;
        plan.checks = crate::alter_columns::columns_to_check(table, &plan.new, &columns);
        plan.columns_changed = true;
    }
    Ok(plan)
}

/// The schema changes a statement makes, one per table (RENAME TABLE of several tables renames
/// them one after the other, not atomically).
pub(crate) fn plan_statement(catalog: &cairn_common::catalog::Catalog, statement: &crate::parse::Statement, database: Option<&str>) -> Result<Vec<AlterPlan>, Error> {
    use crate::parse::Statement;
    let resolve = |name: &TableName| -> Result<TableDef, Error> {
        let db = match (&name.database, database) {
            (Some(db), _) => db.clone(),
            (None, Some(db)) => db.to_string(),
            (None, None) => bail!(NoDatabaseSelected, "No database selected"),
        };
        catalog.table_by_name(&db, &name.name).cloned().ok_or_else(|| err!(NoSuchTable, "Table '{db}.{}' doesn't exist", name.name))
    };
    Ok(match statement {
        Statement::CreateIndex(ix) => vec![plan_create_index(&resolve(&crate::plan::object_table_name(&ix.table_name)?)?, ix)?],
        Statement::DropIndex { name, table } => vec![plan_drop_index(&resolve(table)?, name)?],
        Statement::AlterTable(at) => {
            let table = resolve(&crate::plan::object_table_name(&at.name)?)?;
            vec![plan_alter(catalog, &table, &at.operations, database)?]
        }
        Statement::RenameTable(pairs) => {
            let mut plans = Vec::with_capacity(pairs.len());
            for (from, to) in pairs {
                plans.push(plan_rename(&resolve(from)?, to, database)?);
            }
            plans
        }
        _ => return Err(Error::internal("not a schema change")),
    })
}

/// Waits until the leader of every node group of `tables` serves the definitions given (a
/// data node whose catalog is older parks such a request until its catalog catches up).
async fn wait_for_definitions<B: Backend>(exec: &Exec<B>, tables: &[&TableDef]) -> Result<(), Error> {
    let mut requests: Vec<(NodeGroupId, ReadOp)> = Vec::new();
    for t in tables {
        let mut groups = t.partitions.clone();
        groups.sort();
        groups.dedup();
        for g in groups {
            requests.push((g, ReadOp::Count { table: TableRef { id: t.id, version: t.version } }));
        }
    }
    let backend = exec.engine.backend.clone();
    let futures: Vec<_> = requests.into_iter().map(|(g, op)| backend.read(g, op)).collect();
    for answer in join_all(futures).await {
        answer?;
    }
    Ok(())
}

/// Waits until every node group reports ordered index `index` of `def` complete.
async fn wait_for_ordered<B: Backend>(exec: &Exec<B>, def: &TableDef, index: u32) -> Result<(), Error> {
    let mut groups = def.partitions.clone();
    groups.sort();
    groups.dedup();
    let table = TableRef { id: def.id, version: def.version };
    let backend = exec.engine.backend.clone();
    let mut waited = 0u64;
    loop {
        let futures: Vec<_> = groups.iter().map(|g| backend.read(*g, ReadOp::IndexStatus { table, index })).collect();
        let mut done = true;
        for answer in join_all(futures).await {
            match answer? {
                ReadResult::IndexBuilt(built) => done &= built,
                _ => return Err(Error::internal("a node group answered an index status with something else")),
            }
        }
        if done {
            return Ok(());
        }
        if waited > INDEX_BUILD_DEADLINE_MS {
            return Err(Error::temporary("the index is still being built on the data nodes; run the statement again to keep waiting"));
        }
        backend.pause(POLL_MS).await;
        waited += POLL_MS;
    }
}

/// Inserts the entries of every existing row into a unique index's hidden table.
async fn backfill_unique<B: Backend>(exec: &mut Exec<B>, def: &Arc<TableDef>, index: &IndexDef) -> Result<(), Error> {
    let catalog = exec.engine.backend.catalog();
    let hidden_id = index.table.ok_or_else(|| Error::internal("a unique index without its table"))?;
    let hidden = Arc::new(catalog.table(hidden_id).ok_or_else(|| Error::temporary("the index's table is not known here yet; retry"))?.clone());
    let hidden_layout = exec.engine.layout(&hidden);
    let width = index.columns.len();
    let mut projection: Vec<u32> = index.columns.iter().chain(def.primary_key.iter()).map(|&c| c as u32).collect();
    projection.sort_unstable();
    projection.dedup();
    let mut stream = ScanStream::new(exec, def.clone(), None, projection, None);
    while let Some(batch) = stream.next_batch().await {
        let rows = batch?;
        // The entries of this page's rows whose key has no NULL.
        let entries: Vec<Vec<Value>> = rows
            .iter()
            .filter_map(|row| {
                let key: Vec<Value> = index.columns.iter().map(|&c| row[c].clone()).collect();
                if key.iter().any(Value::is_null) {
                    return None;
                }
                let mut entry = key;
                entry.extend(def.primary_key.iter().map(|&c| row[c].clone()));
                Some(entry)
            })
            .collect();
        for attempt in 0..2 {
            let existing = fetch_keys(exec, &hidden, entries.iter().map(|e| e[..width].to_vec()).collect()).await?;
            let mut ops: std::collections::BTreeMap<NodeGroupId, Vec<WriteOp>> = std::collections::BTreeMap::new();
            let mut owners_to_check: Vec<(Vec<Value>, Vec<Value>)> = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for entry in &entries {
                let mut encoded = Vec::new();
                cairn_common::key::encode_key_values(&hidden, &hidden.primary_key, &entry[..width], &mut encoded)?;
                if !seen.insert(encoded.clone()) {
                    // Two rows of this page share the key.
                    return Err(cairn_storage::evaluate::duplicate_entry_for(&hidden, entry, &index.name));
                }
                match existing.get(&encoded) {
                    Some(bytes) => {
                        let held = hidden_layout.decode(bytes)?;
                        if held[width..] != entry[width..] {
                            owners_to_check.push((entry.clone(), held[width..].to_vec()));
                        }
                    }
                    None => {
                        let partition = cairn_common::key::partition_of_primary_key(&hidden, &entry[..width])?;
                        let group = hidden.node_group_of(partition).ok_or_else(|| Error::internal("partition without a node group"))?;
                        let op = WriteOp::Insert { table: TableRef { id: hidden.id, version: hidden.version }, row: hidden_layout.encode_to_vec(entry)?, on_duplicate: OnDuplicate::Error };
                        ops.entry(group).or_default().push(op);
                    }
                }
            }
            // A key held by another row is a duplicate if that row still has it.
            if !owners_to_check.is_empty() {
                let found = fetch_keys(exec, def, owners_to_check.iter().map(|(_, pk)| pk.clone()).collect()).await?;
                let layout = exec.engine.layout(def);
                for (entry, pk) in &owners_to_check {
                    let mut encoded = Vec::new();
                    cairn_common::key::encode_key_values(def, &def.primary_key, pk, &mut encoded)?;
                    let still = match found.get(&encoded) {
                        Some(bytes) => {
                            let row = layout.decode(bytes)?;
                            let key: Vec<Value> = index.columns.iter().map(|&c| row[c].clone()).collect();
                            let mut a = Vec::new();
                            let mut b = Vec::new();
                            cairn_common::key::encode_key_values(&hidden, &hidden.primary_key, &key, &mut a).ok();
                            cairn_common::key::encode_key_values(&hidden, &hidden.primary_key, &entry[..width], &mut b)?;
                            a == b
                        }
                        None => false,
                    };
                    if still {
                        return Err(cairn_storage::evaluate::duplicate_entry_for(&hidden, entry, &index.name));
                    }
                    // A stale entry (its row lost the key): replace it, guarded by its owner.
                    let partition = cairn_common::key::partition_of_primary_key(&hidden, &entry[..width])?;
                    let group = hidden.node_group_of(partition).ok_or_else(|| Error::internal("partition without a node group"))?;
                    let hidden_ref = TableRef { id: hidden.id, version: hidden.version };
                    let guard = Expr::conjunction(
                        pk.iter()
                            .enumerate()
                            .map(|(i, v)| Expr::Compare {
                                op: CmpOp::NullSafeEq,
                                left: Box::new(Expr::Column((width + i) as u32)),
                                right: Box::new(Expr::Literal(v.clone())),
                                collation: Collation::Binary,
                            })
                            .collect(),
                    );
                    let list = ops.entry(group).or_default();
                    list.push(WriteOp::DeleteKey { table: hidden_ref, key: entry[..width].to_vec(), filter: guard });
                    list.push(WriteOp::Insert { table: hidden_ref, row: hidden_layout.encode_to_vec(entry)?, on_duplicate: OnDuplicate::Error });
                }
            }
            match exec.access.write_groups(ops).await {
                Ok(_) => break,
                // A row written meanwhile took a key of this page: look again once.
                Err(e) if e.kind == ErrorKind::DuplicateKey && attempt == 0 => continue,
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Replaces a table's definition in the catalog; a concurrent change to it is retried by the
/// caller with the definition read again.
async fn apply<B: Backend>(exec: &Exec<B>, database: &str, name: &str, expected_version: u64, table: TableDef) -> Result<(), Error> {
    match exec.engine.backend.ddl(CatalogOp::AlterTable { database: database.into(), name: name.into(), expected_version, table }).await? {
        CatalogOutcome::TableAltered { .. } => Ok(()),
        other => Err(Error::internal(format!("ALTER TABLE answered {other:?}"))),
    }
}

/// Makes `desired` the table's definition, with the indexes of `building` Ready and the
/// hidden tables the catalog gave the new unique indexes; retried when another change gets
/// there first.
async fn finish<B: Backend>(exec: &Exec<B>, database: &str, name: &str, desired: &TableDef, building: &[u32]) -> Result<(), Error> {
    for _ in 0..10 {
        let catalog = exec.engine.backend.catalog();
        let Some(current) = catalog.table_by_name(database, name) else { return Ok(()) };
        let mut next = desired.clone();
        for ix in &mut next.indexes {
            if let Some(now) = current.indexes.iter().find(|c| c.id == ix.id) {
                ix.table = now.table;
            }
            if building.contains(&ix.id) {
                ix.state = IndexState::Ready;
            }
        }
        match apply(exec, database, name, current.version, next).await {
            Ok(()) => return Ok(()),
            Err(e) if e.kind == ErrorKind::ClusterTemporary => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Error::temporary("the table kept changing while its indexes were finished; run the statement again"))
}

/// Removes indexes that failed to build, keeping whatever else the definition has now.
async fn abandon<B: Backend>(exec: &Exec<B>, database: &str, name: &str, ids: &[u32]) -> Result<(), Error> {
    for _ in 0..10 {
        let catalog = exec.engine.backend.catalog();
        let Some(current) = catalog.table_by_name(database, name) else { return Ok(()) };
        let mut next = current.clone();
        next.indexes.retain(|ix| !ids.contains(&ix.id));
        match apply(exec, database, name, current.version, next).await {
            Ok(()) => return Ok(()),
            Err(e) if e.kind == ErrorKind::ClusterTemporary => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Error::temporary("the table kept changing; run the statement again"))
}

/// Runs a planned schema change. New indexes are added first (Building) to the current
/// definition; the rest of the change (dropped indexes, a new name) comes with the final step
/// that turns them Ready, so that a failed build leaves the table as it was.
pub(crate) async fn run<B: Backend>(exec: &mut Exec<B>, plan: AlterPlan) -> Result<(), Error> {
    let AlterPlan { mut database, mut name, mut current, new, building, columns_changed, checks } = plan;
    // Stored values that would not fit the new columns fail the statement before any change.
    crate::alter_columns::check_values(exec, &current, &new, &checks).await?;
    if columns_changed && !building.is_empty() {
        // 0. The column change alone, so that the new indexes are built on the new columns.
        let mut first = new.clone();
        first.indexes.retain(|ix| !building.contains(&ix.id));
        apply(exec, &database, &name, current.version, first).await?;
        database = new.database.clone();
        name = new.name.clone();
        let catalog = exec.engine.backend.catalog();
        current = catalog.table_by_name(&database, &name).ok_or_else(|| err!(NoSuchTable, "Table '{database}.{name}' doesn't exist"))?.clone();
    }
    if building.is_empty() {
        if new != current {
            apply(exec, &database, &name, current.version, new).await?;
        }
        return Ok(());
    }
    // 1. The new indexes, Building, on the current definition (unless resuming).
    let mut staged = current.clone();
    for ix in new.indexes.iter().filter(|ix| building.contains(&ix.id)) {
        if !staged.indexes.iter().any(|s| s.id == ix.id) {
            staged.indexes.push(ix.clone());
        }
    }
    if staged != current {
        apply(exec, &database, &name, current.version, staged).await?;
    }
    let catalog = exec.engine.backend.catalog();
    let def = Arc::new(catalog.table_by_name(&database, &name).ok_or_else(|| err!(NoSuchTable, "Table '{database}.{name}' doesn't exist"))?.clone());
    let mut tables: Vec<&TableDef> = vec![&def];
    let hidden: Vec<TableDef> = def.indexes.iter().filter_map(|ix| ix.table).filter_map(|id| catalog.table(id).cloned()).collect();
    tables.extend(hidden.iter());
    // 2. Every node group serves the new definition; then the existing rows are indexed.
    wait_for_definitions(exec, &tables).await?;
    for &id in &building {
        let Some(ix) = def.indexes.iter().find(|ix| ix.id == id).cloned() else { continue };
        let built = match ix.kind {
            IndexKind::Ordered => wait_for_ordered(exec, &def, id).await,
            IndexKind::Unique => backfill_unique(exec, &def, &ix).await,
        };
        if let Err(e) = built {
            if e.kind == ErrorKind::DuplicateKey {
                // As MySQL's ALTER TABLE ... ADD UNIQUE over duplicates: no change at all.
                abandon(exec, &database, &name, &building).await?;
            }
            return Err(e);
        }
    }
    // 3. Ready, with the rest of the change.
    finish(exec, &database, &name, &new, &building).await
}
