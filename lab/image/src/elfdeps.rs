//! Shared-library closure of ELF files, found by parsing them (goblin), never by running
//! them (`ldd` executes the binary).
//!
//! For each object: its `PT_INTERP` and every `DT_NEEDED` entry, looked up like ld.so does
//! (`DT_RPATH` if there is no `DT_RUNPATH`, then `DT_RUNPATH`, then the default directories;
//! `$ORIGIN` expanded; objects of another ELF class/machine skipped), recursively. Each is
//! placed in the guest at the path it was found at; a symlink on the way (e.g.
//! `/lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2`) is kept as a
//! symlink and its target copied too.

use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use crate::tree::resolve_lexical;
use crate::{io_err, ImageError, Result};

/// What the dynamic linker needs from an ELF file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfInfo {
    pub interpreter: Option<String>,
    pub needed: Vec<String>,
    pub rpath: Vec<String>,
    pub runpath: Vec<String>,
    pub is_64: bool,
    pub machine: u16,
}

pub fn is_elf(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x7fELF")
}

/// Parses the dynamic-linking facts of an ELF image.
pub fn parse(bytes: &[u8]) -> std::result::Result<ElfInfo, String> {
    let elf = goblin::elf::Elf::parse(bytes).map_err(|e| e.to_string())?;
    let split = |v: &[&str]| -> Vec<String> {
        v.iter()
            .flat_map(|s| s.split(':'))
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    };
    Ok(ElfInfo {
        interpreter: elf.interpreter.map(String::from),
        needed: elf.libraries.iter().map(|s| s.to_string()).collect(),
        rpath: split(&elf.rpaths),
        runpath: split(&elf.runpaths),
        is_64: elf.is_64,
        machine: elf.header.e_machine,
    })
}

/// One thing to put into the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    File {
        guest: String,
        host: PathBuf,
        perm: u32,
        data: Arc<Vec<u8>>,
    },
    Symlink {
        guest: String,
        host: PathBuf,
        target: String,
    },
}

impl Resolved {
    pub fn guest(&self) -> &str {
        match self {
            Resolved::File { guest, .. } | Resolved::Symlink { guest, .. } => guest,
        }
    }
}

/// Collects the library closure of any number of root objects.
pub struct Resolver {
    search_dirs: Vec<String>,
    processed: BTreeSet<String>,
    emitted: BTreeSet<String>,
    queue: VecDeque<(String, PathBuf, Arc<Vec<u8>>)>,
    out: Vec<Resolved>,
}

impl Resolver {
    pub fn new(search_dirs: &[String]) -> Self {
        Resolver {
            search_dirs: search_dirs.to_vec(),
            processed: BTreeSet::new(),
            emitted: BTreeSet::new(),
            queue: VecDeque::new(),
            out: Vec::new(),
        }
    }

    /// Resolves the closure of an object that is already in the image at `guest` (read from
    /// `host`). Non-ELF data and objects without dynamic dependencies add nothing.
    pub fn add_root(&mut self, guest: &str, host: &Path, data: Arc<Vec<u8>>) -> Result<()> {
        self.emitted.insert(guest.to_owned());
        self.queue
            .push_back((guest.to_owned(), host.to_owned(), data));
        while let Some((guest, host, data)) = self.queue.pop_front() {
            if self.processed.insert(guest.clone()) {
                self.process(&guest, &host, &data)?;
            }
        }
        Ok(())
    }

    /// Everything found, in discovery order, each guest path once.
    pub fn finish(self) -> Vec<Resolved> {
        self.out
    }

    fn process(&mut self, guest: &str, host: &Path, data: &[u8]) -> Result<()> {
        if !is_elf(data) {
            return Ok(());
        }
        let info = parse(data).map_err(|message| ImageError::Elf {
            path: host.into(),
            message,
        })?;
        let who = || match host.to_string_lossy() {
            h if h == guest => guest.to_owned(),
            h => format!("{guest} (host {h})"),
        };
        if let Some(interp) = &info.interpreter {
            if !Path::new(interp).exists() {
                return Err(missing(who(), interp, vec![interp.clone()], host));
            }
            self.add_chain(PathBuf::from(interp), interp.clone())?;
        }
        let guest_dir = parent(guest);
        let host_dir = host
            .parent()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut dirs: Vec<String> = Vec::new();
        if info.runpath.is_empty() {
            dirs.extend(info.rpath.iter().cloned());
        }
        dirs.extend(info.runpath.iter().cloned());
        for lib in &info.needed {
            if lib.contains('/') {
                return Err(ImageError::Elf {
                    path: host.into(),
                    message: format!("DT_NEEDED {lib} is a path; only plain sonames are supported"),
                });
            }
            let mut searched = Vec::new();
            let mut found = None;
            let default_dirs = self.search_dirs.iter().map(|d| (d.clone(), d.clone()));
            let candidates = dirs
                .iter()
                .map(|d| expand_origin(d, &host_dir, &guest_dir))
                .chain(default_dirs);
            for (hdir, gdir) in candidates {
                let hpath = PathBuf::from(format!("{hdir}/{lib}"));
                searched.push(hdir.clone());
                if compatible(&hpath, &info) {
                    found = Some((hpath, resolve_lexical(&gdir, lib)));
                    break;
                }
            }
            let Some((hpath, gpath)) = found else {
                return Err(missing(who(), lib, searched, host));
            };
            self.add_chain(hpath, gpath)?;
        }
        Ok(())
    }

    /// Adds `guest` (read from `host`), following symlinks: each link is emitted as a
    /// symlink, the final regular file is emitted and queued for its own dependencies.
    fn add_chain(&mut self, mut host: PathBuf, mut guest: String) -> Result<()> {
        for _ in 0..40 {
            let meta = std::fs::symlink_metadata(&host).map_err(io_err(&host))?;
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&host).map_err(io_err(&host))?;
                let target = target.to_string_lossy().into_owned();
                if self.emitted.insert(guest.clone()) {
                    self.out.push(Resolved::Symlink {
                        guest: guest.clone(),
                        host: host.clone(),
                        target: target.clone(),
                    });
                }
                let host_dir = host.parent().map(|p| p.to_string_lossy().into_owned());
                host = PathBuf::from(resolve_lexical(&host_dir.unwrap_or_default(), &target));
                guest = resolve_lexical(&parent(&guest), &target);
                continue;
            }
            if !self.emitted.insert(guest.clone()) {
                return Ok(()); // already emitted (and queued) earlier
            }
            let data = Arc::new(std::fs::read(&host).map_err(io_err(&host))?);
            let perm = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777;
            self.out.push(Resolved::File {
                guest: guest.clone(),
                host: host.clone(),
                perm,
                data: data.clone(),
            });
            self.queue.push_back((guest, host, data));
            return Ok(());
        }
        Err(ImageError::Elf {
            path: host,
            message: "too many levels of symlinks".into(),
        })
    }
}

/// The library closure of one host binary that would sit at the same guest path.
pub fn resolve_deps(binary: &Path, search_dirs: &[String]) -> Result<Vec<Resolved>> {
    let data = Arc::new(std::fs::read(binary).map_err(io_err(binary))?);
    let mut r = Resolver::new(search_dirs);
    r.add_root(&binary.to_string_lossy(), binary, data)?;
    Ok(r.finish())
}

fn parent(guest: &str) -> String {
    match guest.rfind('/') {
        Some(0) | None => "/".into(),
        Some(i) => guest[..i].into(),
    }
}

fn expand_origin(dir: &str, host_dir: &str, guest_dir: &str) -> (String, String) {
    let sub = |base: &str| dir.replace("${ORIGIN}", base).replace("$ORIGIN", base);
    (sub(host_dir), sub(guest_dir))
}

/// Exists, is (or links to) a regular file, and is an ELF of the requester's class/machine.
fn compatible(path: &Path, want: &ElfInfo) -> bool {
    use std::io::Read;
    let mut head = [0u8; 20];
    let ok = std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head));
    if ok.is_err() || !is_elf(&head) {
        return false;
    }
    let is_64 = head[4] == 2;
    let machine = if head[5] == 2 {
        u16::from_be_bytes([head[18], head[19]])
    } else {
        u16::from_le_bytes([head[18], head[19]])
    };
    is_64 == want.is_64 && machine == want.machine
}

fn missing(binary: String, library: &str, searched: Vec<String>, host: &Path) -> ImageError {
    ImageError::MissingLibrary {
        binary,
        library: library.to_owned(),
        searched,
        hint: package_hint(host, library),
    }
}

/// Best effort advice on which Debian package to install; never fails.
pub fn package_hint(binary: &Path, library: &str) -> String {
    let lib_name = library.rsplit('/').next().unwrap_or(library);
    let mut hint = match dpkg_search(&format!("*/{lib_name}")) {
        Some((pkg, path)) => format!(
            "dpkg knows {path} from package {pkg}, outside the search path (add its directory \
             to library_dirs)"
        ),
        None if library.contains("ld-linux") => "install it with `apt-get install libc6`".into(),
        None => format!(
            "install the package that ships it, probably `apt-get install {}` (Debian naming \
             guess)",
            debian_lib_package(lib_name)
        ),
    };
    let owner = dpkg_search(&binary.to_string_lossy()).or_else(|| {
        let s = binary.to_string_lossy();
        s.strip_prefix("/usr").and_then(dpkg_search)
    });
    if let Some((pkg, _)) = owner {
        hint.push_str(&format!(
            "; {} is from package {pkg}: `apt-get install --reinstall {pkg}` pulls in its \
             dependencies",
            binary.display()
        ));
    }
    hint
}

/// `dpkg -S pattern` -> first (package, path); None if dpkg is absent or knows nothing.
fn dpkg_search(pattern: &str) -> Option<(String, String)> {
    let out = Command::new("dpkg").arg("-S").arg(pattern).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| !l.starts_with("diversion"))?;
    let (pkgs, path) = line.split_once(": ")?;
    let pkg = pkgs.split(',').next()?.trim();
    let pkg = pkg.split(':').next().unwrap_or(pkg);
    Some((pkg.to_owned(), path.trim().to_owned()))
}

/// Debian policy 8.1 naming: `libfoo.so.1` -> `libfoo1`, `libfoo2.so.3` -> `libfoo2-3`.
pub fn debian_lib_package(soname: &str) -> String {
    let Some((stem, ver)) = soname.split_once(".so") else {
        return soname.to_lowercase();
    };
    let ver = ver.trim_start_matches('.');
    let stem = stem.to_lowercase().replace('_', "-");
    match (stem.chars().last(), ver) {
        (_, "") => stem,
        (Some(c), v) if c.is_ascii_digit() => format!("{stem}-{v}"),
        (_, v) => format!("{stem}{v}"),
    }
}
