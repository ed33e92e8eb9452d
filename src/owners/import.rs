//! CSV import of owners and gifts. Every row is checked first; one bad row
//! and nothing is imported, and every bad row is reported by line number.
//!
//! Owners: `id,name,site,building,unit,phones,language,class,points,fee_balance`
//! and optionally `,pin` (phones separated by `;`, fee balance in yuan with
//! up to two decimals, negative for a credit; a PIN of 4-8 digits, stored
//! hashed, lets an owner calling from an unknown number prove who they are). Gifts: `id,name,points`.

use std::collections::HashMap;
use std::path::Path;

use super::phone::{NumberPlan, normalize};
use super::{Gift, Owner, OwnerDb, OwnersError};

pub const OWNER_COLUMNS: [&str; 10] = [
    "id",
    "name",
    "site",
    "building",
    "unit",
    "phones",
    "language",
    "class",
    "points",
    "fee_balance",
];
/// An optional last column: the owner's PIN (4-8 digits, or empty for
/// none), stored hashed.
pub const PIN_COLUMN: &str = "pin";
pub const GIFT_COLUMNS: [&str; 3] = ["id", "name", "points"];

/// One bad row: its line in the file and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    pub line: u64,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("{path}: the header must be {expected}, found {found}")]
    Header {
        path: String,
        expected: String,
        found: String,
    },
    #[error("{path}: {} bad row(s), nothing imported:\n{}", .rows.len(), list(.rows))]
    BadRows { path: String, rows: Vec<BadRow> },
}

fn list(rows: &[BadRow]) -> String {
    rows.iter()
        .map(|r| format!("  line {}: {}", r.line, r.message))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A CSV record with its line number.
type NumberedRecord = (u64, csv::StringRecord);

/// Reads the file's rows after checking its header; CSV syntax errors become
/// bad rows.
fn rows(
    path: &Path,
    columns: &[&str],
    optional: Option<&str>,
) -> Result<(Vec<NumberedRecord>, Vec<BadRow>, usize), ImportError> {
    let shown = path.display().to_string();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .flexible(true)
        .from_path(path)
        .map_err(|e| ImportError::File {
            path: shown.clone(),
            message: e.to_string(),
        })?;
    let header = reader.headers().map_err(|e| ImportError::File {
        path: shown.clone(),
        message: e.to_string(),
    })?;
    let found: Vec<&str> = header.iter().collect();
    let with_optional =
        optional.is_some_and(|o| found.len() == columns.len() + 1 && found.last() == Some(&o));
    if found[..found.len().min(columns.len())] != *columns
        || (found.len() != columns.len() && !with_optional)
    {
        let optional = optional
            .map(|o| format!(" (and optionally ,{o})"))
            .unwrap_or_default();
        return Err(ImportError::Header {
            path: shown,
            expected: format!("{}{optional}", columns.join(",")),
            found: found.join(","),
        });
    }
    let width = found.len();
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for record in reader.records() {
        match record {
            Ok(r) => {
                let line = r.position().map(|p| p.line()).unwrap_or_default();
                if r.len() != width {
                    bad.push(BadRow {
                        line,
                        message: format!("{} fields, expected {width}", r.len()),
                    });
                } else {
                    good.push((line, r));
                }
            }
            Err(e) => bad.push(BadRow {
                line: e.position().map(|p| p.line()).unwrap_or_default(),
                message: e.to_string(),
            }),
        }
    }
    Ok((good, bad, width))
}

/// Nothing is imported when any row is bad: all of them, by line.
fn refuse_bad_rows(path: &Path, mut bad: Vec<BadRow>) -> Result<(), OwnersError> {
    if bad.is_empty() {
        return Ok(());
    }
    bad.sort_by_key(|b| b.line);
    Err(ImportError::BadRows {
        path: path.display().to_string(),
        rows: bad,
    }
    .into())
}

/// Parses `123.45` / `-7` / `0.5` yuan into cents.
fn cents(text: &str) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty()
        || frac.len() > 2
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let frac: i64 = format!("{frac:0<2}").parse().ok()?;
    let value = whole.checked_mul(100)?.checked_add(frac)?;
    Some(if negative { -value } else { value })
}

/// Checks every owner row; imports all of them or none.
pub fn import_owners(db: &OwnerDb, path: &Path, plan: &NumberPlan) -> Result<usize, OwnersError> {
    let (records, mut bad, width) = rows(path, &OWNER_COLUMNS, Some(PIN_COLUMN))?;
    let with_pins = width > OWNER_COLUMNS.len();
    let mut pins = Vec::new();
    let mut owners = Vec::with_capacity(records.len());
    let mut ids: HashMap<String, u64> = HashMap::new();
    let mut units: HashMap<(String, String, String), u64> = HashMap::new();
    let mut phones: HashMap<String, u64> = HashMap::new();
    for (line, r) in &records {
        let mut problems = Vec::new();
        let field = |i: usize| r.get(i).unwrap_or_default().to_string();
        let (id, name, site, building, unit) = (field(0), field(1), field(2), field(3), field(4));
        for (column, value) in [
            ("id", &id),
            ("name", &name),
            ("site", &site),
            ("building", &building),
            ("unit", &unit),
        ] {
            if value.is_empty() {
                problems.push(format!("{column} is empty"));
            }
        }
        if let Some(first) = ids.insert(id.clone(), *line)
            && !id.is_empty()
        {
            problems.push(format!("id {id} is already on line {first}"));
        }
        let key = (site.clone(), building.clone(), unit.clone());
        if let Some(first) = units.insert(key, *line) {
            problems.push(format!(
                "unit {building}/{unit} at {site} is already on line {first}"
            ));
        } else if let Some(other) = db.unit_owner(&site, &building, &unit)?
            && other != id
        {
            problems.push(format!(
                "unit {building}/{unit} at {site} belongs to {other} in the database"
            ));
        }
        let mut numbers = Vec::new();
        for raw in field(5).split(';').map(str::trim).filter(|p| !p.is_empty()) {
            match normalize(raw, plan) {
                Some(e164) => {
                    if let Some(first) = phones.insert(e164.clone(), *line) {
                        problems.push(format!("phone {raw} is already on line {first}"));
                    } else if let Some(other) = db.phone_owner(&e164)?
                        && other != id
                    {
                        problems.push(format!("phone {raw} belongs to {other} in the database"));
                    }
                    numbers.push(e164);
                }
                None => problems.push(format!("phone {raw:?} is not a phone number")),
            }
        }
        if numbers.is_empty() && problems.iter().all(|p| !p.starts_with("phone")) {
            problems.push("no phone number".into());
        }
        let language = field(6);
        if !["en", "zh"].contains(&language.as_str()) {
            problems.push(format!("language {language:?} is not en or zh"));
        }
        let class = field(7).parse::<super::OwnerClass>();
        if let Err(e) = &class {
            problems.push(e.clone());
        }
        let points = field(8).parse::<i64>().ok().filter(|p| *p >= 0);
        if points.is_none() {
            problems.push(format!(
                "points {:?} is not a whole number of 0 or more",
                field(8)
            ));
        }
        let balance = cents(&field(9));
        if balance.is_none() {
            problems.push(format!(
                "fee_balance {:?} is not an amount like 1234.50",
                field(9)
            ));
        }
        let pin = field(10);
        if with_pins
            && !pin.is_empty()
            && !((4..=8).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit()))
        {
            // The PIN itself is never repeated in an error.
            problems.push("pin must be 4 to 8 digits, or empty for none".into());
        }
        if !problems.is_empty() {
            bad.push(BadRow {
                line: *line,
                message: problems.join("; "),
            });
            continue;
        }
        if with_pins {
            pins.push((id.clone(), (!pin.is_empty()).then_some(pin)));
        }
        owners.push(Owner {
            id,
            name,
            site,
            building,
            unit,
            phones: numbers,
            language,
            class: class.expect("checked"),
            points: points.expect("checked"),
            fee_balance_cents: balance.expect("checked"),
        });
    }
    refuse_bad_rows(path, bad)?;
    db.write_owners(&owners)?;
    // Without the column, PINs already set stay as they are.
    db.write_pins(&pins)?;
    Ok(owners.len())
}

/// Checks every gift row; imports all of them or none.
pub fn import_gifts(db: &OwnerDb, path: &Path) -> Result<usize, OwnersError> {
    let (records, mut bad, _) = rows(path, &GIFT_COLUMNS, None)?;
    let mut gifts = Vec::new();
    let mut ids: HashMap<String, u64> = HashMap::new();
    for (line, r) in &records {
        let mut problems = Vec::new();
        let (id, name) = (r[0].to_string(), r[1].to_string());
        if id.is_empty() || name.is_empty() {
            problems.push("id and name must not be empty".to_string());
        }
        if let Some(first) = ids.insert(id.clone(), *line) {
            problems.push(format!("id {id} is already on line {first}"));
        }
        let points = r[2].parse::<i64>().ok().filter(|p| *p > 0);
        if points.is_none() {
            problems.push(format!("points {:?} is not a whole number above 0", &r[2]));
        }
        if problems.is_empty() {
            gifts.push(Gift {
                id,
                name,
                points: points.expect("checked"),
            });
        } else {
            bad.push(BadRow {
                line: *line,
                message: problems.join("; "),
            });
        }
    }
    refuse_bad_rows(path, bad)?;
    db.write_gifts(&gifts)?;
    Ok(gifts.len())
}

#[cfg(test)]
mod tests {
    use super::cents;

    #[test]
    fn amounts_in_cents() {
        assert_eq!(cents("1234.5"), Some(123_450));
        assert_eq!(cents("0.05"), Some(5));
        assert_eq!(cents("-7"), Some(-700));
        assert_eq!(cents("12"), Some(1200));
        for bad in ["", "1.234", "abc", "1,5", ".5", "--1", "1e3"] {
            assert_eq!(cents(bad), None, "{bad}");
        }
    }
}
