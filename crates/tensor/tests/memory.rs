//! Memory stays flat over repeated training steps, and backward frees intermediates. In a test
//! binary of its own, because the live-buffer counter is process-wide.

use ferrograd_tensor::storage::live_buffers;
use ferrograd_tensor::{no_grad, DType, Rng, Tensor};
use std::sync::Mutex;

/// The tests here count process-wide buffers, so they must not run at the same time.
static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn live_buffers_stay_flat_over_1000_training_steps() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut rng = Rng::new(0);
    let x = Tensor::randn([16, 8], DType::F32, &mut rng).unwrap();
    let y = Tensor::randn([16, 1], DType::F32, &mut rng).unwrap();
    let w1 = Tensor::randn([8, 32], DType::F32, &mut rng)
        .unwrap()
        .mul_scalar(0.3)
        .unwrap();
    let w2 = Tensor::randn([32, 1], DType::F32, &mut rng)
        .unwrap()
        .mul_scalar(0.3)
        .unwrap();
    let (w1, w2) = (
        w1.requires_grad_(true).unwrap(),
        w2.requires_grad_(true).unwrap(),
    );
    let mut counts = Vec::new();
    let mut losses = Vec::new();
    for step in 0..1000 {
        let h = x.matmul(&w1).unwrap().relu().unwrap();
        let loss = h
            .matmul(&w2)
            .unwrap()
            .sub(&y)
            .unwrap()
            .square()
            .unwrap()
            .mean_all()
            .unwrap();
        loss.backward().unwrap();
        losses.push(loss.item().unwrap());
        drop((h, loss));
        no_grad(|| {
            for w in [&w1, &w2] {
                let g = w.grad().unwrap().to_vec::<f32>().unwrap();
                w.update_f32(|p| p.iter_mut().zip(&g).for_each(|(p, g)| *p -= 0.05 * g))
                    .unwrap();
                w.zero_grad();
            }
        });
        if step == 10 || step == 999 {
            counts.push(live_buffers());
        }
    }
    assert_eq!(counts[0], counts[1], "live buffers grew: {counts:?}");
    assert!(
        losses[999] < losses[0] * 0.5,
        "training did not progress: {} -> {}",
        losses[0],
        losses[999]
    );
}

#[test]
fn backward_frees_the_graph() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut rng = Rng::new(1);
    let w = Tensor::randn([64, 64], DType::F32, &mut rng)
        .unwrap()
        .requires_grad_(true)
        .unwrap();
    let before = live_buffers();
    let loss = w
        .tanh()
        .unwrap()
        .exp()
        .unwrap()
        .matmul(&w)
        .unwrap()
        .sum_all()
        .unwrap();
    assert!(live_buffers() > before + 2);
    loss.backward().unwrap();
    drop(loss);
    // only the new gradient remains
    assert_eq!(live_buffers(), before + 1);
}
