//! Byte sizes as written in topology files: `512M`, `1G`, `4K`, `1GiB` or plain bytes.

use std::fmt;
use std::str::FromStr;

pub const KIB: u64 = 1 << 10;
pub const MIB: u64 = 1 << 20;
pub const GIB: u64 = 1 << 30;
pub const TIB: u64 = 1 << 40;

/// A size in bytes; binary units (K = 1024).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub const fn bytes(self) -> u64 {
        self.0
    }

    /// The shortest exact rendering QEMU accepts: `4G`, `512M`, `8K` or plain bytes.
    pub fn to_qemu(self) -> String {
        let n = self.0;
        for (unit, suffix) in [(TIB, "T"), (GIB, "G"), (MIB, "M"), (KIB, "K")] {
            if n != 0 && n.is_multiple_of(unit) {
                return format!("{}{suffix}", n / unit);
            }
        }
        n.to_string()
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_qemu())
    }
}

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(digits_end);
        if num.is_empty() {
            return Err(format!(
                "bad size {s:?}: expected a number with an optional unit K, M, G or T (e.g. 512M, 1G)"
            ));
        }
        let mult = match unit.trim().to_ascii_uppercase().as_str() {
            "" | "B" => 1,
            "K" | "KB" | "KIB" => KIB,
            "M" | "MB" | "MIB" => MIB,
            "G" | "GB" | "GIB" => GIB,
            "T" | "TB" | "TIB" => TIB,
            _ => {
                return Err(format!(
                    "bad size {s:?}: unknown unit {unit:?} (use K, M, G or T; binary units)"
                ))
            }
        };
        let n: u64 = num
            .parse()
            .map_err(|_| format!("bad size {s:?}: number too large"))?;
        n.checked_mul(mult)
            .map(ByteSize)
            .ok_or_else(|| format!("bad size {s:?}: overflows 64 bits"))
    }
}

impl<'de> serde::Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size such as 512M, 1G, 4K or a number of bytes")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom(format!("bad size {v}: negative")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ByteSize, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl serde::Serialize for ByteSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_qemu())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!("512M".parse::<ByteSize>(), Ok(ByteSize(512 * MIB)));
        assert_eq!("1G".parse::<ByteSize>(), Ok(ByteSize(GIB)));
        assert_eq!("4k".parse::<ByteSize>(), Ok(ByteSize(4096)));
        assert_eq!("2GiB".parse::<ByteSize>(), Ok(ByteSize(2 * GIB)));
        assert_eq!("4096".parse::<ByteSize>(), Ok(ByteSize(4096)));
        assert!("1X".parse::<ByteSize>().is_err());
        assert!("G".parse::<ByteSize>().is_err());
        assert!("99999999999T".parse::<ByteSize>().is_err());
    }

    #[test]
    fn renders_for_qemu() {
        assert_eq!(ByteSize(4 * GIB).to_qemu(), "4G");
        assert_eq!(ByteSize(512 * MIB).to_qemu(), "512M");
        assert_eq!(ByteSize(8 * KIB).to_qemu(), "8K");
        assert_eq!(ByteSize(1000).to_qemu(), "1000");
        assert_eq!(ByteSize(0).to_qemu(), "0");
    }
}
