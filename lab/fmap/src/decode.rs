//! Blob -> model, with the spec's rules: structure first (short, version, types, counts,
//! trailing bytes), then [`crate::validate`].

use crate::error::FmapError;
use crate::model::{
    Extents, FileMap, FileType, InterleavedExtent, SimpleExtent, MAX_EXTENTS, MAX_STRIPS,
};
use crate::validate::validate;
use crate::wire::{
    FmapHeader, InterleavedExtWire, SimpleExtWire, EXT_TYPE_INTERLEAVED, EXT_TYPE_SIMPLE,
    FMAP_VERSION,
};
use zerocopy::FromBytes;

/// Parse and validate a GET_FMAP blob. Errors carry [`FmapError::errno`].
pub fn decode(blob: &[u8]) -> Result<FileMap, FmapError> {
    let mut cur = Cursor { blob, pos: 0 };
    let hdr: FmapHeader = cur.take("the header")?;
    if hdr.fmap_version != FMAP_VERSION {
        return Err(FmapError::Version(hdr.fmap_version));
    }
    let file_type = FileType::from_wire(hdr.file_type).ok_or(FmapError::FileType(hdr.file_type))?;
    if hdr.ext_type != EXT_TYPE_SIMPLE && hdr.ext_type != EXT_TYPE_INTERLEAVED {
        return Err(FmapError::ExtType(hdr.ext_type));
    }
    let n = hdr.nextents as usize;
    if n == 0 || n > MAX_EXTENTS {
        return Err(FmapError::ExtentCount(n));
    }
    let extents = if hdr.ext_type == EXT_TYPE_SIMPLE {
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(simple(cur.take("a simple extent")?));
        }
        Extents::Simple(v)
    } else {
        let mut v = Vec::with_capacity(n);
        for i in 0..n {
            let w: InterleavedExtWire = cur.take("an interleaved extent")?;
            let ns = w.nstrips as usize;
            if ns == 0 || ns > MAX_STRIPS {
                return Err(FmapError::StripCount {
                    extent: i,
                    nstrips: ns,
                });
            }
            let mut strips = Vec::with_capacity(ns);
            for _ in 0..ns {
                strips.push(simple(cur.take("a strip")?));
            }
            v.push(InterleavedExtent {
                chunk_size: w.chunk_size,
                nbytes: w.nbytes,
                strips,
            });
        }
        Extents::Interleaved(v)
    };
    if cur.pos != blob.len() {
        return Err(FmapError::Trailing {
            extra: blob.len() - cur.pos,
        });
    }
    let map = FileMap {
        file_type,
        file_size: hdr.file_size,
        extents,
    };
    validate(&map)?;
    Ok(map)
}

fn simple(w: SimpleExtWire) -> SimpleExtent {
    SimpleExtent {
        dev_index: w.devindex,
        offset: w.offset,
        len: w.len,
    }
}

struct Cursor<'a> {
    blob: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn take<T: FromBytes>(&mut self, what: &'static str) -> Result<T, FmapError> {
        let rest = self.blob.get(self.pos..).unwrap_or(&[]);
        let need = self.pos + size_of::<T>();
        let (v, _) = T::read_from_prefix(rest).map_err(|_| FmapError::Short {
            what,
            need,
            got: self.blob.len(),
        })?;
        self.pos = need;
        Ok(v)
    }
}
