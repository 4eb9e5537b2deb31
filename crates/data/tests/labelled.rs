//! Labelled text files: JSON lines (gzipped or not) and CSV with quoted multi-line fields and
//! bytes that are not UTF-8; clear errors for missing fields and single-class files.

use ferrograd_data::{read_labelled, SubwordTokenizer};
use std::io::Write;
use std::path::PathBuf;

fn tmp(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ferrograd-labelled-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn fields(f: &[&str]) -> Vec<String> {
    f.iter().map(|s| s.to_string()).collect()
}

#[test]
fn jsonl_gz_with_joined_fields_and_numeric_labels() {
    let lines = "{\"subject\":\"Win money\",\"body\":\"click here\",\"label\":1}\n\n{\"subject\":\"Re: lunch\",\"body\":\"at noon\",\"label\":0}\n";
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(lines.as_bytes()).unwrap();
    let p = tmp("mail.jsonl.gz", &gz.finish().unwrap());
    let d = read_labelled(&p, &fields(&["subject", "body"]), "label").unwrap();
    assert_eq!(d.texts, ["Win money\nclick here", "Re: lunch\nat noon"]);
    assert_eq!(d.classes, ["0", "1"]);
    assert_eq!(d.labels, [1, 0]);
    assert_eq!(d.class_counts(), [1, 1]);

    let e = read_labelled(&p, &fields(&["text"]), "label")
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 1") && e.contains("\"text\""), "{e}");
    let p = tmp("bad.jsonl", b"{\"text\": \"a\", \"label\": 1}\nnot json\n");
    let e = read_labelled(&p, &fields(&["text"]), "label")
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 2") && e.contains("not JSON"), "{e}");
}

#[test]
fn csv_with_quotes_newlines_and_latin1() {
    let mut bytes =
        b"sentiment,confidence,text\r\nnegative,0.7,\"no, thank you\nreally\"\npositive,0.9,caf"
            .to_vec();
    bytes.push(0xe9); // Latin-1 e-acute: not UTF-8
    bytes.extend_from_slice(b" is great\nneutral,0.5,ok\n");
    let p = tmp("tweets.csv", &bytes);
    let d = read_labelled(&p, &fields(&["text"]), "sentiment").unwrap();
    assert_eq!(d.len(), 3);
    assert_eq!(d.texts[0], "no, thank you\nreally");
    assert_eq!(d.texts[1], "caf\u{fffd} is great");
    assert_eq!(d.classes, ["negative", "neutral", "positive"]);
    assert_eq!(d.labels, [0, 2, 1]);
    let e = read_labelled(&p, &fields(&["body"]), "sentiment")
        .unwrap_err()
        .to_string();
    assert!(e.contains("no column \"body\""), "{e}");
}

#[test]
fn split_is_seeded_and_single_class_files_are_refused() {
    let mut s = String::from("text,label\n");
    for i in 0..100 {
        s.push_str(&format!("t{i},{}\n", i % 3));
    }
    let p = tmp("many.csv", s.as_bytes());
    let d = read_labelled(&p, &fields(&["text"]), "label").unwrap();
    let (a, b) = d.split(0.2, 7).unwrap();
    let (a2, b2) = d.split(0.2, 7).unwrap();
    assert_eq!((a.len(), b.len()), (80, 20));
    assert_eq!((a.texts.clone(), b.texts.clone()), (a2.texts, b2.texts));
    let mut all: Vec<String> = a.texts.iter().chain(&b.texts).cloned().collect();
    all.sort();
    all.dedup();
    assert_eq!(
        all.len(),
        100,
        "train and held-out are disjoint and cover everything"
    );
    assert!(d.split(0.0, 1).is_err() && d.split(1.0, 1).is_err());

    let p = tmp("one.csv", b"text,label\na,x\nb,x\n");
    let e = read_labelled(&p, &fields(&["text"]), "label")
        .unwrap_err()
        .to_string();
    assert!(e.contains("single value"), "{e}");
}

#[test]
fn a_broken_tokenizer_file_is_an_error() {
    let p = tmp("tokenizer.json", b"{ not a tokenizer");
    let e = SubwordTokenizer::from_file(&p, 128)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("tokenizer.json"), "{e}");
    assert!(SubwordTokenizer::from_file(&p, 1).is_err());
}
