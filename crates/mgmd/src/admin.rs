//! The admin protocol behind `cairn mgm`: commands in ndb_mgm's words, answers in ndb_mgm's
//! format, so that operators' habits and scripts carry over.

use std::collections::BTreeMap;

use cairn_common::catalog::Catalog;
use cairn_common::ids::NodeId;
use cairn_control::config::ClusterConfig;
use cairn_proto::Role;

use crate::nodes::LiveNode;

pub const SOFTWARE_VERSION: &str = concat!("cairn-", env!("CARGO_PKG_VERSION"));

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    All,
    Node(u32),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminCommand {
    Show,
    Status(Target),
    ReportMemory(Target),
    /// Cairn's addition: rows each data node holds per table.
    ReportTables(Target),
    Help,
    /// `N STOP`, `ALL STOP`.
    Stop(Target),
    /// `N RESTART [-n] [-i]`, `ALL RESTART [-n] [-i]` (a system restart).
    Restart { target: Target, initial: bool, no_start: bool },
    /// `N START`, `ALL START`: start nodes waiting after `RESTART -n`.
    Start(Target),
    /// `SHUTDOWN`: stop every data node, then this management node.
    Shutdown,
    /// `START BACKUP [id] [WAIT COMPLETED | WAIT STARTED | NOWAIT]`.
    StartBackup { id: Option<u32>, wait: BackupWait },
    /// `ABORT BACKUP id`.
    AbortBackup(u32),
}

/// Whether a command changes the cluster, and so needs the admin credential when the config
/// sets one. Listed the other way round (what only reads), so that a command added later is
/// guarded until someone decides it only reads.
pub fn changes_state(command: &AdminCommand) -> bool {
    !matches!(
        command,
        AdminCommand::Show
            | AdminCommand::Status(_)
            | AdminCommand::ReportMemory(_)
            | AdminCommand::ReportTables(_)
            | AdminCommand::Help
    )
}

/// How long `START BACKUP` waits before it answers (ndb_mgm's default is WAIT COMPLETED).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackupWait {
    Completed,
    Started,
    NoWait,
}

/// Parses a command line as ndb_mgm does (case-insensitive, `ALL` or a node id first).
pub fn parse(line: &str) -> Result<AdminCommand, String> {
    let words: Vec<String> = line.split_whitespace().map(|w| w.to_ascii_uppercase()).collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let target = |w: &str| -> Option<Target> {
        if w == "ALL" { Some(Target::All) } else { w.parse().ok().map(Target::Node) }
    };
    match words.as_slice() {
        ["SHOW"] => Ok(AdminCommand::Show),
        ["SHUTDOWN"] => Ok(AdminCommand::Shutdown),
        ["START", "BACKUP", rest @ ..] => parse_start_backup(rest).ok_or_else(|| invalid(line)),
        ["ABORT", "BACKUP", id] => id.parse().map(AdminCommand::AbortBackup).map_err(|_| invalid(line)),
        [t, "STOP"] => target(t).map(AdminCommand::Stop).ok_or_else(|| invalid(line)),
        [t, "START"] => target(t).map(AdminCommand::Start).ok_or_else(|| invalid(line)),
        [t, "RESTART", flags @ ..] => {
            let target = target(t).ok_or_else(|| invalid(line))?;
            let (mut initial, mut no_start) = (false, false);
            for flag in flags {
                match *flag {
                    "-I" | "-INITIAL" => initial = true,
                    "-N" | "-NOSTART" => no_start = true,
                    "-I-N" | "-N-I" | "-NI" | "-IN" => {
                        initial = true;
                        no_start = true;
                    }
                    _ => return Err(invalid(line)),
                }
            }
            Ok(AdminCommand::Restart { target, initial, no_start })
        }
        ["HELP"] | ["?"] => Ok(AdminCommand::Help),
        [t, "STATUS"] => target(t).map(AdminCommand::Status).ok_or_else(|| invalid(line)),
        [t, "REPORT", what] => {
            let t = target(t).ok_or_else(|| invalid(line))?;
            match *what {
                "MEMORY" | "MEMORYUSAGE" | "MEM" => Ok(AdminCommand::ReportMemory(t)),
                "TABLES" | "ROWS" => Ok(AdminCommand::ReportTables(t)),
                _ => Err(invalid(line)),
            }
        }
        _ => Err(invalid(line)),
    }
}

fn parse_start_backup(rest: &[&str]) -> Option<AdminCommand> {
    let (id, rest) = match rest.first().map(|w| w.parse::<u32>()) {
        Some(Ok(id)) if id > 0 => (Some(id), &rest[1..]),
        Some(Ok(_)) => return None,
        _ => (None, rest),
    };
    let wait = match rest {
        [] | ["WAIT", "COMPLETED"] => BackupWait::Completed,
        ["WAIT", "STARTED"] => BackupWait::Started,
        ["NOWAIT"] => BackupWait::NoWait,
        _ => return None,
    };
    Some(AdminCommand::StartBackup { id, wait })
}

fn invalid(line: &str) -> String {
    format!("Invalid command: {}\nType HELP for help.", line.trim())
}

pub const HELP: &str = "\
---------------------------------------------------------------------------
 Cairn -- Management Client -- Help
---------------------------------------------------------------------------
HELP                                   Print help text
SHOW                                   Print information about cluster
<id> STATUS                            Print status
ALL STATUS                             Print status of all data nodes
<id> REPORT MEMORY                     Print data memory usage
ALL REPORT MEMORY                      Print data memory usage of all data nodes
<id> REPORT TABLES                     Print rows held per table (Cairn)
ALL REPORT TABLES                      Print rows held per table on every data node (Cairn)
<id> STOP                              Stop data node
ALL STOP                               Stop all data nodes
<id> RESTART [-n] [-i]                 Restart data node (-n: wait for START, -i: initial)
ALL RESTART [-n] [-i]                  Restart all data nodes (a system restart)
<id> START                             Start data node (started with -n)
ALL START                              Start all data nodes waiting after -n
SHUTDOWN                               Shutdown all data nodes and this management server
START BACKUP [id] [NOWAIT | WAIT STARTED | WAIT COMPLETED]
                                       Start backup (default WAIT COMPLETED)
ABORT BACKUP <backup id>               Abort backup
QUIT                                   Quit management client
";

/// What the renderers need to know about the cluster.
pub struct View<'a> {
    pub config: &'a ClusterConfig,
    pub nodes: &'a BTreeMap<u32, LiveNode>,
    pub catalog: &'a Catalog,
    /// The management Raft leader, for marking.
    pub mgm_leader: u32,
    /// A node whose last heartbeat is older than this is shown as not connected, even if its
    /// TCP connection is still open (a paused or hung process), as NDB declares such nodes dead.
    pub heartbeat_timeout: std::time::Duration,
}

impl View<'_> {
    /// The node, if connected and heard from recently.
    fn live(&self, id: u32) -> Option<&LiveNode> {
        self.nodes.get(&id).filter(|n| n.last_heartbeat.elapsed() <= self.heartbeat_timeout)
    }
}

fn version_of(node: &LiveNode) -> &str {
    if node.software_version.is_empty() { SOFTWARE_VERSION } else { &node.software_version }
}

fn phase_of(node: &LiveNode) -> &str {
    if node.stopping {
        return "stopping";
    }
    node.status.as_ref().map(|s| s.phase.as_str()).filter(|p| !p.is_empty()).unwrap_or("starting")
}

/// The phase as ndb_mgm words it: "starting" carries the last completed start phase.
fn phase_words(node: &LiveNode) -> String {
    let phase = phase_of(node);
    match node.status.as_ref() {
        Some(status) if phase == "starting" => format!("starting (Last completed phase {})", status.start_phase),
        _ => phase.to_string(),
    }
}

pub fn execute(command: &AdminCommand, view: &View<'_>) -> String {
    match command {
        // Operations that act on nodes run in `operations`, not here.
        AdminCommand::Stop(_)
        | AdminCommand::Restart { .. }
        | AdminCommand::Start(_)
        | AdminCommand::Shutdown
        | AdminCommand::StartBackup { .. }
        | AdminCommand::AbortBackup(_) => String::from("This command runs as an operation"),
        AdminCommand::Show => show(view),
        AdminCommand::Help => HELP.to_string(),
        AdminCommand::Status(target) => data_targets(target, view)
            .into_iter()
            .map(|id| status_line(id, view))
            .collect::<Vec<_>>()
            .join("\n"),
        AdminCommand::ReportMemory(target) => data_targets(target, view)
            .into_iter()
            .map(|id| memory_line(id, view))
            .collect::<Vec<_>>()
            .join("\n"),
        AdminCommand::ReportTables(target) => data_targets(target, view)
            .into_iter()
            .map(|id| tables_report(id, view))
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

fn data_targets(target: &Target, view: &View<'_>) -> Vec<u32> {
    match target {
        Target::All => view.config.data_nodes.iter().map(|d| d.id.0).collect(),
        Target::Node(id) => vec![*id],
    }
}

fn status_line(id: u32, view: &View<'_>) -> String {
    let Some(role) = view.config.role_of(NodeId(id)) else {
        return format!("Node {id}: not found in the cluster configuration");
    };
    match view.live(id) {
        None => format!("Node {id}: not connected"),
        Some(node) => match role {
            cairn_control::config::NodeKind::Datad => {
                let notice = node.status.as_ref().map(|s| s.notice.as_str()).filter(|n| !n.is_empty());
                match notice {
                    Some(notice) => format!("Node {id}: {} ({})\nNode {id}: {notice}", phase_words(node), version_of(node)),
                    None => format!("Node {id}: {} ({})", phase_words(node), version_of(node)),
                }
            }
            _ => format!("Node {id}: connected ({})", version_of(node)),
        },
    }
}

/// NDB reports memory in 32 KiB pages.
const PAGE: u64 = 32 * 1024;

fn memory_line(id: u32, view: &View<'_>) -> String {
    match view.live(id).and_then(|n| n.status.as_ref()) {
        Some(status) if view.config.data_node(NodeId(id)).is_some() => {
            let used = status.data_memory_used.div_ceil(PAGE);
            let total = (status.data_memory_total / PAGE).max(1);
            let percent = used * 100 / total;
            format!("Node {id}: Data usage is {percent}%({used} 32K pages of total {total})")
        }
        _ if view.config.data_node(NodeId(id)).is_none() => format!("Node {id}: is not a data node"),
        _ => format!("Node {id}: not connected"),
    }
}

fn tables_report(id: u32, view: &View<'_>) -> String {
    let Some(status) = view.live(id).and_then(|n| n.status.as_ref()) else {
        return format!("Node {id}: not connected");
    };
    let mut lines = Vec::new();
    for t in &status.tables {
        let name = view
            .catalog
            .table(cairn_common::ids::TableId(t.table_id))
            .map_or_else(|| format!("table #{}", t.table_id), |d| format!("{}.{}", d.database, d.name));
        lines.push(format!("Node {id}: {name}: {} rows in {} partitions", t.rows, t.partitions));
    }
    if lines.is_empty() {
        lines.push(format!("Node {id}: no table rows"));
    }
    lines.join("\n")
}

fn show(view: &View<'_>) -> String {
    let mut out = String::from("Cluster Configuration\n---------------------\n");
    let config = view.config;
    out.push_str(&format!("[ndbd(NDB)]\t{} node(s)\n", config.data_nodes.len()));
    for d in &config.data_nodes {
        match view.live(d.id.0) {
            Some(node) => {
                let phase = phase_of(node);
                let leader = node.status.as_ref().is_some_and(|s| s.is_leader);
                let phase_part = if phase == "started" { String::new() } else { format!("{phase}, ") };
                out.push_str(&format!(
                    "id={}\t@{}  ({}, {}Nodegroup: {}{})\n",
                    d.id,
                    node.peer_host,
                    version_of(node),
                    phase_part,
                    d.node_group,
                    if leader { ", *" } else { "" }
                ));
            }
            None => out.push_str(&format!("id={} (not connected, accepting connect from {})\n", d.id, d.host)),
        }
    }
    out.push_str(&format!("\n[ndb_mgmd(MGM)]\t{} node(s)\n", config.mgmds.len()));
    for m in &config.mgmds {
        let me_or_connected = view.nodes.get(&m.node_id).map(|n| (n.peer_host.clone(), version_of(n).to_string()));
        let (host, version) = me_or_connected.unwrap_or_else(|| (m.host_name.clone(), SOFTWARE_VERSION.to_string()));
        let reachable = view.nodes.contains_key(&m.node_id) || m.node_id == view.mgm_leader || config.mgmds.len() == 1;
        if reachable {
            out.push_str(&format!("id={}\t@{}  ({})\n", m.node_id, host, version));
        } else {
            out.push_str(&format!("id={} (not connected, accepting connect from {})\n", m.node_id, m.host_name));
        }
    }
    out.push_str(&format!("\n[mysqld(API)]\t{} node(s)\n", config.sql_nodes.len()));
    for s in &config.sql_nodes {
        match view.live(s.node_id).filter(|n| n.role == Role::Sqld) {
            Some(node) => out.push_str(&format!("id={}\t@{}  ({})\n", s.node_id, node.peer_host, version_of(node))),
            None => out.push_str(&format!(
                "id={} (not connected, accepting connect from {})\n",
                s.node_id,
                s.host_name.as_deref().unwrap_or("any host")
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_proto::pb::{NodeStatus, TableRows};
    use std::time::Instant;

    fn config() -> ClusterConfig {
        ClusterConfig::parse(
            r#"
            [cluster]
            Secret = "0123456789"
            AllowPasswordlessRoot = true
            [[ndb_mgmd]]
            NodeId = 49
            [[ndbd]]
            NodeId = 1
            ServerPort = 11861
            [[ndbd]]
            NodeId = 2
            ServerPort = 11862
            [[mysqld]]
            NodeId = 50
            [[mysqld]]
            NodeId = 51
            Port = 3307
            "#,
        )
        .unwrap()
    }

    fn live(role: Role, status: Option<NodeStatus>) -> LiveNode {
        LiveNode {
            role,
            peer_host: "127.0.0.1".into(),
            address: String::new(),
            software_version: SOFTWARE_VERSION.into(),
            connected_at: Instant::now(),
            last_heartbeat: Instant::now(),
            status,
            channel: None,
            stopping: false,
            catalog_version: 0,
        }
    }

    fn data_status(phase: &str, leader: bool) -> NodeStatus {
        NodeStatus {
            node_id: 1,
            phase: phase.into(),
            is_leader: leader,
            data_memory_used: 177 * 32 * 1024,
            data_memory_total: 3200 * 32 * 1024,
            tables: vec![TableRows { table_id: 7, rows: 50_000, partitions: 8 }],
            ..Default::default()
        }
    }

    #[test]
    fn show_matches_ndb_mgm() {
        let config = config();
        let mut nodes = BTreeMap::new();
        nodes.insert(1, live(Role::Datad, Some(data_status("started", true))));
        nodes.insert(2, live(Role::Datad, Some(data_status("starting", false))));
        nodes.insert(50, live(Role::Sqld, None));
        let catalog = Catalog::new();
        let view = View {
            config: &config,
            nodes: &nodes,
            catalog: &catalog,
            mgm_leader: 49,
            heartbeat_timeout: std::time::Duration::from_secs(3),
        };
        let expected = format!(
            "Cluster Configuration\n---------------------\n\
             [ndbd(NDB)]\t2 node(s)\n\
             id=1\t@127.0.0.1  ({v}, Nodegroup: 0, *)\n\
             id=2\t@127.0.0.1  ({v}, starting, Nodegroup: 0)\n\
             \n[ndb_mgmd(MGM)]\t1 node(s)\n\
             id=49\t@127.0.0.1  ({v})\n\
             \n[mysqld(API)]\t2 node(s)\n\
             id=50\t@127.0.0.1  ({v})\n\
             id=51 (not connected, accepting connect from any host)\n",
            v = SOFTWARE_VERSION
        );
        assert_eq!(execute(&AdminCommand::Show, &view), expected);
        assert_eq!(
            execute(&parse("all report memory").unwrap(), &view),
            "Node 1: Data usage is 5%(177 32K pages of total 3200)\nNode 2: Data usage is 5%(177 32K pages of total 3200)"
        );
        assert_eq!(
            execute(&parse("2 status").unwrap(), &view),
            format!("Node 2: starting (Last completed phase 0) ({SOFTWARE_VERSION})")
        );
        assert_eq!(execute(&parse("51 STATUS").unwrap(), &view), "Node 51: not connected");
        assert_eq!(execute(&parse("1 report tables").unwrap(), &view), "Node 1: table #7: 50000 rows in 8 partitions");
        // A node that stopped sending heartbeats (paused, hung) is not shown as alive.
        let mut stale = nodes.clone();
        if let Some(n) = stale.get_mut(&2) {
            n.last_heartbeat = Instant::now() - std::time::Duration::from_secs(10);
        }
        let view = View { nodes: &stale, ..view };
        assert_eq!(execute(&parse("2 status").unwrap(), &view), "Node 2: not connected");
    }

    #[test]
    fn parse_errors_say_invalid_command() {
        assert_eq!(parse("frobnicate").unwrap_err(), "Invalid command: frobnicate\nType HELP for help.");
        assert!(parse("x STATUS").is_err());
        assert_eq!(parse("ALL STATUS").unwrap(), AdminCommand::Status(Target::All));
    }

    #[test]
    fn restart_stop_start_and_backup_commands_parse_as_ndb_mgm_spells_them() {
        assert_eq!(
            parse("2 restart -n -i").unwrap(),
            AdminCommand::Restart { target: Target::Node(2), initial: true, no_start: true }
        );
        assert_eq!(
            parse("ALL RESTART").unwrap(),
            AdminCommand::Restart { target: Target::All, initial: false, no_start: false }
        );
        assert_eq!(parse("3 STOP").unwrap(), AdminCommand::Stop(Target::Node(3)));
        assert_eq!(parse("3 start").unwrap(), AdminCommand::Start(Target::Node(3)));
        assert_eq!(parse("shutdown").unwrap(), AdminCommand::Shutdown);
        assert_eq!(parse("START BACKUP").unwrap(), AdminCommand::StartBackup { id: None, wait: BackupWait::Completed });
        assert_eq!(
            parse("start backup 7 wait started").unwrap(),
            AdminCommand::StartBackup { id: Some(7), wait: BackupWait::Started }
        );
        assert_eq!(parse("START BACKUP NOWAIT").unwrap(), AdminCommand::StartBackup { id: None, wait: BackupWait::NoWait });
        assert_eq!(parse("ABORT BACKUP 7").unwrap(), AdminCommand::AbortBackup(7));
        assert!(parse("2 RESTART -x").is_err());
        assert!(parse("START BACKUP 0").is_err());
        assert!(parse("START BACKUP WAIT FOREVER").is_err());
        assert!(parse("ABORT BACKUP").is_err());
    }

    #[test]
    fn starting_nodes_show_their_last_completed_phase_and_notices() {
        let config = config();
        let mut nodes = BTreeMap::new();
        let mut starting = data_status("starting", false);
        starting.start_phase = 3;
        starting.notice = "recovered from a damaged local checkpoint".into();
        nodes.insert(1, live(Role::Datad, Some(starting)));
        let mut stopping = live(Role::Datad, Some(data_status("started", true)));
        stopping.stopping = true;
        nodes.insert(2, stopping);
        let catalog = Catalog::new();
        let view = View { config: &config, nodes: &nodes, catalog: &catalog, mgm_leader: 49, heartbeat_timeout: std::time::Duration::from_secs(3) };
        assert_eq!(
            execute(&parse("1 status").unwrap(), &view),
            format!("Node 1: starting (Last completed phase 3) ({SOFTWARE_VERSION})\nNode 1: recovered from a damaged local checkpoint")
        );
        assert_eq!(execute(&parse("2 status").unwrap(), &view), format!("Node 2: stopping ({SOFTWARE_VERSION})"));
        let show = execute(&AdminCommand::Show, &view);
        assert!(show.contains(&format!("id=1\t@127.0.0.1  ({SOFTWARE_VERSION}, starting, Nodegroup: 0)")), "{show}");
        assert!(show.contains(&format!("id=2\t@127.0.0.1  ({SOFTWARE_VERSION}, stopping, Nodegroup: 0, *)")), "{show}");
    }
}
