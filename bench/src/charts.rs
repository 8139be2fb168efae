//! SVG charts of a run, drawn with plotters' SVG backend only (no font libraries: text is laid out
//! by plotters' built-in size estimate and rendered by whatever shows the SVG).

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use plotters::coord::ranged1d::IntoSegmentedCoord;
use plotters::prelude::*;

use crate::echo::Outcome;
use crate::stats;
use crate::suite::{Run, ServerResults};

const SIZE: (u32, u32) = (760, 420);
/// One colour per server of the latency charts (gateway, sidecar and four peers in echo).
const PALETTE: [RGBColor; 7] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
];

type Series = (String, Vec<Option<f64>>);

/// Draws every chart the run has data for; returns `(title, file)` pairs in reading order.
pub fn draw_all(run: &Run, dir: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut drawn = Vec::new();
    drawn.extend(echo_bars(
        dir,
        run,
        |s| s.echo.as_slice(),
        ("echo-throughput.svg", "Echo throughput, 64-byte messages (msg/s, higher is better)"),
        ("echo-cpu.svg", "Server CPU per echoed message (µs, lower is better)"),
    )?);
    if let Some(c) = run.servers.iter().flat_map(|s| s.echo.iter().map(|e| e.connections)).min() {
        let curves: Vec<(String, Vec<(f64, u64)>)> = run
            .servers
            .iter()
            .filter_map(|s| {
                Some((s.name.clone(), s.echo.iter().find(|e| e.connections == c)?.rtt_curve.clone()))
            })
            .collect();
        let path = dir.join("echo-latency.svg");
        let title = format!("Echo round trip by percentile, C={c} (µs, lower is better)");
        percentiles(&path, &title, &curves)?;
        drawn.push((title, path));
    }

    let idle: Vec<&ServerResults> = run.servers.iter().filter(|s| s.idle_push_off.is_some()).collect();
    if !idle.is_empty() {
        let names: Vec<String> = idle.iter().map(|s| s.name.clone()).collect();
        let kb = |o: &Option<crate::idle::Outcome>| o.as_ref().map(|i| i.bytes_per_conn / 1000.0);
        let mut series =
            vec![("pushes off".to_string(), idle.iter().map(|s| kb(&s.idle_push_off)).collect())];
        if idle.iter().any(|s| s.idle_push_on.is_some()) {
            series.push(("pushes on".to_string(), idle.iter().map(|s| kb(&s.idle_push_on)).collect()));
        }
        let n = idle[0].idle_push_off.as_ref().map_or(0, |i| i.connections);
        let path = dir.join("idle-memory.svg");
        let title = format!("Server memory per idle connection at N={n} (KB, lower is better)");
        bars(&path, &title, &names, &series)?;
        drawn.push((title, path));
    }

    if let Some((name, f)) = run.servers.iter().find_map(|s| Some((s.name.clone(), s.fanout.as_ref()?))) {
        let path = dir.join("fanout-lateness.svg");
        let title = format!("Push lateness by percentile, N={} (µs, lower is better)", f.connections);
        percentiles(&path, &title, &[(name, f.lateness_curve.clone())])?;
        drawn.push((title, path));
    }

    drawn.extend(echo_bars(
        dir,
        run,
        |s| s.app_echo.as_slice(),
        (
            "app-echo-throughput.svg",
            "app-echo: the component's /echo over WebSocket-over-HTTP (msg/s, higher is better)",
        ),
        ("app-echo-cpu.svg", "app-echo: server CPU per message, every process (µs, lower is better)"),
    )?);

    let publ: Vec<&ServerResults> = run.servers.iter().filter(|s| !s.publish.is_empty()).collect();
    if let Some(n) = publ.iter().flat_map(|s| s.publish.iter().map(|p| p.connections)).max() {
        let curves: Vec<(String, Vec<(f64, u64)>)> = publ
            .iter()
            .filter_map(|s| {
                Some((s.name.clone(), s.publish.iter().find(|p| p.connections == n)?.latency_curve.clone()))
            })
            .collect();
        let path = dir.join("publish-latency.svg");
        let title = format!("Publish to arrival by percentile, N={n} (µs, lower is better)");
        percentiles(&path, &title, &curves)?;
        drawn.push((title, path));
    }

    let http: Vec<&ServerResults> = run.servers.iter().filter(|s| s.http.is_some()).collect();
    if !http.is_empty() {
        let names: Vec<String> = http.iter().map(|s| s.name.clone()).collect();
        let series =
            vec![("req/s".to_string(), http.iter().map(|s| s.http.as_ref().map(|h| h.req_per_s)).collect())];
        let path = dir.join("http.svg");
        let title = "HTTP GET / through the component (req/s, higher is better)";
        bars(&path, title, &names, &series)?;
        drawn.push((title.to_string(), path));
    }
    Ok(drawn)
}

/// Throughput and server-CPU bars of `echo` or `app-echo` (`pick`): a group per server that has
/// any, a bar per concurrency level. `(file, title)` for each chart.
fn echo_bars(
    dir: &Path,
    run: &Run,
    pick: fn(&ServerResults) -> &[Outcome],
    throughput: (&str, &str),
    cpu: (&str, &str),
) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let servers: Vec<&ServerResults> = run.servers.iter().filter(|s| !pick(s).is_empty()).collect();
    if servers.is_empty() {
        return Ok(vec![]);
    }
    let names: Vec<String> = servers.iter().map(|s| s.name.clone()).collect();
    let mut levels: Vec<usize> = servers.iter().flat_map(|s| pick(s).iter().map(|e| e.connections)).collect();
    levels.sort_unstable();
    levels.dedup();
    let per_level = |f: fn(&Outcome) -> Option<f64>| -> Vec<Series> {
        let at = |s: &ServerResults, c| pick(s).iter().find(|e| e.connections == c).and_then(f);
        levels.iter().map(|&c| (format!("C={c}"), servers.iter().map(|s| at(s, c)).collect())).collect()
    };
    let mut drawn = Vec::new();
    let msg_per_s: fn(&Outcome) -> Option<f64> = |e| Some(e.msg_per_s);
    let cpu_per_msg: fn(&Outcome) -> Option<f64> = |e| e.server_cpu_us_per_msg;
    for ((file, title), f) in [(throughput, msg_per_s), (cpu, cpu_per_msg)] {
        let path = dir.join(file);
        bars(&path, title, &names, &per_level(f))?;
        drawn.push((title.to_string(), path));
    }
    Ok(drawn)
}

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing chart: {e:?}")
}

/// Grouped vertical bars: one group per category, one bar per series, value printed on top.
fn bars(path: &Path, title: &str, categories: &[String], series: &[Series]) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let max = series.iter().flat_map(|(_, v)| v.iter().flatten()).fold(0.0_f64, |a, &b| a.max(b));
    let top = if max > 0.0 { max * 1.15 } else { 1.0 };
    let n = categories.len();
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(70)
        // `(0..k).into_segmented()` has k + 1 segments: one per category needs `0..n - 1`.
        .build_cartesian_2d((0..n.saturating_sub(1)).into_segmented(), 0.0..top)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => categories.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .y_label_formatter(&|v| short(*v))
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(err)?;

    // Bars sit inside a segment: place them in pixel space relative to the segment's centre.
    let m = series.len().max(1) as i32;
    let group_px = {
        let px = chart.plotting_area().get_pixel_range().0;
        ((px.end - px.start) as f64 / n.max(1) as f64 * 0.8) as i32
    };
    // Capped so a chart with one server still has bars, not a wall.
    let bar_px = (group_px / m).clamp(2, 90);
    let group_px = bar_px * m;
    for (j, (label, values)) in series.iter().enumerate() {
        let color = PALETTE[j % PALETTE.len()];
        let offset = -group_px / 2 + j as i32 * bar_px;
        let elements: Vec<_> = values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| {
                let v = (*v)?;
                let base = (SegmentValue::CenterOf(i), 0.0);
                let (_, y0) = chart.backend_coord(&base);
                let (_, y1) = chart.backend_coord(&(SegmentValue::CenterOf(i), v));
                let height_px = y1 - y0;
                Some(
                    EmptyElement::at(base)
                        + Rectangle::new([(offset, height_px), (offset + bar_px - 2, 0)], color.filled())
                        + Text::new(short(v), (offset, height_px - 14), ("sans-serif", 11)),
                )
            })
            .collect();
        chart
            .draw_series(elements)
            .map_err(err)?
            .label(label.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", 12))
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// Latency by percentile, x = 1 / (1 - q) on a log scale (50%, 90%, 99%, ...), y log scale.
fn percentiles(path: &Path, title: &str, curves: &[(String, Vec<(f64, u64)>)]) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    // 1 / (1 - q): p50 = 2, p90 = 10, p99 = 100, ... so decades on a log axis are "nines".
    let x = |q: f64| 1.0 / (1.0 - q);
    let ys = curves.iter().flat_map(|(_, c)| c.iter().map(|p| p.1.max(1) as f64));
    let (lo, hi) = ys.fold((f64::MAX, 1.0_f64), |(lo, hi), y| (lo.min(y), hi.max(y)));
    let lo = if lo == f64::MAX { 1.0 } else { (lo / 1.5).max(1.0) };
    let x_max = x(*stats::CURVE.last().unwrap_or(&0.9999)) * 1.02;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .margin_right(30)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d((1.9..x_max).log_scale(), (lo..hi * 1.5).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_label_formatter(&|v| {
            let q = 1.0 - 1.0 / *v;
            format!("p{}", trim(q * 100.0))
        })
        .y_label_formatter(&|v| short(*v))
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(err)?;
    for (j, (name, curve)) in curves.iter().enumerate() {
        let color = PALETTE[j % PALETTE.len()];
        let points: Vec<(f64, f64)> = curve.iter().map(|&(q, us)| (x(q), us.max(1) as f64)).collect();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(err)?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 14, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 12))
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// 81234 -> "81.2k", 5.12 -> "5.12".
fn short(v: f64) -> String {
    match v.abs() {
        a if a >= 1e6 => format!("{}M", trim(v / 1e6)),
        a if a >= 1e4 => format!("{}k", trim(v / 1e3)),
        a if a >= 100.0 => format!("{v:.0}"),
        _ => trim(v),
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}
