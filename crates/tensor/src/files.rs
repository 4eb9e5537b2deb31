//! Reading files that came from anyone: only regular files (never `/dev/zero`, a FIFO or a
//! directory, which have no size to check against), their size known and checked against a
//! limit before a byte is read, and reads that allocate as the data really arrives rather than
//! what a header claims. Errors are `std::io::Error`s whose message says what was wrong; the
//! callers add the path.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// One gibibyte.
pub const GIB: u64 = 1 << 30;

/// An `InvalidData` error with this message.
pub fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// A human-readable size: `1.5 GiB`, `320 MiB`, `12 KiB`, `7 bytes`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, size) in UNITS {
        if bytes >= size {
            let v = bytes as f64 / size as f64;
            return if v.fract() == 0.0 {
                format!("{v:.0} {unit}")
            } else {
                format!("{v:.1} {unit}")
            };
        }
    }
    format!("{bytes} bytes")
}

/// Opens `path`, which must be a regular file (symlinks to one are followed) of at most `limit`
/// bytes, and returns it with its length.
pub fn open_regular(path: &Path, limit: u64) -> io::Result<(File, u64)> {
    let file = File::open(path)?;
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(invalid("is a directory, not a file"));
    }
    if !meta.is_file() {
        return Err(invalid(
            "is not a regular file (a device, FIFO or socket has no size to check)",
        ));
    }
    let len = meta.len();
    if len > limit {
        return Err(invalid(format!(
            "is {}, more than the {} this reader accepts",
            human_size(len),
            human_size(limit)
        )));
    }
    Ok((file, len))
}

/// Reads exactly `n` bytes, growing the buffer only as bytes arrive (a truncated source costs
/// what it holds, not what was asked for). `what` names the part in the error.
pub fn read_exactly(r: &mut impl Read, n: u64, what: &str) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    r.take(n).read_to_end(&mut out)?;
    if (out.len() as u64) < n {
        return Err(invalid(format!(
            "truncated: {what} needs {n} bytes, only {} are there",
            out.len()
        )));
    }
    Ok(out)
}

/// Reads a whole regular file of at most `limit` bytes.
pub fn read_regular(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let (mut file, len) = open_regular(path, limit)?;
    let mut out = Vec::new();
    out.try_reserve_exact(len as usize)
        .map_err(|_| invalid(format!("cannot allocate {}", human_size(len))))?;
    // the file may have grown since its size was read: never past the limit
    (&mut file).take(limit).read_to_end(&mut out)?;
    Ok(out)
}

/// Reads everything `r` gives, refusing more than `limit` bytes (a gzip bomb stops there).
pub fn read_to_limit(r: impl Read, limit: u64, what: &str) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    r.take(limit + 1).read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Err(invalid(format!(
            "{what} is larger than the {} limit",
            human_size(limit)
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_devices_directories_and_oversized_files() {
        let dir = std::env::temp_dir();
        let e = read_regular(&dir, GIB).unwrap_err().to_string();
        assert!(e.contains("directory"), "{e}");
        if Path::new("/dev/zero").exists() {
            let e = read_regular(Path::new("/dev/zero"), GIB)
                .unwrap_err()
                .to_string();
            assert!(e.contains("not a regular file"), "{e}");
        }
        let f = dir.join(format!("ferrograd-files-{}", std::process::id()));
        std::fs::write(&f, [7u8; 100]).unwrap();
        let e = read_regular(&f, 99).unwrap_err().to_string();
        assert!(e.contains("100 bytes, more than the 99 bytes"), "{e}");
        assert_eq!(read_regular(&f, 100).unwrap(), vec![7u8; 100]);
        std::fs::remove_file(&f).unwrap();
    }

    #[test]
    fn bounded_reads_stop_at_the_limit_and_name_truncation() {
        let zeros = io::repeat(0).take(10_000);
        let e = read_to_limit(zeros, 4096, "the stream")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "the stream is larger than the 4 KiB limit");
        let e = read_exactly(&mut &[1u8, 2, 3][..], 8, "the header")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "truncated: the header needs 8 bytes, only 3 are there");
        assert_eq!(human_size(3 << 29), "1.5 GiB");
    }
}
