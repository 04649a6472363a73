//! The security suite: hostile BPF ops (`evil_oob`) never get a mapping outside the devices
//! the server resolved for the file, and FUSE_DAX_FMAP needs CAP_SYS_RAWIO.

use crate::harness::check::Checks;
use crate::harness::famfs::{drop_rawio, Ctx, Famfs, Spec, Target};
use crate::system::mapping::Mapping;
use crate::system::sys::{self, Access, Kmsg};
use crate::Outcome;
use anyhow::{bail, Context, Result};
use lab_suite::expect::{self, simple_map, AreaAlloc, CANARY_AREA, FILL_TAIL, MIB, READ_AREA};
use std::collections::BTreeSet;
use std::time::Duration;

/// `fuse_init_out.flags2` bit of FUSE_DAX_FMAP (1 << 44).
const DAX_FMAP_FLAGS2: u64 = 1 << 12;
const CAP_SYS_RAWIO: u32 = 17;
const CAP_SYS_ADMIN: u32 = 21;

pub fn run(name: &str, ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let outside = "range outside the device";
    let undeclared = "device slot not declared by the parser";
    let length = "length outside the requested range";
    match name {
        "evil_past_end" => {
            let size = ctx.dax().first().map(|d| d.size).context("no dax device")?;
            evil(
                ctx,
                &[
                    (
                        "past-end at the device's end",
                        vec![
                            "--evil".into(),
                            "past-end".into(),
                            "--evil-dev-size".into(),
                            size.to_string(),
                        ],
                        outside,
                    ),
                    (
                        "past-end 1 TiB past the right address",
                        vec!["--evil".into(), "past-end".into()],
                        outside,
                    ),
                ],
            )
        }
        "evil_other_device" => evil(
            ctx,
            &[
                (
                    "other-device: slot 1, which another file declared",
                    vec![
                        "--evil".into(),
                        "other-device".into(),
                        "--evil-dev-index".into(),
                        "1".into(),
                    ],
                    undeclared,
                ),
                (
                    "other-device: slot 23, never resolved",
                    vec![
                        "--evil".into(),
                        "other-device".into(),
                        "--evil-dev-index".into(),
                        "23".into(),
                    ],
                    undeclared,
                ),
            ],
        ),
        "evil_overflow" => evil(
            ctx,
            &[(
                "overflow",
                vec!["--evil".into(), "overflow".into()],
                outside,
            )],
        ),
        "evil_bad_extents" => evil(
            ctx,
            &[
                (
                    "long-length",
                    vec!["--evil".into(), "long-length".into()],
                    length,
                ),
                (
                    "zero-length",
                    vec!["--evil".into(), "zero-length".into()],
                    length,
                ),
                (
                    "bad-type",
                    vec!["--evil".into(), "bad-type".into()],
                    "not a plain mapped extent",
                ),
            ],
        ),
        "evil_straddle_end" => {
            let size = ctx.dax().first().map(|d| d.size).context("no dax device")?;
            evil(
                ctx,
                &[(
                    "straddle-end: from inside the device to a page past its end",
                    vec![
                        "--evil".into(),
                        "straddle-end".into(),
                        "--evil-dev-size".into(),
                        size.to_string(),
                    ],
                    outside,
                )],
            )
        }
        "evil_other_file" => evil(
            ctx,
            &[(
                "other-file: slot 1 at the other file's bytes",
                vec![
                    "--evil".into(),
                    "other-file".into(),
                    "--evil-dev-index".into(),
                    "1".into(),
                    "--evil-addr".into(),
                    OTHER_ADDR.into(),
                ],
                undeclared,
            )],
        ),
        "evil_short_length" => evil_short_length(ctx),
        "evil_chunk_overrun" => crate::suites::ranges::chunk_overrun(ctx),
        "evil_misaligned" => evil(
            ctx,
            &[
                (
                    "misaligned by 1 byte",
                    vec![
                        "--evil".into(),
                        "misaligned".into(),
                        "--evil-length".into(),
                        "1".into(),
                    ],
                    "address not page aligned like the offset",
                ),
                (
                    "misaligned by 2048 bytes",
                    vec![
                        "--evil".into(),
                        "misaligned".into(),
                        "--evil-length".into(),
                        "2048".into(),
                    ],
                    "address not page aligned like the offset",
                ),
            ],
        ),
        "claim_fmap_unoffered" => claim_fmap_unoffered(ctx),
        "fuseblk_no_fmap" => fuseblk_no_fmap(ctx),
        "alias_pages" => alias_pages(ctx),
        "unprivileged_no_fmap" => unprivileged(ctx),
        "daxdev_other_namespace" => crate::suites::namespaces::daxdev_other_namespace(ctx),
        "daemon_credentials" => crate::suites::registration::daemon_credentials(ctx),
        "register_misuse" => crate::suites::registration::misuse(ctx),
        "notify_store_refused" => crate::suites::notify::refused(ctx, true),
        "notify_retrieve_refused" => crate::suites::notify::refused(ctx, false),
        _ => bail!("no security case {name:?}"),
    }
}

/// In an `evil` flavour's arguments: the device address of the other file's first byte.
const OTHER_ADDR: &str = "{other-addr}";

/// Every byte of `b` changed: what a hostile mapping must not let through is visible on the
/// device (the host's check of both files, the canaries and the device tails).
fn flipped(b: &[u8]) -> Vec<u8> {
    b.iter().map(|x| !x).collect()
}

fn evil(ctx: &mut Ctx<'_>, flavours: &[(&str, Vec<String>, &str)]) -> Result<Outcome> {
    let mut c = Checks::new();
    let mut slots = ctx.slots(2)?;
    if slots.len() == 1 {
        // one device: slot 1 names it again (another slot, which the evil file never declares)
        let first = slots.get(&0).cloned().context("no slot 0")?;
        slots.insert(1, first);
    }
    let mut a = AreaAlloc::new(READ_AREA);
    let evil_map = simple_map(&mut a, &[(0, 2 * MIB)], 2 * MIB).context("read area full")?;
    // slot 1 may name slot 0's device: the other file starts past the evil one either way,
    // so that "the other file's bytes" are never the evil file's own
    a.take(1, 2 * MIB).context("read area full")?;
    let other_map = simple_map(&mut a, &[(1, 2 * MIB)], 2 * MIB).context("read area full")?;
    let mut checked = None;
    for (what, args, log) in flavours {
        let mut spec = Spec::new("evil_oob", slots.clone())
            .file("evil", evil_map.clone())
            .file("other", other_map.clone());
        let other_addr = match &other_map.extents {
            famfs_fmap::Extents::Simple(e) => e.first().map(|e| e.offset),
            famfs_fmap::Extents::Interleaved(_) => None,
        }
        .context("the other file has no simple extent")?;
        spec.args = args
            .iter()
            .map(|a| a.replace(OTHER_ADDR, &other_addr.to_string()))
            .collect();
        let fs = Famfs::start(ctx, spec)?;
        let mut kmsg = Kmsg::open()?;
        sys::ratelimit_quiet();
        let fo = sys::open(&fs.path("other"), false);
        c.errno(
            format!("{what}: open other (parse as famfs; declares slot 1)"),
            &fo,
            0,
        );
        let fe = match sys::open(&fs.path("evil"), true) {
            Ok(f) => f,
            Err(e) => {
                c.fail(format!("{what}: open evil: {}", sys::errno_name(e)));
                continue;
            }
        };
        c.pass(format!("{what}: open evil"));
        // writes carry bytes that differ from what the evil file's extent holds (and from
        // the fill anywhere else): one that wrongly goes through shows on the device
        let b0 = fs.expected("evil", 0, 1)?[0];
        let b1 = fs.expected("evil", 4096, 1)?[0];
        let big = flipped(&fs.expected("evil", 0, 64 << 10)?);
        c.errno(
            format!("{what}: pread 1 byte"),
            &sys::pread(&fe, 0, 1),
            libc::EIO,
        );
        c.errno(
            format!("{what}: pread 4 KiB"),
            &sys::pread(&fe, 4096, 4096),
            libc::EIO,
        );
        c.errno(
            format!("{what}: pread 64 KiB"),
            &sys::pread(&fe, 0, 64 << 10),
            libc::EIO,
        );
        c.errno(
            format!("{what}: pwrite 1 byte"),
            &sys::pwrite_once(&fe, 0, &[!b0]),
            libc::EIO,
        );
        c.errno(
            format!("{what}: pwrite 64 KiB"),
            &sys::pwrite_once(&fe, 0, &big),
            libc::EIO,
        );
        let m = Mapping::shared(&fe, 0, (2 * MIB) as usize, true).context("mmap")?;
        m.advise(libc::MADV_NOHUGEPAGE)?;
        c.access(
            format!("{what}: PTE read fault"),
            sys::probe_read_here(m.ptr())?,
            Access::Signal(libc::SIGBUS),
        );
        c.access(
            format!("{what}: PTE write fault"),
            sys::probe_write_here(m.ptr().wrapping_add(4096), !b1)?,
            Access::Signal(libc::SIGBUS),
        );
        drop(m);
        let m = Mapping::shared(&fe, 0, (2 * MIB) as usize, false).context("mmap")?;
        c.access(
            format!("{what}: read fault (PMD allowed)"),
            sys::probe_read(m.ptr())?,
            Access::Signal(libc::SIGBUS),
        );
        drop(m);
        match kmsg.wait_for(log, Duration::from_secs(3)) {
            Some(l) => c.check(
                l.contains("evil_oob"),
                format!("{what}: kernel log names the ops: {l}"),
            ),
            None => c.check(false, format!("{what}: kernel log line containing {log:?}")),
        };
        drop((fe, fo));
        fs.stop()?;
        checked.get_or_insert(fs_ranges(ctx, &slots, &evil_map, &other_map)?);
    }
    if let Some(r) = checked {
        ctx.verify(r);
    }
    Ok(c.outcome())
}

/// The fill the host must still find: both files' bytes, the canary area and the last bytes
/// of every device involved.
fn fs_ranges(
    ctx: &Ctx<'_>,
    slots: &std::collections::BTreeMap<u32, Target>,
    evil: &famfs_fmap::FileMap,
    other: &famfs_fmap::FileMap,
) -> Result<Vec<lab_suite::verify::VerifyRange>> {
    let mut s = expect::Slots::default();
    let mut names = BTreeSet::new();
    for (i, t) in slots {
        if let Target::Dax(n) = t {
            s.0.insert(*i, ctx.map.dax(n).context("no such dax device")?.clone());
            names.insert(n.clone());
        }
    }
    let mut v = expect::verify_ranges(evil, &s, 0, evil.file_size, None)?;
    v.extend(expect::verify_ranges(other, &s, 0, other.file_size, None)?);
    for n in names {
        let d = ctx.map.dax(&n).context("no such dax device")?;
        v.extend(expect::dax_fill_ranges(
            d,
            CANARY_AREA.start,
            CANARY_AREA.end - CANARY_AREA.start,
        )?);
        v.extend(expect::dax_fill_ranges(
            d,
            d.size - FILL_TAIL / 2,
            FILL_TAIL / 2,
        )?);
    }
    Ok(v)
}

/// CapEff of a process started the way the unprivileged server is.
fn caps_without_rawio() -> Result<u64> {
    let mut cmd = std::process::Command::new("cat");
    cmd.arg("/proc/self/status");
    drop_rawio(&mut cmd);
    let out = cmd.output().context("running cat /proc/self/status")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let hex = text
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .context("no CapEff in /proc/self/status")?;
    u64::from_str_radix(hex.trim(), 16).context("CapEff is not hex")
}

fn unprivileged(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    let caps = caps_without_rawio()?;
    c.check(
        caps & (1 << CAP_SYS_RAWIO) == 0 && caps & (1 << CAP_SYS_ADMIN) != 0,
        format!("a process started without CAP_SYS_RAWIO keeps CAP_SYS_ADMIN (CapEff {caps:#x})"),
    );
    let mut a = AreaAlloc::new(READ_AREA);
    let map = simple_map(&mut a, &[(0, 2 * MIB)], 2 * MIB).context("read area full")?;
    let flags2 = |fs: &Famfs| -> Result<u64> {
        fs.stats()?
            .0
            .pointer("/init/flags2")
            .and_then(serde_json::Value::as_u64)
            .context("no init.flags2 in the stats")
    };
    // With CAP_SYS_RAWIO (the control): offered.
    let fs = Famfs::start(
        ctx,
        Spec::new(&ctx.ops()?, ctx.slots(1)?).file("f", map.clone()),
    )?;
    let f2 = flags2(&fs)?;
    c.check(
        f2 & DAX_FMAP_FLAGS2 != 0,
        format!("with CAP_SYS_RAWIO the kernel offers FUSE_DAX_FMAP (flags2 {f2:#x})"),
    );
    fs.stop()?;
    // Without: an fmap server cannot negotiate it ...
    let mut spec = Spec::new(&ctx.ops()?, ctx.slots(1)?).file("f", map.clone());
    spec.drop_rawio = true;
    match Famfs::try_start(ctx, spec)? {
        Ok(fs) => {
            c.fail("an fmap server without CAP_SYS_RAWIO mounted");
            fs.stop()?;
        }
        Err(fail) => {
            c.eq(
                "without CAP_SYS_RAWIO: server exit status",
                fail.status.and_then(|s| s.code()),
                Some(1),
            );
            c.check(
                fail.log.contains("does not offer FUSE_DAX_FMAP"),
                format!(
                    "without CAP_SYS_RAWIO: INIT refused for lack of the offer: {}",
                    fail.log.trim()
                ),
            );
        }
    }
    // ... while a plain FUSE mount by the same process works and shows what was offered.
    let mut spec = Spec::new(&ctx.ops()?, ctx.slots(1)?).file("f", map);
    spec.drop_rawio = true;
    spec.args.push("--no-fmap".into());
    let fs = Famfs::start(ctx, spec)?;
    let f2 = flags2(&fs)?;
    c.check(
        f2 & DAX_FMAP_FLAGS2 == 0,
        format!("without CAP_SYS_RAWIO the kernel does not offer FUSE_DAX_FMAP (flags2 {f2:#x})"),
    );
    c.eq(
        "the plain mount works: stat f",
        sys::size_of(&fs.path("f")),
        Ok(2 * MIB),
    );
    fs.stop()?;
    Ok(c.outcome())
}

/// iomap_begin returns the right mapping cut to 1..PAGE_SIZE-1 bytes. DAX maps whole pages:
/// a PTE fault must end in SIGBUS (the kernel refuses the length), never in the WARN of
/// dax_iomap_pte_fault(); read(2) may copy the right bytes a piece at a time or fail with EIO.
fn evil_short_length(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    let slots = ctx.slots(1)?;
    let mut a = AreaAlloc::new(READ_AREA);
    let map = simple_map(&mut a, &[(0, 2 * MIB)], 2 * MIB).context("read area full")?;
    let mut s = expect::Slots::default();
    for (i, t) in &slots {
        if let Target::Dax(n) = t {
            s.0.insert(*i, ctx.map.dax(n).context("no such dax device")?.clone());
        }
    }
    let ranges = expect::verify_ranges(&map, &s, 0, map.file_size, None)?;
    let mut kmsg = Kmsg::open()?;
    for len in [1u64, 2048, 4095] {
        let what = format!("length {len}");
        let mut spec = Spec::new("evil_oob", slots.clone()).file("evil", map.clone());
        spec.args = vec![
            "--evil".into(),
            "short-length".into(),
            "--evil-length".into(),
            len.to_string(),
        ];
        let fs = Famfs::start(ctx, spec)?;
        let f = match sys::open(&fs.path("evil"), true) {
            Ok(f) => f,
            Err(e) => {
                c.fail(format!("{what}: open evil: {}", sys::errno_name(e)));
                continue;
            }
        };
        let want = fs.expected("evil", 0, 8192)?;
        match sys::pread(&f, 0, 8192) {
            Ok(got) => {
                c.bytes(
                    format!("{what}: pread 8 KiB (copied piecewise)"),
                    0,
                    &got,
                    &want,
                );
            }
            Err(e) => {
                c.eq(
                    format!("{what}: pread 8 KiB fails"),
                    sys::errno_name(e),
                    sys::errno_name(libc::EIO),
                );
            }
        }
        let m = Mapping::shared(&f, 0, (2 * MIB) as usize, true).context("mmap")?;
        m.advise(libc::MADV_NOHUGEPAGE)?;
        c.access(
            format!("{what}: PTE read fault"),
            sys::probe_read_here(m.ptr())?,
            Access::Signal(libc::SIGBUS),
        );
        c.access(
            format!("{what}: PTE write fault"),
            sys::probe_write_here(m.ptr().wrapping_add(4096), !want[4096])?,
            Access::Signal(libc::SIGBUS),
        );
        drop(m);
        let m = Mapping::shared(&f, 0, (2 * MIB) as usize, false).context("mmap")?;
        c.access(
            format!("{what}: read fault (PMD allowed)"),
            sys::probe_read_here(m.ptr().wrapping_add(8192))?,
            Access::Signal(libc::SIGBUS),
        );
        drop((m, f));
        no_warnings(
            &mut c,
            &mut kmsg,
            &mut 0,
            &what,
            " (a length below PAGE_SIZE on a PTE fault must be refused before dax_iomap_pte_fault warns)",
        );
        kmsg = Kmsg::open()?;
        fs.stop()?;
    }
    ctx.verify(ranges);
    Ok(c.outcome())
}

/// A server that claims FUSE_DAX_FMAP (and names its ops) in its INIT reply although the
/// kernel did not offer it (the mounter lacks CAP_SYS_RAWIO): the kernel must ignore the
/// claim. The mount is plain FUSE: no GET_FMAP, no GET_DAXDEV, reads go to the server.
fn claim_fmap_unoffered(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    let mut spec = one_file_spec(ctx)?;
    spec.drop_rawio = true;
    claim_ignored(ctx, &mut c, spec)?;
    Ok(c.outcome())
}

/// A 2 MiB file `f` on slot 0 with the run's ops.
fn one_file_spec(ctx: &Ctx<'_>) -> Result<Spec> {
    let mut a = AreaAlloc::new(READ_AREA);
    let map = simple_map(&mut a, &[(0, 2 * MIB)], 2 * MIB).context("read area full")?;
    Ok(Spec::new(&ctx.ops()?, ctx.slots(1)?).file("f", map))
}

/// fuseblk: the mount's block device is the file system's, not dax memory, so the kernel
/// offers FUSE_DAX_FMAP on no fuseblk mount, even to a server with CAP_SYS_RAWIO. An fmap
/// server refuses the INIT for lack of the offer; one that claims it anyway is ignored (plain
/// FUSE, as in claim_fmap_unoffered).
fn fuseblk_no_fmap(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    let backing = std::path::PathBuf::from(format!("/run/famfs-lab/{}.blk", ctx.id));
    let dev = crate::system::loopdev::LoopDev::over_new_file(&backing, 4 * MIB)?;
    let fuseblk = |spec: &mut Spec| {
        spec.args.extend(
            [
                "--fstype",
                "fuseblk",
                "--source",
                &dev.path.to_string_lossy(),
                "--mount-opts",
                "blksize=4096",
            ]
            .map(String::from),
        )
    };
    let mut spec = one_file_spec(ctx)?;
    fuseblk(&mut spec);
    match Famfs::try_start(ctx, spec)? {
        Ok(fs) => {
            let f2 = fs
                .stats()?
                .0
                .pointer("/init/flags2")
                .and_then(serde_json::Value::as_u64);
            c.fail(format!(
                "an fmap server mounted fuseblk on {}: the kernel offered FUSE_DAX_FMAP (flags2 {f2:#x?})",
                dev.path.display()
            ));
            fs.stop()?;
        }
        Err(fail) => {
            c.check(
                fail.log.contains("does not offer FUSE_DAX_FMAP"),
                format!(
                    "fuseblk with CAP_SYS_RAWIO: INIT refused for lack of the offer: {}",
                    fail.log.trim()
                ),
            );
        }
    }
    let mut spec = one_file_spec(ctx)?;
    fuseblk(&mut spec);
    claim_ignored(ctx, &mut c, spec)?;
    drop(dev);
    let _ = std::fs::remove_file(&backing);
    Ok(c.outcome())
}

/// Starts `spec`'s server claiming FUSE_DAX_FMAP (and naming its ops) in the INIT reply
/// though the kernel did not offer it: the kernel must ignore the claim. The mount is plain
/// FUSE: no GET_FMAP, no GET_DAXDEV, reads go to the server.
fn claim_ignored(ctx: &mut Ctx<'_>, c: &mut Checks, mut spec: Spec) -> Result<()> {
    spec.args.push("--claim-fmap".into());
    let mut kmsg = Kmsg::open()?;
    let fs = match Famfs::try_start(ctx, spec)? {
        Ok(fs) => fs,
        Err(fail) => {
            c.fail(format!(
                "the mount of a server claiming an unoffered FUSE_DAX_FMAP failed instead of ignoring the claim: {}",
                fail.log.trim()
            ));
            return Ok(());
        }
    };
    let st = fs.stats()?;
    let offered =
        st.0.pointer("/init/flags2")
            .and_then(serde_json::Value::as_u64)
            .context("no init.flags2 in the stats")?;
    c.check(
        offered & DAX_FMAP_FLAGS2 == 0,
        format!("the kernel did not offer FUSE_DAX_FMAP (flags2 {offered:#x})"),
    );
    c.eq(
        "the server claimed it (stats init.fmap)",
        st.0.pointer("/init/fmap")
            .and_then(serde_json::Value::as_bool),
        Some(true),
    );
    let want = fs.expected("f", 0, 4096)?;
    match sys::open(&fs.path("f"), false) {
        Ok(f) => {
            c.pass("open f");
            let r = sys::pread(&f, 0, 4096);
            c.check(
                r.as_ref() != Ok(&want),
                format!(
                    "pread does not return the device's bytes (the fmap path was not taken): {}",
                    match &r {
                        Ok(b) => format!("{} bytes", b.len()),
                        Err(e) => sys::errno_name(*e),
                    }
                ),
            );
            let m = Mapping::shared(&f, 0, 4096, false).context("mmap")?;
            let got = sys::probe_read_here(m.ptr())?;
            c.check(
                got != Access::Ok(want[0]) || want[0] == 0,
                format!("a fault does not map the device: {got}"),
            );
            drop((m, f));
        }
        Err(e) => c.note(format!("open f: {}", sys::errno_name(e))),
    }
    let st = fs.stats()?;
    c.eq("GET_FMAP requests", st.fmap_total()?, 0);
    c.eq("GET_DAXDEV requests", st.daxdev_total()?, 0);
    c.check(
        st.opcode("READ")? >= 1,
        format!(
            "reads went to the server as FUSE READ ({})",
            st.opcode("READ")?
        ),
    );
    let fmap_lines: Vec<String> = kmsg
        .lines()
        .iter()
        .filter(|l| l.contains("dax_fmap"))
        .cloned()
        .collect();
    c.check(
        fmap_lines.is_empty(),
        format!("no dax_fmap kernel log line: {fmap_lines:?}"),
    );
    fs.stop()?;
    Ok(())
}

/// New kernel WARNING/BUG lines in `kmsg` since the last call, for a check.
fn warnings(kmsg: &mut Kmsg, seen: &mut usize) -> Vec<String> {
    let lines = kmsg.lines();
    let new: Vec<String> = lines[(*seen).min(lines.len())..]
        .iter()
        .filter(|l| l.contains("WARNING:") || l.contains("BUG:"))
        .cloned()
        .collect();
    *seen = lines.len();
    new
}

/// Checks that the kernel log has no WARNING or BUG line after line `seen` (which moves past
/// them): "`what`: no kernel WARNING/BUG`why`", with the lines when there are some.
fn no_warnings(c: &mut Checks, kmsg: &mut Kmsg, seen: &mut usize, what: &str, why: &str) {
    let w = warnings(kmsg, seen);
    let found = if w.is_empty() {
        String::new()
    } else {
        format!(": {}", w.join(" | "))
    };
    c.check(
        w.is_empty(),
        format!("{what}: no kernel WARNING/BUG{why}{found}"),
    );
}

/// One device page mapped at two places: two files whose fmaps name the same extent (a
/// server's blobs, famfs ops), and evil_oob's alias flavour (every page of a file at one
/// device page). Declared ranges (kernels/famfs-bpf/README.md): the second file's open fails
/// with EBUSY and a log line naming both nodeids while the first is live, and opens once it is
/// evicted; an alias inside one file's own range is SIGBUS (or, for the right page, the
/// right byte). Never a WARN (fs/dax.c dax_associate_entry: a page already owned by a mapping).
fn alias_pages(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    let mut kmsg = Kmsg::open()?;
    let mut seen = 0;
    let mut a = AreaAlloc::new(READ_AREA);
    let am = simple_map(&mut a, &[(0, 2 * MIB)], 2 * MIB).context("read area full")?;
    let bm = simple_map(&mut a, &[(0, 2 * MIB)], 2 * MIB).context("read area full")?;
    let dev_off = match &am.extents {
        famfs_fmap::Extents::Simple(e) => e.first().map(|e| e.offset),
        famfs_fmap::Extents::Interleaved(_) => None,
    }
    .context("no simple extent")?;
    // 1. two files, one extent: b's blob is a's map
    let mut spec = Spec::new(&ctx.ops()?, ctx.slots(1)?)
        .file("a", am.clone())
        .file("b", bm);
    spec.blob_dir = true;
    let mut fs = Famfs::start(ctx, spec)?;
    fs.write_blob("b", &famfs_fmap::encode(&am))?;
    fs.set_map("b", am.clone());
    let want = fs.expected("a", 0, 1)?[0];
    let ino = |name: &str| {
        std::fs::metadata(fs.path(name))
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .with_context(|| format!("stat {name}"))
    };
    let (ino_a, ino_b) = (ino("a")?, ino("b")?);
    let fa = sys::open(&fs.path("a"), false).map_err(|e| anyhow::anyhow!("open a: errno {e}"))?;
    let ma = Mapping::shared(&fa, 0, (2 * MIB) as usize, false).context("mmap a")?;
    ma.advise(libc::MADV_NOHUGEPAGE)?;
    c.touch("two files: a's page 0", ma.ptr(), want);
    // Declared ranges (kernels/famfs-bpf/README.md): one owner per device page, so the open of
    // b, whose extent a's live fmap holds, fails with EBUSY and a log line naming both nodeids.
    let fb = sys::open(&fs.path("b"), false);
    c.errno(
        "two files: open of b (a's extent) while a is live",
        &fb,
        libc::EBUSY,
    );
    let refused = format!("nodeid {ino_b}: ");
    let holder = format!("overlaps nodeid {ino_a} ");
    let lines = kmsg.lines().to_vec();
    c.check(
        lines
            .iter()
            .any(|l| l.contains("dax_fmap:") && l.contains(&refused) && l.contains(&holder)),
        format!(
            "two files: a log line says nodeid {ino_b}'s range overlaps nodeid {ino_a}'s: {:?}",
            lines
                .iter()
                .filter(|l| l.contains("dax_fmap"))
                .collect::<Vec<_>>()
        ),
    );
    c.touch(
        "two files: a's page 0 after b's refused open",
        ma.ptr(),
        want,
    );
    no_warnings(&mut c, &mut kmsg, &mut seen, "two files on one extent", "");
    // Once a is evicted its ranges are free: b opens and maps the extent.
    drop((ma, fa));
    fs.settle_and_drop_caches()?;
    let fb = sys::open(&fs.path("b"), false)
        .map_err(|e| anyhow::anyhow!("open b after a's eviction: errno {e}"))?;
    let mb = Mapping::shared(&fb, 0, (2 * MIB) as usize, false).context("mmap b")?;
    mb.advise(libc::MADV_NOHUGEPAGE)?;
    c.touch("two files: b's page 0 after a was evicted", mb.ptr(), want);
    drop((mb, fb));
    fs.stop()?;
    // 2. evil_oob alias: every page of the file at its extent's first page
    let mut spec = Spec::new("evil_oob", ctx.slots(1)?).file("evil", am.clone());
    spec.args = vec![
        "--evil".into(),
        "alias".into(),
        "--evil-addr".into(),
        dev_off.to_string(),
    ];
    let fs = Famfs::start(ctx, spec)?;
    let f =
        sys::open(&fs.path("evil"), false).map_err(|e| anyhow::anyhow!("open evil: errno {e}"))?;
    let m = Mapping::shared(&f, 0, (2 * MIB) as usize, false).context("mmap")?;
    m.advise(libc::MADV_NOHUGEPAGE)?;
    let p0 = fs.expected("evil", 0, 4096)?;
    c.touch("alias: page 0", m.ptr(), p0[0]);
    for k in [1usize, 7] {
        let o = k * 4096 + 5;
        let got = sys::probe_read_here(m.ptr().wrapping_add(o))?;
        c.check(
            got == Access::Ok(p0[5]) || got == Access::Signal(libc::SIGBUS),
            format!("alias: page {k} (device page of page 0) reads page 0's byte or SIGBUS: {got}"),
        );
    }
    no_warnings(
        &mut c,
        &mut kmsg,
        &mut seen,
        "one device page at three file pages",
        "",
    );
    drop((m, f));
    fs.stop()?;
    // 3. two slots naming one device, the alias slot resolved first: a file on slot 0 over the
    //    bytes a file on slot 1 holds is still refused (one range tree per device).
    let mut slots = ctx.slots(1)?;
    let first = match slots.get(&0) {
        Some(Target::Dax(n)) => n.clone(),
        _ => bail!("no slot 0"),
    };
    slots.insert(1, Target::Dax(first.clone()));
    let mut xm = am.clone();
    if let famfs_fmap::Extents::Simple(v) = &mut xm.extents {
        for e in v.iter_mut() {
            e.dev_index = 1;
        }
    }
    let spec = Spec::new(&ctx.ops()?, slots)
        .file("x", xm)
        .file("y", am.clone());
    let fs = Famfs::start(ctx, spec)?;
    let fx = sys::open(&fs.path("x"), false).map_err(|e| anyhow::anyhow!("open x: errno {e}"))?;
    let mx = Mapping::shared(&fx, 0, (2 * MIB) as usize, false).context("mmap x")?;
    mx.advise(libc::MADV_NOHUGEPAGE)?;
    c.touch(
        format!("two slots: x (slot 1 = {first}) page 0"),
        mx.ptr(),
        want,
    );
    let fy = sys::open(&fs.path("y"), false);
    c.errno(
        format!("two slots: open of y (slot 0 = {first}, x's bytes) while x is live"),
        &fy,
        libc::EBUSY,
    );
    no_warnings(&mut c, &mut kmsg, &mut seen, "two slots, one device", "");
    drop((mx, fx));
    fs.stop()?;
    Ok(c.outcome())
}
