//! Golden SQL scripts: `tests/golden/*.test`, each named after the behaviour it pins down.
//!
//! A script is a list of records separated by blank lines. A record is optional directive
//! lines (`-- …`), SQL (several statements on one line are one multi-statement text), a
//! `----` line and the expected output. `#` lines are comments. Run with `UPDATE_GOLDEN=1` to
//! rewrite the expected outputs from what the engine answers (then review the diff: the
//! expectations must be what MySQL would answer).
//!
//! Directives:
//! - `-- meta`: print each result column's metadata (type, length, flags, charset, decimals).
//! - `-- session NAME [found_rows] [single] [db=DB] [collation=ID]`: switch to (or open) a
//!   session; `single` turns CLIENT_MULTI_STATEMENTS off.
//! - `-- prepare NAME`: prepare the SQL of the record as NAME.
//! - `-- execute NAME [v1, v2, …]`: execute NAME with parameters (`1`, `-2`, `'text'`,
//!   `NULL`, `1.5` as DECIMAL, `d:1.5` as DOUBLE, `u:5` as unsigned).
//! - `-- file TEXT`: the client's file for a LOAD DATA LOCAL of the record (`\n`, `\t`, `\r`
//!   and `\\` unescaped), sent in 3-byte pieces; without it the client sends no file.
//! - `-- session NAME … local_files`: the client offers CLIENT_LOCAL_FILES.
//! - `-- close NAME`, `-- reset` (COM_RESET_CONNECTION), `-- use DB` (COM_INIT_DB),
//!   `-- fields TABLE` (COM_FIELD_LIST), `-- status` (status flags after the record's SQL),
//!   `-- requests` (after the
//!   record's SQL, the requests each node group received for it), `-- clock +SECONDS`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use cairn_common::decimal::Decimal;
use cairn_common::types::{ColumnType, column_flag, type_code};
use cairn_common::value::format_double;
use cairn_common::Value;
use cairn_sql::testing::MemoryCluster;
use cairn_sql::{ColumnMeta, Engine, EngineConfig, ManualClock, Outcome, Session, SessionInfo};

/// 2024-05-06 07:08:09.123456 UTC.
const START_MICROS: i64 = 1_714_979_289_123_456;

struct Runner {
    cluster: Arc<MemoryCluster>,
    engine: Arc<Engine<MemoryCluster>>,
    clock: Arc<ManualClock>,
    sessions: HashMap<String, Session<MemoryCluster>>,
    current: String,
    prepared: HashMap<String, u32>,
    next_connection: u64,
}

fn type_name(code: u8) -> &'static str {
    match code {
        type_code::DECIMAL => "DECIMAL",
        type_code::TINY => "TINY",
        type_code::SHORT => "SHORT",
        type_code::LONG => "LONG",
        type_code::FLOAT => "FLOAT",
        type_code::DOUBLE => "DOUBLE",
        type_code::NULL => "NULL",
        type_code::TIMESTAMP => "TIMESTAMP",
        type_code::LONGLONG => "LONGLONG",
        type_code::INT24 => "INT24",
        type_code::DATE => "DATE",
        type_code::TIME => "TIME",
        type_code::DATETIME => "DATETIME",
        type_code::YEAR => "YEAR",
        type_code::VARCHAR => "VARCHAR",
        type_code::NEWDECIMAL => "NEWDECIMAL",
        type_code::ENUM => "ENUM",
        type_code::BLOB => "BLOB",
        type_code::VAR_STRING => "VAR_STRING",
        type_code::STRING => "STRING",
        _ => "?",
    }
}

fn flag_names(flags: u16) -> String {
    let names = [
        (column_flag::NOT_NULL, "NOT_NULL"),
        (column_flag::PRI_KEY, "PRI_KEY"),
        (column_flag::UNIQUE_KEY, "UNIQUE_KEY"),
        (column_flag::MULTIPLE_KEY, "MULTIPLE_KEY"),
        (column_flag::BLOB, "BLOB"),
        (column_flag::UNSIGNED, "UNSIGNED"),
        (column_flag::ZEROFILL, "ZEROFILL"),
        (column_flag::BINARY, "BINARY"),
        (column_flag::ENUM, "ENUM"),
        (column_flag::AUTO_INCREMENT, "AUTO_INCREMENT"),
        (column_flag::TIMESTAMP, "TIMESTAMP"),
        (column_flag::SET, "SET"),
        (column_flag::NO_DEFAULT_VALUE, "NO_DEFAULT_VALUE"),
        (column_flag::ON_UPDATE_NOW, "ON_UPDATE_NOW"),
        (16384, "PART_KEY"),
        (column_flag::NUM, "NUM"),
    ];
    let parts: Vec<&str> = names.iter().filter(|(bit, _)| flags & bit != 0).map(|(_, n)| *n).collect();
    if parts.is_empty() { "-".into() } else { parts.join("|") }
}

/// A value as the text protocol shows it.
fn show_value(v: &Value, column: &ColumnMeta) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Text(s) if s.is_empty() => "(empty)".into(),
        Value::Text(s) => s.replace('\n', "\\n"),
        Value::Bytes(b) if b.is_empty() => "(empty)".into(),
        Value::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) if s.chars().all(|c| !c.is_control()) => s.to_string(),
            _ => format!("0x{}", b.iter().map(|x| format!("{x:02X}")).collect::<String>()),
        },
        Value::Double(d) if matches!(column.ty, Some(ColumnType::Float)) => format!("{}", *d as f32),
        Value::Double(d) => format_double(*d),
        Value::DateTime(dt) => dt.format(column.decimals.min(6)),
        Value::Time(t) => t.format(column.decimals.min(6)),
        other => other.to_text().into_owned(),
    }
}

fn parse_param(text: &str) -> Value {
    let t = text.trim();
    if t.eq_ignore_ascii_case("NULL") {
        return Value::Null;
    }
    if let Some(rest) = t.strip_prefix("d:") {
        return Value::Double(rest.parse().expect("double parameter"));
    }
    if let Some(rest) = t.strip_prefix("u:") {
        return Value::UInt(rest.parse().expect("unsigned parameter"));
    }
    if t.starts_with('\'') && t.ends_with('\'') && t.len() >= 2 {
        return Value::text(&t[1..t.len() - 1]);
    }
    if let Ok(i) = t.parse::<i64>() {
        return Value::Int(i);
    }
    if let Some(d) = Decimal::parse(t) {
        return Value::Decimal(d);
    }
    panic!("cannot read parameter {t}")
}

/// Splits a parameter list on commas outside quotes.
fn split_params(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                current.push(c);
            }
            ',' if !quoted => out.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    if !current.trim().is_empty() {
        out.push(current);
    }
    out
}

impl Runner {
    fn new() -> Runner {
        let cluster = MemoryCluster::new(2);
        let clock = Arc::new(ManualClock::new(START_MICROS));
        let config = EngineConfig { node_id: 50, clock: clock.clone(), auto_increment_prefetch: 1000, scan_batch_rows: 7, ..EngineConfig::default() };
        let engine = Engine::new(cluster.clone(), config);
        let mut runner = Runner {
            cluster,
            engine,
            clock,
            sessions: HashMap::new(),
            current: "main".into(),
            prepared: HashMap::new(),
            next_connection: 1,
        };
        runner.open("main", SessionInfo::default());
        runner
    }

    fn open(&mut self, name: &str, mut info: SessionInfo) {
        info.connection_id = self.next_connection;
        self.next_connection += 1;
        let mut session = Session::new(self.engine.clone(), info);
        // The main session offers local files as the mysql CLI does.
        session.set_local_files(name == "main");
        self.sessions.insert(name.to_string(), session);
    }

    fn session(&mut self) -> &mut Session<MemoryCluster> {
        self.sessions.get_mut(&self.current).expect("current session exists")
    }

    async fn print(&mut self, outcome: Outcome, meta: bool, out: &mut String) {
        match outcome {
            Outcome::Ok { affected_rows, last_insert_id, info, warnings } => {
                let mut line = format!("ok affected={affected_rows}");
                if last_insert_id != 0 {
                    let _ = write!(line, " last_insert_id={last_insert_id}");
                }
                if warnings != 0 {
                    let _ = write!(line, " warnings={warnings}");
                }
                if !info.is_empty() {
                    let _ = write!(line, " info=\"{info}\"");
                }
                out.push_str(&line);
                out.push('\n');
            }
            Outcome::Error(e) => {
                let _ = writeln!(out, "error {} {} {}", e.code(), e.sqlstate(), e.message);
            }
            Outcome::LocalInfile(name) => {
                let _ = writeln!(out, "local infile '{name}'");
            }
            Outcome::Rows { columns, rows, warnings } => {
                if meta {
                    for c in columns.iter() {
                        let _ = writeln!(
                            out,
                            "meta {} {} len={} decimals={} charset={} flags={} source={}.{}.{}.{}",
                            c.name,
                            type_name(c.type_code()),
                            c.length,
                            c.decimals,
                            c.charset,
                            flag_names(c.flags),
                            c.schema,
                            c.table,
                            c.org_table,
                            c.org_name
                        );
                    }
                }
                let header: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
                out.push_str(&header.join(" | "));
                out.push('\n');
                match rows.collect().await {
                    Ok(rows) => {
                        for row in rows {
                            let cells: Vec<String> = row.iter().zip(columns.iter()).map(|(v, c)| show_value(v, c)).collect();
                            out.push_str(&cells.join(" | "));
                            out.push('\n');
                        }
                    }
                    Err(e) => {
                        let _ = writeln!(out, "error {} {} {}", e.code(), e.sqlstate(), e.message);
                    }
                }
                if warnings != 0 {
                    let _ = writeln!(out, "warnings={warnings}");
                }
            }
        }
    }

    async fn run_record(&mut self, directives: &[String], sql: &str, out: &mut String) {
        let mut meta = false;
        let mut prepare_as = None;
        let mut show_requests = false;
        let mut show_status = false;
        let mut file: Option<Vec<u8>> = None;
        for d in directives {
            let words: Vec<&str> = d.split_whitespace().collect();
            match words.get(1).copied() {
                Some("meta") => meta = true,
                Some("session") => {
                    let name = words.get(2).expect("session name").to_string();
                    if !self.sessions.contains_key(&name) {
                        let mut info = SessionInfo::default();
                        let mut local_files = false;
                        for w in &words[3..] {
                            match *w {
                                "local_files" => local_files = true,
                                "found_rows" => info.found_rows = true,
                                "single" => info.multi_statements = false,
                                w if w.starts_with("db=") => info.database = Some(w[3..].to_string()),
                                w if w.starts_with("collation=") => info.collation_id = w[10..].parse().expect("collation id"),
                                other => panic!("unknown session option {other}"),
                            }
                        }
                        self.open(&name, info);
                        if let Some(session) = self.sessions.get_mut(&name) {
                            session.set_local_files(local_files);
                        }
                    }
                    self.current = name;
                }
                Some("prepare") => prepare_as = Some(words.get(2).expect("statement name").to_string()),
                Some("execute") => {
                    let name = words.get(2).expect("statement name");
                    let id = *self.prepared.get(*name).expect("prepared statement");
                    let rest = d.splitn(4, ' ').nth(3).unwrap_or("");
                    let params: Vec<Value> = split_params(rest).iter().map(|p| parse_param(p)).collect();
                    let outcome = self.session().execute_prepared(id, params).await;
                    // A prepared CALL's result sets come before its own answer.
                    for result in self.session().take_call_results() {
                        self.print(result, meta, out).await;
                    }
                    self.print(outcome, meta, out).await;
                }
                Some("close") => {
                    let name = words.get(2).expect("statement name");
                    if let Some(id) = self.prepared.remove(*name) {
                        self.session().close_prepared(id);
                    }
                    out.push_str("closed\n");
                }
                Some("reset") => {
                    self.session().reset().await;
                    out.push_str("reset\n");
                }
                Some("use") => {
                    let db = words.get(2).expect("database");
                    match self.session().use_database(db).await {
                        Ok(()) => out.push_str("ok\n"),
                        Err(e) => {
                            let _ = writeln!(out, "error {} {} {}", e.code(), e.sqlstate(), e.message);
                        }
                    }
                }
                Some("fields") => {
                    let table = words.get(2).expect("table");
                    match self.session().field_list(table).await {
                        Ok(columns) => {
                            for c in columns {
                                let _ = writeln!(out, "field {} {} len={} flags={} charset={}", c.name, type_name(c.type_code()), c.length, flag_names(c.flags), c.charset);
                            }
                        }
                        Err(e) => {
                            let _ = writeln!(out, "error {} {} {}", e.code(), e.sqlstate(), e.message);
                        }
                    }
                }
                Some("status") => show_status = true,
                Some("file") => {
                    let text = d.splitn(3, ' ').nth(2).unwrap_or("");
                    file = Some(unescape(text));
                }
                Some("requests") => {
                    self.cluster.reset_requests();
                    show_requests = true;
                }
                Some("clock") => {
                    let seconds: i64 = words.get(2).expect("seconds").trim_start_matches('+').parse().expect("seconds");
                    self.clock.advance(seconds * 1_000_000);
                }
                other => panic!("unknown directive {other:?}"),
            }
        }
        if !sql.trim().is_empty() {
            self.run_sql(sql, meta, prepare_as, file, out).await;
        }
        if show_status {
            let flags = self.session().status_flags();
            let _ = writeln!(out, "status in_trans={} autocommit={}", flags & 1 != 0, flags & 2 != 0);
        }
        if show_requests {
            for (group, r) in self.cluster.requests() {
                if r != Default::default() {
                    let _ = write!(
                        out,
                        "requests to group {group}: gets={} scans={} counts={} writes={} write_ops={}",
                        r.gets, r.scans, r.counts, r.writes, r.write_ops
                    );
                    // Index scans and pushed aggregations only where they happen, so that the
                    // scripts written before them read as they did.
                    if r.index_scans > 0 {
                        let _ = write!(out, " index_scans={}", r.index_scans);
                    }
                    if r.aggregates > 0 {
                        let _ = write!(out, " aggregates={}", r.aggregates);
                    }
                    let _ = writeln!(out);
                }
            }
        }
    }

    async fn run_sql(&mut self, sql: &str, meta: bool, prepare_as: Option<String>, file: Option<Vec<u8>>, out: &mut String) {
        if let Some(name) = prepare_as {
            match self.session().prepare(sql).await {
                Ok(info) => {
                    let _ = writeln!(out, "prepared params={} columns={}", info.param_count, info.columns.len());
                    if meta {
                        for c in &info.columns {
                            let _ = writeln!(out, "meta {} {} len={} flags={}", c.name, type_name(c.type_code()), c.length, flag_names(c.flags));
                        }
                    }
                    self.prepared.insert(name, info.id);
                }
                Err(e) => {
                    let _ = writeln!(out, "error {} {} {}", e.code(), e.sqlstate(), e.message);
                }
            }
            return;
        }
        // As the daemon does: the process list shows the command while it runs.
        self.session().begin_command("Query", Some(sql));
        let mut outcomes = self.session().execute(sql).await;
        // LOAD DATA LOCAL: send the file (or nothing), then the rest of the text runs.
        while matches!(outcomes.last(), Some(Outcome::LocalInfile(_))) {
            for outcome in outcomes.drain(..) {
                self.print(outcome, meta, out).await;
            }
            for piece in file.as_deref().unwrap_or_default().chunks(3) {
                self.session().local_infile_data(piece).await;
            }
            outcomes = self.session().local_infile_end().await.into_iter().map(|(o, _)| o).collect();
        }
        self.session().end_command();
        for outcome in outcomes {
            self.print(outcome, meta, out).await;
        }
    }
}

/// Unescapes `\n`, `\t`, `\r` and `\\` in a `-- file` directive.
fn unescape(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        match chars.next() {
            Some('n') => out.push(b'\n'),
            Some('t') => out.push(b'\t'),
            Some('r') => out.push(b'\r'),
            Some(other) => {
                let mut buf = [0; 4];
                out.extend_from_slice(other.encode_utf8(&mut buf).as_bytes());
            }
            None => out.push(b'\\'),
        }
    }
    out
}

/// Runs a script and returns it with the actual outputs in place of the expected ones.
async fn run_script(text: &str) -> String {
    let mut runner = Runner::new();
    let mut out = String::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.trim().is_empty() || line.starts_with('#') {
            out.push_str(line);
            out.push('\n');
            i += 1;
            continue;
        }
        // A record: directives and SQL up to `----`, then the expected output up to a blank line.
        let mut directives = Vec::new();
        let mut sql = Vec::new();
        while i < lines.len() && lines[i] != "----" {
            if lines[i].starts_with("-- ") {
                directives.push(lines[i].to_string());
            } else {
                sql.push(lines[i]);
            }
            out.push_str(lines[i]);
            out.push('\n');
            i += 1;
        }
        out.push_str("----\n");
        i += 1;
        while i < lines.len() && !lines[i].trim().is_empty() {
            i += 1;
        }
        let mut actual = String::new();
        runner.run_record(&directives, &sql.join("\n"), &mut actual).await;
        out.push_str(&actual);
    }
    out
}

fn golden_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("golden")
}

#[tokio::test]
async fn golden_scripts() {
    let update = std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1");
    let mut failures = BTreeMap::new();
    let mut entries: Vec<_> = std::fs::read_dir(golden_dir()).expect("golden directory").flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if path.extension().and_then(|e| e.to_str()) != Some("test") {
            continue;
        }
        let expected = std::fs::read_to_string(&path).expect("readable script");
        let actual = run_script(&expected).await;
        if actual != expected {
            if update {
                std::fs::write(&path, &actual).expect("writable script");
            } else {
                failures.insert(path.file_name().unwrap_or_default().to_string_lossy().into_owned(), (expected, actual));
            }
        }
    }
    if !failures.is_empty() {
        let mut report = String::new();
        for (name, (expected, actual)) in &failures {
            let _ = writeln!(report, "=== {name}: first differences");
            let mut shown = 0;
            for (n, (e, a)) in expected.lines().zip(actual.lines()).enumerate() {
                if e != a && shown < 8 {
                    let _ = writeln!(report, "  line {}:\n    expected: {e}\n    actual:   {a}", n + 1);
                    shown += 1;
                }
            }
            if expected.lines().count() != actual.lines().count() {
                let _ = writeln!(report, "  line counts differ: expected {}, actual {}", expected.lines().count(), actual.lines().count());
            }
        }
        panic!("golden scripts differ (UPDATE_GOLDEN=1 regenerates; review the diff):\n{report}");
    }
}
