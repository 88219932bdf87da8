//! KILL for one connection: a handle another task uses to interrupt the connection's running
//! command (KILL QUERY) or to close it (KILL CONNECTION).
//!
//! The connection watches its handle while it waits for the handler (and for the rows of a
//! streamed result) and while it waits for the next command. An interrupted command is answered
//! with ER_QUERY_INTERRUPTED (1317) and the connection goes on; a killed connection is closed
//! (with that error first if a command was running, as MySQL does). A KILL QUERY that arrives
//! while no command runs has nothing to interrupt and is forgotten when the next command starts.
//!
//! The connection never stops in the middle of writing a packet: it is interrupted only where it
//! waits for the handler or for rows, so the client always sees whole packets.
//!
//! Interrupting drops the handler's future, which is safe only where the handler has nothing
//! half done. A handler marks the other stretches with [`KillHandle::set_shielded`]: while the
//! handle is shielded a KILL waits (KILL QUERY fires once the shield is lifted, KILL CONNECTION
//! closes the connection after the command). The SQL node shields everything but reads outside
//! transactions, so a KILL never cuts a commit or a transactional write in half.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// What a kill asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kill {
    Query,
    Connection,
}

/// Shared between the connection and whoever may kill it; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct KillHandle {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    query: AtomicBool,
    connection: AtomicBool,
    /// While set, the running command is not interrupted.
    shielded: AtomicBool,
    notify: Notify,
}

impl KillHandle {
    pub fn new() -> KillHandle {
        KillHandle::default()
    }

    /// Interrupts the running command, if any (KILL QUERY).
    pub fn kill_query(&self) {
        self.inner.query.store(true, Ordering::SeqCst);
        self.inner.notify.notify_waiters();
    }

    /// Closes the connection, interrupting its command (KILL [CONNECTION]).
    pub fn kill_connection(&self) {
        self.inner.connection.store(true, Ordering::SeqCst);
        self.inner.notify.notify_waiters();
    }

    /// Holds interruptions back (`true`) or lets them through again (`false`); a kill that
    /// arrived meanwhile then takes effect.
    pub fn set_shielded(&self, shielded: bool) {
        let was = self.inner.shielded.swap(shielded, Ordering::SeqCst);
        if was && !shielded {
            self.inner.notify.notify_waiters();
        }
    }

    pub fn is_connection_killed(&self) -> bool {
        self.inner.connection.load(Ordering::SeqCst)
    }

    /// Forgets a KILL QUERY that arrived while no command ran.
    pub(crate) fn start_command(&self) {
        self.inner.query.store(false, Ordering::SeqCst);
    }

    fn pending(&self, connection_only: bool) -> Option<Kill> {
        if !connection_only && self.inner.shielded.load(Ordering::SeqCst) {
            None
        } else if self.inner.connection.load(Ordering::SeqCst) {
            Some(Kill::Connection)
        } else if !connection_only && self.inner.query.load(Ordering::SeqCst) {
            Some(Kill::Query)
        } else {
            None
        }
    }

    async fn wait(&self, connection_only: bool) -> Kill {
        loop {
            let notified = self.inner.notify.notified();
            tokio::pin!(notified);
            // Register before checking, so that a kill between the check and the await wakes us.
            notified.as_mut().enable();
            if let Some(kill) = self.pending(connection_only) {
                return kill;
            }
            notified.await;
        }
    }

    /// Resolves when the running command must stop (KILL QUERY or KILL CONNECTION).
    pub(crate) async fn interrupted(&self) -> Kill {
        self.wait(false).await
    }

    /// Resolves when the connection must close.
    pub(crate) async fn closed(&self) {
        self.wait(true).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_kill_wakes_a_waiter_and_stale_query_kills_are_forgotten() {
        let handle = KillHandle::new();
        let waiter = {
            let h = handle.clone();
            tokio::spawn(async move { h.interrupted().await })
        };
        tokio::task::yield_now().await;
        handle.kill_query();
        assert_eq!(waiter.await.unwrap(), Kill::Query);
        handle.start_command();
        assert!(handle.pending(false).is_none(), "a new command starts uninterrupted");
        handle.kill_connection();
        assert_eq!(handle.interrupted().await, Kill::Connection);
        handle.closed().await;
        assert!(handle.is_connection_killed());
    }

    #[tokio::test]
    async fn a_shield_holds_a_kill_back_until_it_is_lifted() {
        let handle = KillHandle::new();
        handle.set_shielded(true);
        handle.kill_query();
        let waiter = {
            let h = handle.clone();
            tokio::spawn(async move { h.interrupted().await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "no interruption while shielded");
        handle.set_shielded(false);
        let kill = tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await;
        assert_eq!(kill.expect("the kill fires once the shield is lifted").unwrap(), Kill::Query);
    }
}
