//! Reverse-mode automatic differentiation.
//!
//! Every op that has an input requiring a gradient records a [`Node`]: its inputs and a closure
//! computing the vector-Jacobian product, i.e. given `g = dL/dout` it returns `dL/dinput_i =
//! g * d out / d input_i` for each input. `backward()` orders the graph topologically (an explicit
//! stack, no recursion, so graphs 100,000 ops deep are fine), then walks it from the output back,
//! summing gradients where a tensor feeds several ops, handing each node its output's gradient and
//! freeing that gradient and the node's saved tensors as soon as the node has run.

use crate::error::{Error, Result};
use crate::tensor::{Tensor, TensorId};
use std::cell::Cell;
use std::collections::{HashMap, HashSet};

/// The vector-Jacobian product of one op: `(output, grad_of_output) -> grad of each input`
/// (`None` where an input gets no gradient). It runs with gradients disabled.
pub type BackwardFn =
    Box<dyn Fn(&Tensor, &Tensor) -> Result<Vec<Option<Tensor>>> + Send + Sync + 'static>;

/// How an op result was made.
pub(crate) struct Node {
    name: &'static str,
    inputs: Vec<Tensor>,
    backward: BackwardFn,
}

impl Node {
    pub(crate) fn new(name: &'static str, inputs: Vec<Tensor>, backward: BackwardFn) -> Self {
        Node {
            name,
            inputs,
            backward,
        }
    }
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }
    pub(crate) fn into_inputs(self) -> Vec<Tensor> {
        self.inputs
    }
}

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Whether ops on this thread record the graph.
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(|g| g.get())
}

/// Restores the previous grad mode when dropped (also on panic).
pub struct GradModeGuard {
    prev: bool,
}

impl Drop for GradModeGuard {
    fn drop(&mut self) {
        GRAD_ENABLED.with(|g| g.set(self.prev));
    }
}

/// Sets the grad mode of this thread until the guard is dropped.
pub fn set_grad_enabled(on: bool) -> GradModeGuard {
    let prev = GRAD_ENABLED.with(|g| g.replace(on));
    GradModeGuard { prev }
}

/// Runs `f` without recording any graph, like `with torch.no_grad():`.
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    let _g = set_grad_enabled(false);
    f()
}

/// Tensors reachable from `root` through recorded nodes, in topological order (inputs before
/// the ops that use them).
fn topo_order(root: &Tensor) -> Vec<Tensor> {
    let mut order = Vec::new();
    let mut seen: HashSet<TensorId> = HashSet::new();
    // (tensor, children already pushed)
    let mut stack: Vec<(Tensor, bool)> = vec![(root.clone(), false)];
    while let Some((t, expanded)) = stack.pop() {
        if expanded {
            order.push(t);
            continue;
        }
        if !seen.insert(t.id()) {
            continue;
        }
        let inputs: Vec<Tensor> = t.with_node(|n| {
            n.map(|n| {
                n.inputs
                    .iter()
                    .filter(|i| i.requires_grad())
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
        });
        stack.push((t, true));
        for i in inputs {
            if !seen.contains(&i.id()) {
                stack.push((i, false));
            }
        }
    }
    order
}

fn accumulate(map: &mut HashMap<TensorId, Tensor>, id: TensorId, g: Tensor) -> Result<()> {
    match map.remove(&id) {
        None => {
            map.insert(id, g);
        }
        Some(prev) => {
            map.insert(id, prev.add(&g)?);
        }
    }
    Ok(())
}

/// Called with each leaf that requires a gradient as soon as its gradient for this backward is
/// final (PyTorch's `register_post_accumulate_grad_hook`): data-parallel training starts a
/// bucket's allreduce there while the backward goes on.
pub type GradReadyHook<'a> = &'a mut dyn FnMut(&Tensor) -> Result<()>;

pub(crate) fn backward(
    root: &Tensor,
    grad: Option<&Tensor>,
    retain_graph: bool,
    mut hook: Option<GradReadyHook<'_>>,
) -> Result<()> {
    if !root.requires_grad() {
        return Err(Error::autograd(
            "backward",
            "tensor is not part of a graph: it does not require grad (mark parameters with \
             requires_grad_(true) and compute outside no_grad)",
        ));
    }
    let _mode = set_grad_enabled(false);
    let seed = match grad {
        Some(g) => {
            if g.dims() != root.dims() {
                return Err(Error::shape(
                    "backward",
                    format!(
                        "gradient shape {:?} does not match output shape {:?}",
                        g.dims(),
                        root.dims()
                    ),
                ));
            }
            if g.dtype() != root.dtype() {
                return Err(Error::dtype_mismatch("backward", root.dtype(), g.dtype()));
            }
            g.detach()
        }
        None => {
            if root.numel() != 1 {
                return Err(Error::autograd(
                    "backward",
                    format!(
                        "grad can be implicitly created only for scalar outputs, got shape {:?}; \
                         use backward_with(grad)",
                        root.dims()
                    ),
                ));
            }
            Tensor::ones_like(root)
        }
    };
    let order = topo_order(root);
    // uses of each leaf by the nodes of this graph: when the last one has run, the leaf's
    // gradient is final and goes to its slot (and the hook) at once, as PyTorch's engine does,
    // rather than when the walk reaches the leaf (which, for the first layer's input-side
    // weights, can be long before, and for the last layer's, long after)
    let mut uses: HashMap<TensorId, usize> = HashMap::new();
    for t in &order {
        t.with_node(|n| {
            for i in n.iter().flat_map(|n| n.inputs.iter()) {
                if i.requires_grad() && i.is_leaf() {
                    *uses.entry(i.id()).or_insert(0) += 1;
                }
            }
        });
    }
    let mut grads: HashMap<TensorId, Tensor> = HashMap::new();
    grads.insert(root.id(), seed);
    let mut route = Routing {
        grads: &mut grads,
        uses: &mut uses,
        hook: hook.as_mut(),
    };
    for t in order.into_iter().rev() {
        let Some(g) = route.grads.remove(&t.id()) else {
            continue;
        };
        if t.is_leaf() {
            // the root itself, or a leaf some of whose users got no gradient
            route.deliver(&t, g)?;
            continue;
        }
        let node = if retain_graph { None } else { t.take_node() };
        match node {
            Some(n) => run_node(&n, &t, &g, &mut route)?,
            None => match t.with_node(|n| n.map(|n| run_node(n, &t, &g, &mut route))) {
                Some(r) => r?,
                None => {
                    return Err(Error::autograd(
                        "backward",
                        "trying to backward through the graph a second time: it was \
                         released by the first backward (use backward_retain_graph)",
                    ))
                }
            },
        }
    }
    Ok(())
}

/// Where the gradients flowing back go: summed per tensor until used, and for a leaf into its
/// `.grad()` once every use has contributed.
struct Routing<'m, 'h, 'a> {
    grads: &'m mut HashMap<TensorId, Tensor>,
    uses: &'m mut HashMap<TensorId, usize>,
    hook: Option<&'h mut GradReadyHook<'a>>,
}

impl Routing<'_, '_, '_> {
    /// Adds `g` to the leaf's accumulated gradient (from earlier backwards: gradient
    /// accumulation) and tells the hook it is final.
    fn deliver(&mut self, t: &Tensor, g: Tensor) -> Result<()> {
        if !t.requires_grad() {
            return Ok(());
        }
        let g = if g.is_contiguous() {
            g
        } else {
            g.contiguous()?
        };
        {
            let mut slot = t.grad_slot();
            *slot = Some(match slot.take() {
                None => g,
                Some(prev) => prev.add(&g)?,
            });
        }
        if let Some(h) = self.hook.as_mut() {
            h(t)?;
        }
        Ok(())
    }

    /// One use of `inp` has run; `g` is its gradient through that use, if any.
    fn add(&mut self, inp: &Tensor, g: Option<Tensor>) -> Result<()> {
        if let Some(g) = g {
            accumulate(self.grads, inp.id(), g)?;
        }
        if !inp.is_leaf() {
            return Ok(());
        }
        let left = self.uses.get_mut(&inp.id()).map(|n| {
            *n = n.saturating_sub(1);
            *n
        });
        if left == Some(0) {
            if let Some(g) = self.grads.remove(&inp.id()) {
                self.deliver(inp, g)?;
            }
        }
        Ok(())
    }
}

/// Runs one node's vector-Jacobian product and routes the input gradients.
fn run_node(n: &Node, out: &Tensor, g: &Tensor, route: &mut Routing<'_, '_, '_>) -> Result<()> {
    let input_grads = (n.backward)(out, g)?;
    for (inp, ig) in n.inputs.iter().zip(input_grads) {
        if !inp.requires_grad() {
            continue;
        }
        if let Some(ig) = &ig {
            if ig.dims() != inp.dims() {
                return Err(Error::autograd(
                    "backward",
                    format!(
                        "op {} produced a gradient of shape {:?} for an input of shape {:?}",
                        n.name,
                        ig.dims(),
                        inp.dims()
                    ),
                ));
            }
        }
        route.add(inp, ig)?;
    }
    Ok(())
}
