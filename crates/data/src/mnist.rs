//! MNIST from its four IDX files (gzip or raw), with torchvision's ToTensor scaling to [0, 1]
//! and an optional normalisation (mean 0.1307, std 0.3081 is the customary one).

use crate::dataset::Dataset;
use crate::error::{Error, Result};
use crate::idx::read_idx;
use ferrograd_tensor::Tensor;
use std::path::{Path, PathBuf};

/// Which half of MNIST.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

/// `x = (x - mean) / std`, applied after scaling to [0, 1].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalize {
    pub mean: f32,
    pub std: f32,
}

impl Normalize {
    /// The customary MNIST statistics.
    pub const MNIST: Normalize = Normalize {
        mean: 0.1307,
        std: 0.3081,
    };
}

/// MNIST images (`[1, 28, 28]` f32) and labels (i64).
#[derive(Clone, Debug)]
pub struct Mnist {
    pixels: Vec<u8>,
    labels: Vec<u8>,
    rows: usize,
    cols: usize,
    normalize: Option<Normalize>,
    label_map: fn(u8) -> i64,
}

fn find(dir: &Path, stem: &str) -> Result<PathBuf> {
    for name in [format!("{stem}.gz"), stem.to_string()] {
        let p = dir.join(&name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(Error::file(
        dir.join(format!("{stem}.gz")),
        format!(
            "missing: neither {stem}.gz nor {stem} is in {}",
            dir.display()
        ),
    ))
}

impl Mnist {
    /// Loads a split from `dir`, which holds the standard file names (optionally `.gz`).
    pub fn load(dir: impl AsRef<Path>, split: Split) -> Result<Self> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(Error::file(
                dir,
                "data directory not found (expected the four MNIST IDX files here)",
            ));
        }
        let prefix = match split {
            Split::Train => "train",
            Split::Test => "t10k",
        };
        let ip = find(dir, &format!("{prefix}-images-idx3-ubyte"))?;
        let lp = find(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
        let images = read_idx(&ip)?;
        let labels = read_idx(&lp)?;
        if images.dims.len() != 3 {
            return Err(Error::file(
                &ip,
                format!(
                    "expected images of dims [N, rows, cols], got {:?}",
                    images.dims
                ),
            ));
        }
        if images.dims[1..] != [28, 28] {
            return Err(Error::file(
                &ip,
                format!(
                    "images are {} x {}; MNIST's, and what the digit models take, are 28 x 28",
                    images.dims[1], images.dims[2]
                ),
            ));
        }
        if images.dims[0] == 0 {
            return Err(Error::file(&ip, "holds no images"));
        }
        if labels.dims.len() != 1 {
            return Err(Error::file(
                &lp,
                format!("expected labels of dims [N], got {:?}", labels.dims),
            ));
        }
        if images.dims[0] != labels.dims[0] {
            return Err(Error::file(
                &lp,
                format!(
                    "{} labels for {} images in {}",
                    labels.dims[0],
                    images.dims[0],
                    ip.display()
                ),
            ));
        }
        if let Some(bad) = labels.data.iter().position(|&l| l > 9) {
            return Err(Error::file(
                &lp,
                format!(
                    "label {} at index {bad} is not a digit 0-9",
                    labels.data[bad]
                ),
            ));
        }
        Ok(Mnist {
            pixels: images.data,
            labels: labels.data,
            rows: images.dims[1],
            cols: images.dims[2],
            normalize: None,
            label_map: |l| l as i64,
        })
    }

    /// Builds a dataset from raw parts (pixels row-major, one byte each).
    pub fn from_parts(pixels: Vec<u8>, labels: Vec<u8>, rows: usize, cols: usize) -> Result<Self> {
        if pixels.len() != labels.len() * rows * cols {
            return Err(Error::Invalid(format!(
                "{} pixels do not fit {} images of {rows}x{cols}",
                pixels.len(),
                labels.len()
            )));
        }
        Ok(Mnist {
            pixels,
            labels,
            rows,
            cols,
            normalize: None,
            label_map: |l| l as i64,
        })
    }

    /// Applies `(x - mean) / std` after scaling to [0, 1].
    pub fn with_normalize(mut self, n: Option<Normalize>) -> Self {
        self.normalize = n;
        self
    }

    /// Maps each digit to a target (e.g. parity: `|d| (d % 2) as i64`).
    pub fn with_label_map(mut self, f: fn(u8) -> i64) -> Self {
        self.label_map = f;
        self
    }

    /// Keeps the first `n` samples.
    pub fn truncate(mut self, n: usize) -> Self {
        let n = n.min(self.labels.len());
        self.labels.truncate(n);
        self.pixels.truncate(n * self.rows * self.cols);
        self
    }

    /// The digit of sample `i`.
    pub fn digit(&self, i: usize) -> Option<u8> {
        self.labels.get(i).copied()
    }

    pub fn image_shape(&self) -> [usize; 3] {
        [1, self.rows, self.cols]
    }
}

impl Dataset for Mnist {
    fn len(&self) -> usize {
        self.labels.len()
    }

    fn batch(&self, indices: &[usize]) -> Result<(Tensor, Tensor)> {
        let px = self.rows * self.cols;
        let mut x = Vec::with_capacity(indices.len() * px);
        let mut y = Vec::with_capacity(indices.len());
        let (mean, inv_std) = self.normalize.map_or((0.0, 1.0), |n| (n.mean, 1.0 / n.std));
        for &i in indices {
            let img = self.pixels.get(i * px..(i + 1) * px).ok_or_else(|| {
                Error::Invalid(format!(
                    "sample {i} is out of range for {} samples",
                    self.len()
                ))
            })?;
            // ToTensor divides by 255; normalisation then shifts and scales
            x.extend(img.iter().map(|&p| (p as f32 / 255.0 - mean) * inv_std));
            y.push((self.label_map)(self.labels[i]));
        }
        let n = indices.len();
        Ok((
            Tensor::from_vec(x, [n, 1, self.rows, self.cols])?,
            Tensor::from_vec(y, [n])?,
        ))
    }
}
