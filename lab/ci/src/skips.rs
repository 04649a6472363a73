//! Unit tests that could not run here. A host test that needs a capability this machine lacks
//! (a FUSE mount, bpf(2), a PID namespace) passes after printing `SKIP: <test>: <why>`; nextest
//! keeps passing tests' output in its JUnit report (`store-success-output`), and this finds
//! those lines there, for `cargo xtask test` and CI's job summary.

/// The line prefix a skipping test prints.
pub const PREFIX: &str = "SKIP: ";

/// Every distinct `SKIP:` line of a nextest JUnit report, without the prefix, in report order.
pub fn from_junit(xml: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut rest = xml;
    while let Some(at) = rest.find(PREFIX) {
        let after = &rest[at + PREFIX.len()..];
        let end = after.find(['\n', '<']).unwrap_or(after.len());
        let line = unescape(after[..end].trim_end());
        if !line.is_empty() && !out.contains(&line) {
            out.push(line);
        }
        rest = &after[end..];
    }
    out
}

/// The skips as Markdown for `$GITHUB_STEP_SUMMARY` (a line saying none when there are none).
pub fn markdown(skips: &[String]) -> String {
    if skips.is_empty() {
        return "Unit tests: no test was skipped.\n".to_string();
    }
    let mut s = format!(
        "Unit tests: **{} skipped** (a capability this runner lacks):\n\n",
        skips.len()
    );
    for k in skips {
        s.push_str(&format!("- {}\n", k.replace('|', "\\|")));
    }
    s
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="nextest-run" tests="3" failures="0" errors="0">
  <testsuite name="famfs-fused::fuse_mount" tests="2">
    <testcase name="sigterm_unmounts_and_exits_cleanly" classname="famfs-fused::fuse_mount" time="0.01">
      <system-out>SKIP: sigterm_unmounts_and_exits_cleanly: mount -t fuse is refused here (EPERM: Operation not permitted): needs CAP_SYS_ADMIN
</system-out>
    </testcase>
    <testcase name="ls" classname="famfs-fused::fuse_mount" time="0.2"><system-out>running 1 test
ok</system-out></testcase>
  </testsuite>
  <testsuite name="famfs-fused::bpf_load" tests="1">
    <testcase name="every" classname="famfs-fused::bpf_load" time="0.01">
      <system-out>SKIP: every: /sys/kernel/btf/vmlinux: No such file &amp; &quot;x&quot; &lt;y&gt;</system-out>
    </testcase>
  </testsuite>
</testsuites>"#;

    #[test]
    fn finds_every_skip_line_and_unescapes_it() {
        let s = from_junit(REPORT);
        assert_eq!(s.len(), 2, "{s:?}");
        assert!(s[0].starts_with("sigterm_unmounts_and_exits_cleanly: mount -t fuse is refused"));
        assert!(s[0].ends_with("needs CAP_SYS_ADMIN"), "{s:?}");
        assert_eq!(
            s[1],
            "every: /sys/kernel/btf/vmlinux: No such file & \"x\" <y>"
        );
    }

    #[test]
    fn a_report_without_skips_has_none_and_says_so() {
        assert!(from_junit("<testsuites><system-out>ok</system-out></testsuites>").is_empty());
        assert!(markdown(&[]).contains("no test was skipped"));
    }

    #[test]
    fn the_same_skip_twice_counts_once_and_markdown_counts_them() {
        let twice = format!("{REPORT}{REPORT}");
        let s = from_junit(&twice);
        assert_eq!(s.len(), 2);
        let md = markdown(&s);
        assert!(md.contains("**2 skipped**"), "{md}");
        assert_eq!(md.matches("\n- ").count(), 2, "{md}");
    }
}
