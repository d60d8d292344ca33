//! Reads a POS export row by row, each with its line number, stopping at the first line that is not
//! CSV or JSON at all (or names a column nobody knows).

use std::io::{BufRead, BufReader, Read};

use serde_json::Value;

use super::row::{Row, unknown_column};

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// Comma-separated, a header line naming the columns.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

impl FileKind {
    /// By the file's extension: `.jsonl`, `.ndjson` and `.json` are JSON Lines, anything else CSV.
    pub fn of(path: &std::path::Path) -> Self {
        match path.extension().and_then(|extension| extension.to_str()) {
            Some("jsonl" | "ndjson" | "json") => FileKind::Jsonl,
            _ => FileKind::Csv,
        }
    }
}

/// A line that could not be read as a row: nothing from it on is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    pub line: u64,
    pub reason: String,
}

pub type ReadRow = Result<(u64, Row), Unreadable>;

/// The rows of `input`, each with the line it starts on; after an [`Unreadable`], nothing.
pub fn rows(input: impl Read + 'static, kind: FileKind) -> Box<dyn Iterator<Item = ReadRow>> {
    let rows: Box<dyn Iterator<Item = ReadRow>> = match kind {
        FileKind::Csv => Box::new(csv_rows(input)),
        FileKind::Jsonl => Box::new(json_rows(input)),
    };
    let mut stopped = false;
    Box::new(rows.take_while(move |read| {
        let go_on = !stopped;
        stopped |= read.is_err();
        go_on
    }))
}

fn csv_rows(input: impl Read) -> impl Iterator<Item = ReadRow> {
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(input);
    let header = reader.headers().cloned().map_err(|error| unreadable(&error, 1));
    let header = header.and_then(|header| match unknown_column(header.iter()) {
        Some(column) => Err(Unreadable {
            line: 1,
            reason: format!("unknown column `{column}` in the header"),
        }),
        None => Ok(header),
    });
    let (header, failed) = match header {
        Ok(header) => (header, None),
        Err(error) => (csv::StringRecord::new(), Some(Err(error))),
    };
    let records = failed.is_none().then(|| reader.into_records()).into_iter().flatten();
    failed.into_iter().chain(records.map(move |record| {
        let record = record.map_err(|error| unreadable(&error, 0))?;
        let line = record.position().map_or(0, csv::Position::line);
        let row = header
            .iter()
            .zip(record.iter())
            .map(|(column, cell)| (column.to_owned(), Value::String(cell.to_owned())))
            .collect();
        Ok((line, row))
    }))
}

fn unreadable(error: &csv::Error, fallback_line: u64) -> Unreadable {
    let line = error.position().map_or(fallback_line, csv::Position::line);
    let reason = match error.kind() {
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
            format!("{len} fields where the header has {expected_len}")
        }
        csv::ErrorKind::Utf8 { .. } => "not UTF-8 text".to_owned(),
        _ => error.to_string(),
    };
    Unreadable { line, reason }
}

fn json_rows(input: impl Read) -> impl Iterator<Item = ReadRow> {
    BufReader::new(input)
        .lines()
        .zip(1u64..)
        .filter(|(text, _)| text.as_ref().map_or(true, |text| !text.trim().is_empty()))
        .map(|(text, line)| {
            let fail = |reason: String| Unreadable { line, reason };
            let text = text.map_err(|error| fail(error.to_string()))?;
            match serde_json::from_str::<Value>(&text) {
                Ok(Value::Object(row)) => match unknown_column(row.keys().map(String::as_str)) {
                    Some(column) => Err(fail(format!("unknown column `{column}`"))),
                    None => Ok((line, row)),
                },
                Ok(_) => Err(fail("not a JSON object".to_owned())),
                Err(error) => Err(fail(format!("not JSON: {error}"))),
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &'static str, kind: FileKind) -> Vec<ReadRow> {
        rows(text.as_bytes(), kind).collect()
    }

    #[test]
    fn csv_rows_carry_the_line_they_start_on() {
        let rows = read("store,till,receipt\nS1,1,\"a\nb\"\nS1,1,c\n", FileKind::Csv);
        let lines: Vec<u64> = rows.iter().map(|row| row.as_ref().unwrap().0).collect();
        assert_eq!(lines, [2, 4], "a quoted cell may span lines");
        assert_eq!(rows[1].as_ref().unwrap().1["receipt"], "c");
    }

    #[test]
    fn csv_stops_at_the_first_unreadable_line() {
        let rows = read("store,till,receipt\nS1,1,a\nS1,1\nS1,1,c\n", FileKind::Csv);
        assert_eq!(rows.len(), 2);
        let error = rows[1].clone().unwrap_err();
        assert_eq!(error.line, 3);
        assert!(error.reason.contains("2 fields where the header has 3"), "{error:?}");
        let header = read("store,tll\nS1,1\n", FileKind::Csv);
        assert_eq!(
            header,
            [Err(Unreadable {
                line: 1,
                reason: "unknown column `tll` in the header".into()
            })]
        );
    }

    #[test]
    fn json_lines_skip_blank_lines_and_stop_at_bad_json() {
        let rows = read(
            "{\"store\":\"S1\"}\n\n{\"store\":\"S2\"}\n{oops\n{\"store\":\"S3\"}\n",
            FileKind::Jsonl,
        );
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[1].as_ref().unwrap().0, 3);
        assert_eq!(rows[2].clone().unwrap_err().line, 4);
        let unknown = read("{\"stor\":\"S1\"}\n", FileKind::Jsonl);
        assert!(unknown[0].clone().unwrap_err().reason.contains("unknown column `stor`"));
    }
}
