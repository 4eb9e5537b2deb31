//! `ferrograd eval`, and the accuracy computation the trainer shares.

use crate::config::{Model, Task};
use crate::train_args::label_map;
use clap::Args;
use ferrograd_data::{Mnist, Normalize, Split};
use ferrograd_tensor::Rng;
use ferrograd_train::metrics::Confusion;
use ferrograd_train::tasks::classify::evaluate;
use ferrograd_train::Result;
use std::path::{Path, PathBuf};

#[derive(Args, Clone, Debug)]
pub struct EvalArgs {
    #[arg(long, value_enum)]
    pub model: Model,
    /// Weights written by `ferrograd train --save` (or by PyTorch with the same names)
    #[arg(long)]
    pub weights: PathBuf,
    #[arg(long, value_enum, default_value = "digits")]
    pub task: Task,
    #[arg(long, default_value = "data/mnist")]
    pub data_dir: PathBuf,
    /// The inputs were normalised in training (mean 0.1307, std 0.3081)
    #[arg(long)]
    pub normalize: bool,
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// The tutorial's final line; the percentage is computed from the same two counts it shows.
pub fn accuracy_line(correct: usize, total: usize) -> String {
    accuracy_line_of(correct, total, "images")
}

/// [`accuracy_line`] for test items called `items` (`images`, `clips`).
pub fn accuracy_line_of(correct: usize, total: usize, items: &str) -> String {
    format!(
        "Test Accuracy of the model on the {total} test {items}: {:.2}% ({correct}/{total})",
        100.0 * correct as f64 / total.max(1) as f64,
    )
}

/// Accuracy per class and the confusion matrix, classes named by `name` (`what`: "class",
/// "digit").
pub fn print_confusion(ev: &Confusion, what: &str, name: &dyn Fn(usize) -> String) {
    let classes = ev.classes();
    println!("\nAccuracy per {what}:");
    for c in 0..classes {
        let total: usize = ev.matrix[c].iter().sum();
        println!(
            "  {:>5}: {:6.2}% ({}/{})",
            name(c),
            100.0 * ev.matrix[c][c] as f64 / total.max(1) as f64,
            ev.matrix[c][c],
            total
        );
    }
    println!("\nConfusion matrix (rows: true {what}, columns: predicted):");
    print!("{:>7}", "");
    for c in 0..classes {
        print!("{:>6}", name(c));
    }
    println!();
    for (t, row) in ev.matrix.iter().enumerate() {
        print!("{:>7}", name(t));
        for v in row {
            print!("{v:>6}");
        }
        println!();
    }
}

/// `plan` with the four MNIST IDX files of `dir` (compressed or not) as inputs of `--data-dir`,
/// so that no output may overwrite them.
pub fn with_mnist_inputs(
    mut plan: ferrograd_train::OutputPlan,
    dir: &Path,
) -> ferrograd_train::OutputPlan {
    plan = plan.input("--data-dir", Some(dir));
    for split in ["train", "t10k"] {
        for (kind, idx) in [("images", 3), ("labels", 1)] {
            for ext in ["", ".gz"] {
                let f = dir.join(format!("{split}-{kind}-idx{idx}-ubyte{ext}"));
                plan = plan.input("--data-dir", Some(&f));
            }
        }
    }
    plan
}

pub fn load_split(
    dir: &Path,
    split: Split,
    task: Task,
    normalize: Option<Normalize>,
) -> Result<Mnist> {
    Ok(Mnist::load(dir, split)?
        .with_normalize(normalize)
        .with_label_map(label_map(task)))
}

pub fn run(a: &EvalArgs) -> Result<()> {
    let test = load_split(
        &a.data_dir,
        Split::Test,
        a.task,
        a.normalize.then_some(Normalize::MNIST),
    )?;
    let mut model = ferrograd_models::build(a.model.kind(), a.task.outputs(), &mut Rng::new(0))?;
    ferrograd_nn::serialize::load_module(model.as_ref(), &a.weights)?;
    model.eval();
    let ev = evaluate(
        model.as_ref(),
        &test,
        a.task.objective(),
        a.task.classes(),
        1000,
    )?;
    println!("{}", accuracy_line(ev.correct(), ev.total()));
    let name = |c: usize| {
        if a.task == Task::Parity {
            ["even", "odd"][c].to_string()
        } else {
            c.to_string()
        }
    };
    print_confusion(&ev, "class", &name);
    Ok(())
}
