//! Sizes in bytes the way Prometheus' `--storage.tsdb.retention.size` writes them: `512MiB`,
//! `2GiB`, `1GB`, or a plain number of bytes.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A size in bytes. Units: `B`, `KB`/`MB`/`GB`/`TB` (powers of 1000) and `KiB`/`MiB`/`GiB`/`TiB`
/// (powers of 1024); a YAML integer is bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid size {input:?}: {reason} (expected e.g. 512MiB, 2GiB, 1GB)")]
pub struct SizeError {
    input: String,
    reason: &'static str,
}

const UNITS: [(&str, u64); 9] = [
    ("TiB", 1 << 40),
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
    ("TB", 1_000_000_000_000),
    ("GB", 1_000_000_000),
    ("MB", 1_000_000),
    ("KB", 1_000),
    ("B", 1),
];

pub fn parse_size(input: &str) -> Result<u64, SizeError> {
    let err = |reason| SizeError {
        input: input.to_owned(),
        reason,
    };
    let digits = input.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(err("expected a number"));
    }
    let n: u64 = input[..digits]
        .parse()
        .map_err(|_| err("number too large"))?;
    let unit = &input[digits..];
    let size = if unit.is_empty() {
        1
    } else {
        UNITS
            .iter()
            .find(|(u, _)| *u == unit)
            .ok_or_else(|| err("unknown unit"))?
            .1
    };
    n.checked_mul(size).ok_or_else(|| err("too large"))
}

impl fmt::Display for ByteSize {
    /// The largest binary unit that divides it (`2GiB`, `1536MiB`), else bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = UNITS[..4]
            .iter()
            .find(|(_, size)| self.0 != 0 && self.0 % size == 0);
        match unit {
            Some((u, size)) => write!(f, "{}{u}", self.0 / size),
            None => write!(f, "{}B", self.0),
        }
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as 512MiB or 2GiB, or a number of bytes")
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(n))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<ByteSize, E> {
                parse_size(s).map(ByteSize).map_err(E::custom)
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes_and_writes_them_back() {
        for (text, bytes) in [
            ("2GiB", 2 << 30),
            ("512MiB", 512 << 20),
            ("1GB", 1_000_000_000),
            ("100KB", 100_000),
            ("4096", 4096),
            ("7B", 7),
        ] {
            assert_eq!(parse_size(text).unwrap(), bytes, "{text}");
            let back = ByteSize(bytes).to_string();
            assert_eq!(parse_size(&back).unwrap(), bytes, "{text} as {back}");
        }
        assert_eq!(ByteSize(2 << 30).to_string(), "2GiB");
        assert_eq!(ByteSize(1_000_000_000).to_string(), "1000000000B");
    }

    #[test]
    fn rejects_bad_sizes() {
        for bad in [
            "",
            "GiB",
            "2 GiB",
            "2gib",
            "1.5GiB",
            "-1MiB",
            "99999999999TiB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad} should fail");
        }
    }
}
