//! The IDX reader's checks, MNIST loading of the bundled files, and the DataLoader's order.

use ferrograd_data::idx::{encode_idx, parse_idx, read_idx};
use ferrograd_data::{DataLoader, Dataset, Mnist, Split};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn bundled() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist")
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ferrograd-data-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn err_of(bytes: &[u8]) -> String {
    parse_idx(bytes, Path::new("x.idx"))
        .unwrap_err()
        .to_string()
}

#[test]
fn idx_header_checks_name_the_file_and_the_problem() {
    let good = encode_idx(&[2, 3], &[1, 2, 3, 4, 5, 6]);
    let a = parse_idx(&good, Path::new("x.idx")).unwrap();
    assert_eq!(
        (a.dims.clone(), a.data.clone()),
        (vec![2, 3], vec![1, 2, 3, 4, 5, 6])
    );
    let e = err_of(&good[..good.len() - 1]);
    assert!(
        e.starts_with("x.idx: truncated data") && e.contains("need 6 bytes") && e.contains("has 5"),
        "{e}"
    );
    let mut long = good.clone();
    long.push(0);
    assert!(err_of(&long).contains("trailing data"));
    let mut magic = good.clone();
    magic[0] = 1;
    assert!(
        err_of(&magic).contains("bad IDX magic number 01000802"),
        "{}",
        err_of(&magic)
    );
    let mut float = good.clone();
    float[2] = 0x0D;
    assert!(err_of(&float).contains("0x0d (float) is not supported"));
    assert!(err_of(&good[..6]).contains("truncated header"));
    assert!(err_of(&[0, 0]).contains("too short"));
    let mut zero_dims = good.clone();
    zero_dims[3] = 0;
    assert!(err_of(&zero_dims).contains("zero dimensions"));
}

#[test]
fn gzip_files_are_read_and_bad_gzip_is_reported() {
    let d = tmpdir("gz");
    let raw = encode_idx(&[4], &[9, 8, 7, 6]);
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&raw).unwrap();
    let gz = enc.finish().unwrap();
    std::fs::write(d.join("ok.gz"), &gz).unwrap();
    assert_eq!(read_idx(d.join("ok.gz")).unwrap().data, vec![9, 8, 7, 6]);
    std::fs::write(d.join("cut.gz"), &gz[..gz.len() / 2]).unwrap();
    let e = read_idx(d.join("cut.gz")).unwrap_err().to_string();
    assert!(e.contains("cut.gz") && e.contains("gzip"), "{e}");
    let e = read_idx(d.join("absent.gz")).unwrap_err().to_string();
    assert!(e.contains("absent.gz") && e.contains("cannot read"), "{e}");
}

#[test]
fn bundled_mnist_loads_with_known_labels() {
    let test = Mnist::load(bundled(), Split::Test).unwrap();
    assert_eq!(test.len(), 10_000);
    let first: Vec<u8> = (0..8).map(|i| test.digit(i).unwrap()).collect();
    assert_eq!(first, vec![7, 2, 1, 0, 4, 1, 4, 9]);
    let (x, y) = test.batch(&[0, 1]).unwrap();
    assert_eq!(x.dims(), &[2, 1, 28, 28]);
    let v = x.to_vec::<f32>().unwrap();
    assert!(v.iter().all(|p| (0.0..=1.0).contains(p)) && v.contains(&1.0));
    assert_eq!(y.to_vec::<i64>().unwrap(), vec![7, 2]);
    let train = Mnist::load(bundled(), Split::Train).unwrap();
    assert_eq!(train.len(), 60_000);
    assert_eq!(
        (0..6).map(|i| train.digit(i).unwrap()).collect::<Vec<_>>(),
        vec![5, 0, 4, 1, 9, 2]
    );
}

#[test]
fn mnist_load_errors_name_the_file() {
    let e = Mnist::load("/nonexistent/mnist", Split::Test)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("/nonexistent/mnist") && e.contains("not found"),
        "{e}"
    );
    let d = tmpdir("mnist");
    std::fs::write(
        d.join("t10k-images-idx3-ubyte"),
        encode_idx(&[2, 28, 28], &vec![0; 2 * 784]),
    )
    .unwrap();
    let e = Mnist::load(&d, Split::Test).unwrap_err().to_string();
    assert!(
        e.contains("t10k-labels-idx1-ubyte") && e.contains("missing"),
        "{e}"
    );
    std::fs::write(
        d.join("t10k-labels-idx1-ubyte"),
        encode_idx(&[3], &[1, 2, 3]),
    )
    .unwrap();
    let e = Mnist::load(&d, Split::Test).unwrap_err().to_string();
    assert!(e.contains("3 labels for 2 images"), "{e}");
    std::fs::write(d.join("t10k-labels-idx1-ubyte"), encode_idx(&[2], &[1, 12])).unwrap();
    let e = Mnist::load(&d, Split::Test).unwrap_err().to_string();
    assert!(e.contains("label 12 at index 1"), "{e}");
    std::fs::write(
        d.join("t10k-images-idx3-ubyte"),
        encode_idx(&[2, 784], &vec![0; 2 * 784]),
    )
    .unwrap();
    let e = Mnist::load(&d, Split::Test).unwrap_err().to_string();
    assert!(e.contains("[N, rows, cols]"), "{e}");
    std::fs::write(
        d.join("t10k-images-idx3-ubyte"),
        encode_idx(&[2, 10, 10], &[0; 200]),
    )
    .unwrap();
    let e = Mnist::load(&d, Split::Test).unwrap_err().to_string();
    assert!(
        e.contains("t10k-images-idx3-ubyte") && e.contains("10 x 10") && e.contains("28 x 28"),
        "{e}"
    );
    std::fs::write(
        d.join("t10k-images-idx3-ubyte"),
        encode_idx(&[0, 28, 28], &[]),
    )
    .unwrap();
    std::fs::write(d.join("t10k-labels-idx1-ubyte"), encode_idx(&[0], &[])).unwrap();
    let e = Mnist::load(&d, Split::Test).unwrap_err().to_string();
    assert!(e.contains("holds no images"), "{e}");
}

/// A gzip stream whose header declares MNIST's training images but inflates to far more is
/// refused when it passes the declared size, without holding the rest; a header claiming
/// more than the file holds is refused before the data is read.
#[test]
fn idx_readers_stop_at_the_declared_size() {
    use ferrograd_data::idx::read_idx_bytes;
    let mut big = encode_idx(&[100, 28, 28], &[]);
    big.resize(big.len() + 100 * 784 + 5_000_000, 0);
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&big).unwrap();
    let gz = enc.finish().unwrap();
    let e = read_idx_bytes(&gz, Path::new("bomb.gz"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("bomb.gz") && e.contains("trailing data"), "{e}");
    let claims = encode_idx(&[60000, 28, 28], &[1, 2, 3]);
    let e = read_idx_bytes(&claims, Path::new("x"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("truncated data") && e.contains("47040000 bytes"),
        "{e}"
    );
    let e = read_idx_bytes(&encode_idx(&[1 << 31, 1 << 31], &[]), Path::new("x"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("more than the 4 GiB"), "{e}");
}

#[test]
fn loader_order_is_seeded_complete_and_prefetch_equal() {
    let ds = Arc::new(Mnist::load(bundled(), Split::Test).unwrap().truncate(1000));
    let l = DataLoader::new(ds.clone(), 64, true, 42).unwrap();
    assert_eq!(l.num_batches(), 16);
    assert_eq!(l.clone().with_drop_last(true).num_batches(), 15);
    let o0 = l.order(0);
    assert_eq!(
        o0,
        DataLoader::new(ds.clone(), 64, true, 42).unwrap().order(0)
    );
    assert_ne!(o0, l.order(1));
    assert_ne!(
        o0,
        DataLoader::new(ds.clone(), 64, true, 43).unwrap().order(0)
    );
    let mut s = o0.clone();
    s.sort();
    assert_eq!(s, (0..1000).collect::<Vec<_>>());
    assert_eq!(
        DataLoader::new(ds.clone(), 64, false, 42).unwrap().order(3),
        (0..1000).collect::<Vec<_>>()
    );
    let labels = |prefetch: usize, start: usize| -> Vec<i64> {
        l.clone()
            .with_prefetch(prefetch)
            .epoch(2, start)
            .flat_map(|b| b.unwrap().targets.to_vec::<i64>().unwrap())
            .collect()
    };
    let sync = labels(0, 0);
    assert_eq!(sync.len(), 1000);
    assert_eq!(sync, labels(4, 0));
    assert_eq!(&sync[5 * 64..], &labels(2, 5)[..]);
    assert!(DataLoader::new(ds, 0, true, 0).is_err());
}

/// PyTorch's DistributedSampler: the seeded order padded with its own first samples to a
/// multiple of the world, replica r at positions r, r + world, ...; the k-th batches of all
/// replicas together are the k-th batch of one process at world x the batch size.
#[test]
fn shards_partition_the_padded_order_as_distributed_sampler_does() {
    let ds = Arc::new(Mnist::load(bundled(), Split::Test).unwrap().truncate(10));
    let one = DataLoader::new(ds.clone(), 6, true, 7).unwrap();
    let order = one.order(1);
    let shards: Vec<DataLoader> = (0..3)
        .map(|r| {
            DataLoader::new(ds.clone(), 2, true, 7)
                .unwrap()
                .with_shard(r, 3)
                .unwrap()
        })
        .collect();
    // 10 samples padded to 12: each replica has 4, in 2 batches of 2
    let padded: Vec<usize> = order.iter().chain(&order[..2]).copied().collect();
    for (r, l) in shards.iter().enumerate() {
        assert_eq!(l.samples_per_epoch(), 4);
        assert_eq!(l.num_batches(), 2);
        let want: Vec<usize> = (0..4).map(|i| padded[i * 3 + r]).collect();
        assert_eq!(l.shard_order(1), want, "replica {r}");
    }
    for k in 0..2 {
        let mut together: Vec<usize> = (0..3)
            .flat_map(|r| shards[r].shard_order(1)[k * 2..k * 2 + 2].to_vec())
            .collect();
        let mut single = padded[k * 6..k * 6 + 6].to_vec();
        together.sort();
        single.sort();
        assert_eq!(together, single, "batch {k}");
    }
    // a world larger than the dataset repeats it
    let tiny = Arc::new(Mnist::load(bundled(), Split::Test).unwrap().truncate(2));
    let l = DataLoader::new(tiny.clone(), 1, false, 0).unwrap();
    let o: Vec<Vec<usize>> = (0..5)
        .map(|r| l.clone().with_shard(r, 5).unwrap().shard_order(0))
        .collect();
    assert_eq!(o, vec![vec![0], vec![1], vec![0], vec![1], vec![0]]);
    assert!(l.clone().with_shard(5, 5).is_err());
    assert!(l.with_shard(0, 0).is_err());
}
