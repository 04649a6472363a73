//! Whose view of the file system names a dax device: the slot's device must be the one the
//! server means, whoever opens the file first. A process in a mount namespace of its own,
//! with another node bind-mounted over the device's path, opens first; then the file must
//! still read the device's bytes for everyone else. (The v1 series resolved GET_DAXDEV's
//! path in the opener's namespace; v2 has the server open the device and register the fd.)
//!
//! The lab's kernel has no CONFIG_USER_NS, so the private namespace is made as root
//! (`unshare -m`); the kernel path taken is the one an unprivileged `unshare -Urm` user would
//! take (the lookup runs in the opener's namespace either way).

use crate::harness::check::Checks;
use crate::harness::famfs::{Ctx, Famfs, Spec};
use crate::system::sys;
use crate::Outcome;
use anyhow::{Context, Result};
use lab_suite::expect::{simple_map, AreaAlloc, MIB, READ_AREA};
use std::process::Command;

const PAGE: usize = 4096;

pub fn daxdev_other_namespace(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    let dax = ctx.dax().first().context("no dax device")?.name.clone();
    let mut a = AreaAlloc::new(READ_AREA);
    let map = simple_map(&mut a, &[(0, 2 * MIB)], 2 * MIB).context("read area full")?;
    let fs = Famfs::start(ctx, Spec::new(&ctx.ops()?, ctx.slots(1)?).file("a", map))?;
    let want = fs.expected("a", 0, PAGE as u64)?;
    let file = fs.path("a");
    // In its own mount namespace, /dev/DAX is another dax device (or /dev/null when the
    // topology has one); that process opens the file first and keeps what it read.
    let other_name = ctx.dax().get(1).map(|d| d.name.clone());
    // The other device bound for fs-dax, as a device a holder can take (the attack's target).
    let was = match &other_name {
        Some(o) => {
            let before = crate::system::sysfs::driver_of(
                &std::path::Path::new("/sys/bus/dax/devices").join(o),
            );
            crate::setup::bind_fsdev(o).with_context(|| format!("binding {o} to fsdev_dax"))?;
            before
        }
        None => None,
    };
    let other = other_name.as_ref().map(|n| format!("/dev/{n}"));
    let node = other.clone().unwrap_or_else(|| "/dev/null".into());
    let seen = std::env::temp_dir().join(format!("ns-read-{}", std::process::id()));
    let _ = std::fs::remove_file(&seen);
    let script = format!(
        "mount --make-rprivate / && mount --bind {node} /dev/{dax} && \
         dd if={} of={} bs=4096 count=1 2>&1; echo \"dd exit $?\"",
        file.display(),
        seen.display()
    );
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .output()
        .context("running unshare -m")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "the first opener, in its own mount namespace: {}",
        text.trim()
    );
    c.check(
        out.status.success() && text.contains("dd exit"),
        format!("the namespaced opener ran ({})", out.status),
    );
    // What it read, if anything: the file's own device, never {node}'s bytes.
    if let Ok(read) = std::fs::read(&seen) {
        if !read.is_empty() {
            c.bytes(
                format!("the namespaced opener's read: /dev/{dax}'s bytes, not {node}'s"),
                0,
                &read,
                &want[..read.len().min(PAGE)],
            );
        }
    }
    let _ = std::fs::remove_file(&seen);
    // Everyone else, in the initial namespace: the device the server named, as it is here.
    match sys::open(&file, false) {
        Ok(f) => {
            let got = sys::pread(&f, 0, PAGE).map_err(|e| anyhow::anyhow!("pread: errno {e}"));
            match got {
                Ok(got) => {
                    c.bytes(
                        format!(
                            "a read after another namespace's first open: /dev/{dax}'s bytes"
                        ),
                        0,
                        &got,
                        &want,
                    );
                }
                Err(e) => c.fail(format!(
                    "a read after another namespace's first open: {e:#} (the slot was resolved in the opener's namespace)"
                )),
            }
        }
        Err(e) => c.fail(format!(
            "open after another namespace's first open: {} (the slot's device was looked up in the first opener's mount namespace, where /dev/{dax} is /dev/null)",
            sys::errno_name(e)
        )),
    }
    fs.stop()?;
    if let (Some(o), Some("device_dax")) = (&other_name, was.as_deref()) {
        crate::setup::bind_devdax(o).with_context(|| format!("rebinding {o} to device_dax"))?;
    }
    Ok(c.outcome())
}
