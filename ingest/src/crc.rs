//! CRC-32C (Castagnoli) of frames, several frames at a time.
//!
//! Every frame carries a CRC-32C of itself with the CRC field taken as zero (DESIGN §3), so a
//! reader pays one CRC per 40-byte frame. Through a general-purpose routine (the `crc32c`
//! crate) that costs 10–14 ns, mostly call and set-up overhead that long buffers amortise and
//! 40-byte frames cannot. The SSE4.2 `crc32` instruction has a latency of three cycles and a
//! throughput of one per cycle, so a single frame's five dependent words leave the unit idle two
//! cycles in three; this module runs the CRCs of four frames side by side instead, one word of
//! each in turn, which fills the pipeline. No crate offers a CRC over many short buffers at
//! once, hence the hand-written kernel.
//!
//! The kernel lives in [`x86`], the one place in this module allowed to contain `unsafe` (see
//! ARCHITECTURE.md): calling a function compiled for SSE4.2 is sound only after the CPU was found
//! to support it. Everywhere else, and on CPUs without SSE4.2, the portable path uses the
//! `crc32c` crate one frame at a time. The instruction is detected once per process.

use crate::frame::{CRC_RANGE, FRAME_HEADER_LEN};

/// The CRC-32C of `frame` with its CRC field taken as zero: the value DESIGN §3 stores in it.
///
/// # Panics
/// If `frame` is shorter than the fixed header; callers check the length first.
#[inline]
pub fn frame_crc(frame: &[u8]) -> u32 {
    let mut out = [0u32; 1];
    if frame.len().is_multiple_of(8) {
        frame_crcs(frame, frame.len(), &mut out);
    } else {
        portable_frame_crcs(frame, frame.len(), &mut out);
    }
    out[0]
}

/// Computes the CRC-32C (CRC field taken as zero) of each of the `crcs.len()` frames of
/// `frame_len` bytes that lie back to back at the start of `frames`.
///
/// # Panics
/// If `frame_len` is shorter than the fixed header, not a multiple of 8, or `frames` holds
/// fewer than `crcs.len()` frames.
pub fn frame_crcs(frames: &[u8], frame_len: usize, crcs: &mut [u32]) {
    assert!(
        frame_len >= FRAME_HEADER_LEN && frame_len.is_multiple_of(8),
        "frames are 32 + 8·L bytes"
    );
    let frames = &frames[..frame_len * crcs.len()];
    #[cfg(target_arch = "x86_64")]
    if let Some(sse42) = x86::Sse42::detect() {
        x86::frame_crcs(sse42, frames, frame_len, crcs);
        return;
    }
    portable_frame_crcs(frames, frame_len, crcs);
}

/// The portable path: the `crc32c` crate, one frame at a time (two calls, the header copied
/// with its CRC field zeroed).
pub fn portable_frame_crcs(frames: &[u8], frame_len: usize, crcs: &mut [u32]) {
    for (frame, crc) in frames.chunks_exact(frame_len).zip(crcs.iter_mut()) {
        let mut head = [0u8; FRAME_HEADER_LEN];
        head.copy_from_slice(&frame[..FRAME_HEADER_LEN]);
        head[CRC_RANGE].fill(0);
        *crc = crc32c::crc32c_append(crc32c::crc32c(&head), &frame[FRAME_HEADER_LEN..]);
    }
}

/// Which implementation [`frame_crcs`] uses on this machine.
pub fn backend() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if x86::Sse42::detect().is_some() {
        return "sse4.2, 4 frames interleaved";
    }
    "portable (crc32c crate)"
}

#[cfg(target_arch = "x86_64")]
pub mod x86 {
    //! The SSE4.2 kernel. The only `unsafe` here is the call into the `#[target_feature]`
    //! function, made only with an [`Sse42`] token, which exists only after detection.
    #![allow(unsafe_code)]

    use std::arch::x86_64::_mm_crc32_u64;
    use std::sync::OnceLock;

    /// Proof that the CPU has SSE4.2: only [`Sse42::detect`] makes one.
    #[derive(Debug, Clone, Copy)]
    pub struct Sse42(());

    impl Sse42 {
        /// The token if this CPU has SSE4.2 (checked once per process).
        pub fn detect() -> Option<Self> {
            static HAS: OnceLock<bool> = OnceLock::new();
            HAS.get_or_init(|| is_x86_feature_detected!("sse4.2"))
                .then_some(Self(()))
        }
    }

    /// The CRC field is bytes 20..24, the high half of the frame's third little-endian word.
    const CRC_WORD: usize = 2;
    const CRC_WORD_MASK: u64 = 0x0000_0000_FFFF_FFFF;

    /// See [`super::frame_crcs`]; `frames` holds exactly `crcs.len()` frames.
    pub fn frame_crcs(_: Sse42, frames: &[u8], frame_len: usize, crcs: &mut [u32]) {
        // SAFETY: the `Sse42` token exists only if `is_x86_feature_detected!("sse4.2")` returned
        // true, so the CPU executes the `crc32` instruction the kernel is compiled with.
        unsafe { frame_crcs_sse42(frames, frame_len, crcs) }
    }

    #[inline(always)]
    fn word(frame: &[u8], index: usize) -> u64 {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&frame[8 * index..8 * index + 8]);
        let word = u64::from_le_bytes(bytes);
        if index == CRC_WORD {
            word & CRC_WORD_MASK
        } else {
            word
        }
    }

    #[target_feature(enable = "sse4.2")]
    fn frame_crcs_sse42(frames: &[u8], frame_len: usize, crcs: &mut [u32]) {
        // The common lane counts get a fully unrolled body; the rest loop over their words.
        match frame_len {
            40 => kernel::<5>(frames, crcs),
            48 => kernel::<6>(frames, crcs),
            _ => kernel_any(frames, frame_len, crcs),
        }
    }

    #[target_feature(enable = "sse4.2")]
    fn kernel<const WORDS: usize>(frames: &[u8], crcs: &mut [u32]) {
        let frame_len = 8 * WORDS;
        let mut quads = frames.chunks_exact(4 * frame_len);
        let mut outs = crcs.chunks_exact_mut(4);
        for (quad, out) in (&mut quads).zip(&mut outs) {
            let (f0, rest) = quad.split_at(frame_len);
            let (f1, rest) = rest.split_at(frame_len);
            let (f2, f3) = rest.split_at(frame_len);
            let mut c = [u64::from(u32::MAX); 4];
            for w in 0..WORDS {
                c[0] = _mm_crc32_u64(c[0], word(f0, w));
                c[1] = _mm_crc32_u64(c[1], word(f1, w));
                c[2] = _mm_crc32_u64(c[2], word(f2, w));
                c[3] = _mm_crc32_u64(c[3], word(f3, w));
            }
            for (o, c) in out.iter_mut().zip(c) {
                // The instruction leaves the CRC in the low 32 bits.
                *o = !(c as u32);
            }
        }
        for (frame, out) in quads
            .remainder()
            .chunks_exact(frame_len)
            .zip(outs.into_remainder())
        {
            let mut c = u64::from(u32::MAX);
            for w in 0..WORDS {
                c = _mm_crc32_u64(c, word(frame, w));
            }
            *out = !(c as u32);
        }
    }

    #[target_feature(enable = "sse4.2")]
    fn kernel_any(frames: &[u8], frame_len: usize, crcs: &mut [u32]) {
        let words = frame_len / 8;
        for (frame, out) in frames.chunks_exact(frame_len).zip(crcs.iter_mut()) {
            let mut c = u64::from(u32::MAX);
            for w in 0..words {
                c = _mm_crc32_u64(c, word(frame, w));
            }
            *out = !(c as u32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A bitwise CRC-32C straight from the definition (reflected polynomial 0x82F63B78), to
    /// check both paths against something that shares no code with them.
    fn crc32c_bitwise(bytes: &[u8]) -> u32 {
        let mut crc = u32::MAX;
        for &byte in bytes {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0x82F6_3B78
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    fn zeroed_field_crc(frame: &[u8]) -> u32 {
        let mut copy = frame.to_vec();
        copy[CRC_RANGE].fill(0);
        crc32c_bitwise(&copy)
    }

    #[test]
    fn bitwise_reference_gives_the_check_value() {
        // The CRC-32C check value of "123456789" (RFC 3720, appendix B.4).
        assert_eq!(crc32c_bitwise(b"123456789"), 0xE306_9283);
    }

    proptest! {
        #[test]
        fn every_path_matches_the_definition(
            lanes in 1usize..=32,
            count in 0usize..11,
            seed in any::<u64>(),
        ) {
            let frame_len = 32 + 8 * lanes;
            let mut bytes = vec![0u8; frame_len * count];
            let mut state = seed;
            for b in &mut bytes {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                *b = (state >> 56) as u8;
            }
            let expected: Vec<u32> = bytes.chunks_exact(frame_len).map(zeroed_field_crc).collect();
            let mut got = vec![0u32; count];
            frame_crcs(&bytes, frame_len, &mut got);
            prop_assert_eq!(&got, &expected);
            let mut portable = vec![0u32; count];
            portable_frame_crcs(&bytes, frame_len, &mut portable);
            prop_assert_eq!(&portable, &expected);
            for (frame, want) in bytes.chunks_exact(frame_len).zip(&expected) {
                prop_assert_eq!(frame_crc(frame), *want);
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_hardware_kernel_runs_on_this_machine_when_it_can() {
        // The suite above exercises the SSE4.2 kernel only where the CPU has it; say which.
        let expect_hw = is_x86_feature_detected!("sse4.2");
        assert_eq!(x86::Sse42::detect().is_some(), expect_hw);
        assert_eq!(backend().starts_with("sse4.2"), expect_hw);
    }
}
