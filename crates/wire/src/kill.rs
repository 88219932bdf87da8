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

    pub fn is_connection_killed(&self) -> bool {
        self.inner.connection.load(Ordering::SeqCst)
    }

    /// Forgets a KILL QUERY that arrived while no command ran.
    pub(crate) fn start_command(&self) {
        self.inner.query.store(false, Ordering::SeqCst);
    }

    fn pending(&self, connection_only: bool) -> Option<Kill> {
        if self.inner.connection.load(Ordering::SeqCst) {
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
}
