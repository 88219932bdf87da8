//! The error registry: every error Cairn reports to a MySQL client is one [`ErrorKind`],
//! and this file is the one place that maps kinds to MySQL error numbers and SQLSTATEs.
//!
//! Errors say what the caller must do (STYLE.md, habit 8): [`ErrorKind::action`] tells whether a
//! statement may simply be retried (a node failed, a leader moved), must be abandoned (a lock wait
//! timed out), or is a fact to report (a duplicate key).

use std::fmt;

use serde::{Deserialize, Serialize};

/// What the caller of an operation that failed should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Transient: the same statement may succeed if sent again (node failure, leader change).
    Retry,
    /// The transaction cannot go on; roll it back.
    Abort,
    /// A property of the statement or the data; report it to the user.
    Report,
}

macro_rules! error_kinds {
    ($( $(#[$doc:meta])* $name:ident = ($code:expr, $state:expr, $action:ident) ),* $(,)?) => {
        /// Every error kind Cairn can report, with its MySQL number and SQLSTATE.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum ErrorKind { $( $(#[$doc])* $name ),* }

        impl ErrorKind {
            /// The MySQL error number clients see.
            pub fn code(self) -> u16 { match self { $( ErrorKind::$name => $code ),* } }
            /// The five-character SQLSTATE clients see.
            pub fn sqlstate(self) -> &'static str { match self { $( ErrorKind::$name => $state ),* } }
            /// What the caller should do about it.
            pub fn action(self) -> Action { match self { $( ErrorKind::$name => Action::$action ),* } }
            /// Every kind, for the registry test and documentation.
            pub const ALL: &'static [ErrorKind] = &[ $( ErrorKind::$name ),* ];
        }
    };
}

error_kinds! {
    /// ER_DB_CREATE_EXISTS
    DatabaseExists = (1007, "HY000", Report),
    /// ER_DB_DROP_EXISTS
    DatabaseDropMissing = (1008, "HY000", Report),
    /// ER_CON_COUNT_ERROR
    TooManyConnections = (1040, "08004", Retry),
    /// ER_DBACCESS_DENIED_ERROR
    DatabaseAccessDenied = (1044, "42000", Report),
    /// ER_ACCESS_DENIED_ERROR
    AccessDenied = (1045, "28000", Report),
    // ----- Accounts, privileges and connection limits (docs/security.md) -----
    /// ER_HOST_IS_BLOCKED: too many failed connection attempts from one host.
    HostBlocked = (1129, "HY000", Report),
    /// ER_PASSWORD_NO_MATCH: SET PASSWORD for an account that does not exist.
    PasswordNoMatch = (1133, "42000", Report),
    /// ER_NONEXISTING_GRANT
    NoSuchGrant = (1141, "42000", Report),
    /// ER_COLUMNACCESS_DENIED_ERROR
    ColumnAccessDenied = (1143, "42000", Report),
    /// ER_ILLEGAL_GRANT_FOR_TABLE: a privilege that does not exist at the level named.
    IllegalGrantForLevel = (1144, "42000", Report),
    /// ER_NONEXISTING_TABLE_GRANT
    NoSuchTableGrant = (1147, "42000", Report),
    /// ER_TOO_MANY_USER_CONNECTIONS (MAX_USER_CONNECTIONS of the account, or the global one).
    TooManyUserConnections = (1203, "42000", Report),
    /// ER_WRONG_USAGE: e.g. "DB GRANT and GLOBAL PRIVILEGES".
    WrongUsage = (1221, "HY000", Report),
    /// ER_USER_LIMIT_REACHED: MAX_QUERIES_PER_HOUR and the like.
    UserLimitReached = (1226, "42000", Report),
    /// ER_PROCACCESS_DENIED_ERROR
    RoutineAccessDenied = (1370, "42000", Report),
    /// ER_CANNOT_USER: CREATE/DROP/RENAME/ALTER USER failed for one of the accounts named.
    CannotUser = (1396, "HY000", Report),
    /// ER_CANT_CREATE_USER_WITH_GRANT: GRANT to an account that does not exist.
    CantCreateUserWithGrant = (1410, "42000", Report),
    /// ER_ACCOUNT_HAS_BEEN_LOCKED
    AccountLocked = (3118, "HY000", Report),
    /// ER_SECURE_TRANSPORT_REQUIRED
    SecureTransportRequired = (3159, "HY000", Report),
    /// ER_USER_DOES_NOT_EXIST (a note of DROP USER IF EXISTS and the like)
    UserDoesNotExist = (3162, "HY000", Report),
    /// ER_USER_ALREADY_EXISTS (a note of CREATE USER IF NOT EXISTS)
    UserAlreadyExists = (3163, "HY000", Report),
    /// ER_UNKNOWN_AUTHID: a role that does not exist.
    UnknownAuthorizationId = (3523, "HY000", Report),
    /// ER_ROLE_NOT_GRANTED: SET ROLE of a role the user was not granted.
    RoleNotGranted = (3530, "HY000", Report),
    /// ER_NO_DB_ERROR
    NoDatabaseSelected = (1046, "3D000", Report),
    /// ER_UNKNOWN_COM_ERROR
    UnknownCommand = (1047, "08S01", Report),
    /// ER_BAD_NULL_ERROR
    NullNotAllowed = (1048, "23000", Report),
    /// ER_BAD_DB_ERROR
    UnknownDatabase = (1049, "42000", Report),
    /// ER_TABLE_EXISTS_ERROR
    TableExists = (1050, "42S01", Report),
    /// ER_BAD_TABLE_ERROR
    UnknownTableDrop = (1051, "42S02", Report),
    /// ER_NON_UNIQ_ERROR
    AmbiguousColumn = (1052, "23000", Report),
    /// ER_BAD_FIELD_ERROR
    UnknownColumn = (1054, "42S22", Report),
    /// ER_WRONG_FIELD_WITH_GROUP
    WrongFieldWithGroup = (1055, "42000", Report),
    /// ER_DUP_FIELDNAME
    DuplicateColumn = (1060, "42S21", Report),
    /// ER_DUP_KEYNAME
    DuplicateKeyName = (1061, "42000", Report),
    /// ER_DUP_ENTRY
    DuplicateKey = (1062, "23000", Report),
    /// ER_PARSE_ERROR
    ParseError = (1064, "42000", Report),
    /// ER_EMPTY_QUERY
    EmptyQuery = (1065, "42000", Report),
    /// ER_NONUNIQ_TABLE
    DuplicateTableAlias = (1066, "42000", Report),
    /// ER_INVALID_DEFAULT
    InvalidDefault = (1067, "42000", Report),
    /// ER_MULTIPLE_PRI_KEY
    MultiplePrimaryKey = (1068, "42000", Report),
    /// ER_TOO_LONG_KEY
    KeyTooLong = (1071, "42000", Report),
    /// ER_KEY_COLUMN_DOES_NOT_EXITS
    KeyColumnMissing = (1072, "42000", Report),
    /// ER_WRONG_AUTO_KEY
    WrongAutoKey = (1075, "42000", Report),
    /// ER_CANT_DROP_FIELD_OR_KEY
    CantDropFieldOrKey = (1091, "42000", Report),
    /// ER_CANT_REMOVE_ALL_FIELDS: ALTER TABLE … DROP COLUMN of the last column.
    CantRemoveAllFields = (1090, "42000", Report),
    /// ER_INVALID_USE_OF_NULL: ALTER TABLE making a column that holds NULLs NOT NULL.
    InvalidUseOfNull = (1138, "22004", Report),
    /// ER_NO_SUCH_THREAD: KILL of a connection id that is not a session of this SQL node.
    UnknownThread = (1094, "HY000", Report),
    NotOwnerOfThread = (1095, "HY000", Report),
    /// ER_WRONG_FIELD_TERMINATORS: LOAD DATA with separators it cannot use together.
    WrongFieldTerminators = (1083, "42000", Report),
    /// ER_NO_BINARY_LOGGING: SHOW BINARY LOGS (replication is inside the cluster, not binlogs).
    NoBinaryLogging = (1381, "HY000", Report),
    /// ER_CLIENT_LOCAL_FILES_DISABLED: LOAD DATA LOCAL from a client that does not offer files.
    LocalFilesDisabled = (3948, "42000", Report),
    /// ER_OPTION_PREVENTS_STATEMENT: server-side file access refused by secure_file_priv.
    OptionPreventsStatement = (1290, "HY000", Report),
    /// ER_UNKNOWN_ERROR: an internal error with no better code.
    Internal = (1105, "HY000", Report),
    /// ER_RECORD_FILE_FULL: a data node's DataMemory is used up.
    TableFull = (1114, "HY000", Report),
    /// ER_UNKNOWN_PROCEDURE
    UnknownProcedure = (1106, "42000", Report),
    /// ER_UNKNOWN_TABLE (in a field list or MULTI DELETE)
    UnknownTableInList = (1109, "42S02", Report),
    /// ER_TABLE_MUST_HAVE_COLUMNS
    TableMustHaveColumns = (1113, "42000", Report),
    /// ER_UNKNOWN_CHARACTER_SET
    UnknownCharacterSet = (1115, "42000", Report),
    /// ER_TOO_BIG_ROWSIZE
    RowTooLarge = (1118, "42000", Report),
    /// ER_WRONG_VALUE_COUNT_ON_ROW
    WrongValueCount = (1136, "21S01", Report),
    /// ER_TABLEACCESS_DENIED_ERROR
    TableAccessDenied = (1142, "42000", Report),
    /// ER_NO_SUCH_TABLE
    NoSuchTable = (1146, "42S02", Report),
    /// ER_SYNTAX_ERROR
    SyntaxError = (1149, "42000", Report),
    /// ER_NET_PACKET_TOO_LARGE
    PacketTooLarge = (1153, "08S01", Report),
    /// ER_TOO_MANY_ROWS / result or transaction too big for a limit
    TooManyRows = (1172, "42000", Report),
    /// ER_UNKNOWN_SYSTEM_VARIABLE
    UnknownSystemVariable = (1193, "HY000", Report),
    /// ER_LOCK_WAIT_TIMEOUT
    LockWaitTimeout = (1205, "HY000", Abort),
    /// ER_WRONG_ARGUMENTS
    WrongArguments = (1210, "HY000", Report),
    /// ER_LOCK_TABLE_FULL: a transaction holds more row locks than the limit.
    LockTableFull = (1206, "HY000", Abort),
    /// ER_TRANS_CACHE_FULL: a transaction's changes exceed the size limit.
    TransactionTooLarge = (1197, "HY000", Abort),
    /// ER_ERROR_DURING_COMMIT
    ErrorDuringCommit = (1180, "HY000", Abort),
    /// ER_LOCK_DEADLOCK
    Deadlock = (1213, "40001", Abort),
    /// ER_SPECIFIC_ACCESS_DENIED_ERROR
    SpecificAccessDenied = (1227, "42000", Report),
    /// ER_WRONG_VALUE_FOR_VAR
    WrongValueForVariable = (1231, "42000", Report),
    /// ER_WRONG_TYPE_FOR_VAR
    WrongTypeForVariable = (1232, "42000", Report),
    /// ER_NOT_SUPPORTED_YET
    NotSupported = (1235, "42000", Report),
    /// ER_UNKNOWN_STMT_HANDLER
    UnknownStatement = (1243, "HY000", Report),
    /// ER_OPERAND_COLUMNS
    OperandColumns = (1241, "21000", Report),
    /// ER_SUBQUERY_NO_1_ROW
    SubqueryMultipleRows = (1242, "21000", Report),
    /// ER_WARN_DATA_OUT_OF_RANGE
    OutOfRange = (1264, "22003", Report),
    /// ER_UNKNOWN_COLLATION
    UnknownCollation = (1273, "HY000", Report),
    /// WARN_DATA_TRUNCATED: a value cut short or read leniently ('12abc' into an INT).
    DataTruncated = (1265, "01000", Report),
    /// ER_TRUNCATED_WRONG_VALUE
    TruncatedWrongValue = (1292, "22007", Report),
    /// ER_UNSUPPORTED_PS
    UnsupportedPreparedStatement = (1295, "HY000", Report),
    /// ER_GET_ERRMSG: a permanent error from the storage cluster.
    ClusterError = (1296, "HY000", Report),
    /// ER_GET_TEMPORARY_ERRMSG: a temporary error from the storage cluster (node failure,
    /// leader change, node group unavailable). NDB applications retry on it.
    ClusterTemporary = (1297, "HY000", Retry),
    /// ER_TABLE_DEF_CHANGED: the request was planned with an older definition of a table than
    /// the data node has (a schema change ran meanwhile). Nothing was applied; the SQL node
    /// plans the statement again and retries it.
    TableDefinitionChanged = (1412, "HY000", Retry),
    /// ER_SP_DOES_NOT_EXIST
    RoutineDoesNotExist = (1305, "42000", Report),
    /// ER_QUERY_INTERRUPTED
    QueryInterrupted = (1317, "70100", Abort),
    /// ER_NO_DEFAULT_FOR_FIELD
    NoDefaultForField = (1364, "HY000", Report),
    /// ER_DIVISION_BY_ZERO
    DivisionByZero = (1365, "22012", Report),
    /// ER_TRUNCATED_WRONG_VALUE_FOR_FIELD
    IncorrectValueForField = (1366, "HY000", Report),
    /// ER_DATA_TOO_LONG
    DataTooLong = (1406, "22001", Report),
    /// ER_MAX_PREPARED_STMT_COUNT_REACHED
    TooManyPreparedStatements = (1461, "42000", Report),
    /// ER_DATA_OUT_OF_RANGE
    ValueOutOfRange = (1690, "22003", Report),
    /// ER_TOO_BIG_PRECISION / scale: a DECIMAL beyond what Cairn stores.
    TooBigPrecision = (1426, "42000", Report),
    /// ER_TOO_BIG_SCALE
    TooBigScale = (1425, "42000", Report),
    /// ER_WRONG_ARGUMENTS_TO_NATIVE_FCT / wrong parameter count to a native function
    WrongParameterCount = (1582, "42000", Report),
    /// ER_FUNCTION_NOT_DEFINED-like: unknown function name (MySQL reports 1305 for routines).
    UnknownFunction = (1630, "42000", Report),
    /// ER_INVALID_GROUP_FUNC_USE
    InvalidGroupFunctionUse = (1111, "HY000", Report),
    /// ER_VIEW_WRONG_LIST: a CTE's column list and its SELECT list differ in length.
    ViewWrongList = (1353, "HY000", Report),
    /// ER_WINDOW_INVALID_WINDOW_FUNC_USE: a window function outside the select list and
    /// ORDER BY (in WHERE, GROUP BY, HAVING, or inside an aggregate or another window function).
    WindowInvalidUse = (3593, "HY000", Report),
    /// ER_WINDOW_NO_SUCH_WINDOW: `OVER w` names no window of the WINDOW clause.
    WindowNoSuchWindow = (3579, "HY000", Report),
    /// ER_CTE_MAX_RECURSION_DEPTH: a recursive CTE ran more than cte_max_recursion_depth rounds.
    CteMaxRecursionDepth = (3636, "HY000", Report),
    /// ER_CTE_RECURSIVE_REQUIRES_UNION: a recursive CTE is not `seed UNION [ALL] recursive part`.
    CteRecursiveRequiresUnion = (3573, "HY000", Report),
    /// ER_CTE_RECURSIVE_REQUIRES_NONRECURSIVE_FIRST: the seed query blocks must come first.
    CteRecursiveSeedFirst = (3574, "HY000", Report),
    /// ER_CTE_RECURSIVE_FORBIDDEN_JOIN_ORDER's neighbour 3577: the recursive part of a recursive
    /// CTE must read the CTE exactly once, in its FROM clause, not in a subquery.
    CteRecursiveReference = (3577, "HY000", Report),
    /// ER_DERIVED_MUST_HAVE_ALIAS
    DerivedNeedsAlias = (1248, "42000", Report),
    /// ER_WRONG_NUMBER_OF_COLUMNS_IN_SELECT
    WrongColumnCountInUnion = (1222, "21000", Report),
    /// ER_CANT_CHANGE_TX_CHARACTERISTICS
    CantChangeTransaction = (1568, "25001", Report),
    /// ER_READ_ONLY_TRANSACTION-like: a write in a read-only context.
    ReadOnly = (1792, "25006", Report),
    /// ER_FIELD_SPECIFIED_TWICE: `INSERT INTO t (a, a)`, `UPDATE t SET a = 1, a = 2`.
    ColumnSpecifiedTwice = (1110, "42000", Report),
    /// ER_GLOBAL_VARIABLE: a session SET of a global-only system variable.
    GlobalVariable = (1229, "HY000", Report),
    /// ER_INCORRECT_GLOBAL_LOCAL_VAR: a SET of a read-only system variable.
    ReadOnlyVariable = (1238, "HY000", Report),
    /// ER_TOO_BIG_FIELDLENGTH: `VARCHAR(70000)`, `CHAR(300)`.
    ColumnLengthTooBig = (1074, "42000", Report),
    /// ER_BLOB_CANT_HAVE_DEFAULT: a literal DEFAULT on a BLOB/TEXT column.
    BlobCantHaveDefault = (1101, "42000", Report),
    /// ER_WRONG_FIELD_SPEC: an impossible column specification (AUTO_INCREMENT on a VARCHAR).
    WrongColumnSpec = (1063, "42000", Report),
    /// ER_TOO_BIG_SET: a SET column with more than 64 members.
    TooBigSet = (1097, "HY000", Report),
    /// ER_DUPLICATED_VALUE_IN_TYPE: an ENUM or SET member listed twice.
    DuplicatedValueInType = (1291, "HY000", Report),
    /// ER_ILLEGAL_VALUE_FOR_TYPE: a SET member containing a comma.
    IllegalValueForType = (1367, "22007", Report),
    /// ER_M_BIGGER_THAN_D: `DECIMAL(5,6)`.
    ScaleBiggerThanPrecision = (1427, "42000", Report),
    /// ER_MIX_OF_GROUP_FUNC_AND_FIELDS: an aggregate and a plain column without GROUP BY,
    /// under ONLY_FULL_GROUP_BY.
    MixOfGroupFuncAndFields = (1140, "42000", Report),
    /// ER_STACK_OVERRUN_NEED_MORE: a statement nests or chains expressions beyond what the
    /// SQL node evaluates safely.
    StackOverrun = (1436, "HY000", Report),
    /// ER_CAPACITY_EXCEEDED: a statement would take more memory than a limit of the SQL node
    /// allows (`parser_max_mem_size`: the text is refused before it is tokenized).
    CapacityExceeded = (3170, "HY000", Report),
    // ----- Stored routines (docs/routines.md) -----
    /// ER_SP_NO_RECURSIVE_CREATE: CREATE FUNCTION/PROCEDURE inside a routine.
    RoutineCreateInRoutine = (1303, "2F003", Report),
    /// ER_SP_ALREADY_EXISTS
    RoutineExists = (1304, "42000", Report),
    /// ER_SP_LILABEL_MISMATCH: LEAVE/ITERATE naming no enclosing label.
    LabelMismatch = (1308, "42000", Report),
    /// ER_SP_LABEL_REDEFINE
    LabelRedefined = (1309, "42000", Report),
    /// ER_SP_LABEL_MISMATCH: an end label that does not match the begin label.
    EndLabelMismatch = (1310, "42000", Report),
    /// ER_SP_BADSELECT: a procedure returning a result set where none may be sent.
    ProcedureResultSetNotAllowed = (1312, "0A000", Report),
    /// ER_SP_NO_DROP_SP: DROP or ALTER FUNCTION/PROCEDURE inside a routine.
    RoutineDropInRoutine = (1357, "HY000", Report),
    /// ER_SP_BADRETURN
    ReturnOutsideFunction = (1313, "42000", Report),
    /// ER_SP_BADSTATEMENT
    StatementNotAllowedInRoutine = (1314, "0A000", Report),
    /// ER_SP_WRONG_NO_OF_ARGS
    RoutineArgumentCount = (1318, "42000", Report),
    /// ER_SP_COND_MISMATCH
    UndefinedCondition = (1319, "42000", Report),
    /// ER_SP_NORETURN
    FunctionWithoutReturn = (1320, "42000", Report),
    /// ER_SP_NORETURNEND
    FunctionEndedWithoutReturn = (1321, "2F005", Report),
    /// ER_SP_BAD_CURSOR_QUERY
    CursorNotSelect = (1322, "42000", Report),
    /// ER_SP_BAD_CURSOR_SELECT
    CursorSelectWithInto = (1323, "42000", Report),
    /// ER_SP_CURSOR_MISMATCH
    UndefinedCursor = (1324, "42000", Report),
    /// ER_SP_CURSOR_ALREADY_OPEN
    CursorAlreadyOpen = (1325, "24000", Report),
    /// ER_SP_CURSOR_NOT_OPEN
    CursorNotOpen = (1326, "24000", Report),
    /// ER_SP_UNDECLARED_VAR
    UndeclaredVariable = (1327, "42000", Report),
    /// ER_SP_WRONG_NO_OF_FETCH_ARGS
    FetchArgumentCount = (1328, "HY000", Report),
    /// ER_SP_FETCH_NO_DATA: the NOT FOUND condition (a FETCH past the end, a SELECT INTO of no row).
    NoData = (1329, "02000", Report),
    /// ER_SP_DUP_PARAM
    DuplicateParameter = (1330, "42000", Report),
    /// ER_SP_DUP_VAR
    DuplicateVariable = (1331, "42000", Report),
    /// ER_SP_DUP_COND
    DuplicateCondition = (1332, "42000", Report),
    /// ER_SP_DUP_CURS
    DuplicateCursor = (1333, "42000", Report),
    /// ER_STMT_NOT_ALLOWED_IN_SF_OR_TRG
    NotAllowedInFunction = (1336, "0A000", Report),
    /// ER_SP_VARCOND_AFTER_CURSHNDLR
    DeclarationOrder = (1337, "42000", Report),
    /// ER_SP_CURSOR_AFTER_HANDLER
    CursorAfterHandler = (1338, "42000", Report),
    /// ER_SP_CASE_NOT_FOUND
    CaseNotFound = (1339, "20000", Report),
    /// ER_SP_BAD_SQLSTATE
    BadSqlState = (1407, "42000", Report),
    /// ER_SP_DUP_HANDLER
    DuplicateHandler = (1413, "42000", Report),
    /// ER_SP_NOT_VAR_ARG: an OUT or INOUT argument that is not a variable.
    OutArgumentNotVariable = (1414, "42000", Report),
    /// ER_SP_NO_RETSET
    ResultSetFromFunction = (1415, "0A000", Report),
    /// ER_COMMIT_NOT_ALLOWED_IN_SF_OR_TRG
    CommitInFunction = (1422, "HY000", Report),
    /// ER_SP_NO_RECURSION
    RecursiveFunction = (1424, "HY000", Report),
    /// ER_SP_RECURSION_LIMIT
    RecursionLimit = (1456, "HY000", Report),
    /// ER_SP_WRONG_NAME
    WrongRoutineName = (1458, "42000", Report),
    /// ER_SIGNAL_WARN: an unhandled SIGNAL of a warning SQLSTATE ('01…').
    SignalWarning = (1642, "01000", Report),
    /// ER_SIGNAL_NOT_FOUND: an unhandled SIGNAL of a not-found SQLSTATE ('02…').
    SignalNotFound = (1643, "02000", Report),
    /// ER_SIGNAL_EXCEPTION: an unhandled SIGNAL of any other SQLSTATE.
    SignalException = (1644, "HY000", Report),
    /// ER_RESIGNAL_WITHOUT_ACTIVE_HANDLER
    ResignalWithoutHandler = (1645, "0K000", Report),
    /// ER_SIGNAL_BAD_CONDITION_TYPE
    SignalBadCondition = (1646, "HY000", Report),
}

/// An error with its kind and the message the client sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    /// The number and SQLSTATE a stored routine's `SIGNAL` chose, which need not be in the
    /// registry (MySQL lets a routine raise any SQLSTATE with any number). None for every error
    /// Cairn raises itself.
    pub signal: Option<Box<SignalCondition>>,
}

/// A condition raised by `SIGNAL` / `RESIGNAL`: what the client sees instead of the kind's own
/// number and SQLSTATE.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalCondition {
    pub code: u16,
    /// Five characters of `[0-9A-Z]`, not of class '00' (checked by the SIGNAL statement).
    pub sqlstate: String,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error { kind, message: message.into(), signal: None }
    }

    /// A condition raised by SIGNAL with its own number and SQLSTATE; `kind` is the closest
    /// registry kind (1642/1643/1644 by the SQLSTATE's class), for code that branches on kinds.
    pub fn signalled(kind: ErrorKind, code: u16, sqlstate: impl Into<String>, message: impl Into<String>) -> Error {
        Error { kind, message: message.into(), signal: Some(Box::new(SignalCondition { code, sqlstate: sqlstate.into() })) }
    }

    /// An internal error: something Cairn did not expect. The message says what.
    pub fn internal(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Internal, message)
    }

    /// A transient cluster error, reported as NDB does (MySQL 1297) so applications retry.
    pub fn temporary(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::ClusterTemporary, message)
    }

    pub fn not_supported(what: impl fmt::Display) -> Error {
        Error::new(
            ErrorKind::NotSupported,
            format!("This version of Cairn doesn't yet support '{what}'"),
        )
    }

    pub fn code(&self) -> u16 {
        match &self.signal {
            Some(s) => s.code,
            None => self.kind.code(),
        }
    }

    pub fn sqlstate(&self) -> &str {
        match &self.signal {
            Some(s) => &s.sqlstate,
            None => self.kind.sqlstate(),
        }
    }

    pub fn is_retryable(&self) -> bool {
        self.kind.action() == Action::Retry
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ERROR {} ({}): {}", self.code(), self.sqlstate(), self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Shorthand for returning an error of a kind with a formatted message.
#[macro_export]
macro_rules! bail {
    ($kind:ident, $($arg:tt)*) => {
        return Err($crate::error::Error::new($crate::error::ErrorKind::$kind, format!($($arg)*)))
    };
}

/// Shorthand for building an error of a kind with a formatted message.
#[macro_export]
macro_rules! err {
    ($kind:ident, $($arg:tt)*) => {
        $crate::error::Error::new($crate::error::ErrorKind::$kind, format!($($arg)*))
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_and_sqlstates_well_formed() {
        let mut seen = HashSet::new();
        for kind in ErrorKind::ALL {
            assert!(seen.insert(kind.code()), "{kind:?} reuses code {}", kind.code());
            let state = kind.sqlstate();
            assert_eq!(state.len(), 5, "{kind:?}");
            assert!(state.bytes().all(|b| b.is_ascii_alphanumeric()), "{kind:?}");
        }
    }

    #[test]
    fn the_codes_clients_rely_on() {
        // CLIENTS.md §2.11: these numbers and states are what applications branch on.
        assert_eq!((ErrorKind::DuplicateKey.code(), ErrorKind::DuplicateKey.sqlstate()), (1062, "23000"));
        assert_eq!((ErrorKind::NoSuchTable.code(), ErrorKind::NoSuchTable.sqlstate()), (1146, "42S02"));
        assert_eq!((ErrorKind::ParseError.code(), ErrorKind::ParseError.sqlstate()), (1064, "42000"));
        assert_eq!((ErrorKind::AccessDenied.code(), ErrorKind::AccessDenied.sqlstate()), (1045, "28000"));
        assert_eq!((ErrorKind::UnknownDatabase.code(), ErrorKind::UnknownDatabase.sqlstate()), (1049, "42000"));
        assert_eq!((ErrorKind::LockWaitTimeout.code(), ErrorKind::LockWaitTimeout.sqlstate()), (1205, "HY000"));
        assert!(Error::temporary("node failure").is_retryable());
    }
}
