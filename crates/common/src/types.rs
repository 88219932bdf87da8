//! SQL column types: what a column may hold, how it is spelled in DDL, and how it is described
//! to MySQL clients.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::collation::Collation;

/// Width of an integer column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum IntWidth {
    Tiny,
    Small,
    Medium,
    Int,
    Big,
}

impl IntWidth {
    pub fn bytes(self) -> usize {
        match self {
            IntWidth::Tiny => 1,
            IntWidth::Small => 2,
            IntWidth::Medium => 3,
            IntWidth::Int => 4,
            IntWidth::Big => 8,
        }
    }

    /// Inclusive range of a signed column of this width.
    pub fn signed_range(self) -> (i64, i64) {
        match self {
            IntWidth::Big => (i64::MIN, i64::MAX),
            w => {
                let bits = w.bytes() * 8;
                (-(1i64 << (bits - 1)), (1i64 << (bits - 1)) - 1)
            }
        }
    }

    /// Largest value of an unsigned column of this width.
    pub fn unsigned_max(self) -> u64 {
        match self {
            IntWidth::Big => u64::MAX,
            w => (1u64 << (w.bytes() * 8)) - 1,
        }
    }

    fn sql_name(self) -> &'static str {
        match self {
            IntWidth::Tiny => "tinyint",
            IntWidth::Small => "smallint",
            IntWidth::Medium => "mediumint",
            IntWidth::Int => "int",
            IntWidth::Big => "bigint",
        }
    }
}

/// Size class of TEXT and BLOB columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LobSize {
    Tiny,
    Normal,
    Medium,
    Long,
}

impl LobSize {
    /// The most bytes the type can hold in MySQL. Cairn stores LOBs inline, so the row-size
    /// limit applies on top of this.
    pub fn max_bytes(self) -> u64 {
        match self {
            LobSize::Tiny => 255,
            LobSize::Normal => 65_535,
            LobSize::Medium => 16_777_215,
            LobSize::Long => 4_294_967_295,
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            LobSize::Tiny => "tiny",
            LobSize::Normal => "",
            LobSize::Medium => "medium",
            LobSize::Long => "long",
        }
    }
}

/// A column's SQL type.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ColumnType {
    /// TINYINT … BIGINT. `display` is kept only for `TINYINT(1)`, which drivers map to a
    /// boolean; MySQL 8 ignores other display widths.
    Int { width: IntWidth, unsigned: bool, display: Option<u8> },
    Decimal { precision: u8, scale: u8 },
    Float,
    Double,
    /// CHAR(n) (`binary = false`, n in characters) or BINARY(n) (`binary = true`, bytes).
    Char { length: u32, binary: bool },
    /// VARCHAR(n) or VARBINARY(n).
    VarChar { length: u32, binary: bool },
    /// TEXT family (`binary = false`) or BLOB family.
    Lob { size: LobSize, binary: bool },
    Date,
    DateTime { fsp: u8 },
    Timestamp { fsp: u8 },
    Time { fsp: u8 },
    Year,
    /// ENUM('a', 'b', …): stored as the 1-based index, 0 for the empty "error" value.
    Enum { values: Vec<String> },
    /// SET('a', 'b', …): any subset of at most 64 members, stored as a bit mask and read as the
    /// members' text in definition order (see `set_value`).
    Set { values: Vec<String> },
}

/// MySQL protocol column type codes (`enum_field_types`).
pub mod type_code {
    pub const DECIMAL: u8 = 0;
    pub const TINY: u8 = 1;
    pub const SHORT: u8 = 2;
    pub const LONG: u8 = 3;
    pub const FLOAT: u8 = 4;
    pub const DOUBLE: u8 = 5;
    pub const NULL: u8 = 6;
    pub const TIMESTAMP: u8 = 7;
    pub const LONGLONG: u8 = 8;
    pub const INT24: u8 = 9;
    pub const DATE: u8 = 10;
    pub const TIME: u8 = 11;
    pub const DATETIME: u8 = 12;
    pub const YEAR: u8 = 13;
    pub const VARCHAR: u8 = 15;
    pub const BIT: u8 = 16;
    pub const JSON: u8 = 245;
    pub const NEWDECIMAL: u8 = 246;
    pub const ENUM: u8 = 247;
    pub const SET: u8 = 248;
    pub const TINY_BLOB: u8 = 249;
    pub const MEDIUM_BLOB: u8 = 250;
    pub const LONG_BLOB: u8 = 251;
    pub const BLOB: u8 = 252;
    pub const VAR_STRING: u8 = 253;
    pub const STRING: u8 = 254;
}

/// MySQL protocol column flags.
pub mod column_flag {
    pub const NOT_NULL: u16 = 1;
    pub const PRI_KEY: u16 = 2;
    pub const UNIQUE_KEY: u16 = 4;
    pub const MULTIPLE_KEY: u16 = 8;
    pub const BLOB: u16 = 16;
    pub const UNSIGNED: u16 = 32;
    pub const ZEROFILL: u16 = 64;
    pub const BINARY: u16 = 128;
    pub const ENUM: u16 = 256;
    pub const AUTO_INCREMENT: u16 = 512;
    pub const TIMESTAMP: u16 = 1024;
    pub const SET: u16 = 2048;
    pub const NO_DEFAULT_VALUE: u16 = 4096;
    pub const ON_UPDATE_NOW: u16 = 8192;
    pub const NUM: u16 = 32768;
}

/// Collation id 63: binary. Binary columns must carry it (CLIENTS.md §2.6).
pub const BINARY_CHARSET: u16 = 63;

/// The largest CHAR length MySQL allows.
pub const MAX_CHAR_LENGTH: u32 = 255;
/// The largest VARCHAR length in characters Cairn accepts (bytes are bounded by the row size).
pub const MAX_VARCHAR_LENGTH: u32 = 65_535;

impl ColumnType {
    pub fn bigint() -> ColumnType {
        ColumnType::Int { width: IntWidth::Big, unsigned: false, display: None }
    }

    pub fn bigint_unsigned() -> ColumnType {
        ColumnType::Int { width: IntWidth::Big, unsigned: true, display: None }
    }

    pub fn is_integer(&self) -> bool {
        matches!(self, ColumnType::Int { .. } | ColumnType::Year)
    }

    pub fn is_unsigned(&self) -> bool {
        matches!(self, ColumnType::Int { unsigned: true, .. })
    }

    pub fn is_numeric(&self) -> bool {
        matches!(self, ColumnType::Int { .. } | ColumnType::Decimal { .. } | ColumnType::Float | ColumnType::Double)
    }

    pub fn is_string(&self) -> bool {
        matches!(self, ColumnType::Char { .. } | ColumnType::VarChar { .. } | ColumnType::Lob { .. } | ColumnType::Enum { .. } | ColumnType::Set { .. })
    }

    /// A binary string type (BINARY, VARBINARY, BLOB): compared bytewise, charset 63.
    pub fn is_binary_string(&self) -> bool {
        matches!(
            self,
            ColumnType::Char { binary: true, .. } | ColumnType::VarChar { binary: true, .. } | ColumnType::Lob { binary: true, .. }
        )
    }

    pub fn is_temporal(&self) -> bool {
        matches!(
            self,
            ColumnType::Date | ColumnType::DateTime { .. } | ColumnType::Timestamp { .. } | ColumnType::Time { .. }
        )
    }

    /// Fractional-second digits of a temporal type (0 otherwise).
    pub fn fsp(&self) -> u8 {
        match self {
            ColumnType::DateTime { fsp } | ColumnType::Timestamp { fsp } | ColumnType::Time { fsp } => *fsp,
            _ => 0,
        }
    }

    /// The protocol type code sent in column definitions.
    pub fn type_code(&self) -> u8 {
        use type_code::*;
        match self {
            ColumnType::Int { width, .. } => match width {
                IntWidth::Tiny => TINY,
                IntWidth::Small => SHORT,
                IntWidth::Medium => INT24,
                IntWidth::Int => LONG,
                IntWidth::Big => LONGLONG,
            },
            ColumnType::Decimal { .. } => NEWDECIMAL,
            ColumnType::Float => FLOAT,
            ColumnType::Double => DOUBLE,
            ColumnType::Char { .. } => STRING,
            ColumnType::VarChar { .. } => VAR_STRING,
            // MySQL sends every TEXT/BLOB size as BLOB (252) and tells them apart by length.
            ColumnType::Lob { .. } => BLOB,
            ColumnType::Date => DATE,
            ColumnType::DateTime { .. } => DATETIME,
            ColumnType::Timestamp { .. } => TIMESTAMP,
            ColumnType::Time { .. } => TIME,
            ColumnType::Year => YEAR,
            // MySQL reports ENUM columns of a result set as STRING with the ENUM flag.
            ColumnType::Enum { .. } => STRING,
            // SET columns likewise: STRING with the SET flag.
            ColumnType::Set { .. } => STRING,
        }
    }

    /// Flags this type contributes to a column definition (nullability and keys are added by
    /// the caller).
    pub fn type_flags(&self) -> u16 {
        use column_flag::*;
        match self {
            ColumnType::Int { unsigned, .. } => NUM | if *unsigned { UNSIGNED } else { 0 },
            ColumnType::Decimal { .. } | ColumnType::Float | ColumnType::Double => NUM,
            ColumnType::Year => NUM | UNSIGNED | ZEROFILL,
            ColumnType::Lob { binary, .. } => BLOB | if *binary { BINARY } else { 0 },
            ColumnType::Char { binary: true, .. } | ColumnType::VarChar { binary: true, .. } => BINARY,
            ColumnType::Timestamp { .. } => BINARY | TIMESTAMP,
            ColumnType::Date | ColumnType::DateTime { .. } | ColumnType::Time { .. } => BINARY,
            ColumnType::Enum { .. } => ENUM,
            ColumnType::Set { .. } => SET,
            _ => 0,
        }
    }

    /// The column length sent in column definitions: display characters for numbers and
    /// temporals, bytes (characters × 4 for utf8mb4) for strings.
    pub fn display_length(&self) -> u32 {
        const MB: u32 = 4; // utf8mb4 bytes per character
        match self {
            ColumnType::Int { width, unsigned, display } => {
                if let Some(d) = display {
                    return *d as u32;
                }
                let digits = match (width, unsigned) {
                    (IntWidth::Tiny, _) => 3,
                    (IntWidth::Small, _) => 5,
                    (IntWidth::Medium, false) => 7,
                    (IntWidth::Medium, true) => 8,
                    (IntWidth::Int, _) => 10,
                    (IntWidth::Big, false) => 19,
                    (IntWidth::Big, true) => 20,
                };
                digits + u32::from(!unsigned)
            }
            ColumnType::Decimal { precision, scale } => {
                *precision as u32 + u32::from(*scale > 0) + 1
            }
            ColumnType::Float => 12,
            ColumnType::Double => 22,
            ColumnType::Char { length, binary } | ColumnType::VarChar { length, binary } => {
                if *binary { *length } else { length * MB }
            }
            ColumnType::Lob { size, binary } => {
                let bytes = size.max_bytes().min(u32::MAX as u64) as u32;
                if *binary || *size == LobSize::Long { bytes } else { bytes.saturating_mul(MB) }
            }
            ColumnType::Date => 10,
            ColumnType::DateTime { fsp } | ColumnType::Timestamp { fsp } => {
                19 + if *fsp > 0 { *fsp as u32 + 1 } else { 0 }
            }
            ColumnType::Time { fsp } => 10 + if *fsp > 0 { *fsp as u32 + 1 } else { 0 },
            ColumnType::Year => 4,
            ColumnType::Enum { values } => values.iter().map(|v| v.chars().count() as u32).max().unwrap_or(0) * MB,
            ColumnType::Set { values } => crate::set_value::max_chars(values) * MB,
        }
    }

    /// Decimals sent in column definitions.
    pub fn decimals(&self) -> u8 {
        match self {
            ColumnType::Decimal { scale, .. } => *scale,
            ColumnType::Float | ColumnType::Double => 31,
            ColumnType::DateTime { fsp } | ColumnType::Timestamp { fsp } | ColumnType::Time { fsp } => *fsp,
            _ => 0,
        }
    }

    /// Default collation behaviour for values of this type.
    pub fn collation(&self) -> Collation {
        if self.is_binary_string() { Collation::Binary } else { Collation::CaseInsensitive }
    }

    /// Most bytes a value of this type may take in a row (before the row-size limit).
    pub fn max_value_bytes(&self) -> u64 {
        match self {
            ColumnType::Char { length, binary } | ColumnType::VarChar { length, binary } => {
                if *binary { *length as u64 } else { *length as u64 * 4 }
            }
            ColumnType::Lob { size, .. } => size.max_bytes(),
            _ => 16,
        }
    }
}

fn quote_enum_value(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

impl fmt::Display for ColumnType {
    /// MySQL 8's spelling, as `SHOW CREATE TABLE` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnType::Int { width, unsigned, display } => {
                f.write_str(width.sql_name())?;
                if let (IntWidth::Tiny, Some(1)) = (width, display) {
                    f.write_str("(1)")?;
                }
                if *unsigned {
                    f.write_str(" unsigned")?;
                }
                Ok(())
            }
            ColumnType::Decimal { precision, scale } => write!(f, "decimal({precision},{scale})"),
            ColumnType::Float => f.write_str("float"),
            ColumnType::Double => f.write_str("double"),
            ColumnType::Char { length, binary: false } => write!(f, "char({length})"),
            ColumnType::Char { length, binary: true } => write!(f, "binary({length})"),
            ColumnType::VarChar { length, binary: false } => write!(f, "varchar({length})"),
            ColumnType::VarChar { length, binary: true } => write!(f, "varbinary({length})"),
            ColumnType::Lob { size, binary } => {
                write!(f, "{}{}", size.prefix(), if *binary { "blob" } else { "text" })
            }
            ColumnType::Date => f.write_str("date"),
            ColumnType::DateTime { fsp: 0 } => f.write_str("datetime"),
            ColumnType::DateTime { fsp } => write!(f, "datetime({fsp})"),
            ColumnType::Timestamp { fsp: 0 } => f.write_str("timestamp"),
            ColumnType::Timestamp { fsp } => write!(f, "timestamp({fsp})"),
            ColumnType::Time { fsp: 0 } => f.write_str("time"),
            ColumnType::Time { fsp } => write!(f, "time({fsp})"),
            ColumnType::Year => f.write_str("year"),
            ColumnType::Enum { values } => {
                let list: Vec<String> = values.iter().map(|v| quote_enum_value(v)).collect();
                write!(f, "enum({})", list.join(","))
            }
            ColumnType::Set { values } => {
                let list: Vec<String> = values.iter().map(|v| quote_enum_value(v)).collect();
                write!(f, "set({})", list.join(","))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spelled_as_mysql_8_shows_them() {
        let cases = [
            (ColumnType::Int { width: IntWidth::Int, unsigned: true, display: Some(10) }, "int unsigned"),
            (ColumnType::Int { width: IntWidth::Tiny, unsigned: false, display: Some(1) }, "tinyint(1)"),
            (ColumnType::bigint(), "bigint"),
            (ColumnType::Decimal { precision: 10, scale: 2 }, "decimal(10,2)"),
            (ColumnType::VarChar { length: 255, binary: false }, "varchar(255)"),
            (ColumnType::VarChar { length: 16, binary: true }, "varbinary(16)"),
            (ColumnType::Lob { size: LobSize::Normal, binary: false }, "text"),
            (ColumnType::Lob { size: LobSize::Medium, binary: true }, "mediumblob"),
            (ColumnType::DateTime { fsp: 3 }, "datetime(3)"),
            (ColumnType::Enum { values: vec!["a".into(), "it's".into()] }, "enum('a','it''s')"),
            (ColumnType::Set { values: vec!["imap".into(), "pop".into()] }, "set('imap','pop')"),
        ];
        for (ty, text) in cases {
            assert_eq!(ty.to_string(), text);
        }
    }

    #[test]
    fn metadata_matches_mysql() {
        // CLIENTS.md §2.6: BIGINT 8, INT 3, DECIMAL 246, DATETIME 12, TIMESTAMP 7, VARCHAR 253, CHAR 254, TEXT 252.
        assert_eq!(ColumnType::bigint().type_code(), 8);
        assert_eq!(ColumnType::Int { width: IntWidth::Int, unsigned: false, display: None }.type_code(), 3);
        assert_eq!(ColumnType::Decimal { precision: 5, scale: 2 }.type_code(), 246);
        assert_eq!(ColumnType::DateTime { fsp: 0 }.type_code(), 12);
        assert_eq!(ColumnType::Timestamp { fsp: 0 }.type_code(), 7);
        assert_eq!(ColumnType::VarChar { length: 1, binary: false }.type_code(), 253);
        assert_eq!(ColumnType::Char { length: 1, binary: false }.type_code(), 254);
        assert_eq!(ColumnType::Lob { size: LobSize::Normal, binary: false }.type_code(), 252);
        let text = ColumnType::Lob { size: LobSize::Normal, binary: false };
        assert_eq!(text.display_length(), 65_535 * 4, "TEXT is a BLOB-type column with length 65535x4");
        assert_eq!(ColumnType::bigint_unsigned().display_length(), 20);
        assert_eq!(ColumnType::bigint().display_length(), 20);
        assert_eq!(ColumnType::Int { width: IntWidth::Int, unsigned: true, display: None }.display_length(), 10);
        assert_eq!(ColumnType::Int { width: IntWidth::Int, unsigned: false, display: None }.display_length(), 11);
        // MySQL sends SET('imap','pop') as STRING (254) with SET_FLAG and length (4 + 1 + 3) x 4.
        let set = ColumnType::Set { values: vec!["imap".into(), "pop".into()] };
        assert_eq!(set.type_code(), 254);
        assert_eq!(set.type_flags(), column_flag::SET);
        assert_eq!(set.display_length(), 32);
    }

    #[test]
    fn integer_ranges() {
        assert_eq!(IntWidth::Tiny.signed_range(), (-128, 127));
        assert_eq!(IntWidth::Medium.unsigned_max(), 16_777_215);
        assert_eq!(IntWidth::Big.unsigned_max(), u64::MAX);
    }
}
