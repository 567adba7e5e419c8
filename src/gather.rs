//! Gathering a channel's messages into a batch: a group commit (`storage`) and a round of
//! MD5 lanes (`api::md5_lanes`) both take what has come, then wait a bounded time for
//! more.

use std::collections::VecDeque;
use std::time::Instant;

use futures::channel::mpsc::UnboundedReceiver;
use futures::StreamExt;

/// What [`next_before`] got.
pub enum Next<T> {
    Message(T),
    /// Every sender is gone.
    Closed,
    /// The deadline passed first.
    TimedOut,
}

/// The next message, unless `deadline` comes first.
pub async fn next_before<T>(rx: &mut UnboundedReceiver<T>, deadline: Instant) -> Next<T> {
    let now = Instant::now();
    if now >= deadline {
        return Next::TimedOut;
    }
    let next = futures_lite::future::or(async { Some(rx.next().await) }, async {
        glommio::timer::sleep(deadline - now).await;
        None
    })
    .await;
    match next {
        Some(Some(m)) => Next::Message(m),
        Some(None) => Next::Closed,
        None => Next::TimedOut,
    }
}

/// Moves messages from `rx` into `queue` until `enough(queue)`, `deadline`, or the channel
/// closes. Messages already waiting are always taken. Returns whether the channel closed.
pub async fn gather<T>(
    rx: &mut UnboundedReceiver<T>,
    queue: &mut VecDeque<T>,
    deadline: Instant,
    mut enough: impl FnMut(&VecDeque<T>) -> bool,
) -> bool {
    loop {
        while let Ok(m) = rx.try_recv() {
            queue.push_back(m);
        }
        if enough(queue) {
            return false;
        }
        match next_before(rx, deadline).await {
            Next::Message(m) => queue.push_back(m),
            Next::Closed => return true,
            Next::TimedOut => return false,
        }
    }
}
