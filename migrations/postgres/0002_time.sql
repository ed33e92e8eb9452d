-- Call history and reports read the log by time: a day, an hour, the
-- calls of one number.
CREATE INDEX events_by_time ON events (at_ms);
