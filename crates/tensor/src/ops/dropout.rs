//! Dropout: in training, each element is zeroed with probability `p` and the survivors scaled
//! by `1 / (1 - p)`, so the expectation is unchanged; in evaluation it is the identity.
//! `y = x * m` with `m` the scaled mask, hence `dx = g * m`.

use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::tensor::Tensor;

impl Tensor {
    /// Dropout with probability `p`, active only when `training`; the mask comes from `rng`
    /// (row-major order), so a seed fixes it.
    pub fn dropout(&self, p: f64, training: bool, rng: &mut Rng) -> Result<Tensor> {
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::value(
                "dropout",
                format!("probability must be in [0, 1], got {p}"),
            ));
        }
        if !training || p == 0.0 {
            return Ok(self.clone());
        }
        if !self.dtype().is_float() {
            return Err(Error::dtype_unsupported("dropout", self.dtype()));
        }
        let scale = if p < 1.0 { 1.0 / (1.0 - p) } else { 0.0 };
        let mask: Vec<f64> = (0..self.numel())
            .map(|_| if rng.next_f64() >= p { scale } else { 0.0 })
            .collect();
        let mask = Tensor::from_vec(mask, self.shape())?.to_dtype(self.dtype())?;
        self.mul(&mask)
    }
}
