//! The packed-weight cache of inference (`ops::packed_weights`): a kept copy is used only while
//! its weight is alive and unchanged, and gives the numbers of the uncached product.
//!
//! One test function: the cache is process-wide, and other tests running beside it in the same
//! process would move its counts.

use ferrograd_tensor::ops::packed_weights;
use ferrograd_tensor::{no_grad, DType, Result, Rng, Tensor};

fn bits(t: &Tensor) -> Result<Vec<u32>> {
    Ok(t.to_vec::<f32>()?.iter().map(|v| v.to_bits()).collect())
}

/// `x W^T + b` with a graph recorded (W requires a gradient): never through the cache.
fn recorded(x: &Tensor, w: &Tensor, b: &Tensor, relu: bool) -> Result<Tensor> {
    let w = w.requires_grad_(true)?;
    let y = x.linear(&w, Some(b))?;
    if relu {
        y.relu()
    } else {
        Ok(y)
    }
}

/// The largest |a - b| over `scale` (the sums of the products' magnitudes, plus one): rounding
/// in another summation order moves a sum by a few ulps of that.
fn max_scaled_diff(a: &Tensor, b: &Tensor, scale: &Tensor) -> Result<f32> {
    let (a, b, s) = (
        a.to_vec::<f32>()?,
        b.to_vec::<f32>()?,
        scale.to_vec::<f32>()?,
    );
    Ok(a.iter()
        .zip(&b)
        .zip(&s)
        .map(|((x, y), s)| (x - y).abs() / (1.0 + s))
        .fold(0.0, f32::max))
}

#[test]
fn cached_copies_follow_their_weights() -> Result<()> {
    let mut rng = Rng::new(5);
    let x = Tensor::randn([300, 784], DType::F32, &mut rng)?;
    let w = Tensor::randn([300, 784], DType::F32, &mut rng)?;
    let b = Tensor::randn([300], DType::F32, &mut rng)?;
    assert_eq!(packed_weights::held_copies(), 0);

    // inference packs W^T once, keeps it, and gives the recorded product's numbers bit for bit
    let want = recorded(&x, &w, &b, false)?;
    let first = no_grad(|| x.linear(&w, Some(&b)))?;
    assert_eq!(packed_weights::held_copies(), 1);
    let held = packed_weights::held_bytes();
    assert!(held >= 300 * 784 * 4, "{held} bytes held");
    let second = no_grad(|| x.linear(&w, Some(&b)))?;
    let fused = no_grad(|| x.linear_relu(&w, Some(&b)))?;
    assert_eq!(packed_weights::held_copies(), 1, "the copy is reused");
    assert_eq!(bits(&first)?, bits(&want)?);
    assert_eq!(bits(&second)?, bits(&want)?);
    assert_eq!(bits(&fused)?, bits(&recorded(&x, &w, &b, true)?)?);

    // an in-place change (an optimizer step) makes the copy stale: the next call repacks
    w.update_f32(|v| v.iter_mut().for_each(|x| *x *= 0.5))?;
    let after = no_grad(|| x.linear(&w, Some(&b)))?;
    assert_eq!(bits(&after)?, bits(&recorded(&x, &w, &b, false)?)?);
    assert_ne!(bits(&after)?, bits(&first)?);
    assert_eq!(packed_weights::held_copies(), 1);

    // two views of one storage are two weights
    let both = Tensor::randn([600, 784], DType::F32, &mut rng)?;
    let (top, bottom) = (both.narrow(0, 0, 300)?, both.narrow(0, 300, 300)?);
    for v in [&top, &bottom, &top] {
        let got = no_grad(|| x.linear(v, Some(&b)))?;
        assert_eq!(bits(&got)?, bits(&recorded(&x, v, &b, false)?)?);
    }
    assert_eq!(packed_weights::held_copies(), 3);

    // a thin output layer (10 classes) goes to the kernel only with its weights packed: not
    // the recorded path's dot products, so equal to rounding, not to the bit
    let w10 = Tensor::randn([10, 784], DType::F32, &mut rng)?;
    let b10 = Tensor::randn([10], DType::F32, &mut rng)?;
    let thin = no_grad(|| x.linear(&w10, Some(&b10)))?;
    assert_eq!(packed_weights::held_copies(), 4);
    let magnitude = no_grad(|| x.abs()?.linear(&w10.abs()?, Some(&b10.abs()?)))?;
    let d = max_scaled_diff(&thin, &recorded(&x, &w10, &b10, false)?, &magnitude)?;
    assert!(
        d < 4.0 * f32::EPSILON,
        "thin layer differs by {d} of the magnitude"
    );

    // a dropped weight's copy goes at the next lookup
    drop((both, top, bottom, w10));
    no_grad(|| x.linear(&w, Some(&b)))?;
    assert_eq!(packed_weights::held_copies(), 1);

    // the budget bounds what is kept; 0 turns the cache off
    let old = packed_weights::set_budget(0);
    assert_eq!(old, 256 << 20);
    assert_eq!(packed_weights::held_bytes(), 0);
    let off = no_grad(|| x.linear(&w, Some(&b)))?;
    assert_eq!(bits(&off)?, bits(&after)?);
    assert_eq!(packed_weights::held_copies(), 0);
    packed_weights::set_budget(held);
    no_grad(|| x.linear(&w, Some(&b)))?;
    let w2 = w.mul_scalar(2.0)?;
    no_grad(|| x.linear(&w2, Some(&b)))?;
    assert_eq!(packed_weights::held_copies(), 1, "one copy fits the budget");
    packed_weights::set_budget(old);
    Ok(())
}
