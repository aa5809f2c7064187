//! How the layer retries a conditional put it lost: a bounded number of
//! rounds, letting the winner run between them.

use std::pin::Pin;
use std::task::{Context, Poll};

/// Rounds of read and conditional put before a write gives up with
/// [`StoreError::Conflict`](crate::StoreError::Conflict).
pub(super) const ATTEMPTS: u32 = 32;

/// Lets the other tasks of the runtime run once, whichever runtime it is:
/// pending on the first poll, ready on the next.
pub(super) async fn yield_now() {
    struct YieldNow(bool);
    impl Future for YieldNow {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if std::mem::replace(&mut self.0, true) {
                return Poll::Ready(());
            }
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
    YieldNow(false).await;
}
