//! Causal multi-head self-attention, as in GPT-2 / nanoGPT: one fused projection to queries, keys
//! and values (`c_attn`), scaled dot-product attention with a causal mask, and an output
//! projection (`c_proj`).
//!
//! For one head, `A = softmax(Q K^T / sqrt(d) + M)` with `M` = -inf above the diagonal, and
//! `Y = A V`. Its gradient is the composition of the ops' gradients: through `V` as `A^T G`, through
//! `A` as `G V^T`, then the softmax vector-Jacobian product `A * (dA - sum(dA * A))` (the masked
//! entries have `A = 0` and so get no gradient), then `dQ = dS K / sqrt(d)`, `dK = dS^T Q / sqrt(d)`.

use crate::error::{Error, Result};
use crate::layers::{stateless_training, Linear};
use crate::module::{join, Forward, Module};
use crate::rng_stream::RngStream;
use ferrograd_tensor::{DType, Rng, Tensor};

pub struct CausalSelfAttention {
    pub c_attn: Linear,
    pub c_proj: Linear,
    pub n_head: usize,
    pub dropout: f64,
    rng: RngStream,
    training: bool,
}

impl CausalSelfAttention {
    /// Attention over `n_embd` features split into `n_head` heads; `bias` adds biases to both
    /// projections. Weights are initialised N(0, 0.02) as nanoGPT does (the caller may rescale).
    pub fn new(
        n_embd: usize,
        n_head: usize,
        bias: bool,
        dropout: f64,
        rng: &mut Rng,
    ) -> Result<Self> {
        if n_head == 0 || !n_embd.is_multiple_of(n_head) {
            return Err(Error::invalid(
                "CausalSelfAttention",
                format!("n_embd {n_embd} is not divisible by n_head {n_head}"),
            ));
        }
        let lin = |i: usize, o: usize, rng: &mut Rng| -> Result<Linear> {
            let w = crate::init::normal(&[o, i], 0.02, rng)?;
            Linear::from_tensors(w, bias.then(|| crate::init::zeros(&[o])).transpose()?)
        };
        Ok(CausalSelfAttention {
            c_attn: lin(n_embd, 3 * n_embd, rng)?,
            c_proj: lin(n_embd, n_embd, rng)?,
            n_head,
            dropout,
            rng: RngStream::new(rng.next_u64()),
            training: true,
        })
    }
}

impl CausalSelfAttention {
    /// Attention around given projections (e.g. f64 ones for a gradient check), no dropout.
    pub fn from_linears(c_attn: Linear, c_proj: Linear, n_head: usize) -> Result<Self> {
        let c = c_proj.weight.dims()[0];
        if n_head == 0 || !c.is_multiple_of(n_head) || c_attn.weight.dims() != [3 * c, c] {
            return Err(Error::invalid(
                "CausalSelfAttention",
                format!(
                    "c_attn {:?} and c_proj {:?} do not fit {n_head} heads",
                    c_attn.weight.dims(),
                    c_proj.weight.dims()
                ),
            ));
        }
        Ok(CausalSelfAttention {
            c_attn,
            c_proj,
            n_head,
            dropout: 0.0,
            rng: RngStream::new(0),
            training: true,
        })
    }
}

/// Keys and values of the positions seen so far, per layer, for incremental decoding.
#[derive(Default, Clone)]
pub struct KvCache {
    /// `[B, H, T, D]` each, or None before the first token.
    pub k: Option<Tensor>,
    pub v: Option<Tensor>,
}

impl KvCache {
    /// Number of cached positions.
    pub fn len(&self) -> usize {
        self.k.as_ref().map_or(0, |k| k.dims()[2])
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl CausalSelfAttention {
    /// Queries, keys and values of `x` (`[B, T, C]`), each `[B, H, T, C/H]`, from the fused
    /// projection.
    fn split_heads(&self, x: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        if x.rank() != 3 {
            return Err(Error::invalid(
                "CausalSelfAttention",
                format!("expects [B, T, C], got {:?}", x.dims()),
            ));
        }
        let (b, t, c) = (x.dims()[0], x.dims()[1], x.dims()[2]);
        let (h, d) = (self.n_head, c / self.n_head);
        let qkv = self.c_attn.forward(x)?; // [B, T, 3C]
        let heads = |i: usize| -> Result<Tensor> {
            Ok(qkv
                .narrow(2, i * c, c)?
                .reshape([b, t, h, d])?
                .transpose(1, 2)?)
        };
        Ok((heads(0)?, heads(1)?, heads(2)?))
    }

    /// Attention for `x` (`[B, T_new, C]`) continuing the positions in `cache`: the new keys and
    /// values are appended, and each new query attends to every cached position and to the new
    /// positions up to its own. Equals `forward` on the whole sequence, for the new positions,
    /// at the cost of the new positions only. No dropout (inference).
    pub fn forward_cached(&self, x: &Tensor, cache: &mut KvCache) -> Result<Tensor> {
        let (q, k_new, v_new) = self.split_heads(x)?;
        let (b, t, c) = (x.dims()[0], x.dims()[1], x.dims()[2]);
        let d = c / self.n_head;
        let k = match &cache.k {
            Some(k) => Tensor::cat(&[k, &k_new], 2)?,
            None => k_new.contiguous()?,
        };
        let v = match &cache.v {
            Some(v) => Tensor::cat(&[v, &v_new], 2)?,
            None => v_new.contiguous()?,
        };
        // new query i (absolute position past + i) sees keys 0..=past + i: the causal mask of
        // the last t rows of a (past + t)-square, which attention_softmax applies
        let att = q
            .matmul(&k.transpose(-1, -2)?)?
            .attention_softmax(1.0 / (d as f64).sqrt(), true)?;
        let y = att.matmul(&v)?.transpose(1, 2)?.reshape([b, t, c])?;
        cache.k = Some(k);
        cache.v = Some(v);
        self.c_proj.forward(&y)
    }
}

/// `[T, T]` additive mask: 0 on and below the diagonal, -inf above.
pub fn causal_mask(t: usize, dtype: DType) -> Result<Tensor> {
    let mut m = vec![0.0f64; t * t];
    for i in 0..t {
        for j in i + 1..t {
            m[i * t + j] = f64::NEG_INFINITY;
        }
    }
    Ok(Tensor::from_vec(m, [t, t])?.to_dtype(dtype)?)
}

impl Module for CausalSelfAttention {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        self.c_attn.visit_parameters(&join(prefix, "c_attn"), f);
        self.c_proj.visit_parameters(&join(prefix, "c_proj"), f);
    }
    fn visit_rng_streams(&self, prefix: &str, f: &mut dyn FnMut(&str, &RngStream)) {
        f(&join(prefix, "attn_dropout"), &self.rng);
    }
    stateless_training!();
}

impl Forward for CausalSelfAttention {
    /// `x`: `[B, T, C]` -> `[B, T, C]`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if self.dropout == 0.0 || !self.training {
            // no dropout on the probabilities: the one-op kernel (skips the masked half of the
            // products, no head copies; equal to the composition below, tested)
            if x.rank() != 3 {
                return Err(Error::invalid(
                    "CausalSelfAttention",
                    format!("expects [B, T, C], got {:?}", x.dims()),
                ));
            }
            let y = self.c_attn.forward(x)?.causal_self_attention(self.n_head)?;
            return self.c_proj.forward(&y);
        }
        let (q, k, v) = self.split_heads(x)?;
        let (b, t, c) = (x.dims()[0], x.dims()[1], x.dims()[2]);
        let d = c / self.n_head;
        // softmax(q k^T / sqrt(d) + causal mask) in one fused pass
        let att = q
            .matmul(&k.transpose(-1, -2)?)?
            .attention_softmax(1.0 / (d as f64).sqrt(), true)?;
        let att = {
            let mut rng = self.rng.lock();
            att.dropout(self.dropout, self.training, &mut rng)?
        };
        let y = att.matmul(&v)?.transpose(1, 2)?.reshape([b, t, c])?;
        self.c_proj.forward(&y)
    }
}
