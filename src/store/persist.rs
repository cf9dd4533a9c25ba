//! Snapshots of the rings (`storage.path`): written periodically and on shutdown, atomically
//! (temp file, fsync, rename, fsync of the directory) with a CRC-32 over the whole file;
//! loaded on start. A file that is corrupt, truncated or from an incompatible configuration
//! (another step or ring length) is moved aside as `promcast.snapshot.bad-<unix time>` and
//! ignored: the agent starts empty rather than not at all. A snapshot is written one shard at
//! a time through a reused buffer, so it costs one shard's encoding in memory (not the file's
//! size) and holds each shard's lock only while that shard is encoded.
//!
//! Layout, little-endian: `PCSNAP\0\x01`, `u32` version (2), `i64` step (ms), `u64` ring
//! length, `u64` series; per series `u32` label count, for each label `u32` length + name
//! bytes and `u32` length + value bytes, `u8` flags (bit 0: stale, bit 1: the ring holds a
//! counter's per-second rates), `i64` head bucket, `i64` head timestamp, `i64` first bucket,
//! the ring's blocks as it holds them ([`Ring::write_blocks`]: the sealed blocks' XOR coding
//! copied as is, about 2.4 KiB a series at a day of one-minute request counts); then `u32`
//! CRC-32 of everything before. Version 1 files (ring length × `f32` in slot order instead
//! of the blocks) still load.
//!
//! What is saved is the data: the rings. Fitted models (MSTL paths, `auto` choices, anomaly
//! forests) are refitted from the restored rings, within their budgets, on the first steps
//! after start; the forecast history starts empty.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::{LabelSet, Ring, Store};

const MAGIC: &[u8; 8] = b"PCSNAP\x00\x01";
/// The version written: rings as their coded blocks ([`Ring::write_blocks`]).
const VERSION: u32 = 2;
/// Rings as plain `f32`s by slot (before the rings were coded); still read.
const PLAIN_VERSION: u32 = 1;
pub const FILE: &str = "promcast.snapshot";

#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// Writes a snapshot of every series into `dir/promcast.snapshot`; returns the series count.
pub fn save(store: &Store, dir: &Path) -> Result<usize, PersistError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| PersistError::Io {
            path: path.clone(),
            source,
        }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let path = dir.join(FILE);
    let tmp = dir.join(format!("{FILE}.tmp"));
    let written = write_streamed(store, &tmp);
    let count = match written {
        Ok(count) => count,
        Err(source) => {
            // A full disk keeps nothing half-written: the space goes back, and the last
            // snapshot stays the one to load.
            let _ = std::fs::remove_file(&tmp);
            return Err(PersistError::Io { path: tmp, source });
        }
    };
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(count as usize)
}

/// Length of the header: magic, version, step, ring length, series count.
const HEAD_LEN: usize = 8 + 4 + 8 + 8 + 8;

/// Writes the snapshot to `tmp` one shard at a time: each shard is encoded into one reused
/// buffer under its lock and written after the lock is released, so the memory a snapshot
/// takes is one shard's encoding, not the whole file, and ingest into a shard waits only for
/// that shard's encoding. The series count is known at the end; the header is written last,
/// over a placeholder, and the CRC combines the header's with the body's.
fn write_streamed(store: &Store, tmp: &Path) -> std::io::Result<u64> {
    use std::io::{Seek as _, SeekFrom};
    let file = std::fs::File::create(tmp)?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    out.write_all(&[0u8; HEAD_LEN])?;
    let mut body_crc = crc32fast::Hasher::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut count = 0u64;
    for shard in 0..store.shard_count() {
        buf.clear();
        store.visit_shard(shard, |s| {
            count += 1;
            encode_series(s, &mut buf);
        });
        body_crc.update(&buf);
        out.write_all(&buf)?;
    }
    let head = header(store, VERSION, count);
    let mut crc = crc32fast::Hasher::new();
    crc.update(&head);
    crc.combine(&body_crc);
    out.write_all(&crc.finalize().to_le_bytes())?;
    let mut file = out.into_inner().map_err(|e| e.into_error())?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(&head)?;
    file.sync_all()?;
    Ok(count)
}

/// The file's header: magic, `version`, the store's step and ring length, `count` series.
fn header(store: &Store, version: u32, count: u64) -> Vec<u8> {
    let mut head = Vec::with_capacity(HEAD_LEN);
    head.extend_from_slice(MAGIC);
    head.extend_from_slice(&version.to_le_bytes());
    head.extend_from_slice(&store.step_ms().to_le_bytes());
    head.extend_from_slice(&(store.ring_len() as u64).to_le_bytes());
    head.extend_from_slice(&count.to_le_bytes());
    debug_assert_eq!(head.len(), HEAD_LEN);
    head
}

/// Appends one series' record (labels, flags, ring) to `buf`.
fn encode_series(s: &super::Series, buf: &mut Vec<u8>) {
    encode_series_head(s, buf);
    s.ring.write_blocks(buf);
}

/// Appends what a record holds before its ring: labels, flags, the ring's marks.
fn encode_series_head(s: &super::Series, buf: &mut Vec<u8>) {
    let count = s.labels.iter().count();
    buf.extend_from_slice(&(count as u32).to_le_bytes());
    for (n, v) in s.labels.iter() {
        for x in [n, v] {
            buf.extend_from_slice(&(x.len() as u32).to_le_bytes());
            buf.extend_from_slice(x.as_bytes());
        }
    }
    buf.push(s.stale as u8 | (s.is_rate() as u8) << 1);
    let (head, head_ts, first) = s.ring.marks();
    for x in [head, head_ts, first] {
        buf.extend_from_slice(&x.to_le_bytes());
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.buf.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn str(&mut self) -> Option<&'a str> {
        let n = self.u32()? as usize;
        std::str::from_utf8(self.take(n)?).ok()
    }
}

/// What [`load`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loaded {
    /// No snapshot file.
    None,
    /// Series restored, and series in the file not restored (no longer selected, limit).
    Restored { restored: usize, skipped: usize },
    /// The file was unusable and moved aside to this path.
    MovedAside { to: PathBuf, reason: String },
}

/// Loads `dir/promcast.snapshot` into `store`; an unusable file is moved aside.
pub fn load(store: &Store, dir: &Path, now_ms: i64) -> Result<Loaded, PersistError> {
    let path = dir.join(FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Loaded::None),
        Err(source) => return Err(PersistError::Io { path, source }),
    };
    match parse(store, &bytes, now_ms) {
        Ok((restored, skipped)) => Ok(Loaded::Restored { restored, skipped }),
        Err(reason) => {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let to = dir.join(format!("{FILE}.bad-{secs}"));
            std::fs::rename(&path, &to).map_err(|source| PersistError::Io {
                path: path.clone(),
                source,
            })?;
            Ok(Loaded::MovedAside { to, reason })
        }
    }
}

fn parse(store: &Store, bytes: &[u8], now_ms: i64) -> Result<(usize, usize), String> {
    if bytes.len() < 40 || &bytes[..8] != MAGIC {
        return Err("not a promcast snapshot (bad magic or too short)".into());
    }
    let (data, tail) = bytes.split_at(bytes.len() - 4);
    let want = u32::from_le_bytes(tail.try_into().expect("4 bytes"));
    if crc32fast::hash(data) != want {
        return Err("checksum mismatch (corrupt or truncated)".into());
    }
    let mut r = Reader { buf: data, pos: 8 };
    let bad = || "truncated record".to_string();
    let version = r.u32().ok_or_else(bad)?;
    if version != VERSION && version != PLAIN_VERSION {
        return Err(format!(
            "snapshot version {version}, this promcast reads {PLAIN_VERSION} and {VERSION}"
        ));
    }
    let step = r.i64().ok_or_else(bad)?;
    let ring_len = r.u64().ok_or_else(bad)? as usize;
    if step != store.step_ms() || ring_len != store.ring_len() {
        return Err(format!(
            "written for storage.step {step} ms and {ring_len} buckets; now {} ms and {} buckets",
            store.step_ms(),
            store.ring_len()
        ));
    }
    let count = r.u64().ok_or_else(bad)?;
    let (mut restored, mut skipped) = (0, 0);
    for _ in 0..count {
        let n = r.u32().ok_or_else(bad)? as usize;
        let mut pairs = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            let name = r.str().ok_or_else(bad)?;
            let value = r.str().ok_or_else(bad)?;
            pairs.push((name, value));
        }
        let flags = r.take(1).ok_or_else(bad)?[0];
        let (stale, rate) = (flags & 1 != 0, flags & 2 != 0);
        let (head, head_ts, first) = (
            r.i64().ok_or_else(bad)?,
            r.i64().ok_or_else(bad)?,
            r.i64().ok_or_else(bad)?,
        );
        let ring = if version == PLAIN_VERSION {
            let raw = r.take(ring_len * 4).ok_or_else(bad)?;
            let values: Vec<f32> = raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            Ring::from_parts(head, head_ts, first, values).ok_or_else(bad)?
        } else {
            let rest = r.buf.get(r.pos..).unwrap_or_default();
            let (ring, used) = Ring::read_blocks(ring_len, (head, head_ts, first), rest)
                .ok_or_else(|| "a ring's blocks do not fit its record".to_string())?;
            r.pos += used;
            ring
        };
        if store.restore(LabelSet::from_pairs(pairs), ring, stale, rate, now_ms) {
            restored += 1;
        } else {
            skipped += 1;
        }
    }
    Ok((restored, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::store::{hash_labels, AppendStats, LabelRef, Sample};

    fn store(yaml: &str) -> Store {
        Store::new(&Config::from_yaml(yaml, "t", None).unwrap(), 0)
    }

    const YAML: &str =
        "storage: { step: 1m, retention: 1h }\nforecast:\n  - selector: '{__name__=~\"a.*\"}'\n";

    /// Appends `samples` to the series `{__name__=name, job="j"}` at `now_ms`.
    fn append(s: &Store, name: &str, samples: &[Sample], now_ms: i64) {
        let labels = [LabelRef::new("__name__", name), LabelRef::new("job", "j")];
        s.append(
            hash_labels(&labels),
            &labels,
            samples,
            now_ms,
            &mut AppendStats::default(),
        );
    }

    fn fill(s: &Store) {
        let nasa = crate::test_data::nasa_per_minute();
        for (k, name) in ["a:x", "a:y", "b:z"].iter().enumerate() {
            let samples: Vec<Sample> = (0..90)
                .map(|i| Sample {
                    value: nasa[k * 100 + i],
                    timestamp: i as i64 * 60_000,
                })
                .collect();
            append(s, name, &samples, 90 * 60_000);
        }
    }

    fn rings(s: &Store) -> Vec<(String, Vec<f32>)> {
        let mut out = Vec::new();
        for i in 0..s.shard_count() {
            s.visit_shard(i, |x| {
                let mut v = Vec::new();
                x.ring.copy_last(60, &mut v);
                out.push((x.labels.metric_name().to_string(), v));
            });
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    #[test]
    fn round_trip_restores_the_rings() {
        let a = store(YAML);
        fill(&a);
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(save(&a, dir.path()).unwrap(), 2);
        let b = store(YAML);
        assert_eq!(
            load(&b, dir.path(), 0).unwrap(),
            Loaded::Restored {
                restored: 2,
                skipped: 0
            }
        );
        let (ra, rb) = (rings(&a), rings(&b));
        assert_eq!(ra.len(), 2);
        for (x, y) in ra.iter().zip(&rb) {
            assert_eq!(x.0, y.0);
            assert_eq!(
                x.1.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                y.1.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
        }
        // a selector that no longer matches skips the series
        let c = store(
            "storage: { step: 1m, retention: 1h }\nforecast:\n  - selector: '{__name__=\"a:x\"}'\n",
        );
        assert_eq!(
            load(&c, dir.path(), 0).unwrap(),
            Loaded::Restored {
                restored: 1,
                skipped: 1
            }
        );
    }

    /// The snapshot is written shard by shard with the header last; a store whose series
    /// fall in every shard must come back whole, and the file must be exactly the layout
    /// in the module doc (header, records, CRC-32 over everything before).
    #[test]
    fn a_snapshot_written_shard_by_shard_has_the_documented_layout() {
        let a = store(YAML);
        let nasa = crate::test_data::nasa_per_minute();
        let n = 3 * a.shard_count();
        for k in 0..n {
            let name = format!("a:s{k}");
            let samples: Vec<Sample> = (0..30)
                .map(|i| Sample {
                    value: nasa[(k * 7 + i) % nasa.len()],
                    timestamp: i as i64 * 60_000,
                })
                .collect();
            append(&a, &name, &samples, 30 * 60_000);
        }
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(save(&a, dir.path()).unwrap(), n);
        let bytes = std::fs::read(dir.path().join(FILE)).unwrap();
        assert_eq!(&bytes[..8], MAGIC);
        assert_eq!(
            u64::from_le_bytes(bytes[28..36].try_into().unwrap()),
            n as u64
        );
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        assert_eq!(crc32fast::hash(body).to_le_bytes(), crc);
        assert!(!dir.path().join(format!("{FILE}.tmp")).exists());
        let b = store(YAML);
        assert_eq!(
            load(&b, dir.path(), 0).unwrap(),
            Loaded::Restored {
                restored: n,
                skipped: 0
            }
        );
        let (ra, rb) = (rings(&a), rings(&b));
        assert_eq!(ra.len(), n);
        let bits = |r: &[(String, Vec<f32>)]| -> Vec<(String, Vec<u32>)> {
            r.iter()
                .map(|(k, v)| (k.clone(), v.iter().map(|x| x.to_bits()).collect()))
                .collect()
        };
        assert_eq!(bits(&ra), bits(&rb));
    }

    const SIX_HOURS: &str =
        "storage: { step: 1m, retention: 6h }\nforecast:\n  - selector: '{__name__=~\"a.*\"}'\n";

    /// Rings over several blocks (360 buckets: five sealed and the open one), one of NASA
    /// requests with gaps and a late sample, one of noise (its blocks kept plain).
    fn fill_blocks(s: &Store) {
        let nasa = crate::test_data::nasa_per_minute();
        let mut x = 0x2545_F491u32;
        for name in ["a:nasa", "a:noise"] {
            let samples: Vec<Sample> = (0..400)
                .filter(|i| i % 37 != 5)
                .map(|i| Sample {
                    value: if name == "a:nasa" {
                        nasa[i]
                    } else {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        f64::from(x) / 7.0
                    },
                    timestamp: i as i64 * 60_000,
                })
                .collect();
            append(s, name, &samples, 400 * 60_000);
            let late = [Sample {
                value: 1.5,
                timestamp: 301 * 60_000, // a gap in a sealed block
            }];
            append(s, name, &late, 400 * 60_000);
        }
    }

    /// A series' name, ring marks and every bucket's bits.
    type Bits = (String, (i64, i64, i64), Vec<u32>);

    fn all_bits(s: &Store) -> Vec<Bits> {
        let mut out = Vec::new();
        for i in 0..s.shard_count() {
            s.visit_shard(i, |x| {
                let mut v = Vec::new();
                x.ring.copy_last(x.ring.capacity(), &mut v);
                let bits = v.iter().map(|f| f.to_bits()).collect();
                out.push((x.labels.metric_name().to_string(), x.ring.marks(), bits));
            });
        }
        out.sort();
        out
    }

    /// A version 1 file (plain `f32`s by slot), as written before the rings were coded.
    fn write_plain(s: &Store, path: &Path) {
        let mut body = Vec::new();
        let mut count = 0u64;
        for i in 0..s.shard_count() {
            s.visit_shard(i, |x| {
                count += 1;
                encode_series_head(x, &mut body);
                for v in x.ring.parts().3 {
                    body.extend_from_slice(&v.to_le_bytes());
                }
            });
        }
        let mut file = header(s, PLAIN_VERSION, count);
        file.extend_from_slice(&body);
        let crc = crc32fast::hash(&file);
        file.extend_from_slice(&crc.to_le_bytes());
        std::fs::write(path, file).unwrap();
    }

    #[test]
    fn coded_blocks_round_trip_and_plain_files_still_load() {
        let a = store(SIX_HOURS);
        fill_blocks(&a);
        let want = all_bits(&a);
        assert_eq!(want.len(), 2);
        assert!(want.iter().all(|(_, _, v)| v
            .iter()
            .filter(|b| f32::from_bits(**b).is_nan())
            .count()
            > 5));
        let dir = tempfile::tempdir().unwrap();
        save(&a, dir.path()).unwrap();
        let coded = std::fs::metadata(dir.path().join(FILE)).unwrap().len();
        let b = store(SIX_HOURS);
        load(&b, dir.path(), 0).unwrap();
        assert_eq!(all_bits(&b), want, "version 2");

        write_plain(&a, &dir.path().join(FILE));
        let plain = std::fs::metadata(dir.path().join(FILE)).unwrap().len();
        let c = store(SIX_HOURS);
        assert_eq!(
            load(&c, dir.path(), 0).unwrap(),
            Loaded::Restored {
                restored: 2,
                skipped: 0
            }
        );
        assert_eq!(all_bits(&c), want, "version 1");
        assert!(coded < plain, "{coded} bytes coded against {plain} plain");
    }

    /// A record whose blocks do not add up (a code changed, the CRC made to match) is
    /// refused, not decoded into garbage or a panic.
    #[test]
    fn blocks_that_do_not_fit_their_record_are_moved_aside() {
        let a = store(SIX_HOURS);
        fill_blocks(&a);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        save(&a, dir.path()).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        // The first record's first block code: after the header, the labels, the flags,
        // three marks, the oldest block and the block count.
        let mut r = Reader {
            buf: &bytes,
            pos: HEAD_LEN,
        };
        let n = r.u32().unwrap();
        for _ in 0..2 * n {
            r.str().unwrap();
        }
        let at = r.pos + 1 + 3 * 8 + 8 + 4;
        for code in [300u16, 17] {
            let mut bad = bytes.clone();
            bad[at..at + 2].copy_from_slice(&code.to_le_bytes());
            let end = bad.len() - 4;
            let crc = crc32fast::hash(&bad[..end]);
            bad[end..].copy_from_slice(&crc.to_le_bytes());
            std::fs::write(&path, &bad).unwrap();
            match load(&store(SIX_HOURS), dir.path(), 0).unwrap() {
                Loaded::MovedAside { reason, .. } => assert!(reason.contains("blocks"), "{reason}"),
                other => panic!("code {code}: {other:?}"),
            }
        }
    }

    #[test]
    fn corrupt_truncated_or_incompatible_files_are_moved_aside() {
        let a = store(YAML);
        fill(&a);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        for damage in 0..3 {
            save(&a, dir.path()).unwrap();
            let mut bytes = std::fs::read(&path).unwrap();
            match damage {
                0 => bytes[100] ^= 0x40,              // a flipped bit
                1 => bytes.truncate(bytes.len() / 2), // a torn write
                _ => {}                               // fine, but another ring length below
            }
            std::fs::write(&path, &bytes).unwrap();
            let b = if damage == 2 {
                store("storage: { step: 1m, retention: 2h }\nforecast:\n  - selector: '{__name__=~\"a.*\"}'\n")
            } else {
                store(YAML)
            };
            match load(&b, dir.path(), 0).unwrap() {
                Loaded::MovedAside { to, reason } => {
                    assert!(to.exists(), "{}", to.display());
                    assert!(!path.exists());
                    assert!(!reason.is_empty());
                    std::fs::remove_file(to).unwrap();
                }
                other => panic!("damage {damage}: {other:?}"),
            }
            assert_eq!(b.series_count(), 0);
        }
        // no file at all
        assert_eq!(load(&store(YAML), dir.path(), 0).unwrap(), Loaded::None);
    }

    /// A counter stored as rates comes back as rates; with `counters: raw` configured since,
    /// its ring of rates is not taken for values.
    #[test]
    fn counters_keep_their_rates_across_a_restart() {
        let a = store(YAML);
        let labels = [
            LabelRef::new("__name__", "a_total"),
            LabelRef::new("job", "j"),
        ];
        let samples: Vec<Sample> = (0..40)
            .map(|i| Sample {
                value: (i * i) as f64,
                timestamp: i as i64 * 30_000,
            })
            .collect();
        let mut st = AppendStats::default();
        a.append(hash_labels(&labels), &labels, &samples, 0, &mut st);
        let dir = tempfile::tempdir().unwrap();
        save(&a, dir.path()).unwrap();
        let set = LabelSet::from_refs(&labels);
        let before = a
            .with_series(&set, |s| (s.is_rate(), s.ring.clone()))
            .unwrap();
        assert!(before.0);
        let b = store(YAML);
        load(&b, dir.path(), 0).unwrap();
        let after = b
            .with_series(&set, |s| (s.is_rate(), s.ring.clone()))
            .unwrap();
        assert!(after.0);
        let bits = |r: &Ring| {
            let (h, t, f, v) = r.parts();
            (h, t, f, v.iter().map(|x| x.to_bits()).collect::<Vec<_>>())
        };
        assert_eq!(bits(&before.1), bits(&after.1));
        let raw = store(&YAML.replace("'\n", "'\n    counters: raw\n"));
        load(&raw, dir.path(), 0).unwrap();
        let (rate, ring) = raw
            .with_series(&set, |s| (s.is_rate(), s.ring.history_len()))
            .unwrap();
        assert!(!rate);
        assert_eq!(ring, 0, "rates are not values: the ring starts over");
    }
}
