//! PNG curves of a run, drawn at its end from the records: the training loss per logged step and
//! the accuracies per epoch (the MNIST commands), or named curves against the step (the GPT's
//! train and val losses). Drawn into memory, encoded as PNG and written atomically.

use super::Callback;
use crate::error::{Result, TrainError};
use crate::outputs::write_atomic;
use crate::record::{Record, RecordKind};
use plotters::prelude::*;
use std::path::{Path, PathBuf};

type DrawResult = std::result::Result<(), Box<dyn std::error::Error>>;

/// Renders with `draw` into a `w x h` RGB buffer and writes it to `path` as a PNG.
fn render(
    path: &Path,
    (w, h): (u32, u32),
    draw: impl FnOnce(&mut [u8]) -> DrawResult,
) -> Result<()> {
    let mut rgb = vec![0u8; w as usize * h as usize * 3];
    draw(&mut rgb).map_err(|e| TrainError::file(path, format!("cannot draw the plot: {e}")))?;
    let mut bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut bytes, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut wr = enc
            .write_header()
            .map_err(|e| TrainError::file(path, format!("cannot encode the plot: {e}")))?;
        wr.write_image_data(&rgb)
            .map_err(|e| TrainError::file(path, format!("cannot encode the plot: {e}")))?;
    }
    Ok(write_atomic(path, &bytes)?)
}

/// The loss of every logged step (left) and the epochs' `train_key` and `test_key` accuracies
/// in percent (right).
pub fn plot_loss_and_accuracy(
    path: &Path,
    rows: &[Record],
    title: &str,
    (train_key, test_key): (&str, &str),
) -> Result<()> {
    render(path, (1200, 500), |buf| {
        let root = BitMapBackend::with_buffer(buf, (1200, 500)).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(title, ("sans-serif", 22))?;
        let (left, right) = root.split_horizontally(600);
        let steps: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| r.kind == RecordKind::Step)
            .filter_map(|r| Some((r.step as f64, r.get("loss")?)))
            .collect();
        let epochs: Vec<&Record> = rows
            .iter()
            .filter(|r| r.kind == RecordKind::Epoch)
            .collect();
        let max_step = steps.iter().map(|p| p.0).fold(1.0, f64::max);
        let max_loss = steps.iter().map(|p| p.1).fold(1e-3, f64::max);
        let mut c = ChartBuilder::on(&left)
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .caption("training loss", ("sans-serif", 18))
            .build_cartesian_2d(0.0..max_step, 0.0..max_loss * 1.05)?;
        c.configure_mesh().x_desc("step").y_desc("loss").draw()?;
        c.draw_series(LineSeries::new(steps, &BLUE))?
            .label("loss (logged steps)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
        c.configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()?;
        let n_ep = epochs.iter().map(|r| r.epoch).max().unwrap_or(1) as f64;
        let lo = epochs
            .iter()
            .flat_map(|r| {
                [
                    r.get(train_key).unwrap_or(1.0),
                    r.get(test_key).unwrap_or(1.0),
                ]
            })
            .fold(1.0, f64::min);
        let lo = (lo * 100.0 - 1.0).floor().clamp(0.0, 99.0);
        let mut c = ChartBuilder::on(&right)
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .caption("accuracy (%)", ("sans-serif", 18))
            .build_cartesian_2d(0.5..n_ep + 0.5, lo..100.0)?;
        c.configure_mesh()
            .x_desc("epoch")
            .y_desc("accuracy (%)")
            .draw()?;
        let series = |key: &str| -> Vec<(f64, f64)> {
            epochs
                .iter()
                .filter_map(|r| r.get(key).map(|a| (r.epoch as f64, 100.0 * a)))
                .collect()
        };
        for (name, key, color) in [("train", train_key, RED), ("test", test_key, GREEN)] {
            let pts = series(key);
            c.draw_series(LineSeries::new(pts.clone(), &color))?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            c.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }
        c.configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()?;
        root.present()?;
        Ok(())
    })
}

/// Named (x, y) curves in one chart.
pub fn plot_curves(
    path: &Path,
    title: &str,
    (x_desc, y_desc): (&str, &str),
    curves: &[(&str, Vec<(f64, f64)>)],
) -> Result<()> {
    render(path, (900, 500), |buf| {
        let root = BitMapBackend::with_buffer(buf, (900, 500)).into_drawing_area();
        root.fill(&WHITE)?;
        let (mut x1, mut y0, mut y1) = (1.0f64, f64::INFINITY, f64::NEG_INFINITY);
        for &(x, y) in curves.iter().flat_map(|(_, c)| c.iter()) {
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        if !y0.is_finite() {
            (y0, y1) = (0.0, 1.0);
        }
        let pad = ((y1 - y0) * 0.05).max(1e-3);
        let mut c = ChartBuilder::on(&root)
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .caption(title, ("sans-serif", 20))
            .build_cartesian_2d(0.0..x1, (y0 - pad)..(y1 + pad))?;
        c.configure_mesh().x_desc(x_desc).y_desc(y_desc).draw()?;
        for (i, (name, pts)) in curves.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            c.draw_series(LineSeries::new(pts.clone(), color))?
                .label(*name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        c.configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()?;
        root.present()?;
        Ok(())
    })
}

/// Which picture the [`Plot`] callback draws.
pub enum PlotKind {
    /// [`plot_loss_and_accuracy`] with these epoch keys (train, test).
    LossAndAccuracy(&'static str, &'static str),
    /// [`plot_curves`] of these record values (label, key) of the given kind against the step.
    Curves(RecordKind, Vec<(&'static str, &'static str)>),
}

/// Draws the run's curves at its end.
pub struct Plot {
    pub path: PathBuf,
    pub title: String,
    pub kind: PlotKind,
}

impl Callback for Plot {
    fn on_train_end(&mut self, history: &[Record]) -> Result<()> {
        match &self.kind {
            PlotKind::LossAndAccuracy(tr, te) => {
                plot_loss_and_accuracy(&self.path, history, &self.title, (tr, te))?
            }
            PlotKind::Curves(kind, keys) => {
                let curves: Vec<(&str, Vec<(f64, f64)>)> = keys
                    .iter()
                    .map(|(label, key)| {
                        let pts = history
                            .iter()
                            .filter(|r| r.kind == *kind)
                            .filter_map(|r| Some((r.step as f64, r.get(key)?)))
                            .collect();
                        (*label, pts)
                    })
                    .collect();
                plot_curves(&self.path, &self.title, ("iteration", "loss"), &curves)?
            }
        }
        println!("Saved plot to {}", self.path.display());
        Ok(())
    }
}
