use super::*;

fn kinds(log: &str) -> Vec<SplatKind> {
    scan(log).into_iter().map(|s| s.kind).collect()
}

fn only(log: &str) -> Splat {
    let mut splats = scan(log);
    assert_eq!(
        splats.len(),
        1,
        "expected one splat in:\n{log}\ngot {splats:#?}"
    );
    splats.remove(0)
}

const WARN: &str = "\
[    2.345678] ------------[ cut here ]------------
[    2.345679] WARNING: CPU: 0 PID: 1 at fs/fuse/file.c:12 fuse_iomap_begin+0x1/0x2
[    2.345680] Modules linked in:
[    2.345681] CPU: 0 PID: 1 Comm: famfs Not tainted 6.14.0-rc1 #1
[    2.345682] RIP: 0010:fuse_iomap_begin+0x1/0x2
[    2.345683] Call Trace:
[    2.345684]  <TASK>
[    2.345685]  iomap_iter+0x10/0x20
[    2.345686]  </TASK>
[    2.345687] ---[ end trace 0000000000000000 ]---
[    2.345688] famfs: next message
";

#[test]
fn warning_excerpt_ends_at_end_trace_and_strips_timestamps() {
    let s = only(WARN);
    assert_eq!(s.kind, SplatKind::Warning);
    assert_eq!(s.line, 2);
    assert_eq!(s.excerpt.len(), 9);
    assert_eq!(
        s.excerpt[0],
        "WARNING: CPU: 0 PID: 1 at fs/fuse/file.c:12 fuse_iomap_begin+0x1/0x2"
    );
    assert_eq!(s.excerpt[6], " iomap_iter+0x10/0x20");
    assert_eq!(s.excerpt[8], "---[ end trace 0000000000000000 ]---");
}

#[test]
fn caller_id_and_carriage_returns() {
    let log =
        "boot\r\n[    5.000001][  T123] WARNING: CPU: 1 PID: 123 at mm/filemap.c:1 f+0x0/0x1\r\n\
               [    5.000002][  T123] Call Trace:\r\n\
               [    5.000003][  T123] ---[ end trace 0000000000000000 ]---\r\n";
    let s = only(log);
    assert_eq!(s.kind, SplatKind::Warning);
    assert_eq!(s.line, 2);
    assert_eq!(
        s.excerpt,
        [
            "WARNING: CPU: 1 PID: 123 at mm/filemap.c:1 f+0x0/0x1",
            "Call Trace:",
            "---[ end trace 0000000000000000 ]---"
        ]
    );
}

#[test]
fn bug_null_deref_absorbs_its_oops() {
    let log = "\
[   10.100000] BUG: kernel NULL pointer dereference, address: 0000000000000008
[   10.100001] #PF: supervisor read access in kernel mode
[   10.100002] #PF: error_code(0x0000) - not-present page
[   10.100003] PGD 0 P4D 0
[   10.100004] Oops: Oops: 0000 [#1] PREEMPT SMP NOPTI
[   10.100005] CPU: 1 UID: 0 PID: 77 Comm: famfs Not tainted 6.14.0 #1
[   10.100006] RIP: 0010:famfs_fuse_iomap_begin+0x2c/0x1a0
[   10.100007] ---[ end trace 0000000000000000 ]---
";
    let s = only(log);
    assert_eq!(s.kind, SplatKind::Bug);
    assert_eq!(s.excerpt.len(), 8);
}

#[test]
fn kernel_bug_at_is_bug() {
    let log = "[    3.1] kernel BUG at fs/fuse/famfs.c:420!\n\
               [    3.2] Oops: invalid opcode: 0000 [#1] PREEMPT SMP\n";
    assert_eq!(kinds(log), [SplatKind::Bug]);
}

#[test]
fn every_kind_true_positive() {
    let cases: &[(&str, SplatKind)] = &[
        ("[    1.000000] BUG: sleeping function called from invalid context at mm/slab.h:1", SplatKind::Bug),
        ("[    1.000000] Oops: 0002 [#1] PREEMPT SMP PTI", SplatKind::Oops),
        ("[    1.000000] Internal error: Oops: 0000000096000005 [#1] PREEMPT SMP", SplatKind::Oops),
        ("[    1.000000] general protection fault, probably for non-canonical address 0xdffffc0000000001: 0000 [#1] PREEMPT SMP KASAN", SplatKind::GeneralProtection),
        ("[    1.000000] Oops: general protection fault, probably for non-canonical address 0x6b6b6b6b6b6b6b6b: 0000 [#1] SMP", SplatKind::GeneralProtection),
        ("[    1.000000] BUG: KASAN: slab-use-after-free in fuse_dax_conn_free+0x2a/0x40", SplatKind::Kasan),
        ("[    1.000000] UBSAN: array-index-out-of-bounds in fs/fuse/famfs.c:88:15", SplatKind::Ubsan),
        ("[    1.000000] WARNING: possible circular locking dependency detected", SplatKind::Lockdep),
        ("[    1.000000] WARNING: possible recursive locking detected", SplatKind::Lockdep),
        ("[    1.000000] WARNING: inconsistent lock state", SplatKind::Lockdep),
        ("[    1.000000] WARNING: suspicious RCU usage", SplatKind::Lockdep),
        ("[    1.000000] WARNING: bad unlock balance detected!", SplatKind::Lockdep),
        ("[    1.000000] WARNING: HARDIRQ-safe -> HARDIRQ-unsafe lock order detected", SplatKind::Lockdep),
        ("[    1.000000] INFO: possible irq lock inversion dependency detected", SplatKind::Lockdep),
        ("[    1.000000] [ BUG: Invalid wait context ]", SplatKind::Lockdep),
        ("[  247.000000] INFO: task famfs:312 blocked for more than 122 seconds.", SplatKind::HungTask),
        ("[   60.000000] rcu: INFO: rcu_sched detected stalls on CPUs/tasks:", SplatKind::RcuStall),
        ("[   60.000000] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:", SplatKind::RcuStall),
        ("[   60.000000] rcu: INFO: rcu_preempt self-detected stall on CPU", SplatKind::RcuStall),
        ("[   60.000000] INFO: rcu_sched detected stalls on CPUs/tasks:", SplatKind::RcuStall),
        ("[   52.000000] watchdog: BUG: soft lockup - CPU#1 stuck for 26s! [famfs:312]", SplatKind::SoftLockup),
        ("[   52.000000] BUG: soft lockup - CPU#0 stuck for 22s! [kworker/0:1:12]", SplatKind::SoftLockup),
        ("[   52.000000] watchdog: Watchdog detected hard LOCKUP on cpu 1", SplatKind::HardLockup),
        ("[   52.000000] NMI watchdog: Watchdog detected hard LOCKUP on cpu 0", SplatKind::HardLockup),
        ("[   99.000000] Kernel panic - not syncing: Fatal exception", SplatKind::KernelPanic),
        ("<0>[   99.000000] Kernel panic - not syncing: hung_task: blocked tasks", SplatKind::KernelPanic),
        ("BUG: unable to handle page fault for address: ffffffffff600000", SplatKind::Bug),
        ("[  T1] WARNING: at fs/fuse/file.c:12 foo+0x1/0x2()", SplatKind::Warning),
    ];
    for (line, kind) in cases {
        assert_eq!(kinds(line), [*kind], "{line}");
        assert_eq!(only(line).excerpt.len(), 1, "{line}");
    }
}

#[test]
fn lockdep_report_keeps_empty_kernel_lines_and_caps_at_40() {
    let mut log = String::from(
        "[   12.000000] \n\
         [   12.000001] ======================================================\n\
         [   12.000002] WARNING: possible circular locking dependency detected\n\
         [   12.000003] 6.14.0 #1 Not tainted\n\
         [   12.000004] \n",
    );
    for n in 0..60 {
        log.push_str(&format!("[   12.{:06}]  lock#{n}\n", 5 + n));
    }
    let s = only(&log);
    assert_eq!(s.kind, SplatKind::Lockdep);
    assert_eq!(s.line, 3);
    assert_eq!(s.excerpt.len(), MAX_EXCERPT_LINES);
    assert_eq!(s.excerpt[2], "");
}

#[test]
fn excerpt_stops_at_user_output_and_blank_lines() {
    let log = "\
[   30.000000] INFO: task famfs:312 blocked for more than 122 seconds.
[   30.000001]       Not tainted 6.14.0 #1
test-runner: case fmap_read passed
[   30.000002] task:famfs state:D stack:0 pid:312
";
    let s = only(log);
    assert_eq!(s.kind, SplatKind::HungTask);
    assert_eq!(s.excerpt.len(), 2);

    let plain = "UBSAN: shift-out-of-bounds in fs/fuse/famfs.c:1:2\nshift exponent 64 is too large\n\nafter\n";
    assert_eq!(only(plain).excerpt.len(), 2);
}

#[test]
fn two_splats_in_one_log() {
    let log = format!(
        "[    1.000000] Linux version 6.14.0\n{WARN}\
         [    9.000000] BUG: KASAN: use-after-free in famfs_meta_free+0x10/0x20\n\
         [    9.000001] Read of size 8 at addr ffff888100000000 by task famfs/1\n\
         [    9.000002] Kernel panic - not syncing: KASAN: panic_on_warn set ...\n"
    );
    let splats = scan(&log);
    let got: Vec<_> = splats.iter().map(|s| (s.kind, s.line)).collect();
    assert_eq!(
        got,
        [
            (SplatKind::Warning, 3),
            (SplatKind::Kasan, 13),
            (SplatKind::KernelPanic, 15)
        ]
    );
    assert_eq!(splats[1].excerpt.len(), 2);
}

#[test]
fn back_to_back_hung_tasks_are_separate() {
    let log = "[  1.0] INFO: task a:1 blocked for more than 120 seconds.\n\
               [  1.1] Call Trace:\n\
               [  1.2] INFO: task b:2 blocked for more than 120 seconds.\n";
    assert_eq!(kinds(log), [SplatKind::HungTask, SplatKind::HungTask]);
}

#[test]
fn false_positives() {
    let log = "\
[    0.000000] Command line: console=ttyS0 kasan_multi_shot oops=panic panic=-1 softlockup_panic=1
[    0.000000] Kernel command line: console=ttyS0 kasan_multi_shot panic_on_warn=1
[    0.000000] CONFIG_BUG_ON_DATA_CORRUPTION=y
[    0.000000] BUG_ON
[    0.000000] Warning: unable to open an initial console.
[    0.000000] WARNING: Spectre v2 mitigation leaves CPU vulnerable to RETBleed attacks, data leaks possible!
[    0.100000] famfs-test: running case warning_on_overlapping_fmap
[    0.100000] traps: famfs[42] general protection fault ip:401000 sp:7ffd error:0 in famfs[401000+1000]
[    0.200000] hello BUG: not at the start
echo says: BUG: KASAN: use-after-free (quoted by a test)
ok 3 fmap_warning_case
# BUG: echoed inside a KTAP diagnostic
  WARNING: CPU: indented user text
[    0.300000] INFO: task list printed by a test (no blocking)
[    0.300001] rcu: INFO: rcu_sched stats
";
    assert_eq!(scan(log), vec![]);
}

#[test]
fn prefix_parsing() {
    assert_eq!(strip_kernel_prefix("[    2.345678] x"), (true, "x"));
    assert_eq!(strip_kernel_prefix("[    2.345678][  T12] x"), (true, "x"));
    assert_eq!(strip_kernel_prefix("[  C3] x"), (true, "x"));
    assert_eq!(strip_kernel_prefix("<4>[ 1.5]  y"), (true, " y"));
    assert_eq!(strip_kernel_prefix("[ x] y"), (false, "[ x] y"));
    assert_eq!(strip_kernel_prefix("[2.x] y"), (false, "[2.x] y"));
}

#[test]
fn linux_7_warning_header_is_a_warning() {
    // As printed by Linux 7.3's WARN() (lkdtm WARNING in the lab's guest).
    let log = "[    4.164797] lkdtm: Performing direct entry WARNING\n\
               [    4.166698] WARNING: ../src/drivers/misc/lkdtm/bugs.c:164 at lkdtm_WARNING+0xf/0x20, CPU#1: famfs-lab-cases/61\n\
               [    4.170805] RIP: 0010:lkdtm_WARNING+0xf/0x20\n";
    let found = scan(log);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].kind, SplatKind::Warning);
    assert_eq!(found[0].line, 2);
    // A user's echo of similar words is not one.
    assert!(scan("[ 1.0] WARNING: the disk at 90%, CPU#1 hot\n").is_empty());
}

#[test]
fn message_strips_the_kernel_prefixes_and_carriage_returns() {
    assert_eq!(
        message("[    1.500000] famfs-lab: setup\r"),
        "famfs-lab: setup"
    );
    assert_eq!(
        message("<5>[ 2.0][  T42] famfs-lab: poweroff"),
        "famfs-lab: poweroff"
    );
    assert_eq!(message("plain text"), "plain text");
}
