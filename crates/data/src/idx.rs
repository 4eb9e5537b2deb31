//! The IDX format of MNIST: two zero bytes, a type code, the number of dims, each dim as a
//! big-endian u32, then the values. Files may be gzip-compressed (detected by the gzip magic).
//! Every check that fails names the file and says what was expected and what was found.

use crate::error::{Error, Result};
use std::io::Read;
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

/// Reads the raw (decompressed) bytes of a file, gunzipping when it starts with the gzip magic.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    if raw.len() >= 2 && raw[0] == 0x1f && raw[1] == 0x8b {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| Error::file(path, format!("corrupt or truncated gzip data: {e}")))?;
        Ok(out)
    } else {
        Ok(raw)
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

/// Reads an IDX file (raw or gzip).
pub fn read_idx(path: impl AsRef<Path>) -> Result<IdxArray> {
    let path = path.as_ref();
    parse_idx(&read_maybe_gz(path)?, path)
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
