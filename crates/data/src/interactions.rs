//! User-item interactions (user, item, rating, timestamp) as recommenders learn from them, read
//! from MovieLens' files: the original tab-separated `u.data` (no header), RecBole's `.inter`
//! (a typed header line such as `user_id:token`, `item_id:token`, `rating:float`, `timestamp:float`, tab-separated),
//! and CSV with a header (`userId,movieId,rating,timestamp`, as MovieLens' later releases). Ids
//! are mapped to dense indices in sorted order (numerically when every id is a number), so the
//! mapping depends on the ids present, not on the order of the lines. Item titles and genres come
//! from `u.item`, RecBole's `.item` or `movies.csv` ([`read_catalog`]).
//!
//! Splits ([`k_fold`], [`random_split`], [`leave_last_out`]) are index lists into the
//! interactions, seeded where random.

use crate::error::{Error, Result};
use ferrograd_tensor::files::{read_regular, GIB};
use ferrograd_tensor::Rng;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The largest interactions or catalog file read (MovieLens-32M's ratings are 0.9 GB).
pub const MAX_INTERACTIONS_FILE: u64 = 2 * GIB;

/// The range ratings must lie in; a rating outside it is an error naming its line.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RatingScale {
    pub min: f32,
    pub max: f32,
}

impl RatingScale {
    /// Parses `MIN:MAX`, e.g. `1:5`.
    pub fn parse(s: &str) -> Result<RatingScale> {
        let bad = || Error::Invalid(format!("a rating scale is MIN:MAX, e.g. 1:5, got {s:?}"));
        let (a, b) = s.split_once(':').ok_or_else(bad)?;
        let (min, max): (f32, f32) = (
            a.trim().parse().map_err(|_| bad())?,
            b.trim().parse().map_err(|_| bad())?,
        );
        if !(min.is_finite() && max.is_finite() && min < max) {
            return Err(bad());
        }
        Ok(RatingScale { min, max })
    }
}

impl std::fmt::Display for RatingScale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.min, self.max)
    }
}

/// The layouts of interaction files this module reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InteractionFormat {
    /// MovieLens-100k's `u.data`: `user item rating timestamp`, tab- or space-separated, no
    /// header; ratings 1-5.
    UData,
    /// RecBole's atomic `.inter` file: tab-separated with a `name:type` header; ratings 1-5.
    RecBole,
    /// CSV with a header naming the columns; ratings 0.5-5 (MovieLens' later releases).
    Csv,
}

impl InteractionFormat {
    /// The scale MovieLens uses in this layout.
    pub fn default_scale(self) -> RatingScale {
        match self {
            InteractionFormat::UData | InteractionFormat::RecBole => {
                RatingScale { min: 1.0, max: 5.0 }
            }
            InteractionFormat::Csv => RatingScale { min: 0.5, max: 5.0 },
        }
    }
}

/// Interactions with dense user and item indices.
#[derive(Clone, Debug)]
pub struct Interactions {
    /// The file they came from.
    pub path: PathBuf,
    pub format: InteractionFormat,
    pub scale: RatingScale,
    /// Per interaction: user index, item index, rating, timestamp (0 when the file has none).
    pub users: Vec<u32>,
    pub items: Vec<u32>,
    pub ratings: Vec<f32>,
    pub timestamps: Vec<i64>,
    /// Index -> the id in the file.
    pub user_ids: Vec<String>,
    pub item_ids: Vec<String>,
}

/// Ids in sorted order (numerically when all are numbers) and each original index's new one.
fn dense_order(ids: &[String]) -> (Vec<String>, Vec<u32>) {
    let mut order: Vec<usize> = (0..ids.len()).collect();
    let numeric: Option<Vec<i128>> = ids.iter().map(|s| s.parse().ok()).collect();
    match &numeric {
        Some(n) => order.sort_by_key(|&k| n[k]),
        None => order.sort_by(|&a, &b| ids[a].cmp(&ids[b])),
    }
    let mut new_of = vec![0u32; ids.len()];
    for (new, &old) in order.iter().enumerate() {
        new_of[old] = new as u32;
    }
    (order.into_iter().map(|k| ids[k].clone()).collect(), new_of)
}

/// Ids seen while reading, in order of first appearance.
#[derive(Default)]
struct IdTable {
    index: HashMap<String, u32>,
    ids: Vec<String>,
}

impl IdTable {
    fn get(&mut self, id: &str) -> u32 {
        if let Some(&k) = self.index.get(id) {
            return k;
        }
        let k = self.ids.len() as u32;
        self.index.insert(id.to_string(), k);
        self.ids.push(id.to_string());
        k
    }
}

/// Where the columns are in a file with a header.
struct Columns {
    user: usize,
    item: usize,
    rating: usize,
    timestamp: Option<usize>,
}

fn find_column(names: &[String], wanted: &[&str]) -> Option<usize> {
    names
        .iter()
        .position(|n| wanted.iter().any(|w| n.eq_ignore_ascii_case(w)))
}

fn header_columns(path: &Path, names: &[String]) -> Result<Columns> {
    let need = |what: &str, wanted: &[&str]| {
        find_column(names, wanted).ok_or_else(|| {
            Error::file(
                path,
                format!("line 1: the header {names:?} has no {what} column (one of {wanted:?})"),
            )
        })
    };
    Ok(Columns {
        user: need("user", &["user_id", "userId", "user"])?,
        item: need(
            "item",
            &["item_id", "itemId", "movieId", "movie_id", "item"],
        )?,
        rating: need("rating", &["rating"])?,
        timestamp: find_column(names, &["timestamp", "time"]),
    })
}

/// Reads an interactions file (see the module doc), its layout told by its first line. Ratings
/// must lie in `scale` (the layout's MovieLens scale when None).
pub fn read_interactions(path: &Path, scale: Option<RatingScale>) -> Result<Interactions> {
    let bytes = read_regular(path, MAX_INTERACTIONS_FILE).map_err(|e| Error::file(path, e))?;
    interactions_from_bytes(path, &bytes, scale)
}

/// [`read_interactions`] of a file's bytes; `path` names it in errors.
pub fn interactions_from_bytes(
    path: &Path,
    bytes: &[u8],
    scale: Option<RatingScale>,
) -> Result<Interactions> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        Error::file(path, format!("line {line}: not UTF-8 text"))
    })?;
    let first = text.lines().next().unwrap_or("");
    let format = if first.split('\t').next().is_some_and(|f| f.contains(':')) {
        InteractionFormat::RecBole
    } else if first.contains(',') {
        InteractionFormat::Csv
    } else {
        InteractionFormat::UData
    };
    let scale = scale.unwrap_or(format.default_scale());
    let mut users = IdTable::default();
    let mut items = IdTable::default();
    let (mut u, mut i, mut r, mut t) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut push = |line: usize, fields: &[&str], c: &Columns| -> Result<()> {
        let at = |k: usize, what: &str| {
            fields
                .get(k)
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
                .ok_or_else(|| {
                    Error::file(
                        path,
                        format!(
                            "line {line}: no {what} (field {} of {})",
                            k + 1,
                            fields.len()
                        ),
                    )
                })
        };
        let (user, item, rating) = (
            at(c.user, "user")?,
            at(c.item, "item")?,
            at(c.rating, "rating")?,
        );
        let value: f32 = rating.parse().map_err(|_| {
            Error::file(
                path,
                format!("line {line}: the rating {rating:?} is not a number"),
            )
        })?;
        if !(value >= scale.min && value <= scale.max) {
            return Err(Error::file(
                path,
                format!("line {line}: the rating {rating} is outside the scale {scale}"),
            ));
        }
        let ts = match c.timestamp.map(|k| at(k, "timestamp")).transpose()? {
            None => 0,
            Some(s) => s
                .parse::<i64>()
                .or_else(|_| s.parse::<f64>().map(|f| f as i64).map_err(|_| ()))
                .map_err(|_| {
                    Error::file(
                        path,
                        format!("line {line}: the timestamp {s:?} is not a number"),
                    )
                })?,
        };
        u.push(users.get(user));
        i.push(items.get(item));
        r.push(value);
        t.push(ts);
        Ok(())
    };
    match format {
        InteractionFormat::UData => {
            let c = Columns {
                user: 0,
                item: 1,
                rating: 2,
                timestamp: Some(3),
            };
            for (k, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let fields: Vec<&str> = line.split_whitespace().collect();
                if fields.len() != 4 {
                    return Err(Error::file(
                        path,
                        format!(
                            "line {}: expected 4 fields (user item rating timestamp), got {}",
                            k + 1,
                            fields.len()
                        ),
                    ));
                }
                push(k + 1, &fields, &c)?;
            }
        }
        InteractionFormat::RecBole => {
            let names: Vec<String> = first
                .split('\t')
                .map(|f| f.split(':').next().unwrap_or("").trim().to_string())
                .collect();
            let c = header_columns(path, &names)?;
            for (k, line) in text.lines().enumerate().skip(1) {
                if line.trim().is_empty() {
                    continue;
                }
                let fields: Vec<&str> = line.split('\t').collect();
                if fields.len() != names.len() {
                    return Err(Error::file(
                        path,
                        format!(
                            "line {}: expected {} tab-separated fields, got {}",
                            k + 1,
                            names.len(),
                            fields.len()
                        ),
                    ));
                }
                push(k + 1, &fields, &c)?;
            }
        }
        InteractionFormat::Csv => {
            let mut rd = csv::ReaderBuilder::new()
                .has_headers(true)
                .from_reader(text.as_bytes());
            let names: Vec<String> = rd
                .headers()
                .map_err(|e| Error::file(path, format!("line 1: {e}")))?
                .iter()
                .map(|s| s.trim().to_string())
                .collect();
            let c = header_columns(path, &names)?;
            for rec in rd.records() {
                let rec = rec.map_err(|e| {
                    let line = e.position().map_or(0, |p| p.line());
                    Error::file(path, format!("line {line}: {e}"))
                })?;
                let line = rec.position().map_or(0, |p| p.line()) as usize;
                let fields: Vec<&str> = rec.iter().collect();
                push(line, &fields, &c)?;
            }
        }
    }
    if r.is_empty() {
        return Err(Error::file(path, "holds no interactions"));
    }
    let (user_ids, new_user) = dense_order(&users.ids);
    let (item_ids, new_item) = dense_order(&items.ids);
    Ok(Interactions {
        path: path.to_path_buf(),
        format,
        scale,
        users: u.into_iter().map(|k| new_user[k as usize]).collect(),
        items: i.into_iter().map(|k| new_item[k as usize]).collect(),
        ratings: r,
        timestamps: t,
        user_ids,
        item_ids,
    })
}

/// The interactions file in a folder: `u.data`, a RecBole `.inter` file or `ratings.csv`.
pub fn find_interactions(dir: &Path) -> Result<PathBuf> {
    if dir.is_file() {
        return Ok(dir.to_path_buf());
    }
    if !dir.is_dir() {
        return Err(Error::file(dir, "no such file or folder"));
    }
    for name in ["u.data", "ratings.csv"] {
        if dir.join(name).is_file() {
            return Ok(dir.join(name));
        }
    }
    let mut inter: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::file(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "inter"))
        .collect();
    inter.sort();
    inter.into_iter().next().ok_or_else(|| {
        Error::file(
            dir,
            "has no interactions file (u.data, a RecBole .inter file or ratings.csv)",
        )
    })
}

impl Interactions {
    pub fn len(&self) -> usize {
        self.ratings.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ratings.is_empty()
    }
    pub fn num_users(&self) -> usize {
        self.user_ids.len()
    }
    pub fn num_items(&self) -> usize {
        self.item_ids.len()
    }
    /// The mean rating over `rows`.
    pub fn mean_rating(&self, rows: &[usize]) -> f64 {
        let s: f64 = rows.iter().map(|&k| self.ratings[k] as f64).sum();
        s / rows.len().max(1) as f64
    }
    /// For each user, the items of `rows` they interacted with, in `rows` order.
    pub fn items_by_user(&self, rows: &[usize]) -> Vec<Vec<u32>> {
        let mut out = vec![Vec::new(); self.num_users()];
        for &k in rows {
            out[self.users[k] as usize].push(self.items[k]);
        }
        out
    }
}

/// A seeded shuffle of `0..n` cut into `k` folds of sizes differing by at most one (the first
/// `n % k` one larger): for each fold, (the other folds' rows, its rows), as Surprise's `KFold`.
pub fn k_fold(n: usize, k: usize, seed: u64) -> Result<Vec<(Vec<usize>, Vec<usize>)>> {
    if k < 2 || k > n {
        return Err(Error::Invalid(format!(
            "k-fold needs 2 <= k <= {n} (the interactions), got {k}"
        )));
    }
    let mut order: Vec<usize> = (0..n).collect();
    Rng::new(seed).shuffle(&mut order);
    let mut bounds = vec![0usize];
    for f in 0..k {
        let size = n / k + usize::from(f < n % k);
        bounds.push(bounds[f] + size);
    }
    Ok((0..k)
        .map(|f| {
            let test = order[bounds[f]..bounds[f + 1]].to_vec();
            let train = order[..bounds[f]]
                .iter()
                .chain(&order[bounds[f + 1]..])
                .copied()
                .collect();
            (train, test)
        })
        .collect())
}

/// A seeded random split: (train, test) with `test_fraction` of the rows (rounded) in test.
pub fn random_split(n: usize, test_fraction: f64, seed: u64) -> Result<(Vec<usize>, Vec<usize>)> {
    if !(test_fraction > 0.0 && test_fraction < 1.0) {
        return Err(Error::Invalid(format!(
            "the test fraction must be in (0, 1), got {test_fraction}"
        )));
    }
    let mut order: Vec<usize> = (0..n).collect();
    Rng::new(seed).shuffle(&mut order);
    let test = ((n as f64) * test_fraction).round() as usize;
    if test == 0 || test == n {
        return Err(Error::Invalid(format!(
            "{n} interactions are too few to hold out {test_fraction} of them"
        )));
    }
    let train = order.split_off(test);
    Ok((train, order))
}

/// Per-user leave-last-out: each user's latest interaction (by timestamp; among equal
/// timestamps the one listed last) is the test row, the rest train. Users with a single
/// interaction keep it in train (nothing would be left to learn them from).
pub fn leave_last_out(data: &Interactions) -> (Vec<usize>, Vec<usize>) {
    let mut last: Vec<Option<usize>> = vec![None; data.num_users()];
    let mut count = vec![0usize; data.num_users()];
    for k in 0..data.len() {
        let u = data.users[k] as usize;
        count[u] += 1;
        if last[u].is_none_or(|j| data.timestamps[k] >= data.timestamps[j]) {
            last[u] = Some(k);
        }
    }
    let mut is_test = vec![false; data.len()];
    for (u, l) in last.iter().enumerate() {
        if let (Some(k), true) = (l, count[u] > 1) {
            is_test[*k] = true;
        }
    }
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (k, &t) in is_test.iter().enumerate() {
        if t {
            test.push(k);
        } else {
            train.push(k);
        }
    }
    (train, test)
}

/// An item's title and genres.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ItemInfo {
    pub title: String,
    pub genres: Vec<String>,
}

/// MovieLens-100k's genre columns in `u.item`, in order.
const UITEM_GENRES: [&str; 19] = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
];

/// Titles and genres by item id (as in the interactions file), from `u.item` (`|`-separated,
/// Latin-1), RecBole's `.item` (typed header: id, title, year, genres) or `movies.csv`
/// (`movieId,title,genres` with genres `|`-separated).
pub fn read_catalog(path: &Path) -> Result<HashMap<String, ItemInfo>> {
    let bytes = read_regular(path, MAX_INTERACTIONS_FILE).map_err(|e| Error::file(path, e))?;
    catalog_from_bytes(path, bytes)
}

/// [`read_catalog`] of a file's bytes; `path` (its extension) tells CSV from the others.
pub fn catalog_from_bytes(path: &Path, bytes: Vec<u8>) -> Result<HashMap<String, ItemInfo>> {
    let is_csv = path.extension().is_some_and(|x| x == "csv");
    let mut out = HashMap::new();
    if is_csv {
        let mut rd = csv::Reader::from_reader(&bytes[..]);
        let names: Vec<String> = rd
            .headers()
            .map_err(|e| Error::file(path, format!("line 1: {e}")))?
            .iter()
            .map(str::to_string)
            .collect();
        let id = find_column(&names, &["movieId", "item_id", "itemId"])
            .ok_or_else(|| Error::file(path, "line 1: no movieId column"))?;
        let title = find_column(&names, &["title"])
            .ok_or_else(|| Error::file(path, "line 1: no title column"))?;
        let genres = find_column(&names, &["genres"]);
        for rec in rd.records() {
            let rec = rec.map_err(|e| Error::file(path, e))?;
            let line = rec.position().map_or(0, |p| p.line());
            let (Some(i), Some(t)) = (rec.get(id), rec.get(title)) else {
                return Err(Error::file(path, format!("line {line}: too few fields")));
            };
            let g = genres
                .and_then(|k| rec.get(k))
                .map(|g| g.split('|').map(str::to_string).collect())
                .unwrap_or_default();
            out.insert(
                i.to_string(),
                ItemInfo {
                    title: t.to_string(),
                    genres: g,
                },
            );
        }
        return Ok(out);
    }
    // u.item is Latin-1; RecBole's copy is UTF-8: decode as UTF-8 where it is, else Latin-1
    let text = match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => e.into_bytes().iter().map(|&b| b as char).collect(),
    };
    let mut lines = text.lines().enumerate();
    let recbole = text.lines().next().is_some_and(|l| l.contains(":token"));
    if recbole {
        let header: Vec<String> = lines
            .next()
            .map(|(_, l)| {
                l.split('\t')
                    .map(|f| f.split(':').next().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default();
        let col = |w: &[&str]| find_column(&header, w);
        let id = col(&["item_id"]).ok_or_else(|| Error::file(path, "line 1: no item_id column"))?;
        let title = col(&["movie_title", "title"])
            .ok_or_else(|| Error::file(path, "line 1: no movie_title column"))?;
        let (year, class) = (col(&["release_year"]), col(&["class", "genre"]));
        for (k, l) in lines {
            if l.trim().is_empty() {
                continue;
            }
            let f: Vec<&str> = l.split('\t').collect();
            let (Some(i), Some(t)) = (f.get(id), f.get(title)) else {
                return Err(Error::file(path, format!("line {}: too few fields", k + 1)));
            };
            let t = match year.and_then(|y| f.get(y)).filter(|y| !y.trim().is_empty()) {
                Some(y) => format!("{t} ({})", y.trim()),
                None => t.to_string(),
            };
            let genres = class
                .and_then(|c| f.get(c))
                .map(|g| g.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default();
            out.insert(i.trim().to_string(), ItemInfo { title: t, genres });
        }
    } else {
        for (k, l) in lines {
            if l.trim().is_empty() {
                continue;
            }
            let f: Vec<&str> = l.split('|').collect();
            if f.len() < 2 {
                return Err(Error::file(
                    path,
                    format!(
                        "line {}: expected id|title|..., got {} fields",
                        k + 1,
                        f.len()
                    ),
                ));
            }
            let genres = f
                .iter()
                .skip(5)
                .zip(UITEM_GENRES)
                .filter(|(v, _)| v.trim() == "1")
                .map(|(_, g)| g.to_string())
                .collect();
            out.insert(
                f[0].trim().to_string(),
                ItemInfo {
                    title: f[1].to_string(),
                    genres,
                },
            );
        }
    }
    Ok(out)
}

/// The catalog file beside an interactions file: `u.item`, a `.item` file or `movies.csv`.
pub fn find_catalog(interactions: &Path) -> Option<PathBuf> {
    let dir = interactions.parent()?;
    for name in ["u.item", "movies.csv"] {
        if dir.join(name).is_file() {
            return Some(dir.join(name));
        }
    }
    let stem = interactions.file_stem()?;
    let item = dir.join(stem).with_extension("item");
    item.is_file().then_some(item)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_partition_the_rows() -> Result<()> {
        let folds = k_fold(23, 5, 7)?;
        let mut all: Vec<usize> = folds.iter().flat_map(|(_, t)| t.clone()).collect();
        all.sort();
        assert_eq!(all, (0..23).collect::<Vec<_>>());
        let sizes: Vec<usize> = folds.iter().map(|(_, t)| t.len()).collect();
        assert_eq!(sizes, vec![5, 5, 5, 4, 4]);
        for (tr, te) in &folds {
            assert_eq!(tr.len() + te.len(), 23);
            assert!(te.iter().all(|k| !tr.contains(k)));
        }
        assert!(k_fold(3, 5, 0).is_err());
        Ok(())
    }

    #[test]
    fn ids_are_numbered_in_sorted_order() {
        let ids: Vec<String> = ["10", "9", "100"].iter().map(|s| s.to_string()).collect();
        let (sorted, new_of) = dense_order(&ids);
        assert_eq!(sorted, vec!["9", "10", "100"]);
        assert_eq!(new_of, vec![1, 0, 2]);
    }
}
