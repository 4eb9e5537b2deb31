//! `ferrograd predict`: classify one PNG with saved weights.

use crate::config::{Model, Task};
use clap::Args;
use ferrograd_data::image::load_digit_png;
use ferrograd_tensor::{no_grad, Rng, Tensor};
use ferrograd_train::Result;
use std::path::PathBuf;

#[derive(Args, Clone, Debug)]
pub struct PredictArgs {
    #[arg(long, value_enum)]
    pub model: Model,
    #[arg(long)]
    pub weights: PathBuf,
    #[arg(long, value_enum, default_value = "digits")]
    pub task: Task,
    /// The inputs were normalised in training (mean 0.1307, std 0.3081)
    #[arg(long)]
    pub normalize: bool,
    /// A PNG image of a digit (any size; converted to 28x28 grey, light digit on dark as in MNIST;
    /// a dark digit on a light background is inverted automatically)
    pub image: PathBuf,
}

pub fn run(a: &PredictArgs) -> Result<()> {
    let mut px = load_digit_png(&a.image)?;
    if a.normalize {
        px.iter_mut().for_each(|v| *v = (*v - 0.1307) / 0.3081);
    }
    let mut model = ferrograd_models::build(a.model.kind(), a.task.outputs(), &mut Rng::new(0))?;
    ferrograd_nn::serialize::load_module(model.as_ref(), &a.weights)?;
    model.eval();
    let x = Tensor::from_vec(px, [1, 1, 28, 28])?;
    let logits = no_grad(|| model.forward(&x))?;
    let probs: Vec<f64> = match a.task {
        Task::Digits => logits.softmax(1)?.to_vec_f64(),
        Task::Parity => {
            let p = logits.sigmoid()?.item()?;
            vec![1.0 - p, p]
        }
    };
    let mut ranked: Vec<(usize, f64)> = probs.into_iter().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!("{}:", a.image.display());
    for (c, p) in ranked.iter().take(3) {
        let name = if a.task == Task::Parity {
            ["even", "odd"][*c].to_string()
        } else {
            c.to_string()
        };
        println!("  {name:>4}  {:6.2}%", 100.0 * p);
    }
    Ok(())
}
