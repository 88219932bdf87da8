//! Online column changes: `ALTER TABLE … ADD COLUMN [FIRST | AFTER c]`, `DROP COLUMN`,
//! `MODIFY COLUMN`, `CHANGE COLUMN`, `RENAME COLUMN` and `ALTER COLUMN … SET/DROP DEFAULT`,
//! several of them comma-separated in one statement.
//!
//! No row is rewritten and writes do not stop. Every packed row starts with a format byte
//! (`cairn_common::row`); a change that alters the stored shape of a row (a column added,
//! dropped, moved, retyped, or its nullability changed) gives the table the next format, and
//! records the previous layout in the definition's [`LayoutHistory`] together with where each
//! new column takes its value from in rows of that layout. Every earlier layout is re-pointed at
//! the new columns too, so a row of any format decodes straight into the current columns: an
//! added column reads as the default it had when it was added (MySQL fills existing rows the
//! same way), a dropped one is skipped, a retyped one is converted with MySQL's store
//! assignment. New rows are written in the newest format. Renames, defaults and comments change
//! the definition only.
//!
//! The change is one catalog op through the control plane, so every SQL node and data node
//! takes it at the same point of the catalog's history; requests planned with the older
//! definition are refused by data nodes that have the newer one and replanned (as for indexes,
//! `alter`), and plan caches are keyed by definition version.
//!
//! Checks before the change, as MySQL does them in strict mode: a new type must hold every
//! stored value (1264 out of range, 1406 too long, 1265 truncated, …) and a column made
//! NOT NULL must hold no NULL (1138). They scan the table while writes go on. A value written
//! between that scan and the catalog change is not re-checked: it is converted as non-strict
//! mode would (clipped) when read.
//!
//! Left out (1235, naming what is missing): dropping or retyping a primary-key or partitioning
//! column, retyping or re-collating an indexed column, dropping a column of a multi-column
//! index (drop the index first), and more than 255 shape changes of one table (old layouts are
//! not yet retired by a backfill that rewrites old rows). Dropping the last column is 1090.

use std::sync::Arc;

use sqlparser::ast::{self, AlterColumnOperation, AlterTableOperation, MySQLColumnPosition};

use cairn_common::catalog::{ColumnDef, ColumnDefault, LayoutHistory, TableDef};
use cairn_common::coerce::{Coercion, coerce};
use cairn_common::error::Error;
use cairn_common::row::{ColumnSource, OlderLayout};
use cairn_common::{Value, bail, err};

use crate::backend::Backend;
use crate::compile::{PlanContext, PlanEnv};
use crate::exec::{Exec, ScanStream};
use crate::outcome::RowStream;

/// Where a column of the changed definition comes from.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Origin {
    /// Column i of the definition before the statement.
    Before(usize),
    /// Added by the statement.
    Added,
}

/// The column list while a statement's operations are applied one by one.
pub(crate) struct ColumnWork {
    origin: Vec<Origin>,
    /// Whether any operation touched the columns.
    pub touched: bool,
}

impl ColumnWork {
    pub fn new(table: &TableDef) -> ColumnWork {
        ColumnWork { origin: (0..table.columns.len()).map(Origin::Before).collect(), touched: false }
    }
}

/// Whether the operation is one this module applies.
pub(crate) fn is_column_operation(op: &AlterTableOperation) -> bool {
    matches!(
        op,
        AlterTableOperation::AddColumn { .. }
            | AlterTableOperation::DropColumn { .. }
            | AlterTableOperation::ModifyColumn { .. }
            | AlterTableOperation::ChangeColumn { .. }
            | AlterTableOperation::RenameColumn { .. }
            | AlterTableOperation::AlterColumn { .. }
    )
}

fn unknown_column(name: &str, table: &TableDef) -> Error {
    err!(UnknownColumn, "Unknown column '{name}' in '{}'", table.name)
}

/// A column definition as CREATE TABLE would make it in this table (type, character set,
/// options, default). Returns it with whether it asked for a UNIQUE key.
fn column_def(table: &TableDef, column: &ast::ColumnDef, catalog: &cairn_common::catalog::Catalog) -> Result<(ColumnDef, bool), Error> {
    // The column goes through CREATE TABLE's own code, so ADD COLUMN and CREATE TABLE accept
    // and reject the same things.
    let text = format!("CREATE TABLE `t` ({column}) DEFAULT CHARSET={} COLLATE={}", table.charset, table.collation);
    let statement = crate::lexer::split(&text)?.into_iter().next().ok_or_else(|| Error::internal("empty column text"))?;
    let crate::parse::Statement::CreateTable { table: create, .. } = crate::parse::parse(&statement)? else {
        return Err(Error::internal("a column definition did not parse as CREATE TABLE"));
    };
    let system_var = |_: crate::parse::VarScope, _: &str| Ok(Value::Null);
    let user_var = |_: &str| Value::Null;
    let env = PlanEnv {
        catalog,
        database: Some(&table.database),
        system_var: &system_var,
        user_var: &user_var,
        pipes_as_concat: false,
        only_full_group_by: false,
        source: None,
    };
    let mut ctx = PlanContext::new(env, Vec::new());
    let defaults = |_: &str| Some(crate::ddl::DatabaseDefaults { charset: table.charset.clone(), collation: table.collation.clone() });
    let (def, _) = crate::ddl::table_def(&mut ctx, &create, None, &defaults)?;
    if !def.hidden_primary_key {
        return Err(Error::not_supported("changing the primary key (PRIMARY KEY on a changed column)"));
    }
    if !def.foreign_keys.is_empty() {
        return Err(Error::not_supported("REFERENCES on ALTER TABLE … ADD/MODIFY COLUMN"));
    }
    let unique = !def.indexes.is_empty();
    let column = def.columns.into_iter().find(|c| !c.hidden).ok_or_else(|| Error::internal("the column vanished"))?;
    Ok((column, unique))
}

/// Places a column at a position (`FIRST`, `AFTER c`, or `at` when none was given).
fn position(table: &TableDef, position: &Option<MySQLColumnPosition>, default: usize) -> Result<usize, Error> {
    Ok(match position {
        None => default,
        Some(MySQLColumnPosition::First) => 0,
        Some(MySQLColumnPosition::After(name)) => table.column_index(&name.value).ok_or_else(|| unknown_column(&name.value, table))? + 1,
    })
}

/// Every column index stored in the definition, shifted for a column inserted at `at`.
fn shift_for_insert(def: &mut TableDef, at: usize) {
    let bump = |c: &mut usize| {
        if *c >= at {
            *c += 1;
        }
    };
    def.primary_key.iter_mut().for_each(bump);
    def.partition_key.iter_mut().for_each(bump);
    def.indexes.iter_mut().for_each(|ix| ix.columns.iter_mut().for_each(bump));
}

/// Every column index stored in the definition, shifted for column `at` removed (it must be
/// referenced nowhere any more).
fn shift_for_remove(def: &mut TableDef, at: usize) {
    let drop_one = |c: &mut usize| {
        if *c > at {
            *c -= 1;
        }
    };
    def.primary_key.iter_mut().for_each(drop_one);
    def.partition_key.iter_mut().for_each(drop_one);
    def.indexes.iter_mut().for_each(|ix| ix.columns.iter_mut().for_each(drop_one));
}

fn insert_column(def: &mut TableDef, work: &mut ColumnWork, at: usize, column: ColumnDef, origin: Origin) {
    shift_for_insert(def, at);
    def.columns.insert(at, column);
    work.origin.insert(at, origin);
}

/// Removes column `at`; with `dropping`, also from single-column indexes (MySQL drops an index
/// whose only column goes).
fn remove_column(def: &mut TableDef, work: &mut ColumnWork, at: usize, dropping: bool) -> Result<(ColumnDef, Origin), Error> {
    let name = def.columns[at].name.clone();
    if dropping {
        if def.primary_key.contains(&at) || def.partition_key.contains(&at) {
            return Err(Error::not_supported(format!("dropping primary-key column '{name}'")));
        }
        if def.indexes.iter().any(|ix| ix.columns.len() > 1 && ix.columns.contains(&at)) {
            return Err(Error::not_supported(format!("dropping column '{name}' of a multi-column index (drop the index first)")));
        }
        def.indexes.retain(|ix| !ix.columns.contains(&at));
        if def.columns.iter().enumerate().all(|(i, c)| i == at || c.hidden) {
            bail!(CantRemoveAllFields, "You can't delete all columns with ALTER TABLE; use DROP TABLE instead");
        }
    }
    shift_for_remove(def, at);
    Ok((def.columns.remove(at), work.origin.remove(at)))
}

/// Whether column `at` is part of the primary key, the partitioning or an index.
fn keyed(def: &TableDef, at: usize) -> bool {
    def.primary_key.contains(&at) || def.partition_key.contains(&at) || def.indexes.iter().any(|ix| ix.columns.contains(&at))
}

/// MODIFY / CHANGE: replaces column `old_name` by `column`, optionally moving it.
fn replace_column(
    def: &mut TableDef,
    work: &mut ColumnWork,
    old_name: &str,
    mut column: ColumnDef,
    place: &Option<MySQLColumnPosition>,
) -> Result<(), Error> {
    let at = def.column_index(old_name).ok_or_else(|| unknown_column(old_name, def))?;
    let old = def.columns[at].clone();
    if keyed(def, at) && (old.ty != column.ty || old.comparison() != column.comparison()) {
        return Err(Error::not_supported(format!("changing the type or collation of indexed column '{}'", old.name)));
    }
    if (def.primary_key.contains(&at) || def.partition_key.contains(&at)) && column.nullable {
        // MySQL makes primary-key columns NOT NULL whatever the definition says.
        column.nullable = false;
    }
    if column.auto_increment && !keyed(def, at) {
        bail!(WrongAutoKey, "Incorrect table definition; there can be only one auto column and it must be defined as a key");
    }
    if def.columns.iter().enumerate().any(|(i, c)| i != at && !c.hidden && c.name.eq_ignore_ascii_case(&column.name)) {
        bail!(DuplicateColumn, "Duplicate column name '{}'", column.name);
    }
    if place.is_none() {
        def.columns[at] = column;
        return Ok(());
    }
    // Moving: take the column out (its keys move with it), then put it back at its place.
    let key_slots = KeySlots::of(def, at);
    let (_, origin) = remove_column(def, work, at, false)?;
    let to = position(def, place, at)?;
    insert_column(def, work, to, column, origin);
    key_slots.restore(def, to);
    Ok(())
}

/// Where a column appears in the keys of a definition, so that it can be moved.
struct KeySlots {
    primary: Vec<usize>,
    partition: Vec<usize>,
    indexes: Vec<(usize, usize)>,
}

/// A placeholder column index while the column is out of the list.
const MOVING: usize = usize::MAX;

impl KeySlots {
    fn of(def: &mut TableDef, at: usize) -> KeySlots {
        let mut slots = KeySlots { primary: Vec::new(), partition: Vec::new(), indexes: Vec::new() };
        for (i, c) in def.primary_key.iter_mut().enumerate() {
            if *c == at {
                slots.primary.push(i);
                *c = MOVING;
            }
        }
        for (i, c) in def.partition_key.iter_mut().enumerate() {
            if *c == at {
                slots.partition.push(i);
                *c = MOVING;
            }
        }
        for (x, ix) in def.indexes.iter_mut().enumerate() {
            for (i, c) in ix.columns.iter_mut().enumerate() {
                if *c == at {
                    slots.indexes.push((x, i));
                    *c = MOVING;
                }
            }
        }
        slots
    }

    fn restore(&self, def: &mut TableDef, to: usize) {
        for &i in &self.primary {
            def.primary_key[i] = to;
        }
        for &i in &self.partition {
            def.partition_key[i] = to;
        }
        for &(x, i) in &self.indexes {
            def.indexes[x].columns[i] = to;
        }
    }
}

/// Applies one column operation to `def`. Returns the name of a column that asked for a new
/// UNIQUE index, if any.
pub(crate) fn apply_operation(
    def: &mut TableDef,
    work: &mut ColumnWork,
    op: &AlterTableOperation,
    catalog: &cairn_common::catalog::Catalog,
) -> Result<Option<String>, Error> {
    work.touched = true;
    let mut unique_on = None;
    match op {
        AlterTableOperation::AddColumn { if_not_exists, column_def: c, column_position, .. } => {
            if def.column_index(&c.name.value).is_some() {
                if *if_not_exists {
                    return Ok(None);
                }
                bail!(DuplicateColumn, "Duplicate column name '{}'", c.name.value);
            }
            let (column, unique) = column_def(def, c, catalog)?;
            if column.auto_increment {
                return Err(Error::not_supported("adding an AUTO_INCREMENT column"));
            }
            let visible_end = def.columns.len();
            let at = position(def, column_position, visible_end)?;
            if unique {
                unique_on = Some(column.name.clone());
            }
            insert_column(def, work, at, column, Origin::Added);
        }
        AlterTableOperation::DropColumn { column_names, if_exists, .. } => {
            for name in column_names {
                match def.column_index(&name.value) {
                    Some(at) => {
                        remove_column(def, work, at, true)?;
                    }
                    None if *if_exists => {}
                    None => bail!(CantDropFieldOrKey, "Can't DROP '{}'; check that column/key exists", name.value),
                }
            }
        }
        AlterTableOperation::ModifyColumn { col_name, data_type, options, column_position, .. } => {
            let c = ast_column(col_name, data_type, options);
            let (column, unique) = column_def(def, &c, catalog)?;
            if unique {
                return Err(Error::not_supported("UNIQUE on MODIFY COLUMN (add the index with ADD UNIQUE)"));
            }
            replace_column(def, work, &col_name.value, column, column_position)?;
        }
        AlterTableOperation::ChangeColumn { old_name, new_name, data_type, options, column_position, .. } => {
            let c = ast_column(new_name, data_type, options);
            let (column, unique) = column_def(def, &c, catalog)?;
            if unique {
                return Err(Error::not_supported("UNIQUE on CHANGE COLUMN (add the index with ADD UNIQUE)"));
            }
            replace_column(def, work, &old_name.value, column, column_position)?;
        }
        AlterTableOperation::RenameColumn { old_column_name, new_column_name, .. } => {
            let at = def.column_index(&old_column_name.value).ok_or_else(|| unknown_column(&old_column_name.value, def))?;
            let name = new_column_name.value.clone();
            if name.is_empty() || name.len() > 64 || name.ends_with(' ') {
                bail!(WrongArguments, "Incorrect column name '{name}'");
            }
            if def.columns.iter().enumerate().any(|(i, c)| i != at && !c.hidden && c.name.eq_ignore_ascii_case(&name)) {
                bail!(DuplicateColumn, "Duplicate column name '{name}'");
            }
            def.columns[at].name = name;
        }
        AlterTableOperation::AlterColumn { column_name, op, .. } => {
            let at = def.column_index(&column_name.value).ok_or_else(|| unknown_column(&column_name.value, def))?;
            match op {
                AlterColumnOperation::DropDefault => def.columns[at].default = ColumnDefault::None,
                AlterColumnOperation::SetDefault { value } => {
                    // The default goes through CREATE TABLE's checks on a copy of the column.
                    let current = &def.columns[at];
                    let mut c = ast_column(&column_name, &data_type_of(current)?, &[]);
                    c.options.push(ast::ColumnOptionDef { name: None, option: ast::ColumnOption::Default(value.clone()) });
                    let (checked, _) = column_def(def, &c, catalog)?;
                    def.columns[at].default = checked.default;
                }
                other => return Err(Error::not_supported(format!("ALTER COLUMN … {other}"))),
            }
        }
        other => return Err(Error::internal(format!("not a column operation: {other}"))),
    }
    Ok(unique_on)
}

/// The SQL type of a column, as CREATE TABLE reads it back.
fn data_type_of(column: &ColumnDef) -> Result<ast::DataType, Error> {
    let text = format!("CREATE TABLE `t` (c {})", crate::ddl::describe_type(&column.ty));
    let statement = crate::lexer::split(&text)?.into_iter().next().ok_or_else(|| Error::internal("empty column text"))?;
    match crate::parse::parse(&statement)? {
        crate::parse::Statement::CreateTable { table, .. } => {
            table.columns.first().map(|c| c.data_type.clone()).ok_or_else(|| Error::internal("no column"))
        }
        _ => Err(Error::internal("a column type did not parse")),
    }
}

fn ast_column(name: &ast::Ident, data_type: &ast::DataType, options: &[ast::ColumnOption]) -> ast::ColumnDef {
    ast::ColumnDef {
        name: name.clone(),
        data_type: data_type.clone(),
        options: options.iter().map(|o| ast::ColumnOptionDef { name: None, option: o.clone() }).collect(),
    }
}

/// The value existing rows take for a column added now: its default (CURRENT_TIMESTAMP is the
/// time of the change, as MySQL fills it), or NULL, or the type's implicit default.
fn fill_value(column: &ColumnDef) -> Result<Value, Error> {
    Ok(match &column.default {
        ColumnDefault::Value(v) => v.clone(),
        ColumnDefault::CurrentTimestamp => {
            let micros = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_err(|_| Error::internal("the clock is before 1970"))?
                .as_micros() as i64;
            let now = cairn_common::temporal::DateTime::from_unix_micros(micros).ok_or_else(|| Error::internal("the clock is out of range"))?;
            let mut lenient = Coercion::lenient();
            coerce(Value::DateTime(now), column, &mut lenient)?
        }
        ColumnDefault::None if column.nullable => Value::Null,
        ColumnDefault::None => crate::dml::implicit_default(&column.ty),
    })
}

/// Finishes the column changes of a statement: gives `new` its layout history (a new format if
/// the stored shape of rows changed). `before` is the definition before the statement.
pub(crate) fn finish_layouts(before: &TableDef, new: &mut TableDef, work: &ColumnWork) -> Result<(), Error> {
    let shape = |t: &TableDef| -> Vec<(cairn_common::types::ColumnType, bool)> { t.columns.iter().map(|c| (c.ty.clone(), c.nullable)).collect() };
    let identity = work.origin.iter().enumerate().all(|(i, o)| *o == Origin::Before(i)) && work.origin.len() == before.columns.len();
    if identity && shape(before) == shape(&*new) {
        new.layouts = before.layouts.clone();
        return Ok(());
    }
    let format = before
        .layouts
        .format
        .checked_add(1)
        .ok_or_else(|| Error::not_supported("more than 255 changes to the columns of one table"))?;
    // Where each new column comes from in a row of one earlier layout, given where each column
    // of `before` comes from in it.
    let remap = |sources_before: &[ColumnSource]| -> Result<Vec<ColumnSource>, Error> {
        let mut out = Vec::with_capacity(new.columns.len());
        for (j, origin) in work.origin.iter().enumerate() {
            let column = &new.columns[j];
            out.push(match origin {
                Origin::Added => ColumnSource::Value(fill_value(column)?),
                Origin::Before(i) => {
                    let retyped = before.columns[*i].ty != column.ty;
                    match sources_before.get(*i) {
                        Some(ColumnSource::Column { column: c, convert }) => ColumnSource::Column { column: *c, convert: *convert || retyped },
                        Some(ColumnSource::Value(v)) => {
                            let mut lenient = Coercion::lenient();
                            ColumnSource::Value(if retyped && !v.is_null() { coerce(v.clone(), column, &mut lenient)? } else { v.clone() })
                        }
                        None => return Err(Error::internal("a layout history entry maps too few columns")),
                    }
                }
            });
        }
        Ok(out)
    };
    let mut older = Vec::with_capacity(before.layouts.older.len() + 1);
    for o in &before.layouts.older {
        older.push(OlderLayout { format: o.format, columns: o.columns.clone(), sources: remap(&o.sources)? });
    }
    let itself: Vec<ColumnSource> = (0..before.columns.len()).map(|i| ColumnSource::Column { column: i, convert: false }).collect();
    older.push(OlderLayout { format: before.layouts.format, columns: shape(before), sources: remap(&itself)? });
    if older.iter().any(|o| o.format == format) {
        return Err(Error::not_supported("more than 255 changes to the columns of one table"));
    }
    new.layouts = LayoutHistory { format, older };
    Ok(())
}

/// Columns whose stored values must be checked before the change: (column of `before`, column
/// of `new`), for each column retyped or made NOT NULL.
pub(crate) fn columns_to_check(before: &TableDef, new: &TableDef, work: &ColumnWork) -> Vec<(usize, usize)> {
    work.origin
        .iter()
        .enumerate()
        .filter_map(|(j, o)| match o {
            Origin::Before(i) => {
                let (a, b) = (&before.columns[*i], &new.columns[j]);
                (a.ty != b.ty || (a.nullable && !b.nullable)).then_some((*i, j))
            }
            Origin::Added => None,
        })
        .collect()
}

/// Scans the table and fails as MySQL's strict ALTER would if a stored value does not fit its
/// column's new definition; nothing has changed then.
pub(crate) async fn check_values<B: Backend>(exec: &mut Exec<B>, before: &TableDef, new: &TableDef, checks: &[(usize, usize)]) -> Result<(), Error> {
    if checks.is_empty() {
        return Ok(());
    }
    let mut projection: Vec<u32> = checks.iter().map(|&(i, _)| i as u32).collect();
    projection.sort_unstable();
    projection.dedup();
    let mut stream = ScanStream::new(exec, Arc::new(before.clone()), None, projection, None);
    let mut row_number = 0u64;
    while let Some(batch) = stream.next_batch().await {
        for row in batch? {
            row_number += 1;
            for &(i, j) in checks {
                let value = row.get(i).cloned().ok_or_else(|| Error::internal("a scanned row lacks a column"))?;
                let column = &new.columns[j];
                if value.is_null() {
                    if !column.nullable {
                        bail!(InvalidUseOfNull, "Invalid use of NULL value");
                    }
                    continue;
                }
                let mut strict = Coercion::strict();
                strict.row = row_number;
                coerce(value, column, &mut strict)?;
            }
        }
    }
    Ok(())
}
