//! The IDX format of MNIST: two zero bytes, a type code, the number of dims, each dim as a
//! big-endian u32, then the values. Files may be gzip-compressed (detected by the gzip magic).
//! Every check that fails names the file and says what was expected and what was found.

use crate::error::{Error, Result};
use ferrograd_tensor::files::{self, GIB};
use flate2::read::MultiGzDecoder;
use std::io::{BufRead, Read};
use std::path::Path;

/// An IDX array of unsigned bytes (type 0x08), the type MNIST uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

fn type_name(code: u8) -> &'static str {
    match code {
        0x08 => "unsigned byte",
        0x09 => "signed byte",
        0x0B => "short",
        0x0C => "int",
        0x0D => "float",
        0x0E => "double",
        _ => "unknown",
    }
}

/// The most data an IDX file may declare (MNIST's training images are 47 MB).
pub const MAX_IDX: u64 = 4 * GIB;

/// The most a gzip-compressed data file may inflate to.
pub const MAX_INFLATED: u64 = 4 * GIB;

/// Reads the raw (decompressed) bytes of a regular file, gunzipping when it starts with the
/// gzip magic; a stream inflating past `limit` bytes is refused when it gets there.
pub fn read_maybe_gz(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let cannot = |e: std::io::Error| Error::file(path, format!("cannot read: {e}"));
    let raw = files::read_regular(path, limit).map_err(cannot)?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        files::read_to_limit(
            MultiGzDecoder::new(&raw[..]),
            limit,
            "the decompressed data",
        )
        .map_err(|e| {
            Error::file(
                path,
                format!("corrupt, truncated or oversized gzip data: {e}"),
            )
        })
    } else {
        Ok(raw)
    }
}

/// Reads an IDX array from `r`: the header first, then exactly the bytes its dims declare,
/// growing the buffer only as they arrive (a gzip stream claiming a gigabyte costs what it
/// really inflates to). `raw_len` is the file's length when `r` is not compressed, so that a
/// header claiming more than the file holds is refused before reading on.
fn read_idx_from(r: &mut impl Read, raw_len: Option<u64>, path: &Path) -> Result<IdxArray> {
    let bad = |e: std::io::Error| match raw_len {
        None => Error::file(path, format!("corrupt or truncated gzip data: {e}")),
        Some(_) => Error::file(path, format!("cannot read: {e}")),
    };
    let mut head = Vec::new();
    r.take(4).read_to_end(&mut head).map_err(bad)?;
    if head.len() < 4 {
        return parse_idx(&head, path);
    }
    let nd = head[3] as u64;
    let mut dims = Vec::new();
    r.take(4 * nd).read_to_end(&mut dims).map_err(bad)?;
    head.extend(dims);
    // checks the magic, the type and the dims (a header alone: "truncated data" from here on
    // is measured below, not in memory)
    let dims = match parse_idx(&head, path) {
        Ok(a) => a.dims,
        Err(e) => {
            let msg = e.to_string();
            if !msg.contains("truncated data") {
                return Err(e);
            }
            header_dims(&head)
        }
    };
    let expected = dims
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d as u64))
        .filter(|&n| n <= MAX_IDX)
        .ok_or_else(|| {
            Error::file(
                path,
                format!(
                    "dims {dims:?} declare more than the {} an IDX file may hold",
                    files::human_size(MAX_IDX)
                ),
            )
        })?;
    let have = raw_len.map(|n| n.saturating_sub(head.len() as u64));
    if let Some(have) = have.filter(|&h| h != expected) {
        return Err(size_mismatch(path, &dims, expected, have));
    }
    let mut data = Vec::new();
    r.take(expected)
        .read_to_end(&mut data)
        .map_err(|e| Error::file(path, format!("corrupt or truncated gzip data: {e}")))?;
    if (data.len() as u64) < expected {
        return Err(size_mismatch(path, &dims, expected, data.len() as u64));
    }
    let mut more = [0u8; 1];
    let trailing = r
        .read(&mut more)
        .map_err(|e| Error::file(path, format!("corrupt or truncated gzip data: {e}")))?;
    if trailing > 0 {
        return Err(size_mismatch(path, &dims, expected, expected + 1));
    }
    Ok(IdxArray { dims, data })
}

/// The dims of a header whose magic and type were already checked.
fn header_dims(head: &[u8]) -> Vec<usize> {
    head[4..]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect()
}

fn size_mismatch(path: &Path, dims: &[usize], expected: u64, got: u64) -> Error {
    Error::file(
        path,
        format!(
            "{} data: dims {dims:?} need {expected} bytes after the header, file has {}",
            if got < expected {
                "truncated"
            } else {
                "trailing"
            },
            if got > expected {
                "more".to_string()
            } else {
                got.to_string()
            }
        ),
    )
}

/// Reads an IDX array from bytes in memory, raw or gzip-compressed (what [`read_idx`] does
/// with a file; the fuzz target's entry point).
pub fn read_idx_bytes(bytes: &[u8], path: &Path) -> Result<IdxArray> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        read_idx_from(&mut MultiGzDecoder::new(bytes), None, path)
    } else {
        read_idx_from(&mut &bytes[..], Some(bytes.len() as u64), path)
    }
}

/// Parses IDX bytes; `path` only names the source in errors.
pub fn parse_idx(bytes: &[u8], path: &Path) -> Result<IdxArray> {
    if bytes.len() < 4 {
        return Err(Error::file(
            path,
            format!("too short for an IDX header ({} bytes)", bytes.len()),
        ));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(Error::file(
            path,
            format!(
                "bad IDX magic number {:02x}{:02x}{:02x}{:02x}: the first two bytes must be zero",
                bytes[0], bytes[1], bytes[2], bytes[3]
            ),
        ));
    }
    let code = bytes[2];
    if code != 0x08 {
        return Err(Error::file(
            path,
            format!("IDX element type 0x{code:02x} ({}) is not supported; MNIST files hold unsigned bytes (0x08)", type_name(code)),
        ));
    }
    let nd = bytes[3] as usize;
    if nd == 0 {
        return Err(Error::file(path, "IDX header declares zero dimensions"));
    }
    let header = 4 + 4 * nd;
    if bytes.len() < header {
        return Err(Error::file(
            path,
            format!(
                "truncated header: {nd} dims need {header} bytes, file has {}",
                bytes.len()
            ),
        ));
    }
    let dims: Vec<usize> = (0..nd)
        .map(|i| {
            u32::from_be_bytes([
                bytes[4 + 4 * i],
                bytes[5 + 4 * i],
                bytes[6 + 4 * i],
                bytes[7 + 4 * i],
            ]) as usize
        })
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| Error::file(path, format!("dims {dims:?} overflow")))?;
    let got = bytes.len() - header;
    if got != expected {
        return Err(Error::file(
            path,
            format!(
                "{} data: dims {dims:?} need {expected} bytes after the header, file has {got}",
                if got < expected {
                    "truncated"
                } else {
                    "trailing"
                }
            ),
        ));
    }
    Ok(IdxArray {
        dims,
        data: bytes[header..].to_vec(),
    })
}

/// Reads an IDX file (raw or gzip), header first: the memory used is what the file really
/// holds, whatever its header claims.
pub fn read_idx(path: impl AsRef<Path>) -> Result<IdxArray> {
    let path = path.as_ref();
    let cannot = |e: std::io::Error| Error::file(path, format!("cannot read: {e}"));
    let (file, len) = files::open_regular(path, u64::MAX).map_err(cannot)?;
    let mut file = std::io::BufReader::new(file);
    let magic = file.fill_buf().map_err(cannot)?;
    if magic.starts_with(&[0x1f, 0x8b]) {
        read_idx_from(&mut MultiGzDecoder::new(file), None, path)
    } else {
        read_idx_from(&mut file, Some(len), path)
    }
}

/// Encodes an unsigned-byte IDX array (used by tests and tools that write MNIST-shaped data).
pub fn encode_idx(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}
