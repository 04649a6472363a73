//! A case's part of a run's serial log: the kernel's lines between the runner's
//! `famfs-lab: begin SUITE.NAME #N` and `famfs-lab: end SUITE.NAME #N` markers (the last
//! begin of that case, to its end or the end of the log when the guest died), shortened
//! to its last lines: what a bisection shows at the culprit and at its parent.

/// At most `max` lines of `log`'s window of case `id` (its last ones, after a line saying
/// how many were left out); empty when the case has no window.
pub fn case_window(log: &str, id: &str, max: usize) -> Vec<String> {
    let begin = format!("famfs-lab: begin {id} #");
    let end = format!("famfs-lab: end {id} #");
    let lines: Vec<&str> = log.lines().collect();
    let Some(start) = lines.iter().rposition(|l| l.contains(&begin)) else {
        return Vec::new();
    };
    let body: Vec<&str> = lines[start + 1..]
        .iter()
        .take_while(|l| !l.contains(&end))
        .map(|l| l.trim_end_matches('\r'))
        .collect();
    let mut out = Vec::new();
    if body.len() > max {
        out.push(format!("[... {} earlier lines]", body.len() - max));
    }
    out.extend(
        body[body.len().saturating_sub(max)..]
            .iter()
            .map(|l| l.to_string()),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_window_of_the_case_cut_to_its_last_lines() {
        let log = "boot\n[ 1.0] famfs-lab: begin open.a #1\nold\n[ 1.1] famfs-lab: end open.a #1\n\
                   [ 2.0] famfs-lab: begin open.a #2\r\nl1\r\nl2\nl3\n[ 2.9] famfs-lab: end open.a #2\nafter\n";
        assert_eq!(case_window(log, "open.a", 10), ["l1", "l2", "l3"]);
        assert_eq!(
            case_window(log, "open.a", 2),
            ["[... 1 earlier lines]", "l2", "l3"]
        );
        assert!(case_window(log, "open.b", 10).is_empty());
        // a guest that died in the case: to the end of the log
        let died = "famfs-lab: begin fault.x #3\nKernel panic - not syncing\n";
        assert_eq!(
            case_window(died, "fault.x", 10),
            ["Kernel panic - not syncing"]
        );
        // another case's markers do not end it, a prefix of the id does not start it
        let log = "famfs-lab: begin open.ab #1\nx\nfamfs-lab: end open.ab #1\n";
        assert!(case_window(log, "open.a", 10).is_empty());
    }
}
