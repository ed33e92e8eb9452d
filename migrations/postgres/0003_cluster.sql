-- Two or more hotline nodes on one store: one row says who is active (the
-- lease, on the database's clock) and with which fencing term; every
-- append checks the term (src/cluster). Each node's heartbeat is shown by
-- `hotline cluster status`.
CREATE TABLE cluster_lease (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    holder TEXT,
    term BIGINT NOT NULL DEFAULT 0,
    expires_at TIMESTAMPTZ NOT NULL DEFAULT 'epoch'
);
INSERT INTO cluster_lease (id) VALUES (1);

CREATE TABLE cluster_nodes (
    node TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    term BIGINT NOT NULL,
    sip TEXT NOT NULL,
    heartbeat_at TIMESTAMPTZ NOT NULL
);
