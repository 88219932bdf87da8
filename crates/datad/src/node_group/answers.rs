//! Answers held back until a point of the loop round, then queued on their connections together.
//!
//! The loop thread answers a request by queueing the answer frame on the send queue of the
//! connection it came on ([`super::Reply`]). Each queueing can wake that connection's writer
//! task on a runtime thread, and a writer that wakes for the first answer of a round writes it
//! alone, then wakes again for the next one: under a stream of writes that is one `send` system
//! call, one TCP segment and one wake-up of the SQL node per answer. Holding the answers of a
//! stretch of the round and queueing them back to back lets the writer find them all in its
//! queue and send them in one write.
//!
//! The holding is per thread: [`Holding::start`] makes every answer produced on the calling
//! thread wait until [`flush`] (or the end of the `Holding`), and only the node-group loop thread
//! starts it. Answers produced on any other thread (connection tasks answering under the lease,
//! or failing a request the loop never saw) go out at once, as before.
//!
//! The loop flushes before every blocking step that would delay an answer: before a Ready's log
//! write and fsync (the answers of entries committed before it must not wait for it, see
//! `process_ready`) and at the end of each round, before it waits for events. So an answer is
//! held for microseconds of computation, never for I/O or a wait.

use std::cell::RefCell;

use cairn_proto::link::FrameSender;
use cairn_proto::pb::Frame;
use tokio::sync::mpsc::error::TrySendError;

/// One held answer: where it goes, the frame, and the runtime to wait on if the queue is full.
type Held = (FrameSender, Frame, tokio::runtime::Handle);

thread_local! {
    /// `Some` while this thread holds answers (see the module documentation).
    static HELD: RefCell<Option<Vec<Held>>> = const { RefCell::new(None) };
}

/// Answers produced on this thread are held until [`flush`]; dropping it flushes and stops.
pub struct Holding(());

impl Holding {
    pub fn start() -> Holding {
        HELD.with(|held| {
            let mut held = held.borrow_mut();
            if held.is_none() {
                *held = Some(Vec::new());
            }
        });
        Holding(())
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        flush();
        HELD.with(|held| *held.borrow_mut() = None);
    }
}

/// Queues `frame` on `sender`: now, or at the next [`flush`] while this thread holds answers.
pub fn send(sender: FrameSender, frame: Frame, runtime: &tokio::runtime::Handle) {
    let not_held = HELD.with(|held| match held.borrow_mut().as_mut() {
        Some(list) => {
            list.push((sender, frame, runtime.clone()));
            None
        }
        None => Some((sender, frame)),
    });
    if let Some((sender, frame)) = not_held {
        enqueue(sender, frame, runtime);
    }
}

/// Queues every held answer, in the order they were produced.
pub fn flush() {
    let list = HELD.with(|held| held.borrow_mut().as_mut().map(std::mem::take));
    for (sender, frame, runtime) in list.into_iter().flatten() {
        enqueue(sender, frame, &runtime);
    }
}

/// Queues without waiting: a full queue (a slow SQL node) gets a task that waits for room, so
/// that the loop never stalls; a closed connection drops the answer (the SQL node that asked is
/// gone).
fn enqueue(sender: FrameSender, frame: Frame, runtime: &tokio::runtime::Handle) {
    match sender.try_enqueue(frame) {
        Ok(()) | Err(TrySendError::Closed(_)) => {}
        Err(TrySendError::Full(frame)) => {
            runtime.spawn(async move {
                let _ = sender.send(frame).await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_proto::pb::frame::Body;
    use cairn_proto::pb::{DataResponse, Frame};

    fn frame(request_id: u64) -> Frame {
        Frame { request_id, body: Some(Body::DataResponse(DataResponse { body: Default::default() })) }
    }

    /// A sender whose queued frames can be looked at, without a socket.
    fn channel() -> (FrameSender, tokio::sync::mpsc::Receiver<Frame>) {
        FrameSender::detached(16)
    }

    fn ids(rx: &mut tokio::sync::mpsc::Receiver<Frame>) -> Vec<u64> {
        let mut out = Vec::new();
        while let Ok(frame) = rx.try_recv() {
            out.push(frame.request_id);
        }
        out
    }

    #[test]
    fn answers_wait_for_the_flush_while_held_and_keep_their_order() {
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let (sender, mut rx) = channel();
        let (other, mut other_rx) = channel();

        // Not held: straight into the queue.
        send(sender.clone(), frame(1), runtime.handle());
        assert_eq!(ids(&mut rx), vec![1]);

        let holding = Holding::start();
        send(sender.clone(), frame(2), runtime.handle());
        send(other.clone(), frame(3), runtime.handle());
        send(sender.clone(), frame(4), runtime.handle());
        assert!(ids(&mut rx).is_empty(), "held until the flush");
        flush();
        assert_eq!(ids(&mut rx), vec![2, 4]);
        assert_eq!(ids(&mut other_rx), vec![3]);

        // Answers held when the holding ends are not lost.
        send(sender.clone(), frame(5), runtime.handle());
        drop(holding);
        assert_eq!(ids(&mut rx), vec![5]);
        send(sender, frame(6), runtime.handle());
        assert_eq!(ids(&mut rx), vec![6], "not held after the end");
    }

    #[test]
    fn holding_is_per_thread() {
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let (sender, mut rx) = channel();
        let _holding = Holding::start();
        let handle = runtime.handle().clone();
        let other_thread = sender.clone();
        std::thread::spawn(move || send(other_thread, frame(7), &handle)).join().expect("thread");
        assert_eq!(ids(&mut rx), vec![7], "another thread's answer goes out at once");
    }

    #[test]
    fn a_full_queue_waits_on_the_runtime_instead_of_dropping() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let (sender, mut rx) = FrameSender::detached(1);
        let holding = Holding::start();
        send(sender.clone(), frame(1), runtime.handle());
        send(sender.clone(), frame(2), runtime.handle());
        drop(holding);
        let got = runtime.block_on(async {
            let first = rx.recv().await.map(|f| f.request_id);
            let second = rx.recv().await.map(|f| f.request_id);
            (first, second)
        });
        assert_eq!(got, (Some(1), Some(2)));
    }
}
