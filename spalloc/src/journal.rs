//! The journal: the service's recorded inputs ([`ServiceInput`]) as an append-only,
//! checksummed log, from which a restarted server rebuilds its state.
//!
//! Layout: the 16-byte magic `spinnbed-journal`, then records. A record is its payload's length
//! (u32, little-endian), the payload's CRC-32 (u32, little-endian) and the payload: a
//! [`postcard`] encoding of an [`Entry`]. The first record is the [`Header`].
//!
//! A crash can leave the last record half-written (a short length or payload, or bytes that do
//! not check out, followed only by zeros or nothing). [`Reader`] stops before such a tail and
//! says where it began, so the driver can cut the file there: that record was never
//! acknowledged, since replies leave only after their records are on disk. A bad record with
//! good data after it is corruption, not a torn write, and is an error.

use serde::{Deserialize, Serialize};
use spinnbed_core::service::ServiceInput;
use spinnbed_core::time::Instant;

/// The file's first bytes.
pub const MAGIC: &[u8; 16] = b"spinnbed-journal";

/// The format version written in the header.
pub const FORMAT: u32 = 1;

/// Longest record accepted (a machine description of the largest machine is far smaller).
pub const MAX_RECORD: usize = 64 * 1024 * 1024;

/// What a journal was made for: a replay must use the same service policies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// [`FORMAT`].
    pub format: u32,
    /// When the journal was started.
    pub created: Instant,
    /// The service's policies in words (packer, queue discipline, delays); a journal replays
    /// only under the same ones.
    pub policy: String,
}

/// One record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Entry {
    /// The first record.
    Header(Header),
    /// A service input.
    Input(ServiceInput),
}

/// Why a journal cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JournalError {
    /// Not a spinnbed journal.
    #[error("not a spinnbed journal (it does not start with \"spinnbed-journal\")")]
    NotAJournal,
    /// The header is missing or unreadable.
    #[error("the journal has no readable header")]
    NoHeader,
    /// Written by another version of spinnbed.
    #[error("journal format {0} is not the format this spinnbed reads ({FORMAT})")]
    Format(u32),
    /// A damaged record with good data after it.
    #[error("record {index} at byte {offset} is damaged ({why}) and is not the last: the journal is corrupt")]
    Corrupt {
        /// Record number (0 is the header).
        index: u64,
        /// Its offset in the file.
        offset: u64,
        /// What is wrong with it.
        why: String,
    },
}

/// Appends one record for `entry` to `out`.
pub fn encode(entry: &Entry, out: &mut Vec<u8>) {
    // Encoding plain data (no maps with non-string keys, no unsupported types) cannot fail.
    let payload = postcard::to_stdvec(entry).expect("journal entries always encode");
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
}

/// A new journal's first bytes: the magic and the header record.
pub fn start(header: &Header) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    encode(&Entry::Header(header.clone()), &mut out);
    out
}

/// Where a journal's good records end, if the file goes on after them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TornTail {
    /// The offset of the first byte that is not part of a good record.
    pub offset: u64,
    /// How many bytes follow.
    pub bytes: u64,
}

/// Reads a journal's records in order.
#[derive(Debug)]
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    index: u64,
    header: Header,
    torn: Option<TornTail>,
    done: bool,
}

impl<'a> Reader<'a> {
    /// Opens a journal held in memory: checks the magic and reads the header.
    pub fn new(data: &'a [u8]) -> Result<Reader<'a>, JournalError> {
        if data.len() < MAGIC.len() || &data[..MAGIC.len()] != MAGIC {
            return Err(JournalError::NotAJournal);
        }
        let mut r = Reader {
            data,
            pos: MAGIC.len(),
            index: 0,
            header: Header {
                format: 0,
                created: Instant::ZERO,
                policy: String::new(),
            },
            torn: None,
            done: false,
        };
        match r.next_entry()? {
            Some(Entry::Header(h)) => {
                if h.format != FORMAT {
                    return Err(JournalError::Format(h.format));
                }
                r.header = h;
                Ok(r)
            }
            _ => Err(JournalError::NoHeader),
        }
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The offset just past the last good record read so far.
    pub fn good_len(&self) -> u64 {
        self.pos as u64
    }

    /// After the last record: the torn tail that followed it, if any.
    pub fn torn_tail(&self) -> Option<TornTail> {
        self.torn
    }

    /// Records read so far (the header included).
    pub fn records(&self) -> u64 {
        self.index
    }

    fn next_entry(&mut self) -> Result<Option<Entry>, JournalError> {
        if self.done {
            return Ok(None);
        }
        let rest = &self.data[self.pos..];
        if rest.is_empty() {
            self.done = true;
            return Ok(None);
        }
        let bad = |why: &str, end: usize| -> Result<Option<Entry>, JournalError> {
            // A torn write leaves nothing but zeros (or nothing) after the damaged record.
            if rest.get(end..).is_none_or(|after| after.iter().all(|b| *b == 0)) {
                Ok(None)
            } else {
                Err(JournalError::Corrupt {
                    index: self.index,
                    offset: self.pos as u64,
                    why: why.to_string(),
                })
            }
        };
        let torn = |me: &mut Reader| {
            me.torn = Some(TornTail {
                offset: me.pos as u64,
                bytes: (me.data.len() - me.pos) as u64,
            });
            me.done = true;
        };
        if rest.len() < 8 {
            let r = bad("a short record header", rest.len());
            torn(self);
            return r;
        }
        let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
        if len > MAX_RECORD || 8 + len > rest.len() {
            // The length itself may be garbage: nothing after it can be trusted as a record.
            let r = bad("a record longer than the rest of the file", rest.len());
            torn(self);
            return r;
        }
        let payload = &rest[8..8 + len];
        if crc32fast::hash(payload) != crc {
            let r = bad("its checksum does not match", 8 + len);
            torn(self);
            return r;
        }
        match postcard::from_bytes::<Entry>(payload) {
            Ok(e) => {
                self.pos += 8 + len;
                self.index += 1;
                Ok(Some(e))
            }
            Err(e) => Err(JournalError::Corrupt {
                index: self.index,
                offset: self.pos as u64,
                why: format!("its checksum matches but it does not decode: {e}"),
            }),
        }
    }
}

impl Iterator for Reader<'_> {
    type Item = Result<ServiceInput, JournalError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.next_entry() {
                Ok(Some(Entry::Input(i))) => return Some(Ok(i)),
                // A second header (journals are never concatenated) is skipped.
                Ok(Some(Entry::Header(_))) => continue,
                Ok(None) => return None,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spinnbed_core::alloc::{Request, Shape};
    use spinnbed_core::sched::JobId;
    use spinnbed_core::service::NewJob;
    use spinnbed_core::time::Duration;

    fn header() -> Header {
        Header {
            format: FORMAT,
            created: Instant(5),
            policy: "packer=spalloc".into(),
        }
    }

    fn inputs() -> Vec<ServiceInput> {
        vec![
            ServiceInput::CreateJob {
                now: Instant(10),
                host: Some("10.0.0.1".into()),
                job: NewJob {
                    owner: "alice".into(),
                    keepalive: Some(Duration::from_secs(60)),
                    machine: None,
                    tags: Some(vec!["default".into()]),
                    request: Request::new(Shape::Triads { w: 2, h: 1 }),
                    estimate: None,
                    original: Some("[[2, 1], {}]".into()),
                },
            },
            ServiceInput::Touch {
                job: JobId(1),
                host: "10.0.0.2".into(),
            },
            ServiceInput::Tick {
                now: Instant(99),
                expired: vec![JobId(1)],
            },
        ]
    }

    fn journal() -> Vec<u8> {
        let mut out = start(&header());
        for i in inputs() {
            encode(&Entry::Input(i), &mut out);
        }
        out
    }

    #[test]
    fn records_read_back_in_order() {
        let data = journal();
        let mut r = Reader::new(&data).unwrap();
        assert_eq!(r.header(), &header());
        let got: Vec<ServiceInput> = r.by_ref().map(Result::unwrap).collect();
        assert_eq!(got, inputs());
        assert_eq!(r.torn_tail(), None);
        assert_eq!(r.good_len(), data.len() as u64);
    }

    #[test]
    fn a_torn_last_record_is_dropped_at_every_cut() {
        let data = journal();
        let full = Reader::new(&data).unwrap().count();
        let last_start = {
            let mut r = Reader::new(&data).unwrap();
            for _ in 0..full - 1 {
                r.next();
            }
            r.good_len() as usize
        };
        for cut in last_start + 1..data.len() {
            let mut torn = data[..cut].to_vec();
            let mut r = Reader::new(&torn).unwrap();
            let got: Vec<_> = r.by_ref().map(Result::unwrap).collect();
            assert_eq!(got.len(), full - 1, "cut at {cut}");
            assert_eq!(r.torn_tail().unwrap().offset, last_start as u64);
            // The file system may also have extended the file with zeros.
            torn.extend_from_slice(&[0; 100]);
            let got = Reader::new(&torn).unwrap().map(Result::unwrap).count();
            assert_eq!(got, full - 1);
        }
    }

    #[test]
    fn damage_before_good_records_is_corruption() {
        let mut data = journal();
        let first = {
            let r = Reader::new(&data).unwrap();
            r.good_len() as usize
        };
        data[first + 10] ^= 0xff;
        let results: Vec<_> = Reader::new(&data).unwrap().collect();
        let err = results.last().unwrap().as_ref().unwrap_err();
        assert!(matches!(err, JournalError::Corrupt { index: 1, .. }), "{err}");
        assert!(err.to_string().contains("checksum"), "{err}");
        assert_eq!(Reader::new(b"hello").unwrap_err(), JournalError::NotAJournal);
    }
}
