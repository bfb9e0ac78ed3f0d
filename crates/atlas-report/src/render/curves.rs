//! App-metric curves overlaid across runs (`loss` per epoch, as W&B and MLflow users compare
//! them): for each metric that some run printed at least twice, one line per run in a colour of
//! its own, named in the legend by the run and its group; x is the value's place in the order
//! the run printed it (its epoch or step), y the value.

use plotters::prelude::*;

use crate::Report;

/// Metrics drawn at most (the first by name).
pub const MAX_CHARTS: usize = 6;
/// Runs drawn in one chart at most (a legend beyond that is unreadable).
const MAX_RUNS: usize = 12;

/// A colour per run, in report order.
fn run_colour(index: usize) -> RGBColor {
    const PALETTE: [RGBColor; 12] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
        RGBColor(0, 0, 0),
        RGBColor(255, 187, 120),
    ];
    PALETTE[index % PALETTE.len()]
}

/// The metrics worth a chart: printed at least twice by some counted run.
pub fn metrics(report: &Report) -> Vec<String> {
    let mut names: Vec<String> = report
        .runs
        .iter()
        .filter(|r| r.excluded.is_none())
        .flat_map(|r| {
            r.curves
                .iter()
                .filter(|(_, v)| v.len() > 1)
                .map(|(k, _)| k.clone())
        })
        .collect();
    names.sort();
    names.dedup();
    names.truncate(MAX_CHARTS);
    names
}

/// One metric's curves, a line per run.
pub fn chart(report: &Report, metric: &str) -> Option<String> {
    let lines: Vec<(String, &Vec<f64>)> = report
        .runs
        .iter()
        .filter(|r| r.excluded.is_none())
        .filter_map(|r| {
            let values = r.curves.get(metric).filter(|v| v.len() > 1)?;
            Some((format!("{} ({})", r.id, r.target), values))
        })
        .take(MAX_RUNS)
        .collect();
    if lines.is_empty() {
        return None;
    }
    let x_end = lines.iter().map(|(_, v)| v.len()).max().unwrap_or(2) as f64;
    let (low, high) = lines
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .filter(|v| v.is_finite())
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if low > high {
        return None;
    }
    let pad = ((high - low) * 0.05).max(high.abs() * 1e-6).max(1e-9);
    let (y0, y1) = (low - pad, high + pad);
    super::charts::svg(320, |root| {
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("{metric}, run by run"), ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(1f64..x_end.max(2.0), y0..y1)?;
        chart
            .configure_mesh()
            .x_desc("value printed (epoch, step)")
            .y_desc(metric)
            .y_label_formatter(&|v| super::significant(*v))
            .draw()?;
        for (i, (name, values)) in lines.iter().enumerate() {
            let colour = run_colour(i);
            let points = values
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_finite())
                .map(|(x, v)| ((x + 1) as f64, *v));
            chart
                .draw_series(LineSeries::new(points, colour.stroke_width(2)))?
                .label(name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        Ok(())
    })
}
