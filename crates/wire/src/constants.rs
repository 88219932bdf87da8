//! Numbers fixed by the MySQL protocol: capability bits, status bits, column flags, character
//! set ids, command bytes and column type codes.
//!
//! They are plain integers rather than bit-flag types so that the SQL node can combine them with
//! `|` and store them without conversions, and so that values this crate does not know (a newer
//! client's capability bit, a type code from a future server) pass through unchanged.

/// Capability bits exchanged in the handshake (`CLIENT_*` in MySQL's `mysql_com.h`).
pub mod capability {
    pub const LONG_PASSWORD: u32 = 1;
    /// Affected rows count matched rows instead of changed rows (CLIENTS.md §2.8).
    pub const FOUND_ROWS: u32 = 1 << 1;
    pub const LONG_FLAG: u32 = 1 << 2;
    pub const CONNECT_WITH_DB: u32 = 1 << 3;
    pub const NO_SCHEMA: u32 = 1 << 4;
    pub const COMPRESS: u32 = 1 << 5;
    pub const ODBC: u32 = 1 << 6;
    pub const LOCAL_FILES: u32 = 1 << 7;
    pub const IGNORE_SPACE: u32 = 1 << 8;
    pub const PROTOCOL_41: u32 = 1 << 9;
    pub const INTERACTIVE: u32 = 1 << 10;
    pub const SSL: u32 = 1 << 11;
    pub const IGNORE_SIGPIPE: u32 = 1 << 12;
    pub const TRANSACTIONS: u32 = 1 << 13;
    pub const RESERVED: u32 = 1 << 14;
    pub const SECURE_CONNECTION: u32 = 1 << 15;
    pub const MULTI_STATEMENTS: u32 = 1 << 16;
    pub const MULTI_RESULTS: u32 = 1 << 17;
    pub const PS_MULTI_RESULTS: u32 = 1 << 18;
    pub const PLUGIN_AUTH: u32 = 1 << 19;
    pub const CONNECT_ATTRS: u32 = 1 << 20;
    pub const PLUGIN_AUTH_LENENC_CLIENT_DATA: u32 = 1 << 21;
    pub const CAN_HANDLE_EXPIRED_PASSWORDS: u32 = 1 << 22;
    pub const SESSION_TRACK: u32 = 1 << 23;
    pub const DEPRECATE_EOF: u32 = 1 << 24;
    pub const OPTIONAL_RESULTSET_METADATA: u32 = 1 << 25;
    pub const ZSTD_COMPRESSION_ALGORITHM: u32 = 1 << 26;
    pub const QUERY_ATTRIBUTES: u32 = 1 << 27;
}

/// Server status bits sent in OK and EOF packets (`SERVER_*` in `mysql_com.h`).
pub mod status {
    /// A transaction is open.
    pub const IN_TRANS: u16 = 1;
    /// The session is in autocommit mode.
    pub const AUTOCOMMIT: u16 = 1 << 1;
    /// Another result follows this one in the answer to the same command.
    pub const MORE_RESULTS_EXISTS: u16 = 1 << 3;
    pub const NO_GOOD_INDEX_USED: u16 = 1 << 4;
    pub const NO_INDEX_USED: u16 = 1 << 5;
    pub const CURSOR_EXISTS: u16 = 1 << 6;
    pub const LAST_ROW_SENT: u16 = 1 << 7;
    pub const DB_DROPPED: u16 = 1 << 8;
    pub const NO_BACKSLASH_ESCAPES: u16 = 1 << 9;
    pub const METADATA_CHANGED: u16 = 1 << 10;
    pub const QUERY_WAS_SLOW: u16 = 1 << 11;
    pub const PS_OUT_PARAMS: u16 = 1 << 12;
    pub const IN_TRANS_READONLY: u16 = 1 << 13;
    pub const SESSION_STATE_CHANGED: u16 = 1 << 14;
}

/// Column definition flags (`*_FLAG` in `mysql_com.h`).
pub mod column_flag {
    pub const NOT_NULL: u16 = 1;
    pub const PRI_KEY: u16 = 1 << 1;
    pub const UNIQUE_KEY: u16 = 1 << 2;
    pub const MULTIPLE_KEY: u16 = 1 << 3;
    pub const BLOB: u16 = 1 << 4;
    pub const UNSIGNED: u16 = 1 << 5;
    pub const ZEROFILL: u16 = 1 << 6;
    pub const BINARY: u16 = 1 << 7;
    pub const ENUM: u16 = 1 << 8;
    pub const AUTO_INCREMENT: u16 = 1 << 9;
    pub const TIMESTAMP: u16 = 1 << 10;
    pub const SET: u16 = 1 << 11;
    pub const NO_DEFAULT_VALUE: u16 = 1 << 12;
    pub const ON_UPDATE_NOW: u16 = 1 << 13;
    pub const NUM: u16 = 1 << 15;
}

/// Character set / collation ids as used in column definitions and the handshake.
pub mod charset {
    /// `utf8mb3_general_ci`, what old clients send.
    pub const UTF8_GENERAL_CI: u16 = 33;
    /// `utf8mb4_general_ci`, what libmariadb, PyMySQL and PHP send.
    pub const UTF8MB4_GENERAL_CI: u16 = 45;
    /// `binary`: the charset of every numeric, temporal and binary-string column.
    pub const BINARY: u16 = 63;
    /// `utf8mb4_unicode_ci`, what Node mysql2 sends.
    pub const UTF8MB4_UNICODE_CI: u16 = 224;
    /// `utf8mb4_0900_ai_ci`, MySQL 8's default and what the greeting announces.
    pub const UTF8MB4_0900_AI_CI: u16 = 255;
}

/// Command bytes: the first byte of every packet a client sends after the handshake.
pub mod command {
    pub const SLEEP: u8 = 0x00;
    pub const QUIT: u8 = 0x01;
    pub const INIT_DB: u8 = 0x02;
    pub const QUERY: u8 = 0x03;
    pub const FIELD_LIST: u8 = 0x04;
    pub const STATISTICS: u8 = 0x09;
    pub const PING: u8 = 0x0e;
    pub const CHANGE_USER: u8 = 0x11;
    pub const STMT_PREPARE: u8 = 0x16;
    pub const STMT_EXECUTE: u8 = 0x17;
    pub const STMT_SEND_LONG_DATA: u8 = 0x18;
    pub const STMT_CLOSE: u8 = 0x19;
    pub const STMT_RESET: u8 = 0x1a;
    pub const SET_OPTION: u8 = 0x1b;
    pub const STMT_FETCH: u8 = 0x1c;
    pub const RESET_CONNECTION: u8 = 0x1f;
}

/// A MySQL column (and parameter) type code, as sent in column definitions and in the
/// parameter types of COM_STMT_EXECUTE.
///
/// A newtype rather than an enum: a client may send any byte as a parameter type, and the crate
/// must carry it (MySQL reads unknown parameter types as strings) instead of failing to
/// represent it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ColumnType(pub u8);

impl ColumnType {
    pub const DECIMAL: ColumnType = ColumnType(0);
    pub const TINY: ColumnType = ColumnType(1);
    pub const SHORT: ColumnType = ColumnType(2);
    pub const LONG: ColumnType = ColumnType(3);
    pub const FLOAT: ColumnType = ColumnType(4);
    pub const DOUBLE: ColumnType = ColumnType(5);
    pub const NULL: ColumnType = ColumnType(6);
    pub const TIMESTAMP: ColumnType = ColumnType(7);
    pub const LONGLONG: ColumnType = ColumnType(8);
    pub const INT24: ColumnType = ColumnType(9);
    pub const DATE: ColumnType = ColumnType(10);
    pub const TIME: ColumnType = ColumnType(11);
    pub const DATETIME: ColumnType = ColumnType(12);
    pub const YEAR: ColumnType = ColumnType(13);
    pub const NEWDATE: ColumnType = ColumnType(14);
    pub const VARCHAR: ColumnType = ColumnType(15);
    pub const BIT: ColumnType = ColumnType(16);
    pub const TIMESTAMP2: ColumnType = ColumnType(17);
    pub const DATETIME2: ColumnType = ColumnType(18);
    pub const TIME2: ColumnType = ColumnType(19);
    pub const VECTOR: ColumnType = ColumnType(242);
    pub const JSON: ColumnType = ColumnType(245);
    pub const NEWDECIMAL: ColumnType = ColumnType(246);
    pub const ENUM: ColumnType = ColumnType(247);
    pub const SET: ColumnType = ColumnType(248);
    pub const TINY_BLOB: ColumnType = ColumnType(249);
    pub const MEDIUM_BLOB: ColumnType = ColumnType(250);
    pub const LONG_BLOB: ColumnType = ColumnType(251);
    pub const BLOB: ColumnType = ColumnType(252);
    pub const VAR_STRING: ColumnType = ColumnType(253);
    pub const STRING: ColumnType = ColumnType(254);
    pub const GEOMETRY: ColumnType = ColumnType(255);

    /// The name MySQL uses for the type, for error messages and debugging.
    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "DECIMAL",
            1 => "TINY",
            2 => "SHORT",
            3 => "LONG",
            4 => "FLOAT",
            5 => "DOUBLE",
            6 => "NULL",
            7 => "TIMESTAMP",
            8 => "LONGLONG",
            9 => "INT24",
            10 => "DATE",
            11 => "TIME",
            12 => "DATETIME",
            13 => "YEAR",
            14 => "NEWDATE",
            15 => "VARCHAR",
            16 => "BIT",
            17 => "TIMESTAMP2",
            18 => "DATETIME2",
            19 => "TIME2",
            242 => "VECTOR",
            245 => "JSON",
            246 => "NEWDECIMAL",
            247 => "ENUM",
            248 => "SET",
            249 => "TINY_BLOB",
            250 => "MEDIUM_BLOB",
            251 => "LONG_BLOB",
            252 => "BLOB",
            253 => "VAR_STRING",
            254 => "STRING",
            255 => "GEOMETRY",
            _ => "UNKNOWN",
        }
    }

    /// How values of this type travel in the binary protocol.
    pub(crate) fn binary_class(self) -> BinaryClass {
        match self {
            ColumnType::TINY => BinaryClass::Integer(1),
            ColumnType::SHORT | ColumnType::YEAR => BinaryClass::Integer(2),
            ColumnType::LONG | ColumnType::INT24 => BinaryClass::Integer(4),
            ColumnType::LONGLONG => BinaryClass::Integer(8),
            ColumnType::FLOAT => BinaryClass::Float,
            ColumnType::DOUBLE => BinaryClass::Double,
            ColumnType::DATE | ColumnType::NEWDATE => BinaryClass::Date,
            ColumnType::DATETIME
            | ColumnType::TIMESTAMP
            | ColumnType::DATETIME2
            | ColumnType::TIMESTAMP2 => BinaryClass::DateTime,
            ColumnType::TIME | ColumnType::TIME2 => BinaryClass::Time,
            ColumnType::NULL => BinaryClass::Null,
            // Everything else (strings, decimals, blobs, JSON, ENUM, SET, BIT, GEOMETRY and
            // codes this crate does not know) is a length-encoded string, as in MySQL.
            _ => BinaryClass::LengthEncoded,
        }
    }
}

impl std::fmt::Debug for ColumnType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}({})", self.name(), self.0)
    }
}

/// The binary-protocol layout of a type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinaryClass {
    /// A little-endian integer of this many bytes.
    Integer(usize),
    Float,
    Double,
    /// A length byte (0 or 4) and the date fields.
    Date,
    /// A length byte (0, 4, 7 or 11) and the date, time and microsecond fields.
    DateTime,
    /// A length byte (0, 8 or 12), the sign, days, time and microsecond fields.
    Time,
    /// Always NULL: no bytes.
    Null,
    /// A length-encoded byte string.
    LengthEncoded,
}

/// MySQL error numbers and SQLSTATEs the crate itself sends.
pub(crate) mod error_code {
    pub const ER_UNKNOWN_ERROR: u16 = 1105;
    pub const ER_HANDSHAKE_ERROR: u16 = 1043;
    pub const ER_ACCESS_DENIED: u16 = 1045;
    pub const ER_UNKNOWN_COM_ERROR: u16 = 1047;
    pub const ER_WRONG_DB_NAME: u16 = 1102;
    pub const ER_NET_PACKET_TOO_LARGE: u16 = 1153;
    pub const ER_NET_PACKETS_OUT_OF_ORDER: u16 = 1156;
    pub const ER_WRONG_ARGUMENTS: u16 = 1210;
    pub const ER_UNKNOWN_STMT_HANDLER: u16 = 1243;
    pub const ER_NOT_SUPPORTED_AUTH_MODE: u16 = 1251;
    pub const ER_SECURE_TRANSPORT_REQUIRED: u16 = 3159;
    pub const ER_PS_MANY_PARAM: u16 = 1390;
    pub const ER_STMT_HAS_NO_OPEN_CURSOR: u16 = 1421;
    pub const ER_MAX_PREPARED_STMT_COUNT_REACHED: u16 = 1461;
    pub const ER_MALFORMED_PACKET: u16 = 1835;
    pub const ER_QUERY_INTERRUPTED: u16 = 1317;
    pub const ER_SP_BADSELECT: u16 = 1312;
}
