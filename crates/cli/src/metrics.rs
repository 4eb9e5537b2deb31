//! Metrics as CSV (one row per logged step and per epoch) and as a PNG of the curves.

use plotters::prelude::*;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MetricRow {
    /// "step" or "epoch"
    pub kind: String,
    pub epoch: usize,
    pub step: usize,
    pub loss: f64,
    pub lr: f64,
    pub train_acc: Option<f64>,
    pub test_acc: Option<f64>,
    pub samples_per_s: f64,
}

impl MetricRow {
    pub fn step(epoch: usize, step: usize, loss: f64, lr: f64, rate: f64) -> Self {
        MetricRow {
            kind: "step".into(),
            epoch,
            step,
            loss,
            lr,
            train_acc: None,
            test_acc: None,
            samples_per_s: rate,
        }
    }
    pub fn epoch(
        epoch: usize,
        step: usize,
        loss: f64,
        lr: f64,
        train: f64,
        test: f64,
        rate: f64,
    ) -> Self {
        MetricRow {
            kind: "epoch".into(),
            epoch,
            step,
            loss,
            lr,
            train_acc: Some(train),
            test_acc: Some(test),
            samples_per_s: rate,
        }
    }
    fn csv(&self) -> String {
        let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.6}"));
        format!(
            "{},{},{},{:.6},{:e},{},{},{:.1}\n",
            self.kind,
            self.epoch,
            self.step,
            self.loss,
            self.lr,
            opt(self.train_acc),
            opt(self.test_acc),
            self.samples_per_s
        )
    }
}

const HEADER: &str = "kind,epoch,step,loss,lr,train_acc,test_acc,samples_per_s\n";

/// A CSV file rewritten atomically after every row, so it is never half-written.
pub struct Metrics {
    path: std::path::PathBuf,
    text: String,
}

impl Metrics {
    /// Starts the file with the rows of a resumed run's history.
    pub fn create(path: &Path, history: &[MetricRow]) -> ferrograd_nn::Result<Metrics> {
        let mut m = Metrics {
            path: path.to_path_buf(),
            text: HEADER.to_string(),
        };
        for r in history {
            m.text.push_str(&r.csv());
        }
        m.flush()?;
        Ok(m)
    }
    pub fn write(&mut self, r: &MetricRow) -> ferrograd_nn::Result<()> {
        self.text.push_str(&r.csv());
        self.flush()
    }
    fn flush(&self) -> ferrograd_nn::Result<()> {
        ferrograd_nn::serialize::write_atomic(&self.path, self.text.as_bytes())
    }
}

fn draw(path: &Path, rows: &[MetricRow], title: &str) -> Result<(), Box<dyn std::error::Error>> {
    let root = BitMapBackend::new(path, (1200, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 22))?;
    let (left, right) = root.split_horizontally(600);
    let steps: Vec<(f64, f64)> = rows
        .iter()
        .filter(|r| r.kind == "step")
        .map(|r| (r.step as f64, r.loss))
        .collect();
    let epochs: Vec<&MetricRow> = rows.iter().filter(|r| r.kind == "epoch").collect();
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
        .flat_map(|r| [r.train_acc.unwrap_or(1.0), r.test_acc.unwrap_or(1.0)])
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
    let train: Vec<(f64, f64)> = epochs
        .iter()
        .filter_map(|r| r.train_acc.map(|a| (r.epoch as f64, 100.0 * a)))
        .collect();
    let test: Vec<(f64, f64)> = epochs
        .iter()
        .filter_map(|r| r.test_acc.map(|a| (r.epoch as f64, 100.0 * a)))
        .collect();
    c.draw_series(LineSeries::new(train.clone(), &RED))?
        .label("train")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    c.draw_series(train.iter().map(|&p| Circle::new(p, 3, RED.filled())))?;
    c.draw_series(LineSeries::new(test.clone(), &GREEN))?
        .label("test")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], GREEN));
    c.draw_series(test.iter().map(|&p| Circle::new(p, 3, GREEN.filled())))?;
    c.configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()?;
    root.present()?;
    Ok(())
}

/// Draws the loss and accuracy curves into a PNG (written to a temporary file, then renamed).
pub fn plot(path: &Path, rows: &[MetricRow], title: &str) -> ferrograd_nn::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".plot.{}.tmp.png", std::process::id()));
    draw(&tmp, rows, title).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        ferrograd_nn::Error::file(path, format!("cannot draw the plot: {e}"))
    })?;
    std::fs::rename(&tmp, path)
        .map_err(|e| ferrograd_nn::Error::file(path, format!("cannot write: {e}")))?;
    let _ = std::io::stdout().flush();
    Ok(())
}

/// Draws named (x, y) curves in one chart as a PNG (temporary file, then renamed).
pub fn plot_curves(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    curves: &[(&str, Vec<(f64, f64)>)],
) -> ferrograd_nn::Result<()> {
    let draw = |p: &Path| -> Result<(), Box<dyn std::error::Error>> {
        let root = BitMapBackend::new(p, (900, 500)).into_drawing_area();
        root.fill(&WHITE)?;
        let pts = curves.iter().flat_map(|(_, c)| c.iter());
        let (mut x1, mut y0, mut y1) = (1.0f64, f64::INFINITY, f64::NEG_INFINITY);
        for &(x, y) in pts {
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
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".plot.{}.tmp.png", std::process::id()));
    draw(&tmp).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        ferrograd_nn::Error::file(path, format!("cannot draw the plot: {e}"))
    })?;
    std::fs::rename(&tmp, path)
        .map_err(|e| ferrograd_nn::Error::file(path, format!("cannot write: {e}")))
}
