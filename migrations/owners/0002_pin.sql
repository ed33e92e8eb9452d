-- A PIN an owner can confirm who they are with when calling from a number
-- the hotline does not know or trust: "sha256$<salt>$<hex of
-- SHA-256(salt:owner id:pin)>", never the PIN itself. NULL: no PIN.
ALTER TABLE owners ADD COLUMN pin_hash TEXT;
