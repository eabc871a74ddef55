-- Content hashes of the immutable kinds' rows (proto/record.h,
-- record_content_hash: the id and the record's body), so that relationald
-- tells the same record again (redelivery, re-collection: nothing to do)
-- from other content under an id it holds (a forgery or a collector bug:
-- the row stays, the record is handed to the writer loop as a conflict and
-- filed). Rows stored before this migration have none: the first record
-- seen again for them fills it in.

ALTER TABLE commits ADD COLUMN content bytea CHECK (length (content) = 16);
ALTER TABLE ci_tests ADD COLUMN content bytea CHECK (length (content) = 16);
ALTER TABLE code_stats ADD COLUMN content bytea CHECK (length (content) = 16);
