//! Choosing the threshold t: the security degree sd(n, t, p) = P(X <= t - 1), X ~ B(n, p).
//!
//! Each of the n share holders leaks its share with probability p, independently; the lock
//! stays shut while fewer than t shares leak. The degree is computed exactly, not in floating
//! point: p is a decimal a / 10^s, so every binomial term C(n, k) a^k (10^s - a)^(n-k) is an
//! integer over the common denominator 10^(s n), and the sum is a terminating decimal whose
//! digits can be printed to any precision. Floating point would lose the tail 1 - sd, which is
//! the number that matters when sd is 0.999999....

use std::fmt;
use std::str::FromStr;

use num_bigint::BigUint;
use num_integer::Integer;
use num_traits::Zero;
use rust_decimal::Decimal;

/// Largest n the analysis accepts. The lock itself shares among at most 255 holders; the
/// bound keeps the exact integers (about 3.3 s n bits) small enough to stay instant.
pub const MAX_HOLDERS: u32 = 1000;

/// Why a security question was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecurityError {
    /// A probability is not a decimal in [0, 1].
    #[error("{0:?} is not a probability: give a decimal between 0 and 1 such as 0.05")]
    BadProbability(String),
    /// n is out of range.
    #[error("n = {0} is out of range: 1 <= n <= {MAX_HOLDERS}")]
    BadHolders(u32),
    /// t is out of range.
    #[error("t = {t} is out of range: 1 <= t <= n = {n}")]
    BadThreshold {
        /// The threshold asked for.
        t: u32,
        /// The number of holders.
        n: u32,
    },
}

/// A probability given as an exact decimal, `numerator / 10^scale`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probability {
    numerator: u128,
    scale: u32,
    text: String,
}

impl FromStr for Probability {
    type Err = SecurityError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || SecurityError::BadProbability(text.to_string());
        let value = Decimal::from_str_exact(text.trim())
            .or_else(|_| Decimal::from_scientific(text.trim()))
            .map_err(|_| bad())?
            .normalize();
        if value.is_sign_negative() && !value.is_zero() || value > Decimal::ONE {
            return Err(bad());
        }
        let numerator = u128::try_from(value.mantissa()).map_err(|_| bad())?;
        Ok(Self {
            numerator,
            scale: value.scale(),
            text: text.trim().to_string(),
        })
    }
}

impl fmt::Display for Probability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Probability {
    fn as_exact(&self) -> ExactDecimal {
        ExactDecimal::new(BigUint::from(self.numerator), self.scale)
    }
}

/// A non-negative terminating decimal held exactly: `mantissa / 10^scale`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExactDecimal {
    mantissa: BigUint,
    scale: u32,
}

impl ExactDecimal {
    fn new(mantissa: BigUint, scale: u32) -> Self {
        let mut value = Self { mantissa, scale };
        let ten = BigUint::from(10u8);
        while value.scale > 0 && !value.mantissa.is_zero() {
            let (quotient, remainder) = value.mantissa.div_rem(&ten);
            if !remainder.is_zero() {
                break;
            }
            value.mantissa = quotient;
            value.scale -= 1;
        }
        if value.mantissa.is_zero() {
            value.scale = 0;
        }
        value
    }

    /// `1 - self` (for values in [0, 1]): the probability that t or more shares leak.
    pub fn complement(&self) -> Self {
        let one = BigUint::from(10u8).pow(self.scale);
        if self.mantissa >= one {
            return Self::new(BigUint::zero(), 0);
        }
        Self::new(one - &self.mantissa, self.scale)
    }

    /// Whether `self >= other`, exactly.
    pub fn at_least(&self, other: &Probability) -> bool {
        *self >= other.as_exact()
    }

    /// Every digit, e.g. `0.9298091736`.
    pub fn to_exact_string(&self) -> String {
        let digits = self.mantissa.to_str_radix(10);
        place_point(
            &digits,
            i64::try_from(digits.len()).unwrap_or(i64::MAX) - 1 - i64::from(self.scale),
        )
    }

    /// The value rounded half-up to `significant` significant digits, written the way Python's
    /// `decimal` module writes a quotient at that precision: exact values with fewer digits are
    /// shown exactly, fixed notation down to 1e-6, scientific below (`2.44511223939097e-8`).
    pub fn to_significant(&self, significant: usize) -> String {
        let significant = significant.max(1);
        if self.mantissa.is_zero() {
            return "0".into();
        }
        let digits = self.mantissa.to_str_radix(10);
        let mut exponent =
            i64::try_from(digits.len()).unwrap_or(i64::MAX) - 1 - i64::from(self.scale);
        let shown = if digits.len() <= significant {
            digits
        } else {
            let head: BigUint = digits[..significant].parse().unwrap_or_default();
            let round_up = digits.as_bytes()[significant] >= b'5';
            let head = if round_up { head + 1u8 } else { head };
            let mut head = head.to_str_radix(10);
            if head.len() > significant {
                // 99..9 rounded up to 100..0: one more integer digit.
                head.truncate(significant);
                exponent += 1;
            }
            head
        };
        if exponent >= -6 {
            place_point(&shown, exponent)
        } else {
            let (first, rest) = shown.split_at(1);
            if rest.is_empty() {
                format!("{first}e{exponent}")
            } else {
                format!("{first}.{rest}e{exponent}")
            }
        }
    }
}

impl fmt::Display for ExactDecimal {
    /// 15 significant digits; `{:.N}` asks for N.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_significant(f.precision().unwrap_or(15)))
    }
}

/// Writes `digits` (no leading zeros) with the first digit at decimal position `exponent`.
fn place_point(digits: &str, exponent: i64) -> String {
    if exponent < 0 {
        let zeros = usize::try_from(-exponent - 1).unwrap_or(0);
        format!("0.{}{digits}", "0".repeat(zeros))
    } else {
        let integer_digits = usize::try_from(exponent + 1).unwrap_or(usize::MAX);
        if digits.len() <= integer_digits {
            format!("{digits}{}", "0".repeat(integer_digits - digits.len()))
        } else {
            let (integer, fraction) = digits.split_at(integer_digits);
            format!("{integer}.{fraction}")
        }
    }
}

/// sd(n, t, p) for every t in 1..=n, exactly: element `t - 1` is P(X <= t - 1).
pub fn security_degrees(n: u32, p: &Probability) -> Result<Vec<ExactDecimal>, SecurityError> {
    if n == 0 || n > MAX_HOLDERS {
        return Err(SecurityError::BadHolders(n));
    }
    // Over the denominator 10^(s n), term k is C(n, k) a^k b^(n-k) with b = 10^s - a.
    let denominator_one = BigUint::from(10u8).pow(p.scale);
    let a = BigUint::from(p.numerator);
    let b = &denominator_one - &a;
    let scale = p.scale * n;
    let mut degrees = Vec::with_capacity(n as usize);
    let mut cumulative = BigUint::zero();
    if b.is_zero() {
        // p = 1: every share leaks, so fewer than t <= n never leak.
        degrees.resize(n as usize, ExactDecimal::new(BigUint::zero(), 0));
        return Ok(degrees);
    }
    let mut term = b.pow(n);
    for k in 0..n {
        cumulative += &term;
        degrees.push(ExactDecimal::new(cumulative.clone(), scale));
        // term(k + 1) = term(k) (n - k) a / ((k + 1) b); the division is exact because the
        // result is the integer C(n, k + 1) a^(k+1) b^(n-k-1).
        term = term * (n - k) * &a / (BigUint::from(k + 1) * &b);
    }
    Ok(degrees)
}

/// sd(n, t, p) for one t.
pub fn security_degree(n: u32, t: u32, p: &Probability) -> Result<ExactDecimal, SecurityError> {
    if t == 0 || t > n {
        return Err(SecurityError::BadThreshold { t, n });
    }
    let mut degrees = security_degrees(n, p)?;
    Ok(degrees.swap_remove(t as usize - 1))
}

/// The smallest t whose degree reaches `target`, if any t <= n does.
pub fn smallest_threshold(degrees: &[ExactDecimal], target: &Probability) -> Option<u32> {
    degrees
        .iter()
        .position(|degree| degree.at_least(target))
        .and_then(|index| u32::try_from(index + 1).ok())
}

impl PartialOrd for ExactDecimal {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ExactDecimal {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let scale = self.scale.max(other.scale);
        let ten = BigUint::from(10u8);
        (&self.mantissa * ten.pow(scale - self.scale))
            .cmp(&(&other.mantissa * ten.pow(scale - other.scale)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Probability {
        text.parse().unwrap()
    }

    /// Reference values from an independent computation with Python's exact fractions,
    /// rounded half-up to 15 significant digits by `decimal` (hand-checked: sd(10, 3, 0.1) =
    /// 0.9^10 + 10 * 0.1 * 0.9^9 + 45 * 0.01 * 0.9^8 = 0.9298091736):
    ///
    /// ```text
    /// python3 -c "
    /// from fractions import Fraction as F; from math import comb; import decimal as D
    /// D.getcontext().prec=15; D.getcontext().rounding=D.ROUND_HALF_UP
    /// sd=lambda n,t,p: sum(F(comb(n,k))*F(p)**k*(1-F(p))**(n-k) for k in range(t))
    /// for (n,t,p) in [(10,3,'0.1'),(100,10,'0.05'),(100,30,'0.1'),(100,50,'0.3'),
    ///   (255,20,'0.01'),(5,5,'0.5'),(100,1,'0.5'),(20,4,'0.123')]:
    ///   v=sd(n,t,p); print(n,t,p, D.Decimal(v.numerator)/D.Decimal(v.denominator),
    ///     D.Decimal((1-v).numerator)/D.Decimal((1-v).denominator))"
    /// ```
    const PYTHON_FRACTIONS: &[(u32, u32, &str, &str, &str)] = &[
        (10, 3, "0.1", "0.9298091736", "0.0701908264"),
        (100, 10, "0.05", "0.971811705836584", "0.0281882941634161"),
        (100, 30, "0.1", "0.999999975548878", "2.44511223939097e-8"),
        (100, 50, "0.3", "0.999977939086673", "0.0000220609133271660"),
        (255, 20, "0.01", "0.999999999997255", "2.74493243321924e-12"),
        (5, 5, "0.5", "0.96875", "0.03125"),
        (100, 1, "0.5", "7.88860905221012e-31", "1.00000000000000"),
        (20, 4, "0.123", "0.774217742933120", "0.225782257066880"),
    ];

    #[test]
    fn matches_an_independent_exact_computation_to_15_digits() {
        for &(n, t, probability, sd, tail) in PYTHON_FRACTIONS {
            let degree = security_degree(n, t, &p(probability)).unwrap();
            assert_eq!(degree.to_significant(15), sd, "sd({n}, {t}, {probability})");
            assert_eq!(
                degree.complement().to_significant(15),
                tail,
                "1 - sd({n}, {t}, {probability})"
            );
        }
    }

    #[test]
    fn exact_digits_are_available_in_full() {
        let degree = security_degree(10, 3, &p("0.1")).unwrap();
        assert_eq!(degree.to_exact_string(), "0.9298091736");
        // 2^-100 exactly has 100 decimal places.
        let tiny = security_degree(100, 1, &p("0.5")).unwrap();
        assert_eq!(
            tiny.to_exact_string(),
            "0.0000000000000000000000000000007888609052210118054117285652827862296732064351090230047702789306640625"
        );
    }

    #[test]
    fn smallest_threshold_reaching_a_target() {
        // From the Python values: sd(100, 30, 0.1) = 0.99999997... but sd(100, 29, 0.1) must
        // be checked too; the target 0.9999999 is first reached somewhere at or below t = 30.
        let degrees = security_degrees(100, &p("0.1")).unwrap();
        let t = smallest_threshold(&degrees, &p("0.9999999")).unwrap();
        assert!(t <= 30);
        assert!(degrees[t as usize - 1].at_least(&p("0.9999999")));
        assert!(!degrees[t as usize - 2].at_least(&p("0.9999999")));
        assert_eq!(smallest_threshold(&degrees, &p("1")), None);
        assert_eq!(smallest_threshold(&degrees, &p("0")), Some(1));
    }

    #[test]
    fn edge_probabilities() {
        assert_eq!(
            security_degree(7, 1, &p("0")).unwrap().to_exact_string(),
            "1"
        );
        assert_eq!(
            security_degree(7, 7, &p("1")).unwrap().to_exact_string(),
            "0"
        );
        assert_eq!(
            security_degree(1, 1, &p("0.25")).unwrap().to_exact_string(),
            "0.75"
        );
    }

    #[test]
    fn bad_inputs_are_refused() {
        for text in ["-0.1", "1.5", "abc", ""] {
            assert!(text.parse::<Probability>().is_err(), "{text}");
        }
        assert_eq!("1e-3".parse::<Probability>().unwrap().scale, 3);
        assert!(security_degrees(0, &p("0.1")).is_err());
        assert!(security_degrees(MAX_HOLDERS + 1, &p("0.1")).is_err());
        assert!(security_degree(10, 0, &p("0.1")).is_err());
        assert!(security_degree(10, 11, &p("0.1")).is_err());
    }

    #[test]
    fn rounding_carries_into_a_new_digit() {
        let nines = ExactDecimal::new(BigUint::from(9_999_999u32), 7);
        assert_eq!(nines.to_significant(3), "1.00");
        assert_eq!(nines.to_significant(7), "0.9999999");
    }

    proptest::proptest! {
        /// Against a floating-point recomputation in log space: agreement to 1e-9 relative
        /// (floating point is the weaker side here) and monotonicity in t.
        #[test]
        fn agrees_with_log_space_floats(n in 1u32..200, p_thousandths in 1u32..1000) {
            let probability = p(&format!("0.{p_thousandths:03}"));
            let degrees = security_degrees(n, &probability).unwrap();
            let pf = f64::from(p_thousandths) / 1000.0;
            let mut log_choose = 0.0f64;
            let mut float_sum = 0.0f64;
            for (k, degree) in degrees.iter().enumerate() {
                let k = k as f64;
                if k > 0.0 {
                    log_choose += ((f64::from(n) - k + 1.0) / k).ln();
                }
                float_sum += (log_choose + k * pf.ln() + (f64::from(n) - k) * (-pf).ln_1p()).exp();
                let exact: f64 = degree.to_significant(17).parse().unwrap();
                if float_sum > 1e-250 {
                    proptest::prop_assert!(((exact - float_sum) / float_sum).abs() < 1e-9,
                        "n {} k {} exact {} float {}", n, k, exact, float_sum);
                }
            }
            for pair in degrees.windows(2) {
                proptest::prop_assert!(pair[1] >= pair[0]);
            }
        }
    }
}
