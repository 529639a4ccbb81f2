//! The run's event trace: every fault, request, answer, leader change and
//! delivery, stamped with virtual time. The whole trace is hashed (xxh3) so
//! `--reproduce` can show a seed replays exactly; the last lines are kept
//! for failure reports.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use xxhash_rust::xxh3::Xxh3;

/// Lines kept for a failure report.
const TAIL_LINES: usize = 400;

struct Inner {
    hasher: Xxh3,
    lines: u64,
    tail: VecDeque<String>,
}

#[derive(Clone)]
pub struct Trace {
    inner: Arc<Mutex<Inner>>,
    now_ms: Arc<AtomicI64>,
    echo: bool,
}

impl Trace {
    pub fn new(now_ms: Arc<AtomicI64>, echo: bool) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                hasher: Xxh3::new(),
                lines: 0,
                tail: VecDeque::new(),
            })),
            now_ms,
            echo,
        }
    }

    pub fn record(&self, event: String) {
        let line = format!("{:>9} {event}", self.now_ms.load(Ordering::SeqCst));
        if self.echo {
            println!("{line}");
        }
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.hasher.update(line.as_bytes());
        g.hasher.update(b"\n");
        g.lines += 1;
        if g.tail.len() == TAIL_LINES {
            g.tail.pop_front();
        }
        g.tail.push_back(line);
    }

    pub fn hash(&self) -> u64 {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .hasher
            .digest()
    }

    pub fn lines(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).lines
    }

    pub fn tail(&self, n: usize) -> Vec<String> {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.tail.iter().rev().take(n).rev().cloned().collect()
    }
}
