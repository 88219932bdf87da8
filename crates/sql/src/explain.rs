//! EXPLAIN: a plan in MySQL's tabular form.
//!
//! One row per table access, in join order, with MySQL's columns: `id`, `select_type`,
//! `table`, `partitions`, `type` (`const` and `eq_ref` for primary-key and unique-index
//! lookups, `ref` and `range` for ordered-index scans, `index` for a whole index read in
//! order, `ALL` for a scan), `possible_keys`, `key`, `key_len`, `ref`, `rows`, `filtered`
//! and `Extra`. What the data nodes evaluate is shown as NDB shows it: `Using pushed condition
//! (…)` with the condition; a condition the SQL node evaluates is `Using where`. Cairn adds
//! `Using pushed aggregation` where the data nodes group and aggregate.
//!
//! `rows` is the table's row count for scans (read from the node groups), 1 for key lookups,
//! and a tenth of the table for index ranges: Cairn keeps no index statistics yet.

use std::collections::BTreeSet;

use cairn_common::catalog::TableDef;
use cairn_common::error::Error;
use cairn_common::expr::{CmpOp, Expr};
use cairn_common::types::ColumnType;
use cairn_common::Value;

use crate::access::LookupVia;
use crate::backend::Backend;
use crate::exec::Exec;
use crate::plan::{Node, QueryPlan};
use crate::session::Planned;
use crate::show::{ShowResult, nullable_text, text};
use crate::types::SqlType;

/// One EXPLAIN row.
struct Line {
    id: u64,
    select_type: String,
    table: Option<String>,
    partitions: Option<String>,
    access: Option<&'static str>,
    possible_keys: Option<String>,
    key: Option<String>,
    key_len: Option<String>,
    reference: Option<String>,
    rows: Option<u64>,
    filtered: Option<f64>,
    extra: Vec<String>,
}

impl Line {
    fn new(id: u64, select_type: &str) -> Line {
        Line {
            id,
            select_type: select_type.to_string(),
            table: None,
            partitions: None,
            access: None,
            possible_keys: None,
            key: None,
            key_len: None,
            reference: None,
            rows: None,
            filtered: None,
            extra: Vec::new(),
        }
    }
}

struct Explainer<'e, B: Backend> {
    exec: &'e Exec<B>,
    lines: Vec<Line>,
    next_id: u64,
    /// Subplans (derived tables, correlated subqueries) to list after their select.
    pending: Vec<(u64, &'static str, Node)>,
}

/// Bytes a key column takes in MySQL's key_len (utf8mb4: 4 bytes per character; VARCHAR adds
/// its 2-byte length; a nullable column its NULL byte).
fn key_bytes(table: &TableDef, column: usize) -> u64 {
    let c = &table.columns[column];
    let chars = |n: u32, binary: bool| n as u64 * if binary { 1 } else { 4 };
    let base = match &c.ty {
        ColumnType::Int { width, .. } => width.bytes() as u64,
        ColumnType::Decimal { precision, scale } => {
            // MySQL's packed decimal: 9 digits in 4 bytes, the rest in 1–4 bytes, per side.
            let digits = |d: u64| d / 9 * 4 + [0, 1, 1, 2, 2, 3, 3, 4, 4, 4][(d % 9) as usize];
            digits((*precision - *scale) as u64) + digits(*scale as u64)
        }
        ColumnType::Float => 4,
        ColumnType::Double => 8,
        ColumnType::Char { length, binary } => chars(*length, *binary),
        ColumnType::VarChar { length, binary } => chars(*length, *binary) + 2,
        ColumnType::Lob { .. } => 767 + 2,
        ColumnType::Date => 3,
        ColumnType::DateTime { fsp } => 5 + (*fsp as u64).div_ceil(2),
        ColumnType::Timestamp { fsp } => 4 + (*fsp as u64).div_ceil(2),
        ColumnType::Time { fsp } => 3 + (*fsp as u64).div_ceil(2),
        ColumnType::Year => 1,
        ColumnType::Enum { values } => if values.len() < 256 { 1 } else { 2 },
        ColumnType::Set { values } => cairn_common::set_value::storage_bytes(values.len()) as u64,
    };
    base + u64::from(c.nullable)
}

fn key_len(table: &TableDef, columns: &[usize]) -> String {
    columns.iter().map(|&c| key_bytes(table, c)).sum::<u64>().to_string()
}

fn all_partitions(table: &TableDef) -> String {
    (0..table.partitions.len()).map(|p| format!("p{p}")).collect::<Vec<_>>().join(",")
}

/// Renders an expression over a table's columns as MySQL prints conditions.
fn render(e: &Expr, name: &dyn Fn(u32) -> String) -> String {
    let r = |x: &Expr| render(x, name);
    match e {
        Expr::Column(c) => name(*c),
        Expr::Literal(v) => literal(v),
        Expr::Param(_) => "?".to_string(),
        Expr::Not(a) => format!("(not({}))", r(a)),
        Expr::Neg(a) => format!("-({})", r(a)),
        Expr::BitNot(a) => format!("~({})", r(a)),
        Expr::And(a, b) => format!("({} and {})", r(a), r(b)),
        Expr::Or(a, b) => format!("({} or {})", r(a), r(b)),
        Expr::Xor(a, b) => format!("({} xor {})", r(a), r(b)),
        Expr::Compare { op, left, right, .. } => {
            let symbol = match op {
                CmpOp::Eq => "=",
                CmpOp::NullSafeEq => "<=>",
                CmpOp::Ne => "<>",
                CmpOp::Lt => "<",
                CmpOp::Le => "<=",
                CmpOp::Gt => ">",
                CmpOp::Ge => ">=",
            };
            format!("({} {symbol} {})", r(left), r(right))
        }
        Expr::Arith { op, left, right } => {
            let symbol = match op {
                cairn_common::expr::ArithOp::Add => "+",
                cairn_common::expr::ArithOp::Sub => "-",
                cairn_common::expr::ArithOp::Mul => "*",
                cairn_common::expr::ArithOp::Div => "/",
                cairn_common::expr::ArithOp::IntDiv => "DIV",
                cairn_common::expr::ArithOp::Mod => "%",
                cairn_common::expr::ArithOp::BitAnd => "&",
                cairn_common::expr::ArithOp::BitOr => "|",
                cairn_common::expr::ArithOp::BitXor => "^",
                cairn_common::expr::ArithOp::ShiftLeft => "<<",
                cairn_common::expr::ArithOp::ShiftRight => ">>",
            };
            format!("({} {symbol} {})", r(left), r(right))
        }
        Expr::IsNull { arg, negated } => format!("({} is {}null)", r(arg), if *negated { "not " } else { "" }),
        Expr::IsBool { arg, value, negated } => {
            format!("({} is {}{})", r(arg), if *negated { "not " } else { "" }, if *value { "true" } else { "false" })
        }
        Expr::Like { arg, pattern, negated, .. } => format!("({} {}like {})", r(arg), if *negated { "not " } else { "" }, r(pattern)),
        Expr::InList { arg, list, negated, .. } => {
            let items: Vec<String> = list.iter().map(r).collect();
            format!("({} {}in ({}))", r(arg), if *negated { "not " } else { "" }, items.join(","))
        }
        Expr::Between { arg, low, high, negated, .. } => {
            format!("({} {}between {} and {})", r(arg), if *negated { "not " } else { "" }, r(low), r(high))
        }
        Expr::Case { .. } => "case … end".to_string(),
        Expr::Call { func, args } => {
            let items: Vec<String> = args.iter().map(r).collect();
            format!("{}({})", func.name().to_ascii_lowercase(), items.join(","))
        }
        Expr::Cast { arg, .. } => format!("cast({} as …)", r(arg)),
    }
}

fn literal(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Text(s) => format!("'{}'", s.replace('\'', "\\'")),
        Value::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) => format!("'{}'", s.replace('\'', "\\'")),
            Err(_) => format!("0x{}", b.iter().map(|x| format!("{x:02x}")).collect::<String>()),
        },
        Value::Date(_) | Value::DateTime(_) | Value::Time(_) => format!("'{}'", v.to_text()),
        other => other.to_text().into_owned(),
    }
}

/// `db`.`alias`.`column` for a column of a table as the query names it.
fn column_name(table: &TableDef, alias: &str, c: u32) -> String {
    match table.columns.get(c as usize) {
        Some(col) => format!("`{}`.`{}`.`{}`", table.database, alias, col.name),
        None => format!("column{c}"),
    }
}

/// The indexes whose leading column a condition compares (MySQL's possible_keys).
fn possible_keys(table: &TableDef, conditions: &[&Expr], extra_columns: &[usize]) -> Option<String> {
    let mut compared: BTreeSet<usize> = extra_columns.iter().copied().collect();
    for e in conditions {
        e.walk(&mut |x| match x {
            Expr::Compare { left, right, .. } => {
                for side in [left, right] {
                    if let Expr::Column(c) = side.as_ref() {
                        compared.insert(*c as usize);
                    }
                }
            }
            Expr::InList { arg, .. } | Expr::Between { arg, .. } => {
                if let Expr::Column(c) = arg.as_ref() {
                    compared.insert(*c as usize);
                }
            }
            _ => {}
        });
    }
    let mut names = Vec::new();
    if !table.hidden_primary_key && table.primary_key.first().is_some_and(|c| compared.contains(c)) {
        names.push("PRIMARY".to_string());
    }
    for ix in table.indexes.iter().filter(|ix| ix.is_ready()) {
        if ix.columns.first().is_some_and(|c| compared.contains(c)) {
            names.push(ix.name.clone());
        }
    }
    (!names.is_empty()).then(|| names.join(","))
}

/// The reference column of EXPLAIN for key values: `const`, or the column of an earlier table.
fn reference(e: &Expr, left_names: &[String]) -> String {
    match e {
        Expr::Column(c) => left_names.get(*c as usize).cloned().unwrap_or_else(|| "func".into()),
        e if e.columns().is_empty() => "const".into(),
        _ => "func".into(),
    }
}

/// Column names of the rows a node produces, as `db.alias.column` (for `ref`).
fn row_names(node: &Node) -> Vec<String> {
    match node {
        Node::Get { table, alias, .. } | Node::Scan { table, alias, .. } | Node::UniqueGet { table, alias, .. } | Node::IndexScan { table, alias, .. } => {
            table.columns.iter().map(|c| format!("{}.{}.{}", table.database, alias, c.name)).collect()
        }
        Node::Filter { input, .. } | Node::Limit { input, .. } | Node::Sort { input, .. } | Node::Distinct { input, .. } => row_names(input),
        Node::Apply { input, subqueries } => {
            let mut names = row_names(input);
            names.extend(std::iter::repeat_n("func".to_string(), subqueries.len()));
            names
        }
        Node::Window { input, calls, input_width } => {
            let mut names = row_names(input);
            names.resize(*input_width, "func".to_string());
            names.extend(std::iter::repeat_n("func".to_string(), calls.len()));
            names
        }
        Node::HashJoin { left, right, .. } => {
            let mut names = row_names(left);
            names.extend(row_names(right));
            names
        }
        Node::LookupJoin { left, table, alias, .. } => {
            let mut names = row_names(left);
            names.extend(table.columns.iter().map(|c| format!("{}.{}.{}", table.database, alias, c.name)));
            names
        }
        Node::Project { input, exprs } => {
            let inner = row_names(input);
            exprs.iter().map(|e| reference(e, &inner)).collect()
        }
        Node::Derived { plan, alias } => plan.columns.iter().map(|c| format!("{}.{}", alias, c.name)).collect(),
        _ => Vec::new(),
    }
}

impl<B: Backend> Explainer<'_, B> {
    async fn rows_of(&self, table: &TableDef) -> u64 {
        crate::exec::count_rows(self.exec, table).await.unwrap_or(0)
    }

    fn pushed(&self, table: &TableDef, alias: &str, filter: &Option<Expr>) -> Option<String> {
        filter.as_ref().map(|f| format!("Using pushed condition {}", render(f, &|c| column_name(table, alias, c))))
    }

    /// Adds the rows of one select's tree; returns the index of its first table row.
    async fn select(&mut self, node: &Node, id: u64, select_type: &str) -> Result<(), Error> {
        let first = self.lines.len();
        self.walk(node, id, select_type).await?;
        if self.lines.len() == first {
            let mut line = Line::new(id, select_type);
            line.extra.push("No tables used".into());
            self.lines.push(line);
        }
        Ok(())
    }

    fn walk<'a>(&'a mut self, node: &'a Node, id: u64, select_type: &'a str) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Error>> + Send + 'a>> {
        Box::pin(async move {
            match node {
                Node::Single => {}
                Node::CountAll { .. } => {
                    let mut line = Line::new(id, select_type);
                    line.extra.push("Select tables optimized away".into());
                    self.lines.push(line);
                }
                Node::Get { table, alias, keys, fallback } => {
                    let mut line = Line::new(id, select_type);
                    line.table = Some(alias.to_string());
                    line.partitions = Some(all_partitions(table));
                    line.access = Some(if keys.len() == 1 { "const" } else { "range" });
                    line.possible_keys = possible_keys(table, &fallback.iter().collect::<Vec<_>>(), &table.primary_key);
                    line.key = Some("PRIMARY".into());
                    line.key_len = Some(key_len(table, &table.primary_key));
                    line.reference = (keys.len() == 1).then(|| vec!["const"; table.primary_key.len()].join(","));
                    line.rows = Some(keys.len() as u64);
                    line.filtered = Some(100.0);
                    self.lines.push(line);
                }
                Node::UniqueGet { table, alias, index, keys, fallback } => {
                    let ix = crate::exec_index::index_def(table, *index)?;
                    let mut line = Line::new(id, select_type);
                    line.table = Some(alias.to_string());
                    line.partitions = Some(all_partitions(table));
                    line.access = Some(if keys.len() == 1 { "const" } else { "range" });
                    line.possible_keys = possible_keys(table, &fallback.iter().collect::<Vec<_>>(), &ix.columns);
                    line.key = Some(ix.name.clone());
                    line.key_len = Some(key_len(table, &ix.columns));
                    line.reference = (keys.len() == 1).then(|| vec!["const"; ix.columns.len()].join(","));
                    line.rows = Some(keys.len() as u64);
                    line.filtered = Some(100.0);
                    self.lines.push(line);
                }
                Node::IndexScan { table, alias, index, ranges, filter, limit, .. } => {
                    let ix = crate::exec_index::index_def(table, *index)?;
                    let eq = ranges.first().map_or(0, |r| r.eq.len());
                    let bounded = ranges.iter().any(|r| r.low.is_some() || r.high.is_some());
                    let mut line = Line::new(id, select_type);
                    line.table = Some(alias.to_string());
                    line.partitions = Some(all_partitions(table));
                    line.access = Some(if ranges.is_empty() {
                        "index"
                    } else if ranges.len() == 1 && !bounded {
                        "ref"
                    } else {
                        "range"
                    });
                    let used = if ranges.is_empty() { ix.columns.len() } else { (eq + usize::from(bounded)).min(ix.columns.len()) };
                    line.possible_keys = possible_keys(table, &filter.iter().collect::<Vec<_>>(), &[]).or_else(|| Some(ix.name.clone()));
                    line.key = Some(ix.name.clone());
                    line.key_len = Some(key_len(table, &ix.columns[..used]));
                    if ranges.len() == 1 && !bounded {
                        line.reference = Some(vec!["const"; eq].join(","));
                    }
                    let total = self.rows_of(table).await;
                    line.rows = Some(match limit {
                        Some(n) => (*n).min(total.max(1)),
                        None => (total / 10).max(1),
                    });
                    line.filtered = Some(100.0);
                    line.extra.extend(self.pushed(table, alias, filter));
                    self.lines.push(line);
                }
                Node::Scan { table, alias, filter, .. } => {
                    let mut line = Line::new(id, select_type);
                    line.table = Some(alias.to_string());
                    line.partitions = Some(all_partitions(table));
                    line.access = Some("ALL");
                    line.possible_keys = possible_keys(table, &filter.iter().collect::<Vec<_>>(), &[]);
                    line.rows = Some(self.rows_of(table).await);
                    line.filtered = Some(if filter.is_some() { 10.0 } else { 100.0 });
                    if filter.is_some() {
                        line.extra.push("Using where".into());
                    }
                    line.extra.extend(self.pushed(table, alias, filter));
                    self.lines.push(line);
                }
                Node::PushedAggregate { table, alias, filter, keys, .. } => {
                    let mut line = Line::new(id, select_type);
                    line.table = Some(alias.to_string());
                    line.partitions = Some(all_partitions(table));
                    line.access = Some("ALL");
                    line.possible_keys = possible_keys(table, &filter.iter().collect::<Vec<_>>(), &[]);
                    line.rows = Some(self.rows_of(table).await);
                    line.filtered = Some(if filter.is_some() { 10.0 } else { 100.0 });
                    if filter.is_some() {
                        line.extra.push("Using where".into());
                    }
                    line.extra.extend(self.pushed(table, alias, filter));
                    line.extra.push(if keys.is_empty() { "Using pushed aggregation".into() } else { "Using pushed aggregation (grouped)".to_string() });
                    self.lines.push(line);
                }
                // A unique lookup checks its own key conditions again: not a WHERE of its own.
                Node::Filter { input, predicate } if matches!(input.as_ref(), Node::UniqueGet { fallback: Some(f), .. } if f == predicate) => {
                    self.walk(input, id, select_type).await?;
                }
                Node::Filter { input, .. } => {
                    let before = self.lines.len();
                    self.walk(input, id, select_type).await?;
                    let grew = self.lines.len() > before;
                    if let Some(last) = self.lines.last_mut().filter(|_| grew) {
                        if !last.extra.iter().any(|e| e == "Using where") {
                            last.extra.insert(0, "Using where".into());
                        }
                        if last.access.is_some_and(|a| a != "const" && a != "eq_ref") || last.filtered == Some(100.0) {
                            last.filtered = Some(10.0);
                        }
                    }
                }
                Node::Project { input, .. } | Node::Limit { input, .. } => self.walk(input, id, select_type).await?,
                Node::Sort { input, .. } => {
                    let first = self.lines.len();
                    self.walk(input, id, select_type).await?;
                    if let Some(line) = self.lines.get_mut(first) {
                        line.extra.push("Using filesort".into());
                    }
                }
                // MySQL shows a window's sorting buffer as a temporary table and a filesort.
                Node::Window { input, .. } => {
                    let first = self.lines.len();
                    self.walk(input, id, select_type).await?;
                    if let Some(line) = self.lines.get_mut(first) {
                        line.extra.push("Using temporary".into());
                        line.extra.push("Using filesort".into());
                    }
                }
                Node::Distinct { input, .. } => {
                    let first = self.lines.len();
                    self.walk(input, id, select_type).await?;
                    if let Some(line) = self.lines.get_mut(first) {
                        line.extra.push("Using temporary".into());
                    }
                }
                Node::Aggregate { input, keys, .. } => {
                    let first = self.lines.len();
                    self.walk(input, id, select_type).await?;
                    if !keys.is_empty() {
                        if let Some(line) = self.lines.get_mut(first) {
                            line.extra.push("Using temporary".into());
                        }
                    }
                }
                Node::Apply { input, subqueries } => {
                    self.walk(input, id, select_type).await?;
                    for s in subqueries {
                        self.next_id += 1;
                        self.pending.push((self.next_id, "DEPENDENT SUBQUERY", s.plan.root.clone()));
                    }
                }
                Node::HashJoin { left, right, .. } => {
                    self.walk(left, id, select_type).await?;
                    let first = self.lines.len();
                    self.walk(right, id, select_type).await?;
                    if let Some(line) = self.lines.get_mut(first) {
                        line.extra.push("Using join buffer (hash join)".into());
                    }
                }
                Node::LookupJoin { left, table, alias, via, key, condition, .. } => {
                    self.walk(left, id, select_type).await?;
                    let left_names = row_names(left);
                    let (name, columns, access) = match via {
                        LookupVia::Primary => ("PRIMARY".to_string(), table.primary_key.clone(), "eq_ref"),
                        LookupVia::Unique(index) => {
                            let ix = crate::exec_index::index_def(table, *index)?;
                            (ix.name.clone(), ix.columns.clone(), "eq_ref")
                        }
                        LookupVia::Ordered(index) => {
                            let ix = crate::exec_index::index_def(table, *index)?;
                            (ix.name.clone(), ix.columns[..key.len()].to_vec(), "ref")
                        }
                    };
                    let mut line = Line::new(id, select_type);
                    line.table = Some(alias.to_string());
                    line.partitions = Some(all_partitions(table));
                    line.access = Some(access);
                    let width = left_names.len() as u32;
                    // The conditions' comparisons of this table's columns (those after the left row).
                    let mut compared: Vec<usize> = columns.clone();
                    if let Some(c) = condition {
                        c.walk(&mut |x| {
                            if let Expr::Compare { left, right, .. } = x {
                                for side in [left, right] {
                                    if let Expr::Column(col) = side.as_ref() {
                                        if *col >= width {
                                            compared.push((*col - width) as usize);
                                        }
                                    }
                                }
                            }
                        });
                    }
                    line.possible_keys = possible_keys(table, &[], &compared);
                    line.key = Some(name);
                    line.key_len = Some(key_len(table, &columns));
                    line.reference = Some(key.iter().map(|k| reference(k, &left_names)).collect::<Vec<_>>().join(","));
                    let residual = condition.as_ref().is_some_and(|c| {
                        c.clone().into_conjuncts().iter().any(|part| {
                            // Conditions beyond the key's own equalities.
                            !matches!(part, Expr::Compare { op: CmpOp::Eq, left, right, .. }
                                if matches!((left.as_ref(), right.as_ref()), (Expr::Column(l), Expr::Column(r)) if (*l < width) != (*r < width)))
                        })
                    });
                    line.rows = Some(if access == "ref" { (self.rows_of(table).await / 10).max(1) } else { 1 });
                    line.filtered = Some(if residual { 10.0 } else { 100.0 });
                    if residual {
                        line.extra.push("Using where".into());
                    }
                    if matches!(via, LookupVia::Ordered(_)) {
                        line.extra.push("Using join buffer (Batched Key Access)".into());
                    }
                    self.lines.push(line);
                }
                Node::Union { inputs, distinct, .. } => {
                    let mut ids = Vec::with_capacity(inputs.len());
                    for (i, input) in inputs.iter().enumerate() {
                        let (this_id, kind) = if i == 0 { (id, if select_type == "SIMPLE" { "PRIMARY" } else { select_type }) } else {
                            self.next_id += 1;
                            (self.next_id, "UNION")
                        };
                        ids.push(this_id);
                        let kind = kind.to_string();
                        self.select(input, this_id, &kind).await?;
                    }
                    if *distinct {
                        let mut line = Line::new(0, "UNION RESULT");
                        line.table = Some(format!("<union{}>", ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",")));
                        line.access = Some("ALL");
                        line.extra.push("Using temporary".into());
                        self.lines.push(line);
                    }
                }
                // The seed as this select, each recursive part as a UNION marked "Recursive".
                Node::RecursiveCte { seed, recursive, .. } => {
                    self.walk(seed, id, select_type).await?;
                    for r in recursive {
                        self.next_id += 1;
                        let this_id = self.next_id;
                        let first = self.lines.len();
                        self.select(r, this_id, "UNION").await?;
                        if let Some(line) = self.lines.get_mut(first) {
                            line.extra.insert(0, "Recursive".into());
                        }
                    }
                }
                // The rows of the last round, read in memory: no line of its own.
                Node::WorkingTable { .. } => {}
                Node::Derived { plan, alias } => {
                    self.next_id += 1;
                    let derived_id = self.next_id;
                    let mut line = Line::new(id, select_type);
                    line.table = Some(format!("<derived{derived_id}>"));
                    line.access = Some("ALL");
                    line.filtered = Some(100.0);
                    let _ = alias;
                    self.lines.push(line);
                    self.pending.push((derived_id, "DERIVED", plan.root.clone()));
                }
            }
            Ok(())
        })
    }
}

fn plan_root(planned: &Planned) -> Option<&QueryPlan> {
    match planned {
        Planned::Query(q) => Some(q),
        Planned::Insert(p) => match &p.source {
            crate::dml::InsertSource::Select(q) => Some(q),
            crate::dml::InsertSource::Values(_) => None,
        },
        _ => None,
    }
}

/// The EXPLAIN rows of a planned statement (its subqueries run before it are `slots`).
pub(crate) async fn explain<B: Backend>(planned: &Planned, slots: &[crate::compile::Slot], exec: &Exec<B>) -> Result<ShowResult, Error> {
    let mut explainer = Explainer { exec, lines: Vec::new(), next_id: 1, pending: Vec::new() };
    for slot in slots {
        if let crate::compile::Slot::Subquery { plan, .. } = slot {
            explainer.next_id += 1;
            explainer.pending.push((explainer.next_id, "SUBQUERY", plan.root.clone()));
        }
    }
    match planned {
        Planned::Query(q) => explainer.select(&q.root, 1, "SIMPLE").await?,
        Planned::Insert(p) => {
            let mut line = Line::new(1, "INSERT");
            line.table = Some(p.table.name.clone());
            line.partitions = Some(all_partitions(&p.table));
            line.access = Some("ALL");
            explainer.lines.push(line);
            if let Some(q) = plan_root(planned) {
                explainer.select(&q.root, 1, "SIMPLE").await?;
            }
        }
        Planned::Update(p) if p.multi.is_some() => return Err(Error::not_supported("EXPLAIN of a multiple-table UPDATE")),
        Planned::Delete(p) if p.multi.is_some() => return Err(Error::not_supported("EXPLAIN of a multiple-table DELETE")),
        Planned::Update(p) => explain_write(&mut explainer, &p.table, &p.access, "UPDATE").await?,
        Planned::Delete(p) => explain_write(&mut explainer, &p.table, &p.access, "DELETE").await?,
    }
    // Subplans, in the order they were met.
    let mut at = 0;
    while at < explainer.pending.len() {
        let (id, kind, root) = explainer.pending[at].clone();
        explainer.select(&root, id, kind).await?;
        at += 1;
    }
    // A select with a subquery or derived table is PRIMARY, as MySQL says.
    let has_subselects = explainer.lines.iter().any(|l| l.id != 1);
    if has_subselects {
        for l in explainer.lines.iter_mut().filter(|l| l.id == 1 && l.select_type == "SIMPLE") {
            l.select_type = "PRIMARY".into();
        }
    }
    // By select id, the UNION RESULT last, as MySQL lists them.
    explainer.lines.sort_by_key(|l| (l.id == 0, l.id));
    let mut r = ShowResult::new(vec![
        ("id", SqlType::bigint(true, true).with_length(3)),
        ("select_type", text(11)),
        ("table", nullable_text(64)),
        ("partitions", nullable_text(8192)),
        ("type", nullable_text(10)),
        ("possible_keys", nullable_text(4096)),
        ("key", nullable_text(64)),
        ("key_len", nullable_text(4096)),
        ("ref", nullable_text(4096)),
        ("rows", SqlType::bigint(true, true).with_length(10)),
        ("filtered", SqlType::decimal(5, 2, true)),
        ("Extra", nullable_text(255)),
    ]);
    let opt = |v: Option<String>| v.map_or(Value::Null, Value::Text);
    for l in explainer.lines {
        r.rows.push(vec![
            if l.id == 0 { Value::Null } else { Value::UInt(l.id) },
            Value::text(&l.select_type),
            opt(l.table),
            opt(l.partitions),
            opt(l.access.map(str::to_string)),
            opt(l.possible_keys),
            opt(l.key),
            opt(l.key_len),
            opt(l.reference),
            l.rows.map_or(Value::Null, Value::UInt),
            l.filtered.map_or(Value::Null, |f| Value::Decimal(cairn_common::decimal::Decimal::from_f64(f).and_then(|d| d.rescale(2)).unwrap_or_default())),
            if l.extra.is_empty() { Value::Null } else { Value::Text(l.extra.join("; ")) },
        ]);
    }
    Ok(r)
}

async fn explain_write<B: Backend>(explainer: &mut Explainer<'_, B>, table: &std::sync::Arc<TableDef>, access: &crate::dml::WriteAccess, kind: &str) -> Result<(), Error> {
    use crate::dml::WriteAccess;
    let mut line = Line::new(1, kind);
    line.table = Some(table.name.clone());
    line.partitions = Some(all_partitions(table));
    line.filtered = Some(100.0);
    match access {
        WriteAccess::Keys { keys, residual, .. } => {
            line.access = Some(if keys.len() == 1 { "const" } else { "range" });
            line.possible_keys = Some("PRIMARY".into());
            line.key = Some("PRIMARY".into());
            line.key_len = Some(key_len(table, &table.primary_key));
            line.reference = (keys.len() == 1).then(|| vec!["const"; table.primary_key.len()].join(","));
            line.rows = Some(keys.len() as u64);
            if let Some(r) = residual {
                line.extra.push(format!("Using pushed condition {}", render(r, &|c| column_name(table, &table.name, c))));
            }
        }
        WriteAccess::Where { filter } => {
            line.access = Some("ALL");
            line.possible_keys = possible_keys(table, &filter.iter().collect::<Vec<_>>(), &[]);
            line.rows = Some(explainer.rows_of(table).await);
            if let Some(f) = filter {
                line.extra.push("Using where".into());
                line.extra.push(format!("Using pushed condition {}", render(f, &|c| column_name(table, &table.name, c))));
            }
        }
        WriteAccess::Ordered { filter, order, .. } => {
            // The rows are found as a query would find them, then written by key.
            let node = crate::plan::plan_access(table.clone(), &table.name, filter.clone().map(Expr::into_conjuncts).unwrap_or_default(), crate::plan::JoinKind::Inner)?;
            explainer.walk(&node, 1, kind).await?;
            if !order.is_empty() {
                if let Some(l) = explainer.lines.last_mut() {
                    l.extra.push("Using filesort".into());
                }
            }
            return Ok(());
        }
    }
    explainer.lines.push(line);
    Ok(())
}
