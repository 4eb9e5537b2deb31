//! An LSTM on the Trainer with truncated backpropagation through time: one long signal (a sum
//! of two sines) is cut into chunks of 50 steps, read in order, and the model predicts each next
//! value. The state at the end of a chunk is carried into the next one *detached*
//! (`RnnState::detach`), so gradients flow back 50 steps at most while the LSTM still sees the
//! whole history; the state is reset at the start of each epoch. The evaluation runs the
//! trained model over a held-out stretch and reports its mean squared error against that of
//! predicting "no change".
//!
//! Run: `cargo run --release --example lstm_tbptt`.

use ferrograd::nn::loss::{mse_loss, Reduction};
use ferrograd::nn::{
    parameters, Adam, Forward, Linear, Module, Result, RnnOptions, RnnState, LSTM,
};
use ferrograd::train::callbacks::{LogLines, LossShown};
use ferrograd::train::{Batches, Console, StepOutput, TrainConfig, TrainStep, Trainer};
use ferrograd::{no_grad, Rng, Tensor};

const CHUNK: usize = 50;
const BATCH: usize = 8;

/// `sin(0.07 t) + 0.5 sin(0.23 t + phase)`, a different phase for each of the batch's streams.
fn signal(len: usize, phase: f32) -> Vec<f32> {
    (0..len)
        .map(|t| {
            let t = t as f32;
            (0.07 * t).sin() + 0.5 * (0.23 * t + phase).sin()
        })
        .collect()
}

#[derive(Module)]
struct Predictor {
    lstm: LSTM,
    head: Linear,
    training: bool,
}

impl Predictor {
    /// `[T, B, 1]` inputs and a state to `[T, B, 1]` predictions and the new state.
    fn run(&self, x: &Tensor, state: Option<&RnnState>) -> Result<(Tensor, RnnState)> {
        let (t, b) = (x.dims()[0], x.dims()[1]);
        let out = self.lstm.forward_with(x, state, None)?;
        let y = self
            .head
            .forward(&out.output.reshape([t * b, 32])?)?
            .reshape([t, b, 1])?;
        Ok((y, out.state))
    }
}

/// Batches: the chunks of the training signal in order, `[CHUNK, BATCH, 1]` inputs and next
/// values as targets; the batch index tells the step where an epoch starts.
struct Chunks {
    inputs: Vec<(Tensor, Tensor)>,
}

impl Batches for Chunks {
    type Batch = (usize, Tensor, Tensor);
    fn batches_per_epoch(&self) -> Option<usize> {
        Some(self.inputs.len())
    }
    fn epoch(
        &mut self,
        _epoch: usize,
        start: usize,
    ) -> ferrograd::train::Result<
        Box<dyn Iterator<Item = ferrograd::train::Result<Self::Batch>> + '_>,
    > {
        Ok(Box::new(
            self.inputs
                .iter()
                .enumerate()
                .skip(start)
                .map(|(i, (x, y))| Ok((i, x.clone(), y.clone()))),
        ))
    }
}

struct Step {
    model: Predictor,
    state: Option<RnnState>,
    held_out: (Tensor, Tensor),
}

impl TrainStep for Step {
    type Batch = (usize, Tensor, Tensor);
    fn model(&self) -> &dyn Module {
        &self.model
    }
    fn model_mut(&mut self) -> &mut dyn Module {
        &mut self.model
    }
    fn forward(&mut self, (i, x, y): Self::Batch) -> ferrograd::train::Result<StepOutput> {
        if i == 0 {
            self.state = None;
        }
        let (pred, state) = self.model.run(&x, self.state.as_ref())?;
        // the next chunk starts from here, but its gradients stop here
        self.state = Some(state.detach());
        Ok(StepOutput::new(
            mse_loss(&pred, &y, Reduction::Mean)?,
            BATCH,
        ))
    }
    fn evaluate(&mut self) -> ferrograd::train::Result<Vec<(String, f64)>> {
        let (x, y) = &self.held_out;
        let pred = no_grad(|| self.model.run(x, None))?.0;
        let mse = mse_loss(&pred, y, Reduction::Mean)?.item()?;
        let still = mse_loss(x, y, Reduction::Mean)?.item()?;
        Ok(vec![("mse".into(), mse), ("no_change_mse".into(), still)])
    }
}

/// `[T, B, 1]` inputs (values 0..T-1) and targets (values 1..T) of `B` streams.
fn pairs(len: usize, offset: f32) -> Result<(Tensor, Tensor)> {
    let streams: Vec<Vec<f32>> = (0..BATCH)
        .map(|b| signal(len + 1, offset + b as f32))
        .collect();
    let at = |shift: usize| -> Vec<f32> {
        (0..len)
            .flat_map(|t| streams.iter().map(move |s| s[t + shift]))
            .collect()
    };
    Ok((
        Tensor::from_vec(at(0), [len, BATCH, 1])?,
        Tensor::from_vec(at(1), [len, BATCH, 1])?,
    ))
}

fn main() -> ferrograd::train::Result<()> {
    let mut rng = Rng::new(0);
    let model = Predictor {
        lstm: LSTM::new(1, 32, RnnOptions::default(), &mut rng)?,
        head: Linear::new(32, 1, &mut rng)?,
        training: true,
    };
    let (x, y) = pairs(20 * CHUNK, 0.0)?;
    let inputs = (0..20)
        .map(|c| {
            Ok((
                x.narrow(0, c * CHUNK, CHUNK)?.contiguous()?,
                y.narrow(0, c * CHUNK, CHUNK)?.contiguous()?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut data = Chunks { inputs };
    let opt = Box::new(Adam::new(parameters(&model), 1e-2, 0.0)?);
    let config = TrainConfig {
        epochs: 15,
        log_every: 20,
        eval_each_epoch: true,
        workload: "lstm-example".into(),
        ..Default::default()
    };
    let mut trainer = Trainer::new(config, opt, None);
    let console = Console::default();
    trainer.add_callback(Box::new(
        LogLines::new(&console)
            .step_lines(LossShown::Last, false)
            .eval_line(Box::new(|e| {
                format!(
                    "step {}: held-out MSE {:.5} (predicting no change: {:.5})",
                    e.step, e.metrics[0].1, e.metrics[1].1
                )
            })),
    ));
    let mut step = Step {
        model,
        state: None,
        held_out: pairs(300, 100.0)?,
    };
    trainer.fit(&mut step, &mut data, None)?;
    Ok(())
}
