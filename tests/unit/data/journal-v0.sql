-- A lease journal as nefeature 0.1.0 wrote it before journals had a schema version
-- (layout 0, user_version 0): written by that release's LeaseJournal, dumped with
-- sqlite3's iterdump.  tests/unit/test_journal_upgrade.py opens it with today's code.
BEGIN TRANSACTION;
CREATE TABLE leases (
    address          INTEGER PRIMARY KEY,
    pool             TEXT NOT NULL,
    client           BLOB NOT NULL,
    hardware_address BLOB NOT NULL,
    state            TEXT NOT NULL,
    start            REAL NOT NULL,
    expiry           REAL,
    client_id        BLOB,
    hostname         TEXT,
    option82         BLOB,
    origin           TEXT NOT NULL,
    static           INTEGER NOT NULL
);
INSERT INTO "leases" VALUES(168430090,'pool1',X'01020000000001',X'020000000001','bound',1795000000.0,1795086400.0,X'01020000000001','host-a',X'010B566C616E69663130303A31020964656D6F2D72656C79','local',0);
INSERT INTO "leases" VALUES(168430091,'pool1',X'68020000000002',X'020000000002','released',1795000100.0,1795000200.0,NULL,NULL,NULL,'peer-sync',0);
INSERT INTO "leases" VALUES(168430092,'pool1',X'68020000000003',X'020000000003','bound',1795000300.0,NULL,NULL,NULL,NULL,'local',1);
COMMIT;
