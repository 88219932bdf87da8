//! What SHOW and information_schema say about routines: `SHOW CREATE FUNCTION/PROCEDURE`,
//! `SHOW FUNCTION/PROCEDURE STATUS`, and the rows of `information_schema.ROUTINES`, with
//! MySQL 8's column names and types (GUI tools and mysqldump read them by name).

use cairn_common::catalog::Catalog;
use cairn_common::routine::{RoutineDef, RoutineKind};
use cairn_common::temporal::DateTime;
use cairn_common::types::{ColumnType, IntWidth};
use cairn_common::Value;

use crate::show::{ShowResult, nullable_text, text};
use crate::types::SqlType;

fn timestamp(micros: i64) -> Value {
    // Whole seconds, as MySQL keeps them in its data dictionary.
    DateTime::from_unix_micros(micros - micros.rem_euclid(1_000_000)).map_or(Value::Null, Value::DateTime)
}

fn datetime_type() -> SqlType {
    SqlType::datetime(0, false)
}

/// `SHOW CREATE FUNCTION f` / `SHOW CREATE PROCEDURE p`.
pub(crate) fn show_create(routine: &RoutineDef) -> ShowResult {
    let (name_column, create_column) = match routine.kind {
        RoutineKind::Function => ("Function", "Create Function"),
        RoutineKind::Procedure => ("Procedure", "Create Procedure"),
    };
    let mut r = ShowResult::new(vec![
        (name_column, text(64)),
        ("sql_mode", text(1024)),
        (create_column, nullable_text(1024)),
        ("character_set_client", text(32)),
        ("collation_connection", text(32)),
        ("Database Collation", text(32)),
    ]);
    r.rows.push(vec![
        Value::text(&routine.name),
        Value::text(&routine.sql_mode),
        Value::Text(routine.create_statement()),
        Value::text(&routine.character_set_client),
        Value::text(&routine.collation_connection),
        Value::text(&routine.database_collation),
    ]);
    r
}

/// `SHOW FUNCTION STATUS` / `SHOW PROCEDURE STATUS` (every database). `like` filters on the
/// Name column (not on the first, as other SHOW statements do); WHERE is the caller's.
pub(crate) fn show_status(catalog: &Catalog, kind: RoutineKind, like: Option<&str>) -> ShowResult {
    let mut r = ShowResult::new(vec![
        ("Db", text(64)),
        ("Name", text(64)),
        ("Type", text(9)),
        ("Definer", text(288)),
        ("Modified", datetime_type()),
        ("Created", datetime_type()),
        ("Security_type", text(7)),
        ("Comment", text(1024)),
        ("character_set_client", text(32)),
        ("collation_connection", text(32)),
        ("Database Collation", text(32)),
    ]);
    let mut routines: Vec<&RoutineDef> = catalog
        .all_routines()
        .filter(|d| d.kind == kind && like.is_none_or(|p| cairn_common::expr::like(&d.name, p, '\\', false)))
        .collect();
    routines.sort_by(|a, b| (&a.database, &a.name).cmp(&(&b.database, &b.name)));
    r.rows = routines
        .into_iter()
        .map(|d| {
            vec![
                Value::text(&d.database),
                Value::text(&d.name),
                Value::text(d.kind.keyword()),
                Value::Text(d.definer_plain()),
                timestamp(d.modified_micros),
                timestamp(d.created_micros),
                Value::text(d.security.keyword()),
                Value::text(&d.comment),
                Value::text(&d.character_set_client),
                Value::text(&d.collation_connection),
                Value::text(&d.database_collation),
            ]
        })
        .collect();
    r
}

fn unsigned_int(nullable: bool) -> SqlType {
    SqlType::of(ColumnType::Int { width: IntWidth::Int, unsigned: true, display: None }, nullable)
}

fn unsigned_bigint(nullable: bool) -> SqlType {
    SqlType::of(ColumnType::Int { width: IntWidth::Big, unsigned: true, display: None }, nullable)
}

/// The type facts information_schema gives for a return type: DATA_TYPE, lengths, numeric
/// precision and scale, datetime precision, character set and collation, DTD_IDENTIFIER.
struct TypeFacts {
    data_type: String,
    max_length: Option<u64>,
    octet_length: Option<u64>,
    precision: Option<u64>,
    scale: Option<u64>,
    datetime_precision: Option<u64>,
    charset: Option<String>,
    collation: Option<String>,
    dtd: String,
}

fn type_facts(ty: &ColumnType, collation: Option<&str>) -> TypeFacts {
    let dtd = ty.to_string();
    let data_type = dtd.split(['(', ' ']).next().unwrap_or("").to_string();
    let mut facts = TypeFacts {
        data_type,
        max_length: None,
        octet_length: None,
        precision: None,
        scale: None,
        datetime_precision: None,
        charset: None,
        collation: None,
        dtd,
    };
    let string_collation = collation.unwrap_or("utf8mb4_0900_ai_ci");
    let charset_of = |c: &str| c.split('_').next().unwrap_or("utf8mb4").to_string();
    match ty {
        ColumnType::Int { width, unsigned, .. } => {
            let digits: u64 = match (width, unsigned) {
                (IntWidth::Tiny, _) => 3,
                (IntWidth::Small, _) => 5,
                (IntWidth::Medium, _) => 7,
                (IntWidth::Int, _) => 10,
                (IntWidth::Big, false) => 19,
                (IntWidth::Big, true) => 20,
            };
            facts.precision = Some(digits);
            facts.scale = Some(0);
        }
        ColumnType::Year => {}
        ColumnType::Decimal { precision, scale } => {
            facts.precision = Some(u64::from(*precision));
            facts.scale = Some(u64::from(*scale));
        }
        ColumnType::Float => facts.precision = Some(12),
        ColumnType::Double => facts.precision = Some(22),
        ColumnType::Char { length, binary } | ColumnType::VarChar { length, binary } => {
            let bytes_per_char = if *binary { 1 } else { 4 };
            facts.max_length = Some(u64::from(*length));
            facts.octet_length = Some(u64::from(*length) * bytes_per_char);
            if !binary {
                facts.charset = Some(charset_of(string_collation));
                facts.collation = Some(string_collation.to_string());
            }
        }
        ColumnType::Lob { size, binary } => {
            facts.max_length = Some(size.max_bytes());
            facts.octet_length = Some(size.max_bytes());
            if !binary {
                facts.charset = Some(charset_of(string_collation));
                facts.collation = Some(string_collation.to_string());
            }
        }
        ColumnType::Enum { values } => {
            let longest = values.iter().map(|v| v.chars().count() as u64).max().unwrap_or(0);
            facts.max_length = Some(longest);
            facts.octet_length = Some(longest * 4);
            facts.charset = Some(charset_of(string_collation));
            facts.collation = Some(string_collation.to_string());
        }
        ColumnType::Set { values } => {
            let longest = u64::from(cairn_common::set_value::max_chars(values));
            facts.max_length = Some(longest);
            facts.octet_length = Some(longest * 4);
            facts.charset = Some(charset_of(string_collation));
            facts.collation = Some(string_collation.to_string());
        }
        ColumnType::Date => {}
        ColumnType::DateTime { fsp } | ColumnType::Timestamp { fsp } | ColumnType::Time { fsp } => {
            facts.datetime_precision = Some(u64::from(*fsp));
        }
    }
    facts
}

/// The rows of `information_schema.ROUTINES`, one per routine the catalog holds, ordered by
/// schema, type and name: the rows of the view in `crate::information_schema`.
pub(crate) fn information_schema_routines(catalog: &Catalog) -> ShowResult {
    let some_text = |s: Option<String>| s.map_or(Value::Null, Value::Text);
    let some_uint = |n: Option<u64>| n.map_or(Value::Null, Value::UInt);
    let mut r = ShowResult::new(vec![
        ("SPECIFIC_NAME", text(64)),
        ("ROUTINE_CATALOG", text(64)),
        ("ROUTINE_SCHEMA", text(64)),
        ("ROUTINE_NAME", text(64)),
        ("ROUTINE_TYPE", text(9)),
        ("DATA_TYPE", text(64)),
        ("CHARACTER_MAXIMUM_LENGTH", unsigned_bigint(true)),
        ("CHARACTER_OCTET_LENGTH", unsigned_bigint(true)),
        ("NUMERIC_PRECISION", unsigned_int(true)),
        ("NUMERIC_SCALE", unsigned_int(true)),
        ("DATETIME_PRECISION", unsigned_int(true)),
        ("CHARACTER_SET_NAME", nullable_text(64)),
        ("COLLATION_NAME", nullable_text(64)),
        ("DTD_IDENTIFIER", nullable_text(1024)),
        ("ROUTINE_BODY", text(8)),
        ("ROUTINE_DEFINITION", nullable_text(65535)),
        ("EXTERNAL_NAME", nullable_text(64)),
        ("EXTERNAL_LANGUAGE", text(64)),
        ("PARAMETER_STYLE", text(8)),
        ("IS_DETERMINISTIC", text(3)),
        ("SQL_DATA_ACCESS", text(64)),
        ("SQL_PATH", nullable_text(64)),
        ("SECURITY_TYPE", text(7)),
        ("CREATED", datetime_type()),
        ("LAST_ALTERED", datetime_type()),
        ("SQL_MODE", text(1024)),
        ("ROUTINE_COMMENT", text(1024)),
        ("DEFINER", text(288)),
        ("CHARACTER_SET_CLIENT", text(64)),
        ("COLLATION_CONNECTION", text(64)),
        ("DATABASE_COLLATION", text(64)),
    ]);
    for d in catalog.all_routines() {
        let facts = d.returns.as_ref().map(|t| type_facts(&t.ty, t.collation.as_deref()));
        let (data_type, dtd) = match &facts {
            Some(f) => (f.data_type.clone(), Some(f.dtd.clone())),
            None => (String::new(), None),
        };
        r.rows.push(vec![
            Value::text(&d.name),
            Value::text("def"),
            Value::text(&d.database),
            Value::text(&d.name),
            Value::text(d.kind.keyword()),
            Value::Text(data_type),
            some_uint(facts.as_ref().and_then(|f| f.max_length)),
            some_uint(facts.as_ref().and_then(|f| f.octet_length)),
            some_uint(facts.as_ref().and_then(|f| f.precision)),
            some_uint(facts.as_ref().and_then(|f| f.scale)),
            some_uint(facts.as_ref().and_then(|f| f.datetime_precision)),
            some_text(facts.as_ref().and_then(|f| f.charset.clone())),
            some_text(facts.as_ref().and_then(|f| f.collation.clone())),
            some_text(dtd),
            Value::text("SQL"),
            Value::text(&d.body),
            Value::Null,
            Value::text("SQL"),
            Value::text("SQL"),
            Value::text(if d.deterministic { "YES" } else { "NO" }),
            Value::text(d.data_access.keyword()),
            Value::Null,
            Value::text(d.security.keyword()),
            timestamp(d.created_micros),
            timestamp(d.modified_micros),
            Value::text(&d.sql_mode),
            Value::text(&d.comment),
            Value::Text(d.definer_plain()),
            Value::text(&d.character_set_client),
            Value::text(&d.collation_connection),
            Value::text(&d.database_collation),
        ]);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_common::catalog::CatalogOp;
    use cairn_common::ids::NodeGroupId;
    use cairn_common::routine::{DataAccess, RoutineType, SqlSecurity};

    fn catalog_with(defs: Vec<RoutineDef>) -> Catalog {
        let groups = [NodeGroupId(0)];
        let mut c = Catalog::new();
        c.apply(CatalogOp::CreateDatabase { name: "d".into(), charset: "utf8mb4".into(), collation: "utf8mb4_0900_ai_ci".into(), if_not_exists: false }, &groups)
            .unwrap();
        for routine in defs {
            c.apply(CatalogOp::CreateRoutine { routine, or_replace: false, if_not_exists: false }, &groups).unwrap();
        }
        c
    }

    fn def(name: &str, kind: RoutineKind, returns: Option<ColumnType>) -> RoutineDef {
        RoutineDef {
            database: "d".into(),
            name: name.into(),
            kind,
            version: 0,
            params: vec![],
            returns: returns.map(|ty| RoutineType { ty, collation: None }),
            param_list: String::new(),
            body: "BEGIN END".into(),
            definer_user: "root".into(),
            definer_host: "%".into(),
            security: SqlSecurity::Invoker,
            deterministic: true,
            data_access: DataAccess::ReadsSqlData,
            comment: "c".into(),
            sql_mode: "STRICT_TRANS_TABLES".into(),
            character_set_client: "utf8mb4".into(),
            collation_connection: "utf8mb4_0900_ai_ci".into(),
            database_collation: "utf8mb4_0900_ai_ci".into(),
            created_micros: 1_714_979_289_123_456,
            modified_micros: 1_714_979_289_123_456,
        }
    }

    #[test]
    fn information_schema_rows_describe_return_types() {
        let c = catalog_with(vec![
            def("f", RoutineKind::Function, Some(ColumnType::VarChar { length: 10, binary: false })),
            def("p", RoutineKind::Procedure, None),
        ]);
        let r = information_schema_routines(&c);
        assert_eq!(r.columns.len(), 31);
        let column = |name: &str| r.columns.iter().position(|(n, _)| n == name).unwrap();
        let f = &r.rows[0];
        assert_eq!(f[column("ROUTINE_TYPE")], Value::text("FUNCTION"));
        assert_eq!(f[column("DATA_TYPE")], Value::text("varchar"));
        assert_eq!(f[column("DTD_IDENTIFIER")], Value::text("varchar(10)"));
        assert_eq!(f[column("CHARACTER_MAXIMUM_LENGTH")], Value::UInt(10));
        assert_eq!(f[column("CHARACTER_OCTET_LENGTH")], Value::UInt(40));
        assert_eq!(f[column("IS_DETERMINISTIC")], Value::text("YES"));
        assert_eq!(f[column("SQL_DATA_ACCESS")], Value::text("READS SQL DATA"));
        assert_eq!(f[column("SECURITY_TYPE")], Value::text("INVOKER"));
        assert_eq!(f[column("DEFINER")], Value::text("root@%"));
        let p = &r.rows[1];
        assert_eq!(p[column("ROUTINE_TYPE")], Value::text("PROCEDURE"));
        assert_eq!(p[column("DATA_TYPE")], Value::text(""));
        assert_eq!(p[column("DTD_IDENTIFIER")], Value::Null);
        let status = show_status(&c, RoutineKind::Function, Some("F%"));
        assert_eq!(status.rows.len(), 1, "LIKE matches the name, case-insensitively");
        assert_eq!(show_status(&c, RoutineKind::Function, Some("p%")).rows.len(), 0);
    }
}
