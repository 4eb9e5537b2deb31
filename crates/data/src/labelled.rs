//! Labelled text for classification: JSON lines (optionally gzipped) or CSV with a header, one
//! example per record. The text is one field or several joined by a newline (an e-mail's subject
//! and body); the label is any field (string or number), mapped to class indices in sorted order
//! of its distinct values. Bytes that are not UTF-8 are replaced (U+FFFD), as some public corpora
//! hold Latin-1 and mojibake.

use crate::error::{Error, Result};
use ferrograd_tensor::Rng;
use std::path::Path;

/// Texts with class indices.
#[derive(Clone, Debug, Default)]
pub struct LabelledText {
    pub texts: Vec<String>,
    pub labels: Vec<usize>,
    /// Class names; `labels[i]` indexes this.
    pub classes: Vec<String>,
}

impl LabelledText {
    pub fn len(&self) -> usize {
        self.texts.len()
    }
    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }

    /// Examples at `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> LabelledText {
        LabelledText {
            texts: idx.iter().map(|&i| self.texts[i].clone()).collect(),
            labels: idx.iter().map(|&i| self.labels[i]).collect(),
            classes: self.classes.clone(),
        }
    }

    /// A seeded random split: `(train, held_out)` with `fraction` of the examples held out.
    pub fn split(&self, fraction: f64, seed: u64) -> Result<(LabelledText, LabelledText)> {
        if !(0.0..1.0).contains(&fraction) || fraction == 0.0 {
            return Err(Error::Invalid(format!(
                "held-out fraction must be in (0, 1), got {fraction}"
            )));
        }
        let mut idx: Vec<usize> = (0..self.len()).collect();
        Rng::new(seed).shuffle(&mut idx);
        let n_out = ((self.len() as f64 * fraction).round() as usize).max(1);
        if n_out >= self.len() {
            return Err(Error::Invalid(format!(
                "{} examples are too few to hold out {fraction}",
                self.len()
            )));
        }
        Ok((self.select(&idx[n_out..]), self.select(&idx[..n_out])))
    }

    /// Number of examples of each class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut c = vec![0; self.classes.len()];
        for &l in &self.labels {
            c[l] += 1;
        }
        c
    }
}

/// Reads `path` (`.jsonl`, `.jsonl.gz`, `.csv`, `.csv.gz`), taking the text from `text_fields`
/// (joined by newlines) and the label from `label_field`. Errors name the file, the line and the
/// missing field.
pub fn read_labelled(
    path: impl AsRef<Path>,
    text_fields: &[String],
    label_field: &str,
) -> Result<LabelledText> {
    let path = path.as_ref();
    if text_fields.is_empty() {
        return Err(Error::Invalid("no text field given".into()));
    }
    let bytes = crate::idx::read_maybe_gz(path, crate::idx::MAX_INFLATED)?;
    labelled_from_bytes(path, &bytes, text_fields, label_field)
}

/// [`read_labelled`] on the (decompressed) bytes of a file; `path` names it in errors and its
/// extension says the format.
pub fn labelled_from_bytes(
    path: &Path,
    bytes: &[u8],
    text_fields: &[String],
    label_field: &str,
) -> Result<LabelledText> {
    let name = path.to_string_lossy().to_lowercase();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    let records = if name.ends_with(".csv") || name.ends_with(".tsv") {
        let delim = if name.ends_with(".tsv") { b'\t' } else { b',' };
        read_csv(path, bytes, delim, text_fields, label_field)?
    } else {
        read_jsonl(path, bytes, text_fields, label_field)?
    };
    if records.is_empty() {
        return Err(Error::file(path, "no examples"));
    }
    let mut classes: Vec<String> = records.iter().map(|(_, l)| l.clone()).collect();
    classes.sort();
    classes.dedup();
    if classes.len() < 2 {
        return Err(Error::file(
            path,
            format!("field {label_field:?} has a single value {classes:?}: nothing to classify"),
        ));
    }
    let mut out = LabelledText {
        classes,
        ..Default::default()
    };
    for (t, l) in records {
        // the label was collected into `classes` above
        let c = out.classes.binary_search(&l).unwrap_or_default();
        out.texts.push(t);
        out.labels.push(c);
    }
    Ok(out)
}

fn read_jsonl(
    path: &Path,
    bytes: &[u8],
    text_fields: &[String],
    label_field: &str,
) -> Result<Vec<(String, String)>> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = Vec::new();
    let mut first_kind: Option<(&str, usize)> = None;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| Error::file(path, format!("line {}: not JSON: {e}", i + 1)))?;
        let line_no = i + 1;
        let field = |f: &str| -> Result<(String, &'static str)> {
            let what = match v.get(f) {
                Some(serde_json::Value::String(s)) => return Ok((s.clone(), "a string")),
                Some(serde_json::Value::Number(n)) => return Ok((n.to_string(), "a number")),
                None => "missing",
                Some(serde_json::Value::Null) => "null",
                Some(serde_json::Value::Bool(_)) => "a boolean",
                Some(serde_json::Value::Array(_)) => "an array",
                Some(serde_json::Value::Object(_)) => "an object",
            };
            Err(Error::file(
                path,
                format!("line {line_no}: field {f:?} is {what}; it must be a string or a number"),
            ))
        };
        let texts = text_fields
            .iter()
            .map(|f| field(f).map(|(t, _)| t))
            .collect::<Result<Vec<_>>>()?;
        let (label, kind) = field(label_field)?;
        // 1 and "1" would print alike and silently become one class
        match first_kind {
            None => first_kind = Some((kind, line_no)),
            Some((k, at)) if k != kind => {
                return Err(Error::file(
                    path,
                    format!(
                        "line {line_no}: label {label_field:?} is {kind}, but on line {at} it is \
                         {k}; labels must be all strings or all numbers"
                    ),
                ))
            }
            _ => {}
        }
        out.push((texts.join("\n"), label));
    }
    Ok(out)
}

fn read_csv(
    path: &Path,
    bytes: &[u8],
    delim: u8,
    text_fields: &[String],
    label_field: &str,
) -> Result<Vec<(String, String)>> {
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(delim)
        .flexible(false)
        .from_reader(bytes);
    let header: Vec<String> = rdr
        .byte_headers()
        .map_err(|e| Error::file(path, format!("no CSV header: {e}")))?
        .iter()
        .map(|h| String::from_utf8_lossy(h).trim().to_string())
        .collect();
    let col = |f: &str| -> Result<usize> {
        header.iter().position(|h| h == f).ok_or_else(|| {
            Error::file(path, format!("no column {f:?} (the header has {header:?})"))
        })
    };
    let text_cols = text_fields
        .iter()
        .map(|f| col(f))
        .collect::<Result<Vec<_>>>()?;
    let label_col = col(label_field)?;
    let mut out = Vec::new();
    for (i, rec) in rdr.byte_records().enumerate() {
        let rec = rec.map_err(|e| Error::file(path, format!("record {}: {e}", i + 1)))?;
        let get = |c: usize| String::from_utf8_lossy(&rec[c]).into_owned();
        let text: Vec<String> = text_cols.iter().map(|&c| get(c)).collect();
        out.push((text.join("\n"), get(label_col).trim().to_string()));
    }
    Ok(out)
}
