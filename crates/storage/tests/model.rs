//! Property test: random batches of write ops, evaluated by the leader through the pending
//! overlay and applied later in order, leave the store exactly as a simple model (BTreeMaps)
//! says, with the same outcomes and the same errors.
//!
//! Two tables: `a (id INT PRIMARY KEY, v INT NULL, s VARCHAR(8) NOT NULL)` in 4 partitions,
//! and `b (name VARCHAR(8) PRIMARY KEY, n INT NOT NULL)` in 3 partitions, whose key compares
//! case-insensitively (the model keys it by the upper-cased name). Keys come from small ranges
//! so that duplicates, moves onto existing keys and overlay hits are frequent.

mod support;

use std::collections::{BTreeMap, VecDeque};

use proptest::prelude::*;

use cairn_common::catalog::{Catalog, TableDef};
use cairn_common::collation::Collation;
use cairn_common::expr::{ArithOp, CmpOp, Expr};
use cairn_common::ids::{NodeGroupId, TableId};
use cairn_common::ops::{OnDuplicate, TableRef, WriteOp, WriteOutcome, WriteSet};
use cairn_common::value::Value;
use cairn_storage::{Limits, Pending, Store, evaluate};

#[derive(Clone, Copy, Debug)]
enum Dup {
    Error,
    Ignore,
    Replace,
    /// ON DUPLICATE KEY UPDATE v = v + 1 (table a) / n = n + 1 (table b).
    AddOne,
    /// ON DUPLICATE KEY UPDATE s = VALUES(s) (table a) / n = VALUES(n) (table b).
    TakeNew,
}

#[derive(Clone, Debug)]
enum Op {
    InsertA { id: i64, v: Option<i64>, s: String, dup: Dup },
    SetA { id: i64, v: i64 },
    IncrementA { id: i64 },
    MoveA { id: i64, to: i64 },
    DeleteA { id: i64, v_above: Option<i64> },
    UpdateWhereA { v_below: i64, add: i64 },
    DeleteWhereA { v_above: i64 },
    TruncateA,
    InsertB { name: String, n: i64, dup: Dup },
    SetB { name: String, n: i64 },
    DeleteB { name: String },
    Reserve { count: u64 },
}

#[derive(Clone, Debug)]
enum Step {
    Propose(Vec<Op>),
    Apply(usize),
}

fn dup() -> impl Strategy<Value = Dup> {
    prop_oneof![Just(Dup::Error), Just(Dup::Ignore), Just(Dup::Replace), Just(Dup::AddOne), Just(Dup::TakeNew)]
}

fn name() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "A", "b", "B", "ab", "aB", "Ab", "c"]).prop_map(str::to_string)
}

fn op() -> impl Strategy<Value = Op> {
    let id = || 0i64..10;
    let v = || -3i64..6;
    prop_oneof![
        4 => (id(), prop::option::of(v()), prop::sample::select(vec!["x", "y", "Y"]), dup())
            .prop_map(|(id, v, s, dup)| Op::InsertA { id, v, s: s.to_string(), dup }),
        2 => (id(), v()).prop_map(|(id, v)| Op::SetA { id, v }),
        2 => id().prop_map(|id| Op::IncrementA { id }),
        2 => (id(), id()).prop_map(|(id, to)| Op::MoveA { id, to }),
        2 => (id(), prop::option::of(v())).prop_map(|(id, v_above)| Op::DeleteA { id, v_above }),
        1 => (v(), 0i64..3).prop_map(|(v_below, add)| Op::UpdateWhereA { v_below, add }),
        1 => v().prop_map(|v_above| Op::DeleteWhereA { v_above }),
        1 => Just(Op::TruncateA),
        3 => (name(), v(), dup()).prop_map(|(name, n, dup)| Op::InsertB { name, n, dup }),
        1 => (name(), v()).prop_map(|(name, n)| Op::SetB { name, n }),
        1 => name().prop_map(|name| Op::DeleteB { name }),
        1 => (1u64..5).prop_map(|count| Op::Reserve { count }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => prop::collection::vec(op(), 1..4).prop_map(Step::Propose),
        1 => (1usize..4).prop_map(Step::Apply),
    ]
}

// ----- The model -----

#[derive(Clone, Debug, Default, PartialEq)]
struct Model {
    a: BTreeMap<i64, (Option<i64>, String)>,
    /// Upper-cased name → (name as stored, n).
    b: BTreeMap<String, (String, i64)>,
    auto_increment: u64,
}

/// Applies one op to the model; Err is the MySQL error code.
fn model_op(m: &mut Model, op: &Op, out: &mut WriteOutcome) -> Result<(), u16> {
    match op {
        Op::InsertA { id, v, s, dup } => match m.a.get_mut(id) {
            None => {
                m.a.insert(*id, (*v, s.clone()));
                out.inserted += 1;
            }
            Some(row) => match dup {
                Dup::Error => return Err(1062),
                Dup::Ignore => out.ignored += 1,
                Dup::Replace => {
                    *row = (*v, s.clone());
                    out.deleted += 1;
                    out.inserted += 1;
                }
                Dup::AddOne => {
                    out.matched += 1;
                    if let Some(old) = row.0 {
                        row.0 = Some(old + 1);
                        out.changed += 1;
                        out.upserted += 1;
                    }
                }
                Dup::TakeNew => {
                    out.matched += 1;
                    if row.1 != *s {
                        row.1 = s.clone();
                        out.changed += 1;
                        out.upserted += 1;
                    }
                }
            },
        },
        Op::SetA { id, v } => {
            if let Some(row) = m.a.get_mut(id) {
                out.matched += 1;
                if row.0 != Some(*v) {
                    row.0 = Some(*v);
                    out.changed += 1;
                }
            }
        }
        Op::IncrementA { id } => {
            if let Some(row) = m.a.get_mut(id) {
                out.matched += 1;
                if let Some(old) = row.0 {
                    row.0 = Some(old + 1);
                    out.changed += 1;
                }
            }
        }
        Op::MoveA { id, to } => {
            if m.a.contains_key(id) {
                out.matched += 1;
                if id != to {
                    if m.a.contains_key(to) {
                        return Err(1062);
                    }
                    let row = m.a.remove(id).expect("checked above");
                    m.a.insert(*to, row);
                    out.changed += 1;
                }
            }
        }
        Op::DeleteA { id, v_above } => {
            let passes = match (m.a.get(id), v_above) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(row), Some(limit)) => row.0.is_some_and(|v| v > *limit),
            };
            if passes {
                m.a.remove(id);
                out.deleted += 1;
            }
        }
        Op::UpdateWhereA { v_below, add } => {
            for row in m.a.values_mut() {
                if row.0.is_some_and(|v| v < *v_below) {
                    out.matched += 1;
                    if *add != 0 {
                        row.0 = row.0.map(|v| v + add);
                        out.changed += 1;
                    }
                }
            }
        }
        Op::DeleteWhereA { v_above } => {
            let before = m.a.len();
            m.a.retain(|_, row| row.0.is_none_or(|v| v <= *v_above));
            out.deleted += (before - m.a.len()) as u64;
        }
        Op::TruncateA => {
            m.a.clear();
            m.auto_increment = 0;
        }
        Op::InsertB { name, n, dup } => {
            let key = name.to_uppercase();
            match m.b.get_mut(&key) {
                None => {
                    m.b.insert(key, (name.clone(), *n));
                    out.inserted += 1;
                }
                Some(row) => match dup {
                    Dup::Error => return Err(1062),
                    Dup::Ignore => out.ignored += 1,
                    Dup::Replace => {
                        *row = (name.clone(), *n);
                        out.deleted += 1;
                        out.inserted += 1;
                    }
                    Dup::AddOne => {
                        out.matched += 1;
                        row.1 += 1;
                        out.changed += 1;
                        out.upserted += 1;
                    }
                    Dup::TakeNew => {
                        out.matched += 1;
                        if row.1 != *n {
                            row.1 = *n;
                            out.changed += 1;
                            out.upserted += 1;
                        }
                    }
                },
            }
        }
        Op::SetB { name, n } => {
            if let Some(row) = m.b.get_mut(&name.to_uppercase()) {
                out.matched += 1;
                if row.1 != *n {
                    row.1 = *n;
                    out.changed += 1;
                }
            }
        }
        Op::DeleteB { name } => {
            if m.b.remove(&name.to_uppercase()).is_some() {
                out.deleted += 1;
            }
        }
        Op::Reserve { count } => {
            let first = m.auto_increment.max(1);
            m.auto_increment = first + count;
            if out.auto_increment.is_none() {
                out.auto_increment = Some(first);
            }
        }
    }
    Ok(())
}

// ----- The store side -----

struct Tables {
    a: TableDef,
    b: TableDef,
}

fn setup() -> (Catalog, Tables) {
    use support::{column, create, int, table, varchar};
    let mut catalog = support::catalog();
    let a = table(
        "a",
        vec![column("id", int(false), false), column("v", int(false), true), column("s", varchar(8), false)],
        vec![0],
        vec![0],
        4,
    );
    let a = create(&mut catalog, a, 1);
    let b = table("b", vec![column("name", varchar(8), false), column("n", int(false), false)], vec![0], vec![0], 3);
    let b = create(&mut catalog, b, 1);
    let tables = Tables { a: catalog.table(a).unwrap().clone(), b: catalog.table(b).unwrap().clone() };
    (catalog, tables)
}

fn reference(def: &TableDef) -> TableRef {
    TableRef { id: def.id, version: def.version }
}

fn lit(v: Value) -> Box<Expr> {
    Box::new(Expr::Literal(v))
}

fn col(i: u32) -> Box<Expr> {
    Box::new(Expr::Column(i))
}

fn compare(op: CmpOp, column: u32, value: i64) -> Expr {
    Expr::Compare { op, left: col(column), right: lit(Value::Int(value)), collation: Collation::default() }
}

fn plus(column: u32, amount: i64) -> Expr {
    Expr::Arith { op: ArithOp::Add, left: col(column), right: lit(Value::Int(amount)) }
}

fn write_op(t: &Tables, op: &Op) -> WriteOp {
    let (a, b) = (reference(&t.a), reference(&t.b));
    let on_duplicate = |dup: Dup, add_column: u32, new_column: u32, width: u32| match dup {
        Dup::Error => OnDuplicate::Error,
        Dup::Ignore => OnDuplicate::Ignore,
        Dup::Replace => OnDuplicate::Replace,
        Dup::AddOne => OnDuplicate::Update(vec![(add_column, plus(add_column, 1))]),
        Dup::TakeNew => OnDuplicate::Update(vec![(new_column, Expr::Column(width + new_column))]),
    };
    match op {
        Op::InsertA { id, v, s, dup } => {
            let values = [Value::Int(*id), v.map_or(Value::Null, Value::Int), Value::text(s.clone())];
            let row = t.a.layout().encode_to_vec(&values).unwrap();
            WriteOp::Insert { table: a, row, on_duplicate: on_duplicate(*dup, 1, 2, 3) }
        }
        Op::SetA { id, v } => WriteOp::UpdateKey {
            table: a,
            key: vec![Value::Int(*id)],
            filter: None,
            assignments: vec![(1, Expr::Literal(Value::Int(*v)))],
        },
        Op::IncrementA { id } => WriteOp::UpdateKey {
            table: a,
            key: vec![Value::Int(*id)],
            filter: None,
            assignments: vec![(1, plus(1, 1))],
        },
        Op::MoveA { id, to } => WriteOp::UpdateKey {
            table: a,
            key: vec![Value::Int(*id)],
            filter: None,
            assignments: vec![(0, Expr::Literal(Value::Int(*to)))],
        },
        Op::DeleteA { id, v_above } => WriteOp::DeleteKey {
            table: a,
            key: vec![Value::Int(*id)],
            filter: v_above.map(|limit| compare(CmpOp::Gt, 1, limit)),
        },
        Op::UpdateWhereA { v_below, add } => WriteOp::UpdateWhere {
            table: a,
            filter: Some(compare(CmpOp::Lt, 1, *v_below)),
            assignments: vec![(1, plus(1, *add))],
            limit: None,
        },
        Op::DeleteWhereA { v_above } => {
            WriteOp::DeleteWhere { table: a, filter: Some(compare(CmpOp::Gt, 1, *v_above)), limit: None }
        }
        Op::TruncateA => WriteOp::Truncate { table: a },
        Op::InsertB { name, n, dup } => {
            let row = t.b.layout().encode_to_vec(&[Value::text(name.clone()), Value::Int(*n)]).unwrap();
            WriteOp::Insert { table: b, row, on_duplicate: on_duplicate(*dup, 1, 1, 2) }
        }
        Op::SetB { name, n } => WriteOp::UpdateKey {
            table: b,
            key: vec![Value::text(name.clone())],
            filter: None,
            assignments: vec![(1, Expr::Literal(Value::Int(*n)))],
        },
        Op::DeleteB { name } => WriteOp::DeleteKey { table: b, key: vec![Value::text(name.clone())], filter: None },
        Op::Reserve { count } => WriteOp::ReserveAutoIncrement { table: a, count: *count, at_least: 0 },
    }
}

/// The store's contents in the model's shape.
fn observe(store: &Store, t: &Tables) -> Model {
    let mut m = Model::default();
    let dump = |id: TableId, def: &TableDef| -> Vec<Vec<Value>> {
        let layout = def.layout();
        let mut rows = Vec::new();
        for p in store.partitions(id) {
            for (_, row) in store.partition_rows(id, p) {
                rows.push(layout.decode(row).unwrap());
            }
        }
        rows
    };
    for row in dump(t.a.id, &t.a) {
        let Value::Int(id) = row[0] else { panic!("id {:?}", row[0]) };
        let v = match row[1] {
            Value::Int(v) => Some(v),
            Value::Null => None,
            ref other => panic!("v {other:?}"),
        };
        assert!(m.a.insert(id, (v, row[2].to_text().into_owned())).is_none(), "key {id} stored twice");
    }
    for row in dump(t.b.id, &t.b) {
        let name = row[0].to_text().into_owned();
        let Value::Int(n) = row[1] else { panic!("n {:?}", row[1]) };
        assert!(m.b.insert(name.to_uppercase(), (name, n)).is_none(), "name stored twice");
    }
    m.auto_increment = store.auto_increment_next(t.a.id);
    m
}

fn run(steps: Vec<Step>) -> Result<(), TestCaseError> {
    let (catalog, tables) = setup();
    let mut store = Store::new(NodeGroupId(0));
    let mut pending = Pending::new();
    let mut model = Model::default();
    let mut proposed: VecDeque<(u64, WriteSet, Model)> = VecDeque::new();
    let mut token = 0u64;
    let limits = Limits::default();
    let apply = |store: &mut Store,
                 pending: &mut Pending,
                 proposed: &mut VecDeque<(u64, WriteSet, Model)>|
     -> Result<(), TestCaseError> {
        let (token, ws, expected) = proposed.pop_front().expect("caller checks");
        store.apply_write_set(&ws, &catalog).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(pending.applied(token));
        prop_assert_eq!(observe(store, &tables), expected, "store after applying token {}", token);
        Ok(())
    };
    for step in steps {
        match step {
            Step::Propose(ops) => {
                let mut next = model.clone();
                let mut expected_outcome = WriteOutcome::default();
                let expected: Result<(), u16> =
                    ops.iter().try_for_each(|op| model_op(&mut next, op, &mut expected_outcome));
                let write_ops: Vec<WriteOp> = ops.iter().map(|op| write_op(&tables, op)).collect();
                let actual = evaluate(&store, &pending, &catalog, &write_ops, &limits);
                match (expected, actual) {
                    (Ok(()), Ok((ws, mut outcome))) => {
                        // The change count is the write set's size, whatever the model says.
                        prop_assert_eq!(outcome.changes, ws.changes.len() as u64);
                        outcome.changes = 0;
                        prop_assert_eq!(outcome, expected_outcome, "outcome of {:?}", ops);
                        model = next;
                        if !ws.is_empty() {
                            token += 1;
                            pending.add(token, &ws, &catalog).map_err(|e| TestCaseError::fail(e.to_string()))?;
                            proposed.push_back((token, ws, model.clone()));
                        }
                    }
                    (Err(code), Err(e)) => prop_assert_eq!(code, e.code(), "error of {:?}: {}", ops, e),
                    (expected, actual) => {
                        return Err(TestCaseError::fail(format!("{ops:?}: model {expected:?}, store {actual:?}")));
                    }
                }
            }
            Step::Apply(n) => {
                for _ in 0..n.min(proposed.len()) {
                    apply(&mut store, &mut pending, &mut proposed)?;
                }
            }
        }
    }
    while !proposed.is_empty() {
        apply(&mut store, &mut pending, &mut proposed)?;
    }
    prop_assert!(pending.is_empty());
    prop_assert_eq!(observe(&store, &tables), model);
    store.check().map_err(|e| TestCaseError::fail(e.to_string()))?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn evaluation_through_the_overlay_matches_the_model(steps in prop::collection::vec(step(), 1..60)) {
        run(steps)?;
    }
}
