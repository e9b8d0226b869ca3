//! `deepface dataset-card`: attribute counts as a bar chart (the paper's Figure 3) and a text
//! summary of a data set.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

use crate::data::dataset::{Dataset, Split};
use crate::{Error, Result};

static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// Writes `attribute_counts.png` and `dataset_card.md` into the data set's folder and returns
/// the summary text.
pub fn write_card(ds: &Dataset) -> Result<String> {
    let (w, h) = ds.image_size()?;
    let total = ds.positives(None);
    let mut md = String::new();
    let name = ds.root.file_name().map_or_else(|| ds.root.display().to_string(), |n| n.to_string_lossy().into_owned());
    let _ = writeln!(md, "# Data set card: {name}\n");
    let splits = [Split::Train, Split::Val, Split::Test];
    let count = |s: Split| ds.splits.iter().filter(|x| **x == s).count();
    let _ = writeln!(md, "{} images of {w}x{h} px: {} train, {} validation, {} test (no image is in two splits).\n", ds.len(), count(Split::Train), count(Split::Val), count(Split::Test));
    let _ = writeln!(md, "| attribute | positives | % | train | validation | test | mean label confidence |");
    let _ = writeln!(md, "|---|---|---|---|---|---|---|");
    let per_split: Vec<Vec<usize>> = splits.iter().map(|s| ds.positives(Some(*s))).collect();
    for (j, a) in ds.attributes.iter().enumerate() {
        let conf = ds.confidence.as_ref().map(|c| {
            let v: Vec<f32> = c.iter().map(|r| r[j]).filter(|x| x.is_finite()).collect();
            format!("{:.3}", v.iter().sum::<f32>() / v.len().max(1) as f32)
        });
        let _ = writeln!(
            md,
            "| {a} | {} | {:.1} | {} | {} | {} | {} |",
            total[j],
            100.0 * total[j] as f64 / ds.len().max(1) as f64,
            per_split[0][j],
            per_split[1][j],
            per_split[2][j],
            conf.unwrap_or_else(|| "-".into())
        );
    }
    if let Some(j) = total.iter().position(|&c| c == 0) {
        let _ = writeln!(md, "\nWarning: attribute `{}` has no positive image.", ds.attributes[j]);
    }
    bar_chart(ds, &total, &ds.root.join("attribute_counts.png"))?;
    let _ = writeln!(md, "\n![attribute counts](attribute_counts.png)");
    let path = ds.root.join("dataset_card.md");
    std::fs::write(&path, &md).map_err(|e| Error::io(path.display(), e))?;
    Ok(md)
}

/// Makes the bundled font plotters' "sans-serif" (the machine may have no fonts at all).
pub fn register_font() {
    let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
}

fn bar_chart(ds: &Dataset, counts: &[usize], out: &Path) -> Result<()> {
    register_font();
    let err = |e: String| Error::Image { what: out.display().to_string(), reason: e };
    let width = 160 + 70 * counts.len() as u32;
    let root = BitMapBackend::new(out, (width.max(480), 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let max = counts.iter().copied().max().unwrap_or(1).max(1) as f64 * 1.1;
    let n = counts.len();
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("Attribute counts ({} images)", ds.len()), ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((0..n).into_segmented(), 0.0..max)
        .map_err(|e| err(e.to_string()))?;
    let names = ds.attributes.clone();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&|x| match x {
            SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .y_label_formatter(&|v| format!("{v:.0}"))
        .y_desc("images")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    chart
        .draw_series(counts.iter().enumerate().map(|(i, &c)| {
            let mut bar = Rectangle::new([(SegmentValue::Exact(i), 0.0), (SegmentValue::Exact(i + 1), c as f64)], RGBColor(70, 110, 180).filled());
            bar.set_margin(0, 0, 8, 8);
            bar
        }))
        .map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(())
}
