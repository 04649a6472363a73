//! Who may hand the kernel a dax device: the server registers each device by file descriptor
//! (FUSE_DEV_IOC_DAX_REGISTER) when GET_DAXDEV asks for a slot, and the kernel checks the
//! server itself, not the task that mounted. A daemon started by a setuid mount helper runs
//! as its user: the mount had every privilege, the daemon has none of them. Here the server
//! mounts with CAP_SYS_RAWIO and drops it right after (`--drop-rawio-after-mount`), or opens
//! the device read-only (`--daxdev-read-only`); either way the registration must fail with
//! the kernel's errno, and no file may reach the device.

use crate::harness::check::Checks;
use crate::harness::famfs::{Ctx, Famfs, Spec};
use crate::system::sys::{self, Kmsg};
use crate::Outcome;
use anyhow::{Context, Result};
use lab_suite::expect::{simple_map, AreaAlloc, MIB, READ_AREA};
use std::time::Duration;

const PAGE: u64 = 4096;

/// One server variant: its extra arguments, the registration errno the kernel must give it,
/// and the kernel log text of that refusal.
struct Variant {
    what: &'static str,
    args: &'static [&'static str],
    errno: i32,
}

const VARIANTS: &[Variant] = &[
    Variant {
        what: "a server with CAP_SYS_RAWIO and a read-write open (the control)",
        args: &[],
        errno: 0,
    },
    Variant {
        what: "a server that dropped CAP_SYS_RAWIO after the mount",
        args: &["--drop-rawio-after-mount"],
        errno: libc::EPERM,
    },
    Variant {
        what: "a server that opened the device read-only",
        args: &["--daxdev-read-only"],
        errno: libc::EACCES,
    },
];

pub fn daemon_credentials(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    let mut a = AreaAlloc::new(READ_AREA);
    let map = simple_map(&mut a, &[(0, 2 * MIB)], 2 * MIB).context("read area full")?;
    for v in VARIANTS {
        let mut spec = Spec::new(&ctx.ops()?, ctx.slots(1)?).file("f", map.clone());
        spec.args = v.args.iter().map(|s| s.to_string()).collect();
        let fs = Famfs::start(ctx, spec)?;
        let mut kmsg = Kmsg::open()?;
        if v.errno != 0 {
            sys::ratelimit_quiet();
        }
        let want = fs.expected("f", 0, PAGE)?;
        let opened = sys::open(&fs.path("f"), false);
        let st = fs.stats()?;
        c.eq(
            format!("{}: FUSE_DAX_FMAP negotiated (stats init.fmap)", v.what),
            st.0.pointer("/init/fmap")
                .and_then(serde_json::Value::as_bool),
            Some(true),
        );
        c.eq(
            format!("{}: GET_DAXDEV for slot 0", v.what),
            st.daxdev(0)?,
            1,
        );
        let reg =
            st.0.pointer("/register/0")
                .and_then(serde_json::Value::as_i64);
        c.eq(
            format!(
                "{}: the kernel's answer to FUSE_DEV_IOC_DAX_REGISTER (0 or the errno)",
                v.what
            ),
            reg,
            Some(i64::from(v.errno)),
        );
        if v.errno == 0 {
            match opened {
                Ok(f) => match sys::pread(&f, 0, PAGE as usize) {
                    Ok(got) => {
                        c.bytes(format!("{}: pread f", v.what), 0, &got, &want);
                    }
                    Err(e) => c.fail(format!("{}: pread f: {}", v.what, sys::errno_name(e))),
                },
                Err(e) => c.fail(format!("{}: open f: {}", v.what, sys::errno_name(e))),
            }
        } else {
            c.errno(format!("{}: open f", v.what), &opened, libc::ENODEV);
            let line = format!("device slot 0 not registered: -{}", v.errno);
            match kmsg.wait_for("device slot 0 not registered", Duration::from_secs(3)) {
                Some(l) => {
                    c.check(
                        l.contains(&line),
                        format!("{}: kernel log {l:?} contains {line:?}", v.what),
                    );
                }
                None => c.fail(format!(
                    "{}: no \"device slot 0 not registered\" line in the kernel log",
                    v.what
                )),
            }
        }
        fs.stop()?;
    }
    Ok(c.outcome())
}

/// A server that misuses the registration ioctl: a slot registered twice (EEXIST), indexes
/// past the table (EINVAL), a registration after the unmount (ENOTCONN), and a GET_DAXDEV
/// answered without registering (the open fails with ENODEV, the kernel says why).
pub fn misuse(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    let mut a = AreaAlloc::new(READ_AREA);
    let map = simple_map(&mut a, &[(0, 2 * MIB)], 2 * MIB).context("read area full")?;
    let probe = |st: &crate::harness::famfs::Stats, what: &str| -> Option<i64> {
        st.0.pointer(&format!("/probes/{what}"))
            .and_then(serde_json::Value::as_i64)
    };
    // Registered twice, at bad indexes, and again after the unmount: the file still works.
    let spec = Spec::new(&ctx.ops()?, ctx.slots(1)?)
        .file("f", map.clone())
        .arg("--register-twice")
        .arg("--register-bad-index")
        .arg("24")
        .arg("--register-bad-index")
        .arg("4294967295")
        .arg("--register-after-unmount");
    let fs = Famfs::start(ctx, spec)?;
    let want = fs.expected("f", 0, PAGE)?;
    match sys::open(&fs.path("f"), false).and_then(|f| sys::pread(&f, 0, PAGE as usize)) {
        Ok(got) => {
            c.bytes("open and pread f (slot 0 registered once)", 0, &got, &want);
        }
        Err(e) => c.fail(format!("open and pread f: {}", sys::errno_name(e))),
    }
    let st = fs.stats()?;
    for (what, errno, why) in [
        ("again:0", libc::EEXIST, "slot 0 registered a second time"),
        ("index:24", libc::EINVAL, "index 24 (one past the table)"),
        ("index:4294967295", libc::EINVAL, "index 2^32-1"),
    ] {
        c.eq(
            format!("{why}: the kernel's answer"),
            probe(&st, what),
            Some(i64::from(errno)),
        );
    }
    let stats_path = fs.stats_path.clone();
    fs.stop()?;
    let text = std::fs::read_to_string(&stats_path)
        .with_context(|| format!("reading {} after the stop", stats_path.display()))?;
    let st =
        crate::harness::famfs::Stats(serde_json::from_str(&text).context("parsing the stats")?);
    c.eq(
        "slot 0 registered again after the unmount: the kernel's answer",
        probe(&st, "after-unmount:0"),
        Some(i64::from(libc::ENOTCONN)),
    );
    // GET_DAXDEV answered with success but nothing registered.
    let spec = Spec::new(&ctx.ops()?, ctx.slots(1)?)
        .file("f", map)
        .arg("--reply-without-register");
    let fs = Famfs::start(ctx, spec)?;
    let mut kmsg = Kmsg::open()?;
    sys::ratelimit_quiet();
    c.errno(
        "a GET_DAXDEV reply without a registration: open f",
        &sys::open(&fs.path("f"), false),
        libc::ENODEV,
    );
    match kmsg.wait_for(
        "GET_DAXDEV succeeded without a registered device",
        Duration::from_secs(3),
    ) {
        Some(l) => c.pass(format!("kernel log: {l}")),
        None => c.fail("no \"GET_DAXDEV succeeded without a registered device\" in the kernel log"),
    }
    // Nothing of the failed open stays cached: the next open asks for the slot again.
    c.errno(
        "a GET_DAXDEV reply without a registration: open f again",
        &sys::open(&fs.path("f"), false),
        libc::ENODEV,
    );
    c.eq(
        "GET_DAXDEV for slot 0 after two opens (the empty slot is asked for again)",
        fs.stats()?.daxdev(0)?,
        2,
    );
    fs.stop()?;
    Ok(c.outcome())
}
