//! The owner database against real SQLite files.

use super::import::{import_gifts, import_owners};
use super::phone::NumberPlan;
use super::*;

const HEADER: &str = "id,name,site,building,unit,phones,language,class,points,fee_balance\n";

fn plan() -> NumberPlan {
    NumberPlan {
        area_code: Some("21".into()),
        ..NumberPlan::default()
    }
}

fn db_with(rows: &str) -> (tempfile::TempDir, OwnerDb) {
    let dir = tempfile::tempdir().unwrap();
    let db = OwnerDb::open(&dir.path().join("owners.db")).unwrap();
    let csv = dir.path().join("owners.csv");
    std::fs::write(&csv, format!("{HEADER}{rows}")).unwrap();
    import_owners(&db, &csv, &plan()).unwrap();
    let gifts = dir.path().join("gifts.csv");
    std::fs::write(
        &gifts,
        "id,name,points\nG1,Rice cooker,500\nG2,\"Umbrella, large\",120\n",
    )
    .unwrap();
    import_gifts(&db, &gifts).unwrap();
    (dir, db)
}

const TWO: &str = "O-1,Li Wei,garden,3,1202,13800138000;021-5555 1234,zh,vip,800,1234.50\n\
                   O-2,\"Smith, Ann\",garden,4,0101,+44 20 7946 0958,en,ordinary,100,-20\n";

#[test]
fn imported_owners_are_found_by_any_form_of_their_number() {
    let (_dir, db) = db_with(TWO);
    assert_eq!(db.count().unwrap(), 2);
    let li = db.by_phone("+8613800138000").unwrap().unwrap();
    assert_eq!(li.name, "Li Wei");
    assert_eq!(li.class, OwnerClass::Vip);
    assert_eq!(li.fee_balance_cents, 123_450);
    assert_eq!(li.phones, ["+8613800138000", "+862155551234"]);
    assert_eq!(
        db.by_phone("+862155551234").unwrap().map(|o| o.id),
        Some("O-1".into())
    );
    let ann = db.by_phone("+442079460958").unwrap().unwrap();
    assert_eq!(
        (ann.name.as_str(), ann.fee_balance_cents),
        ("Smith, Ann", -2000)
    );
    assert_eq!(
        db.by_typed_unit("garden", "4", "0101")
            .unwrap()
            .map(|o| o.id),
        Some("O-2".into())
    );
    assert!(db.by_typed_unit("garden", "4", "9999").unwrap().is_none());
    assert!(db.by_phone("+8613900000000").unwrap().is_none());
}

#[test]
fn bad_rows_are_reported_by_line_and_nothing_is_imported() {
    let dir = tempfile::tempdir().unwrap();
    let db = OwnerDb::open(&dir.path().join("owners.db")).unwrap();
    let csv = dir.path().join("owners.csv");
    std::fs::write(
        &csv,
        format!(
            "{HEADER}\
             O-1,Li Wei,garden,3,1202,13800138000,zh,vip,800,1234.50\n\
             O-2,Wang,garden,3,1203,not-a-phone,zh,ordinary,10,0\n\
             O-3,Zhao,garden,3,1202,13900000000,fr,gold,-5,12.345\n\
             O-1,Again,garden,5,0101,13800138000,en,ordinary,0,0\n\
             O-5,Short,garden\n"
        ),
    )
    .unwrap();
    let err = import_owners(&db, &csv, &plan()).unwrap_err().to_string();
    assert!(err.contains("4 bad row(s), nothing imported"), "{err}");
    for expected in [
        "line 3: phone \"not-a-phone\" is not a phone number",
        "line 4: unit 3/1202 at garden is already on line 2",
        "language \"fr\" is not en or zh",
        "class \"gold\" is not ordinary, vip or key",
        "points \"-5\" is not a whole number of 0 or more",
        "fee_balance \"12.345\"",
        "line 5: id O-1 is already on line 2; phone 13800138000 is already on line 2",
        "line 6: 3 fields, expected 10",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in\n{err}");
    }
    assert_eq!(
        db.count().unwrap(),
        0,
        "a good row was imported with bad ones"
    );
}

#[test]
fn wrong_header_names_the_expected_columns() {
    let dir = tempfile::tempdir().unwrap();
    let db = OwnerDb::open(&dir.path().join("owners.db")).unwrap();
    let csv = dir.path().join("owners.csv");
    std::fs::write(&csv, "id,name,phone\nO-1,Li,138\n").unwrap();
    let err = import_owners(&db, &csv, &plan()).unwrap_err().to_string();
    assert!(err.contains("the header must be id,name,site"), "{err}");
}

#[test]
fn a_number_owned_by_someone_else_in_the_database_is_refused() {
    let (dir, db) = db_with(TWO);
    let csv = dir.path().join("more.csv");
    std::fs::write(
        &csv,
        format!("{HEADER}O-9,New,garden,9,0909,+86 138 0013 8000,zh,ordinary,0,0\n"),
    )
    .unwrap();
    let err = import_owners(&db, &csv, &plan()).unwrap_err().to_string();
    assert!(
        err.contains("line 2: phone +86 138 0013 8000 belongs to O-1"),
        "{err}"
    );
    // Re-importing an owner with their own number updates them.
    std::fs::write(
        &csv,
        format!("{HEADER}O-1,Li Wei,garden,3,1202,13800138000,en,key,900,0\n"),
    )
    .unwrap();
    import_owners(&db, &csv, &plan()).unwrap();
    let li = db.by_id("O-1").unwrap().unwrap();
    assert_eq!(
        (li.language.as_str(), li.class, li.points),
        ("en", OwnerClass::Key, 900)
    );
    assert_eq!(li.phones, ["+8613800138000"], "numbers replaced");
}

#[test]
fn points_are_deducted_exactly_once_per_request() {
    let (_dir, db) = db_with(TWO);
    let gifts = db.gifts().unwrap();
    assert_eq!(
        gifts
            .iter()
            .map(|g| (g.id.as_str(), g.points))
            .collect::<Vec<_>>(),
        [("G2", 120), ("G1", 500)]
    );
    assert_eq!(
        db.redeem("call-1/1", "O-1", "G1", 1).unwrap(),
        Redeemed::Done { points_left: 300 }
    );
    // The confirmation key pressed again (or the request retried).
    assert_eq!(
        db.redeem("call-1/1", "O-1", "G1", 2).unwrap(),
        Redeemed::AlreadyDone { points_left: 300 }
    );
    assert_eq!(
        db.redeem("call-1/2", "O-1", "G1", 3).unwrap(),
        Redeemed::NotEnoughPoints {
            points: 300,
            price: 500
        }
    );
    assert_eq!(
        db.redeem("call-1/3", "O-1", "G9", 4).unwrap(),
        Redeemed::UnknownGift
    );
    assert_eq!(db.by_id("O-1").unwrap().unwrap().points, 300);
}

#[test]
fn racing_confirmations_deduct_once() {
    let (dir, db) = db_with(TWO);
    drop(db);
    let path = dir.path().join("owners.db");
    // Two connections (two processes, or a retried request) at once.
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || {
                let db = OwnerDb::open(&path).unwrap();
                db.redeem("call-7/1", "O-1", "G2", 1).unwrap()
            })
        })
        .collect();
    let results: Vec<Redeemed> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let done = results
        .iter()
        .filter(|r| matches!(r, Redeemed::Done { .. }))
        .count();
    assert_eq!(done, 1, "{results:?}");
    let db = OwnerDb::open(&path).unwrap();
    assert_eq!(db.by_id("O-1").unwrap().unwrap().points, 800 - 120);
}

#[test]
fn pins_are_imported_hashed_checked_and_kept_when_the_column_is_left_out() {
    let (dir, db) = db_with(TWO);
    assert!(!db.check_pin("O-1", "4711", 0).unwrap(), "no PIN yet");
    let csv = dir.path().join("pins.csv");
    std::fs::write(
        &csv,
        format!(
            "{}pin\n{}",
            HEADER.trim_end().to_string() + ",",
            TWO.lines()
                .zip(["4711", ""])
                .map(|(l, p)| format!("{},{p}\n", l.trim()))
                .collect::<String>()
        ),
    )
    .unwrap();
    import_owners(&db, &csv, &plan()).unwrap();
    assert!(db.check_pin("O-1", "4711", 0).unwrap());
    assert!(!db.check_pin("O-1", "4712", 0).unwrap());
    assert!(!db.check_pin("O-1", "", 0).unwrap());
    assert!(!db.check_pin("O-2", "4711", 0).unwrap(), "O-2 has none");
    assert!(!db.check_pin("O-404", "4711", 0).unwrap());
    // Stored salted and hashed: not the PIN.
    let stored: String = db
        .with(|c| {
            c.query_row("SELECT pin_hash FROM owners WHERE id = 'O-1'", [], |r| {
                r.get(0)
            })
        })
        .unwrap();
    // (Not "the hex holds no 4711": random hex does, about once in 800.)
    let parts: Vec<&str> = stored.split('$').collect();
    assert!(
        matches!(parts[..], ["sha256", salt, _] if salt.len() == 16),
        "{stored}"
    );
    assert_eq!(stored, super::pin_hash(parts[1], "O-1", "4711"));
    // Imported again without the column: the PIN stays.
    let plain = dir.path().join("plain.csv");
    std::fs::write(&plain, format!("{HEADER}{TWO}")).unwrap();
    import_owners(&db, &plain, &plan()).unwrap();
    assert!(db.check_pin("O-1", "4711", 0).unwrap());
    // A bad PIN is a bad row, named without repeating it.
    std::fs::write(
        &csv,
        format!(
            "{}pin\n{},12a4\n",
            HEADER.trim_end().to_string() + ",",
            TWO.lines().next().unwrap().trim()
        ),
    )
    .unwrap();
    let err = import_owners(&db, &csv, &plan()).unwrap_err().to_string();
    assert!(
        err.contains("pin must be 4 to 8 digits") && !err.contains("12a4"),
        "{err}"
    );
    assert!(db.check_pin("O-1", "4711", 0).unwrap(), "nothing imported");
}

#[test]
fn five_wrong_pins_lock_the_pin_for_a_quarter_of_an_hour() {
    let (dir, db) = db_with(TWO);
    let csv = dir.path().join("pins.csv");
    std::fs::write(
        &csv,
        format!(
            "{}pin\n{},4711\n",
            HEADER.trim_end().to_string() + ",",
            TWO.lines().next().unwrap().trim()
        ),
    )
    .unwrap();
    import_owners(&db, &csv, &plan()).unwrap();
    let minute = 60_000;
    for i in 0..5 {
        assert!(!db.check_pin("O-1", &format!("000{i}"), i * minute).unwrap());
    }
    // Locked: even the right PIN is refused now.
    assert!(!db.check_pin("O-1", "4711", 6 * minute).unwrap());
    // A quarter of an hour after the first wrong one, it works again.
    assert!(db.check_pin("O-1", "4711", 15 * minute).unwrap());
    // A right PIN clears the count: four wrong ones do not lock.
    for i in 0..4 {
        assert!(!db.check_pin("O-1", "9999", 16 * minute + i).unwrap());
    }
    assert!(db.check_pin("O-1", "4711", 17 * minute).unwrap());
    // Owners without a PIN are not counted at all.
    for _ in 0..10 {
        assert!(!db.check_pin("O-2", "1234", 18 * minute).unwrap());
    }
    assert!(db.pin_failures.lock().unwrap().get("O-2").is_none());
}
