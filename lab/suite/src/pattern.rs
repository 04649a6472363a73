//! Deterministic byte patterns: the same (seed, offset) gives the same byte
//! on the host and in the guest, and different seeds differ everywhere
//! that matters.

/// The byte at absolute position `pos` of the pattern named `seed`.
pub fn byte(seed: &str, pos: u64) -> u8 {
    mix(seed_hash(seed), pos)
}

fn seed_hash(seed: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn mix(h: u64, pos: u64) -> u8 {
    let mut x = h ^ pos.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x as u8
}

/// `len` bytes of pattern `seed` starting at position `start`.
pub fn fill(seed: &str, start: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    fill_into(seed, start, &mut v);
    v
}

/// Overwrites `out` with pattern `seed` from position `start` (the seed is hashed once).
pub fn fill_into(seed: &str, start: u64, out: &mut [u8]) {
    let h = seed_hash(seed);
    for (i, b) in out.iter_mut().enumerate() {
        *b = mix(h, start + i as u64);
    }
}

/// The first position where `got` differs from the pattern, if any.
pub fn first_mismatch(seed: &str, start: u64, got: &[u8]) -> Option<(u64, u8, u8)> {
    let h = seed_hash(seed);
    got.iter()
        .enumerate()
        .map(|(i, &b)| (start + i as u64, b))
        .find(|&(pos, b)| mix(h, pos) != b)
        .map(|(pos, b)| (pos, mix(h, pos), b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bytes_other_seed_differs() {
        assert_eq!(fill("a", 100, 64), fill("a", 100, 64));
        let same = fill("a", 0, 4096)
            .iter()
            .zip(fill("b", 0, 4096))
            .filter(|(x, y)| **x == *y)
            .count();
        assert!(same < 64, "{same} equal bytes of 4096");
    }

    #[test]
    fn mismatch_names_position_expected_and_got() {
        let mut v = fill("s", 10, 32);
        assert_eq!(first_mismatch("s", 10, &v), None);
        v[5] ^= 0xff;
        let (pos, want, got) = first_mismatch("s", 10, &v).unwrap();
        assert_eq!(pos, 15);
        assert_eq!(want ^ 0xff, got);
    }

    #[test]
    fn fill_is_byte_by_byte() {
        let v = fill("mem0", 1 << 20, 100);
        for (i, b) in v.iter().enumerate() {
            assert_eq!(*b, byte("mem0", (1 << 20) + i as u64));
        }
    }

    #[test]
    fn pattern_is_not_constant() {
        let v = fill("x", 0, 256);
        assert!(v.iter().any(|&b| b != v[0]));
    }
}
