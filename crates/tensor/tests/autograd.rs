//! The autograd engine: accumulation, deep graphs, no_grad, detach, views, misuse errors, and the
//! tutorial's closed-form gradients.

mod common;
use common::{assert_close, randn};
use ferrograd_tensor::{no_grad, DType, Tensor};

fn param(v: Vec<f64>, shape: &[usize]) -> Tensor {
    Tensor::from_vec(v, shape)
        .unwrap()
        .requires_grad_(true)
        .unwrap()
}

#[test]
fn leaf_gradients_accumulate_until_zeroed() {
    let w = param(vec![1.0, 2.0], &[2]);
    for _ in 0..2 {
        w.mul_scalar(3.0)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
    }
    assert_eq!(w.grad().unwrap().to_vec::<f64>().unwrap(), vec![6.0, 6.0]);
    w.zero_grad();
    assert!(w.grad().is_none());
}

#[test]
fn a_chain_of_100000_ops_neither_overflows_backward_nor_drop() {
    let x = param(vec![0.5], &[1]);
    let mut y = x.clone();
    for _ in 0..100_000 {
        y = y.mul_scalar(1.0).unwrap();
    }
    y.sum_all().unwrap().backward().unwrap();
    assert_eq!(x.grad().unwrap().to_vec::<f64>().unwrap(), vec![1.0]);
    // a second deep graph dropped without backward
    let mut z = x.clone();
    for _ in 0..100_000 {
        z = z.add_scalar(0.0).unwrap();
    }
    drop(z);
}

#[test]
fn ops_on_untracked_inputs_record_nothing() {
    let a = randn(&[3], 1);
    let b = a.exp().unwrap();
    assert!(!b.requires_grad() && b.grad_fn_name().is_none() && b.is_leaf());
    let w = param(vec![1.0, 2.0, 3.0], &[3]);
    let y = no_grad(|| w.mul(&a)).unwrap();
    assert!(!y.requires_grad() && y.grad_fn_name().is_none());
    let y = w.mul(&a).unwrap();
    assert_eq!(y.grad_fn_name(), Some("mul"));
}

#[test]
fn detach_stops_the_gradient() {
    let w = param(vec![2.0], &[1]);
    let y = w.mul(&w.detach()).unwrap().sum_all().unwrap(); // d/dw (w * c) = c
    y.backward().unwrap();
    assert_eq!(w.grad().unwrap().to_vec::<f64>().unwrap(), vec![2.0]);
}

#[test]
fn gradients_flow_through_views_and_broadcasts() {
    let w = param((0..6).map(|v| v as f64).collect(), &[2, 3]);
    // only column 1 is used, twice: via narrow and via a transposed view
    let a = w.narrow(1, 1, 1).unwrap().sum_all().unwrap();
    let b = w
        .t()
        .unwrap()
        .narrow(0, 1, 1)
        .unwrap()
        .mul_scalar(2.0)
        .unwrap()
        .sum_all()
        .unwrap();
    a.add(&b).unwrap().backward().unwrap();
    assert_eq!(
        w.grad().unwrap().to_vec::<f64>().unwrap(),
        vec![0.0, 3.0, 0.0, 0.0, 3.0, 0.0]
    );
    // a [3] bias broadcast over [4, 3] gets the column sums
    let bias = param(vec![0.0; 3], &[3]);
    let x = Tensor::ones([4, 3], DType::F64).unwrap();
    x.add(&bias).unwrap().sum_all().unwrap().backward().unwrap();
    assert_eq!(bias.grad().unwrap().to_vec::<f64>().unwrap(), vec![4.0; 3]);
    assert_eq!(bias.grad().unwrap().dims(), &[3]);
}

#[test]
fn backward_with_an_explicit_gradient() {
    let w = param(vec![1.0, 2.0, 3.0], &[3]);
    let y = w.square().unwrap();
    let g = Tensor::from_vec(vec![1.0, 0.5, -1.0], [3]).unwrap();
    y.backward_with(&g).unwrap();
    assert_eq!(
        w.grad().unwrap().to_vec::<f64>().unwrap(),
        vec![2.0, 2.0, -6.0]
    );
}

#[test]
fn misuse_is_an_error_not_a_panic() {
    let w = param(vec![1.0, 2.0], &[2]);
    let y = w.mul_scalar(2.0).unwrap();
    let e = y.backward().unwrap_err().to_string();
    assert!(e.contains("scalar") && e.contains("[2]"), "{e}");
    let bad = Tensor::from_vec(vec![1.0], [1]).unwrap();
    assert!(y
        .backward_with(&bad)
        .unwrap_err()
        .to_string()
        .contains("does not match"));
    let plain = Tensor::ones([1], DType::F64).unwrap();
    assert!(plain
        .backward()
        .unwrap_err()
        .to_string()
        .contains("not part of a graph"));
    // released graph
    let s = w.exp().unwrap().sum_all().unwrap();
    s.backward().unwrap();
    assert!(s
        .backward()
        .unwrap_err()
        .to_string()
        .contains("second time"));
    // retained graph allows a second pass, and gradients add up
    w.zero_grad();
    let s = w.mul_scalar(3.0).unwrap().sum_all().unwrap();
    s.backward_retain_graph(None).unwrap();
    s.backward().unwrap();
    assert_eq!(w.grad().unwrap().to_vec::<f64>().unwrap(), vec![6.0, 6.0]);
    // integer tensors cannot require grad; op results cannot be marked
    let i = Tensor::from_vec(vec![1i64], [1]).unwrap();
    assert!(i.requires_grad_(true).is_err());
    assert!(s.requires_grad_(true).is_err());
}

/// The tutorial's logistic regression: `y_hat = sigmoid(W x + b)` with binary cross-entropy over
/// N samples has `dL/dW = (y_hat - y) x^T / N` and `dL/db = sum(y_hat - y) / N`.
#[test]
fn tutorial_sigmoid_bce_gradient_closed_form() {
    let (n, d) = (8, 5);
    let x = randn(&[n, d], 3);
    let w = randn(&[1, d], 4).requires_grad_(true).unwrap();
    let b = randn(&[1], 5).requires_grad_(true).unwrap();
    let y = Tensor::from_vec((0..n).map(|i| (i % 2) as f64).collect(), [n, 1]).unwrap();
    let yhat = x
        .matmul(&w.t().unwrap())
        .unwrap()
        .add(&b)
        .unwrap()
        .sigmoid()
        .unwrap();
    let one_minus = |t: &Tensor| t.rsub_scalar(1.0).unwrap();
    let loss = y
        .mul(&yhat.log().unwrap())
        .unwrap()
        .add(&one_minus(&y).mul(&one_minus(&yhat).log().unwrap()).unwrap())
        .unwrap()
        .mean_all()
        .unwrap()
        .neg()
        .unwrap();
    loss.backward().unwrap();
    let err = yhat.detach().sub(&y).unwrap(); // [n, 1]
    let expect_w = err
        .t()
        .unwrap()
        .matmul(&x)
        .unwrap()
        .div_scalar(n as f64)
        .unwrap();
    let expect_b = err.sum_all().unwrap().div_scalar(n as f64).unwrap();
    assert_close(
        &w.grad().unwrap().to_vec_f64(),
        &expect_w.to_vec_f64(),
        1e-12,
        1e-14,
        "dW",
    );
    assert_close(
        &b.grad().unwrap().to_vec_f64(),
        &expect_b.to_vec_f64(),
        1e-12,
        1e-14,
        "db",
    );
}

/// Logits into cross-entropy (log-softmax, pick the target, mean): the gradient of the logits
/// is `(softmax - onehot) / N`.
#[test]
fn tutorial_softmax_cross_entropy_gradient_closed_form() {
    let (n, c) = (6, 4);
    let logits = randn(&[n, c], 6)
        .mul_scalar(3.0)
        .unwrap()
        .requires_grad_(true)
        .unwrap();
    let target = Tensor::from_vec(vec![0i64, 3, 1, 1, 2, 0], [n]).unwrap();
    let loss = logits
        .log_softmax(1)
        .unwrap()
        .gather(1, &target.reshape([n, 1]).unwrap())
        .unwrap()
        .mean_all()
        .unwrap()
        .neg()
        .unwrap();
    loss.backward().unwrap();
    let expect = logits
        .detach()
        .softmax(1)
        .unwrap()
        .sub(&target.one_hot(c, DType::F64).unwrap())
        .unwrap()
        .div_scalar(n as f64)
        .unwrap();
    assert_close(
        &logits.grad().unwrap().to_vec_f64(),
        &expect.to_vec_f64(),
        1e-12,
        1e-15,
        "dlogits",
    );
}

#[test]
fn softmax_is_stable_for_huge_logits() {
    let x = Tensor::from_vec(vec![1000.0f32, 1001.0, 1002.0, -1e30, 0.0, 1e30], [2, 3]).unwrap();
    let s = x.softmax(1).unwrap().to_vec::<f32>().unwrap();
    assert!(s.iter().all(|v| v.is_finite()), "{s:?}");
    assert!((s[2] - 0.665_240_9).abs() < 1e-6);
    let l = x.log_softmax(1).unwrap().to_vec::<f32>().unwrap();
    assert!((l[2] + 0.407_606).abs() < 1e-5, "{l:?}");
    let lse = x.logsumexp(&[1], false).unwrap().to_vec::<f32>().unwrap();
    assert!(
        (lse[0] - 1_002.407_6).abs() < 1e-3 && lse[1] == 1e30,
        "{lse:?}"
    );
}

/// The gradient-ready hook sees each leaf once, the last layer's weights first, with the gradient
/// backward leaves at the end (so a data-parallel reducer can send it while the rest runs).
#[test]
fn the_grad_ready_hook_sees_each_leaf_once_with_its_final_gradient_last_layer_first() {
    let x = randn(&[4, 3], 1);
    let w1 = randn(&[3, 5], 2).requires_grad_(true).unwrap();
    let w2 = randn(&[5, 2], 3).requires_grad_(true).unwrap();
    // w1 is used twice: its hook must come after both uses
    let h = x.matmul(&w1).unwrap().tanh().unwrap();
    let h = h.add(&x.matmul(&w1).unwrap()).unwrap();
    let loss = h.matmul(&w2).unwrap().sum_all().unwrap();
    let mut seen: Vec<(usize, Vec<f64>)> = Vec::new();
    let ids = [w1.id(), w2.id()];
    loss.backward_with_hook(&mut |t| {
        let which = ids.iter().position(|&i| i == t.id()).expect("a parameter");
        seen.push((which, t.grad().expect("a gradient").to_vec::<f64>()?));
        Ok(())
    })
    .unwrap();
    assert_eq!(seen.iter().map(|s| s.0).collect::<Vec<_>>(), vec![1, 0]);
    assert_eq!(seen[0].1, w2.grad().unwrap().to_vec::<f64>().unwrap());
    assert_eq!(seen[1].1, w1.grad().unwrap().to_vec::<f64>().unwrap());
    // the same gradients as a plain backward
    let (g1, g2) = (w1.grad().unwrap(), w2.grad().unwrap());
    w1.zero_grad();
    w2.zero_grad();
    let h = x.matmul(&w1).unwrap().tanh().unwrap();
    let h = h.add(&x.matmul(&w1).unwrap()).unwrap();
    h.matmul(&w2)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    for (w, g) in [(&w1, &g1), (&w2, &g2)] {
        let (a, b) = (w.grad().unwrap().to_vec_f64(), g.to_vec_f64());
        assert_close(&a, &b, 0.0, 0.0, "the hooked backward's gradient");
    }
}

#[test]
fn an_error_from_the_grad_ready_hook_stops_the_backward() {
    let w = param(vec![1.0, 2.0], &[2]);
    let err = w
        .mul_scalar(2.0)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward_with_hook(&mut |_| {
            Err(ferrograd_tensor::Error::Value {
                op: "allreduce",
                msg: "the peer is gone".into(),
            })
        })
        .unwrap_err();
    assert!(err.to_string().contains("the peer is gone"), "{err}");
}
