-- Starts never touch the status an end may already have set
INSERT INTO runs AS r (source_id, run_id, collector, instance, target, status, started,
config, start_record)
SELECT DISTINCT ON (so.id, st.run, st.collector) so.id, st.run, st.collector, st.col,
st.target, 'running', st.started, st.config::jsonb, st.id
FROM stage_runs st
JOIN sources so ON so.name = st.src WHERE
st.ord BETWEEN $1::int4 AND $2::int4 AND NOT st.is_end
ORDER BY so.id, st.run, st.collector, st.ord DESC
ON CONFLICT (source_id, run_id, collector) DO UPDATE SET instance = excluded.instance,
target = excluded.target, started = excluded.started, config = excluded.config,
start_record = excluded.start_record
