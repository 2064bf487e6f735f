//! The activity half of a worker: each activity task runs its Lua function on a blocking thread
//! (Lua code may block on I/O), with one Lua VM per thread and worker.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use tempest_lua::activity::{ActivityVm, FunctionCatalog};
use tempest_lua::failure::{Failure, Kind};
use temporalio_common::protos::coresdk::ActivityTaskCompletion;
use temporalio_common::protos::coresdk::activity_result::ActivityExecutionResult;
use temporalio_common::protos::coresdk::activity_task::activity_task::Variant as TaskVariant;
use temporalio_sdk_core::{PollError, Worker};

use crate::failure::to_proto;
use crate::payload::{context_from_headers, from_payloads, to_payload};
use crate::stats::LuaStats;

thread_local! {
    /// Activity VMs of this blocking thread, by catalog (one catalog per worker).
    static VMS: RefCell<HashMap<usize, ActivityVm>> = RefCell::new(HashMap::new());
}

fn run_on_this_thread(
    catalog: &Arc<FunctionCatalog>,
    start: &temporalio_common::protos::coresdk::activity_task::Start,
) -> Result<tempest_lua::convert::Data, Failure> {
    let activity_type = start.activity_type.as_str();
    if !catalog.contains(activity_type) {
        let mut known: Vec<&str> = catalog.ids().collect();
        known.sort_unstable();
        return Err(Failure::new(
            Kind::NOT_FOUND,
            format!("activity type `{activity_type}` is not registered on this worker (registered: {})", known.join(", ")),
        )
        .with_retryable(Some(false)));
    }
    let args = from_payloads(&start.input, "argument").map_err(Failure::invalid)?;
    let context = context_from_headers(&start.header_fields);
    let key = Arc::as_ptr(catalog) as usize;
    VMS.with(|vms| {
        let mut vms = vms.borrow_mut();
        let vm = match vms.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(
                ActivityVm::new(catalog.clone())
                    .map_err(|e| Failure::internal(format!("cannot start the activity Lua VM: {e}")))?,
            ),
        };
        vm.call(activity_type, &args, context)
    })
}

/// Polls activity tasks until Core reports shutdown.
pub async fn poll_loop(worker: Arc<Worker>, catalog: Arc<FunctionCatalog>, stats: Arc<LuaStats>) -> Result<(), PollError> {
    loop {
        let task = match worker.poll_activity_task().await {
            Ok(task) => task,
            Err(PollError::ShutDown) => return Ok(()),
            Err(e) => return Err(e),
        };
        let task_token = task.task_token;
        match task.variant {
            Some(TaskVariant::Start(start)) => {
                let worker = worker.clone();
                let catalog = catalog.clone();
                let stats = stats.clone();
                tokio::spawn(async move {
                    let activity_type = start.activity_type.clone();
                    let outcome = tokio::task::spawn_blocking(move || {
                        let began = std::time::Instant::now();
                        let outcome = run_on_this_thread(&catalog, &start);
                        stats.record_activity(began.elapsed());
                        outcome
                    })
                        .await
                        .unwrap_or_else(|e| Err(Failure::internal(format!("activity thread panicked: {e}"))));
                    let result = match outcome {
                        Ok(data) => ActivityExecutionResult::ok(to_payload(&data)),
                        Err(failure) => {
                            tracing::debug!(activity_type = %activity_type, "activity failed: {}", failure.message);
                            ActivityExecutionResult::fail(to_proto(&failure))
                        }
                    };
                    let completion = ActivityTaskCompletion { task_token, result: Some(result) };
                    if let Err(e) = worker.complete_activity_task(completion).await {
                        tracing::warn!("completing an activity task failed: {e}");
                    }
                });
            }
            // Lua code cannot be interrupted mid-call yet; the running call completes on its own.
            Some(TaskVariant::Cancel(cancel)) => {
                tracing::debug!(reason = ?cancel.reason(), "activity cancellation requested");
            }
            None => {}
        }
    }
}
