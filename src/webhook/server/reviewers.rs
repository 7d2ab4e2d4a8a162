//! Where reviews run. By default on threads of their own, apart from the runtime's one
//! thread that runs TLS, HTTP and the timers: a review is 10 to 700 µs of CPU with no
//! I/O, which tokio asks to keep off its workers, and a thread that only reviews keeps
//! the review's code and data in its core's caches, where interleaving it with the TLS
//! and HTTP of other connections made every review start cold (docs/performance.md,
//! sixteenth and seventeenth rounds). With no review threads, a review runs on the
//! connection's own runtime worker.
//!
//! The runtime thread reads the next bodies while the review threads work, so the bodies
//! admitted at once (being read, queued or under review) are bounded by
//! [`QUEUE_BYTES`]: a request takes its declared length from that budget before its body
//! is read, and a burst of large pods past it waits in the kernel's socket buffers rather
//! than in our heap. A body that has not arrived within [`SLOT_HOLD`] gives its share up
//! and takes it again once it is in, so slow clients cannot hold the budget.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit, oneshot};

use super::routes::refused_unread;
use crate::webhook::admission::{self, AdmissionConfig, ReviewError, Reviewed};

/// Bytes of bodies admitted at once in the threaded mode: ten 100 KB pods, two hundred
/// typical ones, enough to keep four review threads busy. A body larger than this (the
/// API server stores objects of up to 1.5 MiB) takes all of it. Four times as much held
/// half a megabyte more at the peak of a burst of 100 KB pods, and a quarter of it cost
/// a tenth of their throughput (docs/performance.md, seventeenth round).
pub const QUEUE_BYTES: usize = 1024 * 1024;

/// How long a request may take to deliver its body while it holds its share.
pub const SLOT_HOLD: Duration = Duration::from_millis(50);

/// The default for `--review-threads`: one per CPU this process may use (cgroup quota
/// respected), at most four; none on one CPU, where handing a review to another thread
/// only adds a switch.
pub fn default_threads() -> usize {
    match std::thread::available_parallelism().map_or(1, usize::from) {
        1 => 0,
        cpus => cpus.min(4),
    }
}

type Answer = Result<Reviewed, ReviewError>;

struct Job {
    body: Vec<u8>,
    reply: oneshot::Sender<Answer>,
}

/// The review threads and their queue, or the inline mode.
pub struct Reviewers {
    admission: Arc<AdmissionConfig>,
    /// `None`: reviews run inline.
    queue: Option<Queue>,
    threads: usize,
}

struct Queue {
    jobs: mpsc::Sender<Job>,
    /// One permit per byte of [`QUEUE_BYTES`].
    budget: Semaphore,
}

/// Why a review got no answer from its thread.
#[derive(Debug, thiserror::Error)]
pub enum Lost {
    #[error("the review threads have stopped")]
    Stopped,
    #[error("the review failed unexpectedly; see the log")]
    Panicked,
}

impl Reviewers {
    /// Starts `threads` review threads (none: reviews run inline). The threads end when
    /// this is dropped.
    pub fn start(admission: AdmissionConfig, threads: usize) -> std::io::Result<Self> {
        Self::start_with(admission, threads, admission::review)
    }

    /// [`Reviewers::start`], with the threads running `review` (the tests give it one
    /// that panics). Generic, so that the threads call [`admission::review`] directly.
    fn start_with<R>(admission: AdmissionConfig, threads: usize, review: R) -> std::io::Result<Self>
    where
        R: Fn(&[u8], &AdmissionConfig) -> Answer + Copy + Send + 'static,
    {
        let admission = Arc::new(admission);
        if threads == 0 {
            return Ok(Reviewers {
                admission,
                queue: None,
                threads,
            });
        }
        let (jobs, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for index in 0..threads {
            let receiver = receiver.clone();
            let admission = admission.clone();
            std::thread::Builder::new()
                .name(format!("review-{index}"))
                .spawn(move || run(&receiver, &admission, review))?;
        }
        Ok(Reviewers {
            admission,
            queue: Some(Queue {
                jobs,
                budget: Semaphore::new(QUEUE_BYTES),
            }),
            threads,
        })
    }

    /// The review threads started (0: inline).
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Waits for the share of [`QUEUE_BYTES`] a body of `declared` bytes needs (all of it
    /// when the length is not declared), held until the permit is dropped. `None` in the
    /// inline mode, and for a body refused unread ([`refused_unread`]), which is never
    /// queued.
    pub async fn slot(&self, declared: Option<usize>) -> Option<SemaphorePermit<'_>> {
        let queue = self.queue.as_ref().filter(|_| !refused_unread(declared))?;
        let bytes = declared.unwrap_or(QUEUE_BYTES).clamp(1, QUEUE_BYTES);
        // At most QUEUE_BYTES, which fits a u32; the semaphore is never closed.
        let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
        queue.budget.acquire_many(bytes).await.ok()
    }

    /// Reviews `body` on a review thread, or inline.
    pub async fn review(&self, body: Vec<u8>) -> Result<Answer, Lost> {
        let Some(queue) = &self.queue else {
            return Ok(admission::review(&body, &self.admission));
        };
        let (reply, answer) = oneshot::channel();
        queue
            .jobs
            .send(Job { body, reply })
            .map_err(|_| Lost::Stopped)?;
        // The reply is dropped unsent only when the review panicked.
        answer.await.map_err(|_| Lost::Panicked)
    }
}

/// A review thread: takes the next job until the queue's sender is gone. A review that
/// panics (a bug) loses its own answer, not the thread.
fn run(
    receiver: &Mutex<mpsc::Receiver<Job>>,
    admission: &AdmissionConfig,
    review: impl Fn(&[u8], &AdmissionConfig) -> Answer,
) {
    loop {
        // Poisoned only if a thread panicked while waiting, which `recv` does not do.
        let job = match receiver.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        let Ok(Job { body, reply }) = job else {
            return;
        };
        if let Ok(answer) = catch_unwind(AssertUnwindSafe(|| review(&body, admission))) {
            // The client may have gone; its answer then has nowhere to go.
            let _ = reply.send(answer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reviewers(threads: usize) -> Reviewers {
        Reviewers::start(AdmissionConfig::default(), threads).unwrap()
    }

    const ANNOTATED: &[u8] = include_bytes!("../../../examples/review.json");
    const UNANNOTATED: &[u8] = include_bytes!("../../../examples/review-unannotated.json");

    #[tokio::test]
    async fn both_modes_answer_alike() {
        let threaded = reviewers(2);
        for body in [ANNOTATED, UNANNOTATED, b"{\"kind\":" as &[u8]] {
            let by_thread = threaded.review(body.to_vec()).await.unwrap();
            let inline = admission::review(body, &threaded.admission);
            match (by_thread, inline) {
                (Ok(a), Ok(b)) => assert_eq!(a.body, b.body),
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
                (a, b) => panic!("{a:?} against {b:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_review_that_panics_loses_its_answer_and_not_its_thread() {
        fn panics_on_a_bare_word(body: &[u8], admission: &AdmissionConfig) -> Answer {
            assert_ne!(body, b"panic", "a review that panics");
            admission::review(body, admission)
        }
        // One thread, so the review after the panic runs on the thread that panicked.
        let threaded =
            Reviewers::start_with(AdmissionConfig::default(), 1, panics_on_a_bare_word).unwrap();
        for _ in 0..2 {
            let lost = threaded.review(b"panic".to_vec()).await;
            assert!(matches!(lost, Err(Lost::Panicked)), "{lost:?}");
            let answered = threaded.review(ANNOTATED.to_vec()).await.unwrap();
            let inline = admission::review(ANNOTATED, &threaded.admission).unwrap();
            assert_eq!(answered.unwrap().body, inline.body);
        }
    }

    #[tokio::test]
    async fn the_budget_counts_bytes_and_a_large_body_takes_all_of_it() {
        let threaded = reviewers(1);
        let Some(queue) = &threaded.queue else {
            panic!("one review thread starts the threaded mode");
        };
        let small = threaded.slot(Some(4_000)).await;
        assert!(small.is_some());
        assert_eq!(queue.budget.available_permits(), QUEUE_BYTES - 4_000);
        drop(small);
        let large = threaded.slot(Some(QUEUE_BYTES * 3)).await;
        assert_eq!(queue.budget.available_permits(), 0);
        // A body of unknown length waits for the whole budget.
        let waiting = tokio::time::timeout(Duration::from_millis(50), threaded.slot(None)).await;
        assert!(
            waiting.is_err(),
            "a second body was admitted past the budget"
        );
        drop(large);
        // Declared over the body limit: refused unread, so it takes no share.
        assert!(
            threaded
                .slot(Some(crate::webhook::server::MAX_BODY_BYTES + 1))
                .await
                .is_none()
        );
        assert_eq!(queue.budget.available_permits(), QUEUE_BYTES);
        assert!(threaded.slot(None).await.is_some());
        assert!(reviewers(0).slot(Some(4_000)).await.is_none());
    }
}
