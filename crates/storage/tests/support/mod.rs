//! Helpers shared by the integration tests: building catalogs with tables.

#![allow(dead_code)]

use cairn_common::catalog::{Catalog, CatalogOp, CatalogOutcome, ColumnDef, TableDef};
use cairn_common::ids::{NodeGroupId, TableId};
use cairn_common::types::{ColumnType, IntWidth};

pub const DATABASE: &str = "test";

/// A catalog with the test database and no tables.
pub fn catalog() -> Catalog {
    let mut catalog = Catalog::new();
    catalog
        .apply(
            CatalogOp::CreateDatabase {
                name: DATABASE.into(),
                charset: "utf8mb4".into(),
                collation: "utf8mb4_general_ci".into(),
                if_not_exists: false,
            },
            &[NodeGroupId(0)],
        )
        .expect("a fresh catalog takes a database");
    catalog
}

/// A table definition with the given columns; `primary_key` and `partition_key` are column
/// indexes, `partitions` the partition count, spread over node groups 0..groups.
pub fn table(
    name: &str,
    columns: Vec<ColumnDef>,
    primary_key: Vec<usize>,
    partition_key: Vec<usize>,
    partitions: u32,
) -> TableDef {
    TableDef {
        id: TableId(0),
        version: 0,
        database: DATABASE.into(),
        name: name.into(),
        columns,
        primary_key,
        hidden_primary_key: false,
        indexes: vec![],
        foreign_keys: vec![],
        partition_key,
        partitions: vec![NodeGroupId(0); partitions as usize],
        explicit_partitioning: false,
        auto_increment_start: 1,
        charset: "utf8mb4".into(),
        collation: "utf8mb4_general_ci".into(),
        engine: "ndbcluster".into(),
        comment: String::new(),
        layouts: Default::default(),
    }
}

/// Adds a table to the catalog, placing partition i on node group i % groups.
pub fn create(catalog: &mut Catalog, def: TableDef, groups: u32) -> TableId {
    let groups: Vec<NodeGroupId> = (0..groups.max(1)).map(NodeGroupId).collect();
    match catalog.apply(CatalogOp::CreateTable { table: def, if_not_exists: false }, &groups) {
        Ok(CatalogOutcome::TableCreated { id }) => id,
        other => panic!("table not created: {other:?}"),
    }
}

pub fn column(name: &str, ty: ColumnType, nullable: bool) -> ColumnDef {
    let mut c = ColumnDef::new(name, ty);
    c.nullable = nullable;
    c
}

pub fn int(unsigned: bool) -> ColumnType {
    ColumnType::Int { width: IntWidth::Int, unsigned, display: None }
}

pub fn varchar(length: u32) -> ColumnType {
    ColumnType::VarChar { length, binary: false }
}
