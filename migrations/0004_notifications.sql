-- Delivery of agency notifications.

-- Attempts since the event was last (re)scheduled: the position in the retry schedule.
-- `attempts` counts every attempt ever made.
ALTER TABLE events ADD COLUMN schedule_attempts integer NOT NULL DEFAULT 0
    CHECK (schedule_attempts >= 0);

-- Every attempt's outcome, for the agency's and the operator's investigation.
CREATE TABLE event_attempts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id    text NOT NULL REFERENCES events (id),
    started_at  timestamptz NOT NULL,
    duration_ms integer NOT NULL CHECK (duration_ms >= 0),
    -- The HTTP status, when an answer came.
    http_status smallint,
    -- Why the attempt failed, when it did.
    error       text
);
CREATE INDEX event_attempts_event ON event_attempts (event_id, id);
