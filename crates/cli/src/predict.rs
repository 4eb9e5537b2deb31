//! `ferrograd predict`: classify one PNG with saved weights.

use crate::config::{Model, Task};
use clap::Args;
use ferrograd_tensor::{no_grad, Rng, Tensor};
use std::path::{Path, PathBuf};

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

/// Decodes a PNG into 28x28 intensities in [0, 1] (area-averaged), MNIST polarity.
pub fn load_png(path: &Path) -> Result<Vec<f32>, String> {
    let file =
        std::fs::File::open(path).map_err(|e| format!("{}: cannot open: {e}", path.display()))?;
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder
        .read_info()
        .map_err(|e| format!("{}: not a readable PNG: {e}", path.display()))?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| format!("{}: image too large", path.display()))?;
    let mut buf = vec![0u8; size];
    let info = reader
        .next_frame(&mut buf)
        .map_err(|e| format!("{}: corrupt PNG data: {e}", path.display()))?;
    let (w, h) = (info.width as usize, info.height as usize);
    if w == 0 || h == 0 {
        return Err(format!("{}: empty image", path.display()));
    }
    let ch = info.color_type.samples();
    let grey: Vec<f32> = buf[..info.buffer_size()]
        .chunks(ch)
        .map(|p| {
            let v = if ch >= 3 {
                0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32
            } else {
                p[0] as f32
            };
            // composite transparent pixels onto black
            let alpha = if ch == 2 || ch == 4 {
                p[ch - 1] as f32 / 255.0
            } else {
                1.0
            };
            v / 255.0 * alpha
        })
        .collect();
    let mut out = vec![0f32; 28 * 28];
    for (oy, row) in out.chunks_mut(28).enumerate() {
        let (y0, y1) = (
            oy * h / 28,
            ((oy + 1) * h).div_ceil(28).max(oy * h / 28 + 1),
        );
        for (ox, v) in row.iter_mut().enumerate() {
            let (x0, x1) = (
                ox * w / 28,
                ((ox + 1) * w).div_ceil(28).max(ox * w / 28 + 1),
            );
            let mut s = 0.0;
            for y in y0..y1.min(h) {
                for x in x0..x1.min(w) {
                    s += grey[y * w + x];
                }
            }
            *v = s / ((y1.min(h) - y0) * (x1.min(w) - x0)) as f32;
        }
    }
    // MNIST digits are light on dark: invert when the border is mostly light
    let border: f32 = (0..28)
        .flat_map(|i| [out[i], out[27 * 28 + i], out[i * 28], out[i * 28 + 27]])
        .sum::<f32>()
        / 112.0;
    if border > 0.5 {
        out.iter_mut().for_each(|v| *v = 1.0 - *v);
    }
    Ok(out)
}

pub fn run(a: &PredictArgs) -> Result<(), String> {
    let mut px = load_png(&a.image)?;
    if a.normalize {
        px.iter_mut().for_each(|v| *v = (*v - 0.1307) / 0.3081);
    }
    let mut model = ferrograd_models::build(a.model.kind(), a.task.outputs(), &mut Rng::new(0))
        .map_err(|e| e.to_string())?;
    ferrograd_nn::serialize::load_module(model.as_ref(), &a.weights).map_err(|e| e.to_string())?;
    model.eval();
    let x = Tensor::from_vec(px, [1, 1, 28, 28]).map_err(|e| e.to_string())?;
    let logits = no_grad(|| model.forward(&x)).map_err(|e| e.to_string())?;
    let probs: Vec<f64> = match a.task {
        Task::Digits => logits.softmax(1).map_err(|e| e.to_string())?.to_vec_f64(),
        Task::Parity => {
            let p = logits
                .sigmoid()
                .map_err(|e| e.to_string())?
                .item()
                .map_err(|e| e.to_string())?;
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
