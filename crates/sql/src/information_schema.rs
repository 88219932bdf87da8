//! `information_schema`: MySQL's catalog views, generated from the cluster catalog and the SQL
//! node's sessions, and read by the ordinary query executor.
//!
//! Drivers and tools read these views with ordinary SQL: JDBC's `DatabaseMetaData` (TABLES,
//! COLUMNS, STATISTICS, KEY_COLUMN_USAGE, ROUTINES), SQLAlchemy and ORMs (TABLES,
//! KEY_COLUMN_USAGE, REFERENTIAL_CONSTRAINTS), GUI tools (SCHEMATA, PROCESSLIST), mysqldump
//! (FILES, for NDB disk data). So each view is a table to the planner: [`resolve`] gives a
//! [`TableDef`] with MySQL 8's column names and types, WHERE, ORDER BY, GROUP BY and joins work
//! on it like on any table, and only the scan at the leaves differs: where a stored table's scan
//! reads the node groups, a view's scan generates its rows from the catalog on this SQL node
//! ([`scan`]) and applies the pushed filter and limit itself.
//!
//! Guarantees: the rows describe exactly the catalog this SQL node holds when the statement
//! runs (the version the management nodes last pushed); names compare case-insensitively
//! (`information_schema.tables` works); the views are read-only (writes answer 1044, as MySQL).
//!
//! Differences from MySQL, on purpose:
//! - TABLE_ROWS, DATA_LENGTH and the other sizes are NULL: counting would cost a round trip to
//!   every node group per table (SELECT COUNT(*) is exact and cheap instead).
//! - CREATE_TIME is NULL: the catalog does not record it.
//! - FOREIGN KEY constraints are listed with ENFORCED = 'NO': Cairn accepts and shows them but
//!   does not check them (docs/sql.md).
//! - ROUTINES has a row per stored function and procedure (`crate::routine::show`);
//!   PARAMETERS, TRIGGERS, VIEWS, EVENTS and FILES are empty: Cairn has none of those objects
//!   (a routine's parameters are in ROUTINES' definition and SHOW CREATE).
//!
//! - PARTITIONS has a row per partition of every table (method AUTO unless PARTITION BY KEY was
//!   given), with NULL sizes, as TABLES.
//!
//! - The privilege views (USER_PRIVILEGES, SCHEMA_PRIVILEGES, TABLE_PRIVILEGES,
//!   COLUMN_PRIVILEGES) come from `crate::privilege_views`, which also says who sees which rows.
//!
//! Left out: the InnoDB views, and performance_schema / sys.

use std::sync::{Arc, OnceLock};

use cairn_common::catalog::{Catalog, ColumnDef, IndexKind, TableDef};
use cairn_common::ids::TableId;
use cairn_common::types::{ColumnType, IntWidth, LobSize};
use cairn_common::{Error, Value, bail, err};

use crate::backend::Backend;
use crate::exec::Exec;
use crate::outcome::Row;

/// The database name (any case).
pub(crate) const NAME: &str = "information_schema";

/// Table ids of the views: far above anything the catalog hands out, never sent to a data node.
const FIRST_VIEW_ID: u32 = 0xFFFF_0000;

/// Whether a database name is information_schema.
pub(crate) fn is_name(database: &str) -> bool {
    database.eq_ignore_ascii_case(NAME)
}

/// Whether a table definition is one of the views.
pub(crate) fn is_view(table: &TableDef) -> bool {
    table.id.0 >= FIRST_VIEW_ID && is_name(&table.database)
}

/// The view named `name` (any case): 1109 if there is none, as MySQL says.
pub(crate) fn resolve(name: &str) -> Result<Arc<TableDef>, Error> {
    views().iter().find(|t| t.name.eq_ignore_ascii_case(name)).cloned().ok_or_else(|| {
        err!(UnknownTableInList, "Unknown table '{}' in information_schema", name.to_ascii_uppercase())
    })
}

/// The names of the views, sorted (SHOW TABLES FROM information_schema).
pub(crate) fn view_names() -> Vec<String> {
    let mut names: Vec<String> = views().iter().map(|t| t.name.clone()).collect();
    names.sort();
    names
}

/// Refuses writes to a view: 1044, as MySQL answers a change to information_schema.
pub(crate) fn check_writable(table: &TableDef, user: &str, host: &str) -> Result<(), Error> {
    if is_view(table) {
        bail!(DatabaseAccessDenied, "Access denied for user '{user}'@'{host}' to database '{NAME}'");
    }
    Ok(())
}

fn views() -> &'static [Arc<TableDef>] {
    static VIEWS: OnceLock<Vec<Arc<TableDef>>> = OnceLock::new();
    VIEWS.get_or_init(|| definitions().into_iter().enumerate().map(|(i, (name, columns))| Arc::new(view(i as u32, name, columns))).collect())
}

fn view(index: u32, name: &str, columns: Vec<ColumnDef>) -> TableDef {
    TableDef {
        id: TableId(FIRST_VIEW_ID + index),
        version: 1,
        database: NAME.to_string(),
        name: name.to_string(),
        columns,
        // No key: the planner never plans a key lookup on a view, only scans.
        primary_key: Vec::new(),
        hidden_primary_key: true,
        indexes: Vec::new(),
        foreign_keys: Vec::new(),
        partition_key: Vec::new(),
        partitions: Vec::new(),
        explicit_partitioning: false,
        auto_increment_start: 1,
        charset: "utf8mb3".to_string(),
        collation: "utf8mb3_general_ci".to_string(),
        engine: "SYSTEM VIEW".to_string(),
        comment: String::new(),
        layouts: Default::default(),
    }
}

// ----- Column types, as MySQL 8 declares them -----

fn name_col(name: &str) -> ColumnDef {
    varchar(name, 64, false)
}

fn varchar(name: &str, length: u32, nullable: bool) -> ColumnDef {
    column(name, ColumnType::VarChar { length, binary: false }, nullable)
}

fn longtext(name: &str, nullable: bool) -> ColumnDef {
    column(name, ColumnType::Lob { size: LobSize::Long, binary: false }, nullable)
}

fn int(name: &str, width: IntWidth, unsigned: bool, nullable: bool) -> ColumnDef {
    column(name, ColumnType::Int { width, unsigned, display: None }, nullable)
}

fn bigint_unsigned(name: &str) -> ColumnDef {
    int(name, IntWidth::Big, true, true)
}

fn column(name: &str, ty: ColumnType, nullable: bool) -> ColumnDef {
    let mut c = ColumnDef::new(name, ty);
    c.nullable = nullable;
    c
}

type Definition = (&'static str, Vec<ColumnDef>);

fn definitions() -> Vec<Definition> {
    use IntWidth::{Big, Int};
    let catalog_schema_table = || vec![name_col("TABLE_CATALOG"), name_col("TABLE_SCHEMA"), name_col("TABLE_NAME")];
    vec![
        ("CHARACTER_SETS", vec![
            name_col("CHARACTER_SET_NAME"),
            name_col("DEFAULT_COLLATE_NAME"),
            varchar("DESCRIPTION", 2048, false),
            int("MAXLEN", Int, true, false),
        ]),
        ("COLLATIONS", vec![
            name_col("COLLATION_NAME"),
            name_col("CHARACTER_SET_NAME"),
            int("ID", Big, true, false),
            varchar("IS_DEFAULT", 3, false),
            varchar("IS_COMPILED", 3, false),
            int("SORTLEN", Int, true, false),
            varchar("PAD_ATTRIBUTE", 9, false),
        ]),
        ("COLUMNS", {
            let mut c = catalog_schema_table();
            c.extend([
                name_col("COLUMN_NAME"),
                int("ORDINAL_POSITION", Int, true, false),
                column("COLUMN_DEFAULT", ColumnType::Lob { size: LobSize::Normal, binary: false }, true),
                varchar("IS_NULLABLE", 3, false),
                longtext("DATA_TYPE", false),
                int("CHARACTER_MAXIMUM_LENGTH", Big, false, true),
                int("CHARACTER_OCTET_LENGTH", Big, false, true),
                bigint_unsigned("NUMERIC_PRECISION"),
                bigint_unsigned("NUMERIC_SCALE"),
                int("DATETIME_PRECISION", Int, true, true),
                varchar("CHARACTER_SET_NAME", 64, true),
                varchar("COLLATION_NAME", 64, true),
                column("COLUMN_TYPE", ColumnType::Lob { size: LobSize::Medium, binary: false }, false),
                varchar("COLUMN_KEY", 3, false),
                varchar("EXTRA", 256, true),
                varchar("PRIVILEGES", 154, true),
                column("COLUMN_COMMENT", ColumnType::Lob { size: LobSize::Normal, binary: false }, false),
                longtext("GENERATION_EXPRESSION", false),
                int("SRS_ID", Int, true, true),
            ]);
            c
        }),
        ("ENGINES", vec![
            name_col("ENGINE"),
            varchar("SUPPORT", 8, false),
            varchar("COMMENT", 80, false),
            varchar("TRANSACTIONS", 3, true),
            varchar("XA", 3, true),
            varchar("SAVEPOINTS", 3, true),
        ]),
        ("EVENTS", {
            let mut c = vec![name_col("EVENT_CATALOG"), name_col("EVENT_SCHEMA"), name_col("EVENT_NAME"), varchar("DEFINER", 288, false)];
            c.extend([varchar("TIME_ZONE", 64, false), varchar("EVENT_BODY", 8, false), longtext("EVENT_DEFINITION", false)]);
            c.extend([varchar("EVENT_TYPE", 9, false), varchar("STATUS", 18, false), varchar("EVENT_COMMENT", 2048, false)]);
            c
        }),
        ("FILES", vec![
            int("FILE_ID", Big, false, true),
            varchar("FILE_NAME", 268, true),
            varchar("FILE_TYPE", 256, true),
            varchar("TABLESPACE_NAME", 268, true),
            varchar("TABLE_CATALOG", 64, true),
            varchar("TABLE_SCHEMA", 64, true),
            varchar("TABLE_NAME", 64, true),
            varchar("LOGFILE_GROUP_NAME", 256, true),
            int("LOGFILE_GROUP_NUMBER", Big, false, true),
            varchar("ENGINE", 64, true),
            int("TOTAL_EXTENTS", Big, false, true),
            int("EXTENT_SIZE", Big, false, true),
            int("INITIAL_SIZE", Big, false, true),
            int("MAXIMUM_SIZE", Big, false, true),
            int("AUTOEXTEND_SIZE", Big, false, true),
            varchar("STATUS", 256, true),
            varchar("EXTRA", 256, true),
        ]),
        ("KEY_COLUMN_USAGE", vec![
            name_col("CONSTRAINT_CATALOG"),
            name_col("CONSTRAINT_SCHEMA"),
            varchar("CONSTRAINT_NAME", 64, true),
            name_col("TABLE_CATALOG"),
            name_col("TABLE_SCHEMA"),
            name_col("TABLE_NAME"),
            varchar("COLUMN_NAME", 64, true),
            int("ORDINAL_POSITION", Int, true, false),
            int("POSITION_IN_UNIQUE_CONSTRAINT", Int, true, true),
            varchar("REFERENCED_TABLE_SCHEMA", 64, true),
            varchar("REFERENCED_TABLE_NAME", 64, true),
            varchar("REFERENCED_COLUMN_NAME", 64, true),
        ]),
        ("PARAMETERS", vec![
            name_col("SPECIFIC_CATALOG"),
            name_col("SPECIFIC_SCHEMA"),
            name_col("SPECIFIC_NAME"),
            int("ORDINAL_POSITION", Int, true, false),
            varchar("PARAMETER_MODE", 5, true),
            varchar("PARAMETER_NAME", 64, true),
            longtext("DATA_TYPE", true),
            int("CHARACTER_MAXIMUM_LENGTH", Big, false, true),
            int("CHARACTER_OCTET_LENGTH", Big, false, true),
            int("NUMERIC_PRECISION", Int, true, true),
            int("NUMERIC_SCALE", Big, false, true),
            int("DATETIME_PRECISION", Int, true, true),
            varchar("CHARACTER_SET_NAME", 64, true),
            varchar("COLLATION_NAME", 64, true),
            column("DTD_IDENTIFIER", ColumnType::Lob { size: LobSize::Medium, binary: false }, false),
            varchar("ROUTINE_TYPE", 9, false),
        ]),
        // One row per partition of every user table (mysqldump reads it to find tablespaces).
        ("PARTITIONS", {
            let mut c = catalog_schema_table();
            c.extend([
                varchar("PARTITION_NAME", 64, true),
                varchar("SUBPARTITION_NAME", 64, true),
                int("PARTITION_ORDINAL_POSITION", Int, true, true),
                int("SUBPARTITION_ORDINAL_POSITION", Int, true, true),
                varchar("PARTITION_METHOD", 13, true),
                varchar("SUBPARTITION_METHOD", 13, true),
                varchar("PARTITION_EXPRESSION", 2048, true),
                varchar("SUBPARTITION_EXPRESSION", 2048, true),
                column("PARTITION_DESCRIPTION", ColumnType::Lob { size: LobSize::Normal, binary: false }, true),
                bigint_unsigned("TABLE_ROWS"),
                bigint_unsigned("AVG_ROW_LENGTH"),
                bigint_unsigned("DATA_LENGTH"),
                bigint_unsigned("MAX_DATA_LENGTH"),
                bigint_unsigned("INDEX_LENGTH"),
                bigint_unsigned("DATA_FREE"),
                column("CREATE_TIME", ColumnType::Timestamp { fsp: 0 }, true),
                column("UPDATE_TIME", ColumnType::DateTime { fsp: 0 }, true),
                column("CHECK_TIME", ColumnType::DateTime { fsp: 0 }, true),
                int("CHECKSUM", Big, false, true),
                column("PARTITION_COMMENT", ColumnType::Lob { size: LobSize::Normal, binary: false }, false),
                varchar("NODEGROUP", 256, true),
                varchar("TABLESPACE_NAME", 268, true),
            ]);
            c
        }),
        ("PROCESSLIST", vec![
            int("ID", Big, true, false),
            varchar("USER", 32, false),
            varchar("HOST", 261, false),
            varchar("DB", 64, true),
            varchar("COMMAND", 16, false),
            int("TIME", Int, false, false),
            varchar("STATE", 64, true),
            longtext("INFO", true),
        ]),
        ("REFERENTIAL_CONSTRAINTS", vec![
            name_col("CONSTRAINT_CATALOG"),
            name_col("CONSTRAINT_SCHEMA"),
            varchar("CONSTRAINT_NAME", 64, true),
            name_col("UNIQUE_CONSTRAINT_CATALOG"),
            name_col("UNIQUE_CONSTRAINT_SCHEMA"),
            varchar("UNIQUE_CONSTRAINT_NAME", 64, true),
            varchar("MATCH_OPTION", 7, false),
            varchar("UPDATE_RULE", 11, false),
            varchar("DELETE_RULE", 11, false),
            name_col("TABLE_NAME"),
            name_col("REFERENCED_TABLE_NAME"),
        ]),
        ("ROUTINES", vec![
            name_col("SPECIFIC_NAME"),
            name_col("ROUTINE_CATALOG"),
            name_col("ROUTINE_SCHEMA"),
            name_col("ROUTINE_NAME"),
            varchar("ROUTINE_TYPE", 9, false),
            longtext("DATA_TYPE", false),
            int("CHARACTER_MAXIMUM_LENGTH", Big, false, true),
            int("CHARACTER_OCTET_LENGTH", Big, false, true),
            int("NUMERIC_PRECISION", Int, true, true),
            int("NUMERIC_SCALE", Int, true, true),
            int("DATETIME_PRECISION", Int, true, true),
            varchar("CHARACTER_SET_NAME", 64, true),
            varchar("COLLATION_NAME", 64, true),
            longtext("DTD_IDENTIFIER", true),
            varchar("ROUTINE_BODY", 8, false),
            longtext("ROUTINE_DEFINITION", true),
            varchar("EXTERNAL_NAME", 64, true),
            varchar("EXTERNAL_LANGUAGE", 64, false),
            varchar("PARAMETER_STYLE", 3, false),
            varchar("IS_DETERMINISTIC", 3, false),
            varchar("SQL_DATA_ACCESS", 17, false),
            varchar("SQL_PATH", 64, true),
            varchar("SECURITY_TYPE", 7, false),
            column("CREATED", ColumnType::Timestamp { fsp: 0 }, false),
            column("LAST_ALTERED", ColumnType::Timestamp { fsp: 0 }, false),
            varchar("SQL_MODE", 520, false),
            column("ROUTINE_COMMENT", ColumnType::Lob { size: LobSize::Normal, binary: false }, false),
            varchar("DEFINER", 288, false),
            name_col("CHARACTER_SET_CLIENT"),
            name_col("COLLATION_CONNECTION"),
            name_col("DATABASE_COLLATION"),
        ]),
        ("SCHEMATA", vec![
            name_col("CATALOG_NAME"),
            name_col("SCHEMA_NAME"),
            name_col("DEFAULT_CHARACTER_SET_NAME"),
            name_col("DEFAULT_COLLATION_NAME"),
            varchar("SQL_PATH", 512, true),
            varchar("DEFAULT_ENCRYPTION", 3, false),
        ]),
        ("STATISTICS", {
            let mut c = catalog_schema_table();
            c.extend([
                int("NON_UNIQUE", Int, false, false),
                name_col("INDEX_SCHEMA"),
                name_col("INDEX_NAME"),
                int("SEQ_IN_INDEX", Int, true, false),
                varchar("COLUMN_NAME", 64, true),
                varchar("COLLATION", 1, true),
                int("CARDINALITY", Big, false, true),
                int("SUB_PART", Big, false, true),
                varchar("PACKED", 10, true),
                varchar("NULLABLE", 3, false),
                varchar("INDEX_TYPE", 11, false),
                varchar("COMMENT", 8, false),
                varchar("INDEX_COMMENT", 2048, false),
                varchar("IS_VISIBLE", 3, false),
                longtext("EXPRESSION", true),
            ]);
            c
        }),
        ("TABLE_CONSTRAINTS", vec![
            name_col("CONSTRAINT_CATALOG"),
            name_col("CONSTRAINT_SCHEMA"),
            varchar("CONSTRAINT_NAME", 64, true),
            name_col("TABLE_SCHEMA"),
            name_col("TABLE_NAME"),
            varchar("CONSTRAINT_TYPE", 11, false),
            varchar("ENFORCED", 3, false),
        ]),
        ("TABLES", {
            let mut c = catalog_schema_table();
            c.extend([
                varchar("TABLE_TYPE", 11, false),
                varchar("ENGINE", 64, true),
                int("VERSION", Int, false, true),
                varchar("ROW_FORMAT", 10, true),
                bigint_unsigned("TABLE_ROWS"),
                bigint_unsigned("AVG_ROW_LENGTH"),
                bigint_unsigned("DATA_LENGTH"),
                bigint_unsigned("MAX_DATA_LENGTH"),
                bigint_unsigned("INDEX_LENGTH"),
                bigint_unsigned("DATA_FREE"),
                bigint_unsigned("AUTO_INCREMENT"),
                column("CREATE_TIME", ColumnType::Timestamp { fsp: 0 }, true),
                column("UPDATE_TIME", ColumnType::DateTime { fsp: 0 }, true),
                column("CHECK_TIME", ColumnType::DateTime { fsp: 0 }, true),
                varchar("TABLE_COLLATION", 64, true),
                int("CHECKSUM", Big, false, true),
                varchar("CREATE_OPTIONS", 256, true),
                column("TABLE_COMMENT", ColumnType::Lob { size: LobSize::Normal, binary: false }, true),
            ]);
            c
        }),
        ("TRIGGERS", vec![
            name_col("TRIGGER_CATALOG"),
            name_col("TRIGGER_SCHEMA"),
            name_col("TRIGGER_NAME"),
            varchar("EVENT_MANIPULATION", 6, false),
            name_col("EVENT_OBJECT_CATALOG"),
            name_col("EVENT_OBJECT_SCHEMA"),
            name_col("EVENT_OBJECT_TABLE"),
            int("ACTION_ORDER", Int, true, false),
            varchar("ACTION_CONDITION", 64, true),
            longtext("ACTION_STATEMENT", false),
            varchar("ACTION_ORIENTATION", 3, false),
            varchar("ACTION_TIMING", 6, false),
            column("CREATED", ColumnType::Timestamp { fsp: 2 }, false),
            varchar("SQL_MODE", 520, false),
            varchar("DEFINER", 288, false),
            name_col("CHARACTER_SET_CLIENT"),
            name_col("COLLATION_CONNECTION"),
            name_col("DATABASE_COLLATION"),
        ]),
        ("VIEWS", {
            let mut c = catalog_schema_table();
            c.extend([
                longtext("VIEW_DEFINITION", true),
                varchar("CHECK_OPTION", 8, true),
                varchar("IS_UPDATABLE", 3, true),
                varchar("DEFINER", 288, true),
                varchar("SECURITY_TYPE", 7, true),
                name_col("CHARACTER_SET_CLIENT"),
                name_col("COLLATION_CONNECTION"),
            ]);
            c
        }),
    ]
    .into_iter()
    .chain(crate::privilege_views::VIEWS.iter().filter_map(|&name| crate::privilege_views::columns(name).map(|c| (name, c))))
    .collect()
}

// ----- Rows -----

/// What the rows are generated from: the catalog, and this SQL node's sessions.
pub(crate) struct Sources<'a> {
    pub catalog: &'a Catalog,
    pub processes: Vec<crate::processlist::ProcessRow>,
    /// The next AUTO_INCREMENT value this node would hand out for a table, if it holds a range.
    pub next_auto_increment: &'a dyn Fn(TableId) -> Option<u64>,
}

fn text(s: impl Into<String>) -> Value {
    Value::Text(s.into())
}

fn opt_text(s: Option<impl Into<String>>) -> Value {
    s.map_or(Value::Null, |s| Value::Text(s.into()))
}

/// Every user table of the catalog, by database then name.
fn user_tables(catalog: &Catalog) -> Vec<&TableDef> {
    let mut tables: Vec<&TableDef> = catalog.tables.values().collect();
    tables.sort_by(|a, b| (&a.database, &a.name).cmp(&(&b.database, &b.name)));
    tables
}

/// Generates every row of a view.
pub(crate) fn rows(view: &TableDef, s: &Sources<'_>) -> Vec<Row> {
    let catalog = s.catalog;
    match view.name.as_str() {
        // One row per stored function and procedure, as SHOW … STATUS and SHOW CREATE see them.
        "ROUTINES" => crate::routine::show::information_schema_routines(catalog).rows,
        name if crate::privilege_views::VIEWS.contains(&name) => crate::privilege_views::rows(name, &catalog.accounts),
        "SCHEMATA" => {
            let mut rows = vec![vec![text("def"), text(NAME), text("utf8mb3"), text("utf8mb3_general_ci"), Value::Null, text("NO")]];
            rows.extend(catalog.databases.values().map(|d| {
                vec![text("def"), text(&d.name), text(&d.charset), text(&d.collation), Value::Null, text("NO")]
            }));
            rows.sort_by(|a, b| a[1].to_text().cmp(&b[1].to_text()));
            rows
        }
        "TABLES" => {
            let mut rows: Vec<Row> = view_names()
                .into_iter()
                .map(|name| {
                    let mut row = vec![text("def"), text(NAME), text(name), text("SYSTEM VIEW"), Value::Null, int_value(10)];
                    row.extend(std::iter::repeat_n(Value::Null, 11));
                    row.extend([Value::Null, Value::Null, Value::text(""), Value::text("")]);
                    row
                })
                .collect();
            for t in user_tables(catalog) {
                let auto = t.auto_increment_column().map(|_| {
                    Value::UInt((s.next_auto_increment)(t.id).unwrap_or(t.auto_increment_start.max(1)))
                });
                let options = if t.explicit_partitioning { "partitioned" } else { "" };
                rows.push(vec![
                    text("def"),
                    text(&t.database),
                    text(&t.name),
                    text("BASE TABLE"),
                    text(&t.engine),
                    int_value(10),
                    text("Dynamic"),
                    Value::Null,
                    Value::Null,
                    Value::Null,
                    Value::Null,
                    Value::Null,
                    Value::Null,
                    auto.unwrap_or(Value::Null),
                    Value::Null,
                    Value::Null,
                    Value::Null,
                    text(&t.collation),
                    Value::Null,
                    text(options),
                    text(&t.comment),
                ]);
            }
            rows
        }
        "COLUMNS" => {
            let mut rows = Vec::new();
            for t in user_tables(catalog) {
                for (i, c) in t.columns.iter().enumerate().filter(|(_, c)| !c.hidden) {
                    rows.push(column_row(t, i, c));
                }
            }
            rows
        }
        "STATISTICS" => {
            let mut rows = Vec::new();
            for t in user_tables(catalog) {
                let mut add = |name: &str, unique: bool, columns: &[usize]| {
                    for (seq, &ci) in columns.iter().enumerate() {
                        let c = &t.columns[ci];
                        rows.push(vec![
                            text("def"),
                            text(&t.database),
                            text(&t.name),
                            int_value(i64::from(!unique)),
                            text(&t.database),
                            text(name),
                            Value::UInt(seq as u64 + 1),
                            text(&c.name),
                            text("A"),
                            Value::Null,
                            Value::Null,
                            Value::Null,
                            text(if c.nullable { "YES" } else { "" }),
                            text("BTREE"),
                            text(""),
                            text(""),
                            text("YES"),
                            Value::Null,
                        ]);
                    }
                };
                if !t.hidden_primary_key {
                    add("PRIMARY", true, &t.primary_key);
                }
                for ix in &t.indexes {
                    add(&ix.name, ix.kind == IndexKind::Unique, &ix.columns);
                }
            }
            rows
        }
        "KEY_COLUMN_USAGE" => {
            let mut rows = Vec::new();
            for t in user_tables(catalog) {
                let mut key = |constraint: &str, columns: Vec<&str>, refs: Option<(&str, &str, &[String])>| {
                    for (n, c) in columns.iter().enumerate() {
                        let (ref_schema, ref_table, ref_column, position) = match refs {
                            Some((db, table, cols)) => (
                                text(db),
                                text(table),
                                opt_text(cols.get(n).cloned()),
                                Value::UInt(n as u64 + 1),
                            ),
                            None => (Value::Null, Value::Null, Value::Null, Value::Null),
                        };
                        rows.push(vec![
                            text("def"),
                            text(&t.database),
                            text(constraint),
                            text("def"),
                            text(&t.database),
                            text(&t.name),
                            text(*c),
                            Value::UInt(n as u64 + 1),
                            position,
                            ref_schema,
                            ref_table,
                            ref_column,
                        ]);
                    }
                };
                let names = |cols: &[usize]| cols.iter().map(|&i| t.columns[i].name.as_str()).collect::<Vec<_>>();
                if !t.hidden_primary_key {
                    key("PRIMARY", names(&t.primary_key), None);
                }
                for ix in t.indexes.iter().filter(|ix| ix.kind == IndexKind::Unique) {
                    key(&ix.name, names(&ix.columns), None);
                }
                for fk in &t.foreign_keys {
                    let (db, table) = split_reference(&fk.ref_table, &t.database);
                    key(&fk.name, fk.columns.iter().map(String::as_str).collect(), Some((db, table, &fk.ref_columns)));
                }
            }
            rows
        }
        "TABLE_CONSTRAINTS" => {
            let mut rows = Vec::new();
            for t in user_tables(catalog) {
                let mut constraint = |name: &str, kind: &str, enforced: &str| {
                    rows.push(vec![text("def"), text(&t.database), text(name), text(&t.database), text(&t.name), text(kind), text(enforced)]);
                };
                if !t.hidden_primary_key {
                    constraint("PRIMARY", "PRIMARY KEY", "YES");
                }
                for ix in t.indexes.iter().filter(|ix| ix.kind == IndexKind::Unique) {
                    constraint(&ix.name, "UNIQUE", "YES");
                }
                for fk in &t.foreign_keys {
                    constraint(&fk.name, "FOREIGN KEY", "NO");
                }
            }
            rows
        }
        "REFERENTIAL_CONSTRAINTS" => {
            let mut rows = Vec::new();
            for t in user_tables(catalog) {
                for fk in &t.foreign_keys {
                    let (db, table) = split_reference(&fk.ref_table, &t.database);
                    let unique_name = catalog.table_by_name(db, table).and_then(|r| referenced_key_name(r, &fk.ref_columns));
                    let rule = |r: &Option<String>| text(r.clone().unwrap_or_else(|| "NO ACTION".into()).to_ascii_uppercase());
                    rows.push(vec![
                        text("def"),
                        text(&t.database),
                        text(&fk.name),
                        text("def"),
                        text(db),
                        opt_text(unique_name),
                        text("NONE"),
                        rule(&fk.on_update),
                        rule(&fk.on_delete),
                        text(&t.name),
                        text(table),
                    ]);
                }
            }
            rows
        }
        // Every Cairn table is hash-partitioned across the node groups: explicitly with
        // PARTITION BY KEY (method KEY, as MySQL shows it), otherwise on the primary key by
        // default (method AUTO, as NDB shows its default partitioning). The sizes are NULL for
        // the reason TABLES gives; NODEGROUP is the node group that holds the partition.
        "PARTITIONS" => {
            let mut rows = Vec::new();
            for t in user_tables(catalog) {
                let method = if t.explicit_partitioning { "KEY" } else { "AUTO" };
                let expression =
                    t.partition_key.iter().map(|&i| format!("`{}`", t.columns[i].name.replace('`', "``"))).collect::<Vec<_>>().join(",");
                for (position, group) in t.partitions.iter().enumerate() {
                    let mut row = vec![text("def"), text(&t.database), text(&t.name)];
                    row.extend([text(format!("p{position}")), Value::Null, Value::UInt(position as u64 + 1), Value::Null]);
                    row.extend([text(method), Value::Null, text(expression.clone()), Value::Null, Value::Null]);
                    row.extend(std::iter::repeat_n(Value::Null, 10));
                    row.extend([text(""), text(group.0.to_string()), Value::Null]);
                    rows.push(row);
                }
            }
            rows
        }
        "PROCESSLIST" => s.processes.iter().map(|p| {
            vec![
                Value::UInt(p.id),
                text(&p.user),
                text(&p.host),
                opt_text(p.database.clone()),
                text(p.command),
                int_value(p.time_seconds),
                text(p.state),
                opt_text(p.info.clone()),
            ]
        }).collect(),
        "ENGINES" => vec![vec![
            text("ndbcluster"),
            text("DEFAULT"),
            text("Cairn: clustered, in-memory, replicated tables"),
            text("YES"),
            text("NO"),
            text("NO"),
        ]],
        "CHARACTER_SETS" => crate::types::CHARSETS
            .iter()
            .map(|(name, description, collation, maxlen)| vec![text(*name), text(*collation), text(*description), Value::UInt(u64::from(*maxlen))])
            .collect(),
        "COLLATIONS" => crate::types::COLLATIONS
            .iter()
            .map(|(name, id, charset, default)| {
                let pad = if name.contains("_0900_") { "NO PAD" } else { "PAD SPACE" };
                vec![
                    text(*name),
                    text(*charset),
                    Value::UInt(u64::from(*id)),
                    text(if *default { "Yes" } else { "" }),
                    text("Yes"),
                    Value::UInt(if name.contains("_0900_") { 0 } else { 1 }),
                    text(pad),
                ]
            })
            .collect(),
        // Cairn has no events, triggers, views, disk-data files, or (yet) stored routines.
        _ => Vec::new(),
    }
}

fn int_value(n: i64) -> Value {
    Value::Int(n)
}

/// `db.table` or `table` (in `default_db`) of a foreign key's REFERENCES.
fn split_reference<'a>(reference: &'a str, default_db: &'a str) -> (&'a str, &'a str) {
    match reference.split_once('.') {
        Some((db, table)) => (db, table),
        None => (default_db, reference),
    }
}

/// The name of the key of `table` a foreign key's referenced columns match: PRIMARY or a
/// unique index.
fn referenced_key_name(table: &TableDef, columns: &[String]) -> Option<String> {
    let same = |cols: &[usize]| {
        cols.len() == columns.len() && cols.iter().zip(columns).all(|(&i, name)| table.columns[i].name.eq_ignore_ascii_case(name))
    };
    if !table.hidden_primary_key && same(&table.primary_key) {
        return Some("PRIMARY".into());
    }
    table.indexes.iter().find(|ix| ix.kind == IndexKind::Unique && same(&ix.columns)).map(|ix| ix.name.clone())
}

/// One row of COLUMNS.
fn column_row(t: &TableDef, index: usize, c: &ColumnDef) -> Row {
    let ty = &c.ty;
    let position = t.columns[..index].iter().filter(|c| !c.hidden).count() as u64 + 1;
    let charset = crate::ddl::column_collation_name(t, c).map(|coll| {
        let id = crate::types::collation_id(&coll).unwrap_or(255);
        (crate::types::charset_of_collation(id).to_string(), coll)
    });
    let bytes_per_char: i64 = match charset.as_ref().map(|(cs, _)| cs.as_str()) {
        Some("utf8mb4") => 4,
        Some("utf8mb3") => 3,
        _ => 1,
    };
    let (char_max, octet_max): (Option<i64>, Option<i64>) = match ty {
        ColumnType::Char { length, binary } | ColumnType::VarChar { length, binary } => {
            let n = i64::from(*length);
            (Some(n), Some(if *binary { n } else { n * bytes_per_char }))
        }
        ColumnType::Lob { size, binary } => {
            // MySQL gives both lengths in bytes for the TEXT and BLOB families.
            let _ = binary;
            let bytes = i64::try_from(size.max_bytes()).unwrap_or(i64::MAX);
            (Some(bytes), Some(bytes))
        }
        ColumnType::Enum { values } => {
            let n = values.iter().map(|v| v.chars().count() as i64).max().unwrap_or(0);
            (Some(n), Some(n * bytes_per_char))
        }
        ColumnType::Set { values } => {
            let n = i64::from(cairn_common::set_value::max_chars(values));
            (Some(n), Some(n * bytes_per_char))
        }
        _ => (None, None),
    };
    let (precision, scale): (Option<u64>, Option<u64>) = match ty {
        ColumnType::Int { width, unsigned, .. } => (
            Some(match (width, unsigned) {
                (IntWidth::Tiny, _) => 3,
                (IntWidth::Small, _) => 5,
                (IntWidth::Medium, _) => 7,
                (IntWidth::Int, _) => 10,
                (IntWidth::Big, false) => 19,
                (IntWidth::Big, true) => 20,
            }),
            Some(0),
        ),
        ColumnType::Decimal { precision, scale } => (Some(u64::from(*precision)), Some(u64::from(*scale))),
        ColumnType::Float => (Some(12), None),
        ColumnType::Double => (Some(22), None),
        _ => (None, None),
    };
    let datetime_precision = match ty {
        ColumnType::DateTime { fsp } | ColumnType::Timestamp { fsp } | ColumnType::Time { fsp } => Some(u64::from(*fsp)),
        _ => None,
    };
    let data_type = match ty {
        // The type's name without its length or attributes: "int", "varchar", "decimal".
        other => other.to_string().split(['(', ' ']).next().unwrap_or_default().to_string(),
    };
    let default = match crate::ddl::describe_default(c) {
        Value::Null => Value::Null,
        other => other,
    };
    vec![
        text("def"),
        text(&t.database),
        text(&t.name),
        text(&c.name),
        Value::UInt(position),
        default,
        text(if c.nullable { "YES" } else { "NO" }),
        text(data_type),
        char_max.map_or(Value::Null, Value::Int),
        octet_max.map_or(Value::Null, Value::Int),
        precision.map_or(Value::Null, Value::UInt),
        scale.map_or(Value::Null, Value::UInt),
        datetime_precision.map_or(Value::Null, Value::UInt),
        opt_text(charset.as_ref().map(|(cs, _)| cs.clone())),
        opt_text(charset.map(|(_, coll)| coll)),
        text(ty.to_string()),
        text(crate::ddl::describe_key(t, index)),
        text(crate::ddl::describe_extra(c)),
        text("select,insert,update,references"),
        text(&c.comment),
        text(""),
        Value::Null,
    ]
}

/// What a session may see of a view, as MySQL filters information_schema: rows about a
/// database or table the session has no privilege on are left out, and without PROCESS only
/// the session's own user's rows of PROCESSLIST are shown. The view's columns say which value
/// names the database (`TABLE_SCHEMA`, `SCHEMA_NAME`, ...) and the table (`TABLE_NAME`).
struct Visibility {
    authorization: Option<Arc<cairn_common::accounts::Authorization>>,
    schema_column: Option<usize>,
    table_column: Option<usize>,
    /// PROCESSLIST without PROCESS: the USER column and the user it must equal.
    own_user_only: Option<(usize, String)>,
    /// A privilege view, for a session that may not read every account's grants: the grantee
    /// its rows must name (`crate::privilege_views`).
    own_grantee_only: Option<String>,
    /// A privilege view: rows are not filtered by the database they name.
    privilege_view: bool,
}

impl Visibility {
    fn new<B: Backend>(view: &TableDef, exec: &Exec<B>) -> Visibility {
        let authorization = exec.snapshot.authorization.clone();
        let column = |names: &[&str]| view.columns.iter().position(|c| names.iter().any(|n| c.name.eq_ignore_ascii_case(n)));
        let schema_column = column(&["TABLE_SCHEMA", "SCHEMA_NAME", "ROUTINE_SCHEMA", "CONSTRAINT_SCHEMA", "EVENT_OBJECT_SCHEMA"]);
        let table_column = column(&["TABLE_NAME"]);
        let may_see_all_processes = authorization.as_ref().is_none_or(|a| a.global().has(cairn_common::accounts::Privilege::Process));
        let own_user_only = if view.name.eq_ignore_ascii_case("PROCESSLIST") && !may_see_all_processes {
            let user = exec.snapshot.user.rsplit_once('@').map_or(&*exec.snapshot.user, |(user, _)| user).to_string();
            column(&["USER"]).map(|at| (at, user))
        } else {
            None
        };
        let privilege_view = crate::privilege_views::VIEWS.iter().any(|v| view.name.eq_ignore_ascii_case(v));
        let own_grantee_only = match &authorization {
            Some(a) if privilege_view && !crate::privilege_views::sees_all_grantees(a) => {
                Some(crate::privilege_views::grantee_of_current_user(&exec.snapshot.account))
            }
            _ => None,
        };
        Visibility { authorization, schema_column, table_column, own_user_only, own_grantee_only, privilege_view }
    }

    fn shows(&self, row: &[Value]) -> bool {
        let Some(authorization) = &self.authorization else {
            return true;
        };
        if let Some((at, user)) = &self.own_user_only {
            return row.get(*at).is_some_and(|v| v.to_text() == *user);
        }
        if self.privilege_view {
            // Seeing a grant does not need a privilege on the object it names, as in MySQL.
            return self.own_grantee_only.as_ref().is_none_or(|own| {
                row.get(crate::privilege_views::GRANTEE_COLUMN).is_some_and(|v| v.to_text() == *own)
            });
        }
        let Some(database) = self.schema_column.and_then(|at| row.get(at)).and_then(|v| if v.is_null() { None } else { Some(v.to_text()) }) else {
            return true;
        };
        if crate::privileges::is_system_database(&database) {
            return true;
        }
        match self.table_column.and_then(|at| row.get(at)).filter(|v| !v.is_null()) {
            Some(table) => authorization.sees_table(&database, &table.to_text()),
            None => authorization.sees_database(&database),
        }
    }
}

/// The rows of a view's scan, with the scan's filter and limit applied (what a node group does
/// for a stored table).
pub(crate) fn scan<B: Backend>(exec: &mut Exec<B>, view: &TableDef, filter: Option<&cairn_common::expr::Expr>, limit: Option<u64>) -> Result<Vec<Row>, Error> {
    let engine = exec.engine.clone();
    let catalog = engine.backend.catalog();
    let next = |id: TableId| engine.peek_auto_increment(id);
    let sources = Sources {
        catalog: &catalog,
        processes: engine.processes.rows(engine.config.clock.now_micros()),
        next_auto_increment: &next,
    };
    let visible = Visibility::new(view, exec);
    let mut out = Vec::new();
    for row in rows(view, &sources) {
        if limit.is_some_and(|l| out.len() as u64 >= l) {
            break;
        }
        if !visible.shows(&row) {
            continue;
        }
        debug_assert_eq!(row.len(), view.columns.len(), "{}", view.name);
        if let Some(f) = filter
            && !exec.matches(f, &row)?
        {
            continue;
        }
        out.push(row);
    }
    Ok(out)
}
