//! The `Module` trait: named parameters, buffers and random streams with PyTorch's state_dict
//! names (`fc1.weight`, `layers.0.bias`, `bn1.running_mean`), and the train/eval mode.
//! `#[derive(Module)]` writes it from a struct's fields (see `ferrograd_derive`). The forward
//! pass is not part of it: a model's `forward` takes and returns what the model needs (ids and
//! a mask; an input and a state); layers from one tensor to one tensor implement [`Forward`].

use crate::error::{Error, Result};
use crate::rng_stream::RngStream;
pub use ferrograd_tensor::Tensor;
use std::collections::BTreeMap;

/// A layer or model: its parameters, buffers and random streams, and its mode.
pub trait Module: Send + Sync {
    /// Calls `f` with each trainable parameter and its full name (`prefix` + own name).
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor));

    /// Calls `f` with each non-trainable state tensor (running statistics) and its name.
    fn visit_buffers(&self, _prefix: &str, _f: &mut dyn FnMut(&str, &Tensor)) {}

    /// Calls `f` with each random stream the module draws from (dropout layers) and its name,
    /// so that checkpoints keep them.
    fn visit_rng_streams(&self, _prefix: &str, _f: &mut dyn FnMut(&str, &RngStream)) {}

    /// Switches training behaviour (dropout, batch statistics) on or off, recursively.
    fn set_training(&mut self, training: bool);

    /// Whether the module is in training mode.
    fn is_training(&self) -> bool;

    /// Training mode, as `model.train()`.
    fn train(&mut self) {
        self.set_training(true);
    }

    /// Evaluation mode, as `model.eval()`.
    fn eval(&mut self) {
        self.set_training(false);
    }
}

/// A layer from one tensor to one tensor (what [`Sequential`](crate::Sequential) chains).
pub trait Forward: Module {
    /// Computes the output for one batch.
    fn forward(&self, x: &Tensor) -> Result<Tensor>;
}

/// What `#[derive(Module)]` visits in a field: a `Tensor` is a parameter, an [`RngStream`] a
/// random stream, a module its own parameters, buffers and streams; `Option` and `Vec` of
/// those are visited when present, a `Vec`'s items named `0`, `1`, ...
pub trait Visit {
    fn visit_params(&self, _name: &str, _f: &mut dyn FnMut(&str, &Tensor)) {}
    fn visit_bufs(&self, _name: &str, _f: &mut dyn FnMut(&str, &Tensor)) {}
    fn visit_rngs(&self, _name: &str, _f: &mut dyn FnMut(&str, &RngStream)) {}
    fn set_mode(&mut self, _training: bool) {}
}

impl Visit for Tensor {
    fn visit_params(&self, name: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        f(name, self);
    }
}

impl Visit for RngStream {
    fn visit_rngs(&self, name: &str, f: &mut dyn FnMut(&str, &RngStream)) {
        f(name, self);
    }
}

impl<M: Module> Visit for M {
    fn visit_params(&self, name: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        self.visit_parameters(name, f);
    }
    fn visit_bufs(&self, name: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        self.visit_buffers(name, f);
    }
    fn visit_rngs(&self, name: &str, f: &mut dyn FnMut(&str, &RngStream)) {
        self.visit_rng_streams(name, f);
    }
    fn set_mode(&mut self, training: bool) {
        self.set_training(training);
    }
}

impl<T: Visit> Visit for Option<T> {
    fn visit_params(&self, name: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        if let Some(v) = self {
            v.visit_params(name, f);
        }
    }
    fn visit_bufs(&self, name: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        if let Some(v) = self {
            v.visit_bufs(name, f);
        }
    }
    fn visit_rngs(&self, name: &str, f: &mut dyn FnMut(&str, &RngStream)) {
        if let Some(v) = self {
            v.visit_rngs(name, f);
        }
    }
    fn set_mode(&mut self, training: bool) {
        if let Some(v) = self {
            v.set_mode(training);
        }
    }
}

impl<T: Visit> Visit for Vec<T> {
    fn visit_params(&self, name: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        for (i, v) in self.iter().enumerate() {
            v.visit_params(&join(name, &i.to_string()), f);
        }
    }
    fn visit_bufs(&self, name: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        for (i, v) in self.iter().enumerate() {
            v.visit_bufs(&join(name, &i.to_string()), f);
        }
    }
    fn visit_rngs(&self, name: &str, f: &mut dyn FnMut(&str, &RngStream)) {
        for (i, v) in self.iter().enumerate() {
            v.visit_rngs(&join(name, &i.to_string()), f);
        }
    }
    fn set_mode(&mut self, training: bool) {
        for v in self {
            v.set_mode(training);
        }
    }
}

/// Joins a prefix and a name with a dot (no dot for an empty prefix).
pub fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// The trainable parameters of a module, in registration order, with their names.
pub fn named_parameters(m: &dyn Module) -> Vec<(String, Tensor)> {
    let mut v = Vec::new();
    m.visit_parameters("", &mut |n, t| v.push((n.to_string(), t.clone())));
    v
}

/// The trainable parameters of a module, in registration order.
pub fn parameters(m: &dyn Module) -> Vec<Tensor> {
    named_parameters(m).into_iter().map(|(_, t)| t).collect()
}

/// The parameters that currently require a gradient (frozen ones, e.g. the base weights under a
/// LoRA adapter, are left out), with their names: what an optimizer should be given.
pub fn trainable_parameters(m: &dyn Module) -> Vec<(String, Tensor)> {
    let mut v = Vec::new();
    m.visit_parameters("", &mut |n, t| {
        if t.requires_grad() {
            v.push((n.to_string(), t.clone()))
        }
    });
    v
}

/// The module's random streams by name (e.g. `transformer.h.0.attn.dropout`).
pub fn rng_streams(m: &dyn Module) -> BTreeMap<String, [u64; 4]> {
    let mut d = BTreeMap::new();
    m.visit_rng_streams("", &mut |n, s| {
        d.insert(n.to_string(), s.state());
    });
    d
}

/// Number of trainable scalars.
pub fn num_parameters(m: &dyn Module) -> usize {
    parameters(m).iter().map(|t| t.numel()).sum()
}

/// Parameters and buffers by name, as PyTorch's `state_dict()`.
pub fn state_dict(m: &dyn Module) -> BTreeMap<String, Tensor> {
    let mut d = BTreeMap::new();
    m.visit_parameters("", &mut |n, t| {
        d.insert(n.to_string(), t.clone());
    });
    m.visit_buffers("", &mut |n, t| {
        d.insert(n.to_string(), t.clone());
    });
    d
}

/// Copies values into the module's tensors by name. Strict: a missing, unexpected or mis-shaped
/// tensor is an error listing every difference, and nothing is copied unless all match.
pub fn load_state_dict(m: &dyn Module, values: &BTreeMap<String, Tensor>) -> Result<()> {
    let own = state_dict(m);
    let missing: Vec<&String> = own.keys().filter(|k| !values.contains_key(*k)).collect();
    let unexpected: Vec<&String> = values.keys().filter(|k| !own.contains_key(*k)).collect();
    let mut problems = Vec::new();
    if !missing.is_empty() {
        problems.push(format!("missing tensors {missing:?}"));
    }
    if !unexpected.is_empty() {
        problems.push(format!("unexpected tensors {unexpected:?}"));
    }
    for (k, t) in &own {
        if let Some(v) = values.get(k) {
            if v.dims() != t.dims() {
                problems.push(format!(
                    "{k}: expected shape {:?}, got {:?}",
                    t.dims(),
                    v.dims()
                ));
            } else if v.dtype() != t.dtype() {
                problems.push(format!(
                    "{k}: expected dtype {}, got {}",
                    t.dtype(),
                    v.dtype()
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Err(Error::StateDict(problems.join("; ")));
    }
    for (k, t) in &own {
        t.copy_from(&values[k])?;
    }
    Ok(())
}

/// Copies `values` into the module's tensors of the same names, for a file that holds only
/// part of a model (a head, LoRA adapters): every given tensor must exist in the module with its
/// shape (converted to its dtype), and nothing is copied unless all do.
pub fn load_state_dict_partial(m: &dyn Module, values: &BTreeMap<String, Tensor>) -> Result<()> {
    let own = state_dict(m);
    let mut problems = Vec::new();
    for (k, v) in values {
        match own.get(k) {
            None => problems.push(format!("unexpected tensor {k}")),
            Some(t) if t.dims() != v.dims() => problems.push(format!(
                "{k}: expected shape {:?}, got {:?}",
                t.dims(),
                v.dims()
            )),
            Some(_) => {}
        }
    }
    if !problems.is_empty() {
        return Err(Error::StateDict(problems.join("; ")));
    }
    for (k, v) in values {
        let v = if v.dtype() != own[k].dtype() {
            v.to_dtype(own[k].dtype())?
        } else {
            v.clone()
        };
        own[k].copy_from(&v)?;
    }
    Ok(())
}
