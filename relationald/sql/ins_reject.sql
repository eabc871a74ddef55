-- A record PostgreSQL refused, kept with why (once per record id)
INSERT INTO rejected_records (record_id, kind, source, error, sqlstate, record)
VALUES ($1, $2, $3, $4, $5, $6::jsonb)
ON CONFLICT (record_id) DO UPDATE SET error = excluded.error,
sqlstate = excluded.sqlstate, record = excluded.record, last_seen = now (),
attempts = rejected_records.attempts + 1
