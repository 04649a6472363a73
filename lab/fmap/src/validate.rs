//! The spec's semantic rules, on a model. [`crate::decode`] runs them after parsing; the shadow
//! loader runs them on YAML-built maps so both reject the same things with the same messages.

use crate::error::{Field, FmapError, Loc};
use crate::model::{Extents, FileMap, SimpleExtent, FMAP_ALIGN, MAX_DEVS, MAX_EXTENTS, MAX_STRIPS};

/// Check every rule; the first violation in blob order wins.
pub fn validate(map: &FileMap) -> Result<(), FmapError> {
    let n = map.extents.len();
    if n == 0 || n > MAX_EXTENTS {
        return Err(FmapError::ExtentCount(n));
    }
    let mut covered: u64 = 0;
    match &map.extents {
        Extents::Simple(v) => {
            for (i, e) in v.iter().enumerate() {
                check_range(Loc::ext(i), e)?;
                covered = covered.saturating_add(e.len);
            }
        }
        Extents::Interleaved(v) => {
            for (i, e) in v.iter().enumerate() {
                let ns = e.strips.len();
                if ns == 0 || ns > MAX_STRIPS {
                    return Err(FmapError::StripCount {
                        extent: i,
                        nstrips: ns,
                    });
                }
                let at = Loc::ext(i);
                check_aligned(at, Field::ChunkSize, u64::from(e.chunk_size))?;
                check_aligned(at, Field::Nbytes, e.nbytes)?;
                for (s, strip) in e.strips.iter().enumerate() {
                    let at = Loc::strip(i, s);
                    check_range(at, strip)?;
                    let need = strip_need(e.nbytes, u64::from(e.chunk_size), ns, s);
                    if strip.len < need {
                        return Err(FmapError::StripTooShort {
                            at,
                            len: strip.len,
                            need,
                        });
                    }
                }
                covered = covered.saturating_add(e.nbytes);
            }
        }
    }
    if covered < map.file_size {
        return Err(FmapError::Uncovered {
            covered,
            file_size: map.file_size,
        });
    }
    Ok(())
}

/// Bytes strip `s` must hold so that every chunk of an `nbytes` extent striped over `nstrips`
/// strips in `chunk`-byte chunks lands inside it: chunk k goes to strip k % nstrips.
pub fn strip_need(nbytes: u64, chunk: u64, nstrips: usize, s: usize) -> u64 {
    if chunk == 0 || nstrips == 0 {
        return 0;
    }
    let chunks = nbytes.div_ceil(chunk);
    let (s, n) = (s as u64, nstrips as u64);
    if s >= chunks {
        return 0;
    }
    (chunks - s).div_ceil(n).saturating_mul(chunk)
}

fn check_range(at: Loc, e: &SimpleExtent) -> Result<(), FmapError> {
    if e.dev_index >= MAX_DEVS {
        return Err(FmapError::DevIndex {
            at,
            index: e.dev_index,
        });
    }
    if !e.offset.is_multiple_of(FMAP_ALIGN) {
        return Err(FmapError::Misaligned {
            at,
            field: Field::Offset,
            value: e.offset,
        });
    }
    check_aligned(at, Field::Length, e.len)?;
    if e.offset.checked_add(e.len).is_none() {
        return Err(FmapError::Overflow { at });
    }
    Ok(())
}

fn check_aligned(at: Loc, field: Field, value: u64) -> Result<(), FmapError> {
    if value == 0 {
        return Err(FmapError::Zero { at, field });
    }
    if !value.is_multiple_of(FMAP_ALIGN) {
        return Err(FmapError::Misaligned { at, field, value });
    }
    Ok(())
}
