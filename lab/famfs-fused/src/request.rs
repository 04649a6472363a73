//! Parsing one message read from /dev/fuse into a typed request. Every length is checked: a
//! short, oversized or inconsistent message is a [`Malformed`] naming what is wrong, never a
//! panic. Arguments are copied out (zerocopy `read_from_bytes`), so the read buffer needs no
//! particular alignment.

use crate::abi::{self, op, InHeader};
use zerocopy::FromBytes;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op<'a> {
    Lookup {
        name: &'a [u8],
    },
    Forget(abi::ForgetIn),
    BatchForget(Vec<abi::ForgetOne>),
    Getattr(abi::GetattrIn),
    Setattr(abi::SetattrIn),
    Open(abi::OpenIn),
    Opendir(abi::OpenIn),
    Release(abi::ReleaseIn),
    Releasedir(abi::ReleaseIn),
    Flush(abi::FlushIn),
    Readdir(abi::ReadIn),
    Readdirplus(abi::ReadIn),
    Statfs,
    Access(abi::AccessIn),
    /// `fuse_init_in` zero-extended from whatever prefix (>= 16 bytes) the kernel sent.
    Init(abi::InitIn),
    Interrupt(abi::InterruptIn),
    Destroy,
    GetFmap,
    GetDaxdev(abi::GetDaxdevIn),
    /// Any other opcode: answered with ENOSYS.
    NotifyReply,
    Unknown,
}

impl Op<'_> {
    /// FORGET, BATCH_FORGET and INTERRUPT get no reply.
    pub fn wants_reply(&self) -> bool {
        !matches!(self, Op::Forget(_) | Op::BatchForget(_) | Op::Interrupt(_))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    pub header: InHeader,
    pub op: Op<'a>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("message is {got} bytes, shorter than the 40-byte header")]
    ShortHeader { got: usize },
    #[error("header says {declared} bytes but {got} were read")]
    LengthMismatch { declared: u32, got: usize },
    #[error("{ext} bytes of extensions do not fit in the {body}-byte body")]
    BadExtensions { ext: usize, body: usize },
    #[error("{}: argument is {got} bytes, {want} expected", opname(*opcode))]
    ShortArg {
        opcode: u32,
        want: usize,
        got: usize,
    },
    #[error("{}: argument is {got} bytes, only {want} expected", opname(*opcode))]
    OversizedArg {
        opcode: u32,
        want: usize,
        got: usize,
    },
    #[error("LOOKUP: name is not NUL-terminated")]
    NameNotTerminated,
    #[error("LOOKUP: name is empty or holds a NUL")]
    BadName,
    #[error("BATCH_FORGET: count {count} needs {need} bytes, {got} given")]
    BatchCount { count: u32, need: usize, got: usize },
}

fn opname(opcode: u32) -> String {
    op::name(opcode)
        .map(str::to_string)
        .unwrap_or_else(|| format!("opcode {opcode}"))
}

/// A message that could not be parsed; `header` is there when the header itself was fine (then
/// the request can still be answered, with EIO).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    pub header: Option<InHeader>,
    pub error: RequestError,
}

pub fn parse(msg: &[u8]) -> Result<Request<'_>, Malformed> {
    let bad = |header, error| Malformed { header, error };
    let Ok((header, _)) = InHeader::read_from_prefix(msg) else {
        return Err(bad(None, RequestError::ShortHeader { got: msg.len() }));
    };
    if header.len as usize != msg.len() {
        return Err(bad(
            None,
            RequestError::LengthMismatch {
                declared: header.len,
                got: msg.len(),
            },
        ));
    }
    let body = &msg[size_of::<InHeader>()..];
    let ext = usize::from(header.total_extlen) * 8;
    let Some(body) = body.len().checked_sub(ext).map(|n| &body[..n]) else {
        return Err(bad(
            Some(header),
            RequestError::BadExtensions {
                ext,
                body: body.len(),
            },
        ));
    };
    parse_op(header.opcode, body)
        .map(|op| Request { header, op })
        .map_err(|e| bad(Some(header), e))
}

fn parse_op(opcode: u32, body: &[u8]) -> Result<Op<'_>, RequestError> {
    Ok(match opcode {
        op::LOOKUP => Op::Lookup { name: name(body)? },
        op::FORGET => Op::Forget(fixed(opcode, body)?),
        op::BATCH_FORGET => Op::BatchForget(batch_forget(body)?),
        op::GETATTR => Op::Getattr(fixed(opcode, body)?),
        op::SETATTR => Op::Setattr(fixed(opcode, body)?),
        op::OPEN => Op::Open(fixed(opcode, body)?),
        op::OPENDIR => Op::Opendir(fixed(opcode, body)?),
        op::RELEASE => Op::Release(fixed(opcode, body)?),
        op::RELEASEDIR => Op::Releasedir(fixed(opcode, body)?),
        op::FLUSH => Op::Flush(fixed(opcode, body)?),
        op::READDIR => Op::Readdir(fixed(opcode, body)?),
        op::READDIRPLUS => Op::Readdirplus(fixed(opcode, body)?),
        op::STATFS => empty(opcode, body, Op::Statfs)?,
        op::ACCESS => Op::Access(fixed(opcode, body)?),
        op::INIT => Op::Init(init(body)?),
        op::INTERRUPT => Op::Interrupt(fixed(opcode, body)?),
        op::DESTROY => empty(opcode, body, Op::Destroy)?,
        op::GET_FMAP => empty(opcode, body, Op::GetFmap)?,
        op::GET_DAXDEV => Op::GetDaxdev(fixed(opcode, body)?),
        // The kernel's answer to FUSE_NOTIFY_RETRIEVE: counted, never replied to.
        op::NOTIFY_REPLY => Op::NotifyReply,
        _ => Op::Unknown,
    })
}

/// Exactly `size_of::<T>()` bytes.
fn fixed<T: FromBytes>(opcode: u32, body: &[u8]) -> Result<T, RequestError> {
    let want = size_of::<T>();
    if body.len() > want {
        return Err(RequestError::OversizedArg {
            opcode,
            want,
            got: body.len(),
        });
    }
    T::read_from_bytes(body).map_err(|_| RequestError::ShortArg {
        opcode,
        want,
        got: body.len(),
    })
}

fn empty<'a>(opcode: u32, body: &[u8], op: Op<'a>) -> Result<Op<'a>, RequestError> {
    if body.is_empty() {
        Ok(op)
    } else {
        Err(RequestError::OversizedArg {
            opcode,
            want: 0,
            got: body.len(),
        })
    }
}

fn name(body: &[u8]) -> Result<&[u8], RequestError> {
    let Some((0, name)) = body.split_last() else {
        return Err(RequestError::NameNotTerminated);
    };
    if name.is_empty() || name.contains(&0) {
        return Err(RequestError::BadName);
    }
    Ok(name)
}

/// INIT's argument grew over the protocol's life: take any prefix of at least the 7.0 fields.
fn init(body: &[u8]) -> Result<abi::InitIn, RequestError> {
    let (min, max) = (16, size_of::<abi::InitIn>());
    if body.len() < min {
        return Err(RequestError::ShortArg {
            opcode: op::INIT,
            want: min,
            got: body.len(),
        });
    }
    if body.len() > max {
        return Err(RequestError::OversizedArg {
            opcode: op::INIT,
            want: max,
            got: body.len(),
        });
    }
    let mut full = [0u8; 64];
    full[..body.len()].copy_from_slice(body);
    abi::InitIn::read_from_bytes(&full[..]).map_err(|_| RequestError::ShortArg {
        opcode: op::INIT,
        want: max,
        got: body.len(),
    })
}

fn batch_forget(body: &[u8]) -> Result<Vec<abi::ForgetOne>, RequestError> {
    let Ok((head, rest)) = abi::BatchForgetIn::read_from_prefix(body) else {
        return Err(RequestError::ShortArg {
            opcode: op::BATCH_FORGET,
            want: 8,
            got: body.len(),
        });
    };
    let one = size_of::<abi::ForgetOne>();
    let need = 8 + (head.count as usize).saturating_mul(one);
    if body.len() != need {
        return Err(RequestError::BatchCount {
            count: head.count,
            need,
            got: body.len(),
        });
    }
    Ok(rest
        .chunks_exact(one)
        .filter_map(|c| abi::ForgetOne::read_from_bytes(c).ok())
        .collect())
}
