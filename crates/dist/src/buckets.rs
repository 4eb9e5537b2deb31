//! Which gradients travel together. PyTorch's DistributedDataParallel packs the parameters, in
//! reverse order (the backward makes the last layer's gradients first), into buckets of at most
//! 25 MiB, the first of them 1 MiB so that the first allreduce starts early; a bucket holds one
//! dtype. We do the same.

use ferrograd_tensor::DType;

/// PyTorch's `bucket_cap_mb` default.
pub const BUCKET_BYTES: usize = 25 << 20;
/// PyTorch's `dist._DEFAULT_FIRST_BUCKET_BYTES`.
pub const FIRST_BUCKET_BYTES: usize = 1 << 20;

/// One bucket: the indices of its parameters (into the list given to [`assign`]) and, for each,
/// where its values start in the bucket's buffer.
#[derive(Clone, Debug, PartialEq)]
pub struct Bucket {
    pub dtype: DType,
    pub members: Vec<usize>,
    pub offsets: Vec<usize>,
    /// Values of all members together.
    pub len: usize,
}

/// Packs parameters of the given element counts and dtypes into buckets: reverse order, a bucket
/// closed once it holds `first_cap` bytes (the first of its dtype) or `cap` bytes (the others).
/// The buckets come in the order their first member appears in the reversed list, which is the
/// order the backward fills them in.
pub fn assign(sizes: &[(usize, DType)], first_cap: usize, cap: usize) -> Vec<Bucket> {
    let mut done: Vec<Bucket> = Vec::new();
    let mut open: Vec<Bucket> = Vec::new();
    for i in (0..sizes.len()).rev() {
        let (n, dtype) = sizes[i];
        let at = match open.iter().position(|b| b.dtype == dtype) {
            Some(k) => k,
            None => {
                open.push(Bucket {
                    dtype,
                    members: Vec::new(),
                    offsets: Vec::new(),
                    len: 0,
                });
                open.len() - 1
            }
        };
        let b = &mut open[at];
        b.members.push(i);
        b.offsets.push(b.len);
        b.len += n;
        let limit = if done.iter().any(|d| d.dtype == dtype) {
            cap
        } else {
            first_cap
        };
        if b.len * dtype.size_in_bytes() >= limit {
            done.push(open.remove(at));
        }
    }
    done.extend(open);
    // reversed position of the first member: larger parameter index = earlier in the backward
    done.sort_by_key(|b| std::cmp::Reverse(b.members[0]));
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_order_a_small_first_bucket_and_one_dtype_per_bucket() {
        let f = DType::F32;
        // 4 bytes each: caps of 8 and 16 bytes
        let sizes = [(1, f), (2, f), (3, f), (1, DType::F64), (2, f), (1, f)];
        let b = assign(&sizes, 8, 16);
        let members: Vec<Vec<usize>> = b.iter().map(|b| b.members.clone()).collect();
        // f32 in reverse: 5 (4 B), 4 (12 B, closes the first at >= 8), then 2, 1 (20 B, closes
        // at >= 16), then 0 left open; the f64 alone
        assert_eq!(members, vec![vec![5, 4], vec![3], vec![2, 1], vec![0]]);
        assert_eq!(b[0].offsets, vec![0, 1]);
        assert_eq!(b[2].offsets, vec![0, 3]);
        assert_eq!(b[2].len, 5);
        assert_eq!(b[1].dtype, DType::F64);
    }
}
