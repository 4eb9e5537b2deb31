//! A BERT encoder (Devlin et al. 2019) as Hugging Face's `BertModel` builds it, with its parameter
//! names (`embeddings.word_embeddings.weight`, `encoder.layer.0.attention.self.query.weight`, ...),
//! so pretrained checkpoints such as all-MiniLM-L6-v2 load strictly by name.
//!
//! - Embeddings: `LN(word[ids] + position[0..T] + token_type[types])`, then dropout.
//! - Each layer, post-LayerNorm: `h = LN(x + drop(W_o attn(x)))`, `y = LN(h + drop(W_2 gelu(W_1 h)))`
//!   with the exact (erf) GELU.
//! - Attention: per head `softmax(Q K^T / sqrt(d) + M) V`, where `M` is 0 for real tokens and the
//!   most negative float for padding keys (as Hugging Face does: a fully padded row stays finite).
//! - Pooler: `tanh(W_p h_[CLS] + b_p)`.
//!
//! Sentence embeddings as sentence-transformers computes them for all-MiniLM-L6-v2:
//! [`mean_pool`] over the attention mask, then [`l2_normalize`].
//!
//! Every linear layer of the encoder is a [`LoraLinear`], so LoRA adapters can be attached by name
//! ([`Bert::attach_lora`]); without adapters it is an ordinary linear layer.

use ferrograd_nn::serialize::load_tensors;
use ferrograd_nn::{
    load_state_dict, Embedding, Error, Forward, LayerNorm, Linear, LoraLinear, Module, Result,
    RngStream,
};
use ferrograd_tensor::{DType, Rng, Tensor};
use serde::Deserialize;
use std::path::Path;

/// The fields of a Hugging Face `config.json` that a BERT encoder needs.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f64,
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f64,
    #[serde(default = "default_act")]
    pub hidden_act: String,
}

fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_dropout() -> f64 {
    0.1
}
fn default_act() -> String {
    "gelu".into()
}

impl BertConfig {
    /// Reads and checks a Hugging Face `config.json`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = ferrograd_tensor::files::read_regular(path, 1 << 20)
            .map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
        let c: BertConfig = serde_json::from_slice(&text)
            .map_err(|e| Error::file(path, format!("not a BERT config.json: {e}")))?;
        c.check().map_err(|e| Error::file(path, e))?;
        Ok(c)
    }

    /// Checks this configuration against the shapes of a weights file's tensors (`shape_of`,
    /// names without a `bert.` prefix) before a model is built from it, so that a
    /// `config.json` claiming sizes the weights do not have cannot allocate what it claims.
    pub fn check_against(
        &self,
        shape_of: &dyn Fn(&str) -> Option<Vec<usize>>,
    ) -> std::result::Result<(), String> {
        let h = self.hidden_size;
        let expect = |name: &str, field: &str, want: [usize; 2]| {
            match shape_of(name) {
            Some(got) if got == want => Ok(()),
            Some(got) => Err(format!(
                "config.json's {field} and hidden_size say {name} is {want:?}, the weights have {got:?}"
            )),
            None => Err(format!("the weights have no {name}")),
        }
        };
        expect(
            "embeddings.word_embeddings.weight",
            "vocab_size",
            [self.vocab_size, h],
        )?;
        expect(
            "embeddings.position_embeddings.weight",
            "max_position_embeddings",
            [self.max_position_embeddings, h],
        )?;
        expect(
            "embeddings.token_type_embeddings.weight",
            "type_vocab_size",
            [self.type_vocab_size, h],
        )?;
        let layers = (0..)
            .take_while(|i| {
                shape_of(&format!("encoder.layer.{i}.attention.self.query.weight")).is_some()
            })
            .count();
        if layers != self.num_hidden_layers {
            return Err(format!(
                "config.json says num_hidden_layers {}, the weights have {layers} layers",
                self.num_hidden_layers
            ));
        }
        for i in 0..layers {
            expect(
                &format!("encoder.layer.{i}.intermediate.dense.weight"),
                "intermediate_size",
                [self.intermediate_size, h],
            )?;
        }
        Ok(())
    }

    fn check(&self) -> Result<()> {
        let positive = [
            self.vocab_size,
            self.hidden_size,
            self.num_hidden_layers,
            self.num_attention_heads,
            self.intermediate_size,
            self.max_position_embeddings,
            self.type_vocab_size,
        ];
        if positive.contains(&0) || !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(Error::invalid(
                "BertConfig",
                format!("sizes must be positive and hidden_size divisible by the heads: {self:?}"),
            ));
        }
        if self.hidden_act != "gelu" {
            return Err(Error::invalid(
                "BertConfig",
                format!(
                    "hidden_act {:?} is not supported (only \"gelu\")",
                    self.hidden_act
                ),
            ));
        }
        for p in [self.hidden_dropout_prob, self.attention_probs_dropout_prob] {
            if !(0.0..1.0).contains(&p) {
                return Err(Error::invalid(
                    "BertConfig",
                    format!("dropout {p} not in [0, 1)"),
                ));
            }
        }
        Ok(())
    }
}

/// Word, position and token-type embeddings, summed and normalised.
#[derive(Module)]
pub struct BertEmbeddings {
    pub word_embeddings: Embedding,
    pub position_embeddings: Embedding,
    pub token_type_embeddings: Embedding,
    #[module(rename = "LayerNorm")]
    pub layer_norm: LayerNorm,
    /// `[1, max_positions]` i64 `0, 1, 2, ...`: a buffer Hugging Face checkpoints carry.
    #[module(buffer)]
    pub position_ids: Tensor,
    training: bool,
}

/// One post-LN encoder layer.
#[derive(Module)]
pub struct BertLayer {
    #[module(rename = "attention.self.query")]
    pub query: LoraLinear,
    #[module(rename = "attention.self.key")]
    pub key: LoraLinear,
    #[module(rename = "attention.self.value")]
    pub value: LoraLinear,
    #[module(rename = "attention.output.dense")]
    pub attention_output: LoraLinear,
    #[module(rename = "attention.output.LayerNorm")]
    pub attention_norm: LayerNorm,
    #[module(rename = "intermediate.dense")]
    pub intermediate: LoraLinear,
    #[module(rename = "output.dense")]
    pub output: LoraLinear,
    #[module(rename = "output.LayerNorm")]
    pub output_norm: LayerNorm,
    training: bool,
}

#[derive(Module)]
pub struct Bert {
    #[module(skip)]
    pub config: BertConfig,
    pub embeddings: BertEmbeddings,
    #[module(rename = "encoder.layer")]
    pub layers: Vec<BertLayer>,
    #[module(rename = "pooler.dense")]
    pub pooler: Linear,
    #[module(rename = "dropout")]
    rng: RngStream,
    training: bool,
}

/// Per-call settings threaded through the layers.
struct Ctx<'a> {
    training: bool,
    hidden_dropout: f64,
    attention_dropout: f64,
    heads: usize,
    rng: &'a mut Rng,
}

impl Ctx<'_> {
    fn dropout(&mut self, x: &Tensor, p: f64) -> Result<Tensor> {
        Ok(x.dropout(p, self.training, self.rng)?)
    }
}

impl BertLayer {
    fn new(c: &BertConfig, rng: &mut Option<&mut Rng>) -> Result<Self> {
        let (h, i) = (c.hidden_size, c.intermediate_size);
        let lin = |inp: usize, out: usize, rng: &mut Option<&mut Rng>| -> Result<LoraLinear> {
            Ok(LoraLinear::new(Linear::from_tensors(
                init_weight(&[out, inp], rng)?,
                Some(ferrograd_nn::init::zeros(&[out])?),
            )?))
        };
        Ok(BertLayer {
            query: lin(h, h, rng)?,
            key: lin(h, h, rng)?,
            value: lin(h, h, rng)?,
            attention_output: lin(h, h, rng)?,
            attention_norm: LayerNorm::new(&[h], c.layer_norm_eps)?,
            intermediate: lin(h, i, rng)?,
            output: lin(i, h, rng)?,
            output_norm: LayerNorm::new(&[h], c.layer_norm_eps)?,
            training: true,
        })
    }

    /// `x`: `[B, T, C]`, `mask`: additive `[B, 1, 1, T]` (None: no padding).
    fn forward(&self, x: &Tensor, mask: Option<&Tensor>, ctx: &mut Ctx) -> Result<Tensor> {
        let (b, t, c) = (x.dims()[0], x.dims()[1], x.dims()[2]);
        let (h, d) = (ctx.heads, c / ctx.heads);
        let heads = |l: &LoraLinear| -> Result<Tensor> {
            Ok(l.forward(x)?.reshape([b, t, h, d])?.transpose(1, 2)?)
        };
        let (q, k, v) = (heads(&self.query)?, heads(&self.key)?, heads(&self.value)?);
        let scale = 1.0 / (d as f64).sqrt();
        let scores = q.matmul(&k.transpose(-1, -2)?)?;
        let scores = match mask {
            // padding: the additive mask is per sequence, so the composition
            Some(m) => scores.mul_scalar(scale)?.add(m)?.softmax(-1)?,
            None => scores.attention_softmax(scale, false)?,
        };
        let probs = ctx.dropout(&scores, ctx.attention_dropout)?;
        let att = probs.matmul(&v)?.transpose(1, 2)?.reshape([b, t, c])?;
        let att = ctx.dropout(&self.attention_output.forward(&att)?, ctx.hidden_dropout)?;
        let hdn = self.attention_norm.forward(&x.add(&att)?)?;
        let ff = self
            .output
            .forward(&self.intermediate.forward(&hdn)?.gelu()?)?;
        let ff = ctx.dropout(&ff, ctx.hidden_dropout)?;
        self.output_norm.forward(&hdn.add(&ff)?)
    }

    fn linears_mut(&mut self) -> [(&'static str, &mut LoraLinear); 6] {
        [
            ("attention.self.query", &mut self.query),
            ("attention.self.key", &mut self.key),
            ("attention.self.value", &mut self.value),
            ("attention.output.dense", &mut self.attention_output),
            ("intermediate.dense", &mut self.intermediate),
            ("output.dense", &mut self.output),
        ]
    }
}

/// BERT's init, N(0, 0.02), from `rng`; zeros without one (weights about to be loaded: drawing
/// 22 million normals would cost more than reading the file).
fn init_weight(shape: &[usize], rng: &mut Option<&mut Rng>) -> Result<Tensor> {
    match rng {
        Some(r) => ferrograd_nn::init::normal(shape, 0.02, r),
        None => ferrograd_nn::init::zeros(shape),
    }
}

/// `[B, T]` mask of 1 (token) and 0 (padding), any dtype, to the additive `[B, 1, 1, T]` form;
/// None when nothing is padded (adding zeros would only cost a pass over the scores).
pub fn additive_mask(mask: &Tensor, dtype: DType) -> Result<Option<Tensor>> {
    if mask.rank() != 2 {
        return Err(Error::invalid(
            "Bert",
            format!("attention mask must be [B, T], got {:?}", mask.dims()),
        ));
    }
    let (b, t) = (mask.dims()[0], mask.dims()[1]);
    let keep: Vec<f64> = mask.to_dtype(DType::F64)?.to_vec::<f64>()?;
    if keep.iter().all(|&m| m != 0.0) {
        return Ok(None);
    }
    let add: Vec<f64> = keep
        .iter()
        .map(|&m| if m != 0.0 { 0.0 } else { f32::MIN as f64 })
        .collect();
    Ok(Some(Tensor::from_vec(add, [b, 1, 1, t])?.to_dtype(dtype)?))
}

/// Mean of the token vectors `[B, T, C]` over the positions where `mask` (`[B, T]`) is 1:
/// `sum_t h_t m_t / max(sum_t m_t, 1e-9)`, as sentence-transformers' mean pooling.
pub fn mean_pool(hidden: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let m = mask.to_dtype(hidden.dtype())?.unsqueeze(-1)?; // [B, T, 1]
    let summed = hidden.mul(&m)?.sum(&[1], false)?; // [B, C]
    let count = m.sum(&[1], false)?.clamp(Some(1e-9), None)?; // [B, 1]
    Ok(summed.div(&count)?)
}

/// Rows scaled to unit Euclidean length: `x / max(||x||, 1e-12)`, as `F.normalize`.
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let n = x
        .square()?
        .sum(&[-1], true)?
        .sqrt()?
        .clamp(Some(1e-12), None)?;
    Ok(x.div(&n)?)
}

impl Bert {
    /// A randomly initialised encoder (BERT's N(0, 0.02) init).
    pub fn new(config: BertConfig, rng: &mut Rng) -> Result<Self> {
        Self::build(config, Some(rng))
    }

    fn build(config: BertConfig, mut rng: Option<&mut Rng>) -> Result<Self> {
        config.check()?;
        let c = &config;
        let rng = &mut rng;
        let emb = |n: usize, rng: &mut Option<&mut Rng>| -> Result<Embedding> {
            Embedding::from_weight(init_weight(&[n, c.hidden_size], rng)?)
        };
        let positions = c.max_position_embeddings;
        let embeddings = BertEmbeddings {
            word_embeddings: emb(c.vocab_size, rng)?,
            position_embeddings: emb(positions, rng)?,
            token_type_embeddings: emb(c.type_vocab_size, rng)?,
            layer_norm: LayerNorm::new(&[c.hidden_size], c.layer_norm_eps)?,
            position_ids: Tensor::arange(0.0, positions as f64, 1.0, DType::I64)?
                .reshape([1, positions])?,
            training: true,
        };
        let layers = (0..c.num_hidden_layers)
            .map(|_| BertLayer::new(c, rng))
            .collect::<Result<_>>()?;
        let pooler = Linear::from_tensors(
            init_weight(&[c.hidden_size, c.hidden_size], rng)?,
            Some(ferrograd_nn::init::zeros(&[c.hidden_size])?),
        )?;
        let seed = rng.as_mut().map_or(0, |r| r.next_u64());
        Ok(Bert {
            config,
            embeddings,
            layers,
            pooler,
            rng: RngStream::new(seed),
            training: true,
        })
    }

    /// Loads `config.json` and `model.safetensors` from a Hugging Face model folder, strictly:
    /// a missing, extra or mis-shaped tensor is an error naming each difference.
    pub fn from_pretrained(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let config = BertConfig::from_file(dir.join("config.json"))?;
        let weights = dir.join("model.safetensors");
        let (mut tensors, _) = load_tensors(&weights)?;
        ferrograd_nn::serialize::require_finite(&weights, &tensors)?;
        // some exports prefix every name with "bert."
        if tensors.keys().all(|k| k.starts_with("bert.")) {
            tensors = tensors
                .into_iter()
                .map(|(k, v)| (k["bert.".len()..].to_string(), v))
                .collect();
        }
        // the configuration must describe these tensors before anything is built from it
        config
            .check_against(&|name| tensors.get(name).map(|t| t.dims().to_vec()))
            .map_err(|e| Error::file(dir.join("config.json"), e))?;
        let model = Bert::build(config, None)?;
        for t in tensors.values_mut() {
            if t.dtype().is_float() && t.dtype() != DType::F32 {
                *t = t.to_dtype(DType::F32)?;
            }
        }
        load_state_dict(&model, &tensors).map_err(|e| Error::file(&weights, e))?;
        Ok(model)
    }

    /// Reseeds the dropout generator (fine-tuning runs are reproducible from `--seed`).
    pub fn seed_dropout(&self, seed: u64) {
        self.rng.reseed(seed);
    }

    /// Last hidden states `[B, T, hidden]` for token ids `[B, T]` (i64), a 1/0 attention mask
    /// `[B, T]` and optional token types `[B, T]` (zeros when None).
    pub fn encode(&self, ids: &Tensor, mask: &Tensor, types: Option<&Tensor>) -> Result<Tensor> {
        if ids.rank() != 2 || ids.dtype() != DType::I64 {
            return Err(Error::invalid(
                "Bert",
                format!(
                    "expects i64 token ids [B, T], got {:?} {}",
                    ids.dims(),
                    ids.dtype()
                ),
            ));
        }
        let (b, t) = (ids.dims()[0], ids.dims()[1]);
        if mask.dims() != [b, t] {
            return Err(Error::invalid(
                "Bert",
                format!(
                    "attention mask {:?} does not match ids {:?}",
                    mask.dims(),
                    ids.dims()
                ),
            ));
        }
        if t > self.config.max_position_embeddings {
            return Err(Error::invalid(
                "Bert",
                format!(
                    "{t} tokens is more than max_position_embeddings {}",
                    self.config.max_position_embeddings
                ),
            ));
        }
        let vocab = self.config.vocab_size as i64;
        if ids.to_vec::<i64>()?.iter().any(|&i| i < 0 || i >= vocab) {
            return Err(Error::invalid(
                "Bert",
                format!("token id outside the vocabulary of {vocab}"),
            ));
        }
        let e = &self.embeddings;
        let pos = Tensor::arange(0.0, t as f64, 1.0, DType::I64)?;
        let types = match types {
            Some(tt) => tt.clone(),
            None => Tensor::zeros([b, t], DType::I64)?,
        };
        let x = e
            .word_embeddings
            .forward(ids)?
            .add(&e.position_embeddings.forward(&pos)?)?
            .add(&e.token_type_embeddings.forward(&types)?)?;
        let mut rng = self.rng.lock();
        let mut ctx = Ctx {
            training: self.training,
            hidden_dropout: self.config.hidden_dropout_prob,
            attention_dropout: self.config.attention_probs_dropout_prob,
            heads: self.config.num_attention_heads,
            rng: &mut rng,
        };
        let mut x = ctx.dropout(&e.layer_norm.forward(&x)?, self.config.hidden_dropout_prob)?;
        let add_mask = additive_mask(mask, x.dtype())?;
        for l in &self.layers {
            x = l.forward(&x, add_mask.as_ref(), &mut ctx)?;
        }
        Ok(x)
    }

    /// The pooler: `tanh(W h_[CLS] + b)` from hidden states `[B, T, C]`.
    pub fn pool_cls(&self, hidden: &Tensor) -> Result<Tensor> {
        let cls = hidden.narrow(1, 0, 1)?.squeeze(1)?;
        Ok(self.pooler.forward(&cls)?.tanh()?)
    }

    /// Unit-length sentence embeddings `[B, hidden]`: mean pooling over the mask, normalised.
    pub fn sentence_embeddings(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        l2_normalize(&mean_pool(&self.encode(ids, mask, None)?, mask)?)
    }

    /// Every linear layer of the encoder with its name relative to the model
    /// (`encoder.layer.3.attention.self.query`).
    pub fn linears_mut(&mut self) -> Vec<(String, &mut LoraLinear)> {
        let mut out = Vec::new();
        for (i, l) in self.layers.iter_mut().enumerate() {
            for (name, lin) in l.linears_mut() {
                out.push((format!("encoder.layer.{i}.{name}"), lin));
            }
        }
        out
    }

    /// Attaches rank-`rank` LoRA adapters to every encoder linear layer whose name ends with one
    /// of `targets` (`query`, `value`, `attention.output.dense`, `intermediate.dense`, ...), and
    /// freezes every other parameter of the encoder. Returns the adapted layers' names; an error
    /// when a target matches no layer.
    pub fn attach_lora(
        &mut self,
        targets: &[String],
        rank: usize,
        alpha: f64,
        rng: &mut Rng,
    ) -> Result<Vec<String>> {
        for t in targets {
            let hit = self
                .linears_mut()
                .iter()
                .any(|(n, _)| n.ends_with(&format!(".{t}")));
            if !hit {
                return Err(Error::invalid(
                    "LoRA",
                    format!(
                        "target {t:?} matches no layer (try query, key, value, attention.output.dense, intermediate.dense, output.dense)"
                    ),
                ));
            }
        }
        self.freeze()?;
        let mut adapted = Vec::new();
        for (name, lin) in self.linears_mut() {
            if targets.iter().any(|t| name.ends_with(&format!(".{t}"))) {
                lin.attach(rank, alpha, rng)?;
                adapted.push(name);
            }
        }
        Ok(adapted)
    }

    /// Marks every parameter of the encoder as frozen (no gradient is kept for it).
    pub fn freeze(&self) -> Result<()> {
        let mut err = None;
        self.visit_parameters("", &mut |_, t| {
            if let Err(e) = t.requires_grad_(false) {
                err = Some(e);
            }
        });
        match err {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// Folds every LoRA adapter into its base weight (for export as a plain BERT).
    pub fn merge_lora(&mut self) -> Result<()> {
        for (_, l) in self.linears_mut() {
            l.merge()?;
        }
        Ok(())
    }
}

impl Forward for Bert {
    /// Token ids `[B, T]` with no padding -> last hidden states `[B, T, hidden]`.
    fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let mask = Tensor::ones(ids.dims(), DType::I64)?;
        self.encode(ids, &mask, None)
    }
}

/// How a sentence vector is taken from the token vectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    /// Mean over the real tokens (sentence-transformers; what all-MiniLM-L6-v2 was trained for).
    Mean,
    /// BERT's pooler on the `[CLS]` token: `tanh(W h_0 + b)`.
    Cls,
}

/// A sequence classifier: BERT, pooling, dropout, and a linear head on the pooled vector.
/// Names: `bert.*` for the encoder and `classifier.weight`/`classifier.bias` for the head, as
/// Hugging Face's `BertForSequenceClassification`.
#[derive(Module)]
pub struct BertClassifier {
    pub bert: Bert,
    pub classifier: Linear,
    #[module(skip)]
    pub pooling: Pooling,
    #[module(skip)]
    pub dropout: f64,
    #[module(rename = "classifier_dropout")]
    rng: RngStream,
    training: bool,
}

impl BertClassifier {
    /// A head for `classes` classes on `bert`, initialised N(0, 0.02) with zero bias.
    pub fn new(
        bert: Bert,
        classes: usize,
        pooling: Pooling,
        dropout: f64,
        rng: &mut Rng,
    ) -> Result<Self> {
        if classes < 2 || !(0.0..1.0).contains(&dropout) {
            return Err(Error::invalid(
                "BertClassifier",
                format!(
                    "needs at least 2 classes and dropout in [0, 1), got {classes} and {dropout}"
                ),
            ));
        }
        let h = bert.config.hidden_size;
        let classifier = Linear::from_tensors(
            ferrograd_nn::init::normal(&[classes, h], 0.02, rng)?,
            Some(ferrograd_nn::init::zeros(&[classes])?),
        )?;
        Ok(BertClassifier {
            bert,
            classifier,
            pooling,
            dropout,
            rng: RngStream::new(rng.next_u64()),
            training: true,
        })
    }

    /// Reseeds both dropout generators (encoder and head).
    pub fn seed_dropout(&self, seed: u64) {
        self.bert.seed_dropout(seed);
        self.rng.reseed(seed ^ 0x0c1a_55e5);
    }

    /// Logits `[B, classes]` for ids and mask `[B, T]`.
    pub fn logits(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let hidden = self.bert.encode(ids, mask, None)?;
        let pooled = match self.pooling {
            Pooling::Mean => mean_pool(&hidden, mask)?,
            Pooling::Cls => self.bert.pool_cls(&hidden)?,
        };
        let pooled = {
            let mut rng = self.rng.lock();
            pooled.dropout(self.dropout, self.training, &mut rng)?
        };
        self.classifier.forward(&pooled)
    }
}

impl Forward for BertClassifier {
    /// Ids `[B, T]` without padding -> logits.
    fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        self.logits(ids, &Tensor::ones(ids.dims(), DType::I64)?)
    }
}
