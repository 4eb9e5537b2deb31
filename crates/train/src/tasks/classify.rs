//! Classification of tensors (MNIST images): a model from one tensor to logits, trained with
//! cross-entropy over classes or binary cross-entropy of one logit (computed stably from the
//! logit), evaluated by accuracy and the confusion matrix on a held-out [`Dataset`].

use crate::error::Result;
use crate::metrics::Confusion;
use crate::step::{StepOutput, TrainStep};
use ferrograd_data::{Batch, Dataset};
use ferrograd_nn::loss::{
    binary_cross_entropy_with_logits, cross_entropy, ClassLossOptions, Reduction,
};
use ferrograd_nn::{Forward, Module};
use ferrograd_tensor::{no_grad, DType, Tensor};
use std::sync::Arc;

/// How logits become a loss and predictions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Objective {
    /// Logits `[N, C]`, class targets, cross-entropy; the prediction is the argmax.
    CrossEntropy,
    /// One logit `[N, 1]`, 0/1 targets, sigmoid and binary cross-entropy; the prediction is
    /// whether the logit is positive.
    BinaryLogit,
}

impl Objective {
    pub fn classes(self, outputs: usize) -> usize {
        match self {
            Objective::CrossEntropy => outputs,
            Objective::BinaryLogit => 2,
        }
    }

    /// The batch's mean loss.
    pub fn loss(self, logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Objective::CrossEntropy => {
                cross_entropy(logits, targets, &ClassLossOptions::default())?
            }
            Objective::BinaryLogit => {
                let y = targets
                    .to_dtype(DType::F32)?
                    .reshape([targets.numel(), 1])?;
                binary_cross_entropy_with_logits(logits, &y, None, Reduction::Mean)?
            }
        })
    }

    /// Predicted classes of a batch of logits.
    pub fn predictions(self, logits: &Tensor) -> Result<Vec<i64>> {
        Ok(match self {
            Objective::CrossEntropy => logits.argmax(1, false)?.to_vec::<i64>()?,
            Objective::BinaryLogit => logits
                .to_vec_f64()
                .into_iter()
                .map(|v| i64::from(v > 0.0))
                .collect(),
        })
    }
}

/// The confusion matrix of `model` on `data` over `classes` classes, in batches of `batch`,
/// without recording a graph.
pub fn evaluate(
    model: &dyn Forward,
    data: &dyn Dataset,
    objective: Objective,
    classes: usize,
    batch: usize,
) -> Result<Confusion> {
    let mut c = Confusion::new(classes);
    let n = data.len();
    no_grad(|| -> Result<()> {
        for start in (0..n).step_by(batch.max(1)) {
            let idx: Vec<usize> = (start..(start + batch).min(n)).collect();
            let (x, y) = data.batch(&idx)?;
            let preds = objective.predictions(&model.forward(&x)?)?;
            for (&p, t) in preds.iter().zip(y.to_vec::<i64>()?) {
                c.add(t as usize, p as usize)
                    .map_err(crate::TrainError::Config)?;
            }
        }
        Ok(())
    })?;
    Ok(c)
}

/// The step: logits, loss, and the correct predictions (`train_acc` in the epoch's record);
/// the evaluation: `test_acc`, `test_correct` and `test_total` on the held-out data.
pub struct ClassifyStep {
    pub model: Box<dyn Forward>,
    pub objective: Objective,
    pub classes: usize,
    pub held_out: Option<Arc<dyn Dataset>>,
    /// Batch size of the evaluation.
    pub eval_batch: usize,
}

impl TrainStep for ClassifyStep {
    type Batch = Batch;
    fn model(&self) -> &dyn Module {
        self.model.as_ref()
    }
    fn model_mut(&mut self) -> &mut dyn Module {
        self.model.as_mut()
    }
    fn forward(&mut self, b: Batch) -> Result<StepOutput> {
        let logits = self.model.forward(&b.inputs)?;
        let loss = self.objective.loss(&logits, &b.targets)?;
        let preds = self.objective.predictions(&logits)?;
        let targets: Vec<i64> = b.targets.to_vec()?;
        let correct = preds.iter().zip(&targets).filter(|(p, t)| p == t).count();
        Ok(StepOutput::new(loss, targets.len()).with_sum("train_acc", correct as f64))
    }
    fn evaluate(&mut self) -> Result<Vec<(String, f64)>> {
        let Some(data) = &self.held_out else {
            return Ok(Vec::new());
        };
        let c = evaluate(
            self.model.as_ref(),
            data.as_ref(),
            self.objective,
            self.classes,
            self.eval_batch,
        )?;
        Ok(vec![
            ("test_acc".into(), c.accuracy()),
            ("test_correct".into(), c.correct() as f64),
            ("test_total".into(), c.total() as f64),
        ])
    }
}
