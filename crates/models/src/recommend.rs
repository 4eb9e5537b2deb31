//! Recommenders over learned user and item embeddings:
//!
//! - **MF**, biased matrix factorisation (Koren's "SVD"): `r(u, i) = mu + b_u + b_i + p_u . q_i`;
//! - **SVD++**, with the implicit feedback of the items a user rated, `N(u)`:
//!   `r(u, i) = mu + b_u + b_i + q_i . (p_u + |N(u)|^-1/2 sum_{j in N(u)} y_j)`, the sum one
//!   embedding bag per user;
//! - **NeuMF** (He et al. 2017, "Neural Collaborative Filtering"): a GMF tower `p_u * q_i` (dim
//!   d) and an MLP tower over separate embeddings (2d each, layers 4d -> 2d -> d with ReLU),
//!   joined by one linear layer to a logit, for implicit feedback.
//!
//! Every table is an [`Embedding`] looked up with `sparse = true`: a batch's backward touches
//! only its users' and items' rows, and the optimizer updates only those. The configuration
//! (sizes, and the ids of users and items, so a file answers for the ids a user knows) travels
//! in the weights file's metadata.

use ferrograd_nn::module::join;
use ferrograd_nn::{init, Embedding, Error, Forward, Linear, Module, Result};
use ferrograd_tensor::{BagMode, DType, Rng, Tensor};
use std::collections::HashMap;

/// Which recommender.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecArch {
    Mf,
    SvdPlusPlus,
    NeuMf,
}

impl RecArch {
    pub fn name(self) -> &'static str {
        match self {
            RecArch::Mf => "mf",
            RecArch::SvdPlusPlus => "svdpp",
            RecArch::NeuMf => "neumf",
        }
    }
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "mf" => Some(RecArch::Mf),
            "svdpp" => Some(RecArch::SvdPlusPlus),
            "neumf" => Some(RecArch::NeuMf),
            _ => None,
        }
    }
    /// Whether the model predicts ratings (else it scores implicit feedback).
    pub fn predicts_ratings(self) -> bool {
        self != RecArch::NeuMf
    }
}

/// What a recommender is built from, kept in its weights file's metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct RecConfig {
    pub arch: RecArch,
    /// Embedding dimension (NeuMF: the predictive factors d).
    pub dim: usize,
    /// The id of each user and item index, as in the interactions file.
    pub user_ids: Vec<String>,
    pub item_ids: Vec<String>,
    /// The rating scale predictions are clamped to.
    pub scale: (f32, f32),
    /// SVD++: interactions in `N(u)` over all users (the size of the implicit-feedback buffer).
    pub implicit_len: usize,
}

/// The largest embedding dimension accepted.
pub const MAX_DIM: usize = 4096;

impl RecConfig {
    pub fn users(&self) -> usize {
        self.user_ids.len()
    }
    pub fn items(&self) -> usize {
        self.item_ids.len()
    }

    /// The metadata entries of a weights file.
    pub fn to_metadata(&self) -> HashMap<String, String> {
        let cfg = serde_json::json!({
            "arch": self.arch.name(), "dim": self.dim, "scale": [self.scale.0, self.scale.1],
            "implicit_len": self.implicit_len,
        });
        HashMap::from([
            ("format".to_string(), "ferrograd-recommend".to_string()),
            ("config".to_string(), cfg.to_string()),
            (
                "user_ids".to_string(),
                serde_json::to_string(&self.user_ids).unwrap_or_default(),
            ),
            (
                "item_ids".to_string(),
                serde_json::to_string(&self.item_ids).unwrap_or_default(),
            ),
        ])
    }

    /// The configuration a weights file's metadata describes; the error says what is missing.
    pub fn from_metadata(md: &HashMap<String, String>) -> std::result::Result<Self, String> {
        if md.get("format").map(String::as_str) != Some("ferrograd-recommend") {
            return Err("not a recommender (no format ferrograd-recommend in the metadata: written by `ferrograd recommend train`?)".into());
        }
        let cfg: serde_json::Value =
            serde_json::from_str(md.get("config").ok_or("no config in the metadata")?)
                .map_err(|e| format!("config metadata: {e}"))?;
        let arch = cfg["arch"]
            .as_str()
            .and_then(RecArch::from_name)
            .ok_or("no known arch (mf, svdpp, neumf) in the config metadata")?;
        let dim = cfg["dim"]
            .as_u64()
            .map(|d| d as usize)
            .filter(|d| (1..=MAX_DIM).contains(d))
            .ok_or(format!("no dim in 1..={MAX_DIM} in the config metadata"))?;
        let ids = |k: &str| -> std::result::Result<Vec<String>, String> {
            let v: Vec<String> =
                serde_json::from_str(md.get(k).ok_or(format!("no {k} in the metadata"))?)
                    .map_err(|e| format!("{k} metadata: {e}"))?;
            if v.is_empty() {
                return Err(format!("{k} in the metadata is empty"));
            }
            Ok(v)
        };
        let scale = (
            cfg["scale"][0].as_f64().unwrap_or(1.0) as f32,
            cfg["scale"][1].as_f64().unwrap_or(5.0) as f32,
        );
        Ok(RecConfig {
            arch,
            dim,
            user_ids: ids("user_ids")?,
            item_ids: ids("item_ids")?,
            scale,
            implicit_len: cfg["implicit_len"].as_u64().unwrap_or(0) as usize,
        })
    }
}

/// A recommender (see the module doc); the towers a model does not have are None.
pub struct Recommender {
    pub config: RecConfig,
    /// MF and SVD++: `p_u`, `q_i`; NeuMF: the GMF tower's embeddings.
    pub user_factors: Embedding,
    pub item_factors: Embedding,
    pub user_bias: Option<Embedding>,
    pub item_bias: Option<Embedding>,
    /// SVD++'s `y_j`.
    pub implicit: Option<Embedding>,
    /// NeuMF's MLP tower: its embeddings and layers, and the joining layer.
    pub mlp_user: Option<Embedding>,
    pub mlp_item: Option<Embedding>,
    pub mlp: Vec<Linear>,
    pub predict: Option<Linear>,
    /// MF and SVD++: the mean training rating `mu` (`[1]`).
    pub global_mean: Tensor,
    /// SVD++: `N(u)` as CSR, `rated_offsets` `[users + 1]` into `rated_items` (i64).
    pub rated_offsets: Tensor,
    pub rated_items: Tensor,
    training: bool,
}

impl Module for Recommender {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        let mut emb = |name: &str, e: &Option<&Embedding>| {
            if let Some(e) = e {
                e.visit_parameters(&join(prefix, name), f);
            }
        };
        emb("user_factors", &Some(&self.user_factors));
        emb("item_factors", &Some(&self.item_factors));
        emb("user_bias", &self.user_bias.as_ref());
        emb("item_bias", &self.item_bias.as_ref());
        emb("implicit", &self.implicit.as_ref());
        emb("mlp_user", &self.mlp_user.as_ref());
        emb("mlp_item", &self.mlp_item.as_ref());
        for (k, l) in self.mlp.iter().enumerate() {
            l.visit_parameters(&join(prefix, &format!("mlp.{k}")), f);
        }
        if let Some(p) = &self.predict {
            p.visit_parameters(&join(prefix, "predict"), f);
        }
    }
    fn visit_buffers(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        if self.config.arch.predicts_ratings() {
            f(&join(prefix, "global_mean"), &self.global_mean);
        }
        if self.config.arch == RecArch::SvdPlusPlus {
            f(&join(prefix, "rated_offsets"), &self.rated_offsets);
            f(&join(prefix, "rated_items"), &self.rated_items);
        }
    }
    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
    fn is_training(&self) -> bool {
        self.training
    }
}

fn table(rows: usize, dim: usize, std: f64, rng: &mut Rng) -> Result<Embedding> {
    let w = if std == 0.0 {
        init::zeros(&[rows, dim])?
    } else {
        init::normal(&[rows, dim], std, rng)?
    };
    Ok(Embedding::from_weight(w)?.with_sparse(true))
}

fn ids_tensor(v: &[u32]) -> Result<Tensor> {
    Ok(Tensor::from_vec(
        v.iter().map(|&x| x as i64).collect::<Vec<_>>(),
        [v.len()],
    )?)
}

/// One batch's scores and, for the rating models, the squared norms of what it looked up.
pub struct Scored {
    /// `[B]`: predicted ratings (MF, SVD++) or logits (NeuMF).
    pub scores: Tensor,
    /// Sum over the batch of `|p_u|^2 + |q_i|^2` (+ `|implicit(u)|^2` for SVD++).
    pub factor_norms: Option<Tensor>,
    /// Sum over the batch of `b_u^2 + b_i^2`.
    pub bias_norms: Option<Tensor>,
}

impl Recommender {
    /// A new model. `rated` (SVD++ only) is `N(u)` for every user; `global_mean` the mean
    /// training rating. Initial values: factors N(0, `init_std`), biases 0, NeuMF's embeddings
    /// N(0, 0.01) as in the NCF paper's code, its layers PyTorch's default.
    pub fn new(
        config: RecConfig,
        global_mean: f64,
        rated: Option<&[Vec<u32>]>,
        init_std: f64,
        rng: &mut Rng,
    ) -> Result<Self> {
        let (u, i, d) = (config.users(), config.items(), config.dim);
        if d == 0 || d > MAX_DIM || u == 0 || i == 0 {
            return Err(Error::invalid(
                "recommender",
                format!("needs users, items and a dim in 1..={MAX_DIM}, got {u}, {i} and {d}"),
            ));
        }
        // the tables, their gradients' worst case and two optimizer moments, before allocating
        let width = if config.arch == RecArch::NeuMf {
            3 * d
        } else {
            2 * d + 1
        };
        let weights = (u as u128 + i as u128) * width as u128;
        if let Some(mem) = ferrograd_tensor::creation::physical_memory() {
            if weights.saturating_mul(16) > mem as u128 {
                return Err(Error::invalid(
                    "recommender",
                    format!(
                        "{u} users and {i} items of dim {d} make {weights} weights, more than this machine's {} of memory holds for training",
                        ferrograd_tensor::files::human_size(mem)
                    ),
                ));
            }
        }
        let std = if config.arch == RecArch::NeuMf {
            0.01
        } else {
            init_std
        };
        let user_factors = table(u, d, std, rng)?;
        let item_factors = table(i, d, std, rng)?;
        let mut m = Recommender {
            user_factors,
            item_factors,
            user_bias: None,
            item_bias: None,
            implicit: None,
            mlp_user: None,
            mlp_item: None,
            mlp: Vec::new(),
            predict: None,
            global_mean: Tensor::from_vec(vec![global_mean as f32], [1])?,
            rated_offsets: Tensor::from_vec(vec![0i64], [1])?,
            rated_items: Tensor::from_vec(vec![0i64], [1])?,
            training: true,
            config,
        };
        match m.config.arch {
            RecArch::Mf | RecArch::SvdPlusPlus => {
                m.user_bias = Some(table(u, 1, 0.0, rng)?);
                m.item_bias = Some(table(i, 1, 0.0, rng)?);
                if m.config.arch == RecArch::SvdPlusPlus {
                    m.implicit = Some(table(i, d, init_std * 0.1, rng)?);
                    let (off, items) = match rated {
                        Some(r) if r.len() == u => {
                            let mut off = vec![0i64];
                            let mut items = Vec::new();
                            for row in r {
                                items.extend(row.iter().map(|&x| x as i64));
                                off.push(items.len() as i64);
                            }
                            (off, items)
                        }
                        _ => {
                            return Err(Error::invalid(
                                "svd++",
                                format!("needs the rated items of each of the {u} users"),
                            ))
                        }
                    };
                    m.config.implicit_len = items.len();
                    let n = items.len().max(1);
                    let items = if items.is_empty() { vec![0] } else { items };
                    m.rated_offsets = Tensor::from_vec(off, [u + 1])?;
                    m.rated_items = Tensor::from_vec(items, [n])?;
                }
            }
            RecArch::NeuMf => {
                m.mlp_user = Some(table(u, 2 * d, 0.01, rng)?);
                m.mlp_item = Some(table(i, 2 * d, 0.01, rng)?);
                m.mlp = vec![Linear::new(4 * d, 2 * d, rng)?, Linear::new(2 * d, d, rng)?];
                m.predict = Some(Linear::new(2 * d, 1, rng)?);
            }
        }
        Ok(m)
    }

    /// An empty model of `config`'s shapes, for loading a weights file into.
    pub fn for_loading(config: RecConfig) -> Result<Self> {
        let arch = config.arch;
        let users = config.users();
        let len = config.implicit_len;
        let rated: Vec<Vec<u32>> = if arch == RecArch::SvdPlusPlus {
            // placeholder rows of the right total length; the file's buffers replace them
            let mut r = vec![Vec::new(); users];
            r[0] = vec![0; len];
            r
        } else {
            Vec::new()
        };
        Self::new(config, 0.0, Some(&rated), 0.0, &mut Rng::new(0))
    }

    /// `|N(u)|^-1/2 sum_{j in N(u)} y_j` for each user of the batch: `[B, dim]`.
    fn implicit_sum(&self, y: &Embedding, users: &[u32]) -> Result<Tensor> {
        let (ids, offsets, weights) = self.rated_offsets.with_data::<i64, _>(|off| {
            self.rated_items.with_data::<i64, _>(|items| {
                let mut ids = Vec::new();
                let mut offsets = Vec::with_capacity(users.len());
                let mut weights = Vec::new();
                for &u in users {
                    let (a, b) = (off[u as usize] as usize, off[u as usize + 1] as usize);
                    offsets.push(ids.len() as i64);
                    ids.extend_from_slice(&items[a..b]);
                    let w = 1.0 / ((b - a).max(1) as f32).sqrt();
                    weights.extend(std::iter::repeat_n(w, b - a));
                }
                (ids, offsets, weights)
            })
        })??;
        let n = ids.len();
        let b = offsets.len();
        y.bag(
            &Tensor::from_vec(ids, [n])?,
            &Tensor::from_vec(offsets, [b])?,
            Some(&Tensor::from_vec(weights, [n])?),
            BagMode::Sum,
        )
    }

    /// Checks that every index is in range, naming the first that is not.
    fn check(&self, users: &[u32], items: &[u32]) -> Result<()> {
        if users.len() != items.len() {
            return Err(Error::invalid(
                "recommender",
                format!("{} users for {} items", users.len(), items.len()),
            ));
        }
        if let Some(u) = users.iter().find(|&&u| u as usize >= self.config.users()) {
            return Err(Error::invalid(
                "recommender",
                format!(
                    "user index {u} is outside the {} users",
                    self.config.users()
                ),
            ));
        }
        if let Some(i) = items.iter().find(|&&i| i as usize >= self.config.items()) {
            return Err(Error::invalid(
                "recommender",
                format!(
                    "item index {i} is outside the {} items",
                    self.config.items()
                ),
            ));
        }
        Ok(())
    }

    /// Scores of the pairs `(users[k], items[k])` and what the regularisers need.
    pub fn score(&self, users: &[u32], items: &[u32]) -> Result<Scored> {
        self.check(users, items)?;
        let b = users.len();
        let (ut, it) = (ids_tensor(users)?, ids_tensor(items)?);
        let sq = |t: &Tensor| -> Result<Tensor> { Ok(t.mul(t)?.sum_all()?) };
        match self.config.arch {
            RecArch::Mf | RecArch::SvdPlusPlus => {
                let mut pu = self.user_factors.forward(&ut)?;
                let qi = self.item_factors.forward(&it)?;
                let mut factor_norms = sq(&pu)?.add(&sq(&qi)?)?;
                if let Some(y) = &self.implicit {
                    let imp = self.implicit_sum(y, users)?;
                    factor_norms = factor_norms.add(&sq(&imp)?)?;
                    pu = pu.add(&imp)?;
                }
                let (bu, bi) = match (&self.user_bias, &self.item_bias) {
                    (Some(bu), Some(bi)) => (
                        bu.forward(&ut)?.reshape([b])?,
                        bi.forward(&it)?.reshape([b])?,
                    ),
                    _ => return Err(Error::invalid("recommender", "a rating model has biases")),
                };
                let dot = pu.mul(&qi)?.sum(&[-1], false)?;
                let scores = dot.add(&bu)?.add(&bi)?.add(&self.global_mean)?;
                let bias_norms = sq(&bu)?.add(&sq(&bi)?)?;
                Ok(Scored {
                    scores,
                    factor_norms: Some(factor_norms),
                    bias_norms: Some(bias_norms),
                })
            }
            RecArch::NeuMf => {
                let (Some(mu), Some(mi), Some(pred)) =
                    (&self.mlp_user, &self.mlp_item, &self.predict)
                else {
                    return Err(Error::invalid("neumf", "the MLP tower is missing"));
                };
                let gmf = self
                    .user_factors
                    .forward(&ut)?
                    .mul(&self.item_factors.forward(&it)?)?;
                let mut h = Tensor::cat(&[&mu.forward(&ut)?, &mi.forward(&it)?], 1)?;
                for l in &self.mlp {
                    h = l.forward_relu(&h)?;
                }
                let joined = Tensor::cat(&[&gmf, &h], 1)?;
                Ok(Scored {
                    scores: pred.forward(&joined)?.reshape([b])?,
                    factor_norms: None,
                    bias_norms: None,
                })
            }
        }
    }

    /// Scores of `user` for every item, without recording a graph: ratings clamped to the
    /// scale (MF, SVD++) or probabilities (NeuMF).
    pub fn score_all_items(&self, user: u32) -> Result<Vec<f32>> {
        self.score_matrix(&[user])
    }

    /// Scores of every item for each of `users`, row-major `[users, items]`, without a graph.
    /// MF and SVD++ take one matrix product of the users' vectors with the item table, then add
    /// the biases and clamp in one pass; NeuMF scores the pairs.
    pub fn score_matrix(&self, users: &[u32]) -> Result<Vec<f32>> {
        let n = self.config.items();
        self.check(users, &vec![0; users.len()])?;
        if !self.config.arch.predicts_ratings() {
            let items: Vec<u32> = (0..n as u32).collect();
            let mut out = Vec::with_capacity(users.len() * n);
            for &u in users {
                out.extend(self.score_pairs(&vec![u; n], &items)?);
            }
            return Ok(out);
        }
        let (Some(bu), Some(bi)) = (&self.user_bias, &self.item_bias) else {
            return Err(Error::invalid("recommender", "a rating model has biases"));
        };
        ferrograd_tensor::no_grad(|| -> Result<Vec<f32>> {
            let ut = ids_tensor(users)?;
            let mut pu = self.user_factors.forward(&ut)?;
            if let Some(y) = &self.implicit {
                pu = pu.add(&self.implicit_sum(y, users)?)?;
            }
            let dots = pu.matmul(&self.item_factors.weight.t()?)?.contiguous()?;
            let (lo, hi) = self.config.scale;
            let mu = self.global_mean.to_vec::<f32>()?[0];
            let ub = bu.forward(&ut)?.to_vec::<f32>()?;
            let out = bi.weight.with_data::<f32, _>(|ib| {
                dots.with_data::<f32, _>(|d| {
                    let mut out = vec![0f32; d.len()];
                    for ((o, row), &b) in out.chunks_mut(n).zip(d.chunks(n)).zip(&ub) {
                        for ((o, &x), &c) in o.iter_mut().zip(row).zip(&ib[..n]) {
                            *o = (x + b + c + mu).clamp(lo, hi);
                        }
                    }
                    out
                })
            })??;
            Ok(out)
        })
    }

    /// [`Recommender::score`] in inference: clamped ratings or probabilities.
    pub fn score_pairs(&self, users: &[u32], items: &[u32]) -> Result<Vec<f32>> {
        ferrograd_tensor::no_grad(|| {
            let s = self.score(users, items)?.scores;
            let s = if self.config.arch.predicts_ratings() {
                let (lo, hi) = self.config.scale;
                s.clamp(Some(lo as f64), Some(hi as f64))?
            } else {
                s.sigmoid()?
            };
            Ok(s.to_dtype(DType::F32)?.to_vec::<f32>()?)
        })
    }

    /// The item embedding used to find similar items: `q_i` (NeuMF: the GMF tower's).
    pub fn item_vectors(&self) -> &Tensor {
        &self.item_factors.weight
    }
}
