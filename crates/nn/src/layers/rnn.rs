//! Recurrent layers, `RNN` (tanh or ReLU), `LSTM` and `GRU`, and their single-step cells, with
//! PyTorch's options, parameter names, layouts and initialisation, so that a PyTorch state_dict
//! loads strictly and gives PyTorch's outputs.
//!
//! Per layer and direction (suffix `_l{k}`, `_reverse` for the second direction):
//! `weight_ih` `[G H, in]`, `weight_hh` `[G H, H]`, `bias_ih`, `bias_hh` `[G H]`, with `G` gate
//! blocks in PyTorch's order (LSTM: i, f, g, o; GRU: r, z, n; RNN: one). Every parameter starts
//! uniform in `+-1/sqrt(H)`, as PyTorch's `reset_parameters`.
//!
//! A layer's forward is the input projection of every step as one matrix product
//! (`x W_ih^T + b_ih`, `[T B, in] x [in, G H]`) followed by the fused time loop
//! ([`Tensor::recurrent_scan`]), whose formulas and backward are in
//! `ferrograd_tensor::cpu::recurrent`. A bidirectional layer concatenates the two directions'
//! outputs on the last dim; layers after the first read that.
//!
//! Sequences of different lengths in one batch (`lengths`): outputs past a sequence's end are
//! 0 and its final state is the one at its own last step (reverse direction: the scan starts
//! there), as PyTorch's packed sequences give after `pad_packed_sequence`.
//!
//! Truncated backpropagation through time: pass the previous chunk's final state,
//! [`RnnState::detach`]ed, as the next chunk's initial state.

use crate::error::{Error, Result};
use crate::init;
use crate::module::{join, Forward, Module};
use crate::rng_stream::RngStream;
use ferrograd_tensor::{DType, RecurrentCell, Rng, ScanOptions, Tensor};

/// The nonlinearity of a plain [`RNN`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nonlinearity {
    Tanh,
    Relu,
}

impl Nonlinearity {
    /// The scan's cell for a plain RNN with this nonlinearity.
    fn cell(self) -> RecurrentCell {
        match self {
            Nonlinearity::Tanh => RecurrentCell::RnnTanh,
            Nonlinearity::Relu => RecurrentCell::RnnRelu,
        }
    }
}

/// The options of a recurrent layer, PyTorch's defaults: one layer, bias, time-major input,
/// no dropout, one direction.
#[derive(Clone, Copy, Debug)]
pub struct RnnOptions {
    pub num_layers: usize,
    pub bias: bool,
    /// Input and output `[B, T, .]` instead of `[T, B, .]` (the state stays `[L D, B, H]`).
    pub batch_first: bool,
    /// Dropout on the outputs of every layer but the last, in training.
    pub dropout: f64,
    pub bidirectional: bool,
}

impl Default for RnnOptions {
    fn default() -> Self {
        RnnOptions {
            num_layers: 1,
            bias: true,
            batch_first: false,
            dropout: 0.0,
            bidirectional: false,
        }
    }
}

/// A recurrent state: `h` `[L D, B, H]` (`[B, H]` for a cell), and `c` of the same shape for
/// an LSTM.
#[derive(Clone)]
pub struct RnnState {
    pub h: Tensor,
    pub c: Option<Tensor>,
}

impl RnnState {
    /// The same values cut from the graph: carried into the next chunk of a long sequence, the
    /// backward stops here (truncated backpropagation through time).
    pub fn detach(&self) -> RnnState {
        RnnState {
            h: self.h.detach(),
            c: self.c.as_ref().map(Tensor::detach),
        }
    }
}

/// What a recurrent layer returns: every step's output (`[T, B, D H]`, or `[B, T, D H]` with
/// `batch_first`) and the final state.
pub struct RnnOutput {
    pub output: Tensor,
    pub state: RnnState,
}

/// The four tensors of one layer and direction.
struct Weights {
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Option<Tensor>,
    b_hh: Option<Tensor>,
}

impl Weights {
    fn new(
        cell: RecurrentCell,
        input: usize,
        hidden: usize,
        bias: bool,
        rng: &mut Rng,
    ) -> Result<Self> {
        let gh = cell.gates() * hidden;
        let k = 1.0 / (hidden as f64).sqrt();
        let param = |t: Tensor| t.requires_grad_(true);
        let w_ih = param(init::uniform(&[gh, input], k, rng)?)?;
        let w_hh = param(init::uniform(&[gh, hidden], k, rng)?)?;
        let (b_ih, b_hh) = if bias {
            (
                Some(param(init::uniform(&[gh], k, rng)?)?),
                Some(param(init::uniform(&[gh], k, rng)?)?),
            )
        } else {
            (None, None)
        };
        Ok(Weights {
            w_ih,
            w_hh,
            b_ih,
            b_hh,
        })
    }

    /// The same values as fresh parameters of `dtype`.
    fn to_dtype(&self, dtype: DType) -> Result<Weights> {
        let conv = |t: &Tensor| -> Result<Tensor> {
            Ok(t.detach().to_dtype(dtype)?.detach().requires_grad_(true)?)
        };
        Ok(Weights {
            w_ih: conv(&self.w_ih)?,
            w_hh: conv(&self.w_hh)?,
            b_ih: self.b_ih.as_ref().map(conv).transpose()?,
            b_hh: self.b_hh.as_ref().map(conv).transpose()?,
        })
    }

    fn visit(&self, prefix: &str, suffix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        f(&join(prefix, &format!("weight_ih{suffix}")), &self.w_ih);
        f(&join(prefix, &format!("weight_hh{suffix}")), &self.w_hh);
        if let (Some(bi), Some(bh)) = (&self.b_ih, &self.b_hh) {
            f(&join(prefix, &format!("bias_ih{suffix}")), bi);
            f(&join(prefix, &format!("bias_hh{suffix}")), bh);
        }
    }

    /// One direction over a time-major input `[T, B, in]`: the packed scan result.
    fn scan(
        &self,
        cell: RecurrentCell,
        x: &Tensor,
        h0: &Tensor,
        c0: Option<&Tensor>,
        reverse: bool,
        lengths: Option<&[usize]>,
    ) -> Result<Tensor> {
        let (t, b, i) = (x.dims()[0], x.dims()[1], x.dims()[2]);
        let gh = self.w_hh.dims()[0];
        let xp = x
            .reshape([t * b, i])?
            .linear(&self.w_ih, self.b_ih.as_ref())?
            .reshape([t, b, gh])?;
        Ok(Tensor::recurrent_scan(
            &xp,
            &self.w_hh,
            self.b_hh.as_ref(),
            h0,
            c0,
            ScanOptions {
                cell,
                reverse,
                lengths,
            },
        )?)
    }
}

/// The multi-layer recurrent network behind [`RNN`], [`LSTM`] and [`GRU`].
struct Stack {
    cell: RecurrentCell,
    name: &'static str,
    input_size: usize,
    hidden_size: usize,
    opt: RnnOptions,
    /// `[layer * directions + direction]`
    weights: Vec<Weights>,
    dropout: RngStream,
    training: bool,
}

impl Stack {
    fn new(
        cell: RecurrentCell,
        name: &'static str,
        input_size: usize,
        hidden_size: usize,
        opt: RnnOptions,
        rng: &mut Rng,
    ) -> Result<Self> {
        if input_size == 0 || hidden_size == 0 || opt.num_layers == 0 {
            return Err(Error::invalid(
                name,
                format!(
                    "input_size {input_size}, hidden_size {hidden_size} and num_layers {} must \
                     all be at least 1",
                    opt.num_layers
                ),
            ));
        }
        if !(0.0..1.0).contains(&opt.dropout) {
            return Err(Error::invalid(
                name,
                format!("dropout must be in [0, 1), got {}", opt.dropout),
            ));
        }
        let dirs = if opt.bidirectional { 2 } else { 1 };
        let mut weights = Vec::new();
        for layer in 0..opt.num_layers {
            let input = if layer == 0 {
                input_size
            } else {
                hidden_size * dirs
            };
            for _ in 0..dirs {
                weights.push(Weights::new(cell, input, hidden_size, opt.bias, rng)?);
            }
        }
        Ok(Stack {
            cell,
            name,
            input_size,
            hidden_size,
            opt,
            weights,
            dropout: RngStream::new(rng.next_u64()),
            training: true,
        })
    }

    fn dirs(&self) -> usize {
        if self.opt.bidirectional {
            2
        } else {
            1
        }
    }

    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        let dirs = self.dirs();
        for (k, w) in self.weights.iter().enumerate() {
            let (layer, dir) = (k / dirs, k % dirs);
            let rev = if dir == 1 { "_reverse" } else { "" };
            w.visit(prefix, &format!("_l{layer}{rev}"), f);
        }
    }

    fn forward(
        &self,
        x: &Tensor,
        state: Option<&RnnState>,
        lengths: Option<&[usize]>,
    ) -> Result<RnnOutput> {
        let name = self.name;
        let (h_sz, dirs, layers) = (self.hidden_size, self.dirs(), self.opt.num_layers);
        let unbatched = x.rank() == 2;
        if !(x.rank() == 3 || unbatched) || x.dims()[x.rank() - 1] != self.input_size {
            return Err(Error::invalid(
                name,
                format!(
                    "expects input [T, B, {i}] ([B, T, {i}] with batch_first, or [T, {i}] \
                     unbatched), got {:?}",
                    x.dims(),
                    i = self.input_size
                ),
            ));
        }
        if x.dtype() != self.weights[0].w_ih.dtype() {
            return Err(Error::invalid(
                name,
                format!(
                    "input has dtype {}, the weights {}",
                    x.dtype(),
                    self.weights[0].w_ih.dtype()
                ),
            ));
        }
        // time-major, dense
        let xt = if unbatched {
            x.unsqueeze(1)?
        } else if self.opt.batch_first {
            x.transpose(0, 1)?.contiguous()?
        } else {
            x.clone()
        };
        let (t, b) = (xt.dims()[0], xt.dims()[1]);
        if t == 0 || b == 0 {
            return Err(Error::invalid(
                name,
                format!("input {:?} has no steps or no sequences", x.dims()),
            ));
        }
        if let Some(l) = lengths {
            if l.len() != b || l.iter().any(|&n| n == 0 || n > t) {
                return Err(Error::invalid(
                    name,
                    format!(
                        "lengths {l:?} must give one length in 1..={t} for each of the {b} \
                         sequences"
                    ),
                ));
            }
        }
        let state_shape = [layers * dirs, b, h_sz];
        let lstm = self.cell.has_cell_state();
        let zeros = || Tensor::zeros(state_shape, x.dtype());
        let (h0, c0) = match state {
            Some(s) => {
                let want: &[usize] = if unbatched {
                    &state_shape[..1]
                } else {
                    &state_shape
                };
                let h = check_state(name, "h0", &s.h, unbatched, want, &state_shape)?;
                let c = match (&s.c, lstm) {
                    (Some(c), true) => check_state(name, "c0", c, unbatched, want, &state_shape)?,
                    (None, true) => return Err(Error::invalid(name, "the state has no c0")),
                    (Some(_), false) => {
                        return Err(Error::invalid(
                            name,
                            "a state with c0 given to a layer without one",
                        ))
                    }
                    (None, false) => zeros()?,
                };
                (h, c)
            }
            None => (zeros()?, zeros()?),
        };
        let mut input = xt;
        let (mut hs, mut cs) = (Vec::new(), Vec::new());
        for layer in 0..layers {
            let mut outs = Vec::with_capacity(dirs);
            for dir in 0..dirs {
                let k = layer * dirs + dir;
                let w = &self.weights[k];
                let h0k = h0.narrow(0, k, 1)?.reshape([b, h_sz])?;
                let c0k = if lstm {
                    Some(c0.narrow(0, k, 1)?.reshape([b, h_sz])?)
                } else {
                    None
                };
                let packed = w.scan(self.cell, &input, &h0k, c0k.as_ref(), dir == 1, lengths)?;
                outs.push(packed.narrow(0, 0, t)?);
                hs.push(packed.narrow(0, t, 1)?);
                if lstm {
                    cs.push(packed.narrow(0, t + 1, 1)?);
                }
            }
            input = if dirs == 1 {
                outs.swap_remove(0)
            } else {
                Tensor::cat(&outs.iter().collect::<Vec<_>>(), 2)?
            };
            if self.training && self.opt.dropout > 0.0 && layer + 1 < layers {
                input = input.dropout(self.opt.dropout, true, &mut self.dropout.lock())?;
            }
        }
        let stack = |v: &[Tensor]| -> Result<Tensor> {
            let s = Tensor::cat(&v.iter().collect::<Vec<_>>(), 0)?;
            Ok(if unbatched {
                s.reshape([layers * dirs, h_sz])?
            } else {
                s
            })
        };
        let h_n = stack(&hs)?;
        let c_n = if lstm { Some(stack(&cs)?) } else { None };
        let output = if unbatched {
            input.reshape([t, dirs * h_sz])?
        } else if self.opt.batch_first {
            input.transpose(0, 1)?.contiguous()?
        } else {
            input
        };
        Ok(RnnOutput {
            output,
            state: RnnState { h: h_n, c: c_n },
        })
    }
}

/// A given initial state of the expected shape, as `[L D, B, H]`.
fn check_state(
    name: &'static str,
    what: &str,
    s: &Tensor,
    unbatched: bool,
    want: &[usize],
    full: &[usize; 3],
) -> Result<Tensor> {
    let ok = if unbatched {
        s.dims() == [full[0], full[2]]
    } else {
        s.dims() == want
    };
    if !ok {
        return Err(Error::invalid(
            name,
            format!(
                "{what} must be {:?}, got {:?}",
                if unbatched {
                    vec![full[0], full[2]]
                } else {
                    full.to_vec()
                },
                s.dims()
            ),
        ));
    }
    Ok(if unbatched {
        s.reshape(*full)?
    } else {
        s.clone()
    })
}

macro_rules! recurrent_layer {
    ($(#[$doc:meta])* $ty:ident) => {
        $(#[$doc])*
        pub struct $ty(Stack);

        impl $ty {
            /// Every step's output and the final state. `state`: the initial state (zeros
            /// when none); `lengths`: each sequence's length in a padded batch.
            pub fn forward_with(
                &self,
                x: &Tensor,
                state: Option<&RnnState>,
                lengths: Option<&[usize]>,
            ) -> Result<RnnOutput> {
                self.0.forward(x, state, lengths)
            }
            pub fn input_size(&self) -> usize {
                self.0.input_size
            }
            pub fn hidden_size(&self) -> usize {
                self.0.hidden_size
            }
            pub fn options(&self) -> RnnOptions {
                self.0.opt
            }
            /// The layer with its parameters converted to `dtype` (f64 for gradient checks).
            pub fn with_dtype(mut self, dtype: DType) -> Result<Self> {
                self.0.weights = self.0.weights.iter().map(|w| w.to_dtype(dtype)).collect::<Result<_>>()?;
                Ok(self)
            }
        }

        impl Module for $ty {
            fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
                self.0.visit(prefix, f);
            }
            fn visit_rng_streams(&self, prefix: &str, f: &mut dyn FnMut(&str, &RngStream)) {
                if self.0.opt.dropout > 0.0 && self.0.opt.num_layers > 1 {
                    f(&join(prefix, "dropout_state"), &self.0.dropout);
                }
            }
            fn set_training(&mut self, training: bool) {
                self.0.training = training;
            }
            fn is_training(&self) -> bool {
                self.0.training
            }
        }

        /// The output of every step, from a zero state.
        impl Forward for $ty {
            fn forward(&self, x: &Tensor) -> Result<Tensor> {
                Ok(self.0.forward(x, None, None)?.output)
            }
        }
    };
}

recurrent_layer!(
    /// An Elman RNN, `h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)` (or ReLU), as `nn.RNN`.
    RNN
);
recurrent_layer!(
    /// A long short-term memory network, as `nn.LSTM` (no `proj_size`).
    LSTM
);
recurrent_layer!(
    /// A gated recurrent unit network, as `nn.GRU`.
    GRU
);

impl RNN {
    pub fn new(
        input_size: usize,
        hidden_size: usize,
        nonlinearity: Nonlinearity,
        opt: RnnOptions,
        rng: &mut Rng,
    ) -> Result<Self> {
        let cell = nonlinearity.cell();
        Ok(RNN(Stack::new(
            cell,
            "RNN",
            input_size,
            hidden_size,
            opt,
            rng,
        )?))
    }
}

impl LSTM {
    pub fn new(
        input_size: usize,
        hidden_size: usize,
        opt: RnnOptions,
        rng: &mut Rng,
    ) -> Result<Self> {
        Ok(LSTM(Stack::new(
            RecurrentCell::Lstm,
            "LSTM",
            input_size,
            hidden_size,
            opt,
            rng,
        )?))
    }
}

impl GRU {
    pub fn new(
        input_size: usize,
        hidden_size: usize,
        opt: RnnOptions,
        rng: &mut Rng,
    ) -> Result<Self> {
        Ok(GRU(Stack::new(
            RecurrentCell::Gru,
            "GRU",
            input_size,
            hidden_size,
            opt,
            rng,
        )?))
    }
}

/// The single-step cells, parameters `weight_ih`, `weight_hh`, `bias_ih`, `bias_hh` as
/// PyTorch's `nn.RNNCell`, `nn.LSTMCell` and `nn.GRUCell`; one step is a scan of length 1.
struct Step {
    cell: RecurrentCell,
    name: &'static str,
    input_size: usize,
    hidden_size: usize,
    w: Weights,
    training: bool,
}

impl Step {
    fn new(
        cell: RecurrentCell,
        name: &'static str,
        input_size: usize,
        hidden_size: usize,
        bias: bool,
        rng: &mut Rng,
    ) -> Result<Self> {
        if input_size == 0 || hidden_size == 0 {
            return Err(Error::invalid(
                name,
                format!("input_size {input_size} and hidden_size {hidden_size} must be at least 1"),
            ));
        }
        Ok(Step {
            cell,
            name,
            input_size,
            hidden_size,
            w: Weights::new(cell, input_size, hidden_size, bias, rng)?,
            training: true,
        })
    }

    fn forward(&self, x: &Tensor, state: Option<&RnnState>) -> Result<RnnState> {
        let (name, nh) = (self.name, self.hidden_size);
        let unbatched = x.rank() == 1;
        if !(x.rank() == 2 || unbatched) || x.dims()[x.rank() - 1] != self.input_size {
            return Err(Error::invalid(
                name,
                format!(
                    "expects input [B, {i}] (or [{i}]), got {:?}",
                    x.dims(),
                    i = self.input_size
                ),
            ));
        }
        let x2 = if unbatched {
            x.unsqueeze(0)?
        } else {
            x.clone()
        };
        let b = x2.dims()[0];
        let lstm = self.cell.has_cell_state();
        let get = |t: Option<&Tensor>, what: &str| -> Result<Tensor> {
            match t {
                None => Ok(Tensor::zeros([b, nh], x.dtype())?),
                Some(t) => {
                    let want: Vec<usize> = if unbatched { vec![nh] } else { vec![b, nh] };
                    if t.dims() != want.as_slice() {
                        return Err(Error::invalid(
                            name,
                            format!("{what} must be {want:?}, got {:?}", t.dims()),
                        ));
                    }
                    Ok(t.reshape([b, nh])?)
                }
            }
        };
        let h = get(state.map(|s| &s.h), "h")?;
        let c = if lstm {
            let c = match state {
                Some(s) => match &s.c {
                    Some(c) => Some(c),
                    None => return Err(Error::invalid(name, "the state has no c")),
                },
                None => None,
            };
            Some(get(c, "c")?)
        } else {
            None
        };
        let packed = self
            .w
            .scan(self.cell, &x2.unsqueeze(0)?, &h, c.as_ref(), false, None)?;
        let shape: Vec<usize> = if unbatched { vec![nh] } else { vec![b, nh] };
        let h2 = packed.narrow(0, 1, 1)?.reshape(shape.clone())?;
        let c2 = if lstm {
            Some(packed.narrow(0, 2, 1)?.reshape(shape)?)
        } else {
            None
        };
        Ok(RnnState { h: h2, c: c2 })
    }
}

macro_rules! cell_layer {
    ($(#[$doc:meta])* $ty:ident) => {
        $(#[$doc])*
        pub struct $ty(Step);

        impl $ty {
            /// One step: the new state from input `[B, in]` and the state (zeros when none).
            pub fn step(&self, x: &Tensor, state: Option<&RnnState>) -> Result<RnnState> {
                self.0.forward(x, state)
            }
            pub fn input_size(&self) -> usize {
                self.0.input_size
            }
            pub fn hidden_size(&self) -> usize {
                self.0.hidden_size
            }
            /// The cell with its parameters converted to `dtype` (f64 for gradient checks).
            pub fn with_dtype(mut self, dtype: DType) -> Result<Self> {
                self.0.w = self.0.w.to_dtype(dtype)?;
                Ok(self)
            }
        }

        impl Module for $ty {
            fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
                self.0.w.visit(prefix, "", f);
            }
            fn set_training(&mut self, training: bool) {
                self.0.training = training;
            }
            fn is_training(&self) -> bool {
                self.0.training
            }
        }
    };
}

cell_layer!(
    /// One step of an Elman RNN, as `nn.RNNCell`.
    RNNCell
);
cell_layer!(
    /// One step of an LSTM, as `nn.LSTMCell`; its state has `c`.
    LSTMCell
);
cell_layer!(
    /// One step of a GRU, as `nn.GRUCell`.
    GRUCell
);

impl RNNCell {
    pub fn new(
        input_size: usize,
        hidden_size: usize,
        bias: bool,
        nonlinearity: Nonlinearity,
        rng: &mut Rng,
    ) -> Result<Self> {
        let cell = nonlinearity.cell();
        Ok(RNNCell(Step::new(
            cell,
            "RNNCell",
            input_size,
            hidden_size,
            bias,
            rng,
        )?))
    }
}

impl LSTMCell {
    pub fn new(input_size: usize, hidden_size: usize, bias: bool, rng: &mut Rng) -> Result<Self> {
        Ok(LSTMCell(Step::new(
            RecurrentCell::Lstm,
            "LSTMCell",
            input_size,
            hidden_size,
            bias,
            rng,
        )?))
    }
}

impl GRUCell {
    pub fn new(input_size: usize, hidden_size: usize, bias: bool, rng: &mut Rng) -> Result<Self> {
        Ok(GRUCell(Step::new(
            RecurrentCell::Gru,
            "GRUCell",
            input_size,
            hidden_size,
            bias,
            rng,
        )?))
    }
}
