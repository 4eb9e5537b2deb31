//! Output paths are checked before the first step: a missing or unwritable directory, an output
//! that is also an input (the corpus, a data file, the initial weights) or another output
//! (`--checkpoint` equal to `--out`) is an error at once, not after an hour of training. Files
//! themselves are written by [`write_atomic`]: a temporary file in the same directory, created
//! exclusively under an unpredictable name, renamed into place, removed on failure.

use crate::error::{Result, TrainError};
use std::path::{Path, PathBuf};

pub use ferrograd_nn::serialize::write_atomic;

/// A path with the flag that named it, for messages.
#[derive(Clone, Debug)]
pub struct Named {
    pub flag: String,
    pub path: PathBuf,
}

impl Named {
    pub fn new(flag: &str, path: impl Into<PathBuf>) -> Self {
        Named {
            flag: flag.to_string(),
            path: path.into(),
        }
    }
}

/// The files and directories a run reads and writes.
#[derive(Clone, Debug, Default)]
pub struct OutputPlan {
    pub inputs: Vec<Named>,
    /// Files written (weights, checkpoint, metrics, plot).
    pub files: Vec<Named>,
    /// Directories written into (TensorBoard), created if missing.
    pub dirs: Vec<Named>,
}

/// The absolute form of a path that may not exist yet: its directory resolved through symlinks,
/// plus its own name (itself resolved when it is a symlink to an existing file).
fn resolved(p: &Path) -> PathBuf {
    if let Ok(c) = std::fs::canonicalize(p) {
        return c;
    }
    let dir = parent_dir(p);
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    match p.file_name() {
        Some(n) => dir.join(n),
        None => dir,
    }
}

fn parent_dir(p: &Path) -> &Path {
    p.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Whether a file can be created in `dir` (tried with a temporary file, removed at once).
fn writable(dir: &Path) -> std::io::Result<()> {
    tempfile::Builder::new()
        .prefix(".ferrograd-check.")
        .tempfile_in(dir)
        .map(drop)
}

impl OutputPlan {
    pub fn input(mut self, flag: &str, path: Option<&Path>) -> Self {
        if let Some(p) = path {
            self.inputs.push(Named::new(flag, p));
        }
        self
    }
    pub fn file(mut self, flag: &str, path: Option<&Path>) -> Self {
        if let Some(p) = path {
            self.files.push(Named::new(flag, p));
        }
        self
    }
    pub fn dir(mut self, flag: &str, path: Option<&Path>) -> Self {
        if let Some(p) = path {
            self.dirs.push(Named::new(flag, p));
        }
        self
    }

    /// Every check, each failure one line naming the flag and the path.
    pub fn check(&self) -> Result<()> {
        for o in &self.files {
            let dir = parent_dir(&o.path);
            if !dir.is_dir() {
                return Err(TrainError::config(format!(
                    "{} {}: the directory {} does not exist",
                    o.flag,
                    o.path.display(),
                    dir.display()
                )));
            }
            if o.path.is_dir() {
                return Err(TrainError::config(format!(
                    "{} {}: is a directory, not a file",
                    o.flag,
                    o.path.display()
                )));
            }
            writable(dir).map_err(|e| {
                TrainError::config(format!(
                    "{} {}: cannot write in {}: {e}",
                    o.flag,
                    o.path.display(),
                    dir.display()
                ))
            })?;
        }
        for d in &self.dirs {
            if d.path.exists() {
                if !d.path.is_dir() {
                    return Err(TrainError::config(format!(
                        "{} {}: exists and is not a directory",
                        d.flag,
                        d.path.display()
                    )));
                }
                writable(&d.path).map_err(|e| {
                    TrainError::config(format!(
                        "{} {}: cannot write in it: {e}",
                        d.flag,
                        d.path.display()
                    ))
                })?;
            } else {
                let parent = parent_dir(&d.path);
                if !parent.is_dir() {
                    return Err(TrainError::config(format!(
                        "{} {}: the directory {} does not exist",
                        d.flag,
                        d.path.display(),
                        parent.display()
                    )));
                }
                writable(parent).map_err(|e| {
                    TrainError::config(format!(
                        "{} {}: cannot create it in {}: {e}",
                        d.flag,
                        d.path.display(),
                        parent.display()
                    ))
                })?;
            }
        }
        let outs: Vec<(&Named, PathBuf)> = self
            .files
            .iter()
            .chain(&self.dirs)
            .map(|o| (o, resolved(&o.path)))
            .collect();
        for (i, (a, ra)) in outs.iter().enumerate() {
            for (b, rb) in &outs[i + 1..] {
                if ra == rb {
                    return Err(TrainError::config(format!(
                        "{} and {} are the same path ({}): one would overwrite the other",
                        a.flag,
                        b.flag,
                        a.path.display()
                    )));
                }
            }
            for inp in &self.inputs {
                let ri = resolved(&inp.path);
                if *ra == ri {
                    return Err(TrainError::config(format!(
                        "{} {} is also the input {}: refusing to overwrite it",
                        a.flag,
                        a.path.display(),
                        inp.flag
                    )));
                }
            }
        }
        Ok(())
    }
}
