//! Keeps the last lines a child process printed, for error messages, without temp files and
//! without ever blocking the child on a full pipe.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

const KEPT_LINES: usize = 200;

#[derive(Clone, Default)]
pub(crate) struct OutputTail {
    lines: Arc<Mutex<VecDeque<String>>>,
    open_streams: Arc<AtomicUsize>,
}

impl OutputTail {
    /// Drains `stream` on a background thread until it closes.
    pub(crate) fn follow(&self, stream: impl Read + Send + 'static) {
        let tail = self.clone();
        tail.open_streams.fetch_add(1, Ordering::SeqCst);
        std::thread::spawn(move || {
            for line in BufReader::new(stream).split(b'\n') {
                let Ok(line) = line else { break };
                tail.push(String::from_utf8_lossy(&line).into_owned());
            }
            tail.open_streams.fetch_sub(1, Ordering::SeqCst);
        });
    }

    /// Whether every followed stream has closed and been read to the end.
    pub(crate) fn is_drained(&self) -> bool {
        self.open_streams.load(Ordering::SeqCst) == 0
    }

    fn push(&self, line: String) {
        let mut lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        if lines.len() == KEPT_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    /// The kept lines, oldest first, newline-terminated.
    pub(crate) fn text(&self) -> String {
        let lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        lines.iter().map(|line| format!("{line}\n")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_newest_lines() {
        let tail = OutputTail::default();
        for n in 0..KEPT_LINES + 5 {
            tail.push(n.to_string());
        }
        let text = tail.text();
        assert!(text.starts_with("5\n"), "{text}");
        assert!(text.ends_with(&format!("{}\n", KEPT_LINES + 4)));
    }

    #[test]
    fn follows_a_stream_to_its_end() {
        let tail = OutputTail::default();
        tail.follow(std::io::Cursor::new(b"one\ntwo\nthree".to_vec()));
        crate::wait_until(std::time::Duration::from_secs(5), std::time::Duration::from_millis(1), || tail.is_drained())
            .expect("stream read to its end");
        assert_eq!(tail.text(), "one\ntwo\nthree\n");
    }
}
