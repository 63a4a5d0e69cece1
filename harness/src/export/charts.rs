//! `throughput.svg` and `p99.svg`: throughput and p99 latency against connections (log scale),
//! one line per server, for the steady-load family (closed loop, connections kept, the
//! smallest message size) — the curve that shows how each server scales.

use plotters::prelude::*;

use crate::aggregate::CellSummary;

/// The cells charted: closed loop, r=0, the smallest size among them.
fn charted(summaries: &[CellSummary]) -> Vec<&CellSummary> {
    let steady = |s: &&CellSummary| s.cell.rate.is_none() && s.cell.roundtrips == 0;
    let Some(size) = summaries.iter().filter(steady).map(|s| s.cell.size).min() else {
        return Vec::new();
    };
    summaries
        .iter()
        .filter(steady)
        .filter(|s| s.cell.size == size)
        .collect()
}

/// Okabe–Ito colours: distinguishable with every common colour-vision deficiency.
const COLOURS: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
    RGBColor(153, 153, 153),
];

/// Which metric a chart shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Median round trips per second.
    Throughput,
    /// p99 latency in milliseconds.
    P99,
}

/// Renders one chart as SVG text (`None` when nothing can be charted).
pub fn render(summaries: &[CellSummary], metric: Metric) -> Option<String> {
    let cells = charted(summaries);
    let value = |s: &CellSummary| match metric {
        Metric::Throughput => s.throughput.map(|t| t.median),
        Metric::P99 => s
            .latency
            .filter(|p| p.count > 0)
            .map(|p| p.p99 as f64 / 1e6),
    };
    let mut servers: Vec<&str> = Vec::new();
    for cell in &cells {
        if !servers.contains(&cell.cell.server.as_str()) {
            servers.push(&cell.cell.server);
        }
    }
    let points: Vec<(f64, f64)> = cells
        .iter()
        .filter_map(|c| Some((f64::from(c.cell.connections), value(c)?)))
        .collect();
    if points.is_empty() {
        return None;
    }
    let max_x = points.iter().map(|p| p.0).fold(1.0, f64::max) * 1.5;
    let max_y = points.iter().map(|p| p.1).fold(0.0, f64::max) * 1.15;
    let size = cells.first().map_or(0, |c| c.cell.size);
    let (title, y_label) = match metric {
        Metric::Throughput => (
            format!("Throughput, {size}-byte messages, closed loop"),
            "round trips / s (median)",
        ),
        Metric::P99 => (
            format!("p99 latency, {size}-byte messages, closed loop"),
            "p99 latency (ms)",
        ),
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (860, 520)).into_drawing_area();
        root.fill(&WHITE).ok()?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(80)
            .build_cartesian_2d((0.8f64..max_x).log_scale(), 0f64..max_y.max(1e-9))
            .ok()?;
        chart
            .configure_mesh()
            .x_desc("connections (log scale)")
            .y_desc(y_label)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| match metric {
                Metric::Throughput => format!("{:.0}k", y / 1000.0),
                Metric::P99 => format!("{y:.2}"),
            })
            .draw()
            .ok()?;
        for (i, server) in servers.iter().enumerate() {
            let color = COLOURS[i % COLOURS.len()];
            let mut line: Vec<(f64, f64)> = cells
                .iter()
                .filter(|c| c.cell.server == *server)
                .filter_map(|c| Some((f64::from(c.cell.connections), value(c)?)))
                .collect();
            line.sort_by(|a, b| a.0.total_cmp(&b.0));
            chart
                .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))
                .ok()?
                .label(*server)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart
                .draw_series(line.into_iter().map(|p| Circle::new(p, 4, color.filled())))
                .ok()?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .ok()?;
        root.present().ok()?;
    }
    Some(svg)
}
