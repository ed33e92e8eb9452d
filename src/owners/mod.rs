//! The owner database: owners (site, building, unit, phone numbers,
//! language, class, loyalty points, fee balance), the gift catalogue and the
//! points spent on it. Embedded SQLite, next to the event store.
//!
//! * `phone`: caller numbers to E.164, so any way of writing one finds the owner;
//! * `import`: CSV import that checks every row and imports all or nothing.
//!
//! Calls are short and few next to the SIP traffic; each runs on the
//! blocking pool (the runtime's `spawn_blocking`), never on the switch's thread.

pub mod import;
pub mod phone;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

const MIGRATIONS: [&str; 2] = [
    include_str!("../../migrations/owners/0001_owners.sql"),
    include_str!("../../migrations/owners/0002_pin.sql"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OwnerClass {
    Ordinary,
    Vip,
    /// An unresolved problem and a voice others listen to: first in line.
    Key,
}

impl OwnerClass {
    pub fn as_str(self) -> &'static str {
        match self {
            OwnerClass::Ordinary => "ordinary",
            OwnerClass::Vip => "vip",
            OwnerClass::Key => "key",
        }
    }
}

impl std::str::FromStr for OwnerClass {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ordinary" => Ok(Self::Ordinary),
            "vip" => Ok(Self::Vip),
            "key" => Ok(Self::Key),
            _ => Err(format!("class {s:?} is not ordinary, vip or key")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Owner {
    pub id: String,
    pub name: String,
    pub site: String,
    pub building: String,
    pub unit: String,
    /// E.164.
    pub phones: Vec<String>,
    /// `en` or `zh`.
    pub language: String,
    pub class: OwnerClass,
    pub points: i64,
    /// Owed to the company, in cents (fen); negative is a credit.
    pub fee_balance_cents: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gift {
    pub id: String,
    pub name: String,
    pub points: i64,
}

/// What a redemption did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redeemed {
    /// Deducted now.
    Done {
        points_left: i64,
    },
    /// This request was already carried out: nothing more deducted.
    AlreadyDone {
        points_left: i64,
    },
    NotEnoughPoints {
        points: i64,
        price: i64,
    },
    UnknownGift,
    UnknownOwner,
}

#[derive(Debug, thiserror::Error)]
pub enum OwnersError {
    #[error("owner database {path}: {message}")]
    Db { path: PathBuf, message: String },
    #[error("owner database schema version {found} is newer than this hotline knows ({known})")]
    SchemaTooNew { found: i64, known: i64 },
    #[error(transparent)]
    Import(#[from] import::ImportError),
}

/// How a PIN is kept: `sha256$salt$hex(SHA-256(salt:id:pin))`.
fn pin_hash(salt: &str, id: &str, pin: &str) -> String {
    let digest = crate::sip::digest::Algorithm::Sha256.hash(&format!("{salt}:{id}:{pin}"));
    format!("sha256${salt}${digest}")
}

pub struct OwnerDb {
    path: PathBuf,
    /// One connection: a plain mutex held for one short statement or
    /// transaction, never across an await (callers are on the blocking pool).
    conn: Mutex<Connection>,
    /// Caller ID: asked on the switch's own turn for every call, so it has
    /// a read connection of its own (WAL: it never waits for a writer, nor
    /// behind another request's transaction on `conn`).
    callers: Mutex<Connection>,
    /// Wrong PINs per owner: how many, since when (a plain mutex, held for
    /// one map update).
    pin_failures: Mutex<std::collections::HashMap<String, (u32, i64)>>,
}

/// Wrong PINs that lock an owner's PIN, and for how long (15 minutes).
pub const PIN_TRIES: u32 = 5;
pub const PIN_LOCK_MS: i64 = 15 * 60 * 1000;

/// What [`owner_row`] reads, of the table named `o` (a macro, for
/// `concat!`: the statements are written once, not per lookup).
macro_rules! owner_columns {
    () => {
        "o.id, o.name, o.site, o.building, o.unit, o.language, o.class, o.points, o.fee_balance_cents"
    };
}

/// An owner from a row of `owner_columns!()`; their numbers not listed.
fn owner_row(r: &rusqlite::Row) -> rusqlite::Result<Owner> {
    let class: String = r.get(6)?;
    Ok(Owner {
        id: r.get(0)?,
        name: r.get(1)?,
        site: r.get(2)?,
        building: r.get(3)?,
        unit: r.get(4)?,
        phones: Vec::new(),
        language: r.get(5)?,
        class: class.parse().unwrap_or(OwnerClass::Ordinary),
        points: r.get(7)?,
        fee_balance_cents: r.get(8)?,
    })
}

impl OwnerDb {
    pub fn open(path: &Path) -> Result<Self, OwnersError> {
        let db_err = |e: rusqlite::Error| OwnersError::Db {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        let mut conn = Connection::open(path).map_err(db_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db_err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(db_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(db_err)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(db_err)?;
        if version as usize > MIGRATIONS.len() {
            return Err(OwnersError::SchemaTooNew {
                found: version,
                known: MIGRATIONS.len() as i64,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.transaction().map_err(db_err)?;
            tx.execute_batch(sql).map_err(db_err)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)
                .map_err(db_err)?;
            tx.commit().map_err(db_err)?;
        }
        let callers = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(db_err)?;
        Ok(Self {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
            callers: Mutex::new(callers),
            pin_failures: Mutex::new(std::collections::HashMap::new()),
        })
    }

    fn err(&self, e: rusqlite::Error) -> OwnersError {
        OwnersError::Db {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, OwnersError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut conn).map_err(|e| self.err(e))
    }

    /// The owner one of whose numbers is `e164`.
    pub fn by_phone(&self, e164: &str) -> Result<Option<Owner>, OwnersError> {
        let id: Option<String> = self.with(|c| {
            c.prepare_cached("SELECT owner FROM owner_phones WHERE phone = ?1")?
                .query_row([e164], |r| r.get(0))
                .optional()
        })?;
        match id {
            Some(id) => self.by_id(&id),
            None => Ok(None),
        }
    }

    /// The owner calling from `e164`, as the switch needs them (their
    /// numbers not listed): one statement, on the callers' own connection.
    pub fn caller(&self, e164: &str) -> Result<Option<Owner>, OwnersError> {
        let conn = self.callers.lock().unwrap_or_else(|p| p.into_inner());
        conn.prepare_cached(concat!(
            "SELECT ",
            owner_columns!(),
            " FROM owner_phones p JOIN owners o ON o.id = p.owner WHERE p.phone = ?1"
        ))
        .and_then(|mut stmt| stmt.query_row([e164], owner_row).optional())
        .map_err(|e| self.err(e))
    }

    /// The owner of a unit at a site.
    pub fn by_unit(
        &self,
        site: &str,
        building: &str,
        unit: &str,
    ) -> Result<Option<Owner>, OwnersError> {
        let id: Option<String> = self.with(|c| {
            c.query_row(
                "SELECT id FROM owners WHERE site = ?1 AND building = ?2 AND unit = ?3",
                [site, building, unit],
                |r| r.get(0),
            )
            .optional()
        })?;
        match id {
            Some(id) => self.by_id(&id),
            None => Ok(None),
        }
    }

    /// The owner of a unit typed on the keypad: building and unit as digits
    /// (`B3` is typed `3`, `12-02` is typed `1202`), at one site.
    pub fn by_typed_unit(
        &self,
        site: &str,
        building: &str,
        unit: &str,
    ) -> Result<Option<Owner>, OwnersError> {
        let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
        let units: Vec<(String, String, String)> = self.with(|c| {
            let mut stmt =
                c.prepare_cached("SELECT id, building, unit FROM owners WHERE site = ?1")?;
            stmt.query_map([site], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        })?;
        let found = units
            .into_iter()
            .find(|(_, b, u)| digits(b) == building && digits(u) == unit);
        match found {
            Some((id, _, _)) => self.by_id(&id),
            None => Ok(None),
        }
    }

    pub fn by_id(&self, id: &str) -> Result<Option<Owner>, OwnersError> {
        self.with(|c| {
            let owner = c
                .prepare_cached(concat!(
                    "SELECT ",
                    owner_columns!(),
                    " FROM owners o WHERE o.id = ?1"
                ))?
                .query_row([id], owner_row)
                .optional()?;
            let Some(mut owner) = owner else {
                return Ok(None);
            };
            let mut stmt =
                c.prepare_cached("SELECT phone FROM owner_phones WHERE owner = ?1 ORDER BY phone")?;
            owner.phones = stmt
                .query_map([id], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            Ok(Some(owner))
        })
    }

    pub fn count(&self) -> Result<usize, OwnersError> {
        self.with(|c| c.query_row("SELECT COUNT(*) FROM owners", [], |r| r.get::<_, i64>(0)))
            .map(|n| n as usize)
    }

    /// The catalogue, cheapest first.
    pub fn gifts(&self) -> Result<Vec<Gift>, OwnersError> {
        self.with(|c| {
            let mut stmt =
                c.prepare_cached("SELECT id, name, points FROM gifts ORDER BY points, id")?;
            stmt.query_map([], |r| {
                Ok(Gift {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    points: r.get(2)?,
                })
            })?
            .collect()
        })
    }

    /// Spends the gift's points, once per `request` (e.g. the call id and
    /// the menu step): a repeated request deducts nothing more.
    pub fn redeem(
        &self,
        request: &str,
        owner: &str,
        gift: &str,
        at_ms: i64,
    ) -> Result<Redeemed, OwnersError> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let points: Option<i64> = tx
                .query_row("SELECT points FROM owners WHERE id = ?1", [owner], |r| r.get(0))
                .optional()?;
            let Some(points) = points else {
                return Ok(Redeemed::UnknownOwner);
            };
            let done: Option<i64> = tx
                .query_row(
                    "SELECT id FROM redemptions WHERE request = ?1",
                    [request],
                    |r| r.get(0),
                )
                .optional()?;
            if done.is_some() {
                return Ok(Redeemed::AlreadyDone {
                    points_left: points,
                });
            }
            let price: Option<i64> = tx
                .query_row("SELECT points FROM gifts WHERE id = ?1", [gift], |r| r.get(0))
                .optional()?;
            let Some(price) = price else {
                return Ok(Redeemed::UnknownGift);
            };
            if points < price {
                return Ok(Redeemed::NotEnoughPoints { points, price });
            }
            tx.execute(
                "INSERT INTO redemptions (request, owner, gift, points, at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![request, owner, gift, price, at_ms],
            )?;
            tx.execute(
                "UPDATE owners SET points = points - ?1 WHERE id = ?2",
                params![price, owner],
            )?;
            tx.commit()?;
            Ok(Redeemed::Done {
                points_left: points - price,
            })
        })
    }

    /// Writes checked owners in one transaction (insert or replace by id,
    /// their numbers replaced).
    pub(crate) fn write_owners(&self, owners: &[Owner]) -> Result<(), OwnersError> {
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut upsert = tx.prepare_cached(
                    "INSERT INTO owners (id, name, site, building, unit, language, class, points, fee_balance_cents) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
                     ON CONFLICT (id) DO UPDATE SET name = excluded.name, site = excluded.site, \
                     building = excluded.building, unit = excluded.unit, language = excluded.language, \
                     class = excluded.class, points = excluded.points, \
                     fee_balance_cents = excluded.fee_balance_cents",
                )?;
                let mut forget = tx.prepare_cached("DELETE FROM owner_phones WHERE owner = ?1")?;
                let mut phone =
                    tx.prepare_cached("INSERT INTO owner_phones (phone, owner) VALUES (?1, ?2)")?;
                for o in owners {
                    upsert.execute(params![
                        o.id,
                        o.name,
                        o.site,
                        o.building,
                        o.unit,
                        o.language,
                        o.class.as_str(),
                        o.points,
                        o.fee_balance_cents
                    ])?;
                    forget.execute([&o.id])?;
                    for p in &o.phones {
                        phone.execute([p, &o.id])?;
                    }
                }
            }
            tx.commit()
        })
    }

    /// Sets (Some) or clears (None) owners' PINs; stored hashed with a
    /// salt of their own.
    pub(crate) fn write_pins(&self, pins: &[(String, Option<String>)]) -> Result<(), OwnersError> {
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut set = tx.prepare_cached("UPDATE owners SET pin_hash = ?2 WHERE id = ?1")?;
                for (id, pin) in pins {
                    let hash = pin
                        .as_deref()
                        .map(|p| pin_hash(&format!("{:016x}", rand::random::<u64>()), id, p));
                    set.execute(params![id, hash])?;
                }
            }
            tx.commit()
        })
    }

    /// Whether `pin` is owner `id`'s PIN (false for an owner without one).
    /// After `PIN_TRIES` wrong ones the owner's PIN is locked, the right one
    /// included, until `PIN_LOCK_MS` after the first of them: a 4-digit PIN
    /// cannot be guessed one call at a time. `now_ms` is the caller's clock.
    pub fn check_pin(&self, id: &str, pin: &str, now_ms: i64) -> Result<bool, OwnersError> {
        let locked = {
            let mut failures = self.pin_failures.lock().unwrap_or_else(|p| p.into_inner());
            failures.retain(|_, (_, since)| now_ms - *since < PIN_LOCK_MS);
            failures.get(id).is_some_and(|(n, _)| *n >= PIN_TRIES)
        };
        if locked {
            tracing::warn!(owner = %id, "PIN locked after too many wrong ones");
            return Ok(false);
        }
        let right = self.pin_matches(id, pin)?;
        let mut failures = self.pin_failures.lock().unwrap_or_else(|p| p.into_inner());
        if right {
            failures.remove(id);
        } else if self.has_pin(id)? {
            // Only owners with a PIN are counted: the map stays as small as
            // the owner database, whatever callers type.
            let entry = failures.entry(id.to_string()).or_insert((0, now_ms));
            entry.0 += 1;
        }
        Ok(right)
    }

    fn has_pin(&self, id: &str) -> Result<bool, OwnersError> {
        self.with(|c| {
            c.query_row(
                "SELECT pin_hash IS NOT NULL FROM owners WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()
            .map(|v| v.unwrap_or(false))
        })
    }

    fn pin_matches(&self, id: &str, pin: &str) -> Result<bool, OwnersError> {
        let stored: Option<String> = self.with(|c| {
            c.query_row("SELECT pin_hash FROM owners WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .map(Option::flatten)
        })?;
        Ok(stored.is_some_and(|s| {
            let mut parts = s.splitn(3, '$');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("sha256"), Some(salt), Some(_)) => {
                    let expected = pin_hash(salt, id, pin);
                    expected.len() == s.len()
                        && expected
                            .bytes()
                            .zip(s.bytes())
                            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                            == 0
                }
                _ => false,
            }
        }))
    }

    pub(crate) fn write_gifts(&self, gifts: &[Gift]) -> Result<(), OwnersError> {
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut upsert = tx.prepare_cached(
                    "INSERT INTO gifts (id, name, points) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (id) DO UPDATE SET name = excluded.name, points = excluded.points",
                )?;
                for g in gifts {
                    upsert.execute(params![g.id, g.name, g.points])?;
                }
            }
            tx.commit()
        })
    }

    /// Owner of each number, for the import's cross-check.
    pub(crate) fn phone_owner(&self, e164: &str) -> Result<Option<String>, OwnersError> {
        self.with(|c| {
            c.query_row(
                "SELECT owner FROM owner_phones WHERE phone = ?1",
                [e164],
                |r| r.get(0),
            )
            .optional()
        })
    }

    /// The id of the owner of a unit, for the import's cross-check.
    pub(crate) fn unit_owner(
        &self,
        site: &str,
        building: &str,
        unit: &str,
    ) -> Result<Option<String>, OwnersError> {
        self.with(|c| {
            c.query_row(
                "SELECT id FROM owners WHERE site = ?1 AND building = ?2 AND unit = ?3",
                [site, building, unit],
                |r| r.get(0),
            )
            .optional()
        })
    }
}

#[cfg(test)]
mod tests;
