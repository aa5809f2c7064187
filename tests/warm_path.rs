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

/// A `MemoryStore` that counts `find_token` calls and, while `held`, keeps
/// each one pending after it has read the store (the lookup is in flight).
#[derive(Default)]
struct Held {
    inner: MemoryStore,
    held: std::sync::atomic::AtomicBool,
    finds: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl TokenStore for Held {
    async fn find_token(
        &self,
        token: &OAuthToken,
    ) -> Result<Option<OAuthToken>, zoho_token_store::StoreError> {
        use std::sync::atomic::Ordering::SeqCst;
        self.finds.fetch_add(1, SeqCst);
        let found = self.inner.find_token(token).await;
        // Pending until released; the test polls by hand, so no waker.
        std::future::poll_fn(|_| {
            if self.held.load(SeqCst) {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
        found
    }
    async fn find_token_by_id(
        &self,
        id: &str,
    ) -> Result<Option<OAuthToken>, zoho_token_store::StoreError> {
        self.inner.find_token_by_id(id).await
    }
    async fn save_token(&self, token: &mut OAuthToken) -> Result<(), zoho_token_store::StoreError> {
        self.inner.save_token(token).await
    }
    async fn delete_token(&self, id: &str) -> Result<(), zoho_token_store::StoreError> {
        self.inner.delete_token(id).await
    }
    async fn get_tokens(&self) -> Result<Vec<OAuthToken>, zoho_token_store::StoreError> {
        self.inner.get_tokens().await
    }
    async fn delete_tokens(&self) -> Result<(), zoho_token_store::StoreError> {
        self.inner.delete_tokens().await
    }
}

/// A lookup that started before `invalidate` never fills the warm map: a
/// caller that shared a lookup in flight, and resumed only after another
/// caller had invalidated its token, does not make that token warm, so the
/// next call asks the store (counted: one more `find_token`) and serves
/// the newer token another process stored.
#[test]
fn a_lookup_from_before_an_invalidate_never_makes_its_token_warm() {
    use std::sync::atomic::Ordering::SeqCst;
    const NOW: i64 = 1_900_000_000_000;
    let store = Arc::new(Held::default());
    let mut stored = OAuthToken {
        access_token: Some("1000.old-access".into()),
        expiry_time: Some(NOW + 3_600_000),
        ..OAuthToken::from_refresh_token("1000.CLIENT", "client-secret", "1000.refresh")
            .with_user_name(USER)
    };
    poll_once(store.save_token(&mut stored)).unwrap().unwrap();
    let now = std::time::UNIX_EPOCH + std::time::Duration::from_millis(NOW as u64);
    let auth = ZohoAuth::builder(Arc::clone(&store) as Arc<dyn TokenStore>)
        .accounts_url("http://127.0.0.1:9")
        .clock(move || now)
        .build()
        .unwrap();
    let query = OAuthToken::for_user(USER);

    // Two callers: the first runs the lookup (held in find_token), the
    // second shares it.
    store.held.store(true, SeqCst);
    let mut first = Box::pin(auth.access_token(&query));
    let mut second = Box::pin(auth.access_token(&query));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(first.as_mut().poll(&mut cx).is_pending());
    assert!(second.as_mut().poll(&mut cx).is_pending());
    assert_eq!(store.finds.load(SeqCst), 1, "the second shares the lookup");
    store.held.store(false, SeqCst);
    let Poll::Ready(old) = first.as_mut().poll(&mut cx) else {
        panic!("the lookup was released");
    };
    let old = old.unwrap();
    assert_eq!(old.as_str(), "1000.old-access");

    // The CRM API rejects it; another process stores a newer access token.
    assert!(poll_once(auth.invalidate(&old)).is_some());
    let mut newer = OAuthToken {
        access_token: Some("1000.new-access".into()),
        ..stored.clone()
    };
    poll_once(store.save_token(&mut newer)).unwrap().unwrap();

    // The second caller resumes: its lookup started before the invalidate.
    let Poll::Ready(shared) = second.as_mut().poll(&mut cx) else {
        panic!("the shared lookup is done");
    };
    assert_eq!(shared.unwrap().as_str(), "1000.old-access");

    let next = futures::executor::block_on(auth.access_token(&query)).unwrap();
    assert_eq!(
        (next.as_str(), store.finds.load(SeqCst)),
        ("1000.new-access", 2),
        "the next call asks the store and serves the newer token"
    );
}
