//! famfs-fused: the lab's famfs FUSE server (library half; the binary is `src/main.rs`).
//!
//! Data flow: a shadow tree ([`famfs_shadow::load`]) becomes an in-memory [`fs::Fs`];
//! [`session::run`] mounts it through /dev/fuse and runs worker threads that read requests,
//! [`request::parse`] them, answer them in [`dispatch`] and keep [`stats`]. With fmap on, INIT
//! names the BPF ops that [`bpf::load`] attached before the mount, and GET_FMAP serves each
//! file's famfs blob with the `meta_size` those ops need ([`ops`], [`meta`]).
//!
//! **Invariants:** a malformed message never panics the server (it is counted and answered with
//! EIO when it can be); the BPF link outlives the mount; nothing here needs a built kernel.

pub mod abi;
pub mod bpf;
pub mod dispatch;
pub mod dump;
pub mod fs;
pub mod gate;
pub mod meta;
pub mod notify;
pub mod ops;
pub mod probe;
pub mod register;
pub mod reply;
pub mod request;
pub mod session;
pub mod stats;
