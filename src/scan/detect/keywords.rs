//! The keyword prefilter: every occurrence of every rule keyword, ASCII case
//! insensitive, in one pass over the file.
//!
//! An Aho-Corasick DFA over ~320 keywords that start with almost every
//! letter leaves its start state on nearly every byte, and each step is a
//! load (from a table too big for L1) that depends on the one before: it was
//! a fifth of a cold scan. Here a byte costs a handful of instructions with
//! no chain between positions: the low five bits of the next three bytes
//! (which fold ASCII case: `A` and `a` share them) index a 4 KiB bitset of
//! the keywords' first three bytes. The few positions that pass (a few
//! percent in code) look the fourth byte up in a second bitset, and what is
//! left is compared with the keywords that share the first four bytes.

/// Bits per byte in a fingerprint: the low five (case-folded for letters).
const SYM: u32 = 5;

#[inline(always)]
fn sym(b: u8) -> u32 {
    u32::from(b) & 31
}

/// A keyword's exact key: its first `min(len, 4)` bytes, lower-cased,
/// big-endian, tagged with how many bytes that is.
fn key(tag: u32, gram: u32) -> u64 {
    (u64::from(tag) << 32) | u64::from(gram)
}

/// Words of a bitset of three-symbol fingerprints.
const TRI_WORDS: usize = 1 << (3 * SYM - 6);

/// A bitset of `1 << bits` bits.
#[derive(Debug, Clone)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(bits: u32) -> Bits {
        Bits(vec![0; 1 << (bits - 6)])
    }
    fn insert(&mut self, i: u32) {
        self.0[(i >> 6) as usize] |= 1 << (i & 63);
    }
    #[inline(always)]
    fn contains(&self, i: u32) -> bool {
        self.0
            .get((i >> 6) as usize)
            .is_some_and(|w| w & (1 << (i & 63)) != 0)
    }
}

/// The keywords and their fingerprints.
#[derive(Debug, Clone)]
pub struct Keywords {
    /// The keywords, lower case.
    patterns: Vec<Vec<u8>>,
    /// Symbols of the first three bytes of every keyword (all 32 values for
    /// the bytes a shorter keyword does not have).
    tri: Bits,
    /// For the search at every other position: `tri`, plus the symbols of
    /// the second to fourth bytes (all 32 values past the end of a
    /// three-byte keyword). Empty when a keyword is shorter than three bytes.
    tri2: Bits,
    /// Symbols of the first four bytes of keywords of four bytes or more.
    quad: Bits,
    /// The `tri` fingerprints of keywords shorter than four bytes.
    short: Bits,
    /// (exact key, pattern), sorted: what to compare at a fingerprint hit.
    by_key: Vec<(u64, u32)>,
    /// Which key lengths (1..=4) some keyword has.
    lens: [bool; 5],
    /// A keyword is shorter than three bytes: every position is looked at.
    stride1: bool,
}

impl Keywords {
    /// The set of `patterns` (matched ASCII case-insensitively; empty ones
    /// never match).
    pub fn new(patterns: &[Vec<u8>]) -> Keywords {
        let mut k = Keywords {
            patterns: patterns.iter().map(|p| p.to_ascii_lowercase()).collect(),
            tri: Bits::new(3 * SYM),
            tri2: Bits::new(3 * SYM),
            quad: Bits::new(4 * SYM),
            short: Bits::new(3 * SYM),
            by_key: Vec::with_capacity(patterns.len()),
            lens: [false; 5],
            stride1: false,
        };
        for (i, p) in k.patterns.iter().enumerate() {
            if p.is_empty() {
                continue;
            }
            let tag = p.len().min(4);
            let gram = p[..tag].iter().fold(0u32, |g, &b| (g << 8) | u32::from(b));
            k.by_key.push((key(tag as u32, gram), i as u32));
            k.lens[tag] = true;
            let head = p[..p.len().min(3)]
                .iter()
                .fold(0u32, |g, &b| (g << SYM) | sym(b));
            // Every completion of a key shorter than three bytes.
            let free = 3 - p.len().min(3) as u32;
            for tail in 0..1u32 << (SYM * free) {
                let t = (head << (SYM * free)) | tail;
                k.tri.insert(t);
                k.tri2.insert(t);
                if p.len() < 4 {
                    k.short.insert(t);
                }
            }
            if p.len() >= 3 {
                // From the second byte: up to three bytes, then any symbol.
                let mid = p[1..p.len().min(4)]
                    .iter()
                    .fold(0u32, |g, &b| (g << SYM) | sym(b));
                let free = 4 - p.len().min(4) as u32;
                for tail in 0..1u32 << (SYM * free) {
                    k.tri2.insert((mid << (SYM * free)) | tail);
                }
            } else {
                k.stride1 = true;
            }
            if p.len() >= 4 {
                k.quad.insert((head << SYM) | sym(p[3]));
            }
        }
        k.by_key.sort_unstable();
        k
    }

    /// Every occurrence of every keyword in `hay`: `f(start, pattern)`,
    /// starts in ascending order.
    pub fn for_each(&self, hay: &[u8], mut f: impl FnMut(usize, usize)) {
        if !self.stride1 {
            return self.for_each_stride2(hay, f);
        }
        // Each position's fingerprint is computed from its own bytes (no
        // chain from one position to the next, so the CPU overlaps them).
        for (s, t) in hay.windows(3).enumerate() {
            let w = (sym(t[0]) << (2 * SYM)) | (sym(t[1]) << SYM) | sym(t[2]);
            if self.tri.contains(w) {
                self.candidate(hay, s, w, &mut f);
            }
        }
        // The last two starts (fewer for a short hay): NUL past the end (no
        // keyword holds one).
        for s in hay.len().saturating_sub(2)..hay.len() {
            let at = |i: usize| hay.get(s + i).map_or(0, |&b| sym(b));
            let w = (at(0) << (2 * SYM)) | (at(1) << SYM) | at(2);
            if self.tri.contains(w) {
                self.candidate(hay, s, w, &mut f);
            }
        }
    }

    /// `for_each` when every keyword has three bytes or more: only every
    /// other position is looked at. A keyword starting at an even position
    /// has its first three bytes there, one starting at an odd position its
    /// second to fourth bytes at the next (`tri2` holds both), so a hit at
    /// `p` is a candidate at `p - 1` and at `p`.
    fn for_each_stride2(&self, hay: &[u8], mut f: impl FnMut(usize, usize)) {
        let at = |i: usize| hay.get(i).map_or(0, |&b| sym(b));
        let body = hay.len().saturating_sub(2) & !1;
        // Two samples (four bytes) a step, read through a fixed-size window
        // and a fixed-size table: the loop has no bounds checks, which were
        // most of its cost (0.66 s to 0.26 s on the bench corpus, one
        // thread). Longer steps (8, 16 samples behind one branch) were slower.
        let mut start = 0;
        if let Ok(words) = <&[u64; TRI_WORDS]>::try_from(self.tri2.0.as_slice()) {
            let test = |a: u8, b: u8, c: u8| {
                let w = (sym(a) << (2 * SYM)) | (sym(b) << SYM) | sym(c);
                (words[(w >> 6) as usize & (TRI_WORDS - 1)] >> (w & 63)) & 1
            };
            while start + 6 <= hay.len() && start + 4 <= body {
                let blk: &[u8; 6] = match hay[start..start + 6].try_into() {
                    Ok(b) => b,
                    Err(_) => break,
                };
                let mut any = 0;
                for k in 0..2 {
                    any |= test(blk[2 * k], blk[2 * k + 1], blk[2 * k + 2]);
                }
                if any != 0 {
                    for k in 0..2 {
                        if test(blk[2 * k], blk[2 * k + 1], blk[2 * k + 2]) != 0 {
                            self.pair(hay, start + 2 * k, &mut f);
                        }
                    }
                }
                start += 4;
            }
        }
        for p in (start..body).step_by(2) {
            let w = (sym(hay[p]) << (2 * SYM)) | (sym(hay[p + 1]) << SYM) | sym(hay[p + 2]);
            if self.tri2.contains(w) {
                self.pair(hay, p, &mut f);
            }
        }
        // The last samples (fewer for a short hay): NUL past the end.
        for p in (body..hay.len() + 1).step_by(2) {
            let w = (at(p) << (2 * SYM)) | (at(p + 1) << SYM) | at(p + 2);
            if self.tri2.contains(w) {
                self.pair(hay, p, &mut f);
            }
        }
    }

    /// A `tri2` hit at `p`: candidates at `p - 1` and `p`.
    #[inline(always)]
    fn pair(&self, hay: &[u8], p: usize, f: &mut impl FnMut(usize, usize)) {
        let at = |i: usize| hay.get(i).map_or(0, |&b| sym(b));
        for s in p.saturating_sub(1)..(p + 1).min(hay.len()) {
            let w = (at(s) << (2 * SYM)) | (at(s + 1) << SYM) | at(s + 2);
            self.candidate(hay, s, w, f);
        }
    }

    /// The first three bytes from `s` may start a keyword: the fourth
    /// byte's fingerprint, then the keywords themselves.
    #[inline(always)]
    fn candidate(&self, hay: &[u8], s: usize, w: u32, f: &mut impl FnMut(usize, usize)) {
        let fourth = hay.get(s + 3).map_or(0, |&b| sym(b));
        if self.quad.contains((w << SYM) | fourth) || self.short.contains(w) {
            self.verify(hay, s, f);
        }
    }

    /// The keywords whose first bytes match at `s`, compared whole.
    #[cold]
    #[inline(never)]
    fn verify(&self, hay: &[u8], s: usize, f: &mut impl FnMut(usize, usize)) {
        let mut gram = 0u32;
        for tag in 1..=4usize {
            let Some(&b) = hay.get(s + tag - 1) else {
                return;
            };
            gram = (gram << 8) | u32::from(b.to_ascii_lowercase());
            if !self.lens[tag] {
                continue;
            }
            let k = key(tag as u32, gram);
            let from = self.by_key.partition_point(|&(x, _)| x < k);
            for &(_, p) in self.by_key[from..].iter().take_while(|&&(x, _)| x == k) {
                let pat = &self.patterns[p as usize];
                if hay
                    .get(s..s + pat.len())
                    .is_some_and(|h| h.eq_ignore_ascii_case(pat))
                {
                    f(s, p as usize);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every (start, pattern), by brute force.
    fn naive(pats: &[Vec<u8>], hay: &[u8]) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for s in 0..hay.len() {
            for (i, p) in pats.iter().enumerate() {
                if !p.is_empty()
                    && hay
                        .get(s..s + p.len())
                        .is_some_and(|h| h.eq_ignore_ascii_case(p))
                {
                    out.push((s, i));
                }
            }
        }
        out
    }

    /// `len` bytes from a small alphabet (xorshift from `x`).
    fn random_hay(x: &mut u64, len: usize) -> Vec<u8> {
        (0..len)
            .map(|_| {
                *x ^= *x << 13;
                *x ^= *x >> 7;
                *x ^= *x << 17;
                b"abcdABCD_ "[(*x % 10) as usize]
            })
            .collect()
    }

    fn found(k: &Keywords, hay: &[u8]) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        k.for_each(hay, |s, p| out.push((s, p)));
        out.sort_unstable();
        out
    }

    #[test]
    fn finds_every_occurrence_of_every_length_in_any_case() {
        let pats: Vec<Vec<u8>> = ["q~", "x", "aws", "token", "tok", "api_key", "apikey", ""]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect();
        let k = Keywords::new(&pats);
        for hay in [
            &b""[..],
            b"x",
            b"aw",
            b"aws",
            b"AWS",
            b"Q~",
            b"TOKEN tokens ToK api_key APIKEY x",
            b"my_apiKey=1; aws_token q~Q~ xx",
            b"ends with tok",
            b"ends with q~",
            "caf\u{e9} TOKEN \u{1F600} aws".as_bytes(),
        ] {
            assert_eq!(found(&k, hay), naive(&pats, hay), "{:?}", hay);
        }
    }

    #[test]
    fn starts_are_reported_in_order() {
        let pats: Vec<Vec<u8>> = ["secret", "ecr", "cr", "t"]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect();
        let k = Keywords::new(&pats);
        let mut starts = Vec::new();
        k.for_each(b"a secret, SECRET; secrets", |s, _| starts.push(s));
        assert!(starts.windows(2).all(|w| w[0] <= w[1]), "{starts:?}");
        assert_eq!(
            starts.len(),
            naive(&pats, b"a secret, SECRET; secrets").len()
        );
    }

    #[test]
    fn random_haystacks_agree_with_brute_force() {
        let pats: Vec<Vec<u8>> = ["ab", "abc", "abcd", "bcdab", "dd", "c", "da_b"]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect();
        let k = Keywords::new(&pats);
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for n in 0..400 {
            let hay = random_hay(&mut x, n % 37);
            assert_eq!(found(&k, &hay), naive(&pats, &hay), "{hay:?}");
        }
    }

    #[test]
    fn every_other_position_finds_what_every_position_finds() {
        let pats: Vec<Vec<u8>> = ["abc", "abcd", "bcdab", "dda", "cab_d", "da_b"]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect();
        let k = Keywords::new(&pats);
        assert!(!k.stride1);
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for n in 0..600 {
            let hay = random_hay(&mut x, n % 41);
            let mut starts = Vec::new();
            k.for_each(&hay, |s, p| starts.push((s, p)));
            assert!(starts.windows(2).all(|w| w[0].0 <= w[1].0), "{hay:?}");
            starts.sort_unstable();
            assert_eq!(starts, naive(&pats, &hay), "{hay:?}");
        }
    }
}
