//! Every case the lab knows: its suite, name, timeout, what it needs, and
//! the host's part in it (bytes the host writes before boot or checks
//! after the case). The guest binary implements the cases; the host runner
//! reads this table to plan, skip, time out and reproduce them.

/// What the host does around a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostPart {
    None,
    /// Before boot, the host writes pattern `seed` into `memdev`'s backing
    /// file at `offset` (the guest then checks it).
    WriteBeforeBoot {
        memdev: &'static str,
        offset: u64,
        len: u64,
        seed: &'static str,
    },
    /// After the case, the host checks that `dax` bytes `offset..+len` hold
    /// pattern `seed` in the backing files.
    VerifyAfter {
        dax: &'static str,
        offset: u64,
        len: u64,
        seed: &'static str,
    },
    /// The fmap suites: before boot the host fills the first `fill_head` bytes (and the tail) of
    /// every backing file's share of each region with the fill pattern (see [`crate::expect`]),
    /// before any case's own writes; after the case it checks the ranges the case listed in
    /// `<case-id>.verify.json` ([`crate::verify`]). A run fills the largest `fill_head` of its
    /// cases.
    FmapPattern {
        fill_head: u64,
    },
    /// `smoke.region_bytes`: before boot the host fills the first `fill_head` (and the last
    /// [`crate::expect::FILL_TAIL`]) bytes of every device's share of each region, as for the
    /// fmap suites but on any kernel; after the case it checks the case's verify file.
    RegionFill {
        fill_head: u64,
    },
    /// `lab up --shadow DIR`: after setup the host writes the device bytes of the user's tree
    /// and what each of its files must read ([`crate::user_tree`]); no fill.
    UserTree,
    /// `bpf_selftests`: before boot the host stages the kernel's compiled BPF selftests and
    /// their manifest in the results share ([`crate::bpf_selftests`]); after the case it
    /// reports each program as a case of its own.
    BpfSelftests,
}

/// What the outcome is expected to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Pass,
    /// The case hangs on purpose: a timeout is its pass (reported XFAIL).
    Timeout,
}

/// A kernel feature a case needs; without it the case is SKIP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    Nothing,
    /// The famfs-bpf series (FUSE_DAX_FMAP).
    FmapKernel,
    /// The famfs-bpf series and its BPF selftests in the kernel tree
    /// (`tools/testing/selftests/bpf/progs/fuse_dax_fmap*.c`), compiled with the kernel.
    BpfSelftests,
}

/// Which guests a case runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hosts {
    /// One guest: every suite but `shared`; run on one-host topologies.
    One,
    /// The guests of a multi-host topology (`hosts: 2`), in steps: the roles of a step run at
    /// once, each on its host (`famfs-lab-cases run ID` with `FAMFS_LAB_ROLE`,
    /// `FAMFS_LAB_HOST` and `FAMFS_LAB_HOSTS` set); the next step starts when all have ended.
    Shared(&'static [&'static [Role]]),
}

/// One guest's part in a step of a [`Hosts::Shared`] case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Role {
    /// Index of the guest (0-based, `RUN/host<N>`).
    pub host: u32,
    pub role: &'static str,
    /// The role ends its guest on purpose (a panic): the guest dying is its pass, and it
    /// takes no later part in the run.
    pub ends_guest: bool,
}

/// Guests a [`Hosts::Shared`] case needs: the highest host index + 1.
pub fn hosts_needed(hosts: &Hosts) -> u32 {
    match hosts {
        Hosts::One => 1,
        Hosts::Shared(steps) => steps
            .iter()
            .flat_map(|s| s.iter())
            .map(|r| r.host + 1)
            .max()
            .unwrap_or(1),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    pub suite: &'static str,
    pub name: &'static str,
    pub about: &'static str,
    pub timeout_s: u64,
    pub expect: Expect,
    pub needs: Needs,
    pub host: HostPart,
    pub hosts: Hosts,
}

impl Case {
    /// `suite.name`, the form `--case` takes.
    pub fn id(&self) -> String {
        format!("{}.{}", self.suite, self.name)
    }
}

/// A suite and whether `lab up` runs it when no `--suite` is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suite {
    pub name: &'static str,
    pub default: bool,
    pub about: &'static str,
}

pub const SMOKE_GUEST_WRITE: HostPart = HostPart::VerifyAfter {
    dax: "dax0.0",
    offset: 4 << 20,
    len: 64 << 10,
    seed: "smoke-guest-write",
};
pub const SMOKE_HOST_WRITE: HostPart = HostPart::WriteBeforeBoot {
    memdev: "mem0",
    offset: 6 << 20,
    len: 64 << 10,
    seed: "smoke-host-write",
};

/// The host's part of `smoke.region_bytes`: a fill deep enough for the bytes it reads.
pub const SMOKE_REGION_FILL: HostPart = HostPart::RegionFill { fill_head: 1 << 20 };

pub const SUITES: &[Suite] = &[
    Suite {
        name: "smoke",
        default: true,
        about: "CXL memdevs, regions, devdax data path, fsdev_dax binding",
    },
    Suite {
        name: "selftest",
        default: false,
        about: "the lab's own failure handling: hang, panic, failure",
    },
    Suite {
        name: "bpf_selftests",
        default: true,
        about: "the kernel tree's BPF selftests of fuse_dax_fmap_ops, each program loaded as annotated (one case per program)",
    },
    Suite {
        name: "open",
        default: true,
        about: "fmap open: GET_FMAP/GET_DAXDEV counts, races, malformed blobs, limits, INIT",
    },
    Suite {
        name: "fault",
        default: true,
        about:
            "fmap data path: PTE/PMD faults, read/write, EOF, private/shared, fork, differential",
    },
    Suite {
        name: "truncate",
        default: true,
        about: "size changes refused and accepted, re-fetch, size mismatch, O_TRUNC",
    },
    Suite {
        name: "security",
        default: true,
        about: "hostile BPF ops never map outside the devices; fmap needs CAP_SYS_RAWIO",
    },
    Suite {
        name: "device_missing",
        default: true,
        about: "absent, wrong, wrongly bound, unbound and failing dax devices",
    },
    Suite {
        name: "stress",
        default: false,
        about: "threads of random faults, reads and writes over 64 files (FAMFS_LAB_STRESS_SECS)",
    },
    Suite {
        name: "shared",
        default: false,
        about: "two guests on one CXL device: same tree, cross-host bytes, a ring, a dead server, a dead peer (multi-host topologies run it by default)",
    },
    Suite {
        name: "fuzz",
        default: false,
        about: "10,000 generated blobs through the kernel's parse (FAMFS_LAB_FUZZ_N)",
    },
    Suite {
        name: "shadow",
        default: false,
        about: "a shadow tree you bring: `lab up --shadow DIR [--daxdev-data INDEX=FILE]`",
    },
    Suite {
        name: "bench",
        default: false,
        about: "fault-path benchmark: raw timings for `cargo xtask lab bench fault` (FAMFS_LAB_BENCH_FAULT)",
    },
];

const fn case(suite: &'static str, name: &'static str, about: &'static str) -> Case {
    Case {
        suite,
        name,
        about,
        timeout_s: 30,
        expect: Expect::Pass,
        needs: Needs::Nothing,
        host: HostPart::None,
        hosts: Hosts::One,
    }
}

pub const CASES: &[Case] = &[
    case(
        "smoke",
        "memdevs",
        "every topology device is a CXL memdev of the planned size",
    ),
    case(
        "smoke",
        "regions",
        "every planned region exists and has a dax device of its size",
    ),
    Case {
        host: SMOKE_GUEST_WRITE,
        ..case(
            "smoke",
            "devdax_guest_write",
            "bytes written through a devdax mapping reach the host's backing file",
        )
    },
    Case {
        host: SMOKE_HOST_WRITE,
        ..case(
            "smoke",
            "devdax_host_write",
            "bytes the host wrote before boot are read through a devdax mapping",
        )
    },
    Case {
        host: SMOKE_REGION_FILL,
        ..case(
            "smoke",
            "region_bytes",
            "every region: the host's bytes read at both ends of its dax devices, the guest's found in the backing files",
        )
    },
    case(
        "smoke",
        "fsdev_bind",
        "each dax device rebinds from device_dax to fsdev_dax; fsdev refuses mmap",
    ),
    Case {
        timeout_s: 2,
        expect: Expect::Timeout,
        ..case(
            "smoke",
            "hang_times_out",
            "a case that hangs is stopped at its timeout and the run goes on",
        )
    },
    Case {
        timeout_s: 3,
        ..case("selftest", "hang", "hangs: must be reported TIMEOUT")
    },
    Case {
        timeout_s: 20,
        ..case(
            "selftest",
            "panic",
            "panics the guest through sysrq: must be reported",
        )
    },
    case("selftest", "fail", "fails: must be reported as a failure"),
    case(
        "selftest",
        "flaky",
        "fails one run in two (even runs of the host's FAMFS_LAB_FLAKY_COUNTER file): flaky detection",
    ),
    case(
        "selftest",
        "warn",
        "triggers a kernel WARNING through lkdtm-like sysrq: the splat fails the case",
    ),
    // The kernel tree's BPF selftests of the series (guest side: src/bpf_load.rs); the host
    // stages the objects compiled with the kernel and reports one case per program.
    Case {
        timeout_s: 600,
        needs: Needs::BpfSelftests,
        host: HostPart::BpfSelftests,
        ..case(
            "bpf_selftests",
            "programs",
            "every program of tools/testing/selftests/bpf/progs/fuse_dax_fmap*.c loads or is rejected with the log its annotations expect",
        )
    },
    // The fmap suites (guest side: src/{open,fault,truncate,security,devmissing,stress,fuzz}.rs).
    fmap("open", "notify_inval_inode", 60,
        "FUSE_NOTIFY_INVAL_INODE drops the fmap and its mappings: pages unmapped, one re-fetch, same bytes"),
    fmap("open", "first_open_counts", 90,
        "first open: one GET_FMAP, one GET_DAXDEV per new slot; reopen, a second file and a second slot naming the same device send no more than they must"),
    fmap("open", "concurrent_first_open", 180,
        "16 threads open one file at once, repeatedly: all succeed, same bytes, no meta leaked"),
    fmap("open", "malformed_blobs", 120,
        "every malformed blob class (a self-overlapping fmap included) fails the open with the spec's errno (EINVAL/ERANGE), no GET_DAXDEV"),
    fmap("open", "reject_all", 90,
        "the reject_all ops fail every open with their errno; directories are unaffected"),
    fmap("open", "parse_errno_clamped", 120,
        "a parse failing with -512, -514, -515, -516 or -4095: open returns an ordinary errno; a positive return (1): EIO and the log line"),
    fmap("open", "parse_no_ranges", 60,
        "ops whose parse sets the size and a slot but declares no range: open EINVAL, log line, no GET_DAXDEV"),
    fmap("open", "parse_no_size", 60,
        "ops whose parse declares a slot and ranges but never sets the size: open EINVAL, log line, no GET_DAXDEV"),
    fmap("open", "kfunc_bounds", 60,
        "ops that ask the parse kfuncs for views past the blob or meta buffer and for slots 24 and 31 get NULL and -EINVAL; the file then opens and reads"),
    fmap("open", "size_limits", 150,
        "meta_size/blob above 64 KiB: E2BIG, at 64 KiB: accepted by the limit; meta_size 0: EINVAL"),
    fmap("open", "init_unregistered_ops", 60,
        "INIT naming unregistered ops fails the mount and the kernel log names the ops"),
    fmap("open", "directory_unaffected", 60,
        "directories open, list and stat normally; they never cause GET_FMAP"),
    fmap("open", "struct_ops_attached", 60,
        "the server's BPF ops show in `bpftool struct_ops list` while mounted (as fuse_dax_fmap_ops) and are gone after the unmount"),
    fmap("open", "server_killed", 90,
        "the server is killed with a file open and mapped: ENOTCONN, no oops, the mount goes away, a new server mounts and serves the same bytes"),
    fmap("fault", "read_pte", 120,
        "PTE faults read every extent/chunk edge and random bytes as the model predicts"),
    fmap("fault", "read_pmd", 120,
        "2 MiB-aligned extents and chunks fault as PMDs (fs_dax tracepoint) with the right bytes"),
    fmap("fault", "chunk_straddle", 120,
        "faults, copies and reads across chunk and extent boundaries"),
    fmap("fault", "rw_syscalls", 150,
        "read/pread/write/pwrite through dax_iomap_rw; EOF: short read, short write, ENOSPC"),
    fmap("fault", "mmap_write", 150,
        "writes through PTE and PMD mappings reach the right backing bytes; msync/fsync succeed"),
    fmap("fault", "past_eof_sigbus", 90,
        "the EOF page maps whole; the next page and beyond get SIGBUS, for reads and writes"),
    fmap("fault", "private_mapping", 90,
        "MAP_PRIVATE reads the file; its writes stay private (file and device unchanged)"),
    fmap("fault", "refetch_unlocked", 90,
        "a fault re-fetching dropped metadata waits for the server without the VMA or mmap lock: mprotect of the mapping returns while GET_FMAP is held"),
    fmap("fault", "fork_after_mmap", 90,
        "a child forked after mmap sees the bytes; shared writes are seen, private ones not"),
    fmap("fault", "differential_maplookup", 180,
        "famfs and famfs_maplookup ops give identical bytes, errors and message counts"),
    fmap("fault", "differential_native", 180,
        "famfs and the native famfs_native ops give identical bytes, errors and message counts"),
    fmap("truncate", "refused_default", 90,
        "the default server refuses every size change (EINVAL): size, mappings, bytes unchanged"),
    fmap("truncate", "shrink", 90,
        "--allow-resize shrink: SIGBUS past the new EOF, bytes below intact, one re-fetch"),
    fmap("truncate", "grow", 90,
        "--allow-resize grow within and past the mapped size: the new fmap's bytes, one re-fetch each"),
    fmap("truncate", "o_trunc", 90,
        "open(O_TRUNC) behaves as truncate to 0: EINVAL by default, size 0 with --allow-resize"),
    fmap("truncate", "size_mismatch", 90,
        "an fmap whose size differs from i_size makes the open and every later access EIO"),
    fmap("truncate", "attr_size_changed", 90,
        "GETATTR reports a new size for an open, mapped file (no new fmap): pages mapped before SIGBUS, EIO"),
    fmap("security", "evil_past_end", 120,
        "evil_oob past-end: reads/writes EIO, faults SIGBUS, log line, canaries unchanged"),
    fmap("security", "evil_other_device", 120,
        "evil_oob into a slot the file did not declare: EIO/SIGBUS, other device's bytes unchanged"),
    fmap("security", "evil_overflow", 90,
        "evil_oob addr + length overflowing: EIO/SIGBUS, canaries unchanged"),
    fmap("security", "evil_bad_extents", 150,
        "evil_oob long, zero-length and unmapped-type extents: EIO/SIGBUS each, canaries unchanged"),
    fmap("security", "evil_straddle_end", 90,
        "evil_oob from inside the device to a page past its end: EIO/SIGBUS, device tail unchanged"),
    fmap("security", "evil_other_file", 90,
        "evil_oob at another file's bytes in a slot it declared: EIO/SIGBUS, its bytes unchanged"),
    fmap("security", "evil_short_length", 120,
        "evil_oob lengths of 1..PAGE_SIZE-1: PTE faults SIGBUS without a WARN, reads right or EIO"),
    fmap("security", "evil_chunk_overrun", 90,
        "evil_oob not cutting a mapping at the chunk's end (into the strip's next run): reads/writes across it EIO, log line, the next run unchanged"),
    fmap("security", "evil_misaligned", 120,
        "evil_oob addresses not page aligned like the offset: EIO/SIGBUS, log line"),
    fmap("security", "claim_fmap_unoffered", 60,
        "a server claiming FUSE_DAX_FMAP that was not offered: ignored, a plain FUSE mount"),
    fmap("security", "fuseblk_no_fmap", 60,
        "fuseblk over a loop device, with CAP_SYS_RAWIO: FUSE_DAX_FMAP is not offered (an fmap server's INIT fails); a claim of it is ignored"),
    fmap("security", "alias_pages", 90,
        "one device page mapped by two files, or at many offsets by evil_oob: SIGBUS or the same bytes, no WARN"),
    fmap("security", "unprivileged_no_fmap", 60,
        "without CAP_SYS_RAWIO the kernel does not offer FUSE_DAX_FMAP; a plain mount still works"),
    fmap("security", "daxdev_other_namespace", 60,
        "a first open from another mount namespace (a node bind-mounted over the device path) does not change the slot's device"),
    fmap("security", "daemon_credentials", 90,
        "FUSE_DEV_IOC_DAX_REGISTER checks the server, not the mounter: without CAP_SYS_RAWIO EPERM, a read-only fd EACCES, files ENODEV"),
    fmap("security", "register_misuse", 60,
        "FUSE_DEV_IOC_DAX_REGISTER misused: a filled slot EEXIST, index >= 24 EINVAL, after the unmount ENOTCONN; a GET_DAXDEV reply without a registration fails the open"),
    fmap("security", "notify_store_refused", 60,
        "FUSE_NOTIFY_STORE on an fmap inode is refused; mmap and pread still give the device's bytes"),
    fmap("security", "notify_retrieve_refused", 60,
        "FUSE_NOTIFY_RETRIEVE on an fmap inode is refused; no NOTIFY_REPLY, bytes unchanged"),
    fmap("device_missing", "path_absent", 60,
        "a slot naming a missing path: ENODEV for its files, the others work"),
    fmap("device_missing", "not_a_dax_device", 90,
        "a slot naming /dev/null, a regular file, a directory or a node on a nodev mount: ENODEV, no oops"),
    fmap("device_missing", "device_dax_mode", 60,
        "a dax device left bound to device_dax: ENODEV and an EOPNOTSUPP log line"),
    fmap("device_missing", "second_device_absent", 60,
        "an interleaved file whose second device was never created: ENODEV; first-device files work"),
    fmap("device_missing", "unbind_while_mapped", 120,
        "fsdev_dax unbound under a mapped file: SIGBUS, EIO, ENODEV, clean unmount, rebind works"),
    fmap("device_missing", "memory_failure", 90,
        "poison on one mapped page (MADV_HWPOISON): SIGBUS BUS_MCEERR_AR at its address; other pages, files and the slot keep working"),
    fmap("device_missing", "holder_handover", 90,
        "two mounts of one device in turn: B's open fails while A holds it, works once A unmounted; A remounts"),
    fmap("device_missing", "umount_dirty", 90,
        "dirty shared-mmap pages left for the unmount (fd closed, unmapped): clean bounded unmount, the next mount reads the bytes"),
    fmap("device_missing", "dirty_unbind", 180,
        "fsdev_dax unbound under dirty shared-mmap pages: pages unmapped, msync/fsync/unmount finish, no splat"),
    fmap("device_missing", "poison_read_mapped", 120,
        "QMP cxl-inject-poison under a mapped page: the poison list names its HPA; memory failure there gives SIGBUS BUS_MCEERR_AR at its address; other pages, files and host bytes intact"),
    fmap("device_missing", "poison_list", 120,
        "QMP poison (64 B, a page) in every dax device and a general-media event: cxl_poison / cxl_general_media report the DPAs injected at the HPAs of the device map"),
    fmap("device_missing", "uncorrectable_error", 180,
        "QMP cxl-inject-uncorrectable-errors under a mounted file: the CXL RAS path runs (AER), no hang; what the fs does is recorded; files on other devices work"),
    fmap("device_missing", "device_removed_mapped", 240,
        "QMP device_del of a type-3 device under a dirty mapped file: SIGBUS, EIO/ENODEV, other devices unaffected, unmount completes"),
    Case {
        host: HostPart::FmapPattern { fill_head: crate::expect::STRESS_FILL_HEAD },
        ..fmap("stress", "random_faults", 300,
            "N threads of random faults, reads and writes over 64 files; checksums vs the model and host")
    },
    fmap("fuzz", "parse_blobs", 1200,
        "generated malformed and random blobs: no splat; each open fails as the model says or maps only inside the devices"),
    // The user's tree: the host writes its device bytes after setup and lists what each file
    // must read (src/user_tree.rs), so no fill before boot.
    Case {
        host: HostPart::UserTree,
        ..fmap("shadow", "user_tree", 1800,
            "the tree of --shadow DIR: types, modes, owners, sizes; every file's bytes via mmap and pread vs the host's backing files")
    },
    fmap("bench", "fault", 1800,
        "PTE/PMD/open fault cost per resolver and on the raw device (timings only, no assertions)"),
    // The multi-host suite (guest side: src/shared.rs); host 1 runs after host 0 where the
    // steps are sequential. peer_panic ends host 0, so it comes last.
    shared("same_tree", 120,
        "both guests serve the same shadow tree: names, sizes, modes, owners and fmaps agree",
        &[&[role(0, "list")], &[role(1, "compare")]]),
    shared("cross_host_bytes", 120,
        "bytes stored through an mmap on one guest are read through mmap on the other, both ways; the unflushed read is checked against the platform's model",
        &[&[role(0, "write")], &[role(1, "read")], &[role(1, "write")], &[role(0, "read")]]),
    shared("ring", 300,
        "a producer on guest 0 and a consumer on guest 1 pass N messages (FAMFS_LAB_RING_N) through a ring in a shared file: sequence and CRC checked",
        &[&[role(0, "ring_init")], &[role(0, "produce"), role(1, "consume")]]),
    shared("poison", 180,
        "a media error in the shared device (cxl-inject-poison on each guest's head): each guest's poison list names the same page of the same file; its process gets SIGBUS BUS_MCEERR_AR there, the next page and the host's bytes stay",
        &[&[role(0, "poison_first")], &[role(1, "poison_peer")]]),
    shared("server_killed", 180,
        "guest 0's server is killed with files open: ENOTCONN, clean unmount and remount; guest 1 keeps reading the right bytes meanwhile",
        &[&[role(0, "kill_server"), role(1, "keep_reading")]]),
    shared("peer_panic", 120,
        "guest 0 panics while guest 1 reads: guest 1 finishes its reads with the right bytes",
        &[&[Role { host: 0, role: "panic", ends_guest: true }, role(1, "keep_reading")]]),
];

/// A case of the fmap suites: needs the famfs-bpf kernel, the host's fill and verify files.
const fn fmap(
    suite: &'static str,
    name: &'static str,
    timeout_s: u64,
    about: &'static str,
) -> Case {
    Case {
        suite,
        name,
        about,
        timeout_s,
        expect: Expect::Pass,
        needs: Needs::FmapKernel,
        host: HostPart::FmapPattern {
            fill_head: crate::expect::FILL_HEAD,
        },
        hosts: Hosts::One,
    }
}

const fn role(host: u32, role: &'static str) -> Role {
    Role {
        host,
        role,
        ends_guest: false,
    }
}

/// A case of the `shared` suite: an fmap case over two guests.
const fn shared(
    name: &'static str,
    timeout_s: u64,
    about: &'static str,
    steps: &'static [&'static [Role]],
) -> Case {
    Case {
        hosts: Hosts::Shared(steps),
        ..fmap("shared", name, timeout_s, about)
    }
}

/// Every case, in catalog order.
pub fn all() -> impl Iterator<Item = &'static Case> {
    CASES.iter()
}

/// The case with id `suite.name`.
pub fn find(id: &str) -> Option<&'static Case> {
    all().find(|c| c.id() == id)
}

/// The case that runs `id`: the case itself, or for `bpf_selftests.<program>` (a program the
/// host reports as a case of its own) the suite's one guest case, which loads them all.
pub fn resolve(id: &str) -> Option<&'static Case> {
    find(id).or_else(|| {
        let (suite, program) = id.split_once('.')?;
        (suite == "bpf_selftests" && !program.is_empty())
            .then(|| find("bpf_selftests.programs"))
            .flatten()
    })
}

/// The suite named `name`.
pub fn suite(name: &str) -> Option<&'static Suite> {
    SUITES.iter().find(|s| s.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_suites_known() {
        let mut ids: Vec<String> = all().map(Case::id).collect();
        ids.sort();
        let n = ids.len();
        ids.dedup();
        assert_eq!(n, ids.len());
        for c in all() {
            assert!(suite(c.suite).is_some(), "{} has an unknown suite", c.id());
            assert!(c.timeout_s > 0);
        }
        for s in SUITES {
            assert!(
                all().any(|c| c.suite == s.name),
                "suite {} has no case",
                s.name
            );
        }
    }

    #[test]
    fn fmap_cases_need_the_fmap_kernel_and_the_fill() {
        let fmap: Vec<_> = CASES
            .iter()
            .filter(|c| matches!(c.host, HostPart::FmapPattern { .. }))
            .collect();
        assert!(fmap.len() >= 30);
        for c in fmap {
            assert_eq!(c.needs, Needs::FmapKernel, "{}", c.id());
        }
        for c in CASES.iter().filter(|c| c.needs == Needs::FmapKernel) {
            assert!(
                matches!(c.host, HostPart::FmapPattern { .. } | HostPart::UserTree),
                "{}",
                c.id()
            );
        }
        assert_eq!(
            find("shadow.user_tree").map(|c| (c.host, suite("shadow").map(|s| s.default))),
            Some((HostPart::UserTree, Some(false)))
        );
        assert_eq!(
            find("stress.random_faults").map(|c| c.host),
            Some(HostPart::FmapPattern {
                fill_head: crate::expect::STRESS_FILL_HEAD
            })
        );
        for s in ["open", "fault", "truncate", "security", "device_missing"] {
            assert!(suite(s).unwrap().default, "{s}");
        }
        assert!(!suite("stress").unwrap().default);
        assert!(!suite("fuzz").unwrap().default);
        assert!(!suite("bench").unwrap().default);
        assert_eq!(
            find("fault.read_pmd").map(|c| c.needs),
            Some(Needs::FmapKernel)
        );
    }

    #[test]
    fn shared_cases_give_each_step_distinct_guests() {
        let shared: Vec<_> = all().filter(|c| c.suite == "shared").collect();
        assert!(shared.len() >= 5);
        for c in shared {
            let Hosts::Shared(steps) = c.hosts else {
                panic!("{} is in the shared suite but runs on one guest", c.id());
            };
            assert_eq!(hosts_needed(&c.hosts), 2, "{}", c.id());
            for step in steps {
                let mut hosts: Vec<u32> = step.iter().map(|r| r.host).collect();
                hosts.sort();
                hosts.dedup();
                assert_eq!(
                    hosts.len(),
                    step.len(),
                    "{}: two roles on one guest",
                    c.id()
                );
            }
        }
        // A role that ends its guest must be in the last case: later cases lose that guest.
        let last = all().filter(|c| c.suite == "shared").last().map(Case::id);
        for c in all() {
            if let Hosts::Shared(steps) = c.hosts {
                if steps.iter().flat_map(|s| s.iter()).any(|r| r.ends_guest) {
                    assert_eq!(Some(c.id()), last);
                }
            }
        }
        assert_eq!(hosts_needed(&Hosts::One), 1);
    }

    #[test]
    fn a_bpf_selftest_program_resolves_to_the_suites_case() {
        let programs = find("bpf_selftests.programs");
        assert!(programs.is_some());
        assert_eq!(resolve("bpf_selftests.parse_blob_oob"), programs);
        assert_eq!(resolve("smoke.memdevs"), find("smoke.memdevs"));
        assert_eq!(resolve("bpf_selftests."), None);
        assert_eq!(resolve("open.no_such_case"), None);
    }

    #[test]
    fn find_by_id() {
        assert_eq!(find("smoke.memdevs").map(|c| c.name), Some("memdevs"));
        assert!(find("smoke.nope").is_none());
    }
}
