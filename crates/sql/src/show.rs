//! SHOW and DESCRIBE: results built from the catalog, the session and the engine, with the
//! column names and types MySQL 8 gives them (clients and ORMs read these by name).
//!
//! `LIKE 'pattern'` filters on the first column (case-insensitively, as MySQL's
//! utf8mb3_general_ci system tables compare); `WHERE expr` is evaluated over each row with the
//! result's column names in scope.

use cairn_common::catalog::{Catalog, IndexKind, TableDef};
use cairn_common::error::Error;
use cairn_common::expr::like;
use cairn_common::types::{ColumnType, IntWidth};
use cairn_common::{Value, err};

use crate::outcome::{ColumnMeta, Row};
use crate::types::{self, SqlType, column_meta};

/// A SHOW result before filtering: column names and types, and rows.
pub(crate) struct ShowResult {
    pub columns: Vec<(String, SqlType)>,
    pub rows: Vec<Row>,
}

pub(crate) fn text(chars: u32) -> SqlType {
    let mut t = SqlType::varchar(chars, false, false);
    t.decimals = Some(0);
    t
}

pub(crate) fn nullable_text(chars: u32) -> SqlType {
    text(chars).nullable(true)
}

fn long_int() -> SqlType {
    SqlType::of(ColumnType::Int { width: IntWidth::Int, unsigned: true, display: None }, false)
}

fn bigint() -> SqlType {
    SqlType::of(ColumnType::Int { width: IntWidth::Big, unsigned: true, display: None }, true)
}

impl ShowResult {
    pub fn new(columns: Vec<(&str, SqlType)>) -> ShowResult {
        ShowResult { columns: columns.into_iter().map(|(n, t)| (n.to_string(), t)).collect(), rows: Vec::new() }
    }

    /// Keeps rows whose first column matches a LIKE pattern.
    pub fn like(&mut self, pattern: &str) {
        self.rows.retain(|r| match r.first() {
            Some(v) if !v.is_null() => like(&v.to_text(), pattern, '\\', false),
            _ => false,
        });
    }

    pub fn metadata(&self, result_collation: u16) -> Vec<ColumnMeta> {
        self.columns.iter().map(|(n, t)| column_meta(n, t, None, result_collation)).collect()
    }
}

pub(crate) fn databases(catalog: &Catalog) -> ShowResult {
    let mut r = ShowResult::new(vec![("Database", text(64))]);
    let mut names: Vec<&str> = catalog.databases.keys().map(String::as_str).collect();
    names.push(crate::information_schema::NAME);
    names.sort_unstable();
    r.rows = names.into_iter().map(|d| vec![Value::text(d)]).collect();
    r
}

pub(crate) fn tables(catalog: &Catalog, database: &str, full: bool) -> ShowResult {
    let name = format!("Tables_in_{database}");
    let mut columns = vec![(name.as_str(), text(64))];
    if full {
        columns.push(("Table_type", text(64)));
    }
    let mut r = ShowResult::new(columns);
    let views = crate::information_schema::is_name(database);
    let mut names: Vec<String> =
        if views { crate::information_schema::view_names() } else { catalog.tables_in(database).map(|t| t.name.clone()).collect() };
    names.sort_unstable();
    r.rows = names
        .into_iter()
        .map(|n| {
            let mut row = vec![Value::Text(n)];
            if full {
                row.push(Value::text(if views { "SYSTEM VIEW" } else { "BASE TABLE" }));
            }
            row
        })
        .collect();
    r
}

pub(crate) fn columns(table: &TableDef, full: bool) -> ShowResult {
    let mut cols = vec![("Field", text(64)), ("Type", text(1024))];
    if full {
        cols.push(("Collation", nullable_text(64)));
    }
    cols.extend([("Null", text(3)), ("Key", text(3)), ("Default", nullable_text(1024)), ("Extra", text(256))]);
    if full {
        cols.extend([("Privileges", text(154)), ("Comment", text(1024))]);
    }
    let mut r = ShowResult::new(cols);
    for (i, c) in table.columns.iter().enumerate() {
        if c.hidden {
            continue;
        }
        let mut row = vec![Value::text(&c.name), Value::text(crate::ddl::describe_type(&c.ty))];
        if full {
            row.push(crate::ddl::column_collation_name(table, c).map_or(Value::Null, Value::Text));
        }
        row.push(Value::text(if c.nullable { "YES" } else { "NO" }));
        row.push(Value::text(crate::ddl::describe_key(table, i)));
        row.push(crate::ddl::describe_default(c));
        row.push(Value::text(crate::ddl::describe_extra(c)));
        if full {
            row.push(Value::text("select,insert,update,references"));
            row.push(Value::text(&c.comment));
        }
        r.rows.push(row);
    }
    r
}

pub(crate) fn index(table: &TableDef) -> ShowResult {
    let mut r = ShowResult::new(vec![
        ("Table", text(64)),
        ("Non_unique", long_int()),
        ("Key_name", text(64)),
        ("Seq_in_index", long_int()),
        ("Column_name", nullable_text(64)),
        ("Collation", nullable_text(1)),
        ("Cardinality", bigint()),
        ("Sub_part", bigint()),
        ("Packed", nullable_text(10)),
        ("Null", text(3)),
        ("Index_type", text(11)),
        ("Comment", text(8)),
        ("Index_comment", text(2048)),
        ("Visible", text(3)),
        ("Expression", nullable_text(64)),
    ]);
    let mut add = |name: &str, unique: bool, columns: &[usize], kind: &str| {
        for (seq, &c) in columns.iter().enumerate() {
            let column = &table.columns[c];
            r.rows.push(vec![
                Value::text(&table.name),
                Value::UInt(u64::from(!unique)),
                Value::text(name),
                Value::UInt(seq as u64 + 1),
                Value::text(&column.name),
                if kind == "HASH" { Value::Null } else { Value::text("A") },
                Value::Null,
                Value::Null,
                Value::Null,
                Value::text(if column.nullable { "YES" } else { "" }),
                Value::text(kind),
                Value::text(""),
                Value::text(""),
                Value::text("YES"),
                Value::Null,
            ]);
        }
    };
    if !table.hidden_primary_key {
        add("PRIMARY", true, &table.primary_key, "BTREE");
    }
    for ix in &table.indexes {
        add(&ix.name, ix.kind == IndexKind::Unique, &ix.columns, "BTREE");
    }
    r
}

pub(crate) fn engines() -> ShowResult {
    let mut r = ShowResult::new(vec![
        ("Engine", text(64)),
        ("Support", text(8)),
        ("Comment", text(80)),
        ("Transactions", nullable_text(3)),
        ("XA", nullable_text(3)),
        ("Savepoints", nullable_text(3)),
    ]);
    r.rows.push(vec![
        Value::text("ndbcluster"),
        Value::text("DEFAULT"),
        Value::text("Cairn: clustered, in-memory, replicated tables"),
        Value::text("YES"),
        Value::text("NO"),
        Value::text("NO"),
    ]);
    r
}

pub(crate) fn collations() -> ShowResult {
    let mut r = ShowResult::new(vec![
        ("Collation", text(64)),
        ("Charset", text(64)),
        ("Id", SqlType::of(ColumnType::Int { width: IntWidth::Big, unsigned: true, display: None }, false)),
        ("Default", text(3)),
        ("Compiled", text(3)),
        ("Sortlen", long_int()),
        ("Pad_attribute", text(9)),
    ]);
    let mut list: Vec<_> = types::COLLATIONS.to_vec();
    list.sort_by(|a, b| a.0.cmp(b.0));
    for (name, id, charset, default) in list {
        let pad = if name.contains("_0900_") { "NO PAD" } else { "PAD SPACE" };
        r.rows.push(vec![
            Value::text(name),
            Value::text(charset),
            Value::UInt(id as u64),
            Value::text(if default { "Yes" } else { "" }),
            Value::text("Yes"),
            Value::UInt(if name.contains("_0900_") { 0 } else { 1 }),
            Value::text(pad),
        ]);
    }
    r
}

pub(crate) fn charsets() -> ShowResult {
    let mut r = ShowResult::new(vec![("Charset", text(64)), ("Description", text(2048)), ("Default collation", text(64)), ("Maxlen", long_int())]);
    for (name, description, collation, maxlen) in types::CHARSETS {
        r.rows.push(vec![Value::text(*name), Value::text(*description), Value::text(*collation), Value::UInt(*maxlen as u64)]);
    }
    r
}

pub(crate) fn variables(values: Vec<(String, Value)>) -> ShowResult {
    let mut r = ShowResult::new(vec![("Variable_name", text(64)), ("Value", nullable_text(1024))]);
    r.rows = values
        .into_iter()
        .map(|(n, v)| {
            let shown = match v {
                Value::Null => Value::Null,
                // SHOW VARIABLES prints booleans as ON/OFF.
                other => Value::Text(other.to_text().into_owned()),
            };
            vec![Value::Text(n), shown]
        })
        .collect();
    r
}

pub(crate) fn create_table(table: &TableDef, auto_increment_next: Option<u64>) -> ShowResult {
    let mut r = ShowResult::new(vec![("Table", text(64)), ("Create Table", text(1024))]);
    r.rows.push(vec![Value::text(&table.name), Value::text(crate::ddl::show_create_table(table, auto_increment_next))]);
    r
}

pub(crate) fn create_database(catalog: &Catalog, name: &str, if_not_exists: bool) -> Result<ShowResult, Error> {
    let db = catalog.database(name).ok_or_else(|| err!(UnknownDatabase, "Unknown database '{name}'"))?;
    let mut r = ShowResult::new(vec![("Database", text(64)), ("Create Database", text(1024))]);
    r.rows.push(vec![Value::text(name), Value::text(crate::ddl::show_create_database(name, &db.charset, &db.collation, if_not_exists))]);
    Ok(r)
}

pub(crate) fn table_status(catalog: &Catalog, database: &str, counts: &dyn Fn(&TableDef) -> Option<u64>) -> ShowResult {
    let mut r = ShowResult::new(vec![
        ("Name", text(64)),
        ("Engine", nullable_text(64)),
        ("Version", bigint()),
        ("Row_format", nullable_text(10)),
        ("Rows", bigint()),
        ("Avg_row_length", bigint()),
        ("Data_length", bigint()),
        ("Max_data_length", bigint()),
        ("Index_length", bigint()),
        ("Data_free", bigint()),
        ("Auto_increment", bigint()),
        ("Create_time", SqlType::datetime(0, true)),
        ("Update_time", SqlType::datetime(0, true)),
        ("Check_time", SqlType::datetime(0, true)),
        ("Collation", nullable_text(64)),
        ("Checksum", bigint()),
        ("Create_options", nullable_text(256)),
        ("Comment", nullable_text(2048)),
    ]);
    let mut tables: Vec<&TableDef> = catalog.tables_in(database).collect();
    tables.sort_by(|a, b| a.name.cmp(&b.name));
    for t in tables {
        let rows = counts(t).map_or(Value::Null, Value::UInt);
        let options = if t.explicit_partitioning { "partitioned" } else { "" };
        r.rows.push(vec![
            Value::text(&t.name),
            Value::text(&t.engine),
            Value::UInt(10),
            Value::text("Dynamic"),
            rows,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::text(&t.collation),
            Value::Null,
            Value::text(options),
            Value::text(&t.comment),
        ]);
    }
    r
}

/// SHOW WARNINGS' columns.
pub(crate) fn warnings_header() -> ShowResult {
    ShowResult::new(vec![("Level", text(7)), ("Code", long_int()), ("Message", text(512))])
}

/// SHOW PROCESSLIST: this SQL node knows only its own session here.
pub(crate) fn processlist(rows: Vec<crate::processlist::ProcessRow>, full: bool) -> ShowResult {
    let mut r = ShowResult::new(vec![
        ("Id", SqlType::of(ColumnType::Int { width: IntWidth::Big, unsigned: true, display: None }, false)),
        ("User", text(32)),
        ("Host", text(261)),
        ("db", nullable_text(64)),
        ("Command", text(16)),
        ("Time", SqlType::of(ColumnType::Int { width: IntWidth::Int, unsigned: false, display: None }, false)),
        ("State", nullable_text(30)),
        ("Info", nullable_text(100)),
    ]);
    r.rows = rows.into_iter().map(|row| crate::processlist::row_values(row, if full { None } else { Some(100) })).collect();
    r
}

