//! Workloads: what each one sets up, which statement it measures, how each connection chooses the
//! next operation's parameters, and what a correct answer looks like.
//!
//! Every operation carries its expected outcome (rows returned, rows affected, or the value of a
//! scalar), and the runner counts a wrong answer as an error. A server that answers fast but
//! wrongly must not look good in a comparison.
//!
//! The text and binary protocols run the same statement: the binary protocol prepares the
//! template once per connection and sends the parameters; the text protocol substitutes them as
//! literals into the same template, as Exim and most drivers do on the client side.

use std::fmt;
use std::str::FromStr;

use mysql_async::Value;

use crate::rng::{SplitMix64, mix};
use crate::schema::{self, quote_string};

/// A named benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// One `SELECT` by a uniformly random primary key.
    PointSelect,
    /// One single-row autocommit `INSERT` with a fresh key.
    Insert,
    /// `UPDATE ... SET n = n + 1` of one uniformly random row by primary key.
    Update,
    /// CalMail's Exim recipient lookup: a two-table join on a unique key.
    EximJoin,
    /// A greylisting decision through a stored function that reads and writes a table.
    Greylist,
}

impl Workload {
    /// Every workload, in the order the tools run them.
    pub const ALL: [Workload; 5] = [
        Workload::PointSelect,
        Workload::Insert,
        Workload::Update,
        Workload::EximJoin,
        Workload::Greylist,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Workload::PointSelect => "point-select",
            Workload::Insert => "insert",
            Workload::Update => "update",
            Workload::EximJoin => "exim-join",
            Workload::Greylist => "greylist",
        }
    }

    /// The measured statement, with `?` placeholders.
    pub fn statement(self) -> &'static str {
        match self {
            Workload::PointSelect => schema::POINT_SELECT_SQL,
            Workload::Insert => schema::INSERT_SQL,
            Workload::Update => schema::UPDATE_SQL,
            Workload::EximJoin => schema::EXIM_JOIN_SQL,
            Workload::Greylist => schema::GREYLIST_SQL,
        }
    }

    /// How many parameters each operation binds.
    pub fn parameter_count(self) -> usize {
        match self {
            Workload::PointSelect | Workload::Update => 1,
            Workload::EximJoin => 2,
            Workload::Insert => 3,
            Workload::Greylist => 5,
        }
    }

    /// The statements that (re)create this workload's schema, in order; the data is loaded
    /// afterwards by [`Workload::load_statements`].
    pub fn schema_statements(self) -> Vec<&'static str> {
        match self {
            Workload::PointSelect | Workload::Update => vec![
                "CREATE DATABASE IF NOT EXISTS bench",
                "DROP TABLE IF EXISTS bench.t",
                schema::KEY_VALUE_TABLE_DDL,
            ],
            Workload::Insert => vec![
                "CREATE DATABASE IF NOT EXISTS bench",
                "DROP TABLE IF EXISTS bench.t_insert",
                schema::INSERT_TABLE_DDL,
            ],
            Workload::EximJoin => vec![
                "CREATE DATABASE IF NOT EXISTS calmail",
                "DROP TABLE IF EXISTS calmail.account",
                "DROP TABLE IF EXISTS calmail.domain",
                schema::CALMAIL_DOMAIN_DDL,
                schema::CALMAIL_ACCOUNT_DDL,
            ],
            Workload::Greylist => vec![
                "CREATE DATABASE IF NOT EXISTS greylist",
                "DROP FUNCTION IF EXISTS greylist.greylist_defer_p",
                "DROP TABLE IF EXISTS greylist.greylist_triplet",
                "DROP TABLE IF EXISTS greylist.greylist_client",
                schema::GREYLIST_TRIPLET_DDL,
                schema::GREYLIST_CLIENT_DDL,
                schema::GREYLIST_FUNCTION_DDL,
            ],
        }
    }

    /// Multi-row `INSERT` statements that load a data set of `rows` rows, `batch_rows` rows per
    /// statement, each with the number of rows it must insert.
    pub fn load_statements(self, rows: u64, batch_rows: u64) -> LoadStatements {
        let batch_rows = batch_rows.max(1);
        let tables = match self {
            Workload::PointSelect | Workload::Update => vec![LoadTable::KeyValue { rows }],
            Workload::Insert => vec![],
            Workload::EximJoin => vec![
                LoadTable::CalmailDomains {
                    domains: schema::calmail_domain_count(rows),
                },
                LoadTable::CalmailAccounts { rows },
            ],
            Workload::Greylist => vec![LoadTable::GreylistTriplets { rows }, LoadTable::GreylistClients { rows }],
        };
        LoadStatements {
            tables,
            table: 0,
            next_row: 0,
            batch_rows,
        }
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Workload {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Workload::ALL
            .into_iter()
            .find(|workload| workload.name() == text)
            .ok_or_else(|| {
                let names: Vec<_> = Workload::ALL
                    .iter()
                    .map(|workload| workload.name())
                    .collect();
                format!(
                    "unknown workload '{text}' (expected one of: {})",
                    names.join(", ")
                )
            })
    }
}

/// How statements travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// COM_QUERY with the parameters written into the text as literals.
    Text,
    /// COM_STMT_PREPARE once per connection, then COM_STMT_EXECUTE per operation.
    Binary,
}

impl Protocol {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Text => "text",
            Protocol::Binary => "binary",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Protocol {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "text" => Ok(Protocol::Text),
            "binary" => Ok(Protocol::Binary),
            other => Err(format!(
                "unknown protocol '{other}' (expected text or binary)"
            )),
        }
    }
}

// ---- Statement templates -----------------------------------------------------------------------

/// A statement split at its `?` placeholders, so the text protocol can fill in literals.
#[derive(Debug, Clone)]
pub struct StatementTemplate {
    sql: String,
    /// The text between placeholders; one more piece than placeholders.
    pieces: Vec<String>,
}

impl StatementTemplate {
    /// Splits `sql` at every `?` outside quoted strings and identifiers.
    pub fn parse(sql: &str) -> Self {
        let mut pieces = Vec::new();
        let mut current = String::new();
        let mut quote: Option<char> = None;
        let mut characters = sql.chars();
        while let Some(character) = characters.next() {
            match (quote, character) {
                (None, '?') => pieces.push(std::mem::take(&mut current)),
                (None, '\'' | '"' | '`') => {
                    quote = Some(character);
                    current.push(character);
                }
                (Some(open), '\\') if open != '`' => {
                    // A backslash escapes the next character inside a string literal.
                    current.push(character);
                    if let Some(escaped) = characters.next() {
                        current.push(escaped);
                    }
                }
                (Some(open), _) if character == open => {
                    // A doubled quote re-opens immediately, which this toggle handles naturally.
                    quote = None;
                    current.push(character);
                }
                _ => current.push(character),
            }
        }
        pieces.push(current);
        Self {
            sql: sql.to_owned(),
            pieces,
        }
    }

    /// The statement as written, with placeholders.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// How many placeholders the statement has.
    pub fn placeholder_count(&self) -> usize {
        self.pieces.len() - 1
    }

    /// The statement with each placeholder replaced by the matching parameter as a literal.
    pub fn render(&self, parameters: &[Value]) -> Result<String, String> {
        if parameters.len() != self.placeholder_count() {
            return Err(format!(
                "statement has {} placeholders but {} parameters were given",
                self.placeholder_count(),
                parameters.len()
            ));
        }
        let mut text = String::with_capacity(self.sql.len() + 16 * parameters.len());
        for (piece, parameter) in self.pieces.iter().zip(parameters) {
            text.push_str(piece);
            text.push_str(&literal(parameter)?);
        }
        if let Some(last) = self.pieces.last() {
            text.push_str(last);
        }
        Ok(text)
    }
}

/// A parameter as an SQL literal.
fn literal(value: &Value) -> Result<String, String> {
    match value {
        Value::NULL => Ok("NULL".to_owned()),
        Value::Int(number) => Ok(number.to_string()),
        Value::UInt(number) => Ok(number.to_string()),
        Value::Bytes(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => Ok(quote_string(text)),
            Err(_) => Err("binary parameters have no text literal here".to_owned()),
        },
        other => Err(format!("no literal form for parameter {other:?}")),
    }
}

// ---- Operations ----------------------------------------------------------------------------------

/// What a correct server answers to an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// A result set with exactly this many rows.
    Rows(u64),
    /// No result set, and this many affected rows.
    Affected(u64),
    /// One row whose first column is this integer.
    Scalar(i64),
}

/// What the server answered, reduced to what [`Expected`] checks.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub rows: u64,
    pub affected_rows: u64,
    pub first_value: Option<Value>,
}

impl Expected {
    /// `Ok` when `outcome` is the right answer; otherwise a message saying what was wrong.
    pub fn check(self, outcome: &Outcome) -> Result<(), String> {
        match self {
            Expected::Rows(rows) if outcome.rows == rows => Ok(()),
            Expected::Rows(rows) => Err(format!(
                "wrong result: expected {rows} row(s), got {}",
                outcome.rows
            )),
            Expected::Affected(affected)
                if outcome.affected_rows == affected && outcome.rows == 0 =>
            {
                Ok(())
            }
            Expected::Affected(affected) => Err(format!(
                "wrong result: expected {affected} affected row(s) and no rows, got {} affected and {} row(s)",
                outcome.affected_rows, outcome.rows
            )),
            Expected::Scalar(expected) => {
                if outcome.rows != 1 {
                    return Err(format!(
                        "wrong result: expected 1 row, got {}",
                        outcome.rows
                    ));
                }
                match outcome.first_value.as_ref().and_then(integer_value) {
                    Some(value) if value == expected => Ok(()),
                    Some(value) => Err(format!("wrong result: expected {expected}, got {value}")),
                    None => Err(format!(
                        "wrong result: expected {expected}, got {:?}",
                        outcome.first_value
                    )),
                }
            }
        }
    }
}

/// The integer in a value as either protocol delivers it (text rows carry digits as bytes).
fn integer_value(value: &Value) -> Option<i64> {
    match value {
        Value::Int(number) => Some(*number),
        Value::UInt(number) => i64::try_from(*number).ok(),
        Value::Bytes(bytes) => std::str::from_utf8(bytes).ok()?.trim().parse().ok(),
        _ => None,
    }
}

/// One operation: the parameters to bind and the answer to expect.
#[derive(Debug, Clone)]
pub struct Operation {
    pub parameters: Vec<Value>,
    pub expected: Expected,
}

/// Chooses operations for one connection. Keys are uniform over the data set; fresh keys (for
/// `insert` and new greylisting triplets) are unique across connections and runs.
#[derive(Debug)]
pub struct OperationGenerator {
    workload: Workload,
    rows: u64,
    rng: SplitMix64,
    connection: u64,
    connections: u64,
    sequence: u64,
    first_insert_key: u64,
    run_nonce: u64,
}

/// Every how many greylisting calls one uses a triplet never seen before (and must be deferred);
/// the others revisit known triplets (and must pass), as most real deliveries do.
pub const GREYLIST_NEW_TRIPLET_EVERY: u64 = 10;

impl OperationGenerator {
    /// The generator of connection `connection` of `connections`. `first_insert_key` is the
    /// lowest key `insert` may use; `run_nonce` distinguishes this run's new triplets from every
    /// earlier run's; `seed` fixes the key sequence.
    pub fn new(
        workload: Workload,
        rows: u64,
        connection: u64,
        connections: u64,
        first_insert_key: u64,
        run_nonce: u64,
        seed: u64,
    ) -> Self {
        Self {
            workload,
            rows: rows.max(1),
            rng: SplitMix64::new(mix(seed ^ connection.wrapping_mul(0xA24B_AED4_963E_E407))),
            connection,
            connections: connections.max(1),
            sequence: 0,
            first_insert_key,
            run_nonce,
        }
    }

    /// The next operation.
    pub fn next_operation(&mut self) -> Operation {
        let sequence = self.sequence;
        self.sequence += 1;
        match self.workload {
            Workload::PointSelect => Operation {
                parameters: vec![Value::UInt(1 + self.rng.below(self.rows))],
                expected: Expected::Rows(1),
            },
            Workload::Update => Operation {
                parameters: vec![Value::UInt(1 + self.rng.below(self.rows))],
                expected: Expected::Affected(1),
            },
            Workload::Insert => {
                // Connections take interleaved keys: connection c of N uses base + c, base + c + N,
                // base + c + 2N, ..., so no two connections ever pick the same key.
                let id = self.first_insert_key + self.connection + sequence * self.connections;
                let (k, c) = schema::key_value_row(id);
                Operation {
                    parameters: vec![
                        Value::UInt(id),
                        Value::UInt(k),
                        Value::Bytes(c.into_bytes()),
                    ],
                    expected: Expected::Affected(1),
                }
            }
            Workload::EximJoin => {
                let index = self.rng.below(self.rows);
                let account = schema::calmail_account(index, self.rows);
                let domain = schema::calmail_domain_name(account.domain_index);
                Operation {
                    parameters: vec![
                        Value::Bytes(account.localpart.into_bytes()),
                        Value::Bytes(domain.into_bytes()),
                    ],
                    expected: Expected::Rows(u64::from(account.active)),
                }
            }
            Workload::Greylist => {
                let is_new = self.rng.below(GREYLIST_NEW_TRIPLET_EVERY) == 0;
                let triplet = if is_new {
                    schema::greylist_new_triplet(self.run_nonce, self.connection, sequence)
                } else {
                    schema::greylist_known_triplet(self.rng.below(self.rows))
                };
                // (key, ip, awl_count, delay, timestamp_update): known triplets pass (0),
                // whether their client is whitelisted yet or not; new ones are deferred (1).
                Operation {
                    parameters: vec![
                        Value::Bytes(triplet.key.into_bytes()),
                        Value::Bytes(triplet.client_ip.into_bytes()),
                        Value::Int(schema::GREYLIST_AWL_COUNT),
                        Value::Int(schema::GREYLIST_DELAY_S),
                        Value::Int(1),
                    ],
                    expected: Expected::Scalar(i64::from(is_new)),
                }
            }
        }
    }
}

// ---- Data loading ----------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum LoadTable {
    KeyValue { rows: u64 },
    CalmailDomains { domains: u64 },
    CalmailAccounts { rows: u64 },
    GreylistTriplets { rows: u64 },
    GreylistClients { rows: u64 },
}

impl LoadTable {
    fn row_count(self) -> u64 {
        match self {
            LoadTable::KeyValue { rows }
            | LoadTable::CalmailAccounts { rows }
            | LoadTable::GreylistTriplets { rows }
            | LoadTable::GreylistClients { rows } => rows,
            LoadTable::CalmailDomains { domains } => domains,
        }
    }

    fn insert_prefix(self) -> &'static str {
        match self {
            LoadTable::KeyValue { .. } => "INSERT INTO bench.t (id, n, k, c) VALUES ",
            LoadTable::CalmailDomains { .. } => "INSERT INTO calmail.domain (id, name) VALUES ",
            LoadTable::CalmailAccounts { .. } => {
                "INSERT INTO calmail.account (id, domain_id, localpart, host, state) VALUES "
            }
            LoadTable::GreylistTriplets { .. } => {
                "INSERT INTO greylist.greylist_triplet (net, k, first_seen, last_seen, attempts) VALUES "
            }
            LoadTable::GreylistClients { .. } => "INSERT INTO greylist.greylist_client (ip, passes, last_seen) VALUES ",
        }
    }

    /// The parenthesised values of row `index` (0-based).
    fn row_values(self, index: u64) -> String {
        match self {
            LoadTable::KeyValue { .. } => {
                let id = index + 1;
                let (k, c) = schema::key_value_row(id);
                format!("({id}, 0, {k}, {})", quote_string(&c))
            }
            LoadTable::CalmailDomains { .. } => {
                format!(
                    "({}, {})",
                    index + 1,
                    quote_string(&schema::calmail_domain_name(index))
                )
            }
            LoadTable::CalmailAccounts { rows } => {
                let account = schema::calmail_account(index, rows);
                format!(
                    "({}, {}, {}, {}, {})",
                    index + 1,
                    account.domain_index + 1,
                    quote_string(&account.localpart),
                    quote_string(&account.host),
                    if account.active {
                        "'active'"
                    } else {
                        "'suspended'"
                    }
                )
            }
            LoadTable::GreylistTriplets { .. } => {
                // Timestamps come from the server's clock, the same clock the function reads, so
                // client clock skew cannot turn a known triplet into a deferred one.
                // The /24 network is computed by the server, as the function computes it.
                let triplet = schema::greylist_known_triplet(index);
                let ip = quote_string(&triplet.client_ip);
                format!(
                    "(INET_ATON({ip}) - INET_ATON({ip}) % 256, {}, UNIX_TIMESTAMP() - 86400, UNIX_TIMESTAMP() - 3600, 1)",
                    quote_string(&triplet.key)
                )
            }
            LoadTable::GreylistClients { .. } => {
                let triplet = schema::greylist_known_triplet(index);
                format!(
                    "(INET_ATON({}), {}, UNIX_TIMESTAMP() - 3600)",
                    quote_string(&triplet.client_ip),
                    schema::greylist_client_passes(index)
                )
            }
        }
    }
}

/// An iterator over the loading statements of a workload, generated lazily so a large data set
/// never sits in memory as text.
#[derive(Debug)]
pub struct LoadStatements {
    tables: Vec<LoadTable>,
    table: usize,
    next_row: u64,
    batch_rows: u64,
}

impl Iterator for LoadStatements {
    /// The statement and the number of rows it inserts.
    type Item = (String, u64);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let table = *self.tables.get(self.table)?;
            let total = table.row_count();
            if self.next_row >= total {
                self.table += 1;
                self.next_row = 0;
                continue;
            }
            let end = (self.next_row + self.batch_rows).min(total);
            let mut statement = String::from(table.insert_prefix());
            for index in self.next_row..end {
                if index > self.next_row {
                    statement.push_str(", ");
                }
                statement.push_str(&table.row_values(index));
            }
            let inserted = end - self.next_row;
            self.next_row = end;
            return Some((statement, inserted));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for workload in Workload::ALL {
            assert_eq!(workload.name().parse::<Workload>(), Ok(workload));
            assert_eq!(
                StatementTemplate::parse(workload.statement()).placeholder_count(),
                workload.parameter_count()
            );
        }
        assert!("nope".parse::<Workload>().is_err());
        assert_eq!("binary".parse::<Protocol>(), Ok(Protocol::Binary));
    }

    #[test]
    fn template_skips_placeholders_inside_quotes() {
        let template = StatementTemplate::parse(
            "SELECT '?', \"it\\'s?\", `a?` FROM t WHERE x = ? AND y = 'o''?'",
        );
        assert_eq!(template.placeholder_count(), 1);
        let text = template.render(&[Value::UInt(7)]).expect("one parameter");
        assert_eq!(
            text,
            "SELECT '?', \"it\\'s?\", `a?` FROM t WHERE x = 7 AND y = 'o''?'"
        );
    }

    #[test]
    fn render_quotes_strings_and_checks_the_count() {
        let template = StatementTemplate::parse(schema::EXIM_JOIN_SQL);
        let text = template
            .render(&[
                Value::Bytes(b"user1".to_vec()),
                Value::Bytes(b"dept1.example.edu".to_vec()),
            ])
            .expect("two parameters");
        assert!(
            text.contains("a.localpart='user1' and d.name='dept1.example.edu'"),
            "{text}"
        );
        assert!(template.render(&[Value::UInt(1)]).is_err());
    }

    #[test]
    fn expectations_accept_right_and_reject_wrong_answers() {
        let row = |rows, value: Option<Value>| Outcome {
            rows,
            affected_rows: 0,
            first_value: value,
        };
        assert!(Expected::Rows(1).check(&row(1, None)).is_ok());
        assert!(Expected::Rows(1).check(&row(0, None)).is_err());
        let written = Outcome {
            rows: 0,
            affected_rows: 1,
            first_value: None,
        };
        assert!(Expected::Affected(1).check(&written).is_ok());
        assert!(
            Expected::Affected(1)
                .check(&Outcome {
                    affected_rows: 0,
                    ..written.clone()
                })
                .is_err()
        );
        assert!(
            Expected::Scalar(0)
                .check(&row(1, Some(Value::Bytes(b"0".to_vec()))))
                .is_ok()
        );
        assert!(
            Expected::Scalar(0)
                .check(&row(1, Some(Value::Int(0))))
                .is_ok()
        );
        assert!(
            Expected::Scalar(0)
                .check(&row(1, Some(Value::Int(1))))
                .is_err()
        );
        assert!(
            Expected::Scalar(1)
                .check(&row(1, Some(Value::NULL)))
                .is_err()
        );
    }

    #[test]
    fn insert_keys_never_collide_between_connections() {
        let mut seen = std::collections::HashSet::new();
        for connection in 0..4 {
            let mut generator =
                OperationGenerator::new(Workload::Insert, 10, connection, 4, 100, 1, 1);
            for _ in 0..50 {
                let operation = generator.next_operation();
                let Some(Value::UInt(id)) = operation.parameters.first() else {
                    panic!("insert binds an id first")
                };
                assert!(*id >= 100);
                assert!(seen.insert(*id), "key {id} used twice");
            }
        }
    }

    #[test]
    fn load_statements_cover_every_row_once() {
        let statements: Vec<_> = Workload::EximJoin.load_statements(250, 100).collect();
        // 3 domains in one batch, then 250 accounts in batches of 100.
        let counts: Vec<u64> = statements.iter().map(|(_, rows)| *rows).collect();
        assert_eq!(counts, vec![3, 100, 100, 50]);
        assert!(statements[0].0.starts_with("INSERT INTO calmail.domain"));
        assert!(
            statements[1]
                .0
                .contains("(1, 1, 'user0', 'mailhost0.example.edu', 'active')")
        );
        assert_eq!(Workload::Insert.load_statements(250, 100).count(), 0);
    }
}
