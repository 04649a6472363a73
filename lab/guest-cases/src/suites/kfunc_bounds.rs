//! `open.kfunc_bounds`: the parse kfuncs' own bounds, which the lab's well-behaved parsers
//! never reach (they check lengths and slots before asking). `evil_oob --evil kfunc-bounds`
//! asks for a blob view that starts inside the blob and ends past it, one at its end, the same
//! two for the meta buffer, and slots 24 and 31; a kfunc that hands any of them out fails the
//! parse with an errno naming it. When every kfunc refuses, the parse goes on like famfs and
//! the file opens and reads its bytes.

use crate::harness::check::Checks;
use crate::harness::famfs::{Ctx, Famfs, Spec};
use crate::Outcome;
use anyhow::{Context, Result};
use lab_suite::expect::{simple_map, AreaAlloc, MIB, READ_AREA};

/// What each errno of the kfunc-bounds parse says was handed out (evil_oob.bpf.c).
fn handed_out(errno: i32) -> Option<&'static str> {
    match errno {
        libc::EBADE => Some(
            "bpf_fuse_dax_parse_get_blob returned a view that ends past the blob the server \
             sent (8 bytes at blob_size - 4, or 1 byte at blob_size)",
        ),
        libc::EBADR => Some(
            "bpf_fuse_dax_parse_get_meta returned a view that ends past the meta buffer \
             (8 bytes at meta_size - 4, or 1 byte at meta_size)",
        ),
        libc::EXFULL => Some(
            "bpf_fuse_dax_parse_set_dev accepted slot 24 or 31 (FUSE_DAX_FMAP_MAX_DEVS is 24): \
             expected -EINVAL",
        ),
        _ => None,
    }
}

pub fn kfunc_bounds(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    let mut a = AreaAlloc::new(READ_AREA);
    let map = simple_map(&mut a, &[(0, 2 * MIB)], 2 * MIB).context("read area full")?;
    let mut spec = Spec::new("evil_oob", ctx.slots(1)?).file("f", map);
    spec.args = vec!["--evil".into(), "kfunc-bounds".into()];
    let fs = Famfs::start(ctx, spec)?;
    for what in ["first open", "second open"] {
        let opened = crate::system::sys::open(&fs.path("f"), false);
        match opened.as_ref().err().copied().and_then(handed_out) {
            Some(kfunc) => c.fail(format!("{what}: {kfunc}")),
            None => drop(c.open_and_check(&fs, "f", 2 * MIB)?),
        }
    }
    fs.stop()?;
    Ok(c.outcome())
}

#[cfg(test)]
mod tests {
    use super::handed_out;

    /// The errnos evil_oob.bpf.c returns for a kfunc that handed out what it must refuse:
    /// each names its kfunc, and an ordinary open failure is not mistaken for one.
    #[test]
    fn each_probe_errno_names_its_kfunc() {
        let src = include_str!("../../../famfs-fused/bpf/evil_oob.bpf.c");
        for (define, errno, kfunc) in [
            ("EVIL_EBADE", libc::EBADE, "get_blob"),
            ("EVIL_EBADR", libc::EBADR, "get_meta"),
            ("EVIL_EXFULL", libc::EXFULL, "set_dev"),
        ] {
            assert!(
                src.contains(&format!("#define {define} {errno}")),
                "evil_oob.bpf.c defines {define} as {errno}"
            );
            assert!(handed_out(errno).is_some_and(|m| m.contains(kfunc)));
        }
        assert_eq!(handed_out(libc::EINVAL), None);
        assert_eq!(handed_out(libc::EIO), None);
    }
}
