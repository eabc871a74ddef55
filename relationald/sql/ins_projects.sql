-- A run that names its project maps its source to it; the newest naming wins
INSERT INTO projects AS p (source_id, project, observed, run_id)
SELECT DISTINCT ON (so.id) so.id, st.project, coalesce (st.started, now ()), st.run
FROM stage_runs st
JOIN sources so ON so.name = st.src WHERE
st.ord BETWEEN $1::int4 AND $2::int4 AND NOT st.is_end AND st.project IS NOT NULL AND st.project <> ''
ORDER BY so.id, st.started DESC NULLS LAST, st.ord DESC
ON CONFLICT (source_id) DO UPDATE SET project = excluded.project,
observed = excluded.observed, run_id = excluded.run_id
WHERE p.observed <= excluded.observed
