//! The `Tensor` handle: a strided view of shared storage, plus its place in the autograd graph.

use crate::autograd::{self, BackwardFn, Node};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::shape::Shape;
use crate::sparse_grad::RowSparse;
use crate::storage::Storage;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A unique identity for a tensor handle (views of one storage have different ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(u64);

pub(crate) struct TensorImpl {
    pub(crate) id: TensorId,
    pub(crate) storage: Arc<RwLock<Storage>>,
    pub(crate) layout: Layout,
    pub(crate) dtype: DType,
    /// Set on leaves a user marks as parameters, and on every op output that depends on one.
    pub(crate) requires_grad: AtomicBool,
    /// Whether this tensor was made by an op (false) or by the user (true).
    pub(crate) is_leaf: bool,
    /// The accumulated gradient of a leaf.
    pub(crate) grad: Mutex<Option<Tensor>>,
    /// The accumulated row-sparse gradient of a leaf table looked up with `sparse = true`.
    pub(crate) sparse_grad: Mutex<Option<RowSparse>>,
    /// How this tensor was made, while the graph is alive.
    pub(crate) node: Mutex<Option<Node>>,
}

/// An n-dimensional array of `f32`, `f64` or `i64` that records the operations made with it.
///
/// Cloning a `Tensor` is cheap: it clones a handle, not the data.
#[derive(Clone)]
pub struct Tensor(pub(crate) Arc<TensorImpl>);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Drop for TensorImpl {
    /// Unlinks the graph behind this tensor iteratively, so dropping a chain of 100,000 ops does
    /// not recurse 100,000 frames deep.
    fn drop(&mut self) {
        let node = self
            .node
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let Some(node) = node else { return };
        let mut stack: Vec<Tensor> = node.into_inputs();
        while let Some(t) = stack.pop() {
            if let Some(mut inner) = Arc::into_inner(t.0) {
                let n = inner
                    .node
                    .get_mut()
                    .unwrap_or_else(|e| e.into_inner())
                    .take();
                if let Some(n) = n {
                    stack.extend(n.into_inputs());
                }
            }
        }
    }
}

/// The storage's dtype, after checking the invariant every kernel relies on: the layout stays
/// inside the storage (for a dense result, the storage holds exactly the shape's elements).
/// The unsafe kernels index by the layout, so a violation would read or write out of bounds:
/// it stops here, naming the op, instead. Per tensor, not per element: O(rank).
fn checked_dtype(storage: &RwLock<Storage>, layout: &Layout, op: &str) -> crate::DType {
    let st = storage.read().unwrap_or_else(|e| e.into_inner());
    let extent = layout.storage_extent();
    assert!(
        extent <= st.len() && layout.numel() != usize::MAX,
        "internal error in {op}: a tensor of shape {:?} (offset {}, strides {:?}) needs {extent} \
         elements of storage, which holds {}",
        layout.dims(),
        layout.offset(),
        layout.strides(),
        st.len()
    );
    st.dtype()
}

impl Tensor {
    // ---------------------------------------------------------------- construction (internal)

    pub(crate) fn from_parts(storage: Arc<RwLock<Storage>>, layout: Layout) -> Tensor {
        let dtype = checked_dtype(&storage, &layout, "from_parts");
        Tensor(Arc::new(TensorImpl {
            id: TensorId(NEXT_ID.fetch_add(1, Ordering::Relaxed)),
            storage,
            layout,
            dtype,
            requires_grad: AtomicBool::new(false),
            is_leaf: true,
            grad: Mutex::new(None),
            sparse_grad: Mutex::new(None),
            node: Mutex::new(None),
        }))
    }

    /// A new leaf tensor owning `storage`, viewed as a dense `shape`.
    pub(crate) fn from_storage(storage: Storage, shape: impl Into<Shape>) -> Tensor {
        Self::from_parts(Arc::new(RwLock::new(storage)), Layout::contiguous(shape))
    }

    /// The result of an op: records a graph node when gradients are enabled and any input needs
    /// one. `make_backward` runs only in that case, so untracked ops cost nothing extra.
    pub(crate) fn from_op(
        storage: Arc<RwLock<Storage>>,
        layout: Layout,
        name: &'static str,
        inputs: &[&Tensor],
        make_backward: impl FnOnce() -> BackwardFn,
    ) -> Tensor {
        let track = autograd::is_grad_enabled() && inputs.iter().any(|t| t.requires_grad());
        let dtype = checked_dtype(&storage, &layout, name);
        let node = if track {
            Some(Node::new(
                name,
                inputs.iter().map(|t| (*t).clone()).collect(),
                make_backward(),
            ))
        } else {
            None
        };
        Tensor(Arc::new(TensorImpl {
            id: TensorId(NEXT_ID.fetch_add(1, Ordering::Relaxed)),
            storage,
            layout,
            dtype,
            requires_grad: AtomicBool::new(track),
            is_leaf: !track,
            grad: Mutex::new(None),
            sparse_grad: Mutex::new(None),
            node: Mutex::new(node),
        }))
    }

    /// An op defined outside this crate (a collective in the middle of a layer, say): `value`,
    /// computed with gradients off, becomes the result of the op `name` on `inputs`, whose
    /// vector-Jacobian product is `backward` (`(output, dL/doutput) -> dL/dinput_i`). The graph
    /// records it only when gradients are on and an input needs one, as for every op.
    pub fn custom_op(
        name: &'static str,
        value: &Tensor,
        inputs: &[&Tensor],
        backward: BackwardFn,
    ) -> Result<Tensor> {
        if value.requires_grad() {
            return Err(Error::value(
                name,
                "a custom op's value must be computed with gradients off",
            ));
        }
        Ok(Tensor::from_op(
            value.0.storage.clone(),
            value.0.layout.clone(),
            name,
            inputs,
            move || backward,
        ))
    }

    /// An op result with fresh dense storage.
    pub(crate) fn op_result(
        storage: Storage,
        shape: impl Into<Shape>,
        name: &'static str,
        inputs: &[&Tensor],
        make_backward: impl FnOnce() -> BackwardFn,
    ) -> Tensor {
        Self::from_op(
            Arc::new(RwLock::new(storage)),
            Layout::contiguous(shape),
            name,
            inputs,
            make_backward,
        )
    }

    /// A view of this tensor's storage with another layout.
    pub(crate) fn view_op(
        &self,
        layout: Layout,
        name: &'static str,
        make_backward: impl FnOnce() -> BackwardFn,
    ) -> Tensor {
        Self::from_op(self.0.storage.clone(), layout, name, &[self], make_backward)
    }

    // ---------------------------------------------------------------- accessors

    pub fn id(&self) -> TensorId {
        self.0.id
    }
    pub fn dtype(&self) -> DType {
        self.0.dtype
    }
    pub fn layout(&self) -> &Layout {
        &self.0.layout
    }
    pub fn shape(&self) -> &Shape {
        self.0.layout.shape()
    }
    pub fn dims(&self) -> &[usize] {
        self.0.layout.dims()
    }
    pub fn rank(&self) -> usize {
        self.dims().len()
    }
    pub fn numel(&self) -> usize {
        self.0.layout.numel()
    }
    pub fn strides(&self) -> &[usize] {
        self.0.layout.strides()
    }
    pub fn is_contiguous(&self) -> bool {
        self.0.layout.is_contiguous()
    }
    /// Size of one dim (negative counts from the end).
    pub fn size(&self, dim: isize) -> Result<usize> {
        Ok(self.dims()[self.0.layout.dim("size", dim)?])
    }
    /// Whether two handles view the same storage buffer.
    pub fn shares_storage(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.0.storage, &other.0.storage)
    }

    pub(crate) fn storage(&self) -> RwLockReadGuard<'_, Storage> {
        self.0.storage.read().unwrap_or_else(|e| e.into_inner())
    }
    /// The storage opened for writing; every in-place change of tensor data goes through here
    /// (it is what invalidates packed copies of weights, see `storage::write_count`).
    pub(crate) fn storage_mut(&self) -> RwLockWriteGuard<'_, Storage> {
        let guard = self.0.storage.write().unwrap_or_else(|e| e.into_inner());
        crate::storage::note_write();
        guard
    }

    // ---------------------------------------------------------------- autograd state

    /// Whether gradients flow to (a leaf) or through (an op result) this tensor.
    pub fn requires_grad(&self) -> bool {
        self.0.requires_grad.load(Ordering::Relaxed)
    }

    /// Marks a leaf as a parameter whose gradient `backward()` accumulates; returns the same handle
    /// for chaining. Only leaves of a floating dtype can be marked.
    pub fn requires_grad_(&self, on: bool) -> Result<Tensor> {
        if !self.0.is_leaf {
            return Err(Error::autograd(
                "requires_grad_",
                "only leaf tensors can be marked; use .detach() to make a new leaf from an op result",
            ));
        }
        if on && !self.dtype().is_float() {
            return Err(Error::dtype_unsupported("requires_grad_", self.dtype()));
        }
        self.0.requires_grad.store(on, Ordering::Relaxed);
        Ok(self.clone())
    }

    /// Whether this tensor was made by the user rather than by a recorded op.
    pub fn is_leaf(&self) -> bool {
        self.0.is_leaf
    }

    /// The name of the op that made this tensor, while its graph is alive.
    pub fn grad_fn_name(&self) -> Option<&'static str> {
        lock(&self.0.node).as_ref().map(|n| n.name())
    }

    /// The gradient accumulated into this leaf by `backward()`, if any.
    pub fn grad(&self) -> Option<Tensor> {
        lock(&self.0.grad).clone()
    }

    /// Replaces the accumulated gradient (None clears it, as `zero_grad(set_to_none=True)` does).
    pub fn set_grad(&self, g: Option<Tensor>) -> Result<()> {
        if let Some(g) = &g {
            if g.dims() != self.dims() || g.dtype() != self.dtype() {
                return Err(Error::shape(
                    "set_grad",
                    format!(
                        "gradient {:?} {} does not match tensor {:?} {}",
                        g.dims(),
                        g.dtype(),
                        self.dims(),
                        self.dtype()
                    ),
                ));
            }
        }
        *lock(&self.0.grad) = g;
        Ok(())
    }

    /// Clears the accumulated gradient, dense and row-sparse.
    pub fn zero_grad(&self) {
        *lock(&self.0.grad) = None;
        *lock(&self.0.sparse_grad) = None;
    }

    /// The row-sparse gradient accumulated into this leaf by lookups made with `sparse = true`
    /// ([`Tensor::embedding_sparse`], [`Tensor::embedding_bag`]); other uses of the same table
    /// accumulate into [`Tensor::grad`] as usual, and an optimizer adds the two.
    pub fn sparse_grad(&self) -> Option<RowSparse> {
        lock(&self.0.sparse_grad).clone()
    }

    /// Replaces the row-sparse gradient (it must be for this table: same rows, dim and dtype).
    pub fn set_sparse_grad(&self, g: Option<RowSparse>) -> Result<()> {
        if let Some(g) = &g {
            if self.rank() != 2
                || [g.num_rows, g.dim()] != self.dims()
                || g.values.dtype() != self.dtype()
            {
                return Err(Error::shape(
                    "set_sparse_grad",
                    format!(
                        "a gradient of [{}, {}] {} does not match tensor {:?} {}",
                        g.num_rows,
                        g.dim(),
                        g.values.dtype(),
                        self.dims(),
                        self.dtype()
                    ),
                ));
            }
        }
        *lock(&self.0.sparse_grad) = g;
        Ok(())
    }

    /// Adds `g` to the row-sparse gradient.
    pub(crate) fn accumulate_sparse_grad(&self, g: RowSparse) -> Result<()> {
        let mut slot = lock(&self.0.sparse_grad);
        *slot = Some(match slot.take() {
            None => g,
            Some(prev) => prev.add(&g)?,
        });
        Ok(())
    }

    pub(crate) fn take_node(&self) -> Option<Node> {
        lock(&self.0.node).take()
    }
    pub(crate) fn with_node<R>(&self, f: impl FnOnce(Option<&Node>) -> R) -> R {
        f(lock(&self.0.node).as_ref())
    }
    pub(crate) fn grad_slot(&self) -> std::sync::MutexGuard<'_, Option<Tensor>> {
        lock(&self.0.grad)
    }

    /// A new leaf sharing this tensor's data, cut from the graph (no gradient flows through it).
    pub fn detach(&self) -> Tensor {
        Self::from_parts(self.0.storage.clone(), self.0.layout.clone())
    }

    /// Computes the gradient of this scalar with respect to every leaf that requires one,
    /// accumulating into their `.grad()`. The graph is released afterwards.
    pub fn backward(&self) -> Result<()> {
        autograd::backward(self, None, false, None)
    }

    /// Backward from an explicit gradient of this tensor (any shape, same as this tensor's).
    pub fn backward_with(&self, grad: &Tensor) -> Result<()> {
        autograd::backward(self, Some(grad), false, None)
    }

    /// [`Tensor::backward`] that calls `hook` with each leaf as soon as its gradient is final,
    /// while the rest of the graph is still being differentiated (PyTorch's
    /// `register_post_accumulate_grad_hook`). An error from the hook stops the backward.
    pub fn backward_with_hook(&self, hook: autograd::GradReadyHook<'_>) -> Result<()> {
        autograd::backward(self, None, false, Some(hook))
    }

    /// Backward that keeps the graph, so another backward through it is possible.
    pub fn backward_retain_graph(&self, grad: Option<&Tensor>) -> Result<()> {
        autograd::backward(self, grad, true, None)
    }

    // ---------------------------------------------------------------- in-place updates

    /// Gives `f` the elements of this dense tensor to change in place, outside the graph. Used by
    /// optimizers and running statistics: parameters are leaves and their updates must not be
    /// recorded. Errors when `T` is not the tensor's dtype or the tensor is a strided view.
    pub fn update_data<T: crate::Element>(&self, f: impl FnOnce(&mut [T])) -> Result<()> {
        if !self.is_contiguous() {
            return Err(Error::value(
                "update_data",
                format!(
                    "in-place updates need a dense tensor, got strides {:?} for shape {:?}",
                    self.strides(),
                    self.dims()
                ),
            ));
        }
        let (off, n) = (self.0.layout.offset(), self.numel());
        let mut st = self.storage_mut();
        let dtype = st.dtype();
        match T::buffer_mut(&mut st) {
            Some(v) => {
                f(&mut v[off..off + n]);
                Ok(())
            }
            None => Err(Error::DType {
                op: "update_data",
                msg: format!("tensor has dtype {dtype}, asked for {}", T::DTYPE),
            }),
        }
    }

    /// Gives `f` the elements of this dense tensor, read in place without a copy. Errors when
    /// `T` is not the tensor's dtype or the tensor is a strided view.
    pub fn with_data<T: crate::Element, R>(&self, f: impl FnOnce(&[T]) -> R) -> Result<R> {
        if !self.is_contiguous() {
            return Err(Error::value(
                "with_data",
                format!(
                    "needs a dense tensor, got strides {:?} for shape {:?}",
                    self.strides(),
                    self.dims()
                ),
            ));
        }
        let (off, n) = (self.0.layout.offset(), self.numel());
        let st = self.storage();
        let dtype = st.dtype();
        match T::buffer(&st) {
            Some(v) => Ok(f(&v[off..off + n])),
            None => Err(Error::DType {
                op: "with_data",
                msg: format!("tensor has dtype {dtype}, asked for {}", T::DTYPE),
            }),
        }
    }

    /// [`Tensor::update_data`] for f32 tensors.
    pub fn update_f32(&self, f: impl FnOnce(&mut [f32])) -> Result<()> {
        self.update_data::<f32>(f)
    }

    /// Copies the values of `src` (same shape and dtype) into this tensor, in place, outside the
    /// graph.
    pub fn copy_from(&self, src: &Tensor) -> Result<()> {
        if src.dims() != self.dims() || src.dtype() != self.dtype() {
            return Err(Error::shape(
                "copy_from",
                format!(
                    "source {:?} {} does not match destination {:?} {}",
                    src.dims(),
                    src.dtype(),
                    self.dims(),
                    self.dtype()
                ),
            ));
        }
        if !self.is_contiguous() {
            return Err(Error::value("copy_from", "destination must be contiguous"));
        }
        let data = src.contiguous_storage();
        let off = self.0.layout.offset();
        let n = self.numel();
        let mut st = self.storage_mut();
        match (&mut *st, data) {
            (Storage::F32(d), Dense::F32(s)) => d[off..off + n].copy_from_slice(&s),
            (Storage::F64(d), Dense::F64(s)) => d[off..off + n].copy_from_slice(&s),
            (Storage::I64(d), Dense::I64(s)) => d[off..off + n].copy_from_slice(&s),
            _ => unreachable!("dtypes checked above"),
        }
        Ok(())
    }
}

/// Owned typed data of a dense row-major copy of a tensor (see [`Element`](crate::Element)).
pub enum Dense {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
}

impl Tensor {
    /// A dense row-major copy of the viewed elements (no copy is avoided here: callers own it).
    pub(crate) fn contiguous_storage(&self) -> Dense {
        let st = self.storage();
        let l = self.layout();
        match &*st {
            Storage::F32(v) => Dense::F32(crate::cpu::copy_strided(v, l)),
            Storage::F64(v) => Dense::F64(crate::cpu::copy_strided(v, l)),
            Storage::I64(v) => Dense::I64(crate::cpu::copy_strided(v, l)),
        }
    }
}

/// The elements of a tensor as one dense row-major slice: borrowed from the storage when the
/// view already is one (the common case: op results, parameters), copied otherwise. Kernels read
/// their inputs through this instead of [`Tensor::contiguous_storage`], which always copies.
pub(crate) struct DenseView<'a> {
    guard: RwLockReadGuard<'a, Storage>,
    /// Start and length of the borrowed range, when the view is contiguous.
    range: Option<(usize, usize)>,
    owned: Option<Dense>,
}

/// A borrowed dense slice of one element type.
pub(crate) enum DenseSlice<'a> {
    F32(&'a [f32]),
    F64(&'a [f64]),
    I64(&'a [i64]),
}

impl DenseView<'_> {
    pub(crate) fn get(&self) -> DenseSlice<'_> {
        if let Some(d) = &self.owned {
            return match d {
                Dense::F32(v) => DenseSlice::F32(v),
                Dense::F64(v) => DenseSlice::F64(v),
                Dense::I64(v) => DenseSlice::I64(v),
            };
        }
        let (a, n) = self.range.unwrap_or((0, 0));
        match &*self.guard {
            Storage::F32(v) => DenseSlice::F32(&v[a..a + n]),
            Storage::F64(v) => DenseSlice::F64(&v[a..a + n]),
            Storage::I64(v) => DenseSlice::I64(&v[a..a + n]),
        }
    }
}

impl Tensor {
    /// The viewed elements, dense and row-major, without a copy when possible (see
    /// [`DenseView`]). Holds a read lock on the storage while alive.
    pub(crate) fn dense(&self) -> DenseView<'_> {
        let guard = self.storage();
        let l = self.layout();
        if l.is_contiguous() {
            return DenseView {
                guard,
                range: Some((l.offset(), l.numel())),
                owned: None,
            };
        }
        let owned = match &*guard {
            Storage::F32(v) => Dense::F32(crate::cpu::copy_strided(v, l)),
            Storage::F64(v) => Dense::F64(crate::cpu::copy_strided(v, l)),
            Storage::I64(v) => Dense::I64(crate::cpu::copy_strided(v, l)),
        };
        DenseView {
            guard,
            range: None,
            owned: Some(owned),
        }
    }
}

impl std::fmt::Debug for Dense {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dense")
    }
}

impl Dense {
    pub(crate) fn into_storage(self) -> Storage {
        match self {
            Dense::F32(v) => Storage::new_f32(v),
            Dense::F64(v) => Storage::new_f64(v),
            Dense::I64(v) => Storage::new_i64(v),
        }
    }
}
