//! Features against librosa 0.11: the power spectrogram, Slaney and HTK mel spectrograms,
//! decibels, MFCCs and their deltas of two committed WAVs (8 kHz 16-bit, 16 kHz 24-bit), from
//! `tests/fixtures/gen_librosa_features.py`, to 1e-4 relative (of each matrix's largest value
//! for the spectra, which span many decades).

use ferrograd_data::audio_features::{
    dct2_ortho, deltas, mel_filterbank, mel_spectrogram, normalize_utterance, power_spectrogram,
    power_to_db, Framing,
};
use ferrograd_data::wav::read_wav;
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn matrix(v: &serde_json::Value) -> Vec<Vec<f64>> {
    serde_json::from_value(v.clone()).unwrap()
}

/// The largest difference relative to the largest magnitude of `want`.
fn worst(got: &[Vec<f64>], want: &[Vec<f64>]) -> f64 {
    assert_eq!(got.len(), want.len(), "frames");
    let scale = want.iter().flatten().fold(0f64, |a, b| a.max(b.abs()));
    got.iter()
        .zip(want)
        .flat_map(|(g, w)| {
            assert_eq!(g.len(), w.len(), "row length");
            g.iter().zip(w).map(|(a, b)| (a - b).abs())
        })
        .fold(0f64, f64::max)
        / scale
}

#[test]
fn features_match_librosa() {
    let text = std::fs::read_to_string(fixtures().join("librosa_features.json")).unwrap();
    let fx: serde_json::Value = serde_json::from_str(&text).unwrap();
    let u = |k: &str| fx[k].as_u64().unwrap() as usize;
    let (n_fft, hop, n_mels, n_mfcc) = (u("n_fft"), u("hop"), u("n_mels"), u("n_mfcc"));
    for clip in fx["clips"].as_array().unwrap() {
        let name = clip["file"].as_str().unwrap();
        let audio = read_wav(fixtures().join("audio").join(name)).unwrap();
        assert_eq!(
            audio.sample_rate as u64,
            clip["sample_rate"].as_u64().unwrap()
        );
        let framing = Framing {
            n_fft,
            hop,
            center: true,
        };
        let power = power_spectrogram(&audio.samples, framing).unwrap();
        let e = worst(&power, &matrix(&clip["power"]));
        assert!(e < 1e-4, "{name}: power spectrogram off by {e:.2e}");
        println!("{name}: power {e:.1e}");
        for (key, htk) in [("slaney", false), ("htk", true)] {
            let sr = audio.sample_rate;
            let bank = mel_filterbank(sr, n_fft, n_mels, (0.0, sr as f64 / 2.0), htk).unwrap();
            let mel = mel_spectrogram(&power, &bank);
            let e = worst(&mel, &matrix(&clip[key]["mel"]));
            assert!(e < 1e-4, "{name} {key}: mel off by {e:.2e}");
            let db = power_to_db(&mel, Some(80.0));
            let e = worst(&db, &matrix(&clip[key]["db"]));
            assert!(e < 1e-4, "{name} {key}: dB off by {e:.2e}");
            let mfcc = dct2_ortho(&db, n_mfcc);
            let e = worst(&mfcc, &matrix(&clip[key]["mfcc"]));
            assert!(e < 1e-4, "{name} {key}: MFCC off by {e:.2e}");
            println!("{name} {key}: MFCC {e:.1e}");
            let d = deltas(&mfcc, 9).unwrap();
            let e = worst(&d, &matrix(&clip[key]["delta"]));
            assert!(e < 1e-4, "{name} {key}: deltas off by {e:.2e}");
        }
    }
}

#[test]
fn utterance_normalisation_gives_zero_mean_and_unit_deviation() {
    let mut x: Vec<Vec<f64>> = (0..50)
        .map(|t| vec![t as f64, (t as f64 * 0.3).sin() * 5.0 + 2.0, 7.0])
        .collect();
    normalize_utterance(&mut x);
    for c in 0..3 {
        let mean = x.iter().map(|r| r[c]).sum::<f64>() / 50.0;
        let var = x.iter().map(|r| (r[c] - mean).powi(2)).sum::<f64>() / 50.0;
        assert!(mean.abs() < 1e-12, "column {c}: mean {mean}");
        let want = if c == 2 { 0.0 } else { 1.0 };
        assert!((var - want).abs() < 1e-12, "column {c}: variance {var}");
    }
    assert!(deltas(&x[..5], 9).is_err());
}
