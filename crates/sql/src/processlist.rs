//! The sessions of one SQL node, as SHOW PROCESSLIST, information_schema.PROCESSLIST and KILL
//! see them.
//!
//! Every [`Session`] registers a [`Process`] with its engine when it is created and removes it
//! when dropped, so the list holds exactly the node's live sessions. The daemon says what the
//! connection is doing ([`Session::begin_command`], [`Session::end_command`]: "Query", "Execute",
//! "Sleep", with the time it started) and the session records the statement it is running.
//!
//! KILL is carried out by the daemon, which owns the connections: a session gives its process a
//! kill switch ([`Session::set_kill_switch`]), and `KILL [CONNECTION | QUERY] id` on any session
//! of the node calls the target's switch. KILL QUERY interrupts the target's running command
//! (its client gets ER_QUERY_INTERRUPTED, 1317) and leaves the connection open; KILL CONNECTION
//! closes it. Both act on this SQL node's sessions only: connection ids are per SQL node, as in
//! MySQL Cluster, where each mysqld has its own thread ids.
//!
//! Dropping the handler's future only takes effect where the statement waits (for a data node, for
//! the client); a statement that computes for a long time without waiting (a join, sort or
//! aggregation over rows already fetched) would not notice. So KILL also raises the process's
//! interrupt flag, which the executor's long loops poll every few thousand rows
//! ([`crate::exec::Exec::check_interrupted`]) while the statement is interruptible; the statement
//! then ends with 1317 itself. The flag is cleared when the next command begins.
//!
//! Left out: privileges (every account sees and may kill every session, as with MySQL's PROCESS
//! and CONNECTION_ADMIN granted to all).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use cairn_common::error::Error;
use cairn_common::{Value, bail};

use crate::backend::Backend;
use crate::session::Session;

/// What KILL asks of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KillKind {
    /// Interrupt the running statement; the connection stays.
    Query,
    /// Close the connection (after interrupting its statement).
    Connection,
}

/// How the daemon interrupts or closes a connection.
pub type KillSwitch = Arc<dyn Fn(KillKind) + Send + Sync>;

/// One session in the list.
pub(crate) struct Process {
    pub id: u64,
    pub user: String,
    pub host: String,
    state: Mutex<ProcessState>,
    kill_switch: Mutex<Option<KillSwitch>>,
    /// Told whether the running statement may be dropped half way (the daemon shields its
    /// connection from KILL otherwise).
    interrupt_hook: Mutex<Option<InterruptHook>>,
    /// Raised by KILL; polled by the executor's long loops (shared with each statement's Exec).
    pub(crate) interrupt_requested: Arc<AtomicBool>,
}

/// How the daemon learns whether the running statement may be interrupted.
pub type InterruptHook = Arc<dyn Fn(bool) + Send + Sync>;

struct ProcessState {
    database: Option<String>,
    command: &'static str,
    /// Microseconds of the engine clock at which `command` began.
    since_micros: i64,
    /// The statement being run, while a command runs.
    info: Option<String>,
}

/// A row of SHOW PROCESSLIST.
pub(crate) struct ProcessRow {
    pub id: u64,
    pub user: String,
    pub host: String,
    pub database: Option<String>,
    pub command: &'static str,
    pub time_seconds: i64,
    pub state: &'static str,
    pub info: Option<String>,
}

impl Process {
    pub fn new(id: u64, user: &str, host: &str, now_micros: i64) -> Process {
        Process {
            id,
            user: user.to_string(),
            host: host.to_string(),
            state: Mutex::new(ProcessState { database: None, command: "Sleep", since_micros: now_micros, info: None }),
            kill_switch: Mutex::new(None),
            interrupt_hook: Mutex::new(None),
            interrupt_requested: Arc::new(AtomicBool::new(false)),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ProcessState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_database(&self, database: Option<&str>) {
        self.state().database = database.map(str::to_string);
    }

    pub fn set_info(&self, info: &str) {
        let mut state = self.state();
        if state.command != "Sleep" {
            state.info = Some(info.to_string());
        }
    }

    fn row(&self, now_micros: i64) -> ProcessRow {
        let state = self.state();
        ProcessRow {
            id: self.id,
            user: self.user.clone(),
            host: self.host.clone(),
            database: state.database.clone(),
            command: state.command,
            time_seconds: (now_micros - state.since_micros).max(0) / 1_000_000,
            state: if state.command == "Sleep" { "" } else { "executing" },
            info: state.info.clone(),
        }
    }
}

/// The node's sessions by connection id.
#[derive(Default)]
pub(crate) struct Processes {
    by_id: Mutex<BTreeMap<u64, Arc<Process>>>,
}

impl Processes {
    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Process>>> {
        self.by_id.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn register(&self, process: Arc<Process>) {
        self.map().insert(process.id, process);
    }

    /// Removes `process` (only that one: a connection id reused later stays registered).
    pub fn remove(&self, process: &Arc<Process>) {
        let mut map = self.map();
        if map.get(&process.id).is_some_and(|p| Arc::ptr_eq(p, process)) {
            map.remove(&process.id);
        }
    }

    /// Every session, by id.
    pub fn rows(&self, now_micros: i64) -> Vec<ProcessRow> {
        let processes: Vec<Arc<Process>> = self.map().values().cloned().collect();
        processes.iter().map(|p| p.row(now_micros)).collect()
    }

    /// Calls the kill switch of session `id`; 1094 for an id that is not a session of this node.
    /// Interrupts or closes connection `id` for `user`: its own connections always, other
    /// users' only with `may_kill_others` (SUPER or CONNECTION_ADMIN in MySQL), else 1095.
    pub fn kill(&self, id: u64, kind: KillKind, user: &str, may_kill_others: bool) -> Result<(), Error> {
        let Some(process) = self.map().get(&id).cloned() else {
            bail!(UnknownThread, "Unknown thread id: {id}");
        };
        if process.user != user && !may_kill_others {
            bail!(NotOwnerOfThread, "You are not owner of thread {id}");
        }
        // Raised before the switch fires, so that a statement computing without a pause sees it
        // too; an executor honours it only in a statement that may be interrupted.
        process.interrupt_requested.store(true, Ordering::Relaxed);
        let switch = process.kill_switch.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(switch) = switch {
            switch(kind);
        }
        Ok(())
    }
}

impl<B: Backend> Session<B> {
    /// Gives the session's process the daemon's way to interrupt or close its connection.
    pub fn set_kill_switch(&self, switch: impl Fn(KillKind) + Send + Sync + 'static) {
        *self.process.kill_switch.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(switch));
    }

    /// Gives the session's process the daemon's way to learn whether the running statement may
    /// be interrupted: `true` for a read outside a transaction, `false` for everything else.
    pub fn set_interrupt_hook(&self, hook: impl Fn(bool) + Send + Sync + 'static) {
        *self.process.interrupt_hook.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(hook));
    }

    pub(crate) fn set_interruptible(&self, interruptible: bool) {
        let hook = self.process.interrupt_hook.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(hook) = hook {
            hook(interruptible);
        }
    }

    /// The connection started a command ("Query", "Execute", "Prepare", "Field List", ...);
    /// `info` is its text when it has one.
    pub fn begin_command(&self, command: &'static str, info: Option<&str>) {
        let now = self.engine().config().clock.now_micros();
        // A KILL QUERY that came while no command ran has nothing to interrupt (as in the wire layer).
        self.process.interrupt_requested.store(false, Ordering::Relaxed);
        let mut state = self.process.state();
        state.command = command;
        state.since_micros = now;
        state.info = info.map(str::to_string);
    }

    /// The command ended; the connection sleeps until the next one.
    pub fn end_command(&self) {
        let now = self.engine().config().clock.now_micros();
        let mut state = self.process.state();
        state.command = "Sleep";
        state.since_micros = now;
        state.info = None;
    }

    /// Sessions of this SQL node (SHOW PROCESSLIST).
    pub(crate) fn process_rows(&self) -> Vec<ProcessRow> {
        self.engine().processes.rows(self.engine().config().clock.now_micros())
    }
}

/// Values of a process row for SHOW PROCESSLIST and information_schema.PROCESSLIST, with the
/// Info column cut to `info_chars` characters (100 without FULL, as MySQL does).
pub(crate) fn row_values(row: ProcessRow, info_chars: Option<usize>) -> Vec<Value> {
    vec![
        Value::UInt(row.id),
        Value::text(&row.user),
        Value::text(&row.host),
        row.database.map_or(Value::Null, Value::Text),
        Value::text(row.command),
        Value::Int(row.time_seconds),
        Value::text(row.state),
        match row.info {
            Some(info) => Value::Text(match info_chars {
                Some(n) => info.chars().take(n).collect(),
                None => info,
            }),
            None => Value::Null,
        },
    ]
}
