//! The host's part of a case: bytes written into a CXL backing file before
//! boot, and bytes checked in the backing files after the guest wrote them
//! through a dax device.

use anyhow::{bail, Context, Result};
use famfs_lab_cases::catalog::HostPart;
use famfs_lab_cases::devices::DeviceMap;
use famfs_lab_cases::pattern;
use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

/// Backing files by topology device id.
pub type Backings = BTreeMap<String, PathBuf>;

fn open(backings: &Backings, memdev: &str, write: bool) -> Result<std::fs::File> {
    let path = backings
        .get(memdev)
        .with_context(|| format!("no backing file for device {memdev}"))?;
    std::fs::File::options()
        .read(true)
        .write(write)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))
}

/// Does the before-boot part of `host`, if it has one.
pub fn before_boot(host: &HostPart, backings: &Backings) -> Result<()> {
    if let HostPart::WriteBeforeBoot {
        memdev,
        offset,
        len,
        seed,
    } = *host
    {
        let f = open(backings, memdev, true)?;
        f.write_all_at(&pattern::fill(seed, offset, len as usize), offset)
            .with_context(|| {
                format!("writing the {seed:?} pattern into {memdev}'s backing file")
            })?;
    }
    Ok(())
}

/// Does the after-case part of `host`: reads every byte of the dax range
/// from the backing files (following the interleave) and compares.
pub fn verify_after(
    host: &HostPart,
    map: &DeviceMap,
    backings: &Backings,
) -> Result<Option<String>> {
    let HostPart::VerifyAfter {
        dax,
        offset,
        len,
        seed,
    } = *host
    else {
        return Ok(None);
    };
    let dev = map
        .dax(dax)
        .with_context(|| format!("the guest reported no {dax}"))?;
    let mut pos = offset;
    while pos < offset + len {
        let b = dev
            .backing_of(pos)
            .with_context(|| format!("{dax}+{pos:#x} is outside the device"))?;
        let run = b.run.min(offset + len - pos);
        let mut buf = vec![0u8; run as usize];
        open(backings, &b.memdev, false)?.read_exact_at(&mut buf, b.offset)?;
        if let Some((p, want, got)) = pattern::first_mismatch(seed, pos, &buf) {
            bail!(
                "host check: {dax}+{p:#x} (backing {}+{:#x}) holds {got:#04x}, the guest wrote {want:#04x}",
                b.memdev,
                b.offset + (p - pos)
            );
        }
        pos += run;
    }
    Ok(Some(format!(
        "host check: {len} bytes of {dax}+{offset:#x} match in the backing files"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use famfs_lab_cases::devices::{DaxDevice, Target};

    fn map() -> DeviceMap {
        DeviceMap {
            memdevs: vec![],
            dax: vec![DaxDevice {
                name: "dax0.0".into(),
                region: "r".into(),
                kernel_region: "region0".into(),
                size: 1 << 20,
                hpa: 0,
                region_hpa: 0,
                ways: 2,
                granularity: 4096,
                targets: vec![
                    Target {
                        memdev: "a".into(),
                        dpa: 0,
                    },
                    Target {
                        memdev: "b".into(),
                        dpa: 0,
                    },
                ],
            }],
        }
    }

    #[test]
    fn verifies_across_interleaved_backings_and_catches_a_flipped_byte() {
        let d = tempfile::tempdir().unwrap();
        let mut backings = Backings::new();
        for id in ["a", "b"] {
            let p = d.path().join(id);
            std::fs::File::create(&p).unwrap().set_len(1 << 20).unwrap();
            backings.insert(id.into(), p);
        }
        let m = map();
        let (offset, len, seed) = (1000u64, 10_000u64, "s");
        // Write like the guest would: through the interleave.
        for pos in offset..offset + len {
            let b = m.dax[0].backing_of(pos).unwrap();
            open(&backings, &b.memdev, true)
                .unwrap()
                .write_all_at(&[pattern::byte(seed, pos)], b.offset)
                .unwrap();
        }
        let host = HostPart::VerifyAfter {
            dax: "dax0.0",
            offset,
            len,
            seed,
        };
        assert!(verify_after(&host, &m, &backings).unwrap().is_some());
        let b = m.dax[0].backing_of(offset + 5000).unwrap();
        open(&backings, &b.memdev, true)
            .unwrap()
            .write_all_at(&[!pattern::byte(seed, offset + 5000)], b.offset)
            .unwrap();
        let msg = verify_after(&host, &m, &backings).unwrap_err().to_string();
        assert!(msg.contains(&format!("{:#x}", offset + 5000)), "{msg}");
    }

    #[test]
    fn before_boot_writes_the_pattern() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m");
        std::fs::File::create(&p).unwrap().set_len(1 << 20).unwrap();
        let backings = Backings::from([("m".to_string(), p.clone())]);
        before_boot(
            &HostPart::WriteBeforeBoot {
                memdev: "m",
                offset: 4096,
                len: 16,
                seed: "q",
            },
            &backings,
        )
        .unwrap();
        let mut buf = [0u8; 16];
        std::fs::File::open(&p)
            .unwrap()
            .read_exact_at(&mut buf, 4096)
            .unwrap();
        assert_eq!(buf.to_vec(), pattern::fill("q", 4096, 16));
    }
}
