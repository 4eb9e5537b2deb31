//! The seed tutorial's MNIST workflow, written against the library the way its PyTorch code is
//! written: a DataLoader, a model, a loss, an optimizer, and the loop
//! `zero_grad -> forward -> loss -> backward -> step`. (The `ferrograd train` command does the same
//! with checkpoints, metrics and plots.)
//!
//! Run: `cargo run --release --example mnist_mlp` (2 epochs on the bundled MNIST)

use ferrograd::data::{DataLoader, Dataset, Mnist, Split};
use ferrograd::models::Mlp;
use ferrograd::nn::loss::{cross_entropy, ClassLossOptions};
use ferrograd::nn::{parameters, Forward, Module, Optimizer, Sgd};
use ferrograd::{no_grad, Rng};
use std::sync::Arc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let train = Arc::new(Mnist::load("data/mnist", Split::Train)?);
    let test = Mnist::load("data/mnist", Split::Test)?;
    let loader = DataLoader::new(train, 64, true, 0)?;

    let mut rng = Rng::new(0);
    let mut model = Mlp::new(784, 500, 10, &mut rng)?; // fc1 -> ReLU -> fc2, no ReLU on the logits
    let mut opt = Sgd::new(parameters(&model), 0.1, 0.9, 0.0)?;
    let epochs = 2;
    for epoch in 0..epochs {
        model.train();
        for batch in loader.epoch(epoch, 0) {
            let batch = batch?;
            let logits = model.forward(&batch.inputs)?;
            let loss = cross_entropy(&logits, &batch.targets, &ClassLossOptions::default())?;
            opt.zero_grad();
            loss.backward()?;
            opt.step()?;
            if (batch.index + 1) % 100 == 0 {
                println!(
                    "Epoch [{}/{epochs}], Step [{}/{}], Loss: {:.4}",
                    epoch + 1,
                    batch.index + 1,
                    loader.num_batches(),
                    loss.item()?
                );
            }
        }
    }
    model.eval();
    let (mut correct, total) = (0usize, test.len());
    no_grad(|| -> Result<(), Box<dyn std::error::Error>> {
        for start in (0..total).step_by(1000) {
            let idx: Vec<usize> = (start..(start + 1000).min(total)).collect();
            let (x, y) = test.batch(&idx)?;
            let pred = model.forward(&x)?.argmax(1, false)?.to_vec::<i64>()?;
            correct += pred
                .iter()
                .zip(y.to_vec::<i64>()?)
                .filter(|(p, t)| **p == *t)
                .count();
        }
        Ok(())
    })?;
    println!(
        "Test Accuracy of the model on the {total} test images: {:.2}% ({correct}/{total})",
        100.0 * correct as f64 / total as f64
    );
    Ok(())
}
