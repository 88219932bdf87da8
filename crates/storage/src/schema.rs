//! What the store needs to know about a table: its row layout and how to find a row's primary
//! key and partition from the packed row.
//!
//! The primary-key hash index keeps no copy of any key: the key encoding of a stored row is
//! re-derived from the row's key columns whenever the index must hash or compare it. Re-deriving
//! decodes only the key columns (fixed-width integers are read in place), so it costs less than
//! the memory a stored key would take on every row.

use cairn_common::catalog::TableDef;
use cairn_common::ids::PartitionId;
use cairn_common::key::{encode_key_value, partition_of_encoded};
use cairn_common::row::RowLayout;
use cairn_common::value::Value;
use cairn_common::{Error, Result};

/// A table definition with its row layout, as the store uses it.
#[derive(Clone, Debug)]
pub struct TableSchema {
    pub def: TableDef,
    pub layout: RowLayout,
    /// Whether the partition key is the whole primary key, in order (the default), so that the
    /// partition hash can reuse the primary-key encoding.
    partition_is_primary: bool,
}

impl TableSchema {
    pub fn new(def: &TableDef) -> Result<TableSchema> {
        if def.primary_key.is_empty() {
            return Err(Error::internal(format!("table {} has no primary key", def.id)));
        }
        for &c in def.primary_key.iter().chain(&def.partition_key) {
            if c >= def.columns.len() {
                return Err(Error::internal(format!("table {}: key column {c} out of range", def.id)));
            }
        }
        if def.partitions.is_empty() {
            return Err(Error::internal(format!("table {} has no partitions", def.id)));
        }
        Ok(TableSchema {
            layout: def.layout(),
            partition_is_primary: def.partition_key == def.primary_key,
            def: def.clone(),
        })
    }

    /// Whether rows stored under `self` read the same under `other`: the same layout, and the
    /// same key and partition columns with the same types and collations. A newer table
    /// definition may replace the store's only then; anything else would reinterpret stored
    /// bytes and corrupt the index.
    ///
    /// An online column change (ALTER TABLE … ADD/DROP/MODIFY COLUMN) gives `other` a new row
    /// format that still reads every format `self` reads, and may move the key columns, which
    /// must keep their types and collations.
    pub fn compatible_with(&self, other: &TableSchema) -> bool {
        let same_layout = self.layout == other.layout;
        let descends = other.layout.reads_format(self.layout.format())
            && self.def.layouts.older.iter().all(|o| other.layout.reads_format(o.format));
        let moved = other.def.positions_since(self.def.layouts.format);
        let now_at = |c: usize| match &moved {
            Some(map) => map.get(c).copied().flatten(),
            None => Some(c),
        };
        let columns_agree = |mine: &[usize], theirs: &[usize]| {
            mine.len() == theirs.len()
                && mine.iter().zip(theirs).all(|(&a, &b)| {
                    now_at(a) == Some(b) && {
                        let (x, y) = (&self.def.columns[a], &other.def.columns[b]);
                        x.ty == y.ty && x.comparison() == y.comparison()
                    }
                })
        };
        (same_layout || descends)
            && columns_agree(&self.def.primary_key, &other.def.primary_key)
            && columns_agree(&self.def.partition_key, &other.def.partition_key)
            && self.def.partition_count() == other.def.partition_count()
    }

    /// Appends the primary-key encoding of a packed row.
    pub fn primary_key(&self, row: &[u8], out: &mut Vec<u8>) -> Result<()> {
        self.encode_columns(row, &self.def.primary_key, out)
    }

    pub fn primary_key_vec(&self, row: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(16);
        self.primary_key(row, &mut out)?;
        Ok(out)
    }

    fn encode_columns(&self, row: &[u8], columns: &[usize], out: &mut Vec<u8>) -> Result<()> {
        for &c in columns {
            let value = self.layout.decode_column(row, c)?;
            let column = &self.def.columns[c];
            encode_key_value(&value, &column.ty, column.comparison(), out)?;
        }
        Ok(())
    }

    /// The partition of a packed row whose primary-key encoding is `primary_key`.
    pub fn partition_of_row(&self, row: &[u8], primary_key: &[u8]) -> Result<PartitionId> {
        if self.partition_is_primary {
            return Ok(partition_of_encoded(primary_key, self.def.partition_count()));
        }
        let mut key = Vec::with_capacity(16);
        self.encode_columns(row, &self.def.partition_key, &mut key)?;
        Ok(partition_of_encoded(&key, self.def.partition_count()))
    }

    /// The primary-key encoding of key values given in primary-key order.
    pub fn encode_key_values(&self, key: &[Value]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(16);
        cairn_common::key::encode_key_values(&self.def, &self.def.primary_key, key, &mut out)?;
        Ok(out)
    }

    /// The partition of a row given its primary-key values (in primary-key order) and their
    /// encoding.
    pub fn partition_of_key(&self, key: &[Value], encoded: &[u8]) -> Result<PartitionId> {
        if self.partition_is_primary {
            return Ok(partition_of_encoded(encoded, self.def.partition_count()));
        }
        cairn_common::key::partition_of_primary_key(&self.def, key)
    }
}
