//! The open suite: what opening an fmap file sends and how it fails.

use crate::harness::blobs::{self, BAD_FILE_SIZE};
use crate::harness::check::Checks;
use crate::harness::famfs::{Ctx, Famfs, FileSpec, Spec, Target, NATIVE_MODULE};
use crate::system::sys::{self, Kmsg, Trace};
use crate::Outcome;
use anyhow::{bail, Context, Result};
use famfs_fmap::{decode, encode};
use lab_suite::expect::{simple_map, AreaAlloc, MIB, READ_AREA};
use std::sync::{Arc, Barrier};
use std::time::Duration;

pub fn run(name: &str, ctx: &mut Ctx<'_>) -> Result<Outcome> {
    match name {
        "first_open_counts" => first_open_counts(ctx),
        "notify_inval_inode" => crate::suites::notify::inval_inode(ctx),
        "concurrent_first_open" => concurrent_first_open(ctx),
        "malformed_blobs" => malformed_blobs(ctx),
        "reject_all" => reject_all(ctx),
        "parse_errno_clamped" => parse_errno_clamped(ctx),
        "parse_no_ranges" => crate::suites::ranges::parse_no_ranges(ctx),
        "parse_no_size" => crate::suites::ranges::parse_no_size(ctx),
        "kfunc_bounds" => crate::suites::kfunc_bounds::kfunc_bounds(ctx),
        "size_limits" => size_limits(ctx),
        "init_unregistered_ops" => init_unregistered_ops(ctx),
        "directory_unaffected" => directory_unaffected(ctx),
        "server_killed" => crate::suites::shared::server_killed(ctx),
        "struct_ops_attached" => struct_ops_attached(ctx),
        _ => bail!("no open case {name:?}"),
    }
}

fn first_open_counts(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    let mut slots = ctx.slots(2)?;
    let first = match slots.get(&0) {
        Some(Target::Dax(n)) => n.clone(),
        _ => bail!("no slot 0"),
    };
    let two = slots.len() == 2;
    // One more slot naming the first device again: its own GET_DAXDEV, a shared holder.
    let alias = slots.len() as u32;
    slots.insert(alias, Target::Dax(first.clone()));
    let mut a = AreaAlloc::new(READ_AREA);
    let mut spec = Spec::new(&ctx.ops()?, slots);
    for (rel, slot) in [("a", 0), ("b", 0), ("c", 1), ("alias", alias)] {
        if rel == "c" && !two {
            continue;
        }
        // The alias slot names slot 0's device: its bytes come from slot 0's allocation, since
        // declared ranges refuse (EBUSY) a file on bytes another live file holds, whatever slot
        // names them.
        let from = if rel == "alias" { 0 } else { slot };
        let mut map =
            simple_map(&mut a, &[(from, 2 * MIB)], 2 * MIB - 1000).context("area full")?;
        if let famfs_fmap::Extents::Simple(v) = &mut map.extents {
            for e in v.iter_mut() {
                e.dev_index = slot;
            }
        }
        spec = spec.file(rel, map);
    }
    let trace = Trace::new(&[
        "fuse_dax_fmap/fuse_dax_get_fmap",
        "fuse_dax_fmap/fuse_dax_get_daxdev",
    ])?;
    if trace.is_none() {
        c.note(
            "no fuse_dax_fmap tracepoints in this kernel: counts come from the server's stats only",
        );
    }
    let fs = Famfs::start(ctx, spec)?;
    let s0 = fs.stats()?;
    c.eq("GET_FMAP before any open", s0.fmap_total()?, 0);
    let fa = c.open_and_check(&fs, "a", 4096)?;
    let s = fs.stats()?;
    c.eq("first open of a: GET_FMAP for a", s.fmap("a")?, 1);
    c.eq("first open of a: GET_DAXDEV for slot 0", s.daxdev(0)?, 1);
    c.eq("first open of a: GET_DAXDEV in all", s.daxdev_total()?, 1);
    let fa2 = c.open_and_check(&fs, "a", 4096)?;
    drop((fa, fa2));
    let fa3 = c.open_and_check(&fs, "a", 4096)?;
    drop(fa3);
    let s = fs.stats()?;
    c.eq("two more opens of a: GET_FMAP for a", s.fmap("a")?, 1);
    c.eq(
        "two more opens of a: GET_DAXDEV in all",
        s.daxdev_total()?,
        1,
    );
    let fb = c.open_and_check(&fs, "b", 4096)?;
    let s = fs.stats()?;
    c.eq("b on the same device: GET_FMAP for b", s.fmap("b")?, 1);
    c.eq(
        "b on the same device: GET_DAXDEV in all",
        s.daxdev_total()?,
        1,
    );
    drop(fb);
    let mut want_dax = 1;
    if two {
        let fc = c.open_and_check(&fs, "c", 4096)?;
        let s = fs.stats()?;
        c.eq("c on a second device: GET_FMAP for c", s.fmap("c")?, 1);
        c.eq(
            "c on a second device: GET_DAXDEV for slot 1",
            s.daxdev(1)?,
            1,
        );
        want_dax += 1;
        drop(fc);
    } else {
        c.note("one dax device in this topology: no file on a second device");
    }
    let fx = c.open_and_check(&fs, "alias", 4096)?;
    let s = fs.stats()?;
    c.eq(
        format!("a second slot ({alias}) naming {first}: GET_DAXDEV for it"),
        s.daxdev(alias)?,
        1,
    );
    want_dax += 1;
    drop(fx);
    for rel in ["a", "b", "alias"] {
        drop(c.open_and_check(&fs, rel, 1)?);
    }
    let s = fs.stats()?;
    c.eq(
        "after reopening everything: GET_DAXDEV in all",
        s.daxdev_total()?,
        want_dax,
    );
    let files = if two { 4 } else { 3 };
    c.eq(
        "after reopening everything: GET_FMAP in all",
        s.fmap_total()?,
        files,
    );
    if let Some(t) = &trace {
        let lines = t.lines()?;
        let n = |ev: &str| lines.iter().filter(|l| l.contains(ev)).count() as u64;
        c.eq(
            "tracepoint fuse_dax_get_fmap events",
            n("fuse_dax_get_fmap:"),
            s.fmap_total()?,
        );
        c.eq(
            "tracepoint fuse_dax_get_daxdev events",
            n("fuse_dax_get_daxdev:"),
            s.daxdev_total()?,
        );
    }
    fs.stop()?;
    Ok(c.outcome())
}

fn concurrent_first_open(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    const THREADS: usize = 16;
    const ROUNDS: usize = 10;
    let mut c = Checks::new();
    let mut a = AreaAlloc::new(READ_AREA);
    let map = simple_map(&mut a, &[(0, 2 * MIB)], 2 * MIB).context("area full")?;
    // A big meta (60 KiB) per fetch, so that leaked ones would show in MemAvailable.
    let spec = Spec::new(&ctx.ops()?, ctx.slots(1)?)
        .file("f", map)
        .arg("--meta-size")
        .arg("61440");
    let fs = Famfs::start(ctx, spec)?;
    let path = fs.path("f");
    let want: Vec<Vec<u8>> = (0..THREADS)
        .map(|t| fs.expected("f", t as u64 * 4096, 4096))
        .collect::<Result<_>>()?;
    let want = Arc::new(want);
    let mut discarded = 0u64;
    let mut mem_start = 0u64;
    // The kernel's own count of what it sent and parsed, against the server's count.
    let trace = Trace::new(&[
        "fuse_dax_fmap/fuse_dax_get_fmap",
        "fuse_dax_fmap/fuse_dax_fmap_parse",
    ])?;
    if trace.is_none() {
        c.note("no fuse_dax_fmap tracepoints in this kernel: GET_FMAP counted by the server only");
    }
    for round in 0..=ROUNDS {
        fs.settle_and_drop_caches()?;
        if round == 1 {
            mem_start = sys::meminfo_kib("MemAvailable")?;
        }
        if let Some(t) = &trace {
            t.clear()?;
        }
        let before = fs.stats()?.fmap("f")?;
        let barrier = Arc::new(Barrier::new(THREADS));
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (barrier, path, want) = (barrier.clone(), path.clone(), want.clone());
                std::thread::spawn(move || -> std::result::Result<bool, i32> {
                    barrier.wait();
                    let f = sys::open(&path, false)?;
                    let got = sys::pread(&f, t as u64 * 4096, 4096)?;
                    Ok(got == want[t])
                })
            })
            .collect();
        let mut bad = Vec::new();
        for (t, h) in handles.into_iter().enumerate() {
            match h.join() {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => bad.push(format!("thread {t}: wrong bytes")),
                Ok(Err(e)) => bad.push(format!("thread {t}: {}", sys::errno_name(e))),
                Err(_) => bad.push(format!("thread {t} panicked")),
            }
        }
        let fetched = fs.stats()?.fmap("f")? - before;
        if let Some(t) = &trace {
            let lines = t.lines()?;
            let count = |ev: &str| lines.iter().filter(|l| l.contains(ev)).count() as u64;
            c.eq(
                format!(
                    "round {round}: GET_FMAP the kernel sent (tracepoint) = the server answered"
                ),
                count("fuse_dax_get_fmap:"),
                fetched,
            );
            c.eq(
                format!("round {round}: every fetched fmap parsed once (fuse_dax_fmap_parse)"),
                count("fuse_dax_fmap_parse:"),
                fetched,
            );
        }
        c.check(
            bad.is_empty(),
            format!(
                "round {round}: {THREADS} concurrent opens and reads: {}",
                if bad.is_empty() {
                    "all right".into()
                } else {
                    bad.join(", ")
                }
            ),
        );
        c.check(
            (1..=THREADS as u64).contains(&fetched),
            format!("round {round}: {fetched} GET_FMAP (1..={THREADS}: a first open each round)"),
        );
        if round > 0 {
            discarded += fetched.saturating_sub(1);
        }
    }
    fs.settle_and_drop_caches()?;
    std::thread::sleep(Duration::from_millis(200));
    let mem_end = sys::meminfo_kib("MemAvailable")?;
    let lost = mem_start.saturating_sub(mem_end);
    println!("MemAvailable {mem_start} KiB -> {mem_end} KiB over {ROUNDS} rounds; {discarded} racing fetches built a meta that lost the race");
    if discarded == 0 {
        c.note(
            "no two first opens overlapped in any round: the leak check covers no discarded meta",
        );
    }
    // A leaked 60 KiB meta per discarded fetch would be discarded x 64 KiB.
    c.check(
        lost < 4096,
        format!(
            "no meta leaked: MemAvailable dropped {lost} KiB (a leak would be ~{} KiB)",
            discarded * 64
        ),
    );
    fs.stop()?;
    Ok(c.outcome())
}

fn malformed_blobs(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    let table = blobs::malformed(READ_AREA.start);
    let mut a = AreaAlloc::new(READ_AREA);
    let shadow_map =
        simple_map(&mut a, &[(0, BAD_FILE_SIZE)], BAD_FILE_SIZE).context("area full")?;
    let mut spec = Spec::new(&ctx.ops()?, ctx.slots(1)?);
    for b in &table {
        let mut f = FileSpec::new(&format!("bad/{}", b.name), shadow_map.clone());
        f.shared = true;
        spec.files.push(f);
    }
    spec.blob_dir = true;
    let mut fs = Famfs::start(ctx, spec)?;
    for b in &table {
        fs.write_blob(&format!("bad/{}", b.name), &b.blob)?;
    }
    for b in &table {
        let rel = format!("bad/{}", b.name);
        let before = fs.stats()?;
        let r = sys::open(&fs.path(&rel), false);
        c.errno(format!("{} ({} bytes)", b.name, b.blob.len()), &r, b.errno);
        let after = fs.stats()?;
        c.eq(
            format!("{}: GET_FMAP", b.name),
            after.fmap(&rel)? - before.fmap(&rel)?,
            1,
        );
        if b.errno != 0 {
            c.eq(
                format!("{}: GET_DAXDEV after a failed parse", b.name),
                after.daxdev_total()? - before.daxdev_total()?,
                0,
            );
        } else if let Ok(f) = r {
            fs.set_map(&rel, decode(&b.blob)?);
            let got = sys::pread(&f, 0, 8192).map_err(|e| anyhow::anyhow!("pread: errno {e}"))?;
            c.bytes(
                format!("{}: bytes", b.name),
                0,
                &got,
                &fs.expected(&rel, 0, 8192)?,
            );
            // The valid controls share their bytes: evict this one (declared ranges: a live
            // inode holds its bytes) before the next one opens.
            drop(f);
            fs.settle_and_drop_caches()?;
        }
    }
    let s = fs.stats()?;
    c.eq(
        "the server answered every OPEN and GET_FMAP (the kernel refused the blobs)",
        (s.errors("OPEN")?, s.errors("GET_FMAP")?),
        (0, 0),
    );
    fs.stop()?;
    Ok(c.outcome())
}

/// A parse that fails with an errno user space must never see: ERESTARTSYS (512),
/// ERESTARTNOHAND (514), ENOIOCTLCMD (515), ERESTART_RESTARTBLOCK (516), MAX_ERRNO (4095).
/// open(2) must fail with an ordinary errno (below 512), and return.
fn parse_errno_clamped(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    let mut a = AreaAlloc::new(READ_AREA);
    let map = simple_map(&mut a, &[(0, 2 * MIB)], 2 * MIB).context("area full")?;
    for errno in [512, 514, 515, 516, 4095] {
        let mut spec = Spec::new("reject_all", ctx.slots(1)?).file("f", map.clone());
        spec.args = vec!["--reject-errno".into(), errno.to_string()];
        let fs = Famfs::start(ctx, spec)?;
        let what = format!("parse returns -{errno}: open");
        match sys::open_in_child(&fs.path("f"), Duration::from_secs(10))? {
            sys::ChildOpen::Returned(0) => c.fail(format!("{what} succeeded")),
            sys::ChildOpen::Returned(e) if e < 512 => {
                c.pass(format!("{what}: {} (an ordinary errno)", sys::errno_name(e)))
            }
            sys::ChildOpen::Returned(e) => c.fail(format!(
                "{what} failed with errno {e}: the parse's kernel-internal -{errno} reached user space unclamped"
            )),
            sys::ChildOpen::TimedOut { reaped } => c.fail(format!(
                "{what} did not return within 10 s (the parse's -{errno} reached the syscall exit and restarts the open){}",
                if reaped { "" } else { "; the opener could not be killed either" }
            )),
        }
        c.check(
            fs.stats()?.fmap("f")? >= 1,
            format!("parse returns -{errno}: GET_FMAP was sent"),
        );
        fs.stop()?;
    }
    // A positive return (reject_all returns -(int)0xffffffff = 1) is no errno at all: the
    // kernel must turn it into EIO, never hand 1 back as the result of ->open.
    let mut spec = Spec::new("reject_all", ctx.slots(1)?).file("f", map);
    spec.args = vec!["--reject-errno".into(), u32::MAX.to_string()];
    let fs = Famfs::start(ctx, spec)?;
    sys::ratelimit_quiet();
    let mut kmsg = Kmsg::open()?;
    let what = "parse returns 1: open";
    match sys::open_in_child(&fs.path("f"), Duration::from_secs(10))? {
        sys::ChildOpen::Returned(e) => c.eq(what, sys::errno_name(e), sys::errno_name(libc::EIO)),
        sys::ChildOpen::TimedOut { .. } => c.check(false, format!("{what}: no return within 10 s")),
    };
    let want = "dax_fmap_parse returned 1";
    c.check(
        kmsg.wait_for(want, Duration::from_secs(3)).is_some(),
        format!("a kernel log line containing {want:?}"),
    );
    fs.stop()?;
    Ok(c.outcome())
}

fn reject_all(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    for (errno, args) in [
        (libc::EPERM, vec![]),
        (
            libc::ENODATA,
            vec!["--reject-errno".to_string(), libc::ENODATA.to_string()],
        ),
    ] {
        let mut a = AreaAlloc::new(READ_AREA);
        let map = simple_map(&mut a, &[(0, 2 * MIB)], 2 * MIB - 1).context("area full")?;
        let mut spec = Spec::new("reject_all", ctx.slots(1)?)
            .file("f", map.clone())
            .file("d/g", map);
        spec.files[0].shared = true;
        spec.files[1].shared = true;
        spec.args = args;
        let fs = Famfs::start(ctx, spec)?;
        let tag = sys::errno_name(errno);
        for n in 1..=2u64 {
            let r = sys::open(&fs.path("f"), false);
            c.errno(format!("reject_all ({tag}): open #{n}"), &r, errno);
            c.eq(
                format!("reject_all ({tag}): GET_FMAP after open #{n}"),
                fs.stats()?.fmap("f")?,
                n,
            );
        }
        c.errno(
            format!("reject_all ({tag}): open d/g"),
            &sys::open(&fs.path("d/g"), false),
            errno,
        );
        c.eq(
            format!("reject_all ({tag}): GET_DAXDEV"),
            fs.stats()?.daxdev_total()?,
            0,
        );
        c.eq(
            format!("reject_all ({tag}): stat f size"),
            sys::size_of(&fs.path("f")),
            Ok(2 * MIB - 1),
        );
        let mut names: Vec<String> = std::fs::read_dir(&fs.mnt)?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        names.sort();
        c.eq(
            format!("reject_all ({tag}): readdir of the root"),
            names,
            vec!["d".to_string(), "f".to_string()],
        );
        c.check(
            std::fs::File::open(fs.path("d")).is_ok(),
            format!("reject_all ({tag}): open of directory d works"),
        );
        fs.stop()?;
    }
    Ok(c.outcome())
}

fn size_limits(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    let mut a = AreaAlloc::new(READ_AREA);
    let map = simple_map(&mut a, &[(0, 2 * MIB)], 2 * MIB).context("area full")?;
    let blob_len = encode(&map).len();
    let extra = |total: usize| vec!["--blob-extra".to_string(), (total - blob_len).to_string()];
    let meta = |n: u32| vec!["--meta-size".to_string(), n.to_string()];
    // (what, server flags, the open's errno, parses the kernel runs: a reply refused before
    // the parse must never reach the ops)
    let scenarios: Vec<(&str, Vec<String>, i32, usize)> = vec![
        ("meta_size 65536 (the limit)", meta(65536), 0, 1),
        ("meta_size 65537", meta(65537), libc::E2BIG, 0),
        ("meta_size 0", meta(0), libc::EINVAL, 0),
        (
            "blob 65536 bytes (at the limit; 8 trailing bytes or more: the parse refuses)",
            extra(65536),
            libc::EINVAL,
            1,
        ),
        ("blob 65537 bytes", extra(65537), libc::E2BIG, 0),
        ("blob 131072 bytes", extra(131072), libc::E2BIG, 0),
        (
            "blob 131073 bytes (refused by the FUSE core)",
            extra(131073),
            libc::EIO,
            0,
        ),
    ];
    let trace = Trace::new(&["fuse_dax_fmap/fuse_dax_fmap_parse"])?;
    if trace.is_none() {
        c.note("no fuse_dax_fmap tracepoints in this kernel: parses not counted");
    }
    for (what, args, want, parses) in scenarios {
        if let Some(t) = &trace {
            t.clear()?;
        }
        let mut spec = Spec::new(&ctx.ops()?, ctx.slots(1)?).file("f", map.clone());
        spec.args = args;
        let fs = Famfs::start(ctx, spec)?;
        let r = sys::open(&fs.path("f"), false);
        c.errno(what, &r, want);
        if let Ok(f) = r {
            let got = sys::pread(&f, 0, 4096).map_err(|e| anyhow::anyhow!("pread: errno {e}"))?;
            c.bytes(
                format!("{what}: bytes"),
                0,
                &got,
                &fs.expected("f", 0, 4096)?,
            );
        }
        c.eq(format!("{what}: GET_FMAP"), fs.stats()?.fmap("f")?, 1);
        if let Some(t) = &trace {
            let n = t
                .lines()?
                .iter()
                .filter(|l| l.contains("fuse_dax_fmap_parse:"))
                .count();
            c.eq(format!("{what}: parses (tracepoint)"), n, parses);
        }
        fs.stop()?;
    }
    Ok(c.outcome())
}

fn init_unregistered_ops(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    if sys::module_loaded(NATIVE_MODULE) {
        let _ = sys::run("modprobe", &["-r", NATIVE_MODULE]);
    }
    if sys::module_loaded(NATIVE_MODULE) {
        return Ok(Outcome::Skip(format!(
            "famfs_native is registered ({NATIVE_MODULE} is loaded and cannot be removed): the server can name no unregistered ops"
        )));
    }
    let mut a = AreaAlloc::new(READ_AREA);
    let map = simple_map(&mut a, &[(0, 2 * MIB)], 2 * MIB).context("area full")?;
    let mut spec = Spec::new("famfs_native", ctx.slots(1)?).file("f", map);
    spec.load_native = false;
    let mut kmsg = Kmsg::open()?;
    match Famfs::try_start(ctx, spec)? {
        Ok(fs) => {
            let loaded = sys::module_loaded(NATIVE_MODULE);
            drop(fs);
            if loaded {
                return Ok(Outcome::Skip(format!(
                    "the kernel loaded {NATIVE_MODULE} on demand, so famfs_native was registered at INIT: no unregistered name the server can send"
                )));
            }
            c.fail("the mount succeeded although no ops \"famfs_native\" are registered");
        }
        Err(fail) => {
            c.eq(
                "server exit status",
                fail.status.and_then(|s| s.code()),
                Some(1),
            );
            c.check(
                fail.log.contains("INIT") || fail.log.contains("dmesg"),
                format!(
                    "the server says the kernel refused INIT: {}",
                    fail.log.trim()
                ),
            );
        }
    }
    let want = "dax_fmap ops \"famfs_native\" not registered";
    match kmsg.wait_for(want, Duration::from_secs(5)) {
        Some(l) => c.pass(format!("kernel log: {l}")),
        None => c.fail(format!("no kernel log line containing {want:?}")),
    }
    let mounts = std::fs::read_to_string("/proc/self/mounts")?;
    c.check(
        !mounts.lines().any(|l| l.contains(&ctx.id)),
        "no mount of this case is left behind",
    );
    Ok(c.outcome())
}

fn directory_unaffected(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    let mut a = AreaAlloc::new(READ_AREA);
    let f1 = simple_map(&mut a, &[(0, 2 * MIB)], 12345).context("area full")?;
    let f2 = simple_map(&mut a, &[(0, 2 * MIB)], 2 * MIB).context("area full")?;
    let mut spec = Spec::new(&ctx.ops()?, ctx.slots(1)?)
        .file("d0/d1/f", f1)
        .file("d0/g", f2);
    spec.dirs.push("empty".into());
    let fs = Famfs::start(ctx, spec)?;
    let list = |rel: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(fs.path(rel))
            .map(|d| {
                d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_else(|e| vec![format!("error: {e}")]);
        v.sort();
        v
    };
    c.eq(
        "readdir /",
        list(""),
        vec!["d0".to_string(), "empty".to_string()],
    );
    c.eq(
        "readdir d0",
        list("d0"),
        vec!["d1".to_string(), "g".to_string()],
    );
    c.eq("readdir d0/d1", list("d0/d1"), vec!["f".to_string()]);
    c.eq("readdir empty", list("empty"), Vec::<String>::new());
    for d in ["", "d0", "d0/d1", "empty"] {
        c.check(fs.path(d).is_dir(), format!("stat {d:?}: a directory"));
        c.errno(
            format!("open {d:?} O_RDONLY|O_DIRECTORY"),
            &sys::open_flags(&fs.path(d), false, libc::O_DIRECTORY),
            0,
        );
        c.errno(
            format!("open {d:?} for writing"),
            &sys::open(&fs.path(d), true),
            libc::EISDIR,
        );
    }
    c.eq(
        "stat d0/d1/f size",
        sys::size_of(&fs.path("d0/d1/f")),
        Ok(12345),
    );
    c.eq(
        "GET_FMAP after directory operations and stats",
        fs.stats()?.fmap_total()?,
        0,
    );
    drop(c.open_and_check(&fs, "d0/g", 4096)?);
    c.eq(
        "GET_FMAP after opening one file",
        fs.stats()?.fmap_total()?,
        1,
    );
    fs.stop()?;
    Ok(c.outcome())
}

/// The server's BPF ops are a struct_ops map `bpftool struct_ops list` shows for as long as the
/// mount lives (the link is the server's), and gone after the unmount.
fn struct_ops_attached(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    let ops = ctx.ops()?;
    let mut a = AreaAlloc::new(READ_AREA);
    let m = simple_map(&mut a, &[(0, 2 * MIB)], 2 * MIB).context("area full")?;
    let list = || sys::run("bpftool", &["struct_ops", "list"]);
    let (ok, before) = list();
    if !ok {
        bail!("bpftool struct_ops list failed (is bpftool in the image?): {before}");
    }
    let fs = Famfs::start(ctx, Spec::new(&ops, ctx.slots(1)?).file("f", m))?;
    let (_, during) = list();
    println!("bpftool struct_ops list, mounted:\n{during}");
    let ours = |out: &str| {
        out.lines()
            .filter(|l| l.contains("fuse_dax_fmap_ops"))
            .count()
    };
    if ops == "famfs_native" {
        c.eq(
            "fuse_dax_fmap_ops maps with the native (C) ops",
            ours(&during),
            ours(&before),
        );
    } else {
        c.eq(
            "fuse_dax_fmap_ops maps while mounted",
            ours(&during),
            ours(&before) + 1,
        );
    }
    let got = sys::open(&fs.path("f"), false).map(|_| ());
    c.errno("open through the attached ops", &got, 0);
    fs.stop()?;
    let (_, after) = list();
    c.eq(
        "fuse_dax_fmap_ops maps after the unmount",
        ours(&after),
        ours(&before),
    );
    Ok(c.outcome())
}
