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
        "warn",
        "triggers a kernel WARNING through lkdtm-like sysrq: the splat fails the case",
    ),
];

/// The case with id `suite.name`.
pub fn find(id: &str) -> Option<&'static Case> {
    CASES.iter().find(|c| c.id() == id)
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
        let mut ids: Vec<String> = CASES.iter().map(Case::id).collect();
        ids.sort();
        let n = ids.len();
        ids.dedup();
        assert_eq!(n, ids.len());
        for c in CASES {
            assert!(suite(c.suite).is_some(), "{} has an unknown suite", c.id());
            assert!(c.timeout_s > 0);
        }
    }

    #[test]
    fn find_by_id() {
        assert_eq!(find("smoke.memdevs").map(|c| c.name), Some("memdevs"));
        assert!(find("smoke.nope").is_none());
    }
}
