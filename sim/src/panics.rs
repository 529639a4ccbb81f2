//! Panics of simulated nodes are findings, not crashes of the simulator: a
//! panic in a node's task (an assertion of herald's or of openraft's) is
//! recorded for the seed's thread, reported as a violation by the run, and
//! printed as one line instead of a backtrace.

use std::cell::RefCell;
use std::sync::Once;

thread_local! {
    static PANICS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Installs the process-wide hook (once).
pub fn install() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let msg = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".into());
            let at = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let line = format!("{msg} (at {at})");
            eprintln!("panic: {line}");
            PANICS.with(|p| p.borrow_mut().push(line));
        }));
    });
}

/// The panics recorded on this thread since the last call.
pub fn take() -> Vec<String> {
    PANICS.with(|p| std::mem::take(&mut *p.borrow_mut()))
}
