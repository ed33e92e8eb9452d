-- The append-only ticket event log. Rows are inserted once and never updated.
CREATE TABLE events (
    id      BIGINT PRIMARY KEY,    -- assigned under the table lock, in order
    ticket  BIGINT,                -- NULL for call events not tied to a ticket
    call    TEXT,                  -- SIP Call-ID, NULL for work-order events
    at_ms   BIGINT NOT NULL,       -- when it happened, Unix milliseconds
    actor   JSONB NOT NULL,        -- {"kind":"agent","id":"2001"}
    kind    TEXT NOT NULL,         -- event name, e.g. ticket_opened
    body    JSONB NOT NULL         -- the event, tagged by "type"
);
CREATE INDEX events_by_ticket ON events (ticket, id) WHERE ticket IS NOT NULL;
CREATE INDEX events_by_call ON events (call, id) WHERE call IS NOT NULL;
