//! Task queue names that no other test, test binary or earlier run shares.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// `prefix-<pid>-<counter>-<nanos>`: unique within the process (counter), across processes
/// running now (pid) and across runs against a reused server (wall-clock nanoseconds).
pub fn unique_task_queue(prefix: &str) -> String {
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_nanos());
    format!("{prefix}-{}-{count}-{nanos}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_start_with_the_prefix_and_never_repeat() {
        let names: HashSet<String> = (0..1000).map(|_| unique_task_queue("orders")).collect();
        assert_eq!(names.len(), 1000);
        let pid = std::process::id().to_string();
        for name in &names {
            let parts: Vec<&str> = name.split('-').collect();
            assert_eq!(parts[0], "orders");
            assert_eq!(parts[1], pid);
            assert!(parts[2].parse::<u64>().is_ok() && parts[3].parse::<u128>().is_ok(), "{name}");
        }
    }
}
