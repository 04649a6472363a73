//! A gate on GET_FMAP replies, closed and opened through the notify FIFO (`hold_fmap`,
//! `release_fmap`): a held GET_FMAP is counted in the stats when it arrives and answered once
//! the gate opens, so a case can act while the kernel waits for the server.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The longest a reply is held, so a case that forgets to release it hangs nothing.
pub const MAX_HOLD: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
pub struct FmapGate {
    held: Mutex<bool>,
    opened: Condvar,
}

impl FmapGate {
    fn state(&self) -> MutexGuard<'_, bool> {
        // A poisoned lock still holds a valid bool.
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn hold(&self) {
        *self.state() = true;
    }

    pub fn release(&self) {
        *self.state() = false;
        self.opened.notify_all();
    }

    /// Waits while the gate is held, at most `limit`; false if it gave up.
    pub fn pass(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut held = self.state();
        while *held {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            held = self
                .opened
                .wait_timeout(held, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::FmapGate;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn open_gate_passes_held_gate_waits_for_release_or_limit() {
        let g = Arc::new(FmapGate::default());
        assert!(g.pass(Duration::ZERO), "an open gate passes at once");
        g.hold();
        assert!(
            !g.pass(Duration::from_millis(20)),
            "a held gate gives up at the limit"
        );
        let waiter = {
            let g = g.clone();
            std::thread::spawn(move || g.pass(Duration::from_secs(20)))
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(!waiter.is_finished(), "a held gate holds");
        g.release();
        assert!(waiter.join().unwrap(), "release lets the waiter through");
    }
}
