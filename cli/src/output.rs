//! What a client command prints: one shape (named columns, rows of values) in three formats.

use std::io::Write;

use serde_json::Value;

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns for people; one record is shown as field and value.
    Table,
    /// A JSON array of objects (one object for one record).
    Json,
    /// CSV with a header line.
    Csv,
}

/// A result: rows under named columns, or one record.
pub struct Output {
    columns: Vec<String>,
    rows: Vec<Vec<Value>>,
    record: bool,
}

impl Output {
    pub fn rows(columns: &[&str]) -> Self {
        Self {
            columns: columns.iter().map(|&column| column.to_owned()).collect(),
            rows: Vec::new(),
            record: false,
        }
    }

    /// One thing's fields, printed as field and value in a table and as one object in JSON.
    pub fn record(fields: Vec<(&str, Value)>) -> Self {
        let (columns, values) = fields.into_iter().map(|(name, value)| (name.to_owned(), value)).unzip();
        Self {
            columns,
            rows: vec![values],
            record: true,
        }
    }

    pub fn push(&mut self, row: Vec<Value>) {
        debug_assert_eq!(row.len(), self.columns.len());
        self.rows.push(row);
    }

    pub fn print(&self, format: Format) -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        match format {
            Format::Table => writeln!(out, "{}", self.table())?,
            Format::Json => {
                serde_json::to_writer_pretty(&mut out, &self.json())?;
                writeln!(out)?;
            }
            Format::Csv => {
                let mut writer = csv::Writer::from_writer(out);
                writer.write_record(&self.columns)?;
                for row in &self.rows {
                    writer.write_record(row.iter().map(plain))?;
                }
                writer.flush()?;
            }
        }
        Ok(())
    }

    fn table(&self) -> comfy_table::Table {
        let mut table = comfy_table::Table::new();
        table.load_style(comfy_table::presets::UTF8_HORIZONTAL_ONLY);
        match (self.record, self.rows.first()) {
            (true, Some(values)) => {
                for (column, value) in self.columns.iter().zip(values) {
                    table.add_row(vec![column.clone(), plain(value)]);
                }
            }
            _ => {
                table.set_header(&self.columns);
                for row in &self.rows {
                    table.add_row(row.iter().map(plain));
                }
            }
        }
        table
    }

    pub fn json(&self) -> Value {
        let object = |row: &Vec<Value>| Value::Object(self.columns.iter().cloned().zip(row.iter().cloned()).collect());
        match (self.record, self.rows.first()) {
            (true, Some(row)) => object(row),
            _ => Value::Array(self.rows.iter().map(object).collect()),
        }
    }
}

/// A value as a cell shows it: strings without quotes, nothing for null.
fn plain(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// A protobuf timestamp as RFC 3339 in UTC; empty when unset.
pub fn timestamp(at: Option<&prost_types::Timestamp>) -> Value {
    at.and_then(|at| chrono::DateTime::from_timestamp(at.seconds, u32::try_from(at.nanos).unwrap_or(0)))
        .map_or(Value::Null, |at| {
            Value::String(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        })
}
