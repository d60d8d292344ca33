//! `quanyu pos import`: a POS export streamed through UploadSales. Every sale is keyed by its store,
//! till and receipt, so importing a file again (after a Ctrl-C, a fix, or twice by mistake)
//! applies only what was not applied.

mod file;
mod row;

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use chrono::FixedOffset;
use quanyu_proto::points::v1 as pb;
use serde_json::json;
use tokio::sync::mpsc;

pub use file::FileKind;
use file::Unreadable;
use row::{Defaults, FieldError};

use crate::client::ClientArgs;
use crate::output::Output;

/// Sales per UploadSales message.
const CHUNK: usize = 500;

#[derive(clap::Subcommand)]
pub enum PosCommand {
    /// Imports a POS export (CSV or JSON Lines; see cli/examples/pos-sales.csv).
    Import(ImportArgs),
}

#[derive(clap::Args)]
pub struct ImportArgs {
    /// The file; `-` reads standard input.
    file: PathBuf,
    /// The file's format; by default from its extension (.jsonl is JSON Lines), else CSV.
    #[arg(long, value_enum)]
    input: Option<FileKind>,
    /// Where rejected rows are written (line, column, reason); default FILE.errors.csv in the
    /// current directory.
    #[arg(long)]
    errors: Option<PathBuf>,
    /// The name of the POS system: sales are keyed SOURCE:STORE and TILL/RECEIPT.
    #[arg(long, default_value = "pos")]
    source: String,
    /// The offset of times written without one.
    #[arg(long, default_value = "+08:00", allow_hyphen_values = true)]
    utc_offset: FixedOffset,
    /// The card system that `card` numbers belong to.
    #[arg(long, default_value = "")]
    card_system: String,
}

impl ImportArgs {
    fn errors_path(&self) -> PathBuf {
        self.errors.clone().unwrap_or_else(|| {
            let mut name = match self.file.file_name() {
                Some(name) if self.file != Path::new("-") => name.to_owned(),
                _ => "pos-import".into(),
            };
            name.push(".errors.csv");
            name.into()
        })
    }
}

/// What reading the file found, beside the sales it sent.
#[derive(Default)]
struct Reading {
    /// The line of each sale sent, by its index in the upload.
    lines: Vec<u64>,
    /// Rows that could not be sales, with their line.
    invalid: Vec<(u64, FieldError)>,
    unreadable: Option<Unreadable>,
}

/// Reads, converts and sends the rows in chunks; stops at an unreadable line or when the upload
/// ends early (the service refused it, or the command was interrupted).
fn read_and_send(
    input: Box<dyn Read + Send>,
    kind: FileKind,
    defaults: &Defaults,
    sender: &mpsc::Sender<pb::UploadSalesRequest>,
) -> Reading {
    let mut reading = Reading::default();
    let mut chunk = Vec::with_capacity(CHUNK);
    let send = |chunk: &mut Vec<pb::Sale>| {
        let sales = std::mem::replace(chunk, Vec::with_capacity(CHUNK));
        sender.blocking_send(pb::UploadSalesRequest { sales }).is_ok()
    };
    for read in file::rows(input, kind) {
        match read.map(|(line, row)| (line, row::sale(&row, defaults))) {
            Ok((line, Ok(sale))) => {
                reading.lines.push(line);
                chunk.push(sale);
            }
            Ok((line, Err(invalid))) => reading.invalid.push((line, invalid)),
            Err(unreadable) => reading.unreadable = Some(unreadable),
        }
        if chunk.len() == CHUNK && !send(&mut chunk) {
            return reading;
        }
    }
    if !chunk.is_empty() {
        send(&mut chunk);
    }
    reading
}

/// The file (or standard input) read through a progress bar of the bytes read: the reader runs
/// at most two chunks ahead of the upload, so the bar follows what the service has taken.
fn open(path: &Path) -> anyhow::Result<(Box<dyn Read + Send>, indicatif::ProgressBar)> {
    let style = indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes}  {bytes_per_sec}  eta {eta}")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    if path == Path::new("-") {
        let progress = indicatif::ProgressBar::no_length().with_style(style);
        return Ok((Box::new(progress.wrap_read(std::io::stdin())), progress));
    }
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let size = file.metadata().map(|metadata| metadata.len()).unwrap_or(0);
    let progress = indicatif::ProgressBar::new(size).with_style(style);
    Ok((Box::new(progress.wrap_read(file)), progress))
}

pub async fn run(client: &ClientArgs, command: PosCommand) -> anyhow::Result<()> {
    let PosCommand::Import(args) = command;
    let kind = args.input.unwrap_or_else(|| FileKind::of(&args.file));
    let (input, progress) = open(&args.file)?;
    let mut points = client.connect()?.points().await?;
    let defaults = Defaults {
        source: args.source.clone(),
        utc_offset: args.utc_offset,
        card_system: args.card_system.clone(),
    };
    let (sender, receiver) = mpsc::channel(2);
    let reading = tokio::task::spawn_blocking(move || read_and_send(input, kind, &defaults, &sender));
    let upload = points.upload_sales(tokio_stream::wrappers::ReceiverStream::new(receiver));
    let uploaded = tokio::select! {
        uploaded = upload => uploaded,
        _ = tokio::signal::ctrl_c() => {
            progress.abandon();
            anyhow::bail!(
                "interrupted after {} bytes: the sales the service received are kept; run the same command again to import the rest",
                progress.position()
            );
        }
    };
    let reading = reading.await.context("reading the file")?;
    progress.finish_and_clear();
    let summary = uploaded
        .map_err(|status| crate::client::refused("UploadSales", status))?
        .into_inner();

    let mut rejected: Vec<(u64, String, String)> = reading
        .invalid
        .iter()
        .map(|(line, error)| (*line, error.field.clone(), error.reason.clone()))
        .collect();
    for rejection in &summary.rejections {
        let line = usize::try_from(rejection.index)
            .ok()
            .and_then(|index| reading.lines.get(index))
            .copied()
            .unwrap_or(0);
        if rejection.violations.is_empty() {
            rejected.push((line, String::new(), "rejected".to_owned()));
        }
        for violation in &rejection.violations {
            rejected.push((line, row::column_of(&violation.field), violation.description.clone()));
        }
    }
    rejected.sort();
    let errors_path = args.errors_path();
    if !rejected.is_empty() {
        write_errors(&errors_path, &rejected)?;
    }
    let rejected_rows = reading.invalid.len() as i64 + summary.rejected;
    Output::record(vec![
        ("file", json!(args.file.display().to_string())),
        ("applied", json!(summary.applied)),
        ("already_applied", json!(summary.duplicates)),
        ("rejected", json!(rejected_rows)),
        (
            "errors_file",
            json!(if rejected.is_empty() {
                String::new()
            } else {
                errors_path.display().to_string()
            }),
        ),
    ])
    .print(client.format)?;
    if let Some(unreadable) = reading.unreadable {
        anyhow::bail!(
            "{}:{}: {}; the rows before it were imported, none after it",
            args.file.display(),
            unreadable.line,
            unreadable.reason
        );
    }
    if rejected_rows > 0 {
        anyhow::bail!("{rejected_rows} rows rejected: see {}", errors_path.display());
    }
    Ok(())
}

fn write_errors(path: &Path, rejected: &[(u64, String, String)]) -> anyhow::Result<()> {
    let mut writer = csv::Writer::from_path(path).with_context(|| format!("cannot write {}", path.display()))?;
    writer.write_record(["line", "column", "reason"])?;
    for (line, column, reason) in rejected {
        writer.write_record([line.to_string().as_str(), column, reason])?;
    }
    writer.flush()?;
    Ok(())
}
