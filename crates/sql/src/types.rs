//! Result types of expressions, MySQL's column metadata, and the conversion of result values
//! to their declared types.
//!
//! MySQL derives a type for every expression of a select list (`1+1` is BIGINT, `SUM(int)` is
//! DECIMAL, `CONCAT(…)` is VARCHAR, `NOW()` is DATETIME) and clients decode values by it. The
//! planner infers an [`SqlType`] for each compiled expression with the same rules, and
//! [`conform`] converts each value to that type when it leaves, so a value never disagrees with
//! its column definition.

use cairn_common::catalog::{ColumnDef, ColumnDefault, TableDef};
use cairn_common::collation::Collation;
use cairn_common::decimal::{Decimal, MAX_PRECISION};
use cairn_common::types::{BINARY_CHARSET, ColumnType, IntWidth, LobSize, column_flag};
use cairn_common::Value;

use crate::outcome::ColumnMeta;

/// MySQL's PART_KEY_FLAG: the column is part of some key (sent with PRI_KEY and friends).
pub(crate) const PART_KEY_FLAG: u16 = 16384;
/// MySQL's NOT_FIXED_DEC: "decimals are not fixed" in column metadata.
pub(crate) const NOT_FIXED_DECIMALS: u8 = 31;

/// The inferred type of an expression.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SqlType {
    /// None: the NULL type.
    pub ty: Option<ColumnType>,
    pub nullable: bool,
    /// Display length when it differs from the type's (MySQL's `max_length`: `SELECT 1` is 1).
    pub length: Option<u32>,
    /// Decimals when they differ from the type's (31 for computed strings and doubles).
    pub decimals: Option<u8>,
    /// How values of this type compare and sort.
    pub collation: Collation,
}

impl SqlType {
    pub fn of(ty: ColumnType, nullable: bool) -> SqlType {
        let collation = ty.collation();
        SqlType { ty: Some(ty), nullable, length: None, decimals: None, collation }
    }

    pub fn null() -> SqlType {
        SqlType { ty: None, nullable: true, length: Some(0), decimals: Some(0), collation: Collation::default() }
    }

    pub fn bigint(unsigned: bool, nullable: bool) -> SqlType {
        SqlType::of(ColumnType::Int { width: IntWidth::Big, unsigned, display: None }, nullable)
    }

    pub fn decimal(precision: u8, scale: u8, nullable: bool) -> SqlType {
        let precision = precision.clamp(scale.max(1), MAX_PRECISION);
        SqlType::of(ColumnType::Decimal { precision, scale }, nullable)
    }

    pub fn double(nullable: bool) -> SqlType {
        let mut t = SqlType::of(ColumnType::Double, nullable);
        t.decimals = Some(NOT_FIXED_DECIMALS);
        t
    }

    /// A computed character string of at most `chars` characters.
    pub fn varchar(chars: u32, binary: bool, nullable: bool) -> SqlType {
        let ty = if chars > 16_383 && !binary || chars > 65_535 {
            ColumnType::Lob { size: if chars > 4_194_303 { LobSize::Long } else { LobSize::Medium }, binary }
        } else {
            ColumnType::VarChar { length: chars, binary }
        };
        let mut t = SqlType::of(ty, nullable);
        t.decimals = Some(NOT_FIXED_DECIMALS);
        t
    }

    pub fn datetime(fsp: u8, nullable: bool) -> SqlType {
        SqlType::of(ColumnType::DateTime { fsp }, nullable)
    }

    pub fn with_length(mut self, length: u32) -> SqlType {
        self.length = Some(length);
        self
    }

    pub fn nullable(mut self, nullable: bool) -> SqlType {
        self.nullable = nullable;
        self
    }

    pub fn from_column(column: &ColumnDef) -> SqlType {
        let mut t = SqlType::of(column.ty.clone(), column.nullable);
        t.collation = column.comparison();
        t
    }

    pub fn kind(&self) -> Kind {
        match &self.ty {
            None => Kind::Null,
            Some(ColumnType::Int { unsigned, .. }) => Kind::Int { unsigned: *unsigned },
            Some(ColumnType::Year) => Kind::Int { unsigned: true },
            Some(ColumnType::Decimal { precision, scale }) => Kind::Decimal { precision: *precision, scale: *scale },
            Some(ColumnType::Float | ColumnType::Double) => Kind::Double,
            Some(ColumnType::Date | ColumnType::DateTime { .. } | ColumnType::Timestamp { .. } | ColumnType::Time { .. }) => {
                Kind::Temporal
            }
            Some(ty) if ty.is_binary_string() => Kind::String { binary: true },
            Some(_) => Kind::String { binary: false },
        }
    }

    pub fn is_string(&self) -> bool {
        matches!(self.kind(), Kind::String { .. })
    }

    /// Length in characters of a string type (or its display width otherwise).
    pub fn char_length(&self) -> u32 {
        if let Some(l) = self.length {
            return l;
        }
        match &self.ty {
            None => 0,
            Some(ColumnType::Char { length, .. } | ColumnType::VarChar { length, .. }) => *length,
            Some(ColumnType::Lob { size, .. }) => size.max_bytes().min(u32::MAX as u64) as u32,
            Some(ColumnType::Enum { values }) => values.iter().map(|v| v.chars().count() as u32).max().unwrap_or(0),
            Some(ColumnType::Set { values }) => cairn_common::set_value::max_chars(values),
            Some(ty) => ty.display_length(),
        }
    }

    /// Digits before the point of an exact numeric type (a literal's own digits when known).
    pub fn integer_digits(&self) -> u8 {
        if let (Some(ColumnType::Int { .. }), Some(length)) = (&self.ty, self.length) {
            return length.clamp(1, 20) as u8;
        }
        match &self.ty {
            Some(ColumnType::Int { width, unsigned, .. }) => match (width, unsigned) {
                (IntWidth::Tiny, _) => 3,
                (IntWidth::Small, _) => 5,
                (IntWidth::Medium, false) => 7,
                (IntWidth::Medium, true) => 8,
                (IntWidth::Int, _) => 10,
                (IntWidth::Big, false) => 19,
                (IntWidth::Big, true) => 20,
            },
            Some(ColumnType::Year) => 4,
            Some(ColumnType::Decimal { precision, scale }) => precision - scale,
            _ => 17,
        }
    }

}

/// The broad classes MySQL's type rules distinguish.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Kind {
    Null,
    Int { unsigned: bool },
    Decimal { precision: u8, scale: u8 },
    Double,
    String { binary: bool },
    Temporal,
}

/// The result type of `a op b` for + - * (MySQL: both integers give BIGINT, unsigned if either
/// is; an exact and a decimal give DECIMAL; anything else gives DOUBLE).
pub(crate) fn arithmetic_type(a: &SqlType, b: &SqlType, multiply: bool) -> SqlType {
    let nullable = a.nullable || b.nullable;
    match (a.kind(), b.kind()) {
        (Kind::Null, _) | (_, Kind::Null) => SqlType::null(),
        (Kind::Int { unsigned: ua }, Kind::Int { unsigned: ub }) => {
            let len = if multiply { a.char_length() + b.char_length() } else { a.char_length().max(b.char_length()) + 1 };
            SqlType::bigint(ua || ub, nullable).with_length(len.min(20))
        }
        (Kind::Int { .. } | Kind::Decimal { .. }, Kind::Int { .. } | Kind::Decimal { .. }) => {
            let (sa, sb) = (a.scale_exact(), b.scale_exact());
            let (ia, ib) = (a.integer_digits(), b.integer_digits());
            let (int_digits, scale) = if multiply {
                (ia.saturating_add(ib), sa.saturating_add(sb))
            } else {
                (ia.max(ib).saturating_add(1), sa.max(sb))
            };
            SqlType::decimal(int_digits.saturating_add(scale), scale.min(30), nullable)
        }
        _ => SqlType::double(nullable),
    }
}

impl SqlType {
    /// Scale of an exact type (0 for integers).
    pub fn scale_exact(&self) -> u8 {
        match &self.ty {
            Some(ColumnType::Decimal { scale, .. }) => *scale,
            _ => 0,
        }
    }
}

/// The common type of several branches (CASE, IF, COALESCE, UNION-like): strings win over
/// numbers, doubles over decimals over integers; temporals stay temporal only if all agree.
pub(crate) fn common_type(types: &[SqlType]) -> SqlType {
    let non_null: Vec<&SqlType> = types.iter().filter(|t| t.ty.is_some()).collect();
    let nullable = types.iter().any(|t| t.nullable);
    let Some(first) = non_null.first() else { return SqlType::null() };
    if non_null.iter().all(|t| t.ty == first.ty) {
        let mut t = (*first).clone();
        t.nullable = nullable;
        return t;
    }
    let kinds: Vec<Kind> = non_null.iter().map(|t| t.kind()).collect();
    if kinds.iter().any(|k| matches!(k, Kind::String { .. } | Kind::Temporal)) {
        let binary = kinds.iter().any(|k| matches!(k, Kind::String { binary: true }));
        let chars = non_null.iter().map(|t| t.char_length()).max().unwrap_or(0);
        let mut t = SqlType::varchar(chars, binary, nullable);
        t.collation = non_null.iter().find(|t| t.is_string()).map_or(Collation::default(), |t| t.collation);
        return t;
    }
    if kinds.contains(&Kind::Double) {
        return SqlType::double(nullable);
    }
    if kinds.iter().all(|k| matches!(k, Kind::Int { .. })) {
        let unsigned = kinds.iter().all(|k| matches!(k, Kind::Int { unsigned: true }));
        return SqlType::bigint(unsigned, nullable);
    }
    let scale = non_null.iter().map(|t| t.scale_exact()).max().unwrap_or(0);
    let int_digits = non_null.iter().map(|t| t.integer_digits()).max().unwrap_or(1);
    SqlType::decimal(int_digits.saturating_add(scale), scale, nullable)
}

/// Where a result column comes from, for its metadata.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ColumnOrigin {
    pub schema: String,
    /// The table alias used in the query.
    pub table: String,
    pub org_table: String,
    pub org_name: String,
    /// Key, auto-increment and default flags of the column.
    pub flags: u16,
    /// The column's collation id (used when results are not converted).
    pub collation_id: u16,
}

impl ColumnOrigin {
    pub fn of(table: &TableDef, alias: &str, column_index: usize) -> ColumnOrigin {
        let column = &table.columns[column_index];
        let mut flags = 0;
        if table.primary_key.contains(&column_index) && !table.hidden_primary_key {
            flags |= column_flag::PRI_KEY | PART_KEY_FLAG;
        }
        for index in &table.indexes {
            if index.columns.contains(&column_index) {
                flags |= PART_KEY_FLAG;
                if index.columns.first() == Some(&column_index) {
                    flags |= match index.kind {
                        cairn_common::catalog::IndexKind::Unique if index.columns.len() == 1 => column_flag::UNIQUE_KEY,
                        _ => column_flag::MULTIPLE_KEY,
                    };
                }
            }
        }
        if column.auto_increment {
            flags |= column_flag::AUTO_INCREMENT;
        }
        if !column.nullable && column.default == ColumnDefault::None && !column.auto_increment {
            flags |= column_flag::NO_DEFAULT_VALUE;
        }
        if column.on_update_now {
            flags |= column_flag::ON_UPDATE_NOW;
        }
        let collation_name = column.collation.clone().unwrap_or_else(|| table.collation.clone());
        // A column given only a character set holds its name: use its default collation.
        let collation_name = default_collation(&collation_name).map_or(collation_name, str::to_string);
        ColumnOrigin {
            schema: table.database.clone(),
            table: alias.to_string(),
            org_table: table.name.clone(),
            org_name: column.name.clone(),
            flags,
            collation_id: collation_id(&collation_name).unwrap_or(255),
        }
    }
}

/// Bytes per character of a character set, for metadata lengths.
fn max_bytes_per_char(collation_id: u16) -> u32 {
    match charset_of_collation(collation_id) {
        "utf8mb4" => 4,
        "utf8mb3" => 3,
        _ => 1,
    }
}

/// Builds the metadata of a result column.
///
/// `result_collation` is the session's `character_set_results` as a collation id (0 when the
/// client asked for no conversion, `SET character_set_results = NULL`).
pub(crate) fn column_meta(name: &str, ty: &SqlType, origin: Option<&ColumnOrigin>, result_collation: u16) -> ColumnMeta {
    let Some(column_type) = &ty.ty else {
        return ColumnMeta {
            schema: String::new(),
            table: String::new(),
            org_table: String::new(),
            name: name.to_string(),
            org_name: String::new(),
            ty: None,
            nullable: true,
            flags: column_flag::BINARY,
            charset: BINARY_CHARSET,
            length: 0,
            decimals: 0,
        };
    };
    let text = matches!(ty.kind(), Kind::String { binary: false });
    let charset = if text {
        if result_collation != 0 { result_collation } else { origin.map_or(255, |o| o.collation_id) }
    } else {
        BINARY_CHARSET
    };
    let mut flags = column_type.type_flags();
    if !ty.nullable {
        flags |= column_flag::NOT_NULL;
    }
    let mut length = ty.length.unwrap_or_else(|| column_type.display_length());
    if text && ty.length.is_none() {
        // display_length counts 4 bytes per character (utf8mb4); scale to the result charset.
        if !matches!(column_type, ColumnType::Lob { .. }) {
            length = length / 4 * max_bytes_per_char(charset);
        }
    } else if text {
        length = length.saturating_mul(max_bytes_per_char(charset));
    }
    let decimals = ty.decimals.unwrap_or_else(|| column_type.decimals());
    match origin {
        Some(o) => {
            flags |= o.flags;
            ColumnMeta {
                schema: o.schema.clone(),
                table: o.table.clone(),
                org_table: o.org_table.clone(),
                name: name.to_string(),
                org_name: o.org_name.clone(),
                ty: Some(column_type.clone()),
                nullable: ty.nullable,
                flags,
                charset,
                length,
                decimals: if ty.decimals.is_none() && text { 0 } else { decimals },
            }
        }
        None => {
            // Expressions: numbers and temporals are flagged BINARY as MySQL does.
            if !text {
                flags |= column_flag::BINARY;
            }
            ColumnMeta {
                schema: String::new(),
                table: String::new(),
                org_table: String::new(),
                name: name.to_string(),
                org_name: String::new(),
                ty: Some(column_type.clone()),
                nullable: ty.nullable,
                flags,
                charset,
                length,
                decimals,
            }
        }
    }
}

/// Converts a result value to its column's declared type (exactly when possible; a value that
/// cannot be represented becomes NULL rather than bytes a client would misread).
pub(crate) fn conform(value: Value, ty: &Option<ColumnType>) -> Value {
    let Some(ty) = ty else { return Value::Null };
    if value.is_null() {
        return value;
    }
    match ty {
        ColumnType::Int { unsigned: true, .. } => match value {
            Value::UInt(_) => value,
            Value::Int(i) if i >= 0 => Value::UInt(i as u64),
            Value::Int(_) => value,
            other => match other.to_u64() {
                Some(u) => Value::UInt(u),
                None => other.to_i64().map_or(Value::Null, Value::Int),
            },
        },
        ColumnType::Int { unsigned: false, .. } | ColumnType::Year => match value {
            Value::Int(_) => value,
            Value::UInt(u) => i64::try_from(u).map_or(Value::UInt(u), Value::Int),
            other => match other.to_i64() {
                Some(i) => Value::Int(i),
                None => other.to_u64().map_or(Value::Null, Value::UInt),
            },
        },
        ColumnType::Decimal { scale, .. } => {
            let d = match value {
                Value::Decimal(d) => d,
                other => match other.to_decimal() {
                    Some(d) => d,
                    None => return Value::Null,
                },
            };
            // Print with the declared scale when that loses nothing (MySQL pads `1.5` to the
            // type's scale, e.g. SUM over DECIMAL(10,2) prints 3.50).
            let rescaled = d.rescale(*scale).filter(|r| r.rescale(d.scale()) == Some(d));
            Value::Decimal(match rescaled {
                Some(r) if d.scale() <= *scale => r,
                _ => d.round(*scale as i32).unwrap_or(d),
            })
        }
        ColumnType::Float | ColumnType::Double => match value {
            Value::Double(_) => value,
            other => other.to_f64().map_or(Value::Null, Value::Double),
        },
        ColumnType::Char { binary: true, .. } | ColumnType::VarChar { binary: true, .. } | ColumnType::Lob { binary: true, .. } => {
            match value {
                Value::Bytes(_) => value,
                other => Value::Bytes(other.to_bytes().into_owned()),
            }
        }
        ColumnType::Char { .. } | ColumnType::VarChar { .. } | ColumnType::Lob { .. } | ColumnType::Enum { .. } | ColumnType::Set { .. } => match value {
            Value::Text(_) | Value::Bytes(_) => value,
            other => Value::Text(other.to_text().into_owned()),
        },
        ColumnType::Date => match value {
            Value::Date(_) => value,
            other => other.to_date().map_or(Value::Null, Value::Date),
        },
        ColumnType::DateTime { .. } | ColumnType::Timestamp { .. } => match value {
            Value::DateTime(_) => value,
            other => other.to_datetime().map_or(Value::Null, Value::DateTime),
        },
        ColumnType::Time { .. } => match value {
            Value::Time(_) => value,
            other => other.to_time().map_or(Value::Null, Value::Time),
        },
    }
}

/// The collations Cairn knows by name, with MySQL's ids and their character sets.
pub(crate) const COLLATIONS: &[(&str, u16, &str, bool)] = &[
    // (name, id, charset, is the charset's default in MySQL 8)
    ("utf8mb4_0900_ai_ci", 255, "utf8mb4", true),
    ("utf8mb4_0900_as_cs", 278, "utf8mb4", false),
    ("utf8mb4_0900_bin", 309, "utf8mb4", false),
    ("utf8mb4_general_ci", 45, "utf8mb4", false),
    ("utf8mb4_bin", 46, "utf8mb4", false),
    ("utf8mb4_unicode_ci", 224, "utf8mb4", false),
    ("utf8mb4_unicode_520_ci", 246, "utf8mb4", false),
    ("utf8mb3_general_ci", 33, "utf8mb3", true),
    ("utf8mb3_bin", 83, "utf8mb3", false),
    ("utf8mb3_unicode_ci", 192, "utf8mb3", false),
    ("latin1_swedish_ci", 8, "latin1", true),
    ("latin1_general_ci", 48, "latin1", false),
    ("latin1_bin", 47, "latin1", false),
    ("ascii_general_ci", 11, "ascii", true),
    ("ascii_bin", 65, "ascii", false),
    ("binary", 63, "binary", true),
];

/// The character sets Cairn accepts, with a description and their default collation.
pub(crate) const CHARSETS: &[(&str, &str, &str, u32)] = &[
    ("ascii", "US ASCII", "ascii_general_ci", 1),
    ("binary", "Binary pseudo charset", "binary", 1),
    ("latin1", "cp1252 West European", "latin1_swedish_ci", 1),
    ("utf8mb3", "UTF-8 Unicode", "utf8mb3_general_ci", 3),
    ("utf8mb4", "UTF-8 Unicode", "utf8mb4_0900_ai_ci", 4),
];

/// Normalizes a character set name (`utf8` is `utf8mb3`, as in MySQL 8).
pub(crate) fn normalize_charset(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    let lower = if lower == "utf8" { "utf8mb3".to_string() } else { lower };
    CHARSETS.iter().find(|c| c.0 == lower).map(|c| c.0)
}

/// Normalizes a collation name (`utf8_…` is `utf8mb3_…`).
pub(crate) fn normalize_collation(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    let lower = match lower.strip_prefix("utf8_") {
        Some(rest) => format!("utf8mb3_{rest}"),
        None => lower,
    };
    COLLATIONS.iter().find(|c| c.0 == lower).map(|c| c.0)
}

pub(crate) fn collation_id(name: &str) -> Option<u16> {
    let name = normalize_collation(name)?;
    COLLATIONS.iter().find(|c| c.0 == name).map(|c| c.1)
}

pub(crate) fn collation_name(id: u16) -> Option<&'static str> {
    COLLATIONS.iter().find(|c| c.1 == id).map(|c| c.0)
}

pub(crate) fn charset_of_collation(id: u16) -> &'static str {
    COLLATIONS.iter().find(|c| c.1 == id).map_or("utf8mb4", |c| c.2)
}

pub(crate) fn default_collation(charset: &str) -> Option<&'static str> {
    let charset = normalize_charset(charset)?;
    CHARSETS.iter().find(|c| c.0 == charset).map(|c| c.2)
}

/// Whether a collation belongs to a character set.
pub(crate) fn collation_matches_charset(collation: &str, charset: &str) -> bool {
    match (normalize_collation(collation), normalize_charset(charset)) {
        (Some(coll), Some(cs)) => COLLATIONS.iter().any(|c| c.0 == coll && c.2 == cs),
        _ => false,
    }
}

/// A decimal literal's type: DECIMAL(digits, scale).
pub(crate) fn decimal_literal_type(d: &Decimal) -> SqlType {
    let digits = d.mantissa().unsigned_abs().to_string().len() as u8;
    let scale = d.scale();
    let precision = digits.max(scale + 1);
    let length = precision as u32 + u32::from(scale > 0) + u32::from(d.is_negative());
    SqlType::decimal(precision, scale, false).with_length(length)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_types_follow_mysql() {
        let int = SqlType::of(ColumnType::Int { width: IntWidth::Int, unsigned: false, display: None }, false);
        let uint = SqlType::of(ColumnType::Int { width: IntWidth::Int, unsigned: true, display: None }, false);
        let dec = SqlType::decimal(10, 2, false);
        assert_eq!(arithmetic_type(&int, &int, false).ty, Some(ColumnType::bigint()));
        assert_eq!(arithmetic_type(&int, &uint, false).ty, Some(ColumnType::bigint_unsigned()));
        assert_eq!(arithmetic_type(&int, &dec, false).ty, Some(ColumnType::Decimal { precision: 13, scale: 2 }));
        assert_eq!(arithmetic_type(&int, &SqlType::double(false), false).ty, Some(ColumnType::Double));
        assert_eq!(arithmetic_type(&int, &SqlType::null(), false).ty, None);
    }

    #[test]
    fn values_conform_to_declared_types() {
        assert_eq!(conform(Value::Int(5), &Some(ColumnType::bigint_unsigned())), Value::UInt(5));
        assert_eq!(conform(Value::Double(2.0), &Some(ColumnType::bigint())), Value::Int(2));
        assert_eq!(conform(Value::Int(7), &Some(ColumnType::VarChar { length: 5, binary: false })), Value::text("7"));
        let d = Decimal::parse("1.5").unwrap();
        assert_eq!(conform(Value::Decimal(d), &Some(ColumnType::Decimal { precision: 10, scale: 2 })).to_text(), "1.50");
        assert_eq!(conform(Value::Int(1), &None), Value::Null);
    }

    #[test]
    fn expression_metadata() {
        let one = SqlType::bigint(false, false).with_length(1);
        let meta = column_meta("1", &one, None, 255);
        assert_eq!(meta.type_code(), 8);
        assert_eq!(meta.length, 1);
        assert_eq!(meta.charset, 63);
        assert_eq!(meta.flags, column_flag::NOT_NULL | column_flag::BINARY | column_flag::NUM);
        let s = SqlType::varchar(3, false, false);
        let meta = column_meta("abc", &s, None, 255);
        assert_eq!((meta.type_code(), meta.length, meta.charset, meta.decimals), (253, 12, 255, 31));
        let meta = column_meta("NULL", &SqlType::null(), None, 255);
        assert_eq!((meta.type_code(), meta.length, meta.charset), (6, 0, 63));
    }

    #[test]
    fn collation_names_and_ids() {
        assert_eq!(collation_id("utf8mb4_general_ci"), Some(45));
        assert_eq!(collation_id("UTF8_general_ci"), Some(33));
        assert_eq!(default_collation("utf8"), Some("utf8mb3_general_ci"));
        assert!(collation_matches_charset("utf8mb4_bin", "utf8mb4"));
        assert!(!collation_matches_charset("latin1_bin", "utf8mb4"));
    }
}
