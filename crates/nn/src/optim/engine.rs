//! The optimizer engine: everything an optimizer is besides its update rule. It owns the
//! parameter groups (each with its learning rate and weight decay), the per-parameter state
//! (the step count and the rule's buffers, created on a parameter's first step, in the
//! parameter's dtype), `state_dict` / `load_state_dict` (through [`Optimizer`]), the dispatch on
//! f32 / f64, and the parallel chunking: a parameter of at least two [`PAR_CHUNK`]s is cut into
//! chunks of that many elements, each updated on its own task with the matching pieces of every
//! buffer. Rules are elementwise, so the chunks (and the thread count) cannot change a value.
//!
//! A new optimizer is one file: a type holding its settings that implements [`Rule`].

use super::{check_groups, empty_states, OptFloat, Optimizer, ParamGroup, ParamState};
use crate::error::{Error, Result};
use ferrograd_tensor::{DType, Tensor};
use rayon::prelude::*;

/// Elements per parallel task (parameters of fewer than twice this stay on the calling thread).
pub const PAR_CHUNK: usize = 1 << 14;

/// What one update of one parameter sees besides the values: its group's rate and decay and
/// the step number (1-based, counted per parameter as PyTorch does).
#[derive(Clone, Copy, Debug)]
pub struct StepCtx {
    pub lr: f64,
    pub weight_decay: f64,
    pub step: u64,
    /// The update is of the rows a row-sparse gradient touched (a rule may treat it apart:
    /// SparseAdam is Adam on a dense gradient).
    pub sparse: bool,
}

/// An optimizer's update rule, elementwise over a parameter, its gradient and its buffers.
pub trait Rule: Send + Sync {
    /// PyTorch's class name, for messages.
    const NAME: &'static str;
    /// The names of the per-parameter buffers for these settings (state_dict keys), in the
    /// order `update` receives them; only what the settings use (no AMSGrad buffer without it).
    fn buffers(&self) -> &'static [&'static str];
    /// The initial value of buffer `i`.
    fn initial(&self, _i: usize) -> f64 {
        0.0
    }
    /// Updates `p` in place from `g`, with `bufs` the chunk's pieces of `buffers()`.
    fn update<T: OptFloat>(&self, c: &StepCtx, p: &mut [T], g: &[T], bufs: &mut [&mut [T]]);
    /// The momentum-like coefficient a one-cycle schedule varies, if there is one.
    fn momentum(&self) -> Option<f64> {
        None
    }
    fn set_momentum(&mut self, _m: f64) {}
}

/// An optimizer: groups, state and a [`Rule`]. Its settings are reached through it (`Deref`),
/// e.g. `sgd.momentum`.
pub struct Engine<R: Rule> {
    groups: Vec<ParamGroup>,
    states: Vec<Vec<ParamState>>,
    pub rule: R,
}

impl<R: Rule> std::ops::Deref for Engine<R> {
    type Target = R;
    fn deref(&self) -> &R {
        &self.rule
    }
}

impl<R: Rule> std::ops::DerefMut for Engine<R> {
    fn deref_mut(&mut self) -> &mut R {
        &mut self.rule
    }
}

impl<R: Rule> Engine<R> {
    /// An optimizer of `rule` over `groups` (learning rates and decays checked).
    pub fn from_rule(groups: Vec<ParamGroup>, rule: R) -> Result<Self> {
        check_groups(R::NAME, &groups)?;
        let states = empty_states(&groups);
        Ok(Engine {
            groups,
            states,
            rule,
        })
    }
}

impl<R: Rule> Optimizer for Engine<R> {
    fn step(&mut self) -> Result<()> {
        for (g, sts) in self.groups.iter().zip(&mut self.states) {
            let c = (g.lr, g.weight_decay);
            for (p, st) in g.params.iter().zip(sts.iter_mut()) {
                step_param(&self.rule, p, st, c)?;
            }
        }
        Ok(())
    }
    fn groups(&self) -> &[ParamGroup] {
        &self.groups
    }
    fn groups_mut(&mut self) -> &mut [ParamGroup] {
        &mut self.groups
    }
    fn buffer_names(&self) -> &'static [&'static str] {
        self.rule.buffers()
    }
    fn states(&self) -> &[Vec<ParamState>] {
        &self.states
    }
    fn states_mut(&mut self) -> &mut Vec<Vec<ParamState>> {
        &mut self.states
    }
    fn momentum(&self) -> Option<f64> {
        self.rule.momentum()
    }
    fn set_momentum(&mut self, m: f64) {
        self.rule.set_momentum(m);
    }
}

/// One parameter's update; parameters without a gradient are skipped, as in PyTorch. A
/// parameter with only a row-sparse gradient has only those rows updated (see [`sparse_step`]);
/// one with both a dense and a sparse gradient is updated by their sum, densely.
fn step_param<R: Rule>(rule: &R, p: &Tensor, st: &mut ParamState, c: (f64, f64)) -> Result<()> {
    let g = match (p.grad(), p.sparse_grad()) {
        (None, None) => return Ok(()),
        (None, Some(s)) => {
            return match p.dtype() {
                DType::F32 => sparse_step::<f32, R>(rule, p, &s, st, c),
                DType::F64 => sparse_step::<f64, R>(rule, p, &s, st, c),
                d => Err(Error::invalid(
                    R::NAME,
                    format!("cannot update a parameter of dtype {d}"),
                )),
            }
        }
        (Some(g), None) => g,
        (Some(g), Some(s)) => g.add(&s.to_dense()?)?,
    };
    match p.dtype() {
        DType::F32 => typed_step::<f32, R>(rule, p, &g, st, c),
        DType::F64 => typed_step::<f64, R>(rule, p, &g, st, c),
        d => Err(Error::invalid(
            R::NAME,
            format!("cannot update a parameter of dtype {d}"),
        )),
    }
}

/// The state buffers of a parameter of `n` elements, created on its first step.
fn take_bufs<T: OptFloat, R: Rule>(rule: &R, st: &mut ParamState, n: usize) -> Result<Vec<Vec<T>>> {
    let nbufs = rule.buffers().len();
    if st.bufs.len() != nbufs {
        st.bufs = (0..nbufs)
            .map(|i| T::wrap(vec![T::cast(rule.initial(i)); n]))
            .collect();
    }
    std::mem::take(&mut st.bufs)
        .into_iter()
        .map(|b| {
            T::unwrap(b).filter(|v| v.len() == n).ok_or_else(|| {
                Error::invalid(R::NAME, "state differs from the parameter in dtype or size")
            })
        })
        .collect()
}

/// The lazy update of a table with a row-sparse gradient: the rule runs on the rows the
/// gradient has, with those rows of its buffers, and every other row and its buffers stay as
/// they are; the step count advances once, as for a dense step. For SGD without momentum and
/// for Adagrad this is exactly the dense update (a zero gradient leaves a row unchanged there),
/// for [`SparseAdam`](super::SparseAdam) it is PyTorch's rule, and weight decay applies to the
/// rows a batch touched. Runs of consecutive rows go to the rule as one slice.
fn sparse_step<T: OptFloat, R: Rule>(
    rule: &R,
    p: &Tensor,
    g: &ferrograd_tensor::RowSparse,
    st: &mut ParamState,
    (lr, weight_decay): (f64, f64),
) -> Result<()> {
    let (n, dim) = (p.numel(), g.dim());
    if p.rank() != 2 || [g.num_rows, dim] != p.dims() {
        return Err(Error::invalid(
            R::NAME,
            format!(
                "a row-sparse gradient of [{}, {dim}] for a parameter of {:?}",
                g.num_rows,
                p.dims()
            ),
        ));
    }
    let mut bufs = take_bufs::<T, R>(rule, st, n)?;
    st.step += 1;
    let c = StepCtx {
        lr,
        weight_decay,
        step: st.step,
        sparse: true,
    };
    let values = g.values.contiguous()?;
    let res = values.with_data::<T, _>(|gv| {
        p.update_data::<T>(|pv| {
            let mut k = 0;
            while k < g.rows.len() {
                let mut e = k + 1;
                while e < g.rows.len() && g.rows[e] == g.rows[e - 1] + 1 {
                    e += 1;
                }
                let (a, b) = (g.rows[k] * dim, (g.rows[e - 1] + 1) * dim);
                let mut pieces: Vec<&mut [T]> = bufs.iter_mut().map(|v| &mut v[a..b]).collect();
                rule.update(&c, &mut pv[a..b], &gv[k * dim..e * dim], &mut pieces);
                k = e;
            }
        })
    });
    st.bufs = bufs.into_iter().map(T::wrap).collect();
    res??;
    Ok(())
}

fn typed_step<T: OptFloat, R: Rule>(
    rule: &R,
    p: &Tensor,
    g: &Tensor,
    st: &mut ParamState,
    (lr, weight_decay): (f64, f64),
) -> Result<()> {
    let n = p.numel();
    if g.numel() != n {
        return Err(Error::invalid(
            R::NAME,
            format!("gradient of {} values for a parameter of {n}", g.numel()),
        ));
    }
    let mut bufs = take_bufs::<T, R>(rule, st, n)?;
    st.step += 1;
    let c = StepCtx {
        lr,
        weight_decay,
        step: st.step,
        sparse: false,
    };
    // read the gradient in place; a gradient that views the parameter's own storage (possible
    // only through backward_with(param)) is copied first, as reading it while writing would alias
    let g = if g.shares_storage(p) || !g.is_contiguous() {
        Tensor::from_vec(g.to_vec::<T>()?, g.dims())?
    } else {
        g.clone()
    };
    g.with_data::<T, _>(|gv| {
        p.update_data::<T>(|pv| for_chunks(pv, gv, &mut bufs, |p, g, b| rule.update(&c, p, g, b)))
    })??;
    st.bufs = bufs.into_iter().map(T::wrap).collect();
    Ok(())
}

/// One parallel task: a chunk of the parameter, of its gradient and of each buffer.
type Task<'a, T> = (&'a mut [T], &'a [T], Vec<&'a mut [T]>);

/// Runs `update` over `p`, `g` and the buffers, in parallel chunks of [`PAR_CHUNK`] when there
/// are at least two.
fn for_chunks<T: Send + Sync>(
    p: &mut [T],
    g: &[T],
    bufs: &mut [Vec<T>],
    update: impl Fn(&mut [T], &[T], &mut [&mut [T]]) + Sync + Send,
) {
    let n = p.len();
    let g = &g[..n];
    if n < 2 * PAR_CHUNK {
        let mut b: Vec<&mut [T]> = bufs.iter_mut().map(|v| &mut v[..n]).collect();
        update(p, g, &mut b);
        return;
    }
    let mut pieces: Vec<std::slice::ChunksMut<'_, T>> = bufs
        .iter_mut()
        .map(|v| v[..n].chunks_mut(PAR_CHUNK))
        .collect();
    let tasks: Vec<Task<'_, T>> = p
        .chunks_mut(PAR_CHUNK)
        .zip(g.chunks(PAR_CHUNK))
        .map(|(pc, gc)| {
            (
                pc,
                gc,
                pieces.iter_mut().filter_map(Iterator::next).collect(),
            )
        })
        .collect();
    tasks
        .into_par_iter()
        .for_each(|(pc, gc, mut bc)| update(pc, gc, &mut bc));
}
