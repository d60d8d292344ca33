//! Charts of the reports, drawn with plotters as SVG or PNG.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use plotters::coord::Shift;
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

const SIZE: (u32, u32) = (1000, 700);
const FONT: &str = "sans-serif";

/// A file to draw into; its extension says how.
pub enum Canvas {
    Svg(PathBuf),
    Png(PathBuf),
}

impl Canvas {
    pub fn for_path(path: &Path) -> anyhow::Result<Self> {
        // Text is drawn with a font the binary carries, so that a server without fonts draws too.
        static FONT_REGISTERED: std::sync::Once = std::sync::Once::new();
        FONT_REGISTERED.call_once(|| {
            // DejaVu Sans is a valid font: registering it cannot fail.
            let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
        });
        match path.extension().and_then(|extension| extension.to_str()) {
            Some("svg") => Ok(Canvas::Svg(path.to_owned())),
            Some("png") => Ok(Canvas::Png(path.to_owned())),
            _ => anyhow::bail!("--chart {}: the file must end in .svg or .png", path.display()),
        }
    }

    pub fn render(&self, drawing: &impl Drawing) -> anyhow::Result<()> {
        match self {
            Canvas::Svg(path) => present(&SVGBackend::new(path, SIZE).into_drawing_area(), drawing),
            Canvas::Png(path) => present(&BitMapBackend::new(path, SIZE).into_drawing_area(), drawing),
        }
    }
}

fn present<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, drawing: &impl Drawing) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    drawing.draw(root)?;
    root.present()?;
    Ok(())
}

/// A chart, drawn the same on any backend.
pub trait Drawing {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()>
    where
        DB::ErrorType: 'static;
}

/// The FAST figures at the end of one period.
pub struct FastPoint {
    pub day: NaiveDate,
    pub fertility: i64,
    pub members: i64,
    pub advancing: f64,
    pub high_value: f64,
    pub thriving: f64,
}

/// A line of the FAST trend: its name, colour and figure.
type Series<Figure> = (&'static str, RGBColor, fn(&FastPoint) -> Figure);

/// The FAST trend: consumers and members above, the three rates below.
pub struct FastTrend<'a>(pub &'a [FastPoint]);

impl Drawing for FastTrend<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()>
    where
        DB::ErrorType: 'static,
    {
        let points = self.0;
        let (upper, lower) = root.split_vertically(SIZE.1 / 2);
        let most = points
            .iter()
            .map(|point| point.fertility.max(point.members))
            .max()
            .unwrap_or(0)
            .max(1);
        let counts: [Series<i64>; 2] = [
            ("Fertility", BLUE, |point| point.fertility),
            ("Members", GREEN, |point| point.members),
        ];
        let caption = "FAST: Fertility (consumers in a stage) and Superiority (members)";
        let count_label = |count: &i64| count.to_string();
        trend_panel(&upper, caption, points, 0..most + most / 10, &count_label, &counts)?;
        let highest = points
            .iter()
            .map(|point| point.advancing.max(point.high_value).max(point.thriving))
            .fold(0.01, f64::max);
        let rates: [Series<f64>; 3] = [
            ("Advancing", RED, |point| point.advancing),
            ("High-value", MAGENTA, |point| point.high_value),
            ("Thriving", CYAN, |point| point.thriving),
        ];
        let caption = "FAST: Advancing, high-value members, Thriving";
        let percent = |rate: &f64| format!("{:.1}%", rate * 100.0);
        trend_panel(&lower, caption, points, 0.0..highest * 1.1, &percent, &rates)
    }
}

/// One panel of the FAST trend: `series` over the periods' last days, on `figures`.
fn trend_panel<DB, Figure>(
    area: &DrawingArea<DB, Shift>,
    caption: &str,
    points: &[FastPoint],
    figures: std::ops::Range<Figure>,
    figure_label: &dyn Fn(&Figure) -> String,
    series: &[Series<Figure>],
) -> anyhow::Result<()>
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
    Figure: Copy + 'static,
    std::ops::Range<Figure>: plotters::coord::ranged1d::AsRangedCoord<Value = Figure>,
    <std::ops::Range<Figure> as plotters::coord::ranged1d::AsRangedCoord>::CoordDescType:
        plotters::coord::ranged1d::ValueFormatter<Figure>,
{
    let Some(first) = points.first().map(|point| point.day) else {
        return Ok(());
    };
    let offset = |day: NaiveDate| (day - first).num_days();
    let span = points.last().map_or(1, |point| offset(point.day)).max(1);
    let date_label = |at: &i64| (first + chrono::Duration::days(*at)).format("%m-%d").to_string();
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, 20))
        .margin(10)
        .margin_right(40)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0..span, figures)?;
    chart
        .configure_mesh()
        .x_label_formatter(&date_label)
        .y_label_formatter(figure_label)
        .draw()?;
    for &(name, color, figure) in series {
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|point| (offset(point.day), figure(point))),
                color.stroke_width(2),
            ))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// White for nothing to deep blue for the most.
fn shade(share: f64) -> RGBColor {
    let share = share.clamp(0.0, 1.0);
    let channel = |from: f64, to: f64| (from + (to - from) * share).round() as u8;
    RGBColor(channel(255.0, 8.0), channel(255.0, 48.0), channel(255.0, 107.0))
}

/// Ink that reads on a cell of `share`.
fn ink(share: f64) -> &'static RGBColor {
    if share > 0.5 { &WHITE } else { &BLACK }
}

/// A grid of labelled cells: `cells[row][column]` with its text, shaded by its share.
fn grid<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    rows: &[String],
    columns: &[String],
    cells: &[(usize, usize, f64, String)],
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let (width, height) = (columns.len().max(1) as i32, rows.len().max(1) as i32);
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 20))
        .margin(20)
        .x_label_area_size(40)
        .y_label_area_size(110)
        // A segmented 0..n has a segment for each of 0..=n.
        .build_cartesian_2d((0..width - 1).into_segmented(), (0..height - 1).into_segmented())?;
    let label = |names: &[String], value: &SegmentValue<i32>, flip: bool| match value {
        SegmentValue::CenterOf(at) => {
            let index = if flip { height - 1 - at } else { *at };
            usize::try_from(index)
                .ok()
                .and_then(|index| names.get(index))
                .cloned()
                .unwrap_or_default()
        }
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .label_style((FONT, 16))
        .x_labels(columns.len())
        .y_labels(rows.len())
        .x_label_formatter(&|value| label(columns, value, false))
        .y_label_formatter(&|value| label(rows, value, true))
        .draw()?;
    let corner = |row: usize, column: usize| (column as i32, height - 1 - row as i32);
    chart.draw_series(cells.iter().map(|(row, column, share, _)| {
        let (x, y) = corner(*row, *column);
        Rectangle::new(
            [
                (SegmentValue::Exact(x), SegmentValue::Exact(y + 1)),
                (SegmentValue::Exact(x + 1), SegmentValue::Exact(y)),
            ],
            shade(*share).filled(),
        )
    }))?;
    let centred = Pos::new(HPos::Center, VPos::Center);
    chart.draw_series(cells.iter().map(|(row, column, share, text)| {
        let (x, y) = corner(*row, *column);
        let style = TextStyle::from((FONT, 16).into_font()).color(ink(*share)).pos(centred);
        Text::new(
            text.clone(),
            (SegmentValue::CenterOf(x), SegmentValue::CenterOf(y)),
            style,
        )
    }))?;
    Ok(())
}

/// Counts between two sets of names (channels, stages): rows are the first name, columns the
/// second; a symmetric map fills both halves.
pub struct HeatMap<'a> {
    pub title: &'a str,
    pub cells: &'a [(String, String, i64)],
    pub symmetric: bool,
}

impl Drawing for HeatMap<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()>
    where
        DB::ErrorType: 'static,
    {
        let mut rows: Vec<String> = Vec::new();
        let mut columns: Vec<String> = Vec::new();
        let note = |names: &mut Vec<String>, name: &String| {
            if !names.contains(name) {
                names.push(name.clone());
            }
        };
        for (row, column, _) in self.cells {
            note(&mut rows, row);
            note(&mut columns, column);
            if self.symmetric {
                note(&mut rows, column);
                note(&mut columns, row);
            }
        }
        let most = self.cells.iter().map(|cell| cell.2).max().unwrap_or(0).max(1) as f64;
        let position = |names: &[String], name: &String| names.iter().position(|known| known == name).unwrap_or(0);
        let mut cells = Vec::new();
        for (row, column, count) in self.cells {
            let mut place = |row: &String, column: &String| {
                let cell = (
                    position(&rows, row),
                    position(&columns, column),
                    *count as f64 / most,
                    count.to_string(),
                );
                cells.push(cell);
            };
            place(row, column);
            if self.symmetric && row != column {
                place(column, row);
            }
        }
        grid(root, self.title, &rows, &columns, &cells)
    }
}

/// Cohort retention: each enrolment month's share of members buying in each month after.
pub struct CohortTriangle<'a>(pub &'a [(String, Vec<f64>)]);

impl Drawing for CohortTriangle<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()>
    where
        DB::ErrorType: 'static,
    {
        let rows: Vec<String> = self.0.iter().map(|(month, _)| month.clone()).collect();
        let months = self.0.iter().map(|(_, rates)| rates.len()).max().unwrap_or(0);
        let columns: Vec<String> = (0..months).map(|month| format!("+{month}")).collect();
        let cells: Vec<_> = self
            .0
            .iter()
            .enumerate()
            .flat_map(|(row, (_, rates))| {
                rates
                    .iter()
                    .enumerate()
                    .map(move |(column, rate)| (row, column, *rate, format!("{:.0}%", rate * 100.0)))
            })
            .collect();
        grid(
            root,
            "Members buying, by month of enrolment and months since",
            &rows,
            &columns,
            &cells,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_chart_draws_as_svg_and_png() {
        let dir = tempfile::tempdir().unwrap();
        let day = |d| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
        let point = |d, fertility| FastPoint {
            day: day(d),
            fertility,
            members: fertility / 2,
            advancing: 0.05,
            high_value: 0.2,
            thriving: 0.3,
        };
        let trend = [point(7, 120), point(14, 150), point(21, 149)];
        let cells = [
            ("store".to_owned(), "store".to_owned(), 40),
            ("store".to_owned(), "tmall".to_owned(), 12),
            ("tmall".to_owned(), "tmall".to_owned(), 30),
        ];
        let cohorts = [
            ("2026-10".to_owned(), vec![1.0, 0.4]),
            ("2026-11".to_owned(), vec![1.0]),
        ];
        for extension in ["svg", "png"] {
            let path = |name: &str| dir.path().join(format!("{name}.{extension}"));
            let draw = |name: &str, drawing: &dyn Fn(&Canvas) -> anyhow::Result<()>| {
                drawing(&Canvas::for_path(&path(name)).unwrap()).unwrap();
                assert!(
                    std::fs::metadata(path(name)).unwrap().len() > 1_000,
                    "{name}.{extension} has a drawing"
                );
            };
            draw("fast", &|canvas| canvas.render(&FastTrend(&trend)));
            let overlap = HeatMap {
                title: "overlap",
                cells: &cells,
                symmetric: true,
            };
            draw("overlap", &|canvas| canvas.render(&overlap));
            draw("cohorts", &|canvas| canvas.render(&CohortTriangle(&cohorts)));
        }
        let svg = std::fs::read_to_string(dir.path().join("overlap.svg")).unwrap();
        assert!(
            svg.contains("\ntmall\n</text>") && svg.contains("\n12\n</text>"),
            "labels and counts are text in the SVG"
        );
        assert!(Canvas::for_path(Path::new("chart.pdf")).is_err());
    }
}
