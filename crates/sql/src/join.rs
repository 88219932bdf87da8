//! Running several backend requests at once without an async runtime of our own.
//!
//! A scan asks every node group for its next batch at the same time, and a multi-group write
//! sends every group's batch at the same time. [`join_all`] polls a list of futures until all
//! are done, in the caller's task, so the engine stays runtime-agnostic (sans-IO: the daemon
//! or a test harness owns tokio).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Waits for every future and returns their outputs in the order given.
pub(crate) async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut pending: Vec<Option<Pin<Box<F>>>> = futures.into_iter().map(|f| Some(Box::pin(f))).collect();
    let mut outputs: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(move |cx: &mut Context<'_>| {
        let mut all_done = true;
        for (slot, output) in pending.iter_mut().zip(outputs.iter_mut()) {
            if let Some(fut) = slot {
                match fut.as_mut().poll(cx) {
                    Poll::Ready(v) => {
                        *output = Some(v);
                        *slot = None;
                    }
                    Poll::Pending => all_done = false,
                }
            }
        }
        if all_done {
            Poll::Ready(outputs.iter_mut().map(|o| o.take().expect("every future finished")).collect::<Vec<_>>())
        } else {
            Poll::Pending
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_keep_their_order() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let out = rt.block_on(async {
            let futures: Vec<Pin<Box<dyn Future<Output = u32> + Send>>> = vec![
                Box::pin(async {
                    tokio::task::yield_now().await;
                    tokio::task::yield_now().await;
                    1
                }),
                Box::pin(async { 2 }),
                Box::pin(async {
                    tokio::task::yield_now().await;
                    3
                }),
            ];
            join_all(futures).await
        });
        assert_eq!(out, vec![1, 2, 3]);
    }
}
