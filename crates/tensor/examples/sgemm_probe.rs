//! GFLOP/s of the f32 matrix product, ours (`cpu/sgemm.rs`) against the `gemm` crate, and of
//! this core's fused multiply-add units alone, for finding how far a product is from the
//! machine's limit. A probe, not a benchmark (that is `ferrograd-bench tensor`).
//!
//! `cargo run --release -p ferrograd-tensor --example sgemm_probe -- M N K THREADS [BT [AT]]`:
//! C (M x N) = A (M x K) B (K x N), best of 4 calls per round, median and best of 8 rounds
//! (`ROUNDS=R` to change); BT = 1 takes B transposed (a linear layer's `x W^T`), AT = 1 A.
//!
//! `... --example sgemm_probe -- peak`: one thread running twelve independent chains of 8-lane
//! FMAs and nothing else, the most any kernel could reach on one core (2 FMA units x 8 lanes
//! x 2 flops per cycle, times the clock the VM gives).
use ferrograd_tensor::cpu::gemm::{gemm_into, MatPtr};
use ferrograd_tensor::cpu::sgemm;
use std::time::Instant;

fn main() {
    if let Err(e) = run() {
        eprintln!("sgemm_probe: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !sgemm::available() {
        return Err("this CPU lacks AVX2/FMA".into());
    }
    if args.first().map(String::as_str) == Some("peak") {
        for _ in 0..5 {
            println!("FMA peak, one thread: {:.1} GFLOP/s", fma_peak());
        }
        return Ok(());
    }
    let num = |i: usize, name: &str, default: Option<usize>| -> Result<usize, String> {
        match (args.get(i), default) {
            (Some(s), _) => s.parse().map_err(|e| format!("{name} = {s:?}: {e}")),
            (None, Some(d)) => Ok(d),
            (None, None) => Err(format!(
                "usage: sgemm_probe M N K THREADS [BT [AT]] | peak (missing {name})"
            )),
        }
    };
    let (m, n, k, threads) = (
        num(0, "M", None)?,
        num(1, "N", None)?,
        num(2, "K", None)?,
        num(3, "THREADS", None)?.max(1),
    );
    let bt = num(4, "BT", Some(0))? == 1;
    let at = num(5, "AT", Some(0))? == 1;
    let rounds = match std::env::var("ROUNDS") {
        Ok(v) => v.parse().map_err(|e| format!("ROUNDS = {v:?}: {e}"))?,
        Err(_) => 8usize,
    }
    .max(1);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .map_err(|e| e.to_string())?;
    let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
    let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
    let mut c = vec![0f32; m * n];
    let (ars, acs) = if at { (1, m) } else { (k, 1) };
    let (brs, bcs) = if bt { (1, k) } else { (n, 1) };
    let la = MatPtr {
        ptr: a.as_ptr(),
        rs: ars as isize,
        cs: acs as isize,
    };
    let lb = MatPtr {
        ptr: b.as_ptr(),
        rs: brs as isize,
        cs: bcs as isize,
    };
    let flops = 2.0 * (m * n * k) as f64;
    let mut ours = Vec::new();
    let mut crate_gemm = Vec::new();
    for _ in 0..rounds {
        for (which, out) in [(0, &mut ours), (1, &mut crate_gemm)] {
            let mut best = f64::MAX;
            for _ in 0..4 {
                let t = Instant::now();
                if which == 0 {
                    // SAFETY: AVX2/FMA checked above; A, B and C hold the extents described
                    // and C aliases neither.
                    unsafe {
                        sgemm::sgemm(
                            m,
                            n,
                            k,
                            la,
                            lb,
                            c.as_mut_ptr(),
                            n as isize,
                            1,
                            false,
                            std::ptr::null(),
                            false,
                            threads,
                        )
                    };
                } else {
                    let par = if threads > 1 {
                        gemm::Parallelism::Rayon(threads)
                    } else {
                        gemm::Parallelism::None
                    };
                    // SAFETY: as above
                    unsafe { gemm_into(m, n, k, c.as_mut_ptr(), n as isize, false, la, lb, par) };
                }
                best = best.min(t.elapsed().as_secs_f64());
            }
            out.push(flops / best / 1e9);
        }
    }
    for (name, mut v) in [("ours", ours), ("gemm crate", crate_gemm)] {
        v.sort_by(f64::total_cmp);
        println!(
            "{name:10} {m}x{n}x{k} threads {threads} bt {} at {}: median {:.1}, best {:.1} GFLOP/s",
            bt as u8,
            at as u8,
            v[v.len() / 2],
            v[v.len() - 1]
        );
    }
    Ok(())
}

/// GFLOP/s of twelve independent chains of FMAs (enough to cover the FMA latency of 4 cycles
/// on two units) in registers: no loads, no stores.
fn fma_peak() -> f64 {
    let reps: u64 = 50_000_000;
    let t = Instant::now();
    // SAFETY: AVX2/FMA checked by the caller
    let sink = unsafe { fma_chains(reps) };
    let s = t.elapsed().as_secs_f64();
    std::hint::black_box(sink);
    (reps * 12 * 16) as f64 / s / 1e9
}

/// # Safety
/// The CPU has AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_chains(reps: u64) -> f32 {
    use std::arch::x86_64::*;
    let x = _mm256_set1_ps(std::hint::black_box(0.999_999));
    let y = _mm256_set1_ps(std::hint::black_box(1e-7));
    let mut c = [_mm256_setzero_ps(); 12];
    for _ in 0..reps {
        for v in c.iter_mut() {
            *v = _mm256_fmadd_ps(*v, x, y);
        }
    }
    let mut s = _mm256_setzero_ps();
    for v in c {
        s = _mm256_add_ps(s, v);
    }
    _mm256_cvtss_f32(s)
}
