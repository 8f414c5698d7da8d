//! Group commit for ingestion: every request queued while the previous
//! commit ran is committed in one transaction, so a burst costs one fsync
//! per batch, not per alert. On SQLite the ingestion thread groups requests
//! itself; on PostgreSQL a writer task does. The queue is bounded by bytes;
//! a full queue refuses new work at once instead of growing.

use super::{IngestOutcome, IngestRequest, IngestSettings, Store, StoreError};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

struct Job {
    request: IngestRequest,
    reply: oneshot::Sender<Result<IngestOutcome, StoreError>>,
    _permit: OwnedSemaphorePermit,
}

/// Why a request was not ingested.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The queue is full; try again shortly.
    #[error("ingestion queue is full")]
    Overloaded,
    /// The writer has stopped (shutting down).
    #[error("ingestion writer stopped")]
    Stopped,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where requests go.
#[derive(Clone)]
enum Route {
    /// Straight to the SQLite ingestion thread, which groups them.
    Thread {
        store: Store,
        settings: IngestSettings,
    },
    /// To the writer task, which groups them (PostgreSQL).
    Task(mpsc::UnboundedSender<Job>),
}

/// Handle to the writer; cheap to clone.
#[derive(Clone)]
pub struct IngestWriter {
    route: Route,
    budget: Arc<Semaphore>,
    budget_bytes: usize,
}

impl IngestWriter {
    /// Start the writer. `budget_bytes` bounds the bodies waiting to commit;
    /// `max_batch` bounds one transaction.
    pub fn start(
        store: Store,
        settings: IngestSettings,
        budget_bytes: usize,
        max_batch: usize,
    ) -> (IngestWriter, tokio::task::JoinHandle<()>) {
        let (route, task) = if store.groups_ingestion() {
            let task = tokio::spawn(async {});
            (Route::Thread { store, settings }, task)
        } else {
            let (tx, rx) = mpsc::unbounded_channel();
            let task = tokio::spawn(run(store, settings, rx, max_batch.max(1)));
            (Route::Task(tx), task)
        };
        let budget_bytes = budget_bytes.clamp(1, Semaphore::MAX_PERMITS);
        (
            IngestWriter {
                route,
                budget: Arc::new(Semaphore::new(budget_bytes)),
                budget_bytes,
            },
            task,
        )
    }

    /// Queue a request costing `cost_bytes` of the budget and wait until it
    /// is committed.
    pub async fn submit(
        &self,
        request: IngestRequest,
        cost_bytes: usize,
    ) -> Result<IngestOutcome, SubmitError> {
        let cost = u32::try_from(cost_bytes.clamp(1, self.budget_bytes)).unwrap_or(u32::MAX);
        let permit = Arc::clone(&self.budget)
            .try_acquire_many_owned(cost)
            .map_err(|_| SubmitError::Overloaded)?;
        match &self.route {
            Route::Thread { store, settings } => {
                let outcome = store.submit_ingest(settings, request).await;
                drop(permit);
                outcome.map_err(Into::into)
            }
            Route::Task(jobs) => {
                let (reply, answer) = oneshot::channel();
                jobs.send(Job {
                    request,
                    reply,
                    _permit: permit,
                })
                .map_err(|_| SubmitError::Stopped)?;
                answer
                    .await
                    .map_err(|_| SubmitError::Stopped)?
                    .map_err(Into::into)
            }
        }
    }

    /// Bytes queued now (for metrics).
    pub fn queued_bytes(&self) -> usize {
        self.budget_bytes - self.budget.available_permits()
    }
}

async fn run(
    store: Store,
    settings: IngestSettings,
    mut rx: mpsc::UnboundedReceiver<Job>,
    max_batch: usize,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(max_batch);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let requests: Vec<IngestRequest> = batch.iter().map(|j| j.request.clone()).collect();
        match store.ingest(&settings, requests).await {
            Ok(outcomes) => {
                for (job, outcome) in batch.drain(..).zip(outcomes) {
                    let _ = job.reply.send(Ok(outcome));
                }
            }
            Err(err) if batch.len() == 1 => {
                if let Some(job) = batch.pop() {
                    let _ = job.reply.send(Err(err));
                }
            }
            Err(err) => {
                // One bad request must not fail its neighbours: retry alone.
                tracing::warn!(error = %err, size = batch.len(), "batch commit failed; committing one by one");
                for job in batch.drain(..) {
                    let result = store
                        .ingest(&settings, vec![job.request.clone()])
                        .await
                        .and_then(|mut o| {
                            o.pop().ok_or_else(|| StoreError::Conflict {
                                what: "empty ingest result".into(),
                            })
                        });
                    let _ = job.reply.send(result);
                }
            }
        }
    }
}
