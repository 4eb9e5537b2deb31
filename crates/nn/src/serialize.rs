//! safetensors files with PyTorch state_dict names: what `torch.save_file(model.state_dict())`
//! writes and `load_state_dict` reads. Every file is written under a temporary name in the same
//! directory and renamed into place, so an interrupted write never leaves a half-written file.

use crate::error::{Error, Result};
use crate::module::{load_state_dict, state_dict, Module};
use ferrograd_tensor::{DType, Tensor};
use safetensors::tensor::{Dtype as SDtype, TensorView};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// The temporary name of a file being written: `.NAME.ferrograd-PID-RANDOM.tmp` in the same
/// directory, so that a user who finds one left by a killed process knows what it is, and the
/// next write of `NAME` can tell whether its writer is still alive.
fn temp_prefix(name: &str, pid: u32) -> String {
    format!(".{name}.ferrograd-{pid}-")
}

/// Removes temporaries of `name` in `dir` whose writing process no longer runs (a `kill -9`
/// during a write leaves one behind). Only regular files with our naming are touched, never
/// through a symlink, and only where `/proc` says which processes exist.
fn remove_stale_temporaries(dir: &Path, name: &str) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let start = format!(".{name}.ferrograd-");
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(rest) = file
            .to_str()
            .and_then(|f| f.strip_prefix(&start))
            .filter(|r| r.ends_with(".tmp"))
        else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if is_file && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, created
/// exclusively (never an existing file or a symlink) under an unpredictable name, written,
/// flushed to disk and renamed into place; on any failure it is removed and `path` is left as
/// it was. Temporaries of `path` left by a killed process are removed first.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| Error::file(path, "not a file path"))?
        .to_string_lossy()
        .into_owned();
    remove_stale_temporaries(dir, &name);
    let result = (|| -> std::io::Result<()> {
        let mut f = tempfile::Builder::new()
            .prefix(&temp_prefix(&name, std::process::id()))
            .suffix(".tmp")
            .tempfile_in(dir)?;
        f.write_all(bytes)?;
        f.as_file().sync_all()?;
        // the temporary file is removed when `persist` fails (dropped) or anything before it did
        f.persist(path).map_err(|e| e.error)?;
        Ok(())
    })();
    result.map_err(|e| Error::file(path, format!("cannot write: {e}")))
}

fn to_bytes(t: &Tensor) -> Result<(SDtype, Vec<u8>)> {
    Ok(match t.dtype() {
        DType::F32 => (
            SDtype::F32,
            t.to_vec::<f32>()?
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        ),
        DType::F64 => (
            SDtype::F64,
            t.to_vec::<f64>()?
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        ),
        DType::I64 => (
            SDtype::I64,
            t.to_vec::<i64>()?
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        ),
    })
}

/// The bytes of a safetensors file: an 8-byte little-endian header length, the JSON header
/// (metadata first, then the tensors by name, each with its dtype, shape and byte range), padded
/// with spaces to a multiple of 8 so that the data is aligned, then the tensors' bytes in the
/// same order. Written here rather than by `safetensors::serialize`, whose metadata is a
/// `HashMap`: its random order made two saves of the same weights differ in their bytes. The
/// `safetensors` crate reads these files back (tested), as PyTorch's `safetensors` does.
pub fn encode_safetensors(
    tensors: &BTreeMap<String, Tensor>,
    metadata: Option<&HashMap<String, String>>,
) -> Result<Vec<u8>> {
    use serde_json::{json, Map, Value};
    let mut entries: Vec<(String, Value)> = Vec::with_capacity(tensors.len() + 1);
    if let Some(md) = metadata.filter(|m| !m.is_empty()) {
        let sorted: BTreeMap<&String, &String> = md.iter().collect();
        let map: Map<String, Value> = sorted
            .into_iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        entries.push(("__metadata__".into(), Value::Object(map)));
    }
    let mut data = Vec::new();
    for (name, t) in tensors {
        if name == "__metadata__" {
            return Err(Error::invalid(
                "save_tensors",
                "a tensor cannot be named __metadata__",
            ));
        }
        let (dtype, bytes) = to_bytes(t)?;
        let start = data.len();
        data.extend_from_slice(&bytes);
        let offsets = [start, data.len()];
        let entry = json!({"dtype": dtype.to_string(), "shape": t.dims(), "data_offsets": offsets});
        entries.push((name.clone(), entry));
    }
    let mut header = String::from("{");
    for (i, (key, value)) in entries.iter().enumerate() {
        if i > 0 {
            header.push(',');
        }
        header.push_str(&Value::String(key.clone()).to_string());
        header.push(':');
        header.push_str(&value.to_string());
    }
    header.push('}');
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut out = Vec::with_capacity(8 + header.len() + data.len());
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&data);
    Ok(out)
}

/// Saves named tensors (and optional string metadata) as a safetensors file; the same tensors
/// and metadata always give the same bytes.
pub fn save_tensors(
    path: impl AsRef<Path>,
    tensors: &BTreeMap<String, Tensor>,
    metadata: Option<HashMap<String, String>>,
) -> Result<()> {
    let path = path.as_ref();
    let bytes = encode_safetensors(tensors, metadata.as_ref())
        .map_err(|e| Error::file(path, format!("cannot encode: {e}")))?;
    write_atomic(path, &bytes)
}

fn decode(name: &str, v: &TensorView<'_>) -> std::result::Result<Tensor, String> {
    let shape = v.shape().to_vec();
    let data = v.data();
    let t = match v.dtype() {
        SDtype::F32 => Tensor::from_vec(
            data.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            shape,
        ),
        SDtype::F64 => Tensor::from_vec(
            data.chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect(),
            shape,
        ),
        SDtype::I64 => Tensor::from_vec(
            data.chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect(),
            shape,
        ),
        SDtype::F16 => Tensor::from_vec(
            data.chunks_exact(2)
                .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
            shape,
        ),
        SDtype::BF16 => Tensor::from_vec(
            data.chunks_exact(2)
                .map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16))
                .collect(),
            shape,
        ),
        d => return Err(format!("tensor {name} has unsupported dtype {d:?}")),
    };
    t.map_err(|e| format!("tensor {name}: {e}"))
}

/// IEEE half to single precision.
fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, f) => {
            // subnormal: normalise
            let mut e = 127 - 15 + 1;
            let mut f = f;
            while f & 0x400 == 0 {
                f <<= 1;
                e -= 1;
            }
            sign | ((e as u32) << 23) | ((f & 0x3ff) << 13)
        }
        (31, f) => sign | 0x7f80_0000 | (f << 13),
        (e, f) => sign | ((e + 127 - 15) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}

/// A file's tensors by name, and its metadata.
pub type Loaded = (BTreeMap<String, Tensor>, HashMap<String, String>);

/// The most a safetensors header may hold (the `safetensors` crate's own limit).
pub const MAX_HEADER: u64 = 100_000_000;

/// The most a weights file or checkpoint may hold.
pub const MAX_FILE: u64 = 64 * ferrograd_tensor::files::GIB;

/// What a safetensors header says: the metadata, and each tensor's dtype and shape by name.
#[derive(Clone, Debug, Default)]
pub struct Header {
    pub metadata: HashMap<String, String>,
    pub tensors: BTreeMap<String, (String, Vec<usize>)>,
}

impl Header {
    /// The shape of tensor `name`, if the file has it.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.tensors.get(name).map(|(_, s)| s.as_slice())
    }
}

/// Any JSON value, refusing an object with a key twice at any depth: serde_json keeps the last
/// of them without a word, so a crafted header could show one value to one reader and another
/// to the next.
struct Unique;

impl<'de> serde::Deserialize<'de> for Unique {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(Unique)
    }
}

impl<'de> serde::de::Visitor<'de> for Unique {
    type Value = Unique;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, _: bool) -> std::result::Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_i64<E>(self, _: i64) -> std::result::Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_u64<E>(self, _: u64) -> std::result::Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_f64<E>(self, _: f64) -> std::result::Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_str<E>(self, _: &str) -> std::result::Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_unit<E>(self) -> std::result::Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut s: A,
    ) -> std::result::Result<Unique, A::Error> {
        while s.next_element::<Unique>()?.is_some() {}
        Ok(Unique)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut m: A,
    ) -> std::result::Result<Unique, A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(k) = m.next_key::<String>()? {
            m.next_value::<Unique>()?;
            if !seen.insert(k.clone()) {
                return Err(serde::de::Error::custom(format!("key {k:?} appears twice")));
            }
        }
        Ok(Unique)
    }
}

/// The header length a safetensors file's first 8 bytes give, checked against the limit and
/// the file's length.
fn header_len(prefix: &[u8], file_len: u64) -> std::result::Result<u64, String> {
    let Some(len) = prefix.get(..8) else {
        return Err(format!(
            "too short for a safetensors file ({} bytes; the header length alone takes 8)",
            prefix.len()
        ));
    };
    let n = u64::from_le_bytes(len.try_into().unwrap_or([0; 8]));
    if n > MAX_HEADER {
        return Err(format!(
            "its header claims {n} bytes, more than the {MAX_HEADER} a safetensors header may hold"
        ));
    }
    if 8 + n > file_len {
        return Err(format!(
            "truncated: the header claims {n} bytes but the file has {file_len} in all"
        ));
    }
    Ok(n)
}

/// Checks the header of a safetensors file (`prefix` holds at least the length and the header;
/// `file_len` is the whole file's length) and says what it holds. The tensors' byte ranges are
/// checked against the data by the `safetensors` crate when the data is read.
fn parse_header(prefix: &[u8], file_len: u64) -> std::result::Result<Header, String> {
    let n = header_len(prefix, file_len)?;
    let json = prefix
        .get(8..8 + n as usize)
        .ok_or_else(|| "truncated header".to_string())?;
    let bad = |e: &dyn std::fmt::Display| format!("bad header: {e}");
    serde_json::from_slice::<Unique>(json).map_err(|e| bad(&e))?;
    let raw: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(json).map_err(|e| bad(&e))?;
    let mut header = Header::default();
    for (name, v) in raw {
        if name == "__metadata__" {
            header.metadata =
                serde_json::from_value(v).map_err(|e| bad(&format!("__metadata__: {e}")))?;
            continue;
        }
        let dtype = v["dtype"]
            .as_str()
            .ok_or_else(|| bad(&format!("tensor {name} has no dtype")))?
            .to_string();
        let shape: Vec<usize> = serde_json::from_value(v["shape"].clone())
            .map_err(|e| bad(&format!("tensor {name}: shape: {e}")))?;
        header.tensors.insert(name, (dtype, shape));
    }
    Ok(header)
}

/// Reads the header of a safetensors file only (its metadata and the tensors' shapes), for
/// checking a configuration against the file before building anything.
pub fn read_header(path: impl AsRef<Path>) -> Result<Header> {
    use ferrograd_tensor::files;
    let path = path.as_ref();
    let (mut f, len) = files::open_regular(path, MAX_FILE)
        .map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    let mut prefix = files::read_exactly(&mut f, 8.min(len), "the header length")
        .map_err(|e| Error::file(path, e))?;
    let n = header_len(&prefix, len).map_err(|e| Error::file(path, e))?;
    prefix.extend(files::read_exactly(&mut f, n, "the header").map_err(|e| Error::file(path, e))?);
    parse_header(&prefix, len).map_err(|e| Error::file(path, e))
}

/// Decodes a whole safetensors file held in memory: every tensor and the metadata. The header
/// is checked first (its length, duplicate keys), then the `safetensors` crate checks every
/// dtype, shape and byte range against the data.
pub fn tensors_from_bytes(bytes: &[u8]) -> std::result::Result<Loaded, String> {
    let header = parse_header(bytes, bytes.len() as u64)?;
    let st = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| format!("not a valid safetensors file: {e}"))?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        let t = decode(&name, &view)?;
        out.insert(name, t);
    }
    Ok((out, header.metadata))
}

/// Reads every tensor of a safetensors file, with its metadata. The file must be a regular file;
/// its header is read and checked before the data is (a header claiming more than the file
/// holds costs nothing). A missing, truncated, crafted or corrupt file is an error naming the
/// path.
pub fn load_tensors(path: impl AsRef<Path>) -> Result<Loaded> {
    let path = path.as_ref();
    read_header(path)?;
    let bytes = ferrograd_tensor::files::read_regular(path, MAX_FILE)
        .map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    tensors_from_bytes(&bytes).map_err(|e| Error::file(path, e))
}

/// Refuses weights that hold NaN or infinite values, naming the first such tensor: a model
/// loaded from them would answer with garbage (one such file evaluated silently to 9.8%).
pub fn require_finite(path: &Path, tensors: &BTreeMap<String, Tensor>) -> Result<()> {
    for (name, t) in tensors {
        if !t.dtype().is_float() {
            continue;
        }
        let bad = t.to_vec_f64().iter().filter(|v| !v.is_finite()).count();
        if bad > 0 {
            return Err(Error::file(
                path,
                format!(
                    "tensor {name} holds {bad} NaN or infinite values of {}: not usable weights",
                    t.numel()
                ),
            ));
        }
    }
    Ok(())
}

/// Saves a module's state dict (parameters and buffers, PyTorch names).
pub fn save_module(m: &dyn Module, path: impl AsRef<Path>) -> Result<()> {
    save_tensors(path, &state_dict(m), None)
}

/// Loads a module's state dict strictly: every tensor must be present with its shape; f16/bf16/f64
/// values are converted to the parameter's dtype.
pub fn load_module(m: &dyn Module, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let (mut tensors, _) = load_tensors(path)?;
    require_finite(path, &tensors)?;
    let own = state_dict(m);
    for (k, t) in tensors.iter_mut() {
        if let Some(o) = own.get(k) {
            if o.dtype() != t.dtype() && o.dtype().is_float() && t.dtype().is_float() {
                *t = t.to_dtype(o.dtype())?;
            }
        }
    }
    load_state_dict(m, &tensors).map_err(|e| Error::file(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_temporaries_of_dead_writers_are_removed_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        // pid 4194304 is above Linux's largest (2^22): no such process
        let dead = dir
            .path()
            .join(".w.safetensors.ferrograd-4194304-abc123.tmp");
        let live = dir.path().join(format!(
            ".w.safetensors.ferrograd-{}-def456.tmp",
            std::process::id()
        ));
        let other = dir
            .path()
            .join(".x.safetensors.ferrograd-4194304-abc123.tmp");
        for f in [&dead, &live, &other] {
            std::fs::write(f, b"partial").unwrap();
        }
        write_atomic(&path, b"whole").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"whole");
        assert!(!dead.exists() || !Path::new("/proc/self").exists());
        assert!(live.exists() && other.exists());
    }
}
