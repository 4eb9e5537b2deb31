//! Every public op driven with bad shapes, dims, dtypes and values: each must return an error
//! naming the op (and the shapes where shapes are at fault), never panic.

use ferrograd_tensor::{Conv1dOptions, Conv2dOptions, DType, Pool2dOptions, Result, Tensor};
use std::panic::{catch_unwind, AssertUnwindSafe};

type BinOp = fn(&Tensor, &Tensor) -> Result<Tensor>;
type UnOp = fn(&Tensor) -> Result<Tensor>;

fn t(shape: &[usize]) -> Tensor {
    Tensor::ones(shape, DType::F32).unwrap()
}

fn idx(v: Vec<i64>, shape: &[usize]) -> Tensor {
    Tensor::from_vec(v, shape).unwrap()
}

/// Asserts that `f` returns an error whose message starts with `op:` and contains `needle`.
fn expect_err(op: &str, needle: &str, f: impl FnOnce() -> Result<Tensor>) {
    let r = catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| panic!("{op} panicked"));
    match r {
        Ok(v) => panic!(
            "{op}: expected an error, got a tensor of shape {:?}",
            v.dims()
        ),
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.starts_with(&format!("{op}:")),
                "message does not name {op}: {msg}"
            );
            assert!(
                msg.contains(needle),
                "{op}: message lacks {needle:?}: {msg}"
            );
        }
    }
}

#[test]
fn matmul_names_both_shapes() {
    expect_err("matmul", "cannot multiply [64, 784] by [500, 784]", || {
        t(&[64, 784]).matmul(&t(&[500, 784]))
    });
    expect_err("matmul", "[3]", || t(&[3]).matmul(&t(&[4])));
    expect_err("matmul", "[2, 3]", || t(&[2, 3]).matmul(&t(&[2])));
    expect_err("matmul", "batch dims", || {
        t(&[2, 3, 4]).matmul(&t(&[3, 4, 5]))
    });
    expect_err("matmul", "[]", || Tensor::scalar(1.0f32).matmul(&t(&[1])));
    expect_err("linear", "[64, 784]", || {
        t(&[64, 784]).linear(&t(&[784, 500]), None)
    });
    expect_err("linear", "bias must be [500]", || {
        t(&[64, 784]).linear(&t(&[500, 784]), Some(&t(&[10])))
    });
    expect_err("linear", "weight [out, in]", || {
        t(&[64, 784]).linear(&t(&[784]), None)
    });
    expect_err("matmul", "dtypes differ", || {
        t(&[2, 2]).matmul(&Tensor::ones([2, 2], DType::F64)?)
    });
}

#[test]
fn elementwise_and_broadcast_errors() {
    let bin: [(&str, BinOp); 8] = [
        ("add", |a, b| a.add(b)),
        ("sub", |a, b| a.sub(b)),
        ("mul", |a, b| a.mul(b)),
        ("div", |a, b| a.div(b)),
        ("maximum", |a, b| a.maximum(b)),
        ("minimum", |a, b| a.minimum(b)),
        ("eq", |a, b| a.eq(b)),
        ("lt", |a, b| a.lt(b)),
    ];
    for (op, f) in bin {
        expect_err(op, "[2, 3] and [4]", || f(&t(&[2, 3]), &t(&[4])));
        expect_err(op, "dtypes differ", || {
            f(&t(&[2]), &Tensor::ones([2], DType::F64)?)
        });
    }
    let ints = idx(vec![1, 2], &[2]);
    let un: [(&str, UnOp); 6] = [
        ("exp", |x| x.exp()),
        ("relu", |x| x.relu()),
        ("sigmoid", |x| x.sigmoid()),
        ("gelu", |x| x.gelu()),
        ("log_softmax", |x| x.log_softmax(0)),
        ("sum", |x| x.sum(&[0], false)),
    ];
    for (op, f) in un {
        let i = ints.clone();
        expect_err(op, "i64", move || f(&i));
    }
    expect_err("clamp", "greater than", || {
        t(&[2]).clamp(Some(1.0), Some(0.0))
    });
    expect_err("softplus", "beta", || t(&[2]).softplus(0.0, 20.0));
    expect_err("where", "cannot be broadcast", || {
        Tensor::where_(&t(&[3]), &t(&[2]), &t(&[2]))
    });
}

#[test]
fn dims_out_of_range() {
    let x = t(&[2, 3]);
    expect_err("sum", "dim 2 is out of range", || x.sum(&[2], false));
    expect_err("mean", "dim -3", || x.mean(&[-3], true));
    expect_err("sum", "more than once", || x.sum(&[0, -2], false));
    expect_err("max", "out of range", || x.max(&[5], false));
    expect_err("argmax", "out of range", || x.argmax(2, false));
    expect_err("softmax", "out of range", || x.softmax(2));
    expect_err("log_softmax", "out of range", || x.log_softmax(-3));
    expect_err("transpose", "out of range", || x.transpose(0, 2));
    expect_err("permute", "does not match rank", || x.permute(&[0]));
    expect_err("permute", "repeated", || x.permute(&[0, 0]));
    expect_err("narrow", "out of bounds", || x.narrow(1, 2, 2));
    expect_err("squeeze", "not 1", || x.squeeze(0));
    expect_err("unsqueeze", "out of range", || x.unsqueeze(4));
    expect_err("flatten", "after end", || x.flatten(1, 0));
    expect_err("logsumexp", "out of range", || x.logsumexp(&[3], false));
    expect_err("var", "out of range", || x.var(&[3], 1, false));
    expect_err("max", "empty dim", || t(&[0, 3]).max(&[0], false));
}

#[test]
fn movement_errors() {
    let x = t(&[2, 3]);
    expect_err("reshape", "cannot reshape [2, 3]", || x.reshape([4, 2]));
    expect_err("reshape", "-1", || x.reshape_infer(&[-1, -1]));
    expect_err("reshape", "cannot infer", || x.reshape_infer(&[-1, 4]));
    expect_err("broadcast_to", "[2, 3]", || x.broadcast_to([3, 3]));
    expect_err("broadcast_to", "[2, 3]", || x.broadcast_to([3]));
    expect_err("cat", "must match except in dim 0", || {
        Tensor::cat(&[&x, &t(&[2, 4])], 0)
    });
    expect_err("cat", "at least one", || Tensor::cat(&[], 0));
    expect_err("stack", "one shape", || {
        Tensor::stack(&[&x, &t(&[3, 2])], 0)
    });
    expect_err("pad", "pair per dim", || x.pad(&[(1, 1)], 0.0));
    expect_err("t", "rank <= 2", || t(&[1, 2, 3]).t());
    let r = catch_unwind(|| t(&[4]).split(0, 0)).expect("split panicked");
    assert!(r.unwrap_err().to_string().starts_with("split:"));
    let r = catch_unwind(|| t(&[4]).chunk(0, 0)).expect("chunk panicked");
    assert!(r.unwrap_err().to_string().starts_with("chunk:"));
}

#[test]
fn index_errors() {
    let x = t(&[3, 4]);
    expect_err("index_select", "index 3 is out of range", || {
        x.index_select(0, &idx(vec![0, 3], &[2]))
    });
    expect_err("index_select", "index -1", || {
        x.index_select(1, &idx(vec![-1], &[1]))
    });
    expect_err("index_select", "1-D", || {
        x.index_select(0, &idx(vec![0, 1], &[1, 2]))
    });
    expect_err("index_select", "must be i64", || {
        x.index_select(0, &t(&[1]))
    });
    expect_err("gather", "rank", || x.gather(1, &idx(vec![0], &[1])));
    expect_err("gather", "out of range", || {
        x.gather(1, &idx(vec![0, 9, 0], &[3, 1]))
    });
    expect_err("scatter_add", "must equal source shape", || {
        x.scatter_add(1, &idx(vec![0, 1, 0], &[3, 1]), &t(&[3, 2]))
    });
    expect_err("embedding", "[vocab, dim]", || {
        Tensor::embedding(&t(&[4]), &idx(vec![0], &[1]))
    });
    expect_err("index_select", "out of range", || {
        Tensor::embedding(&t(&[4, 2]), &idx(vec![4], &[1]))
    });
    expect_err("one_hot", "out of range", || {
        idx(vec![0, 5], &[2]).one_hot(5, DType::F32)
    });
}

#[test]
fn conv_and_pool_errors() {
    let x = t(&[1, 3, 8, 8]);
    let c = Conv2dOptions::default();
    expect_err("conv2d", "[N, C, H, W]", || {
        t(&[3, 8, 8]).conv2d(&t(&[4, 3, 3, 3]), None, c)
    });
    expect_err("conv2d", "groups", || x.conv2d(&t(&[4, 2, 3, 3]), None, c));
    expect_err("conv2d", "groups", || {
        x.conv2d(&t(&[4, 1, 3, 3]), None, Conv2dOptions { groups: 2, ..c })
    });
    expect_err("conv2d", "larger than the padded input", || {
        x.conv2d(&t(&[4, 3, 9, 9]), None, c)
    });
    expect_err("conv2d", "bias must be [4]", || {
        x.conv2d(&t(&[4, 3, 3, 3]), Some(&t(&[3])), c)
    });
    expect_err("conv2d", "positive", || {
        x.conv2d(
            &t(&[4, 3, 3, 3]),
            None,
            Conv2dOptions {
                stride: (0, 1),
                ..c
            },
        )
    });
    expect_err("conv1d", "[N, C, L]", || {
        x.conv1d(&t(&[4, 3, 3]), None, Conv1dOptions::default())
    });
    expect_err("max_pool2d", "[N, C, H, W]", || {
        t(&[8, 8]).max_pool2d(Pool2dOptions::new(2))
    });
    expect_err("max_pool2d", "positive", || {
        x.max_pool2d(Pool2dOptions::new(0))
    });
    expect_err("max_pool2d", "larger than the padded input", || {
        x.max_pool2d(Pool2dOptions::new(9))
    });
    expect_err("avg_pool2d", "half the kernel", || {
        x.avg_pool2d(Pool2dOptions {
            kernel: (2, 2),
            stride: (2, 2),
            padding: (2, 0),
        })
    });
    expect_err("adaptive_avg_pool2d", "positive", || {
        x.adaptive_avg_pool2d((0, 2))
    });
}

#[test]
fn value_errors() {
    let mut rng = ferrograd_tensor::Rng::new(0);
    expect_err("dropout", "[0, 1]", || t(&[2]).dropout(1.5, true, &mut rng));
    expect_err("uniform", "low <= high", || {
        Tensor::uniform([2], 1.0, 0.0, DType::F32, &mut rng)
    });
    expect_err("normal", "std", || {
        Tensor::normal([2], 0.0, -1.0, DType::F32, &mut rng)
    });
    expect_err("uniform", "i64", || {
        Tensor::uniform([2], 0.0, 1.0, DType::I64, &mut rng)
    });
    expect_err("arange", "moves away", || {
        Tensor::arange(0.0, 5.0, -1.0, DType::F32)
    });
    expect_err("from_vec", "cannot fill shape [2, 2]", || {
        Tensor::from_vec(vec![1.0f32; 3], [2, 2])
    });
    expect_err("item", "[2]", || t(&[2]).item().map(Tensor::scalar));
    expect_err("copy_from", "does not match", || {
        t(&[2]).copy_from(&t(&[3])).map(|_| t(&[1]))
    });
    expect_err("set_grad", "does not match", || {
        let p = t(&[2]).requires_grad_(true)?;
        p.set_grad(Some(t(&[3]))).map(|_| p)
    });
}

/// Sizes that overflow or could never be held are errors before anything is allocated, and the
/// checks hold for every way a shape is made.
#[test]
fn absurd_sizes_are_refused_before_allocating() {
    let huge = [1usize << 32, 1 << 32];
    expect_err("from_vec", "cannot fill shape", || {
        Tensor::from_vec(Vec::<f32>::new(), huge)
    });
    expect_err("full", "more elements than memory can address", || {
        Tensor::zeros(huge, DType::F32)
    });
    expect_err("full", "more than this machine's", || {
        Tensor::ones([1usize << 40, 1 << 10], DType::F64)
    });
    let mut rng = ferrograd_tensor::Rng::new(0);
    expect_err("normal", "more elements", || {
        Tensor::randn([usize::MAX, 2], DType::F32, &mut rng)
    });
    expect_err("uniform", "more than this machine's", || {
        Tensor::rand([1usize << 45], DType::F32, &mut rng)
    });
    expect_err("arange", "more than this machine's", || {
        Tensor::arange(0.0, 1e300, 1.0, DType::F32)
    });
    expect_err("eye", "more", || Tensor::eye(1 << 40, DType::F32));
    expect_err("reshape", "cannot reshape", || t(&[2, 2]).reshape(huge));
    expect_err("broadcast_to", "more elements", || t(&[1, 1]).expand(huge));
    expect_err("matmul", "more than this machine's", || {
        Tensor::zeros([1 << 20, 0], DType::F32)?.matmul(&Tensor::zeros([0, 1 << 20], DType::F32)?)
    });
    expect_err("linear", "more than this machine's", || {
        let w = Tensor::zeros([1 << 20, 0], DType::F32)?;
        Tensor::zeros([1 << 20, 0], DType::F32)?.linear(&w, None)
    });
    expect_err("add", "more elements", || {
        // two views whose broadcast would have 2^66 elements
        let a = t(&[1, 1]).expand([1usize << 33, 1])?;
        let b = t(&[1, 1]).expand([1, 1usize << 33])?;
        a.add(&b)
    });
    expect_err("reshape", "cannot reshape", || {
        t(&[4]).reshape([usize::MAX, usize::MAX, 4])
    });
}

/// A linear layer with no input features gives its bias on every row (PyTorch: `x @ W^T` of an
/// empty inner dimension is zeros), on every path through the kernels.
#[test]
fn linear_with_no_input_features_gives_the_bias() {
    let x = Tensor::from_vec(Vec::<f32>::new(), [3, 0]).unwrap();
    let w = Tensor::from_vec(Vec::<f32>::new(), [2, 0]).unwrap();
    let b = Tensor::from_vec(vec![1.5f32, -2.0], [2]).unwrap();
    let y = x.linear(&w, Some(&b)).unwrap();
    assert_eq!(y.dims(), &[3, 2]);
    assert_eq!(
        y.to_vec::<f32>().unwrap(),
        vec![1.5, -2.0, 1.5, -2.0, 1.5, -2.0]
    );
    let y = ferrograd_tensor::no_grad(|| x.linear_relu(&w, Some(&b))).unwrap();
    assert_eq!(
        y.to_vec::<f32>().unwrap(),
        vec![1.5, 0.0, 1.5, 0.0, 1.5, 0.0]
    );
    let y = x.linear(&w, None).unwrap();
    assert_eq!(y.to_vec::<f32>().unwrap(), vec![0.0; 6]);
    let y = x.matmul(&w.t().unwrap()).unwrap();
    assert_eq!(y.to_vec::<f32>().unwrap(), vec![0.0; 6]);
}
