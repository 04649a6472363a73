//! Case windows in the serial log: the runner writes a begin and an end
//! marker to /dev/kmsg around each case; the text between them is what the
//! kernel said during the case. Two more markers cut the rest of the log into
//! phases ([`crate::whole_log`]): [`SETUP`] before the guest's setup and
//! [`POWEROFF`] before the runner powers the guest off.

/// Written to kmsg before the guest's setup: what follows (up to the first case) is setup.
pub const SETUP: &str = "famfs-lab: setup";
/// Written to kmsg before the power off: what follows is the guest going down.
pub const POWEROFF: &str = "famfs-lab: poweroff";

/// The marker line written to /dev/kmsg (and so to the console).
pub fn marker(kind: &str, case_id: &str, nonce: u64) -> String {
    format!("famfs-lab: {kind} {case_id} #{nonce}")
}

/// A marker read back from the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker<'a> {
    Setup,
    PowerOff,
    Begin { case: &'a str, nonce: u64 },
    End { case: &'a str, nonce: u64 },
}

/// The marker a log message (the line without its kernel prefix, see
/// [`lab_report::splat::message`]) is, if it is one.
pub fn parse(message: &str) -> Option<Marker<'_>> {
    let message = message.trim_end();
    match message {
        SETUP => return Some(Marker::Setup),
        POWEROFF => return Some(Marker::PowerOff),
        _ => {}
    }
    let rest = message.strip_prefix("famfs-lab: ")?;
    let (kind, rest) = rest.split_once(' ')?;
    let (case, nonce) = rest.rsplit_once(" #")?;
    let nonce: u64 = nonce.parse().ok()?;
    if case.is_empty() || case.contains(' ') {
        return None;
    }
    match kind {
        "begin" => Some(Marker::Begin { case, nonce }),
        "end" => Some(Marker::End { case, nonce }),
        _ => None,
    }
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

    #[test]
    fn markers_parse_back() {
        let b = marker("begin", "smoke.memdevs", 70);
        assert_eq!(
            parse(&b),
            Some(Marker::Begin {
                case: "smoke.memdevs",
                nonce: 70
            })
        );
        assert_eq!(
            parse(&marker("end", "shared.ring", 301)),
            Some(Marker::End {
                case: "shared.ring",
                nonce: 301
            })
        );
        assert_eq!(parse(SETUP), Some(Marker::Setup));
        assert_eq!(parse(POWEROFF), Some(Marker::PowerOff));
        for not in [
            "famfs-lab: begin smoke.x #",
            "famfs-lab: begin smoke.x #x",
            "famfs-lab: middle smoke.x #1",
            "famfs-lab-agent: ready",
            "famfs-lab: setup done",
            "echo famfs-lab: begin smoke.x #1",
        ] {
            assert_eq!(parse(not), None, "{not}");
        }
    }
}
