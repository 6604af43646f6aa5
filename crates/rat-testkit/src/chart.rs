//! SVG line charts for the reports of tools and benchmarks (`cargo xtask
//! soak`, `cargo xtask bench`): one chart of named series of `(x, y)`
//! points, linear or logarithmic axes, with a legend, written with plotters'
//! SVG backend.
//!
//! Axis ranges come from the data. A linear y axis starts at zero when no
//! value is negative, since what these charts show are quantities (memory,
//! connections, latency) and a flat line should look flat, not like noise
//! magnified to the chart's height. A logarithmic axis shows only the points
//! whose coordinate on it is positive (the others have no place on it).
//!
//! No font is read: without plotters' font features text sizes are
//! estimated, and the SVG carries `<text>` elements the viewer draws.

use std::ops::Range;
use std::path::Path;

use anyhow::Context;
use plotters::coord::Shift;
use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

/// The width and height of a chart, in SVG pixels.
const SIZE: (u32, u32) = (960, 540);

/// One named line of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The name shown in the legend.
    pub name: String,
    /// The points, drawn joined in this order.
    pub points: Vec<(f64, f64)>,
}

/// A line chart of one or more series.
#[derive(Debug, Clone, Copy)]
pub struct Chart<'a> {
    /// The caption above the plot.
    pub title: &'a str,
    /// The x axis' description (say its unit).
    pub x_label: &'a str,
    /// The y axis' description (say its unit).
    pub y_label: &'a str,
    /// Whether the x axis is logarithmic.
    pub x_log: bool,
    /// Whether the y axis is logarithmic.
    pub y_log: bool,
    /// The lines, each in its own colour, named in the legend.
    pub series: &'a [Series],
}

impl Chart<'_> {
    /// Writes the chart as an SVG file at `path` (replacing it). Fails when
    /// no point can be placed on the axes, or the file cannot be written.
    pub fn write_svg(&self, path: &Path) -> anyhow::Result<()> {
        let plotted: Vec<Series> = self
            .series
            .iter()
            .map(|series| Series {
                name: series.name.clone(),
                points: series
                    .points
                    .iter()
                    .copied()
                    .filter(|&(x, y)| {
                        x.is_finite() && y.is_finite() && (!self.x_log || x > 0.0) && (!self.y_log || y > 0.0)
                    })
                    .collect(),
            })
            .collect();
        let x_range = axis_range(plotted.iter().flat_map(|s| &s.points).map(|p| p.0), self.x_log, false)
            .with_context(|| format!("chart {:?} has no point to plot", self.title))?;
        let y_range = axis_range(plotted.iter().flat_map(|s| &s.points).map(|p| p.1), self.y_log, true)
            .with_context(|| format!("chart {:?} has no point to plot", self.title))?;

        let root = SVGBackend::new(path, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        match (self.x_log, self.y_log) {
            (false, false) => self.draw(&root, &plotted, linear(x_range), linear(y_range)),
            (true, false) => self.draw(&root, &plotted, log(x_range), linear(y_range)),
            (false, true) => self.draw(&root, &plotted, linear(x_range), log(y_range)),
            (true, true) => self.draw(&root, &plotted, log(x_range), log(y_range)),
        }?;
        root.present()
            .with_context(|| format!("cannot write the chart {}", path.display()))?;
        Ok(())
    }

    /// Draws the axes, the series and the legend on `root`.
    fn draw<X, Y>(&self, root: &DrawingArea<SVGBackend<'_>, Shift>, series: &[Series], x: X, y: Y) -> anyhow::Result<()>
    where
        X: Ranged<ValueType = f64> + ValueFormatter<f64>,
        Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
    {
        let mut chart = ChartBuilder::on(root)
            .caption(self.title, ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(72)
            .build_cartesian_2d(x, y)?;
        chart
            .configure_mesh()
            .x_desc(self.x_label)
            .y_desc(self.y_label)
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 16))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        for (index, one) in series.iter().enumerate() {
            let colour = Palette99::pick(index).to_rgba();
            chart
                .draw_series(LineSeries::new(one.points.iter().copied(), colour.stroke_width(2)))?
                .label(one.name.as_str())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2)));
            chart.draw_series(PointSeries::of_element(
                one.points.iter().copied(),
                3,
                colour.filled(),
                &|point, size, style| Circle::new(point, size, style),
            ))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()?;
        Ok(())
    }
}

/// The range an axis shows for `values`: their span with a margin (on a
/// logarithmic axis, a factor; a linear y axis from zero when nothing is
/// negative), widened when every value is the same. `None` without values.
fn axis_range(values: impl Iterator<Item = f64>, log: bool, from_zero: bool) -> Option<Range<f64>> {
    let (low, high) = values.fold(None, |span: Option<(f64, f64)>, v| match span {
        None => Some((v, v)),
        Some((low, high)) => Some((low.min(v), high.max(v))),
    })?;
    if log {
        // A tenth of a decade of air on each side, and a decade around a
        // single value.
        return Some(if low == high {
            low / 10f64.sqrt()..high * 10f64.sqrt()
        } else {
            low / 1.25..high * 1.25
        });
    }
    let low = if from_zero && low >= 0.0 { 0.0 } else { low };
    let span = high - low;
    let margin = if span > 0.0 {
        span * 0.05
    } else {
        high.abs().max(1.0) * 0.5
    };
    let bottom = if from_zero && low == 0.0 { 0.0 } else { low - margin };
    Some(bottom..high + margin)
}

fn linear(range: Range<f64>) -> RangedCoordf64 {
    range.into()
}

fn log(range: Range<f64>) -> LogCoord<f64> {
    range.log_scale().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(name: &str, points: &[(f64, f64)]) -> Series {
        Series {
            name: name.to_owned(),
            points: points.to_vec(),
        }
    }

    #[test]
    fn writes_every_series_named_with_its_line_and_the_labels() {
        let dir = tempfile::tempdir().unwrap();
        let series = [
            series("rat-api RSS", &[(0.0, 40.0), (10.0, 42.5), (20.0, 41.0)]),
            series("rat-scheduler RSS", &[(0.0, 12.0), (10.0, 12.0), (20.0, 12.5)]),
        ];
        let path = dir.path().join("linear.svg");
        Chart {
            title: "Resident memory",
            x_label: "seconds",
            y_label: "MiB",
            x_log: false,
            y_log: false,
            series: &series,
        }
        .write_svg(&path)
        .unwrap();

        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        for text in ["rat-api RSS", "rat-scheduler RSS", "Resident memory", "seconds", "MiB"] {
            assert!(svg.contains(text), "{text:?} missing from {svg}");
        }
        // One line per series and one per legend entry (plus the axes).
        assert!(svg.matches("<polyline").count() >= 4, "{svg}");
        // Three points per series.
        assert!(svg.matches("<circle").count() >= 6, "{svg}");
    }

    #[test]
    fn log_axes_place_positive_points_and_leave_out_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let series = [series(
            "p99",
            &[(1.0, 0.5), (10.0, 5.0), (100.0, 50.0), (0.0, 1.0), (1000.0, -1.0)],
        )];
        let path = dir.path().join("log.svg");
        Chart {
            title: "Latency by size",
            x_label: "rows",
            y_label: "ms",
            x_log: true,
            y_log: true,
            series: &series,
        }
        .write_svg(&path)
        .unwrap();

        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.contains("p99") && svg.contains("<polyline"), "{svg}");
        // Only the three positive points are drawn.
        assert_eq!(svg.matches("<circle").count(), 3, "{svg}");
    }

    #[test]
    fn a_chart_without_a_point_to_place_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let series = [series("empty", &[]), series("non-positive", &[(0.0, 0.0)])];
        let error = Chart {
            title: "Nothing",
            x_label: "x",
            y_label: "y",
            x_log: true,
            y_log: false,
            series: &series,
        }
        .write_svg(&dir.path().join("none.svg"))
        .unwrap_err();
        assert!(error.to_string().contains("no point to plot"), "{error}");
    }

    #[test]
    fn axis_ranges_follow_the_data() {
        assert_eq!(axis_range([2.0, 4.0].into_iter(), false, false), Some(1.9..4.1));
        assert_eq!(axis_range([2.0, 4.0].into_iter(), false, true), Some(0.0..4.2));
        assert_eq!(axis_range([-2.0, 2.0].into_iter(), false, true), Some(-2.2..2.2));
        assert_eq!(axis_range([3.0].into_iter(), false, false), Some(1.5..4.5));
        assert_eq!(axis_range(std::iter::empty(), false, false), None);
        let log = axis_range([1.0, 100.0].into_iter(), true, true).unwrap();
        assert!((log.start - 0.8).abs() < 1e-9 && (log.end - 125.0).abs() < 1e-9);
    }
}
