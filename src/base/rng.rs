//! Random streams and the few transcendental functions the simulator needs,
//! written so that every output is bit-identical on every machine.
//!
//! The generator is SplitMix64 (Steele, Lea and Flood, "Fast splittable
//! pseudorandom number generators", 2014): a 64-bit counter advanced by the
//! golden-ratio increment and passed through a fixed mixing function. It is
//! small, passes BigCrush, and its whole definition is the dozen lines below,
//! so the simulator's output never depends on a crate's version.
//!
//! Streams are *derived*, never shared: [`derive()`] mixes a parent key with a
//! tag (a session index, a component, a neuron, a segment, a chunk), and each
//! leaf key seeds its own [`SplitMix64`]. A neuron's draws therefore do not
//! depend on how many neurons or sessions come before or after it.
//!
//! `f64::exp`, `ln`, `sin` and `cos` call the platform's math library, whose
//! last bit differs between libm implementations. The replacements here use
//! only `+ - * /`, `floor`, `sqrt` and bit manipulation, which IEEE 754 defines
//! exactly, and Rust never contracts them into fused multiply-adds on its own,
//! so the results are the same everywhere. They are accurate to a few units in
//! the last place over the ranges the simulator uses, which is far more than a
//! simulation needs; determinism is the point.

/// The golden-ratio increment of SplitMix64.
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// The SplitMix64 output function (Stafford's "variant 13" mixer): a
/// bijection of `u64` that spreads every input bit over every output bit.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The key of the child stream `tag` of the stream keyed `parent`.
///
/// `derive(p, t) = mix64(p ^ mix64(t + GAMMA))`: the tag is mixed on its own
/// first so that nearby tags (neuron 3 and neuron 4) give unrelated keys.
pub fn derive(parent: u64, tag: u64) -> u64 {
    mix64(parent ^ mix64(tag.wrapping_add(GAMMA)))
}

/// One SplitMix64 stream.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// The stream that starts from `key`.
    pub fn new(key: u64) -> SplitMix64 {
        SplitMix64 { state: key }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        mix64(self.state)
    }

    /// A uniform draw from `[0, 1)` with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform draw from `(0, 1]`, safe to take the logarithm of.
    pub fn uniform_open0(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform draw from `[lo, hi)`.
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// A draw whose logarithm is uniform on `[ln lo, ln hi)`, for scale
    /// parameters such as spatial periods.
    pub fn log_range(&mut self, lo: f64, hi: f64) -> f64 {
        lo * exp(self.uniform() * ln(hi / lo))
    }

    /// A uniform integer in `0..n` (`0` when `n` is `0`), by Lemire's
    /// multiply-shift, whose bias is below 2^-32 for the small `n` used here.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A fair coin.
    pub fn coin(&mut self) -> bool {
        self.next_u64() >> 63 == 1
    }

    /// A standard normal draw (Box-Muller, one output per pair of uniforms,
    /// so a stream's position never depends on a cached second value).
    pub fn normal(&mut self) -> f64 {
        let radius = (-2.0 * ln(self.uniform_open0())).sqrt();
        radius * cos_turns(self.uniform())
    }

    /// An exponential draw with mean 1.
    pub fn exp1(&mut self) -> f64 {
        -ln(self.uniform_open0())
    }
}

/// ln 2 split so that `k * LN2_HI` is exact for the `k` that occur.
/// These are fdlibm's `ln2_hi` and `ln2_lo`, given by their bits.
const LN2_HI: f64 = f64::from_bits(0x3FE6_2E42_FEE0_0000);
const LN2_LO: f64 = f64::from_bits(0x3DEA_39EF_3579_3C76);
const LN2: f64 = std::f64::consts::LN_2;

/// `e^x`, deterministic. Inputs are clamped to `[-700, 700]`, far outside
/// any value the simulator produces, so the result is always finite and
/// positive; `NaN` stays `NaN`.
pub fn exp(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let x = x.clamp(-700.0, 700.0);
    // x = k ln 2 + r with |r| <= ln 2 / 2 (Cody and Waite's two-part ln 2
    // keeps r accurate), then e^x = 2^k e^r.
    let k = floor(x / LN2 + 0.5);
    let r = (x - k * LN2_HI) - k * LN2_LO;
    // Taylor series of e^r to r^14 / 14!: the remainder is below 1e-17 for
    // |r| <= 0.35, evaluated by Horner's rule from the highest term.
    let sum = horner(&EXP_COEFFS, r);
    // 2^k as a float built from its bits; k lies in [-1010, 1010] after the
    // clamp, so the two halves are normal numbers.
    let k = k as i64;
    let half = k / 2;
    sum * pow2(half) * pow2(k - half)
}

/// `2^k` for `-1022 <= k <= 1023`.
fn pow2(k: i64) -> f64 {
    f64::from_bits(((k + 1023) as u64) << 52)
}

/// The natural logarithm, deterministic. `ln(0)` is `-inf` and a negative or
/// `NaN` input gives `NaN`, as with `f64::ln`; the simulator only passes
/// positive numbers.
pub fn ln(x: f64) -> f64 {
    if x.is_nan() || x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 {
        return f64::NEG_INFINITY;
    }
    if x.is_infinite() {
        return x;
    }
    // Subnormal inputs are scaled into the normal range first.
    let (x, bias) = if x < f64::MIN_POSITIVE {
        (x * pow2(54), -54)
    } else {
        (x, 0)
    };
    let bits = x.to_bits();
    let mut e = ((bits >> 52) & 0x7FF) as i64 - 1023 + bias;
    // The mantissa m in [1, 2), moved to [sqrt(1/2), sqrt(2)) so that the
    // series below converges fast on both sides of 1.
    let mut m = f64::from_bits((bits & 0x000F_FFFF_FFFF_FFFF) | 0x3FF0_0000_0000_0000);
    if m > std::f64::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    // ln m = 2 atanh(s) = 2 (s + s^3/3 + s^5/5 + ...) with s = (m-1)/(m+1),
    // |s| <= 0.172; twelve terms leave a remainder below 1e-18.
    let s = (m - 1.0) / (m + 1.0);
    e as f64 * LN2 + 2.0 * s * horner(&LN_COEFFS, s * s)
}

/// The largest integer not above `x`, inline: exact like `f64::floor`, which
/// on the baseline x86-64 target is a call into libm, but cheaper. Values of
/// magnitude 2^52 and more are integers already and are returned as they are.
pub fn floor(x: f64) -> f64 {
    if x.abs() < 4_503_599_627_370_496.0 {
        let truncated = x as i64 as f64;
        if truncated > x {
            truncated - 1.0
        } else {
            truncated
        }
    } else {
        x
    }
}

/// `sin(2 pi t)` for an angle `t` in turns, deterministic.
pub fn sin_turns(t: f64) -> f64 {
    cos_turns(t - 0.25)
}

/// `cos(2 pi t)` for an angle `t` in turns, deterministic. Angles in turns
/// reduce exactly (`t - floor(t)`), which is why the simulator keeps every
/// phase in turns.
pub fn cos_turns(t: f64) -> f64 {
    if !t.is_finite() {
        return f64::NAN;
    }
    let f = t - floor(t);
    // The nearest quarter turn q and the remainder r in [-1/8, 1/8] turns.
    let q = floor(f * 4.0 + 0.5);
    let r = (f - q * 0.25) * std::f64::consts::TAU;
    let (s, c) = (sin_poly(r), cos_poly(r));
    match q as i64 & 3 {
        0 => c,
        1 => -s,
        2 => -c,
        _ => s,
    }
}

/// Taylor series of `sin r` for `|r| <= pi/4`, to `r^17`.
fn sin_poly(r: f64) -> f64 {
    r * horner(&SIN_COEFFS, r * r)
}

/// Taylor series of `cos r` for `|r| <= pi/4`, to `r^18`.
fn cos_poly(r: f64) -> f64 {
    horner(&COS_COEFFS, r * r)
}

/// `c[0] + x (c[1] + x (c[2] + ...))`.
fn horner(coeffs: &[f64], x: f64) -> f64 {
    coeffs.iter().rev().fold(0.0, |sum, &c| c + x * sum)
}

/// The series' coefficients, computed at compile time (IEEE arithmetic in
/// `const` evaluation is exact and the same on every host), so evaluation
/// needs no division.
/// `1 / n!` for `n = 0..=14`.
const EXP_COEFFS: [f64; 15] = {
    let mut c = [0.0; 15];
    let (mut n, mut factorial) = (0, 1.0);
    while n < 15 {
        c[n] = 1.0 / factorial;
        n += 1;
        factorial *= n as f64;
    }
    c
};

/// `1 / (2n + 1)` for `n = 0..12`: the atanh series in `s^2`.
const LN_COEFFS: [f64; 12] = {
    let mut c = [0.0; 12];
    let mut n = 0;
    while n < 12 {
        c[n] = 1.0 / (2 * n + 1) as f64;
        n += 1;
    }
    c
};

/// `(-1)^n / (2n + 1)!` for `n = 0..=8`: sin r / r in powers of `r^2`.
const SIN_COEFFS: [f64; 9] = {
    let mut c = [0.0; 9];
    let (mut n, mut factorial, mut sign) = (0, 1.0, 1.0);
    while n < 9 {
        c[n] = sign / factorial;
        factorial *= ((2 * n + 2) * (2 * n + 3)) as f64;
        sign = -sign;
        n += 1;
    }
    c
};

/// `(-1)^n / (2n)!` for `n = 0..=9`: cos r in powers of `r^2`.
const COS_COEFFS: [f64; 10] = {
    let mut c = [0.0; 10];
    let (mut n, mut factorial, mut sign) = (0, 1.0, 1.0);
    while n < 10 {
        c[n] = sign / factorial;
        factorial *= ((2 * n + 1) * (2 * n + 2)) as f64;
        sign = -sign;
        n += 1;
    }
    c
};

/// `ln(1 + e^x)`, the softplus, without overflow for large `x`.
pub fn softplus(x: f64) -> f64 {
    if x > 35.0 {
        x
    } else if x < -35.0 {
        // ln(1 + e^x) = e^x to within a rounding error here.
        exp(x)
    } else {
        ln(1.0 + exp(x))
    }
}
