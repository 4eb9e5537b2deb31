//! TensorBoard event files, written and read without TensorFlow.
//!
//! A file is a sequence of TFRecords: `u64` length (little-endian), the masked CRC-32C of those
//! eight bytes, the data, and the masked CRC-32C of the data, where
//! `masked(c) = ((c >> 15) | (c << 17)) + 0xa282ead8`. Each record's data is an `Event` protocol
//! buffer: `wall_time` (field 1, double), `step` (2, int64), `file_version` (3, string, only in
//! the first event: `brain.Event:2`), `summary` (5, a `Summary` of repeated `Value`s: `tag` (1,
//! string) and `simple_value` (2, float)), `source_metadata` (10). That is the subset scalars
//! need; it is encoded here by hand, proto3's way (a field equal to its default is not written),
//! so that a scalar event is byte for byte what TensorBoard's own writer produces (tested against
//! `tests/fixtures/tensorboard/`, written by `tests/fixtures/gen_tensorboard.py`).

use crate::error::{Result, TrainError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

const MASK_DELTA: u32 = 0xa282_ead8;

/// The CRC-32C of `data`, masked as TFRecord stores it.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    let c = crc32c::crc32c(data);
    c.rotate_right(15).wrapping_add(MASK_DELTA)
}

/// One record: length, its masked CRC, the data, its masked CRC.
pub fn frame_record(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc32c(data).to_le_bytes());
    out
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_key(out: &mut Vec<u8>, field: u32, wire: u8) {
    put_varint(out, (u64::from(field) << 3) | u64::from(wire));
}

fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_key(out, field, 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// What an event holds, as far as scalars go.
#[derive(Clone, Debug, PartialEq)]
pub enum EventKind {
    /// The first event of a file.
    FileVersion(String),
    /// Scalars, each a tag and a value.
    Scalars(Vec<(String, f32)>),
}

/// One event.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub wall_time: f64,
    pub step: i64,
    pub kind: EventKind,
}

impl Event {
    /// The protocol-buffer encoding (fields in number order, defaults left out).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.wall_time.to_bits() != 0 {
            put_key(&mut out, 1, 1);
            out.extend_from_slice(&self.wall_time.to_le_bytes());
        }
        if self.step != 0 {
            put_key(&mut out, 2, 0);
            put_varint(&mut out, self.step as u64);
        }
        match &self.kind {
            EventKind::FileVersion(v) => {
                put_bytes(&mut out, 3, v.as_bytes());
                let mut meta = Vec::new();
                put_bytes(&mut meta, 1, b"ferrograd");
                put_bytes(&mut out, 10, &meta);
            }
            EventKind::Scalars(values) => {
                let mut summary = Vec::new();
                for (tag, v) in values {
                    let mut value = Vec::new();
                    if !tag.is_empty() {
                        put_bytes(&mut value, 1, tag.as_bytes());
                    }
                    if v.to_bits() != 0 {
                        put_key(&mut value, 2, 5);
                        value.extend_from_slice(&v.to_le_bytes());
                    }
                    put_bytes(&mut summary, 1, &value);
                }
                put_bytes(&mut out, 5, &summary);
            }
        }
        out
    }
}

/// A reader of the protocol-buffer wire format, enough to walk the messages above and skip
/// everything else.
struct Wire<'a> {
    buf: &'a [u8],
    pos: usize,
}

enum Field<'a> {
    Varint(u64),
    Fixed64([u8; 8]),
    Fixed32([u8; 4]),
    Bytes(&'a [u8]),
}

impl<'a> Wire<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Wire { buf, pos: 0 }
    }
    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos)?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Some(v);
            }
        }
        None
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    /// The next field, or None at the end; Err on malformed input.
    fn next(&mut self) -> std::result::Result<Option<(u64, Field<'a>)>, &'static str> {
        if self.pos == self.buf.len() {
            return Ok(None);
        }
        let key = self.varint().ok_or("truncated field key")?;
        let field = match key & 7 {
            0 => Field::Varint(self.varint().ok_or("truncated varint")?),
            1 => Field::Fixed64(
                self.take(8)
                    .ok_or("truncated fixed64")?
                    .try_into()
                    .map_err(|_| "bad fixed64")?,
            ),
            2 => {
                let n = self.varint().ok_or("truncated length")?;
                let n = usize::try_from(n).map_err(|_| "length too large")?;
                Field::Bytes(self.take(n).ok_or("length past the end of the message")?)
            }
            5 => Field::Fixed32(
                self.take(4)
                    .ok_or("truncated fixed32")?
                    .try_into()
                    .map_err(|_| "bad fixed32")?,
            ),
            _ => return Err("unsupported wire type"),
        };
        Ok(Some((key >> 3, field)))
    }
}

/// Decodes an `Event`'s scalars (other summary kinds are skipped).
pub fn decode_event(data: &[u8]) -> std::result::Result<Event, &'static str> {
    let mut w = Wire::new(data);
    let mut e = Event {
        wall_time: 0.0,
        step: 0,
        kind: EventKind::Scalars(Vec::new()),
    };
    while let Some((num, f)) = w.next()? {
        match (num, f) {
            (1, Field::Fixed64(b)) => e.wall_time = f64::from_le_bytes(b),
            (2, Field::Varint(v)) => e.step = v as i64,
            (3, Field::Bytes(b)) => {
                e.kind = EventKind::FileVersion(String::from_utf8_lossy(b).into_owned())
            }
            (5, Field::Bytes(b)) => {
                let mut values = Vec::new();
                let mut s = Wire::new(b);
                while let Some((num, f)) = s.next()? {
                    if let (1, Field::Bytes(vb)) = (num, f) {
                        let (mut tag, mut value) = (String::new(), None);
                        let mut v = Wire::new(vb);
                        while let Some((num, f)) = v.next()? {
                            match (num, f) {
                                (1, Field::Bytes(t)) => {
                                    tag = String::from_utf8_lossy(t).into_owned()
                                }
                                (2, Field::Fixed32(x)) => value = Some(f32::from_le_bytes(x)),
                                _ => {}
                            }
                        }
                        // a Value without simple_value is another kind of summary (or 0.0)
                        values.push((tag, value.unwrap_or(0.0)));
                    }
                }
                e.kind = EventKind::Scalars(values);
            }
            _ => {}
        }
    }
    Ok(e)
}

/// Reads every event of an event file, checking both CRCs of every record.
pub fn read_events(path: &Path) -> Result<Vec<Event>> {
    let bytes =
        std::fs::read(path).map_err(|e| TrainError::file(path, format!("cannot read: {e}")))?;
    let bad =
        |at: usize, what: &str| TrainError::file(path, format!("record at byte {at}: {what}"));
    let mut events = Vec::new();
    let mut pos = 0usize;
    while pos < bytes.len() {
        let header = bytes
            .get(pos..pos + 12)
            .ok_or_else(|| bad(pos, "truncated header"))?;
        let (len, crc) = header.split_at(8);
        if masked_crc32c(len) != u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]) {
            return Err(bad(pos, "length CRC mismatch"));
        }
        let n = u64::from_le_bytes(len.try_into().map_err(|_| bad(pos, "bad length"))?);
        let n = usize::try_from(n).map_err(|_| bad(pos, "length too large"))?;
        let start = pos + 12;
        let end = start
            .checked_add(n)
            .filter(|&e| e + 4 <= bytes.len())
            .ok_or_else(|| bad(pos, "truncated data"))?;
        let data = &bytes[start..end];
        let c = &bytes[end..end + 4];
        if masked_crc32c(data) != u32::from_le_bytes([c[0], c[1], c[2], c[3]]) {
            return Err(bad(pos, "data CRC mismatch"));
        }
        events.push(decode_event(data).map_err(|m| bad(pos, m))?);
        pos = end + 4;
    }
    Ok(events)
}

/// Seconds since the Unix epoch, as TensorBoard's `wall_time`.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Appends events to `events.out.tfevents.{time}.{host}.{pid}.ferrograd` in a directory, flushing
/// after every write so that a running TensorBoard sees each point as it comes.
pub struct EventWriter {
    path: PathBuf,
    file: std::fs::File,
}

impl EventWriter {
    /// Creates the directory if needed and a new event file in it (never an existing one).
    pub fn create(dir: &Path) -> Result<EventWriter> {
        Self::create_at(dir, now())
    }

    /// As [`EventWriter::create`], with the first event's wall time given.
    pub fn create_at(dir: &Path, wall_time: f64) -> Result<EventWriter> {
        std::fs::create_dir_all(dir)
            .map_err(|e| TrainError::file(dir, format!("cannot create the directory: {e}")))?;
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        let path = dir.join(format!(
            "events.out.tfevents.{:010}.{host}.{}.ferrograd",
            wall_time as u64,
            std::process::id()
        ));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| TrainError::file(&path, format!("cannot create: {e}")))?;
        let mut w = EventWriter { path, file };
        w.write(&Event {
            wall_time,
            step: 0,
            kind: EventKind::FileVersion("brain.Event:2".into()),
        })?;
        Ok(w)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn write(&mut self, e: &Event) -> Result<()> {
        let rec = frame_record(&e.encode());
        self.file
            .write_all(&rec)
            .and_then(|()| self.file.flush())
            .map_err(|err| TrainError::file(&self.path, format!("cannot write: {err}")))
    }

    /// One scalar at `step`, stamped with the current time.
    pub fn scalar(&mut self, tag: &str, step: i64, value: f64) -> Result<()> {
        self.write(&Event {
            wall_time: now(),
            step,
            kind: EventKind::Scalars(vec![(tag.to_string(), value as f32)]),
        })
    }
}
