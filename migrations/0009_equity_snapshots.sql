-- Each account's equity at a session's close (cash plus long positions at
-- the venue's last price), taken once per session by the session_close
-- job; `GET /v2/account` shows the latest as Alpaca's last_equity.
-- A new table only: safe while an older version runs.
CREATE TABLE equity_snapshots (
    account_id    uuid        NOT NULL REFERENCES accounts,
    session_date  date        NOT NULL,
    equity        numeric     NOT NULL,
    taken_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, session_date)
);
