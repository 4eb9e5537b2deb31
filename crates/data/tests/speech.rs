//! Spoken-digit folders: clip names, listing errors, the frame mask, cutting and padding, and
//! features of a clip at another sample rate.

use ferrograd_data::speech::{
    features, list_clips, parse_clip_name, read_utterance, ClipName, FeatureKind, SpeechSet,
    SpeechSplit, Utterance,
};
use ferrograd_data::wav::Audio;
use ferrograd_data::Dataset;
use std::path::{Path, PathBuf};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ferrograd-speech-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn tone(rate: u32, seconds: f64) -> Audio {
    let n = (rate as f64 * seconds) as usize;
    Audio {
        samples: (0..n)
            .map(|i| (2.0 * std::f32::consts::PI * 440.0 * i as f32 / rate as f32).sin() * 0.5)
            .collect(),
        sample_rate: rate,
    }
}

fn write_wav(path: &Path, a: &Audio) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: a.sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for &s in &a.samples {
        w.write_sample((s * 32767.0) as i16).unwrap();
    }
    w.finalize().unwrap();
}

#[test]
fn clip_names_parse_and_bad_ones_are_refused_naming_the_file() {
    assert_eq!(
        parse_clip_name(Path::new("/x/7_theo_12.wav")).unwrap(),
        ClipName {
            digit: 7,
            speaker: "theo".into(),
            take: 12
        }
    );
    for bad in [
        "seven.wav",
        "10_theo_1.wav",
        "7_theo.wav",
        "7_theo_x.wav",
        "7__1.wav",
        "7_a_b_1.wav",
        "7_theo_1.WAV",
    ] {
        let e = parse_clip_name(Path::new(bad)).unwrap_err().to_string();
        assert!(
            e.starts_with(bad) && e.contains("{digit}_{speaker}_{take}.wav"),
            "{e}"
        );
    }
}

#[test]
fn listing_refuses_a_missing_or_empty_folder_and_bad_names() {
    let d = tmp("list");
    assert!(list_clips(&d)
        .unwrap_err()
        .to_string()
        .contains("holds no .wav files"));
    assert!(list_clips(&d.join("nowhere"))
        .unwrap_err()
        .to_string()
        .contains("nowhere"));
    write_wav(&d.join("3_ann_2.wav"), &tone(8000, 0.2));
    std::fs::write(d.join("notes.txt"), "not a clip").unwrap();
    assert_eq!(list_clips(&d).unwrap().len(), 1);
    write_wav(&d.join("three.wav"), &tone(8000, 0.2));
    assert!(list_clips(&d)
        .unwrap_err()
        .to_string()
        .contains("three.wav"));
}

#[test]
fn features_have_one_frame_per_hop_and_a_16_khz_clip_is_resampled_first() {
    let f8 = features(&tone(8000, 0.5), FeatureKind::LogMel).unwrap();
    assert_eq!(f8.len(), 4000 / 80 + 1);
    assert!(f8.iter().all(|r| r.len() == 40));
    let f16 = features(&tone(16000, 0.5), FeatureKind::LogMel).unwrap();
    assert_eq!(f16.len(), f8.len());
    let m = features(&tone(8000, 0.5), FeatureKind::Mfcc).unwrap();
    assert!(m.iter().all(|r| r.len() == 39));
    // per-clip normalisation: each band has mean 0 over the clip
    for c in 0..40 {
        let mean: f32 = f8.iter().map(|r| r[c]).sum::<f32>() / f8.len() as f32;
        assert!(mean.abs() < 1e-4, "band {c}: mean {mean}");
    }
}

#[test]
fn a_set_pads_with_a_zero_mask_and_cuts_long_clips_around_their_middle() {
    let utt = |digit: u8, frames: usize| Utterance {
        name: ClipName {
            digit,
            speaker: "ann".into(),
            take: 0,
        },
        path: PathBuf::from("x.wav"),
        features: (0..frames).map(|t| vec![t as f32; 3]).collect(),
    };
    let set = SpeechSet::new(&[utt(4, 2), utt(9, 10)], 6).unwrap();
    let (x, y) = set.batch(&[0, 1]).unwrap();
    assert_eq!(x.dims(), [2, 6, 4]);
    assert_eq!(y.to_vec::<i64>().unwrap(), [4, 9]);
    let v = x.to_vec::<f32>().unwrap();
    let row = |b: usize, t: usize| &v[(b * 6 + t) * 4..(b * 6 + t + 1) * 4];
    assert_eq!(row(0, 1), [1.0, 1.0, 1.0, 1.0]);
    assert_eq!(row(0, 2), [0.0; 4], "padding: zero features, mask 0");
    // 10 frames cut to 6: frames 2..8
    assert_eq!(row(1, 0), [2.0, 2.0, 2.0, 1.0]);
    assert_eq!(row(1, 5), [7.0, 7.0, 7.0, 1.0]);
    assert!(set.batch(&[2]).is_err());
}

#[test]
fn splits_and_clip_checks() {
    let n = |s: &str, t| ClipName {
        digit: 1,
        speaker: s.into(),
        take: t,
    };
    assert!(
        SpeechSplit::Official.is_test(&n("a", 4)) && !SpeechSplit::Official.is_test(&n("a", 5))
    );
    let s = SpeechSplit::parse("speaker:theo").unwrap();
    assert!(s.is_test(&n("theo", 30)) && !s.is_test(&n("jackson", 1)));
    assert!(SpeechSplit::parse("speaker:").is_err() && SpeechSplit::parse("random").is_err());
    let d = tmp("clip");
    let long = d.join("1_ann_0.wav");
    write_wav(&long, &tone(8000, 10.5));
    let e = read_utterance(&long, n("ann", 0), FeatureKind::LogMel)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("10.5 s long") && e.contains("1_ann_0.wav"),
        "{e}"
    );
}
