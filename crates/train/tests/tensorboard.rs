//! Our event files against one written by TensorBoard's own writer
//! (`tests/fixtures/gen_tensorboard.py`, tensorboard 2.21.0): the same scalars give the same
//! records, byte for byte, and both files read back to the same events.

use ferrograd_train::tensorboard::{
    decode_event, frame_record, read_events, Event, EventKind, EventWriter,
};
use std::path::Path;

/// The scalars the Python script wrote: (tag, step, value, wall time).
const SCALARS: [(&str, i64, f32, f64); 7] = [
    ("train/loss", 1, 2.3125, 1700000001.25),
    ("train/lr", 1, 0.1, 1700000001.25),
    ("train/loss", 100, 0.3359, 1700000002.5),
    ("train/loss", 200, -0.0, 1700000003.75),
    ("val/accuracy", 938, 0.9676, 1700000004.0),
    ("val/loss", 938, 1e-30, 1700000004.0),
    ("train/loss", 4294967296, 3.4e38, 1700000005.0),
];

fn reference() -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/tensorboard/events.out.tfevents.reference");
    std::fs::read(p).expect("the committed reference event file")
}

/// Splits a file into its records' data, checking nothing (the reader checks).
fn records(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let n = u64::from_le_bytes(bytes[pos..pos + 8].try_into().unwrap()) as usize;
        out.push(&bytes[pos..pos + 12 + n + 4]);
        pos += 12 + n + 4;
    }
    out
}

#[test]
fn scalar_records_are_byte_identical_to_tensorboards() {
    let bytes = reference();
    let recs = records(&bytes);
    assert_eq!(recs.len(), 1 + SCALARS.len());
    for (rec, (tag, step, value, wall)) in recs[1..].iter().zip(SCALARS) {
        let ours = frame_record(
            &Event {
                wall_time: wall,
                step,
                kind: EventKind::Scalars(vec![(tag.to_string(), value)]),
            }
            .encode(),
        );
        assert_eq!(&ours[..], *rec, "{tag} at step {step}");
    }
}

#[test]
fn the_reference_file_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("ref.tfevents");
    std::fs::write(&p, reference()).unwrap();
    let events = read_events(&p).unwrap();
    assert_eq!(
        events[0].kind,
        EventKind::FileVersion("brain.Event:2".into())
    );
    assert_eq!(events[0].wall_time, 1700000000.5);
    for (e, (tag, step, value, wall)) in events[1..].iter().zip(SCALARS) {
        assert_eq!((e.step, e.wall_time), (step, wall));
        match &e.kind {
            EventKind::Scalars(v) => {
                assert_eq!(v.len(), 1);
                assert_eq!(v[0].0, tag);
                assert_eq!(v[0].1.to_bits(), value.to_bits(), "{tag}");
            }
            k => panic!("{k:?}"),
        }
    }
}

#[test]
fn our_files_read_back_and_corruption_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = EventWriter::create_at(dir.path(), 1700000000.5).unwrap();
    for (tag, step, value, _) in SCALARS {
        w.scalar(tag, step, value as f64).unwrap();
    }
    let path = w.path().to_path_buf();
    drop(w);
    assert!(path
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("events.out.tfevents.1700000000."));
    let events = read_events(&path).unwrap();
    assert_eq!(events.len(), 1 + SCALARS.len());
    assert_eq!(
        events[0].kind,
        EventKind::FileVersion("brain.Event:2".into())
    );
    for (e, (tag, step, value, _)) in events[1..].iter().zip(SCALARS) {
        assert_eq!(e.step, step);
        assert_eq!(e.kind, EventKind::Scalars(vec![(tag.to_string(), value)]));
    }
    // the first event differs from TensorBoard's only in the writer's name
    let ours = std::fs::read(&path).unwrap();
    let theirs = reference();
    let (a, b) = (records(&ours)[0], records(&theirs)[0]);
    let (ea, eb) = (
        decode_event(&a[12..a.len() - 4]).unwrap(),
        decode_event(&b[12..b.len() - 4]).unwrap(),
    );
    assert_eq!(ea, eb);
    // a flipped bit in the data, and a cut file, are errors naming the record
    let mut bad = ours.clone();
    let n = bad.len();
    bad[n - 6] ^= 1;
    std::fs::write(&path, &bad).unwrap();
    let e = read_events(&path).unwrap_err().to_string();
    assert!(e.contains("data CRC mismatch"), "{e}");
    std::fs::write(&path, &ours[..n - 3]).unwrap();
    let e = read_events(&path).unwrap_err().to_string();
    assert!(e.contains("truncated"), "{e}");
}
