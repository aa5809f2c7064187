//! The warm `access_token`, counted: a call for a user whose token this
//! process served a moment ago allocates nothing on the heap and completes
//! at its first poll (no await on a lock, a timer or I/O), on every thread
//! that serves it. Counted by a global allocator, never timed.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use zoho_token_store::auth::{AccessToken, ZohoAuth};
use zoho_token_store::{MemoryStore, OAuthToken, TokenStore};

/// The system allocator, counting the calling thread's allocations.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    // `try_with`: the allocator also runs while thread locals are torn down.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: forwards to `System` unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// Polls `future` once: its output if it completed then.
fn poll_once<F: Future>(future: F) -> Option<F::Output> {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

const USER: &str = "warm@example.com";

/// A `ZohoAuth` whose clock stands still, so that the warm entry never
/// comes due for its next store check (every second) during a test however
/// slow the machine; the coarse clock of a real one is a read of memory.
fn auth_with_a_valid_token() -> ZohoAuth {
    const NOW: i64 = 1_900_000_000_000;
    let store = MemoryStore::new();
    let mut token = OAuthToken {
        access_token: Some("1000.warm-access".into()),
        expiry_time: Some(NOW + 3_600_000),
        ..OAuthToken::from_refresh_token("1000.CLIENT", "client-secret", "1000.refresh")
            .with_user_name(USER)
    };
    poll_once(store.save_token(&mut token))
        .expect("MemoryStore answers at once")
        .unwrap();
    let now = std::time::UNIX_EPOCH + std::time::Duration::from_millis(NOW as u64);
    ZohoAuth::builder(Arc::new(store))
        .accounts_url("http://127.0.0.1:9")
        .clock(move || now)
        .build()
        .unwrap()
}

/// The first call on a thread reads the store, or shares another thread's
/// read in flight (and may allocate); the next ones, as a caller uses them
/// (read the bearer, drop the token), complete at once and allocate nothing.
fn warm_calls_on_this_thread(auth: &ZohoAuth, query: &OAuthToken) -> (u64, u64) {
    let first: AccessToken =
        futures::executor::block_on(auth.access_token(query)).expect("access_token");
    assert_eq!(first.as_str(), "1000.warm-access");
    let before = allocations();
    let mut pending = 0;
    for _ in 0..1_000 {
        match poll_once(auth.access_token(query)) {
            Some(token) => assert_eq!(token.expect("access_token").as_str().len(), 16),
            None => pending += 1,
        }
    }
    (allocations() - before, pending)
}

#[test]
fn warm_access_token_allocates_nothing_and_never_waits() {
    let auth = auth_with_a_valid_token();
    let query = OAuthToken::for_user(USER);
    let (allocated, pending) = warm_calls_on_this_thread(&auth, &query);
    assert_eq!(allocated, 0, "heap allocations in 1,000 warm calls");
    assert_eq!(pending, 0, "warm calls that did not complete at once");
}

/// Four threads asking at once: those whose first call shared another's
/// lookup in flight serve their next calls warm too.
#[test]
fn every_thread_serves_warm_calls_without_allocating() {
    let auth = auth_with_a_valid_token();
    let query = OAuthToken::for_user(USER);
    let start = std::sync::Barrier::new(4);
    std::thread::scope(|s| {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    warm_calls_on_this_thread(&auth, &query)
                })
            })
            .collect();
        for thread in threads {
            assert_eq!(thread.join().unwrap(), (0, 0));
        }
    });
}
