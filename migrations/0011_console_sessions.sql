-- Operator console sessions, shared by every instance: the cookie holds a
-- random id, the table its SHA-256 (a read of the table gives no usable
-- cookie), the role it logged in as, the operator's name (recorded in
-- audit events) and the CSRF token every form of the session carries.
-- A new table only: safe while an older version runs.
CREATE TABLE console_sessions (
    session_hash  text        PRIMARY KEY,
    role          text        NOT NULL CHECK (role IN ('viewer', 'operator')),
    operator      text        NOT NULL CHECK (length(operator) BETWEEN 1 AND 64),
    csrf_token    text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);
