//! An op defined outside the crate: its value joins the graph and its vector-Jacobian product
//! runs in the backward like any op's.

use ferrograd_tensor::{no_grad, Tensor};

#[test]
fn a_custom_op_takes_part_in_the_backward() {
    let x = Tensor::from_vec(vec![1.0f64, -2.0, 3.0], [3])
        .unwrap()
        .requires_grad_(true)
        .unwrap();
    // cube(x), with its derivative 3 x^2
    let value = no_grad(|| x.mul(&x)?.mul(&x)).unwrap();
    let saved = x.clone();
    let y = Tensor::custom_op(
        "cube",
        &value,
        &[&x],
        Box::new(move |_out, g| Ok(vec![Some(g.mul(&saved.mul(&saved)?.mul_scalar(3.0)?)?)])),
    )
    .unwrap();
    assert!(y.requires_grad());
    y.mul_scalar(2.0)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(
        x.grad().unwrap().to_vec::<f64>().unwrap(),
        vec![6.0, 24.0, 54.0]
    );
    // a value still on the graph is refused
    let tracked = x.mul_scalar(1.0).unwrap();
    let e = Tensor::custom_op(
        "twice",
        &tracked,
        &[&x],
        Box::new(|_, g| Ok(vec![Some(g.clone())])),
    );
    assert!(e.is_err());
}
