//! A model ferrograd does not ship, trained with the Trainer: a small residual CNN on MNIST
//! (a 3x3 stem, one residual block `relu(x + conv(relu(conv(x))))`, 2x2 max pooling, a linear
//! head), with the log lines, a progress bar, TensorBoard event files and a checkpoint. It is
//! stopped after 150 steps, as a Ctrl-C would stop it, and resumed from the checkpoint: the
//! second part continues bit for bit where the first stopped.
//!
//! Run: `cargo run --release --example resnet_mnist`, then `tensorboard --logdir runs/resnet`.

use ferrograd::data::{DataLoader, Dataset, Mnist, Split};
use ferrograd::nn::loss::{cross_entropy, ClassLossOptions};
use ferrograd::nn::{parameters, Conv2d, Forward, Linear, Module, Result, Sgd};
use ferrograd::train::callbacks::{LogLines, LossShown, ProgressBar, TensorBoard};
use ferrograd::train::{Console, StepOutput, TrainConfig, TrainStep, Trainer};
use ferrograd::{no_grad, Conv2dOptions, Pool2dOptions, Rng, Tensor};
use std::sync::Arc;

/// The model: a struct of layers (`#[derive(Module)]` names their parameters `stem.weight`,
/// `fc.bias`, ... as PyTorch would) and a forward method.
#[derive(Module)]
struct ResNet {
    stem: Conv2d,
    conv1: Conv2d,
    conv2: Conv2d,
    fc: Linear,
    training: bool,
}

impl ResNet {
    fn new(rng: &mut Rng) -> Result<Self> {
        let same = Conv2dOptions {
            padding: (1, 1),
            ..Default::default()
        };
        Ok(ResNet {
            stem: Conv2d::new(1, 8, 3, same, rng)?,
            conv1: Conv2d::new(8, 8, 3, same, rng)?,
            conv2: Conv2d::new(8, 8, 3, same, rng)?,
            fc: Linear::new(8 * 14 * 14, 10, rng)?,
            training: true,
        })
    }
}

impl Forward for ResNet {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = self
            .stem
            .forward(&x.reshape([x.dims()[0], 1, 28, 28])?)?
            .relu()?;
        let r = self.conv2.forward(&self.conv1.forward(&x)?.relu()?)?;
        let h = x.add(&r)?.relu()?.max_pool2d(Pool2dOptions::new(2))?;
        self.fc.forward(&h.flatten(1, -1)?)
    }
}

/// The training step: a batch to a loss; the evaluation: accuracy on 2,000 test images.
struct Classify {
    model: ResNet,
    test: Mnist,
}

impl TrainStep for Classify {
    type Batch = ferrograd::data::Batch;
    fn model(&self) -> &dyn Module {
        &self.model
    }
    fn model_mut(&mut self) -> &mut dyn Module {
        &mut self.model
    }
    fn forward(&mut self, b: Self::Batch) -> ferrograd::train::Result<StepOutput> {
        let loss = cross_entropy(
            &self.model.forward(&b.inputs)?,
            &b.targets,
            &ClassLossOptions::default(),
        )?;
        Ok(StepOutput::new(loss, b.targets.numel()))
    }
    fn evaluate(&mut self) -> ferrograd::train::Result<Vec<(String, f64)>> {
        let idx: Vec<usize> = (0..2000).collect();
        let (x, y) = self.test.batch(&idx)?;
        let pred = no_grad(|| self.model.forward(&x))?
            .argmax(1, false)?
            .to_vec::<i64>()?;
        let correct = pred
            .iter()
            .zip(y.to_vec::<i64>()?)
            .filter(|(p, t)| **p == *t)
            .count();
        Ok(vec![("test_acc".into(), correct as f64 / idx.len() as f64)])
    }
}

/// One part of the run: a fresh model, optimizer and Trainer, resumed when the checkpoint exists.
fn run(max_steps: Option<usize>) -> ferrograd::train::Result<()> {
    let ck = std::path::PathBuf::from("runs/resnet-checkpoint.safetensors");
    let train = Mnist::load("data/mnist", Split::Train)?.truncate(12_800);
    let mut data = DataLoader::new(Arc::new(train), 64, true, 0)?;
    let model = ResNet::new(&mut Rng::new(0))?;
    let opt = Box::new(Sgd::new(parameters(&model), 0.05, 0.9, 0.0)?);
    let config = TrainConfig {
        epochs: 2,
        max_steps,
        log_every: 50,
        eval_every: Some(100),
        checkpoint: Some(ck.clone()),
        workload: "resnet-example".into(),
        ..Default::default()
    };
    let mut trainer = Trainer::new(config, opt, None);
    let console = Console::default();
    trainer.add_callback(Box::new(ProgressBar::new(&console, "img")));
    trainer.add_callback(Box::new(
        LogLines::new(&console)
            .step_lines(LossShown::Last, false)
            .eval_line(Box::new(|e| {
                format!(
                    "step {}: test accuracy {:.2}%",
                    e.step,
                    100.0 * e.metrics[0].1
                )
            })),
    ));
    trainer.add_callback(Box::new(TensorBoard::new("runs/resnet")));
    let mut step = Classify {
        model,
        test: Mnist::load("data/mnist", Split::Test)?,
    };
    let resume = if max_steps.is_none() && ck.exists() {
        let (_, point) = trainer.restore(&ck, &mut step, &mut data)?;
        println!("resumed at step {}", point.step);
        Some(point)
    } else {
        None
    };
    let summary = trainer.fit(&mut step, &mut data, resume)?;
    println!(
        "{} steps, last evaluation {:?}",
        summary.steps, summary.last_eval
    );
    Ok(())
}

fn main() -> ferrograd::train::Result<()> {
    std::fs::create_dir_all("runs").map_err(|e| ferrograd::train::TrainError::file("runs", e))?;
    let _ = std::fs::remove_file("runs/resnet-checkpoint.safetensors");
    run(Some(150))?; // stops after 150 steps, as a Ctrl-C would, with the checkpoint written
    run(None) // a new process would do the same: build, restore, fit
}
