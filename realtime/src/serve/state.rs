//! `sim serve`'s state directory: the journal (durable, fsynced before replies leave) and the
//! reference-format job log.
//!
//! The journal holds every input the service acknowledged. On start, an existing journal is
//! replayed into a fresh service (same policies, checked against the header), a torn last
//! record — a write cut short by a crash, never acknowledged — is cut off, and the file is
//! opened for appending; otherwise a new journal is started. Writes are grouped: everything the
//! service recorded while handling one round of requests goes out in one `write` and one
//! `fdatasync`, and only then are the round's replies released.

use crate::error::RealtimeError;
use spinnbed_core::service::{BatchId, BmpBatch, Service, ServiceInput};
use spinnbed_core::time::Instant;
use spinnbed_sim::run::ServicePolicy;
use spinnbed_spalloc::journal::{self, Entry, Header, Reader, TornTail};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The journal's file name in the state directory.
pub const JOURNAL: &str = "journal";
/// The job log's file name in the state directory.
pub const JOB_LOG: &str = "spalloc_jobs.log";

fn file_error(path: &Path) -> impl FnOnce(std::io::Error) -> RealtimeError + '_ {
    move |source| RealtimeError::File {
        path: path.to_path_buf(),
        source,
    }
}

/// What a restart recovered.
#[derive(Debug)]
pub struct Recovered {
    /// The service as it was.
    pub service: Service,
    /// BMP batches issued and not known to be done: redone after the restart.
    pub outstanding: Vec<BmpBatch>,
    /// Inputs replayed.
    pub inputs: u64,
    /// The time of the last one (the restarted clock never goes back before it).
    pub last: Instant,
    /// A torn last record that was cut off.
    pub torn: Option<TornTail>,
    /// How long reading and replaying took.
    pub elapsed: std::time::Duration,
}

/// The open journal.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
    /// Records written (for the status line).
    pub records: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Group commits (fdatasyncs).
    pub commits: u64,
}

impl Journal {
    /// Opens the journal in `dir` (creating the directory): replays an existing one into a
    /// service with `policy` — refusing one written under other policies — or starts a new
    /// one at `now`.
    pub fn open(
        dir: &Path,
        policy: &ServicePolicy,
        now: Instant,
    ) -> Result<(Journal, Option<Recovered>), RealtimeError> {
        std::fs::create_dir_all(dir).map_err(file_error(dir))?;
        let path = dir.join(JOURNAL);
        let text = policy.to_text();
        if !path.exists() {
            let header = Header {
                format: journal::FORMAT,
                created: now,
                policy: text,
            };
            let tmp = dir.join("journal.new");
            {
                let mut f = File::create(&tmp).map_err(file_error(&tmp))?;
                f.write_all(&journal::start(&header)).map_err(file_error(&tmp))?;
                f.sync_all().map_err(file_error(&tmp))?;
            }
            std::fs::rename(&tmp, &path).map_err(file_error(&path))?;
            sync_dir(dir);
            let file = OpenOptions::new().append(true).open(&path).map_err(file_error(&path))?;
            let records = 1;
            return Ok((
                Journal {
                    path,
                    file,
                    buf: Vec::new(),
                    records,
                    bytes: 0,
                    commits: 0,
                },
                None,
            ));
        }
        let started = std::time::Instant::now();
        let data = std::fs::read(&path).map_err(file_error(&path))?;
        let bad = |why: String| RealtimeError::State {
            path: path.clone(),
            why,
        };
        let mut reader = Reader::new(&data).map_err(|e| bad(e.to_string()))?;
        let recorded = ServicePolicy::from_text(&reader.header().policy).map_err(bad)?;
        if recorded != *policy {
            return Err(bad(format!(
                "it was written under other service policies ({}) than the scenario's ({}); keep the scenario's [policy] as it was, or start afresh with another --state directory",
                reader.header().policy,
                text
            )));
        }
        let mut service = recorded.empty_service();
        let mut outstanding: BTreeMap<BatchId, BmpBatch> = BTreeMap::new();
        let mut inputs = 0u64;
        let mut last = Instant::ZERO;
        for input in reader.by_ref() {
            let input = input.map_err(|e| bad(e.to_string()))?;
            if let Some(t) = input.time() {
                last = last.max(t);
            }
            if let ServiceInput::BmpDone { batch, .. } = &input {
                outstanding.remove(batch);
            }
            // An input that fails now failed when it was recorded too.
            let _ = service.apply(&input);
            while let Some(b) = service.poll_bmp_batch() {
                outstanding.insert(b.id, b);
            }
            while service.poll_event().is_some() {}
            inputs += 1;
        }
        let torn = reader.torn_tail();
        let good = reader.good_len();
        let records = reader.records();
        drop(data);
        let file = OpenOptions::new().write(true).open(&path).map_err(file_error(&path))?;
        if torn.is_some() {
            file.set_len(good).map_err(file_error(&path))?;
            file.sync_all().map_err(file_error(&path))?;
        }
        drop(file);
        let file = OpenOptions::new().append(true).open(&path).map_err(file_error(&path))?;
        Ok((
            Journal {
                path,
                file,
                buf: Vec::new(),
                records,
                bytes: good,
                commits: 0,
            },
            Some(Recovered {
                service,
                outstanding: outstanding.into_values().collect(),
                inputs,
                last,
                torn,
                elapsed: started.elapsed(),
            }),
        ))
    }

    /// Queues inputs for the next commit.
    pub fn append(&mut self, inputs: Vec<ServiceInput>) {
        for i in inputs {
            journal::encode(&Entry::Input(i), &mut self.buf);
            self.records += 1;
        }
    }

    /// True if inputs wait for [`Journal::commit`].
    pub fn pending(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Writes the queued inputs and waits until they are on disk.
    pub fn commit(&mut self) -> Result<(), RealtimeError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let path = self.path.clone();
        self.file.write_all(&self.buf).map_err(file_error(&path))?;
        self.file.sync_data().map_err(file_error(&path))?;
        self.bytes += self.buf.len() as u64;
        self.buf.clear();
        self.commits += 1;
        Ok(())
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Makes a rename in `dir` durable (best effort: not every file system allows it).
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// The reference's job log: `YYYY-MM-DD HH:MM:SS,mmm: message` lines in local time, in
/// `spalloc_jobs.log`, rolled over every 24 hours as the reference's `TimedRotatingFileHandler`
/// does (at the first record after the deadline, to `spalloc_jobs.log.YYYY-MM-DD` named after
/// the day the interval began).
#[derive(Debug)]
pub struct JobLogFile {
    path: PathBuf,
    file: File,
    /// When the next roll-over is due (Unix µs).
    roll_at: i64,
    buf: String,
}

const DAY_US: i64 = 86_400_000_000;

impl JobLogFile {
    /// Opens (appending) the job log in `dir`.
    pub fn open(dir: &Path, now: Instant) -> Result<JobLogFile, RealtimeError> {
        let path = dir.join(JOB_LOG);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(file_error(&path))?;
        // The first deadline counts from the existing file's modification time.
        let base = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(now.as_micros() as i64, |d| d.as_micros() as i64);
        Ok(JobLogFile {
            path,
            file,
            roll_at: base + DAY_US,
            buf: String::new(),
        })
    }

    /// Adds one message at `now`.
    pub fn write(&mut self, now: Instant, message: &str) -> Result<(), RealtimeError> {
        let t = now.as_micros() as i64;
        if t >= self.roll_at {
            self.flush()?;
            self.roll(t)?;
        }
        self.buf.push_str(&local_stamp(t));
        self.buf.push_str(": ");
        self.buf.push_str(message);
        self.buf.push('\n');
        Ok(())
    }

    /// Writes what is buffered (the job log is not fsynced: the reference does not either).
    pub fn flush(&mut self) -> Result<(), RealtimeError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let path = self.path.clone();
        self.file.write_all(self.buf.as_bytes()).map_err(file_error(&path))?;
        self.buf.clear();
        Ok(())
    }

    fn roll(&mut self, now_us: i64) -> Result<(), RealtimeError> {
        use chrono::TimeZone;
        let start = self.roll_at - DAY_US;
        let day = chrono::Local
            .timestamp_micros(start)
            .single()
            .map_or_else(|| "unknown".to_string(), |d| d.format("%Y-%m-%d").to_string());
        let rolled = self.path.with_file_name(format!("{JOB_LOG}.{day}"));
        let _ = std::fs::remove_file(&rolled);
        std::fs::rename(&self.path, &rolled).map_err(file_error(&self.path))?;
        let path = self.path.clone();
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(file_error(&path))?;
        self.roll_at = now_us + DAY_US;
        Ok(())
    }
}

/// `YYYY-MM-DD HH:MM:SS,mmm` in local time, as Python's logging writes `asctime`.
pub fn local_stamp(unix_us: i64) -> String {
    use chrono::TimeZone;
    match chrono::Local.timestamp_micros(unix_us).single() {
        Some(d) => d.format("%Y-%m-%d %H:%M:%S,%3f").to_string(),
        None => "1970-01-01 00:00:00,000".to_string(),
    }
}
