//! Numbers, money, dates and ticket numbers spoken from recorded fragments,
//! as a person would say them in English and in Mandarin.
//!
//! Fragments are prompt names without the language suffix (`num_7`,
//! `hundred`, `yuan` ...); [`fragments`] lists every one a language needs,
//! so that loading the menu checks they are all recorded.

/// Every fragment `lang` may use.
pub fn fragments(lang: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    match lang {
        "zh" => {
            names.extend((0..=10).map(|n| format!("num_{n}")));
            for n in [
                "num_100",
                "num_1000",
                "num_10000",
                "num_100000000",
                "liang",
                "yuan",
                "jiao",
                "fen",
                "minus",
                "month",
                "day",
                "points_word",
                "ticket_word",
            ] {
                names.push(n.into());
            }
        }
        _ => {
            names.extend((0..=19).map(|n| format!("num_{n}")));
            names.extend((2..=9).map(|n| format!("num_{}", n * 10)));
            for n in [
                "hundred",
                "thousand",
                "million",
                "billion",
                "yuan",
                "cents",
                "and",
                "minus",
                "points_word",
                "ticket_word",
            ] {
                names.push(n.into());
            }
            names.extend((1..=12).map(|m| format!("month_{m}")));
        }
    }
    names
}

/// A whole number.
pub fn number(lang: &str, n: i64) -> Vec<String> {
    let mut out = Vec::new();
    if n < 0 {
        out.push("minus".into());
    }
    let n = n.unsigned_abs();
    match lang {
        "zh" => zh_number(n, &mut out),
        _ => en_number(n, &mut out),
    }
    out
}

fn en_number(n: u64, out: &mut Vec<String>) {
    if n == 0 {
        out.push("num_0".into());
        return;
    }
    let groups = [
        (1_000_000_000, "billion"),
        (1_000_000, "million"),
        (1_000, "thousand"),
    ];
    let mut rest = n;
    for (size, word) in groups {
        if rest >= size {
            en_below_thousand(rest / size, out);
            out.push(word.into());
            rest %= size;
        }
    }
    if rest > 0 {
        // "one thousand and five", as British and Chinese-English speakers say.
        if n >= 1000 && rest < 100 {
            out.push("and".into());
        }
        en_below_thousand(rest, out);
    }
}

fn en_below_thousand(n: u64, out: &mut Vec<String>) {
    let (hundreds, rest) = (n / 100, n % 100);
    if hundreds > 0 {
        out.push(format!("num_{hundreds}"));
        out.push("hundred".into());
        if rest > 0 {
            out.push("and".into());
        }
    }
    if rest >= 20 {
        out.push(format!("num_{}", rest / 10 * 10));
        if rest % 10 > 0 {
            out.push(format!("num_{}", rest % 10));
        }
    } else if rest > 0 {
        out.push(format!("num_{rest}"));
    }
}

/// Mandarin: 万/亿 groups of four digits; 零 once for a gap inside a group
/// or before a group that does not fill its thousands; 两 for 2 before
/// 百/千/万/亿 at the head; 十 without 一 at the very start (10-19).
fn zh_number(n: u64, out: &mut Vec<String>) {
    if n == 0 {
        out.push("num_0".into());
        return;
    }
    let groups = [
        (n / 100_000_000, Some("num_100000000")),
        (n / 10_000 % 10_000, Some("num_10000")),
        (n % 10_000, None),
    ];
    let mut started = false;
    let mut need_zero = false;
    for (value, unit) in groups {
        if value == 0 {
            if started {
                need_zero = true;
            }
            continue;
        }
        if started && (need_zero || value < 1000) {
            out.push("num_0".into());
        }
        zh_group(value, !started, unit.is_some(), out);
        if let Some(u) = unit {
            out.push(u.into());
        }
        started = true;
        need_zero = false;
    }
}

/// One group of up to four digits; `big_unit`: 万 or 亿 follows it.
fn zh_group(value: u64, leading: bool, big_unit: bool, out: &mut Vec<String>) {
    let digits = [value / 1000, value / 100 % 10, value / 10 % 10, value % 10];
    let units = [Some("num_1000"), Some("num_100"), Some("num_10"), None];
    let mut seen = false;
    let mut zero = false;
    for (i, (&d, unit)) in digits.iter().zip(units).enumerate() {
        if d == 0 {
            if seen {
                zero = true;
            }
            continue;
        }
        if zero {
            out.push("num_0".into());
            zero = false;
        }
        let first = leading && !seen;
        match (d, unit) {
            // 十二, not 一十二, at the start of the number.
            (1, Some("num_10")) if first => {}
            // 两百, 两千, 两万 at the head of the number.
            (2, Some("num_1000" | "num_100")) if first && i < 2 => out.push("liang".into()),
            (2, None) if first && big_unit => out.push("liang".into()),
            _ => out.push(format!("num_{d}")),
        }
        if let Some(u) = unit {
            out.push(u.into());
        }
        seen = true;
    }
}

/// An amount in cents: "1234 yuan and 50 cents" / 一千二百三十四元五角.
pub fn money(lang: &str, cents: i64) -> Vec<String> {
    let mut out = Vec::new();
    if cents < 0 {
        out.push("minus".into());
    }
    let c = cents.unsigned_abs();
    let (yuan, jiao, fen) = (c / 100, c / 10 % 10, c % 10);
    match lang {
        "zh" => {
            if yuan > 0 || c == 0 {
                zh_number(yuan, &mut out);
                out.push("yuan".into());
            }
            if jiao > 0 {
                out.push(format!("num_{jiao}"));
                out.push("jiao".into());
            } else if fen > 0 && yuan > 0 {
                out.push("num_0".into());
            }
            if fen > 0 {
                out.push(format!("num_{fen}"));
                out.push("fen".into());
            }
        }
        _ => {
            en_number(yuan, &mut out);
            out.push("yuan".into());
            if !c.is_multiple_of(100) {
                out.push("and".into());
                en_number(c % 100, &mut out);
                out.push("cents".into());
            }
        }
    }
    out
}

/// Loyalty points: "800 points" / 八百积分.
pub fn points(lang: &str, n: i64) -> Vec<String> {
    let mut out = number(lang, n);
    out.push("points_word".into());
    out
}

/// A date given as month and day: "November 23" / 十一月二十三日.
pub fn date(lang: &str, month: u32, day: u32) -> Vec<String> {
    match lang {
        "zh" => {
            let mut out = number("zh", month as i64);
            out.push("month".into());
            out.extend(number("zh", day as i64));
            out.push("day".into());
            out
        }
        _ => {
            let mut out = vec![format!("month_{}", month.clamp(1, 12))];
            out.extend(number("en", day as i64));
            out
        }
    }
}

/// A ticket number, digit by digit so it can be written down: "ticket 1 2 0 5".
pub fn ticket(_lang: &str, number: u64) -> Vec<String> {
    let mut out = vec!["ticket_word".to_string()];
    out.extend(number.to_string().chars().map(|d| format!("num_{d}")));
    out
}

/// Digits one by one (a phone number, a unit).
pub fn digits(text: &str) -> Vec<String> {
    text.chars()
        .filter(char::is_ascii_digit)
        .map(|d| format!("num_{d}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Renders fragments as text, to read the tests as speech.
    fn speak(lang: &str, fragments: &[String]) -> String {
        let zh = |f: &str| -> String {
            let digits = [
                "零", "一", "二", "三", "四", "五", "六", "七", "八", "九", "十",
            ];
            match f {
                "num_100" => "百".into(),
                "num_1000" => "千".into(),
                "num_10000" => "万".into(),
                "num_100000000" => "亿".into(),
                "liang" => "两".into(),
                "yuan" => "元".into(),
                "jiao" => "角".into(),
                "fen" => "分".into(),
                "minus" => "负".into(),
                "month" => "月".into(),
                "day" => "日".into(),
                "points_word" => "积分".into(),
                "ticket_word" => "工单".into(),
                n => digits[n.trim_start_matches("num_").parse::<usize>().unwrap()].into(),
            }
        };
        match lang {
            "zh" => fragments.iter().map(|f| zh(f)).collect(),
            _ => fragments
                .iter()
                .map(|f| f.trim_start_matches("num_").to_string())
                .collect::<Vec<_>>()
                .join(" "),
        }
    }

    #[test]
    fn english_numbers() {
        let cases = [
            (0, "0"),
            (7, "7"),
            (15, "15"),
            (42, "40 2"),
            (100, "1 hundred"),
            (305, "3 hundred and 5"),
            (1000, "1 thousand"),
            (1005, "1 thousand and 5"),
            (1234, "1 thousand 2 hundred and 30 4"),
            (20_000, "20 thousand"),
            (1_000_001, "1 million and 1"),
            (-12, "minus 12"),
        ];
        for (n, said) in cases {
            assert_eq!(speak("en", &number("en", n)), said, "{n}");
        }
    }

    #[test]
    fn mandarin_numbers() {
        let cases = [
            (0, "零"),
            (10, "十"),
            (12, "十二"),
            (20, "二十"),
            (105, "一百零五"),
            (110, "一百一十"),
            (200, "两百"),
            (1002, "一千零二"),
            (1010, "一千零一十"),
            (1234, "一千二百三十四"),
            (2000, "两千"),
            (10_000, "一万"),
            (10_005, "一万零五"),
            (10_500, "一万零五百"),
            (15_000, "一万五千"),
            (22_222, "两万二千二百二十二"),
            (100_000_000, "一亿"),
            (100_010_000, "一亿零一万"),
            (-3, "负三"),
        ];
        for (n, said) in cases {
            assert_eq!(speak("zh", &number("zh", n)), said, "{n}");
        }
    }

    #[test]
    fn money_in_both_languages() {
        assert_eq!(speak("zh", &money("zh", 123_450)), "一千二百三十四元五角");
        assert_eq!(speak("zh", &money("zh", 1_005)), "十元零五分");
        assert_eq!(speak("zh", &money("zh", 7)), "七分");
        assert_eq!(speak("zh", &money("zh", 0)), "零元");
        assert_eq!(speak("zh", &money("zh", -2_000)), "负二十元");
        assert_eq!(
            speak("en", &money("en", 123_450)),
            "1 thousand 2 hundred and 30 4 yuan and 50 cents"
        );
        assert_eq!(speak("en", &money("en", 500)), "5 yuan");
    }

    #[test]
    fn dates_tickets_points() {
        assert_eq!(speak("zh", &date("zh", 11, 23)), "十一月二十三日");
        assert_eq!(speak("en", &date("en", 11, 23)), "month_11 20 3");
        assert_eq!(speak("zh", &ticket("zh", 1205)), "工单一二零五");
        assert_eq!(speak("en", &ticket("en", 42)), "ticket_word 4 2");
        assert_eq!(speak("zh", &points("zh", 800)), "八百积分");
    }

    #[test]
    fn every_fragment_spoken_is_in_the_list() {
        for lang in ["en", "zh"] {
            let known = fragments(lang);
            let mut spoken = Vec::new();
            for n in [0, 7, 12, 19, 20, 99, 105, 2000, 22_222, 1_234_567_890, -5] {
                spoken.extend(number(lang, n));
                spoken.extend(money(lang, n * 37));
            }
            spoken.extend(date(lang, 12, 31));
            spoken.extend(ticket(lang, 9876543210));
            spoken.extend(points(lang, 5));
            for f in spoken {
                assert!(known.contains(&f), "{lang}: {f} not in fragments()");
            }
        }
    }
}
