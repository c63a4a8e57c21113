-- Personal-data keys. `pii_key` holds the fingerprint of the master key the data is encrypted
-- under (a service or command started with another key refuses to start) and the storage format
-- (2: HKDF subkeys, AES-GCM bound to table and column, HMAC blind index).
-- `person_keys` holds one data key per person whose personal fields appear in append-only audit
-- rows, itself encrypted under the master key; erasing the person deletes the key, so those audit
-- fields can never be read again (crypto-shredding) while the audit chain stays intact.
CREATE TABLE pii_key (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    fingerprint TEXT NOT NULL,
    format      INTEGER NOT NULL
);

CREATE TABLE person_keys (
    member_id INTEGER PRIMARY KEY,
    key_enc   TEXT NOT NULL
);
