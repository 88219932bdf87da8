//! Golden-script tests: each file in `tests/scripts/` is a sequence of commands against one
//! store with the output each one gave, indented by two spaces under it. The test runs the
//! commands and compares the whole file; `UPDATE_GOLDEN=1 cargo test -p cairn-storage --test
//! golden` rewrites the outputs instead (review the diff before keeping it).
//!
//! The script language (one command per line; `#` starts a comment line):
//!
//! ```text
//! table t (id int unsigned primary key, name varchar(20) not null, n int) partitions=4 groups=1
//! insert t (1, 'alice', 0), (2, 'bob', 5) [ignore | replace | on duplicate n = n + values(n)]
//! update t [key (1)] set n = n + 1 [where n > 0] [limit 2]
//! delete t [key (1)] [where n > 0] [limit 2]
//! truncate t | drop t | reserve t 10 [at_least 100]
//! batch <write>; <write>; ...        one atomic batch of several ops
//! propose <write>                    evaluate and add to the pending overlay, do not apply
//! apply [all | N]                    apply the oldest pending write set(s)
//! foreign <write>                    apply a write set this leader did not propose
//! replay                             apply the last applied write set again
//! get t (1) | rows t | count t
//! scan t [partitions=0,1] [where e] [select a, b] [limit n] [max_rows=n] [max_bytes=n] [resume=p:s]
//! scan-all t [same options]          repeat the scan from its resume position until done
//! fill t N                           insert N generated rows (keys 1..N) in batches
//! memory [data_memory=SIZE]          per-table memory and the DataMemory report line
//! limits [data_memory=SIZE] [max_rows=N]
//! compact | check | restart          restart: rebuild the store from its own partition rows
//! ```
//!
//! Writes print the write set (`put p2 (…)`, `delete p2 key (…)`) and the outcome or error. A
//! write without `propose` is applied at once, with every write set proposed before it (a log
//! applies in order).

mod support;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use cairn_common::catalog::{Catalog, ColumnDef, ColumnDefault, TableDef};
use cairn_common::collation::Collation;
use cairn_common::decimal::Decimal;
use cairn_common::expr::{ArithOp, CmpOp, EvalContext, Expr};
use cairn_common::functions::Func;
use cairn_common::ids::{NodeGroupId, PartitionId};
use cairn_common::ops::{OnDuplicate, ReadOp, ReadResult, RowChange, ScanPosition, TableRef, WriteOp, WriteSet};
use cairn_common::row::RowLayout;
use cairn_common::types::{ColumnType, IntWidth, LobSize};
use cairn_common::value::{Value, format_double};
use cairn_storage::coerce::{Coercion, coerce};
use cairn_storage::{Limits, Pending, Store, evaluate};

type Result<T> = std::result::Result<T, String>;

// ----- Tokens -----

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Word(String),
    Num(String),
    Str(String),
    Sym(&'static str),
}

const SYMBOLS: [&str; 20] =
    ["<=>", "<=", ">=", "<>", "!=", "(", ")", ",", ";", "=", "<", ">", "+", "-", "*", "/", "%", ":", "@", "."];

fn tokenize(line: &str) -> Result<Vec<Tok>> {
    let chars: Vec<char> = line.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("unterminated string".into()),
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        s.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(ch) => {
                        s.push(*ch);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Str(s));
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            out.push(Tok::Num(chars[start..i].iter().collect()));
        } else if c.is_alphabetic() || c == '_' || c == '$' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '-' || chars[i] == '$')
            {
                i += 1;
            }
            out.push(Tok::Word(chars[start..i].iter().collect()));
        } else {
            let rest: String = chars[i..].iter().take(3).collect();
            let sym =
                SYMBOLS.iter().find(|s| rest.starts_with(**s)).ok_or_else(|| format!("unexpected character {c:?}"))?;
            i += sym.chars().count();
            out.push(Tok::Sym(sym));
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    at: usize,
}

impl Parser {
    fn new(text: &str) -> Result<Parser> {
        Ok(Parser { toks: tokenize(text)?, at: 0 })
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }

    fn done(&self) -> bool {
        self.at >= self.toks.len()
    }

    fn next(&mut self) -> Result<Tok> {
        let t = self.toks.get(self.at).cloned().ok_or("unexpected end of line")?;
        self.at += 1;
        Ok(t)
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(x)) if x.eq_ignore_ascii_case(w))
    }

    fn is_word_at(&self, offset: usize, w: &str) -> bool {
        matches!(self.toks.get(self.at + offset), Some(Tok::Word(x)) if x.eq_ignore_ascii_case(w))
    }

    fn eat_word(&mut self, w: &str) -> bool {
        if self.is_word(w) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn eat_sym(&mut self, s: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Sym(x)) if *x == s) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect_sym(&mut self, s: &str) -> Result<()> {
        if self.eat_sym(s) { Ok(()) } else { Err(format!("expected '{s}', found {:?}", self.peek())) }
    }

    fn expect_word(&mut self, w: &str) -> Result<()> {
        if self.eat_word(w) { Ok(()) } else { Err(format!("expected '{w}', found {:?}", self.peek())) }
    }

    fn word(&mut self) -> Result<String> {
        match self.next()? {
            Tok::Word(w) => Ok(w),
            other => Err(format!("expected a name, found {other:?}")),
        }
    }

    fn number(&mut self) -> Result<u64> {
        match self.next()? {
            Tok::Num(n) => parse_size(&n),
            other => Err(format!("expected a number, found {other:?}")),
        }
    }

    /// `name=value` options at the end of a command.
    fn option(&mut self, name: &str) -> bool {
        if self.is_word(name) && matches!(self.toks.get(self.at + 1), Some(Tok::Sym("="))) {
            self.at += 2;
            true
        } else {
            false
        }
    }
}

fn parse_size(text: &str) -> Result<u64> {
    let (digits, multiplier) = match text.chars().last() {
        Some('K') => (&text[..text.len() - 1], 1024),
        Some('M') => (&text[..text.len() - 1], 1 << 20),
        Some('G') => (&text[..text.len() - 1], 1 << 30),
        _ => (text, 1),
    };
    digits.parse::<u64>().map(|n| n * multiplier).map_err(|_| format!("bad number {text}"))
}

// ----- Schema -----

fn parse_type(p: &mut Parser) -> Result<ColumnType> {
    let name = p.word()?.to_ascii_lowercase();
    let mut args = Vec::new();
    let mut strings = Vec::new();
    if p.eat_sym("(") {
        loop {
            match p.next()? {
                Tok::Num(n) => args.push(n.parse::<u32>().map_err(|_| "bad type argument")?),
                Tok::Str(s) => strings.push(s),
                other => return Err(format!("bad type argument {other:?}")),
            }
            if p.eat_sym(")") {
                break;
            }
            p.expect_sym(",")?;
        }
    }
    let unsigned = p.eat_word("unsigned");
    let arg = |i: usize, default: u32| args.get(i).copied().unwrap_or(default);
    let int = |width| ColumnType::Int { width, unsigned, display: None };
    Ok(match name.as_str() {
        "tinyint" => int(IntWidth::Tiny),
        "smallint" => int(IntWidth::Small),
        "mediumint" => int(IntWidth::Medium),
        "int" | "integer" => int(IntWidth::Int),
        "bigint" => int(IntWidth::Big),
        "decimal" => ColumnType::Decimal { precision: arg(0, 10) as u8, scale: arg(1, 0) as u8 },
        "double" => ColumnType::Double,
        "float" => ColumnType::Float,
        "char" => ColumnType::Char { length: arg(0, 1), binary: false },
        "binary" => ColumnType::Char { length: arg(0, 1), binary: true },
        "varchar" => ColumnType::VarChar { length: arg(0, 255), binary: false },
        "varbinary" => ColumnType::VarChar { length: arg(0, 255), binary: true },
        "tinytext" => ColumnType::Lob { size: LobSize::Tiny, binary: false },
        "text" => ColumnType::Lob { size: LobSize::Normal, binary: false },
        "mediumtext" => ColumnType::Lob { size: LobSize::Medium, binary: false },
        "blob" => ColumnType::Lob { size: LobSize::Normal, binary: true },
        "date" => ColumnType::Date,
        "datetime" => ColumnType::DateTime { fsp: arg(0, 0) as u8 },
        "timestamp" => ColumnType::Timestamp { fsp: arg(0, 0) as u8 },
        "time" => ColumnType::Time { fsp: arg(0, 0) as u8 },
        "year" => ColumnType::Year,
        "enum" => ColumnType::Enum { values: strings },
        other => return Err(format!("unknown type {other}")),
    })
}

fn parse_column_list(p: &mut Parser, columns: &[ColumnDef]) -> Result<Vec<usize>> {
    p.expect_sym("(")?;
    let mut out = Vec::new();
    loop {
        let name = p.word()?;
        out.push(columns.iter().position(|c| c.name.eq_ignore_ascii_case(&name)).ok_or(format!("no column {name}"))?);
        if p.eat_sym(")") {
            return Ok(out);
        }
        p.expect_sym(",")?;
    }
}

fn parse_table(p: &mut Parser) -> Result<(TableDef, u32)> {
    let name = p.word()?;
    p.expect_sym("(")?;
    let mut columns: Vec<ColumnDef> = Vec::new();
    let mut primary_key = Vec::new();
    let mut partition_key = None;
    let mut auto_increment_start = 1;
    loop {
        if p.is_word("primary") && p.is_word_at(1, "key") {
            p.at += 2;
            primary_key = parse_column_list(p, &columns)?;
        } else if p.is_word("partition") && p.is_word_at(1, "key") {
            p.at += 2;
            partition_key = Some(parse_column_list(p, &columns)?);
        } else {
            let column_name = p.word()?;
            let mut column = ColumnDef::new(column_name, parse_type(p)?);
            loop {
                if p.is_word("not") && p.is_word_at(1, "null") {
                    p.at += 2;
                    column.nullable = false;
                } else if p.eat_word("null") {
                    column.nullable = true;
                } else if p.is_word("primary") && p.is_word_at(1, "key") {
                    p.at += 2;
                    primary_key = vec![columns.len()];
                } else if p.eat_word("auto_increment") {
                    column.auto_increment = true;
                } else if p.eat_word("collate") {
                    column.collation = Some(p.word()?);
                } else if p.eat_word("default") {
                    column.default = ColumnDefault::Value(literal(p)?);
                } else {
                    break;
                }
            }
            columns.push(column);
        }
        if p.eat_sym(")") {
            break;
        }
        p.expect_sym(",")?;
    }
    if primary_key.is_empty() {
        return Err("a script table needs a primary key".into());
    }
    for &k in &primary_key {
        columns[k].nullable = false;
    }
    let mut partitions = 4;
    let mut groups = 1;
    while !p.done() {
        if p.option("partitions") {
            partitions = p.number()? as u32;
        } else if p.option("groups") {
            groups = p.number()? as u32;
        } else if p.option("auto_increment") {
            auto_increment_start = p.number()?;
        } else {
            return Err(format!("unknown table option {:?}", p.peek()));
        }
    }
    let partition_key = partition_key.unwrap_or_else(|| primary_key.clone());
    let mut def = support::table(&name, columns, primary_key, partition_key, partitions);
    def.auto_increment_start = auto_increment_start;
    Ok((def, groups))
}

// ----- Expressions -----

/// Column names an expression may use: the table's, then (for ON DUPLICATE KEY UPDATE) the
/// proposed row's through VALUES(col).
struct Scope<'a> {
    columns: &'a [ColumnDef],
    values_offset: Option<usize>,
}

fn literal(p: &mut Parser) -> Result<Value> {
    let scope = Scope { columns: &[], values_offset: None };
    let e = expr(p, &scope)?;
    e.eval(&[], &mut EvalContext::detached()).map_err(|e| e.to_string())
}

fn expr(p: &mut Parser, s: &Scope<'_>) -> Result<Expr> {
    let mut left = xor_expr(p, s)?;
    while p.eat_word("or") {
        left = Expr::Or(Box::new(left), Box::new(xor_expr(p, s)?));
    }
    Ok(left)
}

fn xor_expr(p: &mut Parser, s: &Scope<'_>) -> Result<Expr> {
    let mut left = and_expr(p, s)?;
    while p.eat_word("xor") {
        left = Expr::Xor(Box::new(left), Box::new(and_expr(p, s)?));
    }
    Ok(left)
}

fn and_expr(p: &mut Parser, s: &Scope<'_>) -> Result<Expr> {
    let mut left = not_expr(p, s)?;
    while p.eat_word("and") {
        left = Expr::And(Box::new(left), Box::new(not_expr(p, s)?));
    }
    Ok(left)
}

fn not_expr(p: &mut Parser, s: &Scope<'_>) -> Result<Expr> {
    if p.eat_word("not") {
        return Ok(Expr::Not(Box::new(not_expr(p, s)?)));
    }
    comparison(p, s)
}

fn comparison(p: &mut Parser, s: &Scope<'_>) -> Result<Expr> {
    let left = additive(p, s)?;
    let collation = Collation::default();
    let ops = [
        ("=", CmpOp::Eq),
        ("<=>", CmpOp::NullSafeEq),
        ("<>", CmpOp::Ne),
        ("!=", CmpOp::Ne),
        ("<=", CmpOp::Le),
        (">=", CmpOp::Ge),
        ("<", CmpOp::Lt),
        (">", CmpOp::Gt),
    ];
    for (sym, op) in ops {
        if p.eat_sym(sym) {
            let right = additive(p, s)?;
            return Ok(Expr::Compare { op, left: Box::new(left), right: Box::new(right), collation });
        }
    }
    if p.eat_word("is") {
        let negated = p.eat_word("not");
        p.expect_word("null")?;
        return Ok(Expr::IsNull { arg: Box::new(left), negated });
    }
    let negated = p.is_word("not") && (p.is_word_at(1, "like") || p.is_word_at(1, "in") || p.is_word_at(1, "between"));
    if negated {
        p.at += 1;
    }
    if p.eat_word("like") {
        let pattern = additive(p, s)?;
        return Ok(Expr::Like { arg: Box::new(left), pattern: Box::new(pattern), escape: '\\', negated, collation });
    }
    if p.eat_word("in") {
        p.expect_sym("(")?;
        let mut list = vec![expr(p, s)?];
        while p.eat_sym(",") {
            list.push(expr(p, s)?);
        }
        p.expect_sym(")")?;
        return Ok(Expr::InList { arg: Box::new(left), list, negated, collation });
    }
    if p.eat_word("between") {
        let low = additive(p, s)?;
        p.expect_word("and")?;
        let high = additive(p, s)?;
        return Ok(Expr::Between { arg: Box::new(left), low: Box::new(low), high: Box::new(high), negated, collation });
    }
    Ok(left)
}

fn additive(p: &mut Parser, s: &Scope<'_>) -> Result<Expr> {
    let mut left = multiplicative(p, s)?;
    loop {
        let op = if p.eat_sym("+") {
            ArithOp::Add
        } else if p.eat_sym("-") {
            ArithOp::Sub
        } else {
            return Ok(left);
        };
        left = Expr::Arith { op, left: Box::new(left), right: Box::new(multiplicative(p, s)?) };
    }
}

fn multiplicative(p: &mut Parser, s: &Scope<'_>) -> Result<Expr> {
    let mut left = unary(p, s)?;
    loop {
        let op = if p.eat_sym("*") {
            ArithOp::Mul
        } else if p.eat_sym("/") {
            ArithOp::Div
        } else if p.eat_sym("%") || p.eat_word("mod") {
            ArithOp::Mod
        } else if p.eat_word("div") {
            ArithOp::IntDiv
        } else {
            return Ok(left);
        };
        left = Expr::Arith { op, left: Box::new(left), right: Box::new(unary(p, s)?) };
    }
}

fn unary(p: &mut Parser, s: &Scope<'_>) -> Result<Expr> {
    if p.eat_sym("-") {
        return Ok(Expr::Neg(Box::new(unary(p, s)?)));
    }
    primary(p, s)
}

fn number_literal(n: &str) -> Result<Value> {
    if n.contains(['e', 'E']) {
        return n.parse::<f64>().map(Value::Double).map_err(|_| format!("bad number {n}"));
    }
    if n.contains('.') {
        return Decimal::parse(n).map(Value::Decimal).ok_or(format!("bad number {n}"));
    }
    if let Ok(v) = n.parse::<i64>() {
        return Ok(Value::Int(v));
    }
    n.parse::<u64>().map(Value::UInt).map_err(|_| format!("bad number {n}"))
}

fn primary(p: &mut Parser, s: &Scope<'_>) -> Result<Expr> {
    match p.next()? {
        Tok::Num(n) => Ok(Expr::Literal(number_literal(&n)?)),
        Tok::Str(text) => Ok(Expr::Literal(Value::Text(text))),
        Tok::Sym("(") => {
            let e = expr(p, s)?;
            p.expect_sym(")")?;
            Ok(e)
        }
        Tok::Word(w) if w.eq_ignore_ascii_case("null") => Ok(Expr::Literal(Value::Null)),
        Tok::Word(w) if w.eq_ignore_ascii_case("true") => Ok(Expr::Literal(Value::Int(1))),
        Tok::Word(w) if w.eq_ignore_ascii_case("false") => Ok(Expr::Literal(Value::Int(0))),
        Tok::Word(w) if w.eq_ignore_ascii_case("values") && p.eat_sym("(") => {
            let name = p.word()?;
            p.expect_sym(")")?;
            let offset = s.values_offset.ok_or("VALUES() outside ON DUPLICATE KEY UPDATE")?;
            let at =
                s.columns.iter().position(|c| c.name.eq_ignore_ascii_case(&name)).ok_or(format!("no column {name}"))?;
            Ok(Expr::Column((offset + at) as u32))
        }
        Tok::Word(w) if p.eat_sym("(") => {
            let func = Func::from_name(&w).ok_or(format!("unknown function {w}"))?;
            let mut args = Vec::new();
            if !p.eat_sym(")") {
                loop {
                    args.push(expr(p, s)?);
                    if p.eat_sym(")") {
                        break;
                    }
                    p.expect_sym(",")?;
                }
            }
            Ok(Expr::Call { func, args })
        }
        Tok::Word(w) => {
            let at = s.columns.iter().position(|c| c.name.eq_ignore_ascii_case(&w)).ok_or(format!("no column {w}"))?;
            Ok(Expr::Column(at as u32))
        }
        other => Err(format!("unexpected {other:?} in an expression")),
    }
}

// ----- Printing -----

fn show_value(v: &Value) -> String {
    // Long strings are abbreviated so that scripts stay readable.
    if let Value::Text(s) = v {
        let chars = s.chars().count();
        if chars > 40 {
            let head: String = s.chars().take(12).collect();
            return format!("{}... ({chars} characters)", Value::Text(head).to_sql_literal().trim_end_matches('\''));
        }
    }
    match v {
        Value::Null => "NULL".into(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Double(d) => format_double(*d),
        Value::Decimal(d) => d.to_string(),
        other => other.to_sql_literal(),
    }
}

fn show_row(layout: &RowLayout, row: &[u8]) -> String {
    match layout.decode(row) {
        Ok(values) => format!("({})", values.iter().map(show_value).collect::<Vec<_>>().join(", ")),
        Err(e) => format!("<undecodable: {e}>"),
    }
}

/// Reads back an encoded primary key for display (integers and strings; hex otherwise).
fn show_key(def: &TableDef, key: &[u8]) -> String {
    let mut parts = Vec::new();
    let mut at = 0;
    for &c in &def.primary_key {
        let Some(&tag) = key.get(at) else { break };
        at += 1;
        if tag == 0 {
            parts.push("NULL".to_string());
            continue;
        }
        match &def.columns[c].ty {
            ColumnType::Int { unsigned, .. } if key.len() >= at + 8 => {
                let raw = u64::from_be_bytes(key[at..at + 8].try_into().unwrap());
                at += 8;
                parts.push(if *unsigned { raw.to_string() } else { ((raw ^ (1 << 63)) as i64).to_string() });
            }
            ty if ty.is_string() && !matches!(ty, ColumnType::Enum { .. }) => {
                let mut bytes = Vec::new();
                while at + 1 < key.len() {
                    if key[at] == 0 && key[at + 1] == 0 {
                        at += 2;
                        break;
                    }
                    if key[at] == 0 {
                        bytes.push(0);
                        at += 2;
                    } else {
                        bytes.push(key[at]);
                        at += 1;
                    }
                }
                parts.push(Value::Text(String::from_utf8_lossy(&bytes).into_owned()).to_sql_literal());
            }
            _ => {
                parts.push(key[at..].iter().map(|b| format!("{b:02x}")).collect());
                at = key.len();
            }
        }
    }
    format!("({})", parts.join(", "))
}

// ----- The runner -----

struct Runner {
    catalog: Catalog,
    store: Store,
    pending: Pending,
    proposed: Vec<(u64, WriteSet)>,
    last_applied: Option<WriteSet>,
    next_token: u64,
    limits: Limits,
}

impl Runner {
    fn new() -> Runner {
        Runner {
            catalog: support::catalog(),
            store: Store::new(NodeGroupId(0)),
            pending: Pending::new(),
            proposed: Vec::new(),
            last_applied: None,
            next_token: 1,
            limits: Limits::default(),
        }
    }

    fn table(&self, name: &str) -> Result<TableDef> {
        self.catalog.table_by_name(support::DATABASE, name).cloned().ok_or(format!("no table {name}"))
    }

    fn table_ref(def: &TableDef) -> TableRef {
        TableRef { id: def.id, version: def.version }
    }

    /// Reads a row literal `(v, ...)` coerced to the table's columns.
    fn row_values(&self, p: &mut Parser, columns: &[&ColumnDef]) -> Result<Vec<Value>> {
        p.expect_sym("(")?;
        let mut values = Vec::new();
        loop {
            values.push(literal(p)?);
            if p.eat_sym(")") {
                break;
            }
            p.expect_sym(",")?;
        }
        if values.len() != columns.len() {
            return Err(format!("expected {} values, got {}", columns.len(), values.len()));
        }
        let mut cx = Coercion::strict();
        columns.iter().zip(values).map(|(c, v)| coerce(v, c, &mut cx).map_err(|e| e.to_string())).collect()
    }

    fn key_values(&self, p: &mut Parser, def: &TableDef) -> Result<Vec<Value>> {
        let columns: Vec<&ColumnDef> = def.primary_key.iter().map(|&c| &def.columns[c]).collect();
        self.row_values(p, &columns)
    }

    fn assignments(&self, p: &mut Parser, def: &TableDef, values_offset: Option<usize>) -> Result<Vec<(u32, Expr)>> {
        let scope = Scope { columns: &def.columns, values_offset };
        let mut out = Vec::new();
        loop {
            let name = p.word()?;
            let at = def.column_index(&name).ok_or(format!("no column {name}"))?;
            p.expect_sym("=")?;
            out.push((at as u32, expr(p, &scope)?));
            if !p.eat_sym(",") {
                return Ok(out);
            }
        }
    }

    /// Parses one write command into ops.
    fn write_ops(&self, p: &mut Parser) -> Result<Vec<WriteOp>> {
        let verb = p.word()?.to_ascii_lowercase();
        let def = self.table(&p.word()?)?;
        let table = Runner::table_ref(&def);
        let scope = Scope { columns: &def.columns, values_offset: None };
        let mut ops = Vec::new();
        match verb.as_str() {
            "insert" => {
                let columns: Vec<&ColumnDef> = def.columns.iter().collect();
                let layout = def.layout();
                let mut rows = Vec::new();
                loop {
                    let values = self.row_values(p, &columns)?;
                    rows.push(layout.encode_to_vec(&values).map_err(|e| e.to_string())?);
                    if !p.eat_sym(",") {
                        break;
                    }
                }
                let on_duplicate = if p.eat_word("ignore") {
                    OnDuplicate::Ignore
                } else if p.eat_word("replace") {
                    OnDuplicate::Replace
                } else if p.is_word("on") && p.is_word_at(1, "duplicate") {
                    p.at += 2;
                    OnDuplicate::Update(self.assignments(p, &def, Some(def.columns.len()))?)
                } else {
                    OnDuplicate::Error
                };
                for row in rows {
                    ops.push(WriteOp::Insert { table, row, on_duplicate: on_duplicate.clone() });
                }
            }
            "update" | "delete" => {
                let key = if p.eat_word("key") { Some(self.key_values(p, &def)?) } else { None };
                let assignments = if verb == "update" {
                    p.expect_word("set")?;
                    self.assignments(p, &def, None)?
                } else {
                    Vec::new()
                };
                let filter = if p.eat_word("where") { Some(expr(p, &scope)?) } else { None };
                let limit = if p.eat_word("limit") { Some(p.number()?) } else { None };
                ops.push(match (verb.as_str(), key) {
                    ("update", Some(key)) => WriteOp::UpdateKey { table, key, filter, assignments },
                    ("update", None) => WriteOp::UpdateWhere { table, filter, assignments, limit },
                    (_, Some(key)) => WriteOp::DeleteKey { table, key, filter },
                    (_, None) => WriteOp::DeleteWhere { table, filter, limit },
                });
            }
            "truncate" => ops.push(WriteOp::Truncate { table }),
            "reserve" => {
                let count = p.number()?;
                let at_least = if p.eat_word("at_least") { p.number()? } else { 0 };
                ops.push(WriteOp::ReserveAutoIncrement { table, count, at_least });
            }
            other => return Err(format!("unknown write {other}")),
        }
        Ok(ops)
    }

    fn show_write_set(&self, ws: &WriteSet, out: &mut Vec<String>) {
        const SHOWN: usize = 12;
        if ws.changes.len() > SHOWN {
            out.push(format!("({} changes; the first {SHOWN}:)", ws.changes.len()));
        }
        for change in ws.changes.iter().take(SHOWN) {
            out.push(match change {
                RowChange::Put { table, partition, row } => {
                    let layout = self.catalog.table(*table).map(TableDef::layout);
                    match layout {
                        Some(layout) => format!("put p{partition} {}", show_row(&layout, row)),
                        None => format!("put p{partition} <table {table}>"),
                    }
                }
                RowChange::Delete { table, partition, key } => match self.catalog.table(*table) {
                    Some(def) => format!("delete p{partition} key {}", show_key(def, key)),
                    None => format!("delete p{partition} <table {table}>"),
                },
                RowChange::Truncate { .. } => "truncate".into(),
                RowChange::DropTable { .. } => "drop table".into(),
                RowChange::AutoIncrement { next, .. } => format!("auto_increment next={next}"),
            });
        }
    }

    /// Evaluates ops as one batch; proposes the write set and, unless `propose_only`, applies it.
    fn write(&mut self, ops: &[WriteOp], propose_only: bool, out: &mut Vec<String>) -> Result<()> {
        let (ws, outcome) = match evaluate(&self.store, &self.pending, &self.catalog, ops, &self.limits) {
            Ok(result) => result,
            Err(e) => {
                out.push(e.to_string());
                return Ok(());
            }
        };
        self.show_write_set(&ws, out);
        let mut counts = Vec::new();
        for (name, n) in [
            ("inserted", outcome.inserted),
            ("matched", outcome.matched),
            ("changed", outcome.changed),
            ("deleted", outcome.deleted),
            ("ignored", outcome.ignored),
            ("upserted", outcome.upserted),
        ] {
            if n > 0 {
                counts.push(format!("{name}={n}"));
            }
        }
        if let Some(first) = outcome.auto_increment {
            counts.push(format!("auto_increment={first}"));
        }
        out.push(format!("ok: {}", if counts.is_empty() { "no rows".to_string() } else { counts.join(" ") }));
        if ws.is_empty() {
            return Ok(());
        }
        let token = self.next_token;
        self.next_token += 1;
        self.pending.add(token, &ws, &self.catalog).map_err(|e| e.to_string())?;
        self.proposed.push((token, ws));
        if propose_only {
            out.push(format!("pending: token {token}"));
            return Ok(());
        }
        // The log applies in order: this write set applies with every one proposed before it.
        let count = self.proposed.len();
        self.apply_oldest(count, out, false)
    }

    /// Applies a write set this leader did not propose (a previous leader's entry): the store
    /// changes, the pending overlay must not.
    fn foreign(&mut self, ops: &[WriteOp], out: &mut Vec<String>) -> Result<()> {
        let (ws, _) =
            evaluate(&self.store, &Pending::new(), &self.catalog, ops, &self.limits).map_err(|e| e.to_string())?;
        self.show_write_set(&ws, out);
        self.store.apply_write_set(&ws, &self.catalog).map_err(|e| e.to_string())?;
        let token = self.next_token;
        self.next_token += 1;
        let released = self.pending.applied(token);
        out.push(format!("applied as token {token}; pending released: {released}"));
        Ok(())
    }

    fn apply_oldest(&mut self, count: usize, out: &mut Vec<String>, verbose: bool) -> Result<()> {
        for _ in 0..count {
            if self.proposed.is_empty() {
                out.push("nothing pending".into());
                break;
            }
            let (token, ws) = self.proposed.remove(0);
            self.store.apply_write_set(&ws, &self.catalog).map_err(|e| e.to_string())?;
            if !self.pending.applied(token) {
                return Err(format!("token {token} was not pending"));
            }
            if verbose {
                out.push(format!("applied token {token} ({} changes)", ws.changes.len()));
            }
            self.last_applied = Some(ws);
        }
        Ok(())
    }

    fn scan_op(&self, p: &mut Parser) -> Result<(TableDef, ReadOp, Option<Vec<usize>>)> {
        let def = self.table(&p.word()?)?;
        let scope = Scope { columns: &def.columns, values_offset: None };
        let mut partitions = Vec::new();
        let mut filter = None;
        let mut projection = None;
        let mut limit = None;
        let mut resume = None;
        let (mut max_rows, mut max_bytes) = (0, 0);
        while !p.done() {
            if p.option("partitions") {
                loop {
                    partitions.push(PartitionId(p.number()? as u32));
                    if !p.eat_sym(",") {
                        break;
                    }
                }
            } else if p.eat_word("where") {
                filter = Some(expr(p, &scope)?);
            } else if p.eat_word("select") {
                let mut columns = Vec::new();
                loop {
                    let name = p.word()?;
                    columns.push(def.column_index(&name).ok_or(format!("no column {name}"))?);
                    if !p.eat_sym(",") {
                        break;
                    }
                }
                projection = Some(columns);
            } else if p.eat_word("limit") {
                limit = Some(p.number()?);
            } else if p.option("max_rows") {
                max_rows = p.number()? as u32;
            } else if p.option("max_bytes") {
                max_bytes = p.number()? as u32;
            } else if p.option("resume") {
                let partition = PartitionId(p.number()? as u32);
                p.expect_sym(":")?;
                resume = Some(ScanPosition { partition, slot: p.number()? });
            } else {
                return Err(format!("unknown scan option {:?}", p.peek()));
            }
        }
        let op = ReadOp::Scan {
            table: Runner::table_ref(&def),
            partitions,
            filter,
            projection: projection.as_ref().map(|cols: &Vec<usize>| cols.iter().map(|&c| c as u32).collect()),
            limit,
            resume,
            max_rows,
            max_bytes,
        };
        Ok((def, op, projection))
    }

    fn run_scan(
        &self,
        def: &TableDef,
        op: &ReadOp,
        projection: &Option<Vec<usize>>,
        out: &mut Vec<String>,
    ) -> Option<ScanPosition> {
        let layout = match projection {
            Some(columns) => def.layout().project(columns),
            None => def.layout(),
        };
        match self.store.read(op, &self.catalog) {
            Ok(ReadResult::ScanBatch { rows, resume }) => {
                for row in &rows {
                    out.push(show_row(&layout, row));
                }
                match resume {
                    Some(r) => out.push(format!("resume={}:{}", r.partition, r.slot)),
                    None => out.push("end".into()),
                }
                resume
            }
            Ok(other) => {
                out.push(format!("unexpected answer {other:?}"));
                None
            }
            Err(e) => {
                out.push(e.to_string());
                None
            }
        }
    }

    fn command(&mut self, line: &str, out: &mut Vec<String>) -> Result<()> {
        let mut p = Parser::new(line)?;
        let verb = match p.peek() {
            Some(Tok::Word(w)) => w.to_ascii_lowercase(),
            _ => return Err("a command starts with a word".into()),
        };
        match verb.as_str() {
            "table" => {
                p.at += 1;
                let (def, groups) = parse_table(&mut p)?;
                let id = support::create(&mut self.catalog, def, groups);
                let def = self.catalog.table(id).ok_or("table vanished")?;
                let local: Vec<String> = self.store.local_partitions(def).iter().map(|p| p.to_string()).collect();
                out.push(format!("ok: {} partitions, local {}", def.partition_count(), local.join(" ")));
            }
            "insert" | "update" | "delete" | "truncate" | "reserve" => {
                let ops = self.write_ops(&mut p)?;
                self.write(&ops, false, out)?;
            }
            "propose" | "batch" => {
                let propose_only = verb == "propose";
                let rest: Vec<&str> =
                    line.split_once(char::is_whitespace).map_or("", |(_, rest)| rest).split(';').collect();
                let mut ops = Vec::new();
                for part in rest {
                    let part = part.trim();
                    let part = part.strip_prefix("batch ").unwrap_or(part);
                    let mut sub = Parser::new(part)?;
                    ops.extend(self.write_ops(&mut sub)?);
                }
                self.write(&ops, propose_only, out)?;
            }
            "foreign" => {
                p.at += 1;
                let ops = self.write_ops(&mut p)?;
                self.foreign(&ops, out)?;
            }
            "drop" => {
                p.at += 1;
                let def = self.table(&p.word()?)?;
                let ws = WriteSet { changes: vec![RowChange::DropTable { table: def.id }] };
                self.store.apply_write_set(&ws, &self.catalog).map_err(|e| e.to_string())?;
                out.push("ok".into());
            }
            "apply" => {
                p.at += 1;
                let count = if p.eat_word("all") {
                    usize::MAX
                } else if p.done() {
                    1
                } else {
                    p.number()? as usize
                };
                self.apply_oldest(count.min(self.proposed.len()).max(1), out, true)?;
            }
            "replay" => {
                let ws = self.last_applied.clone().ok_or("nothing applied yet")?;
                let before = self.dump();
                self.store.apply_write_set(&ws, &self.catalog).map_err(|e| e.to_string())?;
                let same = before == self.dump();
                out.push(format!(
                    "replayed {} changes; store {}",
                    ws.changes.len(),
                    if same { "unchanged" } else { "CHANGED" }
                ));
            }
            "get" => {
                p.at += 1;
                let def = self.table(&p.word()?)?;
                let key = self.key_values(&mut p, &def)?;
                let op = ReadOp::Get { table: Runner::table_ref(&def), keys: vec![key] };
                match self.store.read(&op, &self.catalog) {
                    Ok(ReadResult::Rows(rows)) => {
                        for row in rows {
                            out.push(match row {
                                Some(row) => show_row(&def.layout(), &row),
                                None => "not found".into(),
                            });
                        }
                    }
                    Ok(other) => out.push(format!("unexpected answer {other:?}")),
                    Err(e) => out.push(e.to_string()),
                }
            }
            "rows" => {
                p.at += 1;
                let def = self.table(&p.word()?)?;
                let layout = def.layout();
                let mut any = false;
                for partition in self.store.partitions(def.id) {
                    for (slot, row) in self.store.partition_rows(def.id, partition) {
                        out.push(format!("p{partition} s{slot} {}", show_row(&layout, row)));
                        any = true;
                    }
                }
                if !any {
                    out.push("no rows".into());
                }
            }
            "count" => {
                p.at += 1;
                let def = self.table(&p.word()?)?;
                let counts: Vec<String> = self.store.count(&def).iter().map(|(p, n)| format!("p{p}={n}")).collect();
                out.push(counts.join(" "));
            }
            "scan" => {
                p.at += 1;
                let (def, op, projection) = self.scan_op(&mut p)?;
                self.run_scan(&def, &op, &projection, out);
            }
            "scan-all" => {
                p.at += 1;
                let (def, mut op, projection) = self.scan_op(&mut p)?;
                let mut batches = 0;
                loop {
                    batches += 1;
                    let resume = self.run_scan(&def, &op, &projection, out);
                    let Some(position) = resume else { break };
                    if let ReadOp::Scan { resume, .. } = &mut op {
                        *resume = Some(position);
                    }
                    if batches > 10_000 {
                        return Err("scan does not end".into());
                    }
                }
            }
            "fill" => {
                p.at += 1;
                let def = self.table(&p.word()?)?;
                let count = p.number()?;
                let layout = def.layout();
                let mut first = 1;
                while first <= count {
                    let last = (first + 999).min(count);
                    let mut ops = Vec::new();
                    for i in first..=last {
                        let values: Vec<Value> = def.columns.iter().map(|c| generated(c, i)).collect();
                        let row = layout.encode_to_vec(&values).map_err(|e| e.to_string())?;
                        ops.push(WriteOp::Insert {
                            table: Runner::table_ref(&def),
                            row,
                            on_duplicate: OnDuplicate::Error,
                        });
                    }
                    let mut quiet = Vec::new();
                    self.write(&ops, false, &mut quiet)?;
                    if let Some(error) = quiet.iter().find(|l| l.starts_with("ERROR")) {
                        out.push(error.clone());
                        return Ok(());
                    }
                    first = last + 1;
                }
                out.push(format!("ok: {count} rows"));
            }
            "memory" => {
                p.at += 1;
                let mut data_memory = None;
                if p.option("data_memory") {
                    data_memory = Some(p.number()?);
                }
                for id in self.store.tables() {
                    let name = self.catalog.table(id).map_or_else(|| id.to_string(), |d| d.name.clone());
                    if let Some(m) = self.store.table_memory(id) {
                        out.push(format!(
                            "{name}: rows={} row_bytes={} cell_bytes={} index_bytes={} directory_bytes={}",
                            m.rows, m.row_bytes, m.cell_bytes, m.index_bytes, m.directory_bytes
                        ));
                    }
                }
                let m = self.store.memory();
                out.push(format!(
                    "total: rows={} pages={} spare_pages={} large_bytes={} total_bytes={}",
                    m.rows,
                    m.page_bytes / 32768,
                    m.spare_page_bytes / 32768,
                    m.large_row_bytes,
                    m.total_bytes()
                ));
                if let Some(limit) = data_memory {
                    out.push(format!("Node 1: {}", m.data_usage(limit)));
                }
            }
            "limits" => {
                p.at += 1;
                while !p.done() {
                    if p.option("data_memory") {
                        self.limits.data_memory_bytes = p.number()?;
                    } else if p.option("max_rows") {
                        self.limits.max_rows = p.number()?;
                    } else if p.option("max_bytes") {
                        self.limits.max_bytes = p.number()?;
                    } else {
                        return Err(format!("unknown limit {:?}", p.peek()));
                    }
                }
                out.push("ok".into());
            }
            "compact" => {
                let c = self.store.compact(0.5);
                out.push(format!(
                    "evacuated {} pages; {} -> {} bytes",
                    c.pages_evacuated, c.bytes_before, c.bytes_after
                ));
            }
            "check" => {
                self.store.check().map_err(|e| e.to_string())?;
                out.push("ok".into());
            }
            "restart" => {
                if !self.proposed.is_empty() {
                    return Err("apply everything pending before a restart".into());
                }
                let before = self.dump();
                let mut fresh = Store::new(self.store.node_group());
                let mut rows = 0;
                for id in self.store.tables() {
                    let def = self.catalog.table(id).ok_or("a stored table left the catalog")?;
                    for partition in self.store.partitions(id) {
                        let image: Vec<(u64, Vec<u8>)> =
                            self.store.partition_rows(id, partition).map(|(s, r)| (s, r.to_vec())).collect();
                        rows += image.len();
                        fresh.restore_partition(def, partition, image).map_err(|e| e.to_string())?;
                    }
                    let next = self.store.auto_increment_next(id);
                    if next > 0 {
                        fresh
                            .apply(&RowChange::AutoIncrement { table: id, next }, &self.catalog)
                            .map_err(|e| e.to_string())?;
                    }
                }
                self.store = fresh;
                self.pending.clear();
                let same = before == self.dump();
                out.push(format!("restored {rows} rows; slots {}", if same { "identical" } else { "DIFFERENT" }));
            }
            "pending" => {
                let tokens: Vec<String> = self.pending.tokens().iter().map(|t| t.to_string()).collect();
                out.push(format!("pending tokens: [{}]", tokens.join(", ")));
            }
            other => return Err(format!("unknown command {other}")),
        }
        Ok(())
    }

    /// Every table's rows with their slots and counters, for comparing store states.
    fn dump(&self) -> Vec<String> {
        let mut out = Vec::new();
        for id in self.store.tables() {
            out.push(format!("table {id} auto_increment {}", self.store.auto_increment_next(id)));
            for partition in self.store.partitions(id) {
                for (slot, row) in self.store.partition_rows(id, partition) {
                    out.push(format!("{partition}:{slot} {row:?}"));
                }
            }
        }
        out
    }
}

/// A generated value for row `i` of `fill`.
fn generated(column: &ColumnDef, i: u64) -> Value {
    match &column.ty {
        ColumnType::Int { unsigned: true, .. } => Value::UInt(i),
        ColumnType::Int { .. } => Value::Int(i as i64),
        ColumnType::Enum { values } => Value::Text(values[i as usize % values.len()].clone()),
        ty if ty.is_string() => Value::Text(format!("{}{i}", column.name)),
        _ => Value::Null,
    }
}

fn run_script(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut runner = Runner::new();
    let mut result = String::new();
    for line in text.lines() {
        if line.starts_with("  ") {
            continue; // recorded output, regenerated below
        }
        result.push_str(line);
        result.push('\n');
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let mut out = Vec::new();
        if let Err(e) = runner.command(trimmed, &mut out) {
            out.push(format!("SCRIPT ERROR: {e}"));
        }
        for o in out {
            let _ = writeln!(result, "  {o}");
        }
    }
    result
}

fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts")
}

fn check_script(name: &str) {
    let path = scripts_dir().join(format!("{name}.txt"));
    let actual = run_script(&path);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &actual).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if actual != expected {
        let mismatch = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
        let around = |text: &str| text.lines().skip(mismatch.saturating_sub(3)).take(8).collect::<Vec<_>>().join("\n");
        panic!(
            "{name}.txt differs at line {}:\n--- expected\n{}\n--- actual\n{}\n(UPDATE_GOLDEN=1 regenerates)",
            mismatch + 1,
            around(&expected),
            around(&actual)
        );
    }
    assert!(!actual.contains("SCRIPT ERROR"), "{name}.txt has a script error:\n{actual}");
}

macro_rules! scripts {
    ($($name:ident),* $(,)?) => {
        $( #[test] fn $name() { check_script(stringify!($name)); } )*

        #[test]
        fn every_script_has_a_test() {
            let listed = [$(stringify!($name)),*];
            for entry in std::fs::read_dir(scripts_dir()).unwrap() {
                let name = entry.unwrap().file_name().to_string_lossy().into_owned();
                if let Some(stem) = name.strip_suffix(".txt") {
                    assert!(listed.contains(&stem), "tests/scripts/{name} is not listed in golden.rs");
                }
            }
        }
    };
}

scripts!(
    insert_duplicate_key,
    upsert_counts,
    replace_counts,
    update_key,
    update_where_limit,
    update_moves_primary_key,
    delete_where,
    scan_resume_stable,
    scan_filter_projection,
    pending_overlay_conflict,
    apply_idempotent,
    delete_frees_memory,
    case_insensitive_keys,
    truncate_and_drop,
    auto_increment_ranges,
    data_memory_full,
    batch_limits,
    batch_atomic,
    coerce_assignments,
    wrong_node_group,
    restart_keeps_slots,
    large_rows,
);
