//! The seed tutorial's first model, by hand: logistic regression `y_hat = sigmoid(W x + b)` with
//! binary cross-entropy, trained by gradient descent on a synthetic, linearly separable problem.
//! Every gradient comes from `loss.backward()`; the update runs outside the graph.
//!
//! Run: `cargo run --release --example tutorial_logistic`

use ferrograd::{no_grad, DType, Result, Rng, Tensor};

fn main() -> Result<()> {
    let (n, d) = (512, 2);
    let mut rng = Rng::new(0);
    // points in the plane; label 1 above the line x1 = 0.5 x0 + 0.2
    let x = Tensor::uniform([n, d], -1.0, 1.0, DType::F32, &mut rng)?;
    let xv = x.to_vec::<f32>()?;
    let labels: Vec<f32> = xv
        .chunks(2)
        .map(|p| f32::from(p[1] > 0.5 * p[0] + 0.2))
        .collect();
    let y = Tensor::from_vec(labels, [n, 1])?;

    let w = Tensor::zeros([d, 1], DType::F32)?.requires_grad_(true)?;
    let b = Tensor::zeros([1], DType::F32)?.requires_grad_(true)?;
    let lr = 2.0f32;
    for epoch in 1..=200 {
        let p = x
            .matmul(&w)?
            .add(&b)?
            .sigmoid()?
            .clamp(Some(1e-7), Some(1.0 - 1e-7))?;
        // L = -mean(y log p + (1 - y) log(1 - p))
        let loss = y
            .mul(&p.log()?)?
            .add(&y.rsub_scalar(1.0)?.mul(&p.rsub_scalar(1.0)?.log()?)?)?
            .mean_all()?
            .neg()?;
        loss.backward()?;
        no_grad(|| -> Result<()> {
            for t in [&w, &b] {
                let g = t
                    .grad()
                    .map(|g| g.to_vec::<f32>())
                    .transpose()?
                    .unwrap_or_default();
                t.update_f32(|v| v.iter_mut().zip(&g).for_each(|(v, g)| *v -= lr * g))?;
                t.zero_grad();
            }
            Ok(())
        })?;
        if epoch % 40 == 0 {
            let pred = no_grad(|| x.matmul(&w)?.add(&b)?.gt_scalar(0.0))?;
            let acc = pred.eq(&y)?.mean_all()?.item()?;
            println!(
                "epoch {epoch:3}  loss {:.4}  accuracy {:.2}%",
                loss.item()?,
                100.0 * acc
            );
        }
    }
    println!("w = {}\nb = {}", w.detach(), b.detach());
    Ok(())
}
