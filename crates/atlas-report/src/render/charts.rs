//! The HTML report's charts, drawn with plotters into SVG strings: the phase timeline of each
//! run (Gantt), CPU and memory over time per target overlaid, bars with 95 % whiskers per
//! figure, and the scaling curve.

use plotters::prelude::*;

use crate::figures::Unit;
use crate::render::value;
use crate::Report;

const WIDTH: u32 = 760;

/// A colour per target, in target order.
pub(crate) fn target_colour(report: &Report, target: &str) -> RGBColor {
    const PALETTE: [RGBColor; 6] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
    ];
    let i = report.targets.iter().position(|t| t == target).unwrap_or(0);
    PALETTE[i % PALETTE.len()]
}

fn phase_colour(index: usize) -> RGBColor {
    const PHASES: [RGBColor; 6] = [
        RGBColor(158, 202, 225),
        RGBColor(49, 130, 189),
        RGBColor(161, 217, 155),
        RGBColor(49, 163, 84),
        RGBColor(253, 174, 107),
        RGBColor(230, 85, 13),
    ];
    PHASES[index % PHASES.len()]
}

/// The category name for a tick at `at`: categories sit at the middle of unit-wide bands, so
/// a tick near `i + 0.5` names category `i` and every other tick is blank.
fn centred_label(names: &[String], at: f64) -> String {
    let i = at.floor() as usize;
    if (at - i as f64 - 0.5).abs() < 0.26 {
        names.get(i).cloned().unwrap_or_default()
    } else {
        String::new()
    }
}

type Drawn = Result<(), Box<dyn std::error::Error>>;

pub(crate) fn svg(
    height: u32,
    draw: impl FnOnce(DrawingArea<SVGBackend<'_>, plotters::coord::Shift>) -> Drawn,
) -> Option<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).ok()?;
        draw(root.clone()).ok()?;
        root.present().ok()?;
    }
    Some(out)
}

/// Phases of every run on one time axis from each run's start.
pub fn timeline(report: &Report) -> Option<String> {
    let runs: Vec<_> = report
        .runs
        .iter()
        .filter(|r| !r.timeline.is_empty())
        .collect();
    if runs.is_empty() {
        return None;
    }
    let end = runs
        .iter()
        .flat_map(|r| r.timeline.iter().map(|s| s.start + s.seconds))
        .fold(1.0f64, f64::max);
    let mut phases: Vec<&str> = Vec::new();
    for s in runs.iter().flat_map(|r| &r.timeline) {
        if !phases.contains(&s.phase.as_str()) {
            phases.push(&s.phase);
        }
    }
    let height = 80 + 28 * runs.len() as u32;
    svg(height, |root| {
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Phase timeline (seconds from each run's start)",
                ("sans-serif", 16),
            )
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(170)
            .build_cartesian_2d(0f64..end * 1.05, 0f64..runs.len() as f64)?;
        let labels: Vec<String> = runs
            .iter()
            .map(|r| format!("{} {}", r.target, r.id))
            .collect();
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(runs.len() * 2 + 1)
            .y_label_formatter(&|y| centred_label(&labels, *y))
            .draw()?;
        // A legend entry per phase (the first time it is drawn), and one for a failed phase.
        let mut named: Vec<String> = Vec::new();
        for (i, run) in runs.iter().enumerate() {
            for span in &run.timeline {
                let p = phases.iter().position(|n| *n == span.phase).unwrap_or(0);
                let failed = span.status == atlas_spec::record::PhaseState::Failed;
                let colour = if failed { RED } else { phase_colour(p) };
                let drawn = chart.draw_series(std::iter::once(Rectangle::new(
                    [
                        (span.start, i as f64 + 0.15),
                        (span.start + span.seconds.max(end * 0.002), i as f64 + 0.85),
                    ],
                    colour.filled(),
                )))?;
                let name = if failed {
                    "failed phase".to_string()
                } else {
                    span.phase.clone()
                };
                if !named.contains(&name) {
                    named.push(name.clone());
                    drawn.label(name).legend(move |(x, y)| {
                        Rectangle::new([(x, y - 5), (x + 10, y + 5)], colour.filled())
                    });
                }
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        Ok(())
    })
}

/// One measure over time, a line per run coloured by target.
pub fn over_time(
    report: &Report,
    title: &str,
    pick: fn(&crate::Point) -> Option<f64>,
    unit: Unit,
) -> Option<String> {
    let lines: Vec<(&str, Vec<(f64, f64)>)> = report
        .runs
        .iter()
        .filter(|r| r.excluded.is_none())
        .map(|r| {
            (
                r.target.as_str(),
                r.series
                    .iter()
                    .filter_map(|p| Some((p.seconds, pick(p)?)))
                    .collect::<Vec<_>>(),
            )
        })
        .filter(|(_, pts)| pts.len() > 1)
        .collect();
    if lines.is_empty() {
        return None;
    }
    let x_end = lines
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.0))
        .fold(1.0f64, f64::max);
    let y_end = lines
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.1))
        .fold(0.0f64, f64::max)
        .max(1e-9)
        * 1.1;
    let currency = report.currency.clone();
    svg(300, |root| {
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(80)
            .build_cartesian_2d(0f64..x_end, 0f64..y_end)?;
        chart
            .configure_mesh()
            .x_desc("seconds from the run's start")
            .y_label_formatter(&|v| value(*v, unit, &currency))
            .draw()?;
        let mut labelled: Vec<&str> = Vec::new();
        for (target, points) in &lines {
            let colour = target_colour(report, target);
            let series = chart.draw_series(LineSeries::new(
                points.iter().copied(),
                colour.stroke_width(2),
            ))?;
            if !labelled.contains(target) {
                labelled.push(target);
                series.label(target.to_string()).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2))
                });
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        Ok(())
    })
}

/// A figure's median per target as bars with 95 % whiskers.
pub fn bars(report: &Report, key: &str) -> Option<String> {
    let figure = report.figures.iter().find(|f| f.def.key == key)?;
    let bars: Vec<(&str, f64, f64, f64)> = figure
        .targets
        .iter()
        .filter_map(|t| {
            t.estimate
                .map(|e| (t.target.as_str(), e.median, e.ci_low, e.ci_high))
        })
        .collect();
    if bars.is_empty() {
        return None;
    }
    let top = bars
        .iter()
        .map(|b| b.3.max(b.1))
        .fold(0.0f64, f64::max)
        .max(1e-12)
        * 1.15;
    let unit = figure.def.unit;
    let currency = report.currency.clone();
    let title = format!("{} (median and interval; see the method)", figure.def.label);
    svg(260, |root| {
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(90)
            .build_cartesian_2d(0f64..bars.len() as f64, 0f64..top)?;
        let names: Vec<String> = bars.iter().map(|b| b.0.to_string()).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(bars.len() * 2 + 1)
            .x_label_formatter(&|x| centred_label(&names, *x))
            .y_label_formatter(&|v| value(*v, unit, &currency))
            .draw()?;
        for (i, (target, median, low, high)) in bars.iter().enumerate() {
            let x = i as f64;
            let colour = target_colour(report, target);
            chart.draw_series(std::iter::once(Rectangle::new(
                [(x + 0.2, 0.0), (x + 0.8, *median)],
                colour.filled(),
            )))?;
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(x + 0.5, *low), (x + 0.5, *high)],
                BLACK.stroke_width(2),
            )))?;
            for y in [*low, *high] {
                chart.draw_series(std::iter::once(PathElement::new(
                    vec![(x + 0.4, y), (x + 0.6, y)],
                    BLACK.stroke_width(2),
                )))?;
            }
        }
        Ok(())
    })
}

/// Speed-up against size per target, with the ideal line.
pub fn scaling(report: &Report) -> Option<String> {
    if report.scaling.is_empty() {
        return None;
    }
    let max_size = report.scaling.iter().map(|s| s.size).fold(1.0f64, f64::max);
    let max_speedup = report
        .scaling
        .iter()
        .map(|s| s.speedup)
        .fold(1.0f64, f64::max);
    let min_size = report
        .scaling
        .iter()
        .map(|s| s.size)
        .fold(f64::MAX, f64::min);
    svg(300, |root| {
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Scaling: speed-up against the smallest size",
                ("sans-serif", 16),
            )
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(
                0f64..max_size * 1.1,
                0f64..(max_size / min_size).max(max_speedup) * 1.1,
            )?;
        chart
            .configure_mesh()
            .x_desc(report.scaling[0].resource.clone())
            .y_desc("speed-up")
            .draw()?;
        chart.draw_series(LineSeries::new(
            vec![(min_size, 1.0), (max_size, max_size / min_size)],
            BLACK.mix(0.4),
        ))?;
        for target in &report.targets {
            let points: Vec<(f64, f64)> = report
                .scaling
                .iter()
                .filter(|s| &s.target == target)
                .map(|s| (s.size, s.speedup))
                .collect();
            if points.is_empty() {
                continue;
            }
            let colour = target_colour(report, target);
            chart
                .draw_series(LineSeries::new(points, colour.stroke_width(2)).point_size(4))?
                .label(target.clone())
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
