//! A GPT language model (GPT-2 architecture, as nanoGPT builds it): token and position
//! embeddings, pre-LayerNorm residual blocks of causal self-attention and a 4x GELU MLP, a final
//! LayerNorm, and an LM head tied to the token embedding. Parameter names are nanoGPT's
//! (`transformer.wte.weight`, `transformer.h.0.attn.c_attn.weight`, ...); the tied `lm_head.weight`
//! is the same tensor as `transformer.wte.weight` and is listed once, under the latter.

use ferrograd_nn::init;
use ferrograd_nn::loss::{cross_entropy, ClassLossOptions};
use ferrograd_nn::{
    CausalSelfAttention, Embedding, Error, Forward, KvCache, LayerNorm, Linear, Module, Result,
};
use ferrograd_tensor::{DType, Rng, Tensor};

/// The size of a GPT.
#[derive(Clone, Debug, PartialEq)]
pub struct GptConfig {
    pub n_layer: usize,
    pub n_head: usize,
    pub n_embd: usize,
    pub block_size: usize,
    pub vocab_size: usize,
    pub dropout: f64,
    pub bias: bool,
}

impl GptConfig {
    /// The configuration `ferrograd gpt train` writes into a weights file's metadata (`config`,
    /// JSON), for inference (no dropout).
    pub fn from_metadata(
        md: &std::collections::HashMap<String, String>,
    ) -> std::result::Result<GptConfig, String> {
        let missing =
            |k: &str| format!("no {k} in the metadata (not written by ferrograd gpt train)");
        let text = md.get("config").ok_or_else(|| missing("config"))?;
        let cfg: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("config metadata: {e}"))?;
        let u = |k: &str| {
            cfg[k]
                .as_u64()
                .and_then(|v| usize::try_from(v).ok())
                .ok_or_else(|| missing(k))
        };
        Ok(GptConfig {
            n_layer: u("n_layer")?,
            n_head: u("n_head")?,
            n_embd: u("n_embd")?,
            block_size: u("block_size")?,
            vocab_size: u("vocab_size")?,
            dropout: 0.0,
            bias: true,
        })
    }

    /// Checks this configuration (from a file's metadata) against the shapes of the file's
    /// tensors (`shape_of(name)`), before a model is built from it: a configuration claiming
    /// sizes the tensors do not have would otherwise allocate whatever it says (a crafted
    /// `n_embd` of 2^20 aborted the process). With it, the model built is no larger than the
    /// weights that were read.
    pub fn check_against(
        &self,
        shape_of: &dyn Fn(&str) -> Option<Vec<usize>>,
    ) -> std::result::Result<(), String> {
        let expect = |name: &str, want: [usize; 2]| match shape_of(name) {
            Some(got) if got == want => Ok(()),
            Some(got) => Err(format!(
                "the config says {name} is {want:?} (vocab_size {}, block_size {}, n_embd {}), \
                 the tensor is {got:?}",
                self.vocab_size, self.block_size, self.n_embd
            )),
            None => Err(format!("no tensor {name}")),
        };
        expect("transformer.wte.weight", [self.vocab_size, self.n_embd])?;
        expect("transformer.wpe.weight", [self.block_size, self.n_embd])?;
        let layers = (0..)
            .take_while(|i| shape_of(&format!("transformer.h.{i}.ln_1.weight")).is_some())
            .count();
        if layers != self.n_layer {
            return Err(format!(
                "the config says n_layer {}, the file has {layers} blocks",
                self.n_layer
            ));
        }
        if self.n_head == 0 || !self.n_embd.is_multiple_of(self.n_head) {
            return Err(format!(
                "n_head {} does not divide n_embd {}",
                self.n_head, self.n_embd
            ));
        }
        Ok(())
    }
}

/// One residual block: `x + attn(ln_1(x))`, then `x + mlp(ln_2(x))`.
#[derive(Module)]
pub struct Block {
    pub ln_1: LayerNorm,
    pub attn: CausalSelfAttention,
    pub ln_2: LayerNorm,
    #[module(rename = "mlp.c_fc")]
    pub c_fc: Linear,
    #[module(rename = "mlp.c_proj")]
    pub c_proj: Linear,
    training: bool,
}

impl Block {
    fn new(c: &GptConfig, rng: &mut Rng) -> Result<Self> {
        let e = c.n_embd;
        let lin = |i: usize, o: usize, std: f64, rng: &mut Rng| -> Result<Linear> {
            Linear::from_tensors(
                init::normal(&[o, i], std, rng)?,
                c.bias.then(|| init::zeros(&[o])).transpose()?,
            )
        };
        let proj_std = 0.02 / (2.0 * c.n_layer as f64).sqrt();
        let attn = CausalSelfAttention::new(e, c.n_head, c.bias, c.dropout, rng)?;
        // nanoGPT scales the residual projections' init by 1/sqrt(2 n_layer)
        attn.c_proj
            .weight
            .copy_from(&init::normal(&[e, e], proj_std, rng)?)?;
        Ok(Block {
            ln_1: LayerNorm::new(&[e], 1e-5)?,
            attn,
            ln_2: LayerNorm::new(&[e], 1e-5)?,
            c_fc: lin(e, 4 * e, 0.02, rng)?,
            c_proj: lin(4 * e, e, proj_std, rng)?,
            training: true,
        })
    }
}

impl Block {
    /// [`Module::forward`] for new positions, with this block's attention cache.
    pub fn forward_cached(&self, x: &Tensor, cache: &mut KvCache) -> Result<Tensor> {
        let x = x.add(&self.attn.forward_cached(&self.ln_1.forward(x)?, cache)?)?;
        let m = self
            .c_proj
            .forward(&self.c_fc.forward(&self.ln_2.forward(&x)?)?.gelu()?)?;
        Ok(x.add(&m)?)
    }
}

impl Forward for Block {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.add(&self.attn.forward(&self.ln_1.forward(x)?)?)?;
        let m = self
            .c_proj
            .forward(&self.c_fc.forward(&self.ln_2.forward(&x)?)?.gelu()?)?;
        Ok(x.add(&m)?)
    }
}

/// Token ids must be i64 `[B, T]`.
fn check_ids(idx: &Tensor) -> Result<()> {
    if idx.rank() != 2 || idx.dtype() != DType::I64 {
        return Err(Error::invalid(
            "Gpt",
            format!(
                "expects i64 token ids [B, T], got {:?} {}",
                idx.dims(),
                idx.dtype()
            ),
        ));
    }
    Ok(())
}

#[derive(Module)]
pub struct Gpt {
    #[module(skip)]
    pub config: GptConfig,
    #[module(rename = "transformer.wte")]
    pub wte: Embedding,
    #[module(rename = "transformer.wpe")]
    pub wpe: Embedding,
    #[module(rename = "transformer.h")]
    pub h: Vec<Block>,
    #[module(rename = "transformer.ln_f")]
    pub ln_f: LayerNorm,
    training: bool,
}

impl Gpt {
    /// A GPT with nanoGPT's initialisation: N(0, 0.02) weights, zero biases.
    pub fn new(config: GptConfig, rng: &mut Rng) -> Result<Self> {
        if config.n_layer == 0 || config.block_size == 0 || config.vocab_size == 0 {
            return Err(Error::invalid(
                "Gpt",
                format!("n_layer, block_size and vocab_size must be positive: {config:?}"),
            ));
        }
        // The weights alone (12 E^2 per block, (V + T) E for the embeddings), before any
        // allocation: a size that could never be held is refused here rather than after
        // gigabytes of blocks have been built.
        let e = config.n_embd as u128;
        let weights = 12 * e * e * config.n_layer as u128
            + (config.vocab_size as u128 + config.block_size as u128) * e;
        let bytes = weights.saturating_mul(4);
        if let Some(mem) = ferrograd_tensor::creation::physical_memory() {
            if bytes > mem as u128 {
                return Err(Error::invalid(
                    "Gpt",
                    format!(
                        "n_layer {}, n_embd {}, vocab_size {} and block_size {} make {weights} \
                         weights ({} bytes), more than this machine's {} of memory",
                        config.n_layer,
                        config.n_embd,
                        config.vocab_size,
                        config.block_size,
                        bytes,
                        ferrograd_tensor::files::human_size(mem)
                    ),
                ));
            }
        }
        let wte = Embedding::new(config.vocab_size, config.n_embd, rng)?;
        wte.weight.copy_from(&init::normal(
            &[config.vocab_size, config.n_embd],
            0.02,
            rng,
        )?)?;
        let wpe = Embedding::new(config.block_size, config.n_embd, rng)?;
        wpe.weight.copy_from(&init::normal(
            &[config.block_size, config.n_embd],
            0.02,
            rng,
        )?)?;
        let h = (0..config.n_layer)
            .map(|_| Block::new(&config, rng))
            .collect::<Result<_>>()?;
        let ln_f = LayerNorm::new(&[config.n_embd], 1e-5)?;
        Ok(Gpt {
            config,
            wte,
            wpe,
            h,
            ln_f,
            training: true,
        })
    }

    /// Logits for new token ids `[B, T_new]` continuing the positions held in `caches` (one per
    /// layer; empty to start): each new token costs one position, not the whole context.
    /// Errors when the positions would pass `block_size`.
    pub fn forward_cached(&self, idx: &Tensor, caches: &mut Vec<KvCache>) -> Result<Tensor> {
        check_ids(idx)?;
        caches.resize(self.h.len(), KvCache::default());
        let past = caches[0].len();
        let t = idx.dims()[1];
        if past + t > self.config.block_size {
            return Err(Error::invalid(
                "Gpt",
                format!(
                    "{} positions pass block_size {}",
                    past + t,
                    self.config.block_size
                ),
            ));
        }
        let pos = Tensor::arange(past as f64, (past + t) as f64, 1.0, DType::I64)?;
        let mut x = self.wte.forward(idx)?.add(&self.wpe.forward(&pos)?)?;
        for (b, c) in self.h.iter().zip(caches.iter_mut()) {
            x = b.forward_cached(&x, c)?;
        }
        Ok(self.ln_f.forward(&x)?.linear(&self.wte.weight, None)?)
    }

    /// Cross-entropy of next-token logits `[B, T, V]` against i64 targets `[B, T]`.
    pub fn loss(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
        let v = logits.dims()[logits.rank() - 1];
        let n = targets.numel();
        cross_entropy(
            &logits.reshape([n, v])?,
            &targets.reshape([n])?,
            &ClassLossOptions::default(),
        )
    }
}

impl Forward for Gpt {
    /// Token ids `[B, T]` (i64, T <= block_size) -> logits `[B, T, vocab]`.
    fn forward(&self, idx: &Tensor) -> Result<Tensor> {
        check_ids(idx)?;
        let t = idx.dims()[1];
        if t > self.config.block_size {
            return Err(Error::invalid(
                "Gpt",
                format!(
                    "sequence of {t} tokens is longer than block_size {}",
                    self.config.block_size
                ),
            ));
        }
        let pos = Tensor::arange(0.0, t as f64, 1.0, DType::I64)?;
        let mut x = self.wte.forward(idx)?.add(&self.wpe.forward(&pos)?)?;
        for b in &self.h {
            x = b.forward(&x)?;
        }
        let x = self.ln_f.forward(&x)?;
        Ok(x.linear(&self.wte.weight, None)?)
    }
}

/// Draws a token from next-token logits: the `top_k` largest kept, divided by `temperature`,
/// softmax, then one draw from `rng` (the first token whose cumulative weight reaches the
/// draw). `temperature` must be positive and `top_k` at least 1.
pub fn sample_top_k(
    logits: &[f64],
    temperature: f64,
    top_k: usize,
    rng: &mut Rng,
) -> Result<usize> {
    if logits.is_empty() || temperature.is_nan() || temperature <= 0.0 || top_k == 0 {
        return Err(Error::invalid(
            "sample_top_k",
            format!(
                "needs logits, a positive temperature and top_k >= 1, got {} logits, {temperature} and {top_k}",
                logits.len()
            ),
        ));
    }
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&i, &j| logits[j].total_cmp(&logits[i]));
    order.truncate(top_k.min(logits.len()));
    let m = logits[order[0]];
    let w: Vec<f64> = order
        .iter()
        .map(|&i| ((logits[i] - m) / temperature).exp())
        .collect();
    let total: f64 = w.iter().sum();
    let mut r = rng.next_f64() * total;
    for (k, &i) in order.iter().enumerate() {
        r -= w[k];
        if r <= 0.0 {
            return Ok(i);
        }
    }
    Ok(order[order.len() - 1])
}
