//! WAV reading: every PCM width and float, channels mixed down, and each kind of bad file
//! refused with its name. The files are written by `hound`'s own writer.

use ferrograd_data::wav::{read_wav, wav_from_bytes};
use std::io::Cursor;
use std::path::Path;

fn wav(
    spec: hound::WavSpec,
    write: impl FnOnce(&mut hound::WavWriter<&mut Cursor<Vec<u8>>>),
) -> Vec<u8> {
    let mut buf = Cursor::new(Vec::new());
    {
        let mut w = hound::WavWriter::new(&mut buf, spec).unwrap();
        write(&mut w);
        w.finalize().unwrap();
    }
    buf.into_inner()
}

fn spec(channels: u16, rate: u32, bits: u16, float: bool) -> hound::WavSpec {
    hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format: if float {
            hound::SampleFormat::Float
        } else {
            hound::SampleFormat::Int
        },
    }
}

fn read(bytes: &[u8]) -> ferrograd_data::Result<ferrograd_data::wav::Audio> {
    wav_from_bytes(bytes, Path::new("clip.wav"))
}

#[test]
fn every_pcm_width_and_float_reads_as_fractions_of_full_scale() {
    let a = read(&wav(spec(1, 8000, 8, false), |w| {
        for v in [64i8, -64, 0, -128] {
            w.write_sample(v).unwrap();
        }
    }))
    .unwrap();
    assert_eq!(
        (a.samples, a.sample_rate),
        (vec![0.5, -0.5, 0.0, -1.0], 8000)
    );
    for (bits, half) in [(16u16, 1i32 << 14), (24, 1 << 22), (32, 1 << 30)] {
        let a = read(&wav(spec(1, 44_100, bits, false), |w| {
            for v in [half, -half, -2 * half] {
                w.write_sample(v).unwrap();
            }
        }))
        .unwrap();
        assert_eq!(a.samples, vec![0.5, -0.5, -1.0], "{bits} bits");
        assert_eq!(a.sample_rate, 44_100);
    }
    let a = read(&wav(spec(1, 16_000, 32, true), |w| {
        for v in [0.25f32, -0.75] {
            w.write_sample(v).unwrap();
        }
    }))
    .unwrap();
    assert_eq!(a.samples, vec![0.25, -0.75]);
    assert!((a.seconds() - 2.0 / 16_000.0).abs() < 1e-12);
}

#[test]
fn channels_are_averaged_into_one() {
    let a = read(&wav(spec(2, 8000, 16, false), |w| {
        for v in [16384i16, -16384, 16384, 0] {
            w.write_sample(v).unwrap();
        }
    }))
    .unwrap();
    assert_eq!(a.samples, vec![0.0, 0.25]);
}

#[test]
fn bad_files_are_refused_naming_the_file() {
    let err = |bytes: &[u8]| read(bytes).unwrap_err().to_string();
    let good = wav(spec(1, 8000, 16, false), |w| {
        for v in 0..100i16 {
            w.write_sample(v).unwrap();
        }
    });
    let e = err(b"ID3\x03not a wav at all");
    assert!(
        e.contains("clip.wav") && e.contains("not a WAV file"),
        "{e}"
    );
    let e = err(&good[..good.len() - 51]);
    assert!(e.contains("clip.wav") && e.contains("truncated"), "{e}");
    let empty = wav(spec(1, 8000, 16, false), |_| {});
    let e = err(&empty);
    assert!(e.contains("no samples"), "{e}");
    // 64-bit float: a float header with its width patched (offset 34 of the fmt chunk)
    let mut f64_header = wav(spec(1, 8000, 32, true), |w| w.write_sample(0.5f32).unwrap());
    let at = f64_header.windows(4).position(|w| w == b"fmt ").unwrap() + 8 + 14;
    f64_header[at..at + 2].copy_from_slice(&64u16.to_le_bytes());
    let e = err(&f64_header);
    assert!(
        e.contains("clip.wav") && (e.contains("64") || e.contains("not a readable")),
        "{e}"
    );
    let e = read_wav(std::env::temp_dir()).unwrap_err().to_string();
    assert!(e.contains("directory"), "{e}");
}

/// Resampling keeps a tone below both Nyquist frequencies (away from the ends, with the length
/// the ratio gives) and removes one above the new one.
#[test]
fn resampling_keeps_what_fits_and_removes_what_does_not() {
    use ferrograd_data::wav::{resample, Audio};
    use std::f64::consts::PI;
    let tone = |hz: f64, rate: u32, n: usize| -> Vec<f32> {
        (0..n)
            .map(|i| (0.5 * (2.0 * PI * hz * i as f64 / rate as f64).sin()) as f32)
            .collect()
    };
    for (from, to) in [(44_100u32, 8_000u32), (8_000, 16_000), (16_000, 8_000)] {
        let n = from as usize / 2;
        let a = Audio {
            samples: tone(440.0, from, n),
            sample_rate: from,
        };
        let b = resample(&a, to).unwrap();
        assert_eq!(b.sample_rate, to);
        let want_len = (n as f64 * to as f64 / from as f64).round() as usize;
        assert!(
            b.samples.len().abs_diff(want_len) <= 1,
            "{from} -> {to}: {} samples",
            b.samples.len()
        );
        let want = tone(440.0, to, b.samples.len());
        let edge = to as usize / 20;
        let worst = b.samples[edge..b.samples.len() - edge]
            .iter()
            .zip(&want[edge..])
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        // integer ratios come out exact; 441/80 leaves rubato's fractional delay of under a
        // tenth of an output sample (0.016 of full scale here, 0.0016 once shifted by 0.1)
        let bound = if from % to == 0 || to % from == 0 {
            1e-5
        } else {
            0.02
        };
        assert!(worst < bound, "{from} -> {to}: off by {worst}");
    }
    // 6 kHz is above 8 kHz's Nyquist frequency: it must not alias into the output
    let a = Audio {
        samples: tone(6000.0, 16_000, 8000),
        sample_rate: 16_000,
    };
    let b = resample(&a, 8_000).unwrap();
    let rms = (b.samples[400..3600].iter().map(|v| v * v).sum::<f32>() / 3200.0).sqrt();
    assert!(rms < 1e-3, "an aliased 6 kHz tone left rms {rms}");
}
