//! Partial aggregation on the data node ([`cairn_common::ops::ReadOp::Aggregate`]).
//!
//! `SELECT list_id, COUNT(*) FROM subscription GROUP BY list_id` over a million rows would
//! otherwise ship every row to the SQL node. Instead each node group groups its own rows and
//! answers with one row per group: the group's values and a partial result per aggregate
//! (COUNTs, exact or floating sums, MIN and MAX; AVG is a sum and a count). The SQL node
//! merges the partial groups of every node group and every slice.
//!
//! A request examines at most [`MAX_SCAN_EXAMINED`] rows, so the node-group loop is never held
//! up for long: the answer then carries the groups of the rows examined so far and where to
//! resume, and the SQL node asks again. Groups are formed with the same grouping key as the SQL
//! node's ([`cairn_common::group::normalize_into`]), and the answer holds at most
//! [`MAX_PARTIAL_GROUPS`] groups; a slice stops early when it reaches that many. Without GROUP
//! BY, a node group with no matching rows answers no group: the SQL node makes the one row an
//! aggregate over nothing gives.

use std::collections::HashMap;

use cairn_common::catalog::TableDef;
use cairn_common::collation::Collation;
use cairn_common::decimal::Decimal;
use cairn_common::expr::{EvalContext, Expr};
use cairn_common::group::normalize_into;
use cairn_common::ops::{PartialAggregate, ScanPosition};
use cairn_common::value::Value;
use cairn_common::{Error, ErrorKind, Result};

use crate::store::{MAX_SCAN_EXAMINED, Store};

/// Most groups one answer holds.
pub const MAX_PARTIAL_GROUPS: usize = 65_536;

/// One group's running partial results.
struct Partial {
    values: Vec<Value>,
}

fn add(state: &mut Value, kind: PartialAggregate, v: Value, collation: Collation) -> Result<()> {
    match kind {
        PartialAggregate::CountRows => *state = Value::Int(state.to_i64().unwrap_or(0) + 1),
        PartialAggregate::Count => {
            if !v.is_null() {
                *state = Value::Int(state.to_i64().unwrap_or(0) + 1);
            }
        }
        PartialAggregate::SumExact => {
            if v.is_null() {
                return Ok(());
            }
            let d = v.to_decimal().unwrap_or_default();
            *state = Value::Decimal(match state {
                Value::Decimal(s) => s
                    .checked_add(d)
                    .ok_or_else(|| Error::new(ErrorKind::ValueOutOfRange, "DECIMAL value is out of range in 'sum'"))?,
                _ => d,
            });
        }
        PartialAggregate::SumDouble => {
            if v.is_null() {
                return Ok(());
            }
            let x = v.to_f64().unwrap_or(0.0);
            *state = Value::Double(match state {
                Value::Double(s) => *s + x,
                _ => x,
            });
        }
        PartialAggregate::Min | PartialAggregate::Max => {
            if v.is_null() {
                return Ok(());
            }
            let better = match &*state {
                Value::Null => true,
                current => {
                    let ord = v.order_cmp(current, collation);
                    if kind == PartialAggregate::Max { ord.is_gt() } else { ord.is_lt() }
                }
            };
            if better {
                *state = v;
            }
        }
    }
    Ok(())
}

fn initial(kind: PartialAggregate) -> Value {
    match kind {
        PartialAggregate::CountRows | PartialAggregate::Count => Value::Int(0),
        _ => Value::Null,
    }
}

impl Store {
    /// Groups and aggregates the rows of this node group's partitions of `def` that pass
    /// `filter`, from `resume` on; see the module doc.
    pub fn aggregate(
        &self,
        def: &TableDef,
        filter: Option<&Expr>,
        group_by: &[(Expr, Collation)],
        aggregates: &[(PartialAggregate, Expr, Collation)],
        resume: Option<ScanPosition>,
    ) -> Result<(Vec<Vec<Value>>, Option<ScanPosition>)> {
        let partitions = self.local_partitions(def);
        let mut groups: Vec<Partial> = Vec::new();
        let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
        let Some(t) = self.tables.get(&def.id) else {
            return Ok((Vec::new(), None));
        };
        let built;
        let layout = match t.schema.as_ref() {
            Some(s) => &s.layout,
            None => {
                built = def.layout();
                &built
            }
        };
        let (start_at, start_slot) = match resume {
            None => (0, 0u32),
            Some(position) => {
                let at = partitions
                    .iter()
                    .position(|&p| p == position.partition)
                    .ok_or_else(|| Error::internal("an aggregation resumes in a partition it does not cover"))?;
                (at, u32::try_from(position.slot).unwrap_or(u32::MAX))
            }
        };
        let mut ctx = EvalContext::detached();
        let mut values = Vec::with_capacity(layout.column_count());
        let mut examined = 0u64;
        let mut key = Vec::with_capacity(32);
        for (at, &partition) in partitions.iter().enumerate().skip(start_at) {
            let Some(p) = t.partitions.get(&partition) else { continue };
            let mut slot = if at == start_at { start_slot } else { 0 };
            while let Some((found, row)) = p.next_row(&self.arena, slot) {
                slot = found + 1;
                examined += 1;
                values.clear();
                layout.decode_into(row, &mut values)?;
                let passes = match filter {
                    Some(f) => f.matches(&values, &mut ctx)?,
                    None => true,
                };
                if passes {
                    key.clear();
                    let mut group_values = Vec::with_capacity(group_by.len());
                    for (e, collation) in group_by {
                        let v = e.eval(&values, &mut ctx)?;
                        normalize_into(&v, *collation, &mut key);
                        group_values.push(v);
                    }
                    let g = match index.get(&key) {
                        Some(&g) => g,
                        None => {
                            let mut state = group_values;
                            state.extend(aggregates.iter().map(|(kind, _, _)| initial(*kind)));
                            groups.push(Partial { values: state });
                            index.insert(key.clone(), groups.len() - 1);
                            groups.len() - 1
                        }
                    };
                    let width = group_by.len();
                    for (i, (kind, e, collation)) in aggregates.iter().enumerate() {
                        let v = if *kind == PartialAggregate::CountRows { Value::Null } else { e.eval(&values, &mut ctx)? };
                        add(&mut groups[g].values[width + i], *kind, v, *collation)?;
                    }
                }
                if examined >= MAX_SCAN_EXAMINED || groups.len() >= MAX_PARTIAL_GROUPS {
                    let more_here = p.next_row(&self.arena, slot).is_some();
                    let more_later = partitions[at + 1..].iter().any(|q| t.partitions.get(q).is_some_and(|q| q.rows() > 0));
                    let resume = (more_here || more_later).then_some(ScanPosition { partition, slot: slot as u64 });
                    return Ok((groups.into_iter().map(|g| g.values).collect(), resume));
                }
            }
        }
        Ok((groups.into_iter().map(|g| g.values).collect(), None))
    }
}

/// Merges a partial result into a running one (the SQL node's side).
pub fn merge_partial(state: &mut Value, kind: PartialAggregate, partial: Value, collation: Collation) -> Result<()> {
    match kind {
        PartialAggregate::CountRows | PartialAggregate::Count => {
            *state = Value::Int(state.to_i64().unwrap_or(0) + partial.to_i64().unwrap_or(0));
            Ok(())
        }
        PartialAggregate::SumExact => {
            if partial.is_null() {
                return Ok(());
            }
            let d = partial.to_decimal().unwrap_or(Decimal::ZERO);
            *state = Value::Decimal(match state {
                Value::Decimal(s) => s
                    .checked_add(d)
                    .ok_or_else(|| Error::new(ErrorKind::ValueOutOfRange, "DECIMAL value is out of range in 'sum'"))?,
                _ => d,
            });
            Ok(())
        }
        _ => add(state, kind, partial, collation),
    }
}
