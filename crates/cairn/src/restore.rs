//! `cairn restore`: rebuilds a cluster's schema, routines, users and data from a backup (NDB's
//! ndb_restore).
//!
//! A backup (`START BACKUP` in `cairn mgm`) is one part per node group, each written by one data
//! node under its backup directory (`BACKUP/BACKUP-<id>/`). `cairn restore` takes the
//! directories holding those parts (every node group must be covered; copy them to one host or
//! give each path), checks every part completely first (control files, every block's checksum,
//! whole-file checksums, row counts) so that a damaged backup restores nothing, and then:
//!
//! 1. creates the databases, tables, stored routines and accounts (users, roles, grants) of the backup's catalog that the target cluster
//!    does not have (`--restore-meta`, NDB's `-m`). Tables get the target cluster's partitioning
//!    (unless they were created with an explicit `PARTITION BY ... PARTITIONS n`), so the target
//!    may have a different number of node groups;
//! 2. inserts every row through the cluster's normal write path (`--restore-data`, `-r`):
//!    decoded with the backed-up table's layout, encoded for the target table, hashed to its
//!    partition in the target cluster and sent in batches to the leader of that partition's
//!    node group, several batches at once. Inserts replace an existing row with the same key,
//!    so that a batch whose answer was lost can be sent again. Each row's unique-index entries
//!    (rows of the target's hidden index tables: the key, then the row's primary key) are
//!    inserted the same way; backups hold no index tables, and ordered indexes are built by the
//!    data nodes as rows arrive;
//! 3. sets each table's AUTO_INCREMENT counter to where it was at the backup;
//! 4. counts the rows of every restored table in the target cluster and compares them with the
//!    backup.
//!
//! It registers as an API node: the target cluster's config needs a `[[mysqld]]` slot that no
//! SQL node uses (`--nodeid`), as ndb_restore needs a free API slot.
//!
//! Why the write path rather than writing checkpoints directly: the target may have another
//! number of node groups and other table ids, every replica must agree on every row's slot, and
//! the write path already gets placement, replication and durability right. It is slower than
//! building checkpoint files, which is acceptable for a restore.
//!
//! Left out: restoring only some tables or databases, and catalog objects other than databases,
//! tables, routines and users.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cairn_common::accounts::AccountOp;
use cairn_common::catalog::{Catalog, CatalogOp, IndexKind, TableDef};
use cairn_common::ids::{NodeGroupId, TableId};
use cairn_common::key::partition_of_row;
use cairn_common::ops::{OnDuplicate, ReadOp, ReadResult, TableRef, WriteOp};
use cairn_proto::{Identity, Role};
use cairn_sql::backend::Backend;
use cairn_sqld::cluster::ClusterClient;
use cairn_storage::backup::{BackupControl, backup_dir, find_controls, read_rows};
use cairn_storage::checkpoint::FsDisk;

#[derive(clap::Args, Debug)]
pub struct RestoreArgs {
    /// Management server(s) of the target cluster (host:port, comma-separated).
    #[arg(short = 'c', long = "connect-string", default_value = "127.0.0.1:1186", value_delimiter = ',')]
    pub connect: Vec<String>,
    /// The backup's id.
    #[arg(short = 'b', long = "backupid")]
    pub backup_id: u32,
    /// Where the backup's parts are: a node's backup (or data) directory, or a BACKUP-<id>
    /// directory. Repeat for each node group's part.
    #[arg(long = "backup-path", required = true)]
    pub backup_path: Vec<PathBuf>,
    /// The API node id (a [[mysqld]] slot of the target's config that no SQL node uses).
    #[arg(long = "nodeid")]
    pub node_id: u32,
    /// The target cluster's secret (or CAIRN_SECRET, or --config).
    #[arg(long, env = "CAIRN_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// Read the secret from the target cluster's config.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Restore the schema and users (NDB's -m). Without -m and -r, both are done.
    #[arg(short = 'm', long = "restore-meta")]
    pub restore_meta: bool,
    /// Restore the rows (NDB's -r).
    #[arg(short = 'r', long = "restore-data")]
    pub restore_data: bool,
    /// Rows per write batch.
    #[arg(long, default_value_t = 256)]
    pub batch_rows: usize,
    /// Batches in flight at once.
    #[arg(long, default_value_t = 8)]
    pub parallelism: usize,
}

/// TLS to the target cluster when its config sets NodeSslDir: `cairn restore` registers in an
/// API slot, so it uses that slot's node certificate.
fn node_tls(args: &RestoreArgs) -> anyhow::Result<Option<cairn_proto::LinkTls>> {
    let Some(path) = &args.config else { return Ok(None) };
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let Some(dir) = cairn_control::ClusterConfig::parse(&text)?.cluster.node_ssl_dir else { return Ok(None) };
    let files = cairn_proto::TlsFiles::for_node(std::path::Path::new(&dir), args.node_id);
    Ok(Some(cairn_proto::LinkTls::load_node(&files, args.node_id, Role::Sqld).context("TLS to the cluster")?))
}

fn secret(args: &RestoreArgs) -> anyhow::Result<String> {
    if let Some(secret) = &args.secret {
        return Ok(secret.clone());
    }
    let Some(path) = &args.config else { bail!("give the target cluster's secret with --secret, CAIRN_SECRET or --config") };
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(cairn_control::ClusterConfig::parse(&text)?.cluster.secret)
}

/// The directory holding backup `id` for a path the user gave.
fn part_dir(path: &Path, id: u32) -> PathBuf {
    let nested = backup_dir(path, id);
    if nested.is_dir() {
        return nested;
    }
    path.to_path_buf()
}

/// One node group's part of the backup.
struct Part {
    dir: PathBuf,
    control: BackupControl,
}

/// Finds and checks every part: one per node group of the backed-up cluster.
fn load_parts(args: &RestoreArgs) -> anyhow::Result<(Vec<Part>, Catalog)> {
    let mut by_group: BTreeMap<NodeGroupId, Part> = BTreeMap::new();
    for path in &args.backup_path {
        let dir = part_dir(path, args.backup_id);
        let controls = find_controls(&FsDisk, &dir, args.backup_id)
            .with_context(|| format!("cannot read backup {} in {}", args.backup_id, dir.display()))?;
        for control in controls {
            by_group.entry(control.node_group).or_insert(Part { dir: dir.clone(), control });
        }
    }
    let Some(first) = by_group.values().next() else {
        bail!("no part of backup {} found in {:?}", args.backup_id, args.backup_path);
    };
    let catalog = first.control.catalog()?;
    let cluster = first.control.cluster_id;
    if by_group.values().any(|p| p.control.cluster_id != cluster) {
        bail!("the parts found belong to different clusters");
    }
    // Every node group that held a partition of a backed-up table must be there.
    let needed: std::collections::BTreeSet<NodeGroupId> =
        catalog.tables.values().flat_map(|t| t.partitions.iter().copied()).collect();
    let missing: Vec<String> = needed.iter().filter(|g| !by_group.contains_key(g)).map(|g| g.to_string()).collect();
    if !missing.is_empty() {
        bail!(
            "backup {} lacks the part of node group(s) {}: give --backup-path of a data node of each node group",
            args.backup_id,
            missing.join(", ")
        );
    }
    // Check every byte before changing anything.
    for part in by_group.values() {
        let rows = read_rows(&FsDisk, &part.dir, &part.control, |_, _| Ok(()))
            .with_context(|| format!("the part of node {} is damaged", part.control.node_id))?;
        println!(
            "Backup {} part of node {} (node group {}): {rows} rows, checksums good",
            args.backup_id, part.control.node_id, part.control.node_group
        );
    }
    Ok((by_group.into_values().collect(), catalog))
}

pub async fn run(args: RestoreArgs) -> anyhow::Result<i32> {
    let (meta, data) = match (args.restore_meta, args.restore_data) {
        (false, false) => (true, true),
        both => both,
    };
    let started = Instant::now();
    let (parts, backup_catalog) = tokio::task::block_in_place(|| load_parts(&args))?;
    let identity = Identity {
        node_id: args.node_id,
        role: Role::Sqld,
        secret: secret(&args)?,
        software_version: cairn_mgmd::admin::SOFTWARE_VERSION.to_string(),
        tls: node_tls(&args)?,
    };
    let management = cairn_mgmd::client::ManagementClient::connect(
        args.connect.clone(),
        identity.clone(),
        String::new(),
        Duration::from_secs(30),
    )
    .await?;
    management.wait_for_catalog(0, Duration::from_secs(10)).await;
    let client = Arc::new(ClusterClient::new(management.clone(), identity));

    if meta {
        restore_meta(client.as_ref(), &backup_catalog).await?;
    }
    if data {
        let catalog = client.catalog();
        let mapping = map_tables(&backup_catalog, &catalog)?;
        let unique = unique_targets(&catalog, &mapping)?;
        let mut inserted = 0u64;
        for part in &parts {
            inserted += restore_part(&client, &args, part, &backup_catalog, &mapping, &unique).await?;
        }
        restore_auto_increment(client.as_ref(), &parts, &mapping).await?;
        verify_counts(client.as_ref(), &parts, &backup_catalog, &mapping).await?;
        println!(
            "Restored {inserted} rows of {} tables in {:.1} s",
            mapping.len(),
            started.elapsed().as_secs_f64()
        );
    }
    println!("NDBT_ProgramExit: 0 - OK");
    Ok(0)
}

async fn restore_meta(client: &ClusterClient, catalog: &Catalog) -> anyhow::Result<()> {
    for database in catalog.databases.values() {
        let op = CatalogOp::CreateDatabase {
            name: database.name.clone(),
            charset: database.charset.clone(),
            collation: database.collation.clone(),
            if_not_exists: true,
        };
        client.ddl(op).await.with_context(|| format!("cannot create database {}", database.name))?;
    }
    let mut tables = 0;
    for def in catalog.tables.values() {
        let mut table = def.clone();
        if !table.explicit_partitioning {
            // The target cluster places the table on its own node groups.
            table.partitions.clear();
        }
        // The hidden tables of unique indexes are the target's own: it creates them.
        for index in &mut table.indexes {
            index.table = None;
        }
        client
            .ddl(CatalogOp::CreateTable { table, if_not_exists: true })
            .await
            .with_context(|| format!("cannot create table {}.{}", def.database, def.name))?;
        tables += 1;
    }
    // Accounts (users and roles) with their grants, in one change; ones the target already has
    // are kept as they are.
    client
        .ddl(CatalogOp::Accounts(vec![AccountOp::Restore(catalog.accounts.clone())]))
        .await
        .context("cannot restore the accounts")?;
    // Stored functions and procedures come back as they were defined (definer, SQL SECURITY,
    // body); one that already exists in the target is left alone, as tables are.
    let mut routines = 0;
    for routine in catalog.all_routines() {
        client
            .ddl(CatalogOp::CreateRoutine { routine: routine.clone(), or_replace: false, if_not_exists: true })
            .await
            .with_context(|| format!("cannot create routine {}.{}", routine.database, routine.name))?;
        routines += 1;
    }
    println!(
        "Restored metadata: {} databases, {tables} tables, {routines} routines, {} accounts",
        catalog.databases.len(),
        catalog.accounts.accounts.len()
    );
    Ok(())
}

/// A unique index of a target table: its columns and its hidden table in the target.
#[derive(Clone, Debug)]
struct UniqueTarget {
    columns: Vec<usize>,
    hidden: TableDef,
}

/// The unique indexes of every mapped target table, by backed-up table id.
fn unique_targets(target: &Catalog, mapping: &HashMap<TableId, TableDef>) -> anyhow::Result<HashMap<TableId, Vec<UniqueTarget>>> {
    let mut out = HashMap::new();
    for (&backup_id, def) in mapping {
        let mut indexes = Vec::new();
        for index in def.indexes.iter().filter(|ix| ix.kind == IndexKind::Unique) {
            let hidden = index.table.and_then(|id| target.table(id)).with_context(|| {
                format!("unique index {} of {}.{} has no index table in the target cluster", index.name, def.database, def.name)
            })?;
            indexes.push(UniqueTarget { columns: index.columns.clone(), hidden: hidden.clone() });
        }
        if !indexes.is_empty() {
            out.insert(backup_id, indexes);
        }
    }
    Ok(out)
}

/// The inserts of a row's unique-index entries, by node group: the key then the primary key,
/// none for an index whose key holds a NULL (as the SQL nodes write them).
fn entry_inserts(
    target: &TableDef,
    indexes: &[UniqueTarget],
    values: &[cairn_common::Value],
) -> cairn_common::Result<Vec<(NodeGroupId, WriteOp)>> {
    let mut out = Vec::with_capacity(indexes.len());
    for index in indexes {
        let mut entry: Vec<cairn_common::Value> = index.columns.iter().map(|&c| values[c].clone()).collect();
        if entry.iter().any(cairn_common::Value::is_null) {
            continue;
        }
        entry.extend(target.primary_key.iter().map(|&c| values[c].clone()));
        let partition = partition_of_row(&index.hidden, &entry)?;
        let group = index.hidden.partitions[partition.0 as usize];
        let row = index.hidden.layout().encode_to_vec(&entry)?;
        let table = TableRef { id: index.hidden.id, version: index.hidden.version };
        out.push((group, WriteOp::Insert { table, row, on_duplicate: OnDuplicate::Replace }));
    }
    Ok(out)
}

/// Backed-up table id → the target's table of the same name.
fn map_tables(backup: &Catalog, target: &Catalog) -> anyhow::Result<HashMap<TableId, TableDef>> {
    let mut mapping = HashMap::new();
    for def in backup.tables.values() {
        let Some(target_def) = target.table_by_name(&def.database, &def.name) else {
            bail!("the target cluster has no table {}.{} (restore the metadata with -m first)", def.database, def.name);
        };
        if target_def.columns.len() != def.columns.len() {
            bail!(
                "{}.{} has {} columns in the target cluster but {} in the backup",
                def.database,
                def.name,
                target_def.columns.len(),
                def.columns.len()
            );
        }
        mapping.insert(def.id, target_def.clone());
    }
    Ok(mapping)
}

type Batch = (NodeGroupId, Vec<WriteOp>);

async fn restore_part(
    client: &Arc<ClusterClient>,
    args: &RestoreArgs,
    part: &Part,
    backup_catalog: &Catalog,
    mapping: &HashMap<TableId, TableDef>,
    unique: &HashMap<TableId, Vec<UniqueTarget>>,
) -> anyhow::Result<u64> {
    let (sender, mut batches) = tokio::sync::mpsc::channel::<Batch>(args.parallelism * 2);
    let reader = {
        let (dir, control) = (part.dir.clone(), part.control.clone());
        let (backup_catalog, mapping, unique) = (backup_catalog.clone(), mapping.clone(), unique.clone());
        let batch_rows = args.batch_rows.max(1);
        tokio::task::spawn_blocking(move || -> anyhow::Result<u64> {
            let mut pending: HashMap<NodeGroupId, Vec<WriteOp>> = HashMap::new();
            let rows = read_rows(&FsDisk, &dir, &control, |table, row| {
                let (Some(source), Some(target)) = (backup_catalog.table(table), mapping.get(&table)) else {
                    // A table dropped before the backup's cut: not restored.
                    return Ok(());
                };
                let converted = (|| -> cairn_common::Result<(NodeGroupId, Vec<u8>, Vec<(NodeGroupId, WriteOp)>)> {
                    let values = source.layout().decode(row)?;
                    let partition = partition_of_row(target, &values)?;
                    let group = target.partitions[partition.0 as usize];
                    let entries = match unique.get(&table) {
                        Some(indexes) => entry_inserts(target, indexes, &values)?,
                        None => Vec::new(),
                    };
                    Ok((group, target.layout().encode_to_vec(&values)?, entries))
                })();
                let (group, row, entries) = converted.map_err(|e| {
                    cairn_storage::checkpoint::CheckpointError::Inconsistent(format!(
                        "a row of {}.{} cannot be converted: {}",
                        source.database, source.name, e.message
                    ))
                })?;
                let insert = WriteOp::Insert {
                    table: TableRef { id: target.id, version: target.version },
                    row,
                    on_duplicate: OnDuplicate::Replace,
                };
                for (group, op) in std::iter::once((group, insert)).chain(entries) {
                    let ops = pending.entry(group).or_default();
                    ops.push(op);
                    if ops.len() >= batch_rows {
                        let full = std::mem::take(ops);
                        if sender.blocking_send((group, full)).is_err() {
                            return Err(cairn_storage::checkpoint::CheckpointError::Invalid("the restore stopped".into()));
                        }
                    }
                }
                Ok(())
            })?;
            for (group, ops) in pending {
                if !ops.is_empty() && sender.blocking_send((group, ops)).is_err() {
                    bail!("the restore stopped");
                }
            }
            Ok(rows)
        })
    };
    let mut in_flight = tokio::task::JoinSet::new();
    let mut failure = None;
    while let Some((group, ops)) = batches.recv().await {
        while in_flight.len() >= args.parallelism.max(1) {
            if let Some(Ok(Err(e))) = in_flight.join_next().await {
                failure.get_or_insert(e);
            }
        }
        if failure.is_some() {
            break;
        }
        let client = client.clone();
        in_flight.spawn(async move { write_batch(&client, group, ops).await });
    }
    drop(batches);
    while let Some(result) = in_flight.join_next().await {
        if let Ok(Err(e)) = result {
            failure.get_or_insert(e);
        }
    }
    let rows = reader.await.context("the backup reader failed")?;
    if let Some(e) = failure {
        return Err(e);
    }
    let rows = rows?;
    println!("Restored {rows} rows of node {}'s part (node group {})", part.control.node_id, part.control.node_group);
    Ok(rows)
}

/// Sends one batch, retrying what can be retried (every insert replaces, so a batch whose
/// answer was lost may be sent again).
async fn write_batch(client: &ClusterClient, group: NodeGroupId, ops: Vec<WriteOp>) -> anyhow::Result<()> {
    let mut attempt = 0;
    loop {
        match client.write(group, ops.clone()).await {
            Ok(_) => return Ok(()),
            Err(e) if e.is_retryable() && attempt < 20 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
            }
            Err(e) => bail!("inserting into node group {group} failed: {e}"),
        }
    }
}

async fn restore_auto_increment(
    client: &ClusterClient,
    parts: &[Part],
    mapping: &HashMap<TableId, TableDef>,
) -> anyhow::Result<()> {
    let mut next: HashMap<TableId, u64> = HashMap::new();
    for part in parts {
        for table in &part.control.tables {
            let entry = next.entry(table.table).or_default();
            *entry = (*entry).max(table.auto_increment_next);
        }
    }
    for (table, value) in next {
        let Some(target) = mapping.get(&table) else { continue };
        if value < 2 {
            continue;
        }
        // The SQL nodes take AUTO_INCREMENT values from the node group of partition 0.
        let group = target.partitions[0];
        let op = WriteOp::ReserveAutoIncrement {
            table: TableRef { id: target.id, version: target.version },
            count: 1,
            at_least: value - 1,
        };
        client
            .write(group, vec![op])
            .await
            .with_context(|| format!("cannot set the AUTO_INCREMENT of {}.{}", target.database, target.name))?;
    }
    Ok(())
}

async fn verify_counts(
    client: &ClusterClient,
    parts: &[Part],
    backup_catalog: &Catalog,
    mapping: &HashMap<TableId, TableDef>,
) -> anyhow::Result<()> {
    let mut expected: HashMap<TableId, u64> = HashMap::new();
    for part in parts {
        for table in &part.control.tables {
            *expected.entry(table.table).or_default() += table.rows;
        }
    }
    for (table, rows) in expected {
        let (Some(source), Some(target)) = (backup_catalog.table(table), mapping.get(&table)) else { continue };
        let mut found = 0;
        let mut groups: Vec<NodeGroupId> = target.partitions.clone();
        groups.sort();
        groups.dedup();
        for group in groups {
            let op = ReadOp::Count { table: TableRef { id: target.id, version: target.version } };
            match client.read(group, op).await? {
                ReadResult::Counts(counts) => found += counts.iter().map(|(_, n)| n).sum::<u64>(),
                other => bail!("unexpected answer to a row count: {other:?}"),
            }
        }
        if found != rows {
            bail!("{}.{} has {found} rows after the restore, the backup holds {rows}", source.database, source.name);
        }
    }
    Ok(())
}
