//! The host's part of `lab up --shadow DIR [--daxdev-data INDEX=FILE]` (see
//! [`lab_suite::user_tree`]): check the tree before anything boots, copy it into the
//! results share, and after setup write the device bytes its fmaps use into the backing files
//! and what every file must read.

use crate::host_bytes::{self, Backings};
use anyhow::{bail, Context, Result};
use famfs_shadow::ShadowTree;
use lab_suite::devices::DeviceMap;
use lab_suite::expect::{self, Piece, Slots};
use lab_suite::pattern;
use lab_suite::user_tree::{
    self as ut, blocks, Expectation, FileExpect, BLOCK, EXPECT_FILE, TREE_DIR,
};
use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

/// A user's shadow tree and the device images that give its bytes.
#[derive(Debug, Clone)]
pub struct UserTree {
    pub dir: PathBuf,
    /// daxdevs.yaml index -> a file holding that device's bytes from dax offset 0.
    pub data: BTreeMap<u32, PathBuf>,
}

/// Parses one `--daxdev-data INDEX=FILE`.
pub fn parse_data_arg(arg: &str) -> Result<(u32, PathBuf)> {
    let Some((index, file)) = arg.split_once('=') else {
        bail!(
            "--daxdev-data {arg:?}: expected INDEX=FILE, e.g. 0=dev0.img \
             (FILE holds the bytes of the daxdevs.yaml device INDEX from its offset 0)"
        );
    };
    let index: u32 = index.trim().parse().with_context(|| {
        format!("--daxdev-data {arg:?}: {index:?} is not a daxdevs.yaml index (0..23)")
    })?;
    if file.is_empty() {
        bail!("--daxdev-data {arg:?}: no file after '='");
    }
    Ok((index, PathBuf::from(file)))
}

impl UserTree {
    /// Loads and validates the tree (every error with its file and line) and checks the data
    /// files: what must pass before a kernel is built or a guest booted.
    pub fn check(&self) -> Result<ShadowTree> {
        if !self.dir.is_dir() {
            bail!(
                "--shadow {}: not a directory (a shadow tree holds daxdevs.yaml and root/; \
                 `cargo xtask shadow new` makes one)",
                self.dir.display()
            );
        }
        let tree = famfs_shadow::load(&self.dir)
            .map_err(|e| anyhow::anyhow!("--shadow {}: {e}", self.dir.display()))?;
        self.check_data(&tree)?;
        Ok(tree)
    }

    /// Every `--daxdev-data` index is a device of `tree` and its file opens.
    pub fn check_data(&self, tree: &ShadowTree) -> Result<()> {
        for (i, path) in &self.data {
            if tree.daxdevs.get(*i).is_none() {
                bail!(
                    "--daxdev-data {i}={}: daxdevs.yaml of {} has no index {i} (it has {:?})",
                    path.display(),
                    self.dir.display(),
                    tree.daxdevs.0.keys().collect::<Vec<_>>()
                );
            }
            File::open(path).with_context(|| format!("--daxdev-data {i}={}", path.display()))?;
        }
        Ok(())
    }

    /// Copies the tree into `results/user-shadow` (the guest's `/results/user-shadow`).
    pub fn stage(&self, results: &Path) -> Result<()> {
        let to = results.join(TREE_DIR);
        let _ = std::fs::remove_dir_all(&to);
        copy_tree(&self.dir, &to)
    }

    /// After setup: writes the bytes of every file's fmap into the backing files, then what
    /// each file must read into `results/user-shadow-expect.json`. Returns a note.
    pub fn prepare(
        &self,
        tree: &ShadowTree,
        map: &DeviceMap,
        backings: &Backings,
        results: &Path,
    ) -> Result<String> {
        let slots = ut::slots(&tree.daxdevs, map)?;
        let mut data = BTreeMap::new();
        for (i, p) in &self.data {
            let f = File::open(p).with_context(|| format!("--daxdev-data {i}={}", p.display()))?;
            data.insert(*i, (p.clone(), f));
        }
        // Opened once: a CXL-interleaved device splits a file into a piece per granule.
        let open: BTreeMap<&str, File> = backings
            .keys()
            .map(|m| Ok((m.as_str(), host_bytes::open(backings, m, true)?)))
            .collect::<Result<_>>()?;
        let mut written = 0u64;
        for f in &tree.files {
            for p in pieces(&f.path, &f.map, &slots, 0, f.map.file_size)? {
                written += fill_piece(&f.path, &p, data.get(&p.slot), &open)?;
            }
        }
        let mut files = Vec::new();
        for f in &tree.files {
            let mut crc32 = Vec::new();
            for b in 0..blocks(f.map.file_size, BLOCK) {
                let off = b as u64 * BLOCK;
                let len = BLOCK.min(f.map.file_size - off);
                let mut h = crc32fast::Hasher::new();
                for p in pieces(&f.path, &f.map, &slots, off, len)? {
                    h.update(&read_backing(&p, &open)?);
                }
                crc32.push(h.finalize());
            }
            files.push(FileExpect {
                path: f.path.clone(),
                size: f.map.file_size,
                crc32,
            });
        }
        let n = files.len();
        let e = Expectation {
            block: BLOCK,
            files,
        };
        let path = results.join(EXPECT_FILE);
        std::fs::write(&path, serde_json::to_string(&e)?)
            .with_context(|| format!("writing {}", path.display()))?;
        let from = if self.data.is_empty() {
            "the lab's pattern".to_string()
        } else {
            format!(
                "--daxdev-data for indexes {:?}, the pattern elsewhere",
                self.data.keys().collect::<Vec<_>>()
            )
        };
        Ok(format!(
            "user tree {}: {n} files, {written} device bytes written from {from}",
            self.dir.display()
        ))
    }
}

fn pieces(
    rel: &str,
    map: &famfs_fmap::FileMap,
    slots: &Slots,
    off: u64,
    len: u64,
) -> Result<Vec<Piece>> {
    expect::pieces(map, slots, off, len).with_context(|| format!("file {rel}"))
}

/// Writes one piece's bytes (from the device image if there is one, else the pattern).
fn fill_piece(
    rel: &str,
    p: &Piece,
    data: Option<&(PathBuf, File)>,
    open: &BTreeMap<&str, File>,
) -> Result<u64> {
    const STEP: u64 = 1 << 20;
    let out = backing(open, &p.memdev)?;
    let mut buf = vec![0u8; STEP.min(p.len) as usize];
    let mut done = 0;
    while done < p.len {
        let n = STEP.min(p.len - done) as usize;
        let dax_off = p.dax_off + done;
        match data {
            Some((path, f)) => f.read_exact_at(&mut buf[..n], dax_off).with_context(|| {
                format!(
                    "--daxdev-data {}={}: file {rel} needs its bytes {dax_off:#x}..{:#x}, \
                     the file is shorter",
                    p.slot,
                    path.display(),
                    dax_off + n as u64
                )
            })?,
            None => pattern::fill_into(&ut::pattern_seed(&p.dax), dax_off, &mut buf[..n]),
        }
        out.write_all_at(&buf[..n], p.backing_off + done)
            .with_context(|| format!("writing {}'s backing file", p.memdev))?;
        done += n as u64;
    }
    Ok(p.len)
}

fn read_backing(p: &Piece, open: &BTreeMap<&str, File>) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; p.len as usize];
    backing(open, &p.memdev)?
        .read_exact_at(&mut buf, p.backing_off)
        .with_context(|| {
            format!(
                "reading {}'s backing file at {:#x}+{:#x}",
                p.memdev, p.backing_off, p.len
            )
        })?;
    Ok(buf)
}

fn backing<'a>(open: &'a BTreeMap<&str, File>, memdev: &str) -> Result<&'a File> {
    open.get(memdev)
        .with_context(|| format!("no backing file for device {memdev}"))
}

/// Copies directories and regular files; anything else is an error naming it. Directories keep
/// their mode and owner: they are the file system's directories (the share passes them through).
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    let md = std::fs::metadata(from).with_context(|| format!("reading {}", from.display()))?;
    std::os::unix::fs::chown(to, Some(md.uid()), Some(md.gid()))
        .with_context(|| format!("giving {} the owner of {}", to.display(), from.display()))?;
    std::fs::set_permissions(to, md.permissions())
        .with_context(|| format!("giving {} the mode of {}", to.display(), from.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let ty = entry.file_type()?;
        if ty.is_dir() {
            copy_tree(&src, &dst)?;
        } else if ty.is_file() {
            std::fs::copy(&src, &dst)
                .with_context(|| format!("copying {} to {}", src.display(), dst.display()))?;
        } else {
            bail!(
                "{}: not a directory or a regular file (a shadow tree holds only those)",
                src.display()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use famfs_shadow::{generate, DaxDev, DaxDevs, GenerateParams};
    use std::os::unix::fs::PermissionsExt;

    fn guest_map(size: u64) -> DeviceMap {
        // The region starts 1 MiB into the backing file.
        DeviceMap::one_device(size, 0x1000_0000, 4096, "mem0", 1 << 20)
    }

    struct Fixture {
        _tmp: tempfile::TempDir,
        tree_dir: PathBuf,
        backings: Backings,
        results: PathBuf,
        tree: ShadowTree,
    }

    fn fixture(files: usize) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let tree_dir = tmp.path().join("tree");
        let mut devices = DaxDevs::default();
        devices.0.insert(
            0,
            DaxDev {
                path: "/dev/dax0.0".into(),
                size: Some(64 << 20),
            },
        );
        let params = GenerateParams {
            files,
            sizes: vec![3 << 20, 5000],
            devices,
            ..GenerateParams::default()
        };
        let tree = generate(&params).unwrap();
        famfs_shadow::write(&tree, &tree_dir).unwrap();
        let backing = tmp.path().join("mem0.raw");
        File::create(&backing).unwrap().set_len(80 << 20).unwrap();
        let results = tmp.path().join("results");
        std::fs::create_dir_all(&results).unwrap();
        Fixture {
            tree_dir,
            backings: [("mem0".to_string(), backing)].into_iter().collect(),
            results,
            tree,
            _tmp: tmp,
        }
    }

    fn expectation(results: &Path) -> Expectation {
        serde_json::from_str(&std::fs::read_to_string(results.join(EXPECT_FILE)).unwrap()).unwrap()
    }

    fn crc_of(bytes: &[u8]) -> u32 {
        crc32fast::hash(bytes)
    }

    #[test]
    fn data_args_parse_and_bad_ones_say_the_form() {
        assert_eq!(
            parse_data_arg("2=/tmp/d.img").unwrap(),
            (2, PathBuf::from("/tmp/d.img"))
        );
        for bad in ["d.img", "x=d.img", "0="] {
            let e = parse_data_arg(bad).unwrap_err().to_string();
            assert!(e.contains("--daxdev-data"), "{bad}: {e}");
        }
        assert!(parse_data_arg("d.img")
            .unwrap_err()
            .to_string()
            .contains("INDEX=FILE"));
    }

    #[test]
    fn pattern_fill_lands_at_the_backing_offsets_and_the_crcs_match_it() {
        let fx = fixture(3);
        let ut = UserTree {
            dir: fx.tree_dir.clone(),
            data: BTreeMap::new(),
        };
        let tree = ut.check().unwrap();
        assert_eq!(tree.files.len(), 3);
        let map = guest_map(64 << 20);
        let note = ut.prepare(&tree, &map, &fx.backings, &fx.results).unwrap();
        assert!(note.contains("3 files"), "{note}");
        let e = expectation(&fx.results);
        assert_eq!(e.files.len(), 3);
        let slots = ut::slots(&tree.daxdevs, &map).unwrap();
        let backing = std::fs::read(&fx.backings["mem0"]).unwrap();
        for (f, x) in tree.files.iter().zip(&e.files) {
            assert_eq!(x.size, f.map.file_size);
            assert_eq!(x.crc32.len(), blocks(x.size, BLOCK));
            // What the guest must read: the pattern at the dax offsets.
            let want: Vec<u8> = expect::pieces(&f.map, &slots, 0, x.size)
                .unwrap()
                .iter()
                .flat_map(|p| pattern::fill(&ut::pattern_seed(&p.dax), p.dax_off, p.len as usize))
                .collect();
            for (i, crc) in x.crc32.iter().enumerate() {
                let (off, len) = x.block_range(BLOCK, i);
                assert_eq!(*crc, crc_of(&want[off as usize..(off + len) as usize]));
            }
            // ... and the backing file holds it 1 MiB further (the region's DPA).
            let p = &expect::pieces(&f.map, &slots, 0, 1).unwrap()[0];
            assert_eq!(p.backing_off, p.dax_off + (1 << 20));
            assert_eq!(backing[p.backing_off as usize], want[0]);
        }
    }

    #[test]
    fn device_image_bytes_are_copied_from_the_dax_offsets() {
        let fx = fixture(2);
        let img = fx.tree_dir.parent().unwrap().join("dev0.img");
        let bytes: Vec<u8> = (0..(16u32 << 20)).map(|i| (i * 7 + 3) as u8).collect();
        std::fs::write(&img, &bytes).unwrap();
        let ut = UserTree {
            dir: fx.tree_dir.clone(),
            data: [(0, img)].into_iter().collect(),
        };
        let map = guest_map(64 << 20);
        ut.prepare(&fx.tree, &map, &fx.backings, &fx.results)
            .unwrap();
        let slots = ut::slots(&fx.tree.daxdevs, &map).unwrap();
        let e = expectation(&fx.results);
        for (f, x) in fx.tree.files.iter().zip(&e.files) {
            let mut want = Vec::new();
            for p in expect::pieces(&f.map, &slots, 0, x.size).unwrap() {
                want.extend_from_slice(&bytes[p.dax_off as usize..(p.dax_off + p.len) as usize]);
            }
            assert_eq!(x.crc32[0], crc_of(&want[..BLOCK.min(x.size) as usize]));
        }
    }

    #[test]
    fn a_short_device_image_is_an_error_naming_file_and_range() {
        let fx = fixture(2);
        let img = fx.tree_dir.parent().unwrap().join("short.img");
        std::fs::write(&img, [1u8; 4096]).unwrap();
        let ut = UserTree {
            dir: fx.tree_dir.clone(),
            data: [(0, img)].into_iter().collect(),
        };
        let e = format!(
            "{:#}",
            ut.prepare(&fx.tree, &guest_map(64 << 20), &fx.backings, &fx.results)
                .unwrap_err()
        );
        assert!(
            e.contains("--daxdev-data 0=") && e.contains("shorter"),
            "{e}"
        );
    }

    #[test]
    fn an_invalid_tree_is_refused_with_file_and_line() {
        let fx = fixture(1);
        let f = &fx.tree.files[0];
        let yaml = fx.tree_dir.join("root").join(&f.path);
        let text = std::fs::read_to_string(&yaml).unwrap();
        // A size its extents do not cover.
        let bad: String = text
            .lines()
            .map(|l| match l.split_once("size:") {
                Some((indent, _)) if indent.trim().is_empty() => {
                    format!("{indent}size: {}\n", 1u64 << 40)
                }
                _ => format!("{l}\n"),
            })
            .collect();
        assert_ne!(bad, text, "the generated YAML has no size line:\n{text}");
        std::fs::write(&yaml, bad).unwrap();
        let ut = UserTree {
            dir: fx.tree_dir.clone(),
            data: BTreeMap::new(),
        };
        let e = ut.check().unwrap_err().to_string();
        assert!(e.contains(&format!("{}:", yaml.display())), "{e}");
    }

    #[test]
    fn data_for_an_index_the_tree_lacks_is_refused() {
        let fx = fixture(1);
        let ut = UserTree {
            dir: fx.tree_dir.clone(),
            data: [(5, fx.tree_dir.join("daxdevs.yaml"))]
                .into_iter()
                .collect(),
        };
        let e = ut.check().unwrap_err().to_string();
        assert!(e.contains("no index 5"), "{e}");
    }

    #[test]
    fn the_tree_is_copied_into_the_share_and_loads_there() {
        let fx = fixture(2);
        let ut = UserTree {
            dir: fx.tree_dir.clone(),
            data: BTreeMap::new(),
        };
        let sub = fx.tree_dir.join("root").join("d");
        std::fs::create_dir(&sub).unwrap();
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o1750)).unwrap();
        let tree = ut.check().unwrap();
        ut.stage(&fx.results).unwrap();
        let copy = famfs_shadow::load(&fx.results.join(TREE_DIR)).unwrap();
        assert_eq!(copy, tree);
        assert!(copy.dirs.iter().any(|d| d.path == "d" && d.mode == 0o1750));
    }
}
