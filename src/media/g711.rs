//! G.711 μ-law and A-law (ITU-T G.711), segment search by leading zeros.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Law {
    /// PCMU, payload type 0.
    Mu,
    /// PCMA, payload type 8.
    A,
}

impl Law {
    pub fn encode(self, sample: i16) -> u8 {
        match self {
            Law::Mu => ulaw_encode(sample),
            Law::A => alaw_encode(sample),
        }
    }
    pub fn decode(self, byte: u8) -> i16 {
        match self {
            Law::Mu => ulaw_decode(byte),
            Law::A => alaw_decode(byte),
        }
    }
    /// The byte that decodes to (near) silence.
    pub fn silence(self) -> u8 {
        self.encode(0)
    }
}

const ULAW_BIAS: i32 = 0x84;

/// Rounds a 16-bit sample to `bits` bits, as sox does before G.711 coding.
fn round_to_bits(sample: i16, bits: u32) -> i32 {
    let shift = 16 - bits;
    let max = (1 << (bits - 1)) - 1;
    ((sample as i32 + (1 << (shift - 1))) >> shift).min(max)
}

/// μ-law on the 14-bit sample (G.711 is defined on 14 bits for μ-law).
pub fn ulaw_encode(sample: i16) -> u8 {
    let mut pcm = round_to_bits(sample, 14);
    let mask = if pcm < 0 {
        pcm = -pcm;
        0x7f
    } else {
        0xff
    };
    let pcm = pcm.min(8159) + (ULAW_BIAS >> 2);
    // Segment: how far the highest set bit lies above bit 5.
    let segment = (32 - (pcm as u32).leading_zeros()).saturating_sub(6) as i32;
    if segment >= 8 {
        return (0x7f ^ mask) as u8;
    }
    (((segment << 4) | ((pcm >> (segment + 1)) & 0x0f)) ^ mask) as u8
}

pub fn ulaw_decode(byte: u8) -> i16 {
    let b = !byte as i32;
    let sign = b & 0x80;
    let exponent = (b >> 4) & 0x07;
    let mantissa = b & 0x0f;
    let magnitude = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS;
    (if sign != 0 { -magnitude } else { magnitude }) as i16
}

/// A-law on the 13-bit sample.
pub fn alaw_encode(sample: i16) -> u8 {
    let mut pcm = round_to_bits(sample, 13);
    let mask = if pcm >= 0 {
        0xd5
    } else {
        pcm = -pcm - 1;
        0x55
    };
    let segment = (32 - (pcm as u32).leading_zeros()).saturating_sub(5) as i32;
    if segment >= 8 {
        return (0x7f ^ mask) as u8;
    }
    let shift = if segment < 2 { 1 } else { segment };
    (((segment << 4) | ((pcm >> shift) & 0x0f)) ^ mask) as u8
}

pub fn alaw_decode(byte: u8) -> i16 {
    let b = (byte ^ 0x55) as i32;
    let sign = b & 0x80;
    let exponent = (b >> 4) & 0x07;
    let mantissa = b & 0x0f;
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    (if sign != 0 { magnitude } else { -magnitude }) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_code_points() {
        // Reference values from the G.711 tables (and sox -e u-law / a-law).
        assert_eq!(ulaw_encode(0), 0xff);
        assert_eq!(ulaw_encode(-1), 0xff);
        assert_eq!(ulaw_encode(32767), 0x80);
        assert_eq!(ulaw_encode(-32768), 0x00);
        assert_eq!(alaw_encode(0), 0xd5);
        assert_eq!(alaw_encode(-8), 0x55);
        assert_eq!(alaw_encode(32767), 0xaa);
        assert_eq!(alaw_encode(-32768), 0x2a);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(alaw_decode(0xaa), 32256);
    }

    #[test]
    fn every_code_decodes_and_reencodes_to_itself() {
        for b in 0..=255u8 {
            assert_eq!(
                ulaw_encode(ulaw_decode(b)),
                b | if b == 0x7f { 0x80 } else { 0 },
                "ulaw {b:#x}"
            );
            assert_eq!(alaw_encode(alaw_decode(b)), b, "alaw {b:#x}");
        }
    }

    #[test]
    fn quantisation_error_is_bounded() {
        for s in (-32768..=32767).step_by(7) {
            let s = s as i16;
            for law in [Law::Mu, Law::A] {
                let back = law.decode(law.encode(s)) as i32;
                let err = (back - s as i32).abs();
                assert!(err <= (s as i32).abs() / 16 + 16, "{law:?} {s} -> {back}");
            }
        }
    }
}

#[cfg(test)]
mod sox_reference {
    use super::*;

    fn samples() -> Vec<i16> {
        let mut r = hound::WavReader::open("tests/data/sweep.wav").unwrap();
        r.samples::<i16>().map(Result::unwrap).collect()
    }

    /// `tests/data/sweep.{ul,al}` were made with `sox -D sweep.wav -t ul|al`
    /// (-D: no dither, which sox adds by default when it drops precision).
    #[test]
    fn encoding_matches_sox_byte_for_byte() {
        let pcm = samples();
        for (law, file) in [
            (Law::Mu, "tests/data/sweep.ul"),
            (Law::A, "tests/data/sweep.al"),
        ] {
            let reference = std::fs::read(file).unwrap();
            let ours: Vec<u8> = pcm.iter().map(|s| law.encode(*s)).collect();
            let differ = ours.iter().zip(&reference).filter(|(a, b)| a != b).count();
            assert_eq!(ours.len(), reference.len());
            assert_eq!(differ, 0, "{law:?}: {differ} bytes differ from sox");
        }
    }
}
