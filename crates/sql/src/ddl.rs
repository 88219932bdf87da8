//! CREATE TABLE: from sqlparser's AST to a [`TableDef`], with MySQL's checks and messages; and
//! back, as `SHOW CREATE TABLE` prints it (MySQL 8's exact format, which SQLAlchemy parses).
//!
//! Keys: the primary key (declared on a column or as a table constraint, composite or not)
//! becomes the table's key and, unless `PARTITION BY KEY` names a subset, its partition key. A
//! table without one gets NDB's hidden `$PK BIGINT UNSIGNED` key, filled from the table's
//! AUTO_INCREMENT counter. UNIQUE, KEY/INDEX and FOREIGN KEY clauses are recorded in the
//! definition and shown by SHOW CREATE TABLE; they are not used or enforced yet (indexes come
//! with a later change; foreign keys are not enforced, as in NDB before 7.3).

use sqlparser::ast::{self, ColumnOption, DataType, TableConstraint};
use sqlparser::tokenizer::Token;

use cairn_common::catalog::{ColumnDef, ColumnDefault, ForeignKeyDef, IndexDef, IndexKind, IndexState, TableDef, HIDDEN_PK_NAME};
use cairn_common::collation::Collation;
use cairn_common::error::{Error, ErrorKind};
use cairn_common::ids::{NodeGroupId, TableId};
use cairn_common::types::{ColumnType, IntWidth, LobSize, MAX_CHAR_LENGTH};
use cairn_common::{Value, bail, err};

use crate::compile::{Compiler, PlanContext, Scope, check_decimal};
use crate::parse::{PartitionSpec, TableName};
use crate::plan::object_table_name;
use crate::types;

/// Defaults of a database, for tables that name no character set.
pub(crate) struct DatabaseDefaults {
    pub charset: String,
    pub collation: String,
}

fn column_length(len: &Option<ast::CharacterLength>) -> Option<u64> {
    match len {
        Some(ast::CharacterLength::IntegerLength { length, .. }) => Some(*length),
        _ => None,
    }
}

fn int(width: IntWidth, unsigned: bool) -> ColumnType {
    ColumnType::Int { width, unsigned, display: None }
}

/// Maps a declared type to Cairn's, with MySQL's limits (1074 for over-long strings, 1426 for
/// too-precise temporals, 1235 for types Cairn does not have).
pub(crate) fn column_type(dt: &DataType, column: &str, mb_per_char: u64) -> Result<(ColumnType, bool), Error> {
    // (type, implies NOT NULL AUTO_INCREMENT UNIQUE (SERIAL))
    let too_long = |max: u64| err!(ColumnLengthTooBig, "Column length too big for column '{column}' (max = {max}); use BLOB or TEXT instead");
    let fsp = |p: &Option<u64>| -> Result<u8, Error> {
        match p {
            None => Ok(0),
            Some(p) if *p <= 6 => Ok(*p as u8),
            Some(p) => bail!(TooBigPrecision, "Too-big precision {p} specified for '{column}'. Maximum is 6."),
        }
    };
    Ok((
        match dt {
            DataType::TinyInt(Some(1)) | DataType::Bool | DataType::Boolean => {
                ColumnType::Int { width: IntWidth::Tiny, unsigned: false, display: Some(1) }
            }
            DataType::TinyInt(_) => int(IntWidth::Tiny, false),
            DataType::TinyIntUnsigned(_) | DataType::UTinyInt => int(IntWidth::Tiny, true),
            DataType::SmallInt(_) | DataType::Int2(_) => int(IntWidth::Small, false),
            DataType::SmallIntUnsigned(_) | DataType::Int2Unsigned(_) | DataType::USmallInt => int(IntWidth::Small, true),
            DataType::MediumInt(_) => int(IntWidth::Medium, false),
            DataType::MediumIntUnsigned(_) => int(IntWidth::Medium, true),
            DataType::Int(_) | DataType::Integer(_) | DataType::Int4(_) => int(IntWidth::Int, false),
            DataType::IntUnsigned(_) | DataType::IntegerUnsigned(_) | DataType::Int4Unsigned(_) => int(IntWidth::Int, true),
            DataType::BigInt(_) | DataType::Int8(_) => int(IntWidth::Big, false),
            DataType::BigIntUnsigned(_) | DataType::Int8Unsigned(_) | DataType::UBigInt => int(IntWidth::Big, true),
            DataType::Zerofill(inner) => match column_type(inner, column, mb_per_char)?.0 {
                ColumnType::Int { width, .. } => int(width, true),
                other => other,
            },
            DataType::Decimal(info) | DataType::Numeric(info) | DataType::Dec(info) | DataType::DecimalUnsigned(info) | DataType::DecUnsigned(info) => {
                let (p, s) = match info {
                    ast::ExactNumberInfo::None => (10, 0),
                    ast::ExactNumberInfo::Precision(p) => (*p, 0),
                    ast::ExactNumberInfo::PrecisionAndScale(p, s) => (*p, u64::try_from(*s).unwrap_or(u64::MAX)),
                };
                let (precision, scale) = check_decimal(p, s, column)?;
                ColumnType::Decimal { precision, scale }
            }
            DataType::Float(info) | DataType::FloatUnsigned(info) => match info {
                ast::ExactNumberInfo::Precision(p) if *p > 53 => {
                    bail!(WrongColumnSpec, "Incorrect column specifier for column '{column}'")
                }
                ast::ExactNumberInfo::Precision(p) if *p > 24 => ColumnType::Double,
                _ => ColumnType::Float,
            },
            DataType::Float4 | DataType::Float32 => ColumnType::Float,
            DataType::Double(_) | DataType::DoubleUnsigned(_) | DataType::DoublePrecision | DataType::DoublePrecisionUnsigned
            | DataType::Real | DataType::RealUnsigned | DataType::Float8 | DataType::Float64 => ColumnType::Double,
            DataType::Char(len) | DataType::Character(len) => {
                let n = column_length(len).unwrap_or(1);
                if n > MAX_CHAR_LENGTH as u64 {
                    return Err(too_long(MAX_CHAR_LENGTH as u64));
                }
                ColumnType::Char { length: n as u32, binary: false }
            }
            DataType::Varchar(len) | DataType::CharacterVarying(len) | DataType::CharVarying(len) | DataType::Nvarchar(len) => {
                let Some(n) = column_length(len) else {
                    return Err(crate::lexer::syntax_error_near(&format!("{dt}"), 1));
                };
                let max = 65_535 / mb_per_char.max(1);
                if n > max {
                    return Err(too_long(max));
                }
                ColumnType::VarChar { length: n as u32, binary: false }
            }
            DataType::Binary(len) => {
                let n = len.unwrap_or(1);
                if n > MAX_CHAR_LENGTH as u64 {
                    return Err(too_long(MAX_CHAR_LENGTH as u64));
                }
                ColumnType::Char { length: n as u32, binary: true }
            }
            DataType::Varbinary(len) => {
                let n = match len {
                    Some(ast::BinaryLength::IntegerLength { length }) => *length,
                    _ => return Err(crate::lexer::syntax_error_near(&format!("{dt}"), 1)),
                };
                if n > 65_535 {
                    return Err(too_long(65_535));
                }
                ColumnType::VarChar { length: n as u32, binary: true }
            }
            DataType::TinyBlob => ColumnType::Lob { size: LobSize::Tiny, binary: true },
            DataType::Blob(n) => ColumnType::Lob { size: lob_size(n.unwrap_or(65_535)), binary: true },
            DataType::MediumBlob => ColumnType::Lob { size: LobSize::Medium, binary: true },
            DataType::LongBlob => ColumnType::Lob { size: LobSize::Long, binary: true },
            DataType::TinyText => ColumnType::Lob { size: LobSize::Tiny, binary: false },
            DataType::Text => ColumnType::Lob { size: LobSize::Normal, binary: false },
            DataType::MediumText => ColumnType::Lob { size: LobSize::Medium, binary: false },
            DataType::LongText => ColumnType::Lob { size: LobSize::Long, binary: false },
            DataType::Date => ColumnType::Date,
            DataType::Datetime(p) => ColumnType::DateTime { fsp: fsp(p)? },
            DataType::Timestamp(p, _) => ColumnType::Timestamp { fsp: fsp(p)? },
            DataType::Time(p, _) => ColumnType::Time { fsp: fsp(p)? },
            DataType::Enum(members, _) => {
                let mut values = Vec::with_capacity(members.len());
                for m in members {
                    let v = match m {
                        ast::EnumMember::Name(s) => s.clone(),
                        ast::EnumMember::NamedValue(s, _) => s.clone(),
                    };
                    let trimmed = v.trim_end_matches(' ').to_string();
                    if values.iter().any(|x: &String| Collation::CaseInsensitive.equal(x, &trimmed)) {
                        bail!(WrongColumnSpec, "Column '{column}' has duplicated value '{trimmed}' in ENUM");
                    }
                    values.push(trimmed);
                }
                if values.is_empty() || values.len() > 65_535 {
                    bail!(WrongColumnSpec, "Incorrect column specifier for column '{column}'");
                }
                ColumnType::Enum { values }
            }
            DataType::Set(members) => {
                let mut values: Vec<String> = Vec::with_capacity(members.len());
                for m in members {
                    let trimmed = m.trim_end_matches(' ').to_string();
                    // A value is its members joined by commas, so a member cannot hold one.
                    if trimmed.contains(',') {
                        bail!(IllegalValueForType, "Illegal set '{trimmed}' value found during parsing");
                    }
                    if values.iter().any(|x| Collation::CaseInsensitive.equal(x, &trimmed)) {
                        bail!(DuplicatedValueInType, "Column '{column}' has duplicated value '{trimmed}' in SET");
                    }
                    values.push(trimmed);
                }
                if values.len() > cairn_common::set_value::MAX_MEMBERS {
                    bail!(TooBigSet, "Too many strings for column {column} and SET");
                }
                if values.is_empty() {
                    bail!(WrongColumnSpec, "Incorrect column specifier for column '{column}'");
                }
                ColumnType::Set { values }
            }
            DataType::Custom(name, modifiers) if name.to_string().eq_ignore_ascii_case("YEAR") && modifiers.iter().all(|m| m.to_string() == "4") => {
                ColumnType::Year
            }
            DataType::Custom(name, modifiers) if name.to_string().eq_ignore_ascii_case("SERIAL") && modifiers.is_empty() => {
                return Ok((int(IntWidth::Big, true), true));
            }
            other => return Err(Error::not_supported(format!("columns of type {other}"))),
        },
        false,
    ))
}

fn lob_size(bytes: u64) -> LobSize {
    match bytes {
        0..=255 => LobSize::Tiny,
        256..=65_535 => LobSize::Normal,
        65_536..=16_777_215 => LobSize::Medium,
        _ => LobSize::Long,
    }
}

fn ident_list(columns: &[ast::IndexColumn]) -> Result<Vec<String>, Error> {
    columns
        .iter()
        .map(|c| match &c.column.expr {
            ast::Expr::Identifier(i) => Ok(i.value.clone()),
            // KEY (name(10)): a prefix length, which Cairn keeps whole.
            ast::Expr::Function(f) if f.name.0.len() == 1 => Ok(f.name.to_string().trim_matches('`').to_string()),
            other => Err(Error::not_supported(format!("functional key parts ({other})"))),
        })
        .collect()
}

/// Evaluates a DEFAULT clause into a stored default.
fn default_value(ctx: &mut PlanContext<'_>, e: &ast::Expr, column: &ColumnDef) -> Result<ColumnDefault, Error> {
    let invalid = || err!(InvalidDefault, "Invalid default value for '{}'", column.name);
    // CURRENT_TIMESTAMP, NOW(), LOCALTIME… for temporal columns.
    let name = match e {
        ast::Expr::Function(f) => Some(f.name.to_string().to_ascii_uppercase()),
        ast::Expr::Identifier(i) if i.quote_style.is_none() => Some(i.value.to_ascii_uppercase()),
        _ => None,
    };
    if let Some(name) = name
        && matches!(name.as_str(), "CURRENT_TIMESTAMP" | "NOW" | "LOCALTIME" | "LOCALTIMESTAMP") {
            return match column.ty {
                ColumnType::DateTime { .. } | ColumnType::Timestamp { .. } => Ok(ColumnDefault::CurrentTimestamp),
                _ => Err(invalid()),
            };
        }
    if matches!(e, ast::Expr::Nested(_)) {
        return Err(Error::not_supported("expression defaults"));
    }
    let scope = Scope::default();
    let mut c = Compiler::new(ctx, &scope, "field list");
    let (expr, _) = c.compile(e)?;
    let value = match expr {
        Expr::Literal(v) => v,
        Expr::Neg(inner) => match *inner {
            Expr::Literal(v) => cairn_common::expr::Expr::Neg(Box::new(Expr::Literal(v)))
                .eval(&[], &mut cairn_common::expr::EvalContext::detached())?,
            _ => return Err(invalid()),
        },
        _ => return Err(invalid()),
    };
    if value.is_null() {
        if !column.nullable {
            return Err(invalid());
        }
        return Ok(ColumnDefault::Value(Value::Null));
    }
    if matches!(column.ty, ColumnType::Lob { .. }) {
        bail!(BlobCantHaveDefault, "BLOB, TEXT, GEOMETRY or JSON column '{}' can't have a default value", column.name);
    }
    let mut strict = cairn_storage::coerce::Coercion::strict();
    let stored = cairn_storage::coerce::coerce(value, column, &mut strict).map_err(|_| invalid())?;
    Ok(ColumnDefault::Value(stored))
}

use cairn_common::expr::Expr;

fn canonical_engine(name: &str) -> String {
    match name.to_ascii_lowercase().as_str() {
        "ndbcluster" | "ndb" => "ndbcluster".into(),
        "innodb" => "InnoDB".into(),
        "myisam" => "MyISAM".into(),
        "memory" | "heap" => "MEMORY".into(),
        "archive" => "ARCHIVE".into(),
        "csv" => "CSV".into(),
        _ => name.to_string(),
    }
}

fn option_text(e: &ast::Expr) -> String {
    match e {
        ast::Expr::Identifier(i) => i.value.clone(),
        ast::Expr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) | ast::Value::DoubleQuotedString(s) => s.clone(),
            other => other.to_string(),
        },
        other => other.to_string(),
    }
}

/// Builds the definition of a table from CREATE TABLE.
pub(crate) fn table_def(
    ctx: &mut PlanContext<'_>,
    ct: &ast::CreateTable,
    partitioning: Option<&PartitionSpec>,
    defaults_of: &dyn Fn(&str) -> Option<DatabaseDefaults>,
) -> Result<(TableDef, bool), Error> {
    if ct.or_replace {
        return Err(Error::not_supported("CREATE OR REPLACE TABLE"));
    }
    if ct.like.is_some() || ct.clone.is_some() {
        return Err(Error::not_supported("CREATE TABLE ... LIKE"));
    }
    if ct.query.is_some() {
        return Err(Error::not_supported("CREATE TABLE ... SELECT"));
    }
    let TableName { database, name } = object_table_name(&ct.name)?;
    let database = match database.or_else(|| ctx.env.database.map(str::to_string)) {
        Some(db) => db,
        None => bail!(NoDatabaseSelected, "No database selected"),
    };
    let Some(db_defaults) = defaults_of(&database) else {
        bail!(UnknownDatabase, "Unknown database '{database}'");
    };
    if name.is_empty() || name.len() > 64 || name.ends_with(' ') {
        bail!(WrongArguments, "Incorrect table name '{name}'");
    }

    // Table options.
    let mut engine = "ndbcluster".to_string();
    let mut charset: Option<String> = None;
    let mut collation: Option<String> = None;
    let mut auto_increment_start = 1u64;
    let mut comment = String::new();
    let options: &[ast::SqlOption] = match &ct.table_options {
        ast::CreateTableOptions::None => &[],
        ast::CreateTableOptions::With(o) | ast::CreateTableOptions::Options(o) | ast::CreateTableOptions::Plain(o) | ast::CreateTableOptions::TableProperties(o) => o,
    };
    for option in options {
        match option {
            ast::SqlOption::NamedParenthesizedList(list) if list.key.value.eq_ignore_ascii_case("ENGINE") => {
                if let Some(n) = &list.name {
                    engine = canonical_engine(&n.value);
                }
            }
            ast::SqlOption::KeyValue { key, value } => {
                let key = key.to_string().to_ascii_uppercase();
                let text = option_text(value);
                match key.as_str() {
                    "ENGINE" => engine = canonical_engine(&text),
                    "DEFAULT CHARSET" | "CHARSET" | "CHARACTER SET" | "DEFAULT CHARACTER SET" => {
                        charset = Some(
                            types::normalize_charset(&text)
                                .ok_or_else(|| err!(UnknownCharacterSet, "Unknown character set: '{text}'"))?
                                .to_string(),
                        );
                    }
                    "COLLATE" | "DEFAULT COLLATE" => {
                        collation = Some(
                            types::normalize_collation(&text)
                                .ok_or_else(|| err!(UnknownCollation, "Unknown collation: '{text}'"))?
                                .to_string(),
                        );
                    }
                    "AUTO_INCREMENT" => {
                        auto_increment_start = text.parse().map_err(|_| crate::lexer::syntax_error_near(&text, 1))?;
                    }
                    "COMMENT" => comment = text,
                    // ROW_FORMAT, KEY_BLOCK_SIZE, STATS_*, MAX_ROWS… mean nothing here.
                    _ => {}
                }
            }
            ast::SqlOption::Comment(c) => {
                comment = match c {
                    ast::CommentDef::WithEq(s) | ast::CommentDef::WithoutEq(s) => s.clone(),
                }
            }
            _ => {}
        }
    }
    if let Some(ast::CommentDef::WithEq(s) | ast::CommentDef::WithoutEq(s)) = &ct.comment {
        comment = s.clone();
    }
    let (charset, collation) = match (charset, collation) {
        (Some(cs), Some(coll)) => {
            if !types::collation_matches_charset(&coll, &cs) {
                bail!(UnknownCollation, "COLLATION '{coll}' is not valid for CHARACTER SET '{cs}'");
            }
            (cs, coll)
        }
        (Some(cs), None) => {
            let coll = types::default_collation(&cs).unwrap_or("utf8mb4_0900_ai_ci").to_string();
            (cs, coll)
        }
        (None, Some(coll)) => {
            let id = types::collation_id(&coll).unwrap_or(255);
            (types::charset_of_collation(id).to_string(), coll)
        }
        (None, None) => (db_defaults.charset.clone(), db_defaults.collation.clone()),
    };

    // Columns.
    let mut columns: Vec<ColumnDef> = Vec::with_capacity(ct.columns.len() + 1);
    let mut primary_key: Vec<usize> = Vec::new();
    let mut indexes: Vec<IndexDef> = Vec::new();
    let mut unique_columns: Vec<(Option<String>, Vec<String>)> = Vec::new();
    let mut foreign_keys = Vec::new();
    let mut primary_declared = false;
    for c in &ct.columns {
        let column_name = c.name.value.clone();
        if column_name.is_empty() || column_name.len() > 64 || column_name.ends_with(' ') {
            bail!(WrongArguments, "Incorrect column name '{column_name}'");
        }
        // The column's character set decides how long a VARCHAR may be.
        let mut column_charset: Option<String> = None;
        let mut column_collation: Option<String> = None;
        for o in &c.options {
            match &o.option {
                ColumnOption::CharacterSet(cs) => {
                    let text = cs.to_string();
                    column_charset = Some(
                        types::normalize_charset(text.trim_matches('`'))
                            .ok_or_else(|| err!(UnknownCharacterSet, "Unknown character set: '{text}'"))?
                            .to_string(),
                    );
                }
                ColumnOption::Collation(coll) => {
                    let text = coll.to_string();
                    column_collation = Some(
                        types::normalize_collation(text.trim_matches('`'))
                            .ok_or_else(|| err!(UnknownCollation, "Unknown collation: '{text}'"))?
                            .to_string(),
                    );
                }
                _ => {}
            }
        }
        let effective_charset = column_charset
            .clone()
            .or_else(|| column_collation.as_ref().map(|c| types::charset_of_collation(types::collation_id(c).unwrap_or(255)).to_string()))
            .unwrap_or_else(|| charset.clone());
        let mb = match effective_charset.as_str() {
            "utf8mb4" => 4,
            "utf8mb3" => 3,
            _ => 1,
        };
        let (ty, serial) = column_type(&c.data_type, &column_name, mb)?;
        let is_binary_charset = effective_charset == "binary";
        let ty = match ty {
            // CHARACTER SET binary turns character types into their binary twins.
            ColumnType::Char { length, binary: false } if is_binary_charset => ColumnType::Char { length, binary: true },
            ColumnType::VarChar { length, binary: false } if is_binary_charset => ColumnType::VarChar { length, binary: true },
            ColumnType::Lob { size, binary: false } if is_binary_charset => ColumnType::Lob { size, binary: true },
            other => other,
        };
        let mut def = ColumnDef::new(column_name.clone(), ty);
        if serial {
            def.nullable = false;
            def.auto_increment = true;
            unique_columns.push((None, vec![column_name.clone()]));
        }
        if def.ty.is_string() && !def.ty.is_binary_string() {
            def.collation = match (&column_collation, &column_charset) {
                (Some(coll), Some(cs)) => {
                    if !types::collation_matches_charset(coll, cs) {
                        bail!(UnknownCollation, "COLLATION '{coll}' is not valid for CHARACTER SET '{cs}'");
                    }
                    Some(coll.clone())
                }
                (Some(coll), None) => Some(coll.clone()),
                // Only a character set: kept as its name (its default collation applies), so
                // that SHOW CREATE TABLE says CHARACTER SET alone, as MySQL does.
                (None, Some(cs)) if *cs != charset => Some(cs.clone()),
                // The table's collation decides how the column compares; the catalog's
                // comparison reads only the column's own, so a binary one is written down.
                _ if Collation::from_name(&collation) == Some(Collation::Binary) => Some(collation.clone()),
                _ => None,
            };
        }
        let mut default_ast = None;
        for o in &c.options {
            match &o.option {
                ColumnOption::Null => def.nullable = true,
                ColumnOption::NotNull => def.nullable = false,
                ColumnOption::Default(e) => default_ast = Some(e.clone()),
                ColumnOption::OnUpdate(e) => {
                    let ok = match e {
                        ast::Expr::Function(f) => matches!(f.name.to_string().to_ascii_uppercase().as_str(), "CURRENT_TIMESTAMP" | "NOW" | "LOCALTIME" | "LOCALTIMESTAMP"),
                        ast::Expr::Identifier(i) => i.value.eq_ignore_ascii_case("CURRENT_TIMESTAMP"),
                        _ => false,
                    };
                    if !ok || !matches!(def.ty, ColumnType::DateTime { .. } | ColumnType::Timestamp { .. }) {
                        bail!(InvalidDefault, "Invalid ON UPDATE clause for '{column_name}' column");
                    }
                    def.on_update_now = true;
                }
                ColumnOption::PrimaryKey(_) => {
                    if primary_declared {
                        bail!(MultiplePrimaryKey, "Multiple primary key defined");
                    }
                    primary_declared = true;
                    primary_key = vec![columns.len()];
                }
                ColumnOption::Unique(_) => unique_columns.push((None, vec![column_name.clone()])),
                ColumnOption::DialectSpecific(tokens) => {
                    let auto = tokens.iter().any(|t| matches!(t, Token::Word(w) if w.value.eq_ignore_ascii_case("AUTO_INCREMENT")));
                    if !auto {
                        return Err(Error::not_supported(format!("the column option {}", tokens.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(" "))));
                    }
                    if !def.ty.is_integer() || def.ty == ColumnType::Year {
                        bail!(WrongColumnSpec, "Incorrect column specifier for column '{column_name}'");
                    }
                    def.auto_increment = true;
                }
                ColumnOption::Comment(text) => def.comment = text.clone(),
                ColumnOption::CharacterSet(_) | ColumnOption::Collation(_) => {}
                ColumnOption::ForeignKey(fk) => foreign_keys.push(ForeignKeyDef {
                    name: String::new(),
                    columns: vec![column_name.clone()],
                    ref_table: fk.foreign_table.to_string().replace('`', ""),
                    ref_columns: fk.referred_columns.iter().map(|i| i.value.clone()).collect(),
                    on_delete: fk.on_delete.map(|a| a.to_string()),
                    on_update: fk.on_update.map(|a| a.to_string()),
                }),
                // CHECK constraints are accepted and not enforced (as MySQL before 8.0.16).
                ColumnOption::Check(_) => {}
                ColumnOption::Generated { .. } | ColumnOption::Materialized(_) | ColumnOption::Alias(_) | ColumnOption::Ephemeral(_) => {
                    return Err(Error::not_supported("generated columns"));
                }
                ColumnOption::Invisible => return Err(Error::not_supported("invisible columns")),
                other => return Err(Error::not_supported(format!("the column option {other}"))),
            }
        }
        if def.auto_increment {
            def.nullable = false;
        }
        if let Some(e) = default_ast {
            if def.auto_increment {
                bail!(InvalidDefault, "Invalid default value for '{column_name}'");
            }
            def.default = default_value(ctx, &e, &def)?;
        }
        columns.push(def);
    }
    if columns.is_empty() {
        bail!(TableMustHaveColumns, "A table must have at least 1 column");
    }
    let find = |columns: &[ColumnDef], name: &str| -> Result<usize, Error> {
        columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| err!(KeyColumnMissing, "Key column '{name}' doesn't exist in table"))
    };
    let mut next_index_id = 1u32;
    let mut index_names: Vec<String> = vec!["PRIMARY".into()];
    let mut add_index = |name: Option<String>, cols: Vec<usize>, kind: IndexKind, columns: &[ColumnDef], indexes: &mut Vec<IndexDef>| -> Result<(), Error> {
        let name = match name {
            Some(n) => {
                if index_names.iter().any(|x| x.eq_ignore_ascii_case(&n)) {
                    bail!(DuplicateKeyName, "Duplicate key name '{n}'");
                }
                n
            }
            None => {
                // MySQL names an unnamed index after its first column, then _2, _3…
                let base = columns[cols[0]].name.clone();
                let mut candidate = base.clone();
                let mut n = 2;
                while index_names.iter().any(|x| x.eq_ignore_ascii_case(&candidate)) {
                    candidate = format!("{base}_{n}");
                    n += 1;
                }
                candidate
            }
        };
        index_names.push(name.clone());
        indexes.push(IndexDef { id: next_index_id, name, columns: cols, kind, state: IndexState::Ready, table: None });
        next_index_id += 1;
        Ok(())
    };
    for (name, cols) in std::mem::take(&mut unique_columns) {
        let idx: Vec<usize> = cols.iter().map(|c| find(&columns, c)).collect::<Result<_, _>>()?;
        add_index(name, idx, IndexKind::Unique, &columns, &mut indexes)?;
    }
    for constraint in &ct.constraints {
        match constraint {
            TableConstraint::PrimaryKey(pk) => {
                if primary_declared {
                    bail!(MultiplePrimaryKey, "Multiple primary key defined");
                }
                primary_declared = true;
                primary_key = ident_list(&pk.columns)?.iter().map(|c| find(&columns, c)).collect::<Result<_, _>>()?;
            }
            TableConstraint::Unique(u) => {
                let cols: Vec<usize> = ident_list(&u.columns)?.iter().map(|c| find(&columns, c)).collect::<Result<_, _>>()?;
                let name = u.index_name.as_ref().or(u.name.as_ref()).map(|i| i.value.clone());
                add_index(name, cols, IndexKind::Unique, &columns, &mut indexes)?;
            }
            TableConstraint::Index(ix) => {
                let cols: Vec<usize> = ident_list(&ix.columns)?.iter().map(|c| find(&columns, c)).collect::<Result<_, _>>()?;
                add_index(ix.name.as_ref().map(|i| i.value.clone()), cols, IndexKind::Ordered, &columns, &mut indexes)?;
            }
            TableConstraint::ForeignKey(fk) => {
                for c in &fk.columns {
                    find(&columns, &c.value)?;
                }
                let cols: Vec<String> = fk.columns.iter().map(|c| c.value.clone()).collect();
                let name = fk.name.as_ref().map(|n| n.value.clone()).unwrap_or_default();
                // MySQL adds an index on the referencing columns unless one starts with them.
                let col_idx: Vec<usize> = cols.iter().map(|c| find(&columns, c)).collect::<Result<_, _>>()?;
                let covered = primary_key.starts_with(&col_idx) || indexes.iter().any(|ix| ix.columns.starts_with(&col_idx));
                if !covered {
                    let index_name = fk.index_name.as_ref().map(|i| i.value.clone()).or_else(|| (!name.is_empty()).then(|| name.clone()));
                    add_index(index_name, col_idx, IndexKind::Ordered, &columns, &mut indexes)?;
                }
                foreign_keys.push(ForeignKeyDef {
                    name,
                    columns: cols,
                    ref_table: fk.foreign_table.to_string().replace('`', ""),
                    ref_columns: fk.referred_columns.iter().map(|i| i.value.clone()).collect(),
                    on_delete: fk.on_delete.map(|a| a.to_string()),
                    on_update: fk.on_update.map(|a| a.to_string()),
                });
            }
            TableConstraint::Check(_) => {}
            TableConstraint::FulltextOrSpatial(_) => return Err(Error::not_supported("FULLTEXT and SPATIAL indexes")),
            other => return Err(Error::not_supported(format!("the constraint {other}"))),
        }
    }
    // Name foreign keys as MySQL does: <table>_ibfk_<n>.
    let mut fk_number = 1;
    for fk in &mut foreign_keys {
        if fk.name.is_empty() {
            fk.name = format!("{name}_ibfk_{fk_number}");
            fk_number += 1;
        }
    }
    // Primary key columns are NOT NULL, as in MySQL; BLOB/TEXT cannot be keys.
    for &k in &primary_key {
        columns[k].nullable = false;
        if matches!(columns[k].ty, ColumnType::Lob { .. }) {
            bail!(KeyTooLong, "BLOB/TEXT column '{}' used in key specification without a key length", columns[k].name);
        }
    }
    let hidden_primary_key = primary_key.is_empty();
    if hidden_primary_key {
        let mut pk = ColumnDef::new(HIDDEN_PK_NAME, ColumnType::bigint_unsigned());
        pk.nullable = false;
        pk.hidden = true;
        columns.push(pk);
        primary_key = vec![columns.len() - 1];
    }
    let partition_key = match partitioning {
        Some(spec) if !spec.columns.is_empty() => {
            if hidden_primary_key {
                bail!(SyntaxError, "A PRIMARY KEY must include all columns in the table's partitioning function");
            }
            spec.columns.iter().map(|c| find(&columns, c)).collect::<Result<_, _>>()?
        }
        _ => primary_key.clone(),
    };
    let partitions = match partitioning.and_then(|p| p.partitions) {
        Some(0) => bail!(SyntaxError, "Number of partitions = 0 is not an allowed value"),
        Some(n) => vec![NodeGroupId::default(); n as usize],
        None => Vec::new(),
    };
    let table = TableDef {
        id: TableId(0),
        version: 0,
        database,
        name,
        columns,
        primary_key,
        hidden_primary_key,
        indexes,
        foreign_keys,
        partition_key,
        partitions,
        explicit_partitioning: partitioning.is_some(),
        auto_increment_start,
        charset,
        collation,
        engine,
        comment,
        layouts: Default::default(),
    };
    table.validate()?;
    Ok((table, ct.if_not_exists))
}

fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A default value as SHOW CREATE TABLE prints it: quoted, as MySQL quotes even numbers.
fn default_text(value: &Value, ty: &ColumnType) -> String {
    match value {
        Value::Null => "NULL".into(),
        Value::Bytes(b) if std::str::from_utf8(b).is_err() || matches!(ty, ColumnType::Char { binary: true, .. }) => {
            let mut s = String::from("0x");
            for byte in b {
                s.push_str(&format!("{byte:02X}"));
            }
            s
        }
        Value::Decimal(d) => {
            let scale = match ty {
                ColumnType::Decimal { scale, .. } => *scale,
                _ => d.scale(),
            };
            format!("'{}'", d.rescale(scale).unwrap_or(*d))
        }
        Value::DateTime(dt) => format!("'{}'", dt.format(ty.fsp())),
        Value::Time(t) => format!("'{}'", t.format(ty.fsp())),
        other => cairn_common::value::quote_string(&other.to_text()),
    }
}

/// `SHOW CREATE TABLE` in MySQL 8's format.
pub(crate) fn show_create_table(t: &TableDef, auto_increment_next: Option<u64>) -> String {
    let mut lines = Vec::new();
    for c in t.columns.iter().filter(|c| !c.hidden) {
        let mut line = format!("  {} {}", quote_ident(&c.name), c.ty);
        if let Some(coll) = &c.collation {
            // MySQL 8 names the character set whenever the column's collation differs from
            // the table's, and the collation when it was given explicitly.
            if let Some(cs) = types::normalize_charset(coll) {
                line.push_str(&format!(" CHARACTER SET {cs}"));
            } else if !coll.eq_ignore_ascii_case(&t.collation) {
                let cs = types::charset_of_collation(types::collation_id(coll).unwrap_or(255));
                line.push_str(&format!(" CHARACTER SET {cs} {}", portable_collate(coll, " ")));
            }
        }
        if !c.nullable {
            line.push_str(" NOT NULL");
        } else if matches!(c.ty, ColumnType::Timestamp { .. }) {
            line.push_str(" NULL");
        }
        match &c.default {
            ColumnDefault::Value(v) => line.push_str(&format!(" DEFAULT {}", default_text(v, &c.ty))),
            ColumnDefault::CurrentTimestamp => {
                let fsp = c.ty.fsp();
                line.push_str(&if fsp > 0 { format!(" DEFAULT CURRENT_TIMESTAMP({fsp})") } else { " DEFAULT CURRENT_TIMESTAMP".into() });
            }
            ColumnDefault::None => {
                if c.nullable && !matches!(c.ty, ColumnType::Lob { .. }) && !c.auto_increment {
                    line.push_str(" DEFAULT NULL");
                }
            }
        }
        if c.on_update_now {
            let fsp = c.ty.fsp();
            line.push_str(&if fsp > 0 { format!(" ON UPDATE CURRENT_TIMESTAMP({fsp})") } else { " ON UPDATE CURRENT_TIMESTAMP".into() });
        }
        if c.auto_increment {
            line.push_str(" AUTO_INCREMENT");
        }
        if !c.comment.is_empty() {
            line.push_str(&format!(" COMMENT {}", cairn_common::value::quote_string(&c.comment)));
        }
        lines.push(line);
    }
    let names = |cols: &[usize]| cols.iter().map(|&i| quote_ident(&t.columns[i].name)).collect::<Vec<_>>().join(",");
    if !t.hidden_primary_key {
        lines.push(format!("  PRIMARY KEY ({})", names(&t.primary_key)));
    }
    for ix in t.indexes.iter().filter(|i| i.kind == IndexKind::Unique) {
        lines.push(format!("  UNIQUE KEY {} ({})", quote_ident(&ix.name), names(&ix.columns)));
    }
    for ix in t.indexes.iter().filter(|i| i.kind == IndexKind::Ordered) {
        lines.push(format!("  KEY {} ({})", quote_ident(&ix.name), names(&ix.columns)));
    }
    for fk in &t.foreign_keys {
        let cols = fk.columns.iter().map(|c| quote_ident(c)).collect::<Vec<_>>().join(", ");
        let refs = fk.ref_columns.iter().map(|c| quote_ident(c)).collect::<Vec<_>>().join(", ");
        let table = fk.ref_table.split('.').map(quote_ident).collect::<Vec<_>>().join(".");
        let mut line = format!("  CONSTRAINT {} FOREIGN KEY ({cols}) REFERENCES {table} ({refs})", quote_ident(&fk.name));
        if let Some(a) = &fk.on_delete {
            line.push_str(&format!(" ON DELETE {a}"));
        }
        if let Some(a) = &fk.on_update {
            line.push_str(&format!(" ON UPDATE {a}"));
        }
        lines.push(line);
    }
    let mut out = format!("CREATE TABLE {} (\n{}\n) ENGINE={}", quote_ident(&t.name), lines.join(",\n"), t.engine);
    let next = auto_increment_next.or((t.auto_increment_start > 1).then_some(t.auto_increment_start));
    if let (Some(n), Some(_)) = (next, t.auto_increment_column())
        && n > 1 {
            out.push_str(&format!(" AUTO_INCREMENT={n}"));
        }
    out.push_str(&format!(" DEFAULT CHARSET={}", t.charset));
    if types::default_collation(&t.charset) != Some(t.collation.as_str()) || t.charset == "utf8mb4" {
        out.push_str(&format!(" {}", portable_collate(&t.collation, "=")));
    }
    if !t.comment.is_empty() {
        out.push_str(&format!(" COMMENT={}", cairn_common::value::quote_string(&t.comment)));
    }
    if t.explicit_partitioning {
        let cols = t.partition_key.iter().map(|&i| quote_ident(&t.columns[i].name)).collect::<Vec<_>>().join(",");
        out.push_str(&format!("\n/*!50100 PARTITION BY KEY ({cols})\nPARTITIONS {} */", t.partitions.len()));
    }
    out
}

/// `SHOW CREATE DATABASE`.
pub(crate) fn show_create_database(name: &str, charset: &str, collation: &str, if_not_exists: bool) -> String {
    let mut out = format!(
        "CREATE DATABASE {}{} /*!40100 DEFAULT CHARACTER SET {charset}",
        if if_not_exists { "/*!32312 IF NOT EXISTS*/ " } else { "" },
        quote_ident(name)
    );
    let named = types::default_collation(charset) != Some(collation) || charset == "utf8mb4";
    if named && mariadb_stand_in(collation).is_none() {
        out.push_str(&format!(" COLLATE {collation}"));
    }
    out.push_str(" */");
    if named && mariadb_stand_in(collation).is_some() {
        // Comments cannot nest, so a MySQL 8-only collation leaves the `/*!40100 … */` comment
        // and follows it in its own (see `portable_collate`).
        out.push_str(&format!(" {}", portable_collate(collation, " ")));
    }
    out.push_str(" /*!80016 DEFAULT ENCRYPTION='N' */");
    out
}

/// What MariaDB uses instead of a collation that only MySQL 8 has: `Some("")` for the
/// character set's default (MariaDB's `utf8mb4_general_ci` in place of `utf8mb4_0900_ai_ci`),
/// `Some(name)` for the nearest MariaDB collation, `None` for a collation both servers know.
fn mariadb_stand_in(collation: &str) -> Option<&'static str> {
    match collation.to_ascii_lowercase().as_str() {
        "utf8mb4_0900_ai_ci" => Some(""),
        // Both are case- and accent-sensitive; utf8mb4_bin is MariaDB's nearest.
        "utf8mb4_0900_as_cs" | "utf8mb4_0900_bin" => Some("utf8mb4_bin"),
        _ => None,
    }
}

/// A `COLLATE` clause (`separator` is `=` for a table option, a space for a column or a
/// database) that loads into MySQL 8 and into MariaDB 10.11 alike. A collation both know is
/// printed as MySQL 8 prints it. The `utf8mb4_0900_*` collations, which MariaDB before 11.4
/// refuses (error 1273), go into a `/*!80000 … */` comment, which MySQL 8 and Cairn execute
/// and MariaDB skips (it ignores MySQL 5.7+ executable comments), followed by a MariaDB-only
/// `/*M!100100 … */` comment naming MariaDB's nearest collation where the character set's
/// default is not near enough. The reasoning is in docs/sql.md ("Collations in dumps").
fn portable_collate(collation: &str, separator: &str) -> String {
    match mariadb_stand_in(collation) {
        None => format!("COLLATE{separator}{collation}"),
        Some("") => format!("/*!80000 COLLATE{separator}{collation} */"),
        Some(near) => format!("/*!80000 COLLATE{separator}{collation} */ /*M!100100 COLLATE{separator}{near} */"),
    }
}

/// The `Type` column of DESCRIBE / SHOW COLUMNS.
pub(crate) fn describe_type(ty: &ColumnType) -> String {
    ty.to_string()
}

/// The `Key` column of DESCRIBE: PRI, UNI or MUL.
pub(crate) fn describe_key(t: &TableDef, column: usize) -> &'static str {
    if !t.hidden_primary_key && t.primary_key.contains(&column) {
        return "PRI";
    }
    for ix in &t.indexes {
        if ix.columns.first() == Some(&column) {
            return if ix.kind == IndexKind::Unique && ix.columns.len() == 1 { "UNI" } else { "MUL" };
        }
    }
    ""
}

/// The `Default` column of DESCRIBE.
pub(crate) fn describe_default(c: &ColumnDef) -> Value {
    match &c.default {
        ColumnDefault::None => Value::Null,
        ColumnDefault::CurrentTimestamp => {
            let fsp = c.ty.fsp();
            Value::text(if fsp > 0 { format!("CURRENT_TIMESTAMP({fsp})") } else { "CURRENT_TIMESTAMP".into() })
        }
        ColumnDefault::Value(Value::Null) => Value::Null,
        ColumnDefault::Value(v) => Value::text(match v {
            Value::Decimal(d) => match c.ty {
                ColumnType::Decimal { scale, .. } => d.rescale(scale).unwrap_or(*d).to_string(),
                _ => d.to_string(),
            },
            Value::DateTime(dt) => dt.format(c.ty.fsp()),
            other => other.to_text().into_owned(),
        }),
    }
}

/// The `Extra` column of DESCRIBE.
pub(crate) fn describe_extra(c: &ColumnDef) -> String {
    let mut parts = Vec::new();
    if c.auto_increment {
        parts.push("auto_increment".to_string());
    }
    if c.default == ColumnDefault::CurrentTimestamp {
        parts.push("DEFAULT_GENERATED".to_string());
    }
    if c.on_update_now {
        let fsp = c.ty.fsp();
        parts.push(if fsp > 0 { format!("on update CURRENT_TIMESTAMP({fsp})") } else { "on update CURRENT_TIMESTAMP".into() });
    }
    parts.join(" ")
}

/// The collation a column's values compare under, by name (for SHOW FULL COLUMNS).
pub(crate) fn column_collation_name(t: &TableDef, c: &ColumnDef) -> Option<String> {
    if !c.ty.is_string() || c.ty.is_binary_string() {
        return None;
    }
    Some(match &c.collation {
        Some(name) => types::default_collation(name).map_or_else(|| name.clone(), str::to_string),
        None => t.collation.clone(),
    })
}

/// Checks a CREATE DATABASE's character set and collation; returns them normalized.
pub(crate) fn database_charset(charset: Option<&str>, collation: Option<&str>, server: (&str, &str)) -> Result<(String, String), Error> {
    let cs = match charset {
        Some(c) => Some(types::normalize_charset(c).ok_or_else(|| err!(UnknownCharacterSet, "Unknown character set: '{c}'"))?),
        None => None,
    };
    let coll = match collation {
        Some(c) => Some(types::normalize_collation(c).ok_or_else(|| err!(UnknownCollation, "Unknown collation: '{c}'"))?),
        None => None,
    };
    Ok(match (cs, coll) {
        (Some(cs), Some(coll)) => {
            if !types::collation_matches_charset(coll, cs) {
                return Err(Error::new(ErrorKind::UnknownCollation, format!("COLLATION '{coll}' is not valid for CHARACTER SET '{cs}'")));
            }
            (cs.to_string(), coll.to_string())
        }
        (Some(cs), None) => (cs.to_string(), types::default_collation(cs).unwrap_or("utf8mb4_0900_ai_ci").to_string()),
        (None, Some(coll)) => (types::charset_of_collation(types::collation_id(coll).unwrap_or(255)).to_string(), coll.to_string()),
        (None, None) => (server.0.to_string(), server.1.to_string()),
    })
}
