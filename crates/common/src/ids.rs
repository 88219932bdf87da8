//! Identifiers, as distinct types so that a node id is never passed where a table id belongs.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
        #[serde(transparent)]
        pub struct $name(pub u32);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_type!(
    /// A node of the cluster (mgmd, datad or sqld), as NDB numbers them: 1..=255.
    NodeId
);
id_type!(
    /// A node group: `NoOfReplicas` data nodes holding the same partitions, one Raft group.
    NodeGroupId
);
id_type!(
    /// A table, never reused after DROP TABLE so that stale requests cannot hit a new table.
    TableId
);
id_type!(
    /// A partition (NDB: fragment) of a table.
    PartitionId
);
