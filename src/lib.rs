pub use ferrograd_tensor as tensor;
pub use ferrograd_tensor::*;
