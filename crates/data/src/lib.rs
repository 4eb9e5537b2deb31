//! # ferrograd-data
//!
//! Reading data and feeding it to training: the IDX format (MNIST), a `Dataset` trait, MNIST
//! with torchvision's transforms, and a `DataLoader` with seeded shuffling, `drop_last` and a
//! background thread that prepares the next batches while the model trains.

pub mod audio_features;
pub mod dataset;
pub mod error;
pub mod idx;
pub mod image;
pub mod interactions;
pub mod labelled;
pub mod loader;
pub mod mnist;
pub mod speech;
pub mod subword;
pub mod text;
pub mod text_tokenizer;
pub mod wav;

pub use dataset::{Dataset, Subset};
pub use error::{Error, Result};
pub use idx::IdxArray;
pub use labelled::{read_labelled, LabelledText};
pub use loader::{Batch, DataLoader};
pub use mnist::{Mnist, Normalize, Split};
pub use subword::{EncodedBatch, SubwordTokenizer};
pub use text::{CharTokenizer, TokenSplit};
pub use text_tokenizer::TextTokenizer;
