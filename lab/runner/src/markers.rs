//! Case windows in the serial log: the runner writes a begin and an end
//! marker to /dev/kmsg around each case; the text between them is what the
//! kernel said during the case.

/// The marker line written to /dev/kmsg (and so to the console).
pub fn marker(kind: &str, case_id: &str, nonce: u64) -> String {
    format!("famfs-lab: {kind} {case_id} #{nonce}")
}

/// The part of `log` after the last occurrence of `begin` up to `end`
/// (or to the end of the log when `end` never came, e.g. a panic).
pub fn window<'a>(log: &'a str, begin: &str, end: &str) -> &'a str {
    let start = log.rfind(begin).map(|i| i + begin.len()).unwrap_or(0);
    let rest = &log[start..];
    match rest.find(end) {
        Some(i) => &rest[..i],
        None => rest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_cuts_between_markers() {
        let b = marker("begin", "smoke.x", 7);
        let e = marker("end", "smoke.x", 7);
        let log = format!("boot\n[ 1.0] {b}\n[ 1.1] WARNING: CPU: 0\n[ 1.2] {e}\nafter\n");
        let w = window(&log, &b, &e);
        assert!(
            w.contains("WARNING") && !w.contains("boot") && !w.contains("after"),
            "{w:?}"
        );
    }

    #[test]
    fn missing_end_runs_to_the_end_of_the_log() {
        let b = marker("begin", "c", 1);
        let log = format!("x\n{b}\nKernel panic - not syncing\n");
        assert!(window(&log, &b, "nope").contains("Kernel panic"));
    }

    #[test]
    fn nonce_keeps_reruns_apart() {
        assert_ne!(marker("begin", "c", 1), marker("begin", "c", 2));
    }
}
