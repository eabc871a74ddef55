INSERT INTO runs AS r (source_id, run_id, collector, instance, target, status, started,
finished, duration, counts, error, end_record)
SELECT DISTINCT ON (so.id, st.run, st.collector) so.id, st.run, st.collector, st.col,
st.target, st.status, st.started, st.finished, st.duration, st.counts::jsonb, st.error,
st.id
FROM stage_runs st
JOIN sources so ON so.name = st.src WHERE
st.ord BETWEEN $1::int4 AND $2::int4 AND st.is_end
ORDER BY so.id, st.run, st.collector, st.ord DESC
ON CONFLICT (source_id, run_id, collector) DO UPDATE SET status = excluded.status,
started = coalesce (r.started, excluded.started), finished = excluded.finished,
duration = excluded.duration, counts = excluded.counts, error = excluded.error,
target = coalesce (r.target, excluded.target), end_record = excluded.end_record
