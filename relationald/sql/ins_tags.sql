INSERT INTO tags AS t (id, source_id, name, target, annotated, tagger_name, tagger_email,
tagger_time, message, observed, run_id, tagger_tz)
SELECT DISTINCT ON (st.id) st.id, so.id, st.name, st.target, st.annotated,
st.tagger_name, st.tagger_email, to_timestamp (st.tagger_time), st.message, st.ts, st.run,
st.tagger_tz
FROM stage_tags st
JOIN sources so ON so.name = st.src WHERE
st.ord BETWEEN $1::int4 AND $2::int4 ORDER BY st.id, st.ts DESC, st.ord DESC
ON CONFLICT (id) DO UPDATE SET target = excluded.target, annotated = excluded.annotated,
tagger_name = excluded.tagger_name, tagger_email = excluded.tagger_email,
tagger_time = excluded.tagger_time, tagger_tz = excluded.tagger_tz,
message = excluded.message,
observed = excluded.observed, run_id = excluded.run_id, updated = now ()
WHERE t.observed <= excluded.observed
