//! Classification metrics: accuracy, macro-F1 and the confusion matrix, from predicted and true
//! class indices.

/// Counts of predictions against truths over `classes` classes.
#[derive(Clone, Debug, PartialEq)]
pub struct Confusion {
    /// `matrix[truth][predicted]`
    pub matrix: Vec<Vec<usize>>,
}

impl Confusion {
    pub fn new(classes: usize) -> Self {
        Confusion {
            matrix: vec![vec![0; classes]; classes],
        }
    }

    /// From predictions and truths; a class index past `classes` is an error naming it.
    pub fn from_predictions(
        pred: &[usize],
        truth: &[usize],
        classes: usize,
    ) -> Result<Self, String> {
        if pred.len() != truth.len() {
            return Err(format!(
                "confusion matrix: {} predictions for {} truths",
                pred.len(),
                truth.len()
            ));
        }
        let mut c = Confusion::new(classes);
        for (&p, &t) in pred.iter().zip(truth) {
            c.add(t, p)?;
        }
        Ok(c)
    }

    pub fn add(&mut self, truth: usize, pred: usize) -> Result<(), String> {
        let n = self.matrix.len();
        if truth >= n || pred >= n {
            return Err(format!(
                "confusion matrix: class {} or {} is not below {n}",
                truth, pred
            ));
        }
        self.matrix[truth][pred] += 1;
        Ok(())
    }

    pub fn classes(&self) -> usize {
        self.matrix.len()
    }
    pub fn total(&self) -> usize {
        self.matrix.iter().flatten().sum()
    }
    pub fn correct(&self) -> usize {
        (0..self.classes()).map(|i| self.matrix[i][i]).sum()
    }
    pub fn accuracy(&self) -> f64 {
        self.correct() as f64 / self.total().max(1) as f64
    }

    /// Per-class F1 `2 TP / (2 TP + FP + FN)`, 0 for a class never predicted nor present.
    pub fn f1(&self, class: usize) -> f64 {
        let tp = self.matrix[class][class];
        let fp: usize = (0..self.classes())
            .map(|t| self.matrix[t][class])
            .sum::<usize>()
            - tp;
        let fnn: usize = self.matrix[class].iter().sum::<usize>() - tp;
        let d = 2 * tp + fp + fnn;
        if d == 0 {
            0.0
        } else {
            2.0 * tp as f64 / d as f64
        }
    }

    /// The unweighted mean of the per-class F1 (scikit-learn's `f1_score(average="macro")`).
    pub fn macro_f1(&self) -> f64 {
        let n = self.classes();
        (0..n).map(|c| self.f1(c)).sum::<f64>() / n.max(1) as f64
    }
}

/// Accuracy and macro-F1 of predictions (see [`Confusion::macro_f1`]).
pub fn accuracy_and_macro_f1(
    pred: &[usize],
    truth: &[usize],
    classes: usize,
) -> Result<(f64, f64), String> {
    let c = Confusion::from_predictions(pred, truth, classes)?;
    Ok((c.accuracy(), c.macro_f1()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// scikit-learn: f1_score([0,0,1,1,2,2], [0,1,1,1,2,0], average="macro") = 0.7333...
    /// (per class 0.5, 0.8, 0.6667 by hand: TP 1/2/1, FP 1/1/0, FN 1/0/1).
    #[test]
    fn macro_f1_by_hand() {
        let (acc, f1) = accuracy_and_macro_f1(&[0, 1, 1, 1, 2, 0], &[0, 0, 1, 1, 2, 2], 3).unwrap();
        assert!((acc - 4.0 / 6.0).abs() < 1e-15);
        let want = (0.5 + 0.8 + 2.0 / 3.0) / 3.0;
        assert!((f1 - want).abs() < 1e-15, "{f1} vs {want}");
        assert!(accuracy_and_macro_f1(&[3], &[0], 3).is_err());
    }
}
