//! Scalar expressions and their evaluation with MySQL's semantics.
//!
//! The SQL node compiles the expressions of a statement into [`Expr`] trees whose column
//! references are positions in an input row. The same trees are shipped to data nodes as
//! pushed-down filters (`WHERE`) and update programs (`SET n = n + 1`), so both sides evaluate
//! them with one implementation and agree on every result.
//!
//! Expressions that depend on the session (`NOW()`, `DATABASE()`, `RAND()`,
//! `LAST_INSERT_ID()`) are never shipped: the SQL node evaluates them first (see
//! [`Expr::is_pushable`]) so that every replica and every partition sees the same value.
//!
//! NULL semantics are SQL's three-valued logic: `NULL = NULL` is NULL, `NULL AND FALSE` is
//! FALSE, `x IN (1, NULL)` is NULL when x is not 1.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::collation::Collation;
use crate::decimal::Decimal;
use crate::error::{Error, ErrorKind, Result};
use crate::functions::{self, Func};
use crate::value::{Value, format_double};

/// Digits `/` adds to the dividend's scale (MySQL's div_precision_increment).
pub const DIV_PRECISION_INCREMENT: u8 = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CmpOp {
    Eq,
    /// `<=>`: equality where NULL <=> NULL is true.
    NullSafeEq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    IntDiv,
    Mod,
    BitAnd,
    BitOr,
    BitXor,
    ShiftLeft,
    ShiftRight,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum CastTarget {
    Signed,
    Unsigned,
    Char(Option<u32>),
    Binary(Option<u32>),
    Decimal { precision: u8, scale: u8 },
    Double,
    Date,
    DateTime { fsp: u8 },
    Time { fsp: u8 },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Expr {
    /// The value at this position of the input row.
    Column(u32),
    Literal(Value),
    /// A value bound when the statement runs (prepared-statement parameter); the SQL node
    /// substitutes it before the expression leaves for a data node.
    Param(u32),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    BitNot(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Xor(Box<Expr>, Box<Expr>),
    Compare { op: CmpOp, left: Box<Expr>, right: Box<Expr>, collation: Collation },
    Arith { op: ArithOp, left: Box<Expr>, right: Box<Expr> },
    IsNull { arg: Box<Expr>, negated: bool },
    /// `x IS [NOT] TRUE|FALSE`.
    IsBool { arg: Box<Expr>, value: bool, negated: bool },
    Like { arg: Box<Expr>, pattern: Box<Expr>, escape: char, negated: bool, collation: Collation },
    InList { arg: Box<Expr>, list: Vec<Expr>, negated: bool, collation: Collation },
    Between { arg: Box<Expr>, low: Box<Expr>, high: Box<Expr>, negated: bool, collation: Collation },
    Case { operand: Option<Box<Expr>>, whens: Vec<(Expr, Expr)>, otherwise: Option<Box<Expr>>, collation: Collation },
    Call { func: Func, args: Vec<Expr> },
    Cast { arg: Box<Expr>, to: CastTarget },
}

/// A note, warning or error attached to a statement's result (SHOW WARNINGS).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    pub level: WarningLevel,
    pub code: u16,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WarningLevel {
    Note,
    Warning,
    Error,
}

impl std::fmt::Display for WarningLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WarningLevel::Note => "Note",
            WarningLevel::Warning => "Warning",
            WarningLevel::Error => "Error",
        })
    }
}

/// What a session knows that a data node does not. The SQL node implements it; data nodes
/// evaluate with none, and a session function reaching them is an error.
pub trait SessionContext {
    /// The statement's start time, in the session time zone.
    fn now(&self) -> crate::temporal::DateTime;
    fn current_database(&self) -> Option<String>;
    /// `USER()`: the user name the client gave and the host it came from.
    fn current_user(&self) -> String;
    /// `CURRENT_USER()`: the account the login matched (`exim@%`); the same as `USER()` where
    /// there is no account.
    fn account(&self) -> String {
        self.current_user()
    }
    fn connection_id(&self) -> u64;
    fn last_insert_id(&self) -> u64;
    fn found_rows(&self) -> u64;
    fn row_count(&self) -> i64;
    fn random(&mut self) -> f64;
    fn version(&self) -> String;
}

/// Per-evaluation state: bound parameters, collected warnings, the session if any.
pub struct EvalContext<'a> {
    pub params: &'a [Value],
    pub warnings: Vec<Warning>,
    pub session: Option<&'a mut dyn SessionContext>,
    /// Strict mode for writes: conversions that would warn in a SELECT fail an INSERT/UPDATE.
    pub strict: bool,
    /// Parameters whose values the caller computes only when evaluation reaches them (a
    /// stored function call inside IF() or CASE runs only if its branch is taken). Reading one
    /// fails and records its index in `missing`; the caller computes it and evaluates again.
    pub unbound: &'a [u32],
    /// The unbound parameter the last evaluation needed.
    pub missing: Option<u32>,
}

impl<'a> EvalContext<'a> {
    /// A context with no session, as data nodes use.
    pub fn detached() -> EvalContext<'static> {
        EvalContext { params: &[], warnings: Vec::new(), session: None, strict: false, unbound: &[], missing: None }
    }

    pub fn with_params(params: &'a [Value]) -> EvalContext<'a> {
        EvalContext { params, warnings: Vec::new(), session: None, strict: false, unbound: &[], missing: None }
    }

    pub fn warn(&mut self, code: u16, message: impl Into<String>) {
        // Keep a bounded number, as MySQL's max_error_count (64) does.
        if self.warnings.len() < 64 {
            self.warnings.push(Warning { level: WarningLevel::Warning, code, message: message.into() });
        }
    }

    pub fn session(&mut self) -> Result<&mut dyn SessionContext> {
        match self.session.as_deref_mut() {
            Some(s) => Ok(s),
            None => Err(Error::internal("a session function reached a data node")),
        }
    }
}

fn boxed(e: Expr) -> Box<Expr> {
    Box::new(e)
}

impl Expr {
    pub fn column(i: usize) -> Expr {
        Expr::Column(i as u32)
    }

    pub fn literal(v: Value) -> Expr {
        Expr::Literal(v)
    }

    pub fn eq(left: Expr, right: Expr) -> Expr {
        Expr::Compare { op: CmpOp::Eq, left: boxed(left), right: boxed(right), collation: Collation::default() }
    }

    pub fn and(left: Expr, right: Expr) -> Expr {
        Expr::And(boxed(left), boxed(right))
    }

    /// Joins conjuncts with AND; None for an empty list.
    pub fn conjunction(mut parts: Vec<Expr>) -> Option<Expr> {
        let first = if parts.is_empty() { return None } else { parts.remove(0) };
        Some(parts.into_iter().fold(first, Expr::and))
    }

    /// Splits a conjunction into its parts.
    pub fn into_conjuncts(self) -> Vec<Expr> {
        match self {
            Expr::And(a, b) => {
                let mut parts = a.into_conjuncts();
                parts.extend(b.into_conjuncts());
                parts
            }
            other => vec![other],
        }
    }

    /// Calls `f` on this node and every node below it.
    pub fn walk(&self, f: &mut dyn FnMut(&Expr)) {
        f(self);
        match self {
            Expr::Column(_) | Expr::Literal(_) | Expr::Param(_) => {}
            Expr::Not(a) | Expr::Neg(a) | Expr::BitNot(a) => a.walk(f),
            Expr::IsNull { arg, .. } | Expr::IsBool { arg, .. } | Expr::Cast { arg, .. } => arg.walk(f),
            Expr::And(a, b) | Expr::Or(a, b) | Expr::Xor(a, b) => {
                a.walk(f);
                b.walk(f);
            }
            Expr::Compare { left, right, .. } | Expr::Arith { left, right, .. } => {
                left.walk(f);
                right.walk(f);
            }
            Expr::Like { arg, pattern, .. } => {
                arg.walk(f);
                pattern.walk(f);
            }
            Expr::InList { arg, list, .. } => {
                arg.walk(f);
                list.iter().for_each(|e| e.walk(f));
            }
            Expr::Between { arg, low, high, .. } => {
                arg.walk(f);
                low.walk(f);
                high.walk(f);
            }
            Expr::Case { operand, whens, otherwise, .. } => {
                if let Some(o) = operand {
                    o.walk(f);
                }
                for (w, t) in whens {
                    w.walk(f);
                    t.walk(f);
                }
                if let Some(o) = otherwise {
                    o.walk(f);
                }
            }
            Expr::Call { args, .. } => args.iter().for_each(|e| e.walk(f)),
        }
    }

    /// Calls `f` on every node, bottom-up, letting it replace nodes.
    pub fn transform(self, f: &mut dyn FnMut(Expr) -> Result<Expr>) -> Result<Expr> {
        fn t(e: Box<Expr>, f: &mut dyn FnMut(Expr) -> Result<Expr>) -> Result<Box<Expr>> {
            Ok(Box::new(e.transform(f)?))
        }
        fn all(list: Vec<Expr>, f: &mut dyn FnMut(Expr) -> Result<Expr>) -> Result<Vec<Expr>> {
            list.into_iter().map(|e| e.transform(f)).collect()
        }
        let node = match self {
            leaf @ (Expr::Column(_) | Expr::Literal(_) | Expr::Param(_)) => leaf,
            Expr::Not(a) => Expr::Not(t(a, f)?),
            Expr::Neg(a) => Expr::Neg(t(a, f)?),
            Expr::BitNot(a) => Expr::BitNot(t(a, f)?),
            Expr::And(a, b) => Expr::And(t(a, f)?, t(b, f)?),
            Expr::Or(a, b) => Expr::Or(t(a, f)?, t(b, f)?),
            Expr::Xor(a, b) => Expr::Xor(t(a, f)?, t(b, f)?),
            Expr::Compare { op, left, right, collation } => {
                Expr::Compare { op, left: t(left, f)?, right: t(right, f)?, collation }
            }
            Expr::Arith { op, left, right } => Expr::Arith { op, left: t(left, f)?, right: t(right, f)? },
            Expr::IsNull { arg, negated } => Expr::IsNull { arg: t(arg, f)?, negated },
            Expr::IsBool { arg, value, negated } => Expr::IsBool { arg: t(arg, f)?, value, negated },
            Expr::Like { arg, pattern, escape, negated, collation } => {
                Expr::Like { arg: t(arg, f)?, pattern: t(pattern, f)?, escape, negated, collation }
            }
            Expr::InList { arg, list, negated, collation } => {
                Expr::InList { arg: t(arg, f)?, list: all(list, f)?, negated, collation }
            }
            Expr::Between { arg, low, high, negated, collation } => {
                Expr::Between { arg: t(arg, f)?, low: t(low, f)?, high: t(high, f)?, negated, collation }
            }
            Expr::Case { operand, whens, otherwise, collation } => {
                let operand = match operand {
                    Some(o) => Some(t(o, f)?),
                    None => None,
                };
                let mut new_whens = Vec::with_capacity(whens.len());
                for (w, then) in whens {
                    new_whens.push((w.transform(f)?, then.transform(f)?));
                }
                let otherwise = match otherwise {
                    Some(o) => Some(t(o, f)?),
                    None => None,
                };
                Expr::Case { operand, whens: new_whens, otherwise, collation }
            }
            Expr::Call { func, args } => Expr::Call { func, args: all(args, f)? },
            Expr::Cast { arg, to } => Expr::Cast { arg: t(arg, f)?, to },
        };
        f(node)
    }

    /// Whether a data node can evaluate this expression (no session functions, no parameters).
    pub fn is_pushable(&self) -> bool {
        let mut ok = true;
        self.walk(&mut |e| match e {
            Expr::Param(_) => ok = false,
            Expr::Call { func, .. } if func.needs_session() => ok = false,
            _ => {}
        });
        ok
    }

    /// Whether the expression reads no column (so it can be evaluated once, up front).
    pub fn is_constant(&self) -> bool {
        let mut constant = true;
        self.walk(&mut |e| match e {
            Expr::Column(_) => constant = false,
            Expr::Call { func, .. } if !func.is_deterministic() => constant = false,
            _ => {}
        });
        constant
    }

    /// The columns the expression reads.
    pub fn columns(&self) -> Vec<u32> {
        let mut out = Vec::new();
        self.walk(&mut |e| {
            if let Expr::Column(c) = e {
                if !out.contains(c) {
                    out.push(*c);
                }
            }
        });
        out
    }

    /// Renumbers column references through `map` (old position → new position).
    pub fn remap_columns(self, map: &dyn Fn(u32) -> u32) -> Expr {
        self.transform(&mut |e| Ok(match e {
            Expr::Column(c) => Expr::Column(map(c)),
            other => other,
        }))
        .expect("remapping cannot fail")
    }

    /// Evaluates against one input row.
    pub fn eval(&self, row: &[Value], ctx: &mut EvalContext<'_>) -> Result<Value> {
        match self {
            Expr::Column(i) => row
                .get(*i as usize)
                .cloned()
                .ok_or_else(|| Error::internal(format!("column {i} out of range of a {}-column row", row.len()))),
            Expr::Literal(v) => Ok(v.clone()),
            Expr::Param(i) => {
                if ctx.unbound.contains(i) {
                    ctx.missing = Some(*i);
                    return Err(Error::internal(format!("parameter {i} is not bound yet")));
                }
                ctx.params
                    .get(*i as usize)
                    .cloned()
                    .ok_or_else(|| Error::new(ErrorKind::WrongArguments, "Incorrect arguments to mysqld_stmt_execute"))
            }
            Expr::Not(a) => Ok(match a.eval(row, ctx)?.truthy() {
                None => Value::Null,
                Some(b) => Value::from_bool(!b),
            }),
            Expr::Neg(a) => negate(a.eval(row, ctx)?),
            Expr::BitNot(a) => Ok(match a.eval(row, ctx)? {
                Value::Null => Value::Null,
                v => Value::UInt(!to_bit_operand(&v)),
            }),
            Expr::And(a, b) => {
                let left = a.eval(row, ctx)?.truthy();
                if left == Some(false) {
                    return Ok(Value::Int(0));
                }
                let right = b.eval(row, ctx)?.truthy();
                Ok(match (left, right) {
                    (_, Some(false)) => Value::Int(0),
                    (Some(true), Some(true)) => Value::Int(1),
                    _ => Value::Null,
                })
            }
            Expr::Or(a, b) => {
                let left = a.eval(row, ctx)?.truthy();
                if left == Some(true) {
                    return Ok(Value::Int(1));
                }
                let right = b.eval(row, ctx)?.truthy();
                Ok(match (left, right) {
                    (_, Some(true)) => Value::Int(1),
                    (Some(false), Some(false)) => Value::Int(0),
                    _ => Value::Null,
                })
            }
            Expr::Xor(a, b) => {
                let (l, r) = (a.eval(row, ctx)?.truthy(), b.eval(row, ctx)?.truthy());
                Ok(match (l, r) {
                    (Some(l), Some(r)) => Value::from_bool(l != r),
                    _ => Value::Null,
                })
            }
            Expr::Compare { op, left, right, collation } => {
                let l = left.eval(row, ctx)?;
                let r = right.eval(row, ctx)?;
                Ok(compare(*op, &l, &r, *collation))
            }
            Expr::Arith { op, left, right } => {
                let l = left.eval(row, ctx)?;
                let r = right.eval(row, ctx)?;
                arithmetic(*op, l, r, ctx)
            }
            Expr::IsNull { arg, negated } => Ok(Value::from_bool(arg.eval(row, ctx)?.is_null() != *negated)),
            Expr::IsBool { arg, value, negated } => {
                let truth = arg.eval(row, ctx)?.truthy();
                Ok(Value::from_bool((truth == Some(*value)) != *negated))
            }
            Expr::Like { arg, pattern, escape, negated, collation } => {
                let v = arg.eval(row, ctx)?;
                let p = pattern.eval(row, ctx)?;
                if v.is_null() || p.is_null() {
                    return Ok(Value::Null);
                }
                let binary = *collation == Collation::Binary || matches!(v, Value::Bytes(_)) || matches!(p, Value::Bytes(_));
                let matched = like(&v.to_text(), &p.to_text(), *escape, binary);
                Ok(Value::from_bool(matched != *negated))
            }
            Expr::InList { arg, list, negated, collation } => {
                let v = arg.eval(row, ctx)?;
                if v.is_null() {
                    return Ok(Value::Null);
                }
                let mut saw_null = false;
                for item in list {
                    let candidate = item.eval(row, ctx)?;
                    match v.sql_eq(&candidate, *collation) {
                        Some(true) => return Ok(Value::from_bool(!negated)),
                        Some(false) => {}
                        None => saw_null = true,
                    }
                }
                Ok(if saw_null { Value::Null } else { Value::from_bool(*negated) })
            }
            Expr::Between { arg, low, high, negated, collation } => {
                let v = arg.eval(row, ctx)?;
                let lo = low.eval(row, ctx)?;
                let hi = high.eval(row, ctx)?;
                let ge = compare(CmpOp::Ge, &v, &lo, *collation).truthy();
                let le = compare(CmpOp::Le, &v, &hi, *collation).truthy();
                let inside = match (ge, le) {
                    (Some(false), _) | (_, Some(false)) => Some(false),
                    (Some(true), Some(true)) => Some(true),
                    _ => None,
                };
                Ok(match inside {
                    None => Value::Null,
                    Some(b) => Value::from_bool(b != *negated),
                })
            }
            Expr::Case { operand, whens, otherwise, collation } => {
                let subject = operand.as_ref().map(|o| o.eval(row, ctx)).transpose()?;
                for (when, then) in whens {
                    let w = when.eval(row, ctx)?;
                    let hit = match &subject {
                        Some(s) => s.sql_eq(&w, *collation) == Some(true),
                        None => w.truthy() == Some(true),
                    };
                    if hit {
                        return then.eval(row, ctx);
                    }
                }
                match otherwise {
                    Some(e) => e.eval(row, ctx),
                    None => Ok(Value::Null),
                }
            }
            Expr::Call { func, args } => functions::call(*func, args, row, ctx),
            Expr::Cast { arg, to } => cast(arg.eval(row, ctx)?, to, ctx),
        }
    }

    /// Evaluates as a filter: only TRUE passes (NULL and FALSE do not).
    pub fn matches(&self, row: &[Value], ctx: &mut EvalContext<'_>) -> Result<bool> {
        Ok(self.eval(row, ctx)?.truthy() == Some(true))
    }
}

pub fn compare(op: CmpOp, l: &Value, r: &Value, collation: Collation) -> Value {
    if op == CmpOp::NullSafeEq {
        return Value::from_bool(match (l.is_null(), r.is_null()) {
            (true, true) => true,
            (true, false) | (false, true) => false,
            (false, false) => l.sql_eq(r, collation) == Some(true),
        });
    }
    match l.sql_cmp(r, collation) {
        None => Value::Null,
        Some(ord) => Value::from_bool(match op {
            CmpOp::Eq | CmpOp::NullSafeEq => ord == Ordering::Equal,
            CmpOp::Ne => ord != Ordering::Equal,
            CmpOp::Lt => ord == Ordering::Less,
            CmpOp::Le => ord != Ordering::Greater,
            CmpOp::Gt => ord == Ordering::Greater,
            CmpOp::Ge => ord != Ordering::Less,
        }),
    }
}

fn negate(v: Value) -> Result<Value> {
    Ok(match v {
        Value::Null => Value::Null,
        Value::Int(i) => match i.checked_neg() {
            Some(n) => Value::Int(n),
            None => Value::Decimal(Decimal::from_i64(i).negate()),
        },
        Value::UInt(u) => {
            if u <= i64::MAX as u64 + 1 {
                Value::Int((u as i128).wrapping_neg() as i64)
            } else {
                return Err(out_of_range("BIGINT", &format!("-{u}")));
            }
        }
        Value::Double(d) => Value::Double(-d),
        Value::Decimal(d) => Value::Decimal(d.negate()),
        other => Value::Double(-other.to_f64().unwrap_or(0.0)),
    })
}

fn out_of_range(kind: &str, what: &str) -> Error {
    Error::new(ErrorKind::ValueOutOfRange, format!("{kind} value is out of range in '{what}'"))
}

/// How two operands combine numerically.
enum NumClass {
    Signed(i64, i64),
    Unsigned(i128, i128),
    Decimal(Decimal, Decimal),
    Double(f64, f64),
}

fn classify(l: &Value, r: &Value) -> NumClass {
    use Value::*;
    let exact = |v: &Value| matches!(v, Int(_) | UInt(_) | Decimal(_));
    match (l, r) {
        (Int(a), Int(b)) => NumClass::Signed(*a, *b),
        (Int(_) | UInt(_), Int(_) | UInt(_)) => {
            let a = match l { Int(a) => *a as i128, UInt(a) => *a as i128, _ => 0 };
            let b = match r { Int(b) => *b as i128, UInt(b) => *b as i128, _ => 0 };
            NumClass::Unsigned(a, b)
        }
        _ if exact(l) && exact(r) => NumClass::Decimal(l.to_decimal().unwrap_or_default(), r.to_decimal().unwrap_or_default()),
        // Temporal operands take part as their numeric forms (20240131 + 1), exactly.
        _ if (exact(l) || l.is_temporal()) && (exact(r) || r.is_temporal()) => {
            NumClass::Decimal(l.to_decimal().unwrap_or_default(), r.to_decimal().unwrap_or_default())
        }
        _ => NumClass::Double(l.to_f64().unwrap_or(0.0), r.to_f64().unwrap_or(0.0)),
    }
}

fn to_bit_operand(v: &Value) -> u64 {
    match v {
        Value::UInt(u) => *u,
        Value::Int(i) => *i as u64,
        other => other.to_i64().map(|i| i as u64).or_else(|| other.to_u64()).unwrap_or(0),
    }
}

fn division_by_zero(ctx: &mut EvalContext<'_>) -> Result<Value> {
    if ctx.strict {
        return Err(Error::new(ErrorKind::DivisionByZero, "Division by 0"));
    }
    ctx.warn(1365, "Division by 0");
    Ok(Value::Null)
}

pub fn arithmetic(op: ArithOp, l: Value, r: Value, ctx: &mut EvalContext<'_>) -> Result<Value> {
    if l.is_null() || r.is_null() {
        return Ok(Value::Null);
    }
    let expr_text = || format!("{} {} {}", l.to_sql_literal(), op_symbol(op), r.to_sql_literal());
    match op {
        ArithOp::BitAnd | ArithOp::BitOr | ArithOp::BitXor | ArithOp::ShiftLeft | ArithOp::ShiftRight => {
            let (a, b) = (to_bit_operand(&l), to_bit_operand(&r));
            return Ok(Value::UInt(match op {
                ArithOp::BitAnd => a & b,
                ArithOp::BitOr => a | b,
                ArithOp::BitXor => a ^ b,
                ArithOp::ShiftLeft => if b >= 64 { 0 } else { a << b },
                _ => if b >= 64 { 0 } else { a >> b },
            }));
        }
        ArithOp::Div => {
            return match classify(&l, &r) {
                NumClass::Double(a, b) => {
                    if b == 0.0 { division_by_zero(ctx) } else { Ok(Value::Double(a / b)) }
                }
                _ => {
                    let (a, b) = (l.to_decimal().unwrap_or_default(), r.to_decimal().unwrap_or_default());
                    if b.is_zero() {
                        return division_by_zero(ctx);
                    }
                    a.checked_div(b, DIV_PRECISION_INCREMENT)
                        .map(Value::Decimal)
                        .ok_or_else(|| out_of_range("DECIMAL", &expr_text()))
                }
            };
        }
        ArithOp::IntDiv => {
            let quotient = match classify(&l, &r) {
                NumClass::Signed(a, b) => {
                    if b == 0 {
                        return division_by_zero(ctx);
                    }
                    return a.checked_div(b).map(Value::Int).ok_or_else(|| out_of_range("BIGINT", &expr_text()));
                }
                NumClass::Unsigned(a, b) => {
                    if b == 0 {
                        return division_by_zero(ctx);
                    }
                    let q = a / b;
                    return u64::try_from(q).map(Value::UInt).map_err(|_| out_of_range("BIGINT UNSIGNED", &expr_text()));
                }
                NumClass::Decimal(a, b) => {
                    if b.is_zero() {
                        return division_by_zero(ctx);
                    }
                    a.checked_div(b, DIV_PRECISION_INCREMENT).map(|d| d.truncate(0).round_to_i128())
                }
                NumClass::Double(a, b) => {
                    if b == 0.0 {
                        return division_by_zero(ctx);
                    }
                    Some((a / b).trunc() as i128)
                }
            };
            return quotient
                .and_then(|q| i64::try_from(q).ok())
                .map(Value::Int)
                .ok_or_else(|| out_of_range("BIGINT", &expr_text()));
        }
        _ => {}
    }
    Ok(match classify(&l, &r) {
        NumClass::Signed(a, b) => {
            let result = match op {
                ArithOp::Add => a.checked_add(b),
                ArithOp::Sub => a.checked_sub(b),
                ArithOp::Mul => a.checked_mul(b),
                ArithOp::Mod => {
                    if b == 0 {
                        return division_by_zero(ctx);
                    }
                    Some(a.checked_rem(b).unwrap_or(0))
                }
                _ => unreachable!("handled above"),
            };
            Value::Int(result.ok_or_else(|| out_of_range("BIGINT", &expr_text()))?)
        }
        NumClass::Unsigned(a, b) => {
            let result = match op {
                ArithOp::Add => a + b,
                ArithOp::Sub => a - b,
                ArithOp::Mul => a.checked_mul(b).unwrap_or(i128::MAX),
                ArithOp::Mod => {
                    if b == 0 {
                        return division_by_zero(ctx);
                    }
                    // The sign follows the dividend; with an unsigned operand MySQL gives an
                    // unsigned result when both are non-negative.
                    let m = a % b;
                    if m < 0 { return Ok(Value::Int(m as i64)) } else { m }
                }
                _ => unreachable!("handled above"),
            };
            Value::UInt(u64::try_from(result).map_err(|_| out_of_range("BIGINT UNSIGNED", &expr_text()))?)
        }
        NumClass::Decimal(a, b) => {
            let result = match op {
                ArithOp::Add => a.checked_add(b),
                ArithOp::Sub => a.checked_sub(b),
                ArithOp::Mul => a.checked_mul(b),
                ArithOp::Mod => {
                    if b.is_zero() {
                        return division_by_zero(ctx);
                    }
                    a.checked_rem(b)
                }
                _ => unreachable!("handled above"),
            };
            Value::Decimal(result.ok_or_else(|| out_of_range("DECIMAL", &expr_text()))?)
        }
        NumClass::Double(a, b) => {
            let result = match op {
                ArithOp::Add => a + b,
                ArithOp::Sub => a - b,
                ArithOp::Mul => a * b,
                ArithOp::Mod => {
                    if b == 0.0 {
                        return division_by_zero(ctx);
                    }
                    a % b
                }
                _ => unreachable!("handled above"),
            };
            if !result.is_finite() {
                return Err(out_of_range("DOUBLE", &expr_text()));
            }
            Value::Double(result)
        }
    })
}

fn op_symbol(op: ArithOp) -> &'static str {
    match op {
        ArithOp::Add => "+",
        ArithOp::Sub => "-",
        ArithOp::Mul => "*",
        ArithOp::Div => "/",
        ArithOp::IntDiv => "DIV",
        ArithOp::Mod => "%",
        ArithOp::BitAnd => "&",
        ArithOp::BitOr => "|",
        ArithOp::BitXor => "^",
        ArithOp::ShiftLeft => "<<",
        ArithOp::ShiftRight => ">>",
    }
}

/// SQL LIKE with `%`, `_` and an escape character. Under a case-insensitive collation each
/// character compares by its collation weight.
pub fn like(text: &str, pattern: &str, escape: char, binary: bool) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum Tok {
        Any,
        One,
        Lit(char),
    }
    let fold = |c: char| if binary { c } else { crate::collation::weight(c) };
    let mut tokens = Vec::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        tokens.push(match c {
            c if c == escape => Tok::Lit(fold(chars.next().unwrap_or(escape))),
            '%' => Tok::Any,
            '_' => Tok::One,
            c => Tok::Lit(fold(c)),
        });
    }
    let text: Vec<char> = text.chars().map(fold).collect();
    // Iterative matching with backtracking to the last '%': linear in practice, no recursion.
    let (mut t, mut p) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match tokens.get(p) {
            Some(Tok::Any) => {
                star = Some((p, t));
                p += 1;
            }
            Some(Tok::One) => {
                t += 1;
                p += 1;
            }
            Some(Tok::Lit(c)) if *c == text[t] => {
                t += 1;
                p += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    tokens[p..].iter().all(|tok| *tok == Tok::Any)
}

/// The integer a string means to `CAST(… AS SIGNED/UNSIGNED)`: its leading integer (after
/// spaces and a sign; `'12abc'` and `'1.5'` stop before the first non-digit), clamped to the
/// 64-bit range. Warns 1292 as MySQL does when anything but trailing spaces is left over, or the
/// number does not fit.
fn string_to_integer(text: &str, ctx: &mut EvalContext<'_>) -> i128 {
    let trimmed = text.trim_start();
    let bytes = trimmed.as_bytes();
    let mut end = usize::from(matches!(bytes.first(), Some(b'+' | b'-')));
    let digits_start = end;
    while end < bytes.len() && bytes[end].is_ascii_digit() {
        end += 1;
    }
    let digits = &trimmed[digits_start..end];
    let negative = bytes.first() == Some(&b'-');
    let limit: i128 = if negative { -(i64::MIN as i128) } else { u64::MAX as i128 };
    let mut value: i128 = 0;
    let mut overflow = false;
    for d in digits.bytes() {
        value = value * 10 + i128::from(d - b'0');
        if value > limit {
            value = limit;
            overflow = true;
        }
    }
    let clean = !digits.is_empty() && trimmed[end..].trim_end().is_empty();
    if !clean || overflow {
        ctx.warn(1292, format!("Truncated incorrect INTEGER value: '{text}'"));
    }
    if negative { -value } else { value }
}

/// CAST / CONVERT.
pub fn cast(v: Value, to: &CastTarget, ctx: &mut EvalContext<'_>) -> Result<Value> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    Ok(match to {
        CastTarget::Signed | CastTarget::Unsigned if matches!(v, Value::Text(_) | Value::Bytes(_)) => {
            let n = string_to_integer(&v.to_text(), ctx);
            match to {
                // Values above the signed range wrap, as MySQL's CAST does.
                CastTarget::Signed => Value::Int(i64::try_from(n).unwrap_or(n as u64 as i64)),
                _ => Value::UInt(u64::try_from(n).unwrap_or(n as i64 as u64)),
            }
        }
        CastTarget::Signed => match &v {
            Value::UInt(u) => Value::Int(*u as i64),
            Value::Double(d) => Value::Int(d.round() as i64),
            other => {
                let text = other.to_text();
                match other.to_i64() {
                    Some(i) => Value::Int(i),
                    None => {
                        ctx.warn(1292, format!("Truncated incorrect INTEGER value: '{text}'"));
                        Value::Int(0)
                    }
                }
            }
        },
        CastTarget::Unsigned => match &v {
            Value::Int(i) => Value::UInt(*i as u64),
            other => match other.to_u64() {
                Some(u) => Value::UInt(u),
                None => Value::UInt(other.to_i64().unwrap_or(0) as u64),
            },
        },
        CastTarget::Char(limit) => {
            let text = match &v {
                Value::Double(d) => format_double(*d),
                other => other.to_text().into_owned(),
            };
            Value::Text(match limit {
                Some(n) => text.chars().take(*n as usize).collect(),
                None => text,
            })
        }
        CastTarget::Binary(limit) => {
            let mut bytes = v.to_bytes().into_owned();
            if let Some(n) = limit {
                bytes.resize(*n as usize, 0);
            }
            Value::Bytes(bytes)
        }
        CastTarget::Decimal { precision, scale } => {
            let d = v.to_decimal().unwrap_or_default();
            let d = d.rescale(*scale).unwrap_or(d);
            if !d.fits(*precision, *scale) {
                // Out of range: MySQL clamps to the largest value of the type, with a warning.
                ctx.warn(1264, "Out of range value");
                let max = 10i128.pow(*precision as u32) - 1;
                let clamped = Decimal::new(if d.is_negative() { -max } else { max }, *scale).unwrap_or(d);
                Value::Decimal(clamped)
            } else {
                Value::Decimal(d)
            }
        }
        CastTarget::Double => Value::Double(v.to_f64().unwrap_or(0.0)),
        CastTarget::Date => match v.to_date() {
            Some(d) => Value::Date(d),
            None => {
                ctx.warn(1292, format!("Incorrect datetime value: '{}'", v.to_text()));
                Value::Null
            }
        },
        CastTarget::DateTime { fsp } => match v.to_datetime().and_then(|dt| dt.round_to_fsp(*fsp)) {
            Some(dt) => Value::DateTime(dt),
            None => {
                ctx.warn(1292, format!("Incorrect datetime value: '{}'", v.to_text()));
                Value::Null
            }
        },
        CastTarget::Time { .. } => match v.to_time() {
            Some(t) => Value::Time(t),
            None => {
                ctx.warn(1292, format!("Incorrect time value: '{}'", v.to_text()));
                Value::Null
            }
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(v: Value) -> Box<Expr> {
        Box::new(Expr::Literal(v))
    }

    fn eval(e: &Expr) -> Value {
        e.eval(&[], &mut EvalContext::detached()).unwrap()
    }

    fn show(v: Value) -> String {
        match v {
            Value::Null => "NULL".into(),
            other => other.to_text().into_owned(),
        }
    }

    fn arith(op: ArithOp, a: Value, b: Value) -> Result<Value> {
        arithmetic(op, a, b, &mut EvalContext::detached())
    }

    #[test]
    fn casting_strings_to_integers_warns_on_leftovers() {
        let cases: &[(&str, CastTarget, &str, usize)] = &[
            ("12abc", CastTarget::Signed, "12", 1),
            (" 42 ", CastTarget::Signed, "42", 0),
            ("1.5", CastTarget::Signed, "1", 1),
            ("abc", CastTarget::Unsigned, "0", 1),
            ("-1", CastTarget::Unsigned, "18446744073709551615", 0),
            ("18446744073709551615", CastTarget::Signed, "-1", 0),
            ("99999999999999999999", CastTarget::Unsigned, "18446744073709551615", 1),
            ("-99999999999999999999", CastTarget::Signed, "-9223372036854775808", 1),
        ];
        for (text, target, want, warnings) in cases {
            let mut ctx = EvalContext::detached();
            let got = cast(Value::text(*text), target, &mut ctx).unwrap();
            assert_eq!((show(got), ctx.warnings.len()), (want.to_string(), *warnings), "CAST('{text}' AS {target:?})");
        }
    }

    #[test]
    fn three_valued_logic() {
        let null = || lit(Value::Null);
        let t = || lit(Value::Int(1));
        let f = || lit(Value::Int(0));
        assert_eq!(show(eval(&Expr::And(null(), f()))), "0");
        assert_eq!(show(eval(&Expr::And(null(), t()))), "NULL");
        assert_eq!(show(eval(&Expr::Or(null(), t()))), "1");
        assert_eq!(show(eval(&Expr::Or(null(), f()))), "NULL");
        assert_eq!(show(eval(&Expr::Not(null()))), "NULL");
        let eq = Expr::Compare { op: CmpOp::Eq, left: null(), right: null(), collation: Collation::default() };
        assert_eq!(show(eval(&eq)), "NULL");
        let nse = Expr::Compare { op: CmpOp::NullSafeEq, left: null(), right: null(), collation: Collation::default() };
        assert_eq!(show(eval(&nse)), "1");
        let inl = Expr::InList { arg: lit(Value::Int(2)), list: vec![Expr::Literal(Value::Int(1)), Expr::Literal(Value::Null)], negated: false, collation: Collation::default() };
        assert_eq!(show(eval(&inl)), "NULL");
    }

    #[test]
    fn integer_arithmetic_overflows_with_1690() {
        assert_eq!(show(arith(ArithOp::Add, Value::Int(2), Value::Int(3)).unwrap()), "5");
        let err = arith(ArithOp::Add, Value::Int(i64::MAX), Value::Int(1)).unwrap_err();
        assert_eq!(err.code(), 1690);
        let err = arith(ArithOp::Sub, Value::UInt(1), Value::Int(2)).unwrap_err();
        assert_eq!(err.code(), 1690, "unsigned results may not go negative");
        assert_eq!(show(arith(ArithOp::Mul, Value::UInt(u64::MAX / 2), Value::Int(2)).unwrap()), (u64::MAX - 1).to_string());
    }

    #[test]
    fn division_rules() {
        assert_eq!(show(arith(ArithOp::Div, Value::Int(1), Value::Int(3)).unwrap()), "0.3333");
        assert_eq!(show(arith(ArithOp::Div, Value::Int(7), Value::Int(2)).unwrap()), "3.5000");
        assert_eq!(show(arith(ArithOp::Div, Value::Int(1), Value::Int(0)).unwrap()), "NULL");
        assert_eq!(show(arith(ArithOp::IntDiv, Value::Int(-7), Value::Int(2)).unwrap()), "-3");
        assert_eq!(show(arith(ArithOp::Mod, Value::Int(-7), Value::Int(2)).unwrap()), "-1");
        assert_eq!(show(arith(ArithOp::Div, Value::Double(1.0), Value::Int(4)).unwrap()), "0.25");
        assert_eq!(show(arith(ArithOp::Add, Value::text("1.5"), Value::Int(1)).unwrap()), "2.5");
        let mut strict = EvalContext::detached();
        strict.strict = true;
        assert_eq!(arithmetic(ArithOp::Div, Value::Int(1), Value::Int(0), &mut strict).unwrap_err().code(), 1365);
    }

    #[test]
    fn like_patterns() {
        assert!(like("alice@example.org", "%@example.%", '\\', false));
        assert!(like("Alice", "a____", '\\', false));
        assert!(!like("Alice", "a____", '\\', true));
        assert!(like("100%", "100\\%", '\\', false));
        assert!(!like("1000", "100\\%", '\\', false));
        assert!(like("", "%", '\\', false));
        assert!(!like("", "_", '\\', false));
        assert!(like("abcabc", "%abc", '\\', false));
        assert!(like("mississippi", "%iss%ppi", '\\', false));
        assert!(!like("abc", "ab", '\\', false));
    }

    #[test]
    fn case_and_between() {
        let case = Expr::Case {
            operand: Some(lit(Value::text("B"))),
            whens: vec![(Expr::Literal(Value::text("a")), Expr::Literal(Value::Int(1))), (Expr::Literal(Value::text("b")), Expr::Literal(Value::Int(2)))],
            otherwise: None,
            collation: Collation::default(),
        };
        assert_eq!(show(eval(&case)), "2");
        let between = Expr::Between { arg: lit(Value::Int(5)), low: lit(Value::Int(1)), high: lit(Value::Null), negated: false, collation: Collation::default() };
        assert_eq!(show(eval(&between)), "NULL");
        let between = Expr::Between { arg: lit(Value::Int(5)), low: lit(Value::Int(6)), high: lit(Value::Null), negated: false, collation: Collation::default() };
        assert_eq!(show(eval(&between)), "0");
    }

    #[test]
    fn expressions_serialize_for_data_nodes() {
        let e = Expr::and(Expr::eq(Expr::column(1), Expr::literal(Value::text("x"))), Expr::IsNull { arg: Box::new(Expr::column(2)), negated: true });
        let bytes = postcard::to_stdvec(&e).unwrap();
        let back: Expr = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, e);
        assert!(e.is_pushable());
        assert_eq!(e.columns(), vec![1, 2]);
        let row = vec![Value::Null, Value::text("X"), Value::Int(0)];
        assert!(e.matches(&row, &mut EvalContext::detached()).unwrap());
    }
}
