//! safetensors files with PyTorch state_dict names: what `torch.save_file(model.state_dict())`
//! writes and `load_state_dict` reads. Every file is written under a temporary name in the same
//! directory and renamed into place, so an interrupted write never leaves a half-written file.

use crate::error::{Error, Result};
use crate::module::{load_state_dict, state_dict, Module};
use ferrograd_tensor::{DType, Tensor};
use safetensors::tensor::{Dtype as SDtype, TensorView};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, created
/// exclusively (never an existing file or a symlink) under an unpredictable name, written,
/// flushed to disk and renamed into place; on any failure it is removed and `path` is left as
/// it was.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| Error::file(path, "not a file path"))?;
    let result = (|| -> std::io::Result<()> {
        let mut f = tempfile::Builder::new()
            .prefix(&format!(".{}.", name.to_string_lossy()))
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

fn to_bytes(t: &Tensor) -> (SDtype, Vec<u8>) {
    match t.dtype() {
        DType::F32 => (
            SDtype::F32,
            t.to_vec::<f32>()
                .unwrap_or_default()
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        ),
        DType::F64 => (
            SDtype::F64,
            t.to_vec::<f64>()
                .unwrap_or_default()
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        ),
        DType::I64 => (
            SDtype::I64,
            t.to_vec::<i64>()
                .unwrap_or_default()
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        ),
    }
}

/// Saves named tensors (and optional string metadata) as a safetensors file.
pub fn save_tensors(
    path: impl AsRef<Path>,
    tensors: &BTreeMap<String, Tensor>,
    metadata: Option<HashMap<String, String>>,
) -> Result<()> {
    let path = path.as_ref();
    let encoded: Vec<(String, SDtype, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(k, t)| {
            let (d, b) = to_bytes(t);
            (k.clone(), d, t.dims().to_vec(), b)
        })
        .collect();
    let views = encoded
        .iter()
        .map(|(k, d, s, b)| {
            TensorView::new(*d, s.clone(), b)
                .map(|v| (k.clone(), v))
                .map_err(|e| Error::file(path, format!("tensor {k}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let bytes = safetensors::serialize(views, metadata)
        .map_err(|e| Error::file(path, format!("cannot encode: {e}")))?;
    write_atomic(path, &bytes)
}

fn decode(path: &Path, name: &str, v: &TensorView<'_>) -> Result<Tensor> {
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
        d => {
            return Err(Error::file(
                path,
                format!("tensor {name} has unsupported dtype {d:?}"),
            ))
        }
    };
    t.map_err(|e| Error::file(path, format!("tensor {name}: {e}")))
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

/// Reads every tensor of a safetensors file, with its metadata. A missing, truncated or corrupt
/// file is an error naming the path.
pub fn load_tensors(
    path: impl AsRef<Path>,
) -> Result<(BTreeMap<String, Tensor>, HashMap<String, String>)> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::file(path, format!("not a valid safetensors file: {e}")))?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| Error::file(path, format!("not a valid safetensors file: {e}")))?;
    let metadata = meta.metadata().clone().unwrap_or_default();
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        let t = decode(path, &name, &view)?;
        out.insert(name, t);
    }
    Ok((out, metadata))
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
