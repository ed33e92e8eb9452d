//! Caller numbers to E.164, so that `+86 138-0013-8000`, `008613800138000`,
//! `13800138000` and a local `5555 1234` find the same owner.

/// How numbers are written where the hotline is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberPlan {
    /// Country calling code without `+`, e.g. "86".
    pub country_code: String,
    /// Dialled before an area code at home, e.g. "0".
    pub national_prefix: String,
    /// Dialled before a country code, e.g. "00".
    pub international_prefix: String,
    /// The site's area code (without the national prefix), for local numbers.
    pub area_code: Option<String>,
    /// Numbers this long or shorter are local (no area code).
    pub local_max_len: usize,
}

impl Default for NumberPlan {
    fn default() -> Self {
        Self {
            country_code: "86".into(),
            national_prefix: "0".into(),
            international_prefix: "00".into(),
            area_code: None,
            local_max_len: 8,
        }
    }
}

/// The E.164 form (`+` and 8 to 15 digits), or None when `raw` is not a
/// number we can place. Separators (space, `-`, `.`, parentheses) are dropped.
pub fn normalize(raw: &str, plan: &NumberPlan) -> Option<String> {
    let raw = raw.trim();
    let plus = raw.starts_with('+');
    let mut digits = String::with_capacity(raw.len());
    for (i, c) in raw.chars().enumerate() {
        match c {
            '0'..='9' => digits.push(c),
            '+' if i == 0 => {}
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return None,
        }
    }
    let international = if plus {
        digits
    } else if let Some(rest) = digits.strip_prefix(plan.international_prefix.as_str())
        && !plan.international_prefix.is_empty()
    {
        rest.to_string()
    } else if let Some(rest) = digits.strip_prefix(plan.national_prefix.as_str())
        && !plan.national_prefix.is_empty()
    {
        format!("{}{rest}", plan.country_code)
    } else if digits.len() <= plan.local_max_len {
        format!(
            "{}{}{digits}",
            plan.country_code,
            plan.area_code.as_deref()?
        )
    } else if digits.starts_with(&plan.country_code)
        && digits.len() >= plan.country_code.len() + 9
        && digits.len() > 11
    {
        digits
    } else {
        format!("{}{digits}", plan.country_code)
    };
    (8..=15)
        .contains(&international.len())
        .then(|| format!("+{international}"))
}

/// The user part of a SIP/tel URI or name-addr: `"Li" <sip:+8613800138000@gw;user=phone>`
/// gives `+8613800138000`.
pub fn uri_user(value: &str) -> Option<&str> {
    let inner = match (value.find('<'), value.find('>')) {
        (Some(a), Some(b)) if a < b => &value[a + 1..b],
        _ => value.split(';').next().unwrap_or(value),
    };
    let rest = inner
        .strip_prefix("sip:")
        .or_else(|| inner.strip_prefix("sips:"))
        .or_else(|| inner.strip_prefix("tel:"))?;
    let user = rest.split(['@', ';']).next()?;
    (!user.is_empty()).then_some(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shanghai() -> NumberPlan {
        NumberPlan {
            area_code: Some("21".into()),
            ..NumberPlan::default()
        }
    }

    #[test]
    fn every_way_of_writing_a_mobile_number_is_one_number() {
        let p = shanghai();
        for raw in [
            "+8613800138000",
            "+86 138-0013-8000",
            "008613800138000",
            "8613800138000",
            "13800138000",
            "138 0013 8000",
        ] {
            assert_eq!(
                normalize(raw, &p).as_deref(),
                Some("+8613800138000"),
                "{raw}"
            );
        }
    }

    #[test]
    fn landlines_national_and_local() {
        let p = shanghai();
        assert_eq!(
            normalize("021-5555 1234", &p).as_deref(),
            Some("+862155551234")
        );
        assert_eq!(normalize("55551234", &p).as_deref(), Some("+862155551234"));
        assert_eq!(
            normalize("(010) 6555-1234", &p).as_deref(),
            Some("+861065551234")
        );
        // A local number without a known area code cannot be placed.
        assert_eq!(normalize("55551234", &NumberPlan::default()), None);
    }

    #[test]
    fn foreign_numbers_keep_their_country() {
        let p = shanghai();
        assert_eq!(
            normalize("+44 20 7946 0958", &p).as_deref(),
            Some("+442079460958")
        );
        assert_eq!(
            normalize("00442079460958", &p).as_deref(),
            Some("+442079460958")
        );
    }

    #[test]
    fn garbage_is_not_a_number() {
        let p = shanghai();
        for raw in ["", "anonymous", "12ab34", "+", "+1234", "1+2345678"] {
            assert_eq!(normalize(raw, &p), None, "{raw}");
        }
    }

    #[test]
    fn user_part_of_uris() {
        assert_eq!(
            uri_user("\"Li\" <sip:+8613800138000@gw.example;user=phone>;tag=1"),
            Some("+8613800138000")
        );
        assert_eq!(uri_user("sip:13800138000@10.0.0.1"), Some("13800138000"));
        assert_eq!(
            uri_user("<tel:+86-138-0013-8000>"),
            Some("+86-138-0013-8000")
        );
        assert_eq!(uri_user("<sip:@host>"), None);
        assert_eq!(uri_user("garbage"), None);
    }
}

/// A pattern of numbers the hotline may dial, matched against the E.164
/// form: `+` and digits stand for themselves, `X` is any digit, `N` any of
/// 2-9, `[13-9]` one of a set (ranges allowed). The whole number must
/// match, so a pattern also fixes the length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialPattern {
    text: String,
    /// Per position, the digits (or `+`) allowed there.
    slots: Vec<Vec<u8>>,
}

impl DialPattern {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut slots = Vec::new();
        let mut chars = text.trim().bytes().peekable();
        while let Some(c) = chars.next() {
            let slot = match c {
                b'+' if slots.is_empty() => vec![b'+'],
                b'0'..=b'9' => vec![c],
                b'X' | b'x' => (b'0'..=b'9').collect(),
                b'N' | b'n' => (b'2'..=b'9').collect(),
                b'[' => {
                    let mut set = Vec::new();
                    loop {
                        match chars.next() {
                            Some(b']') => break,
                            Some(d @ b'0'..=b'9') => {
                                if chars.peek() == Some(&b'-') {
                                    chars.next();
                                    match chars.next() {
                                        Some(e @ b'0'..=b'9') if e >= d => set.extend(d..=e),
                                        _ => return Err(format!("{text:?}: a bad range in [...]")),
                                    }
                                } else {
                                    set.push(d);
                                }
                            }
                            _ => {
                                return Err(format!(
                                    "{text:?}: [...] holds digits and ranges only"
                                ));
                            }
                        }
                    }
                    if set.is_empty() {
                        return Err(format!("{text:?}: an empty [...]"));
                    }
                    set
                }
                other => {
                    return Err(format!(
                        "{text:?}: {:?} is not a digit, X, N or [...] (+ only first)",
                        other as char
                    ));
                }
            };
            slots.push(slot);
        }
        if slots.iter().filter(|s| s[0] != b'+').count() < 3 {
            return Err(format!("{text:?}: too short to be a phone number"));
        }
        Ok(Self {
            text: text.trim().to_string(),
            slots,
        })
    }

    pub fn matches(&self, number: &str) -> bool {
        let n = number.as_bytes();
        n.len() == self.slots.len() && n.iter().zip(&self.slots).all(|(b, s)| s.contains(b))
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// The default: China's mobile and landline numbers (E.164, +86); nothing
/// international, no premium or short service numbers.
pub const DOMESTIC_NUMBERS: [&str; 4] = [
    "+861[3-9]XXXXXXXXX",
    "+8610XXXXXXXX",
    "+86[2-9]XXXXXXXXX",
    "+86[2-9]XXXXXXXXXX",
];

#[cfg(test)]
mod dial_tests {
    use super::*;

    #[test]
    fn patterns_allow_domestic_numbers_and_nothing_abroad() {
        let allowed: Vec<DialPattern> = DOMESTIC_NUMBERS
            .iter()
            .map(|p| DialPattern::parse(p).unwrap())
            .collect();
        let ok = |n: &str| allowed.iter().any(|p| p.matches(n));
        assert!(ok("+8613800138000"), "mobile");
        assert!(ok("+861062345678"), "Beijing landline");
        assert!(ok("+862162345678"), "Shanghai landline");
        assert!(ok("+8675512345678"), "Shenzhen landline");
        assert!(!ok("+12125551234"), "abroad");
        assert!(!ok("+4420791234567"), "abroad");
        assert!(!ok("+86138001380001"), "too long");
        assert!(!ok("+8612345"), "too short");
        assert!(!ok("+8611012345678"), "no 11x mobile block");
        assert!(DialPattern::parse("+86[3-").is_err());
        assert!(DialPattern::parse("+86*").is_err());
        assert!(DialPattern::parse("1+2345").is_err());
        assert!(DialPattern::parse("+1").is_err());
    }
}
