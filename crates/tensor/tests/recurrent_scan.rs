//! The fused recurrent scan: its backward against central differences in f64 for every cell,
//! both directions, with and without lengths; its forward against the same cell written with
//! generic ops (matmul, sigmoid, tanh) step by step; and its errors.

mod common;
use common::{assert_close, leaf};
use ferrograd_tensor::{gradcheck, GradcheckOptions, RecurrentCell, ScanOptions, Tensor};

const CELLS: [RecurrentCell; 4] = [
    RecurrentCell::RnnTanh,
    RecurrentCell::RnnRelu,
    RecurrentCell::Lstm,
    RecurrentCell::Gru,
];

/// (steps, batch, input-side width, hidden)
fn inputs(cell: RecurrentCell, t: usize, b: usize, h: usize, seed: u64) -> Vec<Tensor> {
    let gh = cell.gates() * h;
    let mut v = vec![
        leaf(&[t, b, gh], -1.5, 1.5, seed),
        leaf(&[gh, h], -0.8, 0.8, seed + 1),
        leaf(&[gh], -0.5, 0.5, seed + 2),
        leaf(&[b, h], -0.9, 0.9, seed + 3),
    ];
    if cell.has_cell_state() {
        v.push(leaf(&[b, h], -0.9, 0.9, seed + 4));
    }
    v
}

fn scan(cell: RecurrentCell, x: &[Tensor], reverse: bool, lengths: Option<&[usize]>) -> Tensor {
    Tensor::recurrent_scan(
        &x[0],
        &x[1],
        Some(&x[2]),
        &x[3],
        x.get(4),
        ScanOptions {
            cell,
            reverse,
            lengths,
        },
    )
    .unwrap()
}

#[test]
fn every_cell_passes_gradcheck_in_both_directions_with_and_without_lengths() {
    for cell in CELLS {
        for reverse in [false, true] {
            for lengths in [None, Some(&[4usize, 1, 3][..])] {
                let x = inputs(cell, 4, 3, 3, 11);
                let f = |x: &[Tensor]| {
                    Tensor::recurrent_scan(
                        &x[0],
                        &x[1],
                        Some(&x[2]),
                        &x[3],
                        x.get(4),
                        ScanOptions {
                            cell,
                            reverse,
                            lengths,
                        },
                    )
                };
                gradcheck(f, &x, GradcheckOptions::default()).unwrap_or_else(|e| {
                    panic!("{cell:?} reverse={reverse} lengths={lengths:?}: {e}")
                });
            }
        }
    }
}

/// One step of `cell` with generic ops: (xp_t [B, GH], h, c, w, b) -> (h', c').
fn composite_step(
    cell: RecurrentCell,
    xp: &Tensor,
    h: &Tensor,
    c: Option<&Tensor>,
    w: &Tensor,
    b: &Tensor,
) -> (Tensor, Option<Tensor>) {
    let hh = h.matmul(&w.t().unwrap()).unwrap().add(b).unwrap();
    let nh = h.dims()[1];
    let part = |t: &Tensor, k: usize| t.narrow(1, k * nh, nh).unwrap();
    match cell {
        RecurrentCell::RnnTanh => (xp.add(&hh).unwrap().tanh().unwrap(), None),
        RecurrentCell::RnnRelu => (xp.add(&hh).unwrap().relu().unwrap(), None),
        RecurrentCell::Lstm => {
            let a = xp.add(&hh).unwrap();
            let i = part(&a, 0).sigmoid().unwrap();
            let f = part(&a, 1).sigmoid().unwrap();
            let g = part(&a, 2).tanh().unwrap();
            let o = part(&a, 3).sigmoid().unwrap();
            let c2 = f.mul(c.unwrap()).unwrap().add(&i.mul(&g).unwrap()).unwrap();
            (o.mul(&c2.tanh().unwrap()).unwrap(), Some(c2))
        }
        RecurrentCell::Gru => {
            let r = part(xp, 0).add(&part(&hh, 0)).unwrap().sigmoid().unwrap();
            let z = part(xp, 1).add(&part(&hh, 1)).unwrap().sigmoid().unwrap();
            let n = part(xp, 2)
                .add(&r.mul(&part(&hh, 2)).unwrap())
                .unwrap()
                .tanh()
                .unwrap();
            let one_minus_z = z.rsub_scalar(1.0).unwrap();
            let h2 = one_minus_z
                .mul(&n)
                .unwrap()
                .add(&z.mul(h).unwrap())
                .unwrap();
            (h2, None)
        }
    }
}

#[test]
fn the_fused_scan_gives_the_values_of_the_cell_written_with_generic_ops() {
    for cell in CELLS {
        for reverse in [false, true] {
            let (t, b, nh) = (5, 2, 4);
            let x = inputs(cell, t, b, nh, 40);
            let packed = scan(cell, &x, reverse, None);
            let (mut h, mut c) = (x[3].clone(), x.get(4).cloned());
            let mut outs = vec![None; t];
            for s in 0..t {
                let ti = if reverse { t - 1 - s } else { s };
                let xp = x[0]
                    .narrow(0, ti, 1)
                    .unwrap()
                    .reshape([b, cell.gates() * nh])
                    .unwrap();
                let (h2, c2) = composite_step(cell, &xp, &h, c.as_ref(), &x[1], &x[2]);
                outs[ti] = Some(h2.clone());
                h = h2;
                c = c2;
            }
            let mut want: Vec<f64> = outs
                .into_iter()
                .flat_map(|o| o.unwrap().to_vec_f64())
                .collect();
            want.extend(h.to_vec_f64());
            if let Some(c) = c {
                want.extend(c.to_vec_f64());
            }
            assert_close(
                &packed.to_vec_f64(),
                &want,
                1e-13,
                1e-14,
                &format!("{cell:?}"),
            );
        }
    }
}

#[test]
fn rows_past_their_length_output_zero_and_keep_the_state_of_their_last_step() {
    let cell = RecurrentCell::Lstm;
    let (t, b, nh) = (4, 2, 3);
    let x = inputs(cell, t, b, nh, 70);
    let packed = scan(cell, &x, false, Some(&[2, 4]));
    // row 0 alone, run for 2 steps
    let row0: Vec<Tensor> = x
        .iter()
        .enumerate()
        .map(|(i, v)| match i {
            0 => v
                .narrow(0, 0, 2)
                .unwrap()
                .narrow(1, 0, 1)
                .unwrap()
                .contiguous()
                .unwrap(),
            3 | 4 => v.narrow(0, 0, 1).unwrap().contiguous().unwrap(),
            _ => v.clone(),
        })
        .collect();
    let alone = scan(cell, &row0, false, None).to_vec_f64();
    let got = packed.to_vec_f64();
    let at = |slot: usize, row: usize| &got[(slot * b + row) * nh..(slot * b + row + 1) * nh];
    assert_eq!(at(0, 0), &alone[0..nh]);
    assert_eq!(at(1, 0), &alone[nh..2 * nh]);
    assert!(at(2, 0).iter().chain(at(3, 0)).all(|&v| v == 0.0));
    assert_eq!(
        at(4, 0),
        &alone[2 * nh..3 * nh],
        "final h at the row's own last step"
    );
    assert_eq!(
        at(5, 0),
        &alone[3 * nh..4 * nh],
        "final c at the row's own last step"
    );
}

#[test]
fn f32_and_f64_scans_agree() {
    for cell in CELLS {
        let x = inputs(cell, 6, 3, 8, 90);
        let x32: Vec<Tensor> = x
            .iter()
            .map(|t| t.to_dtype(ferrograd_tensor::DType::F32).unwrap())
            .collect();
        let a = scan(cell, &x, true, Some(&[6, 2, 5])).to_vec_f64();
        let b = scan(cell, &x32, true, Some(&[6, 2, 5])).to_vec_f64();
        assert_close(&b, &a, 1e-5, 1e-6, &format!("{cell:?}"));
    }
}

#[test]
fn bad_shapes_and_lengths_are_errors_that_name_them() {
    let x = inputs(RecurrentCell::Lstm, 3, 2, 2, 5);
    let run = |cell, x: &[Tensor], lengths: Option<&[usize]>| {
        Tensor::recurrent_scan(
            &x[0],
            &x[1],
            Some(&x[2]),
            &x[3],
            x.get(4),
            ScanOptions {
                cell,
                reverse: false,
                lengths,
            },
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
    };
    assert!(run(RecurrentCell::Gru, &x, None).contains("weight_hh"));
    assert!(run(RecurrentCell::Lstm, &x, Some(&[3, 0])).contains("length 0"));
    assert!(run(RecurrentCell::Lstm, &x, Some(&[3, 4])).contains("length 4"));
    assert!(run(RecurrentCell::Lstm, &x, Some(&[3])).contains("1 lengths"));
    assert!(run(RecurrentCell::Lstm, &x[..4], None).contains("needs c0"));
    let mut bad = x.clone();
    bad[3] = leaf(&[3, 2], 0.0, 1.0, 1);
    assert!(run(RecurrentCell::Lstm, &bad, None).contains("h0 [3, 2]"));
}

#[test]
fn batches_of_several_row_blocks_match_one_block_each_and_any_thread_count() {
    // 37 rows run as blocks of 16, 16 and 5; each row alone must give the same bits
    for cell in CELLS {
        let (t, b, nh) = (5, 37, 8);
        let x: Vec<Tensor> = inputs(cell, t, b, nh, 120)
            .iter()
            .map(|v| v.to_dtype(ferrograd_tensor::DType::F32).unwrap())
            .collect();
        let lengths: Vec<usize> = (0..b).map(|r| 1 + r % t).collect();
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| {
                    let packed = scan(cell, &x, true, Some(&lengths));
                    let gout = leaf(packed.dims(), -1.0, 1.0, 7)
                        .to_dtype(ferrograd_tensor::DType::F32)
                        .unwrap();
                    let xs: Vec<Tensor> = x
                        .iter()
                        .map(|v| v.detach().requires_grad_(true).unwrap())
                        .collect();
                    let p = scan(cell, &xs, true, Some(&lengths));
                    p.backward_with(&gout).unwrap();
                    let mut bits: Vec<u32> = packed
                        .to_vec::<f32>()
                        .unwrap()
                        .iter()
                        .map(|v| v.to_bits())
                        .collect();
                    for v in &xs {
                        bits.extend(
                            v.grad()
                                .unwrap()
                                .to_vec::<f32>()
                                .unwrap()
                                .iter()
                                .map(|v| v.to_bits()),
                        );
                    }
                    bits
                })
        };
        let one = run(1);
        assert_eq!(one, run(2), "{cell:?}: 1 and 2 threads");
        assert_eq!(one, run(3), "{cell:?}: 1 and 3 threads");
        // row 20 (the second block) alone
        let r = 20;
        let row: Vec<Tensor> = x
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let d = if i == 0 { 1 } else { 0 };
                if i == 1 || i == 2 {
                    v.clone()
                } else {
                    v.narrow(d, r, 1).unwrap().contiguous().unwrap()
                }
            })
            .collect();
        let alone = scan(cell, &row, true, Some(&lengths[r..r + 1]))
            .to_vec::<f32>()
            .unwrap();
        let all = scan(cell, &x, true, Some(&lengths))
            .to_vec::<f32>()
            .unwrap();
        let slots = all.len() / (b * nh);
        for s in 0..slots {
            let got = &all[(s * b + r) * nh..(s * b + r + 1) * nh];
            let want = &alone[s * nh..(s + 1) * nh];
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() <= 1e-6, "{cell:?} slot {s}: {g} vs {w}");
            }
        }
    }
}
