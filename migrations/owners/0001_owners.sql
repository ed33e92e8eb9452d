-- The owner database: who calls, where they live, what they hold.
CREATE TABLE owners (
    id        TEXT PRIMARY KEY,          -- e.g. O-0001
    name      TEXT NOT NULL,
    site      TEXT NOT NULL,             -- the property site (community)
    building  TEXT NOT NULL,
    unit      TEXT NOT NULL,
    language  TEXT NOT NULL CHECK (language IN ('en', 'zh')),
    class     TEXT NOT NULL CHECK (class IN ('ordinary', 'vip', 'key')),
    points    INTEGER NOT NULL CHECK (points >= 0),
    fee_balance_cents INTEGER NOT NULL   -- owed to the company; negative: credit
);
CREATE UNIQUE INDEX owners_by_unit ON owners (site, building, unit);

-- Each number (E.164) belongs to one owner.
CREATE TABLE owner_phones (
    phone  TEXT PRIMARY KEY,
    owner  TEXT NOT NULL REFERENCES owners (id) ON DELETE CASCADE
);
CREATE INDEX owner_phones_by_owner ON owner_phones (owner);

CREATE TABLE gifts (
    id      TEXT PRIMARY KEY,
    name    TEXT NOT NULL,
    points  INTEGER NOT NULL CHECK (points > 0)
);

-- Points spent. `request` is unique per redemption attempt (call and step),
-- so a repeated confirmation deducts nothing more.
CREATE TABLE redemptions (
    id       INTEGER PRIMARY KEY,
    request  TEXT NOT NULL UNIQUE,
    owner    TEXT NOT NULL REFERENCES owners (id),
    gift     TEXT NOT NULL REFERENCES gifts (id),
    points   INTEGER NOT NULL,
    at_ms    INTEGER NOT NULL
);
