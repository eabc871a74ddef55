-- Mutable state: the newest observation wins, whatever the order of arrival
INSERT INTO branches AS b (id, source_id, name, target, head, observed, run_id)
SELECT DISTINCT ON (st.id) st.id, so.id, st.name, st.target, st.head, st.ts, st.run
FROM stage_branches st
JOIN sources so ON so.name = st.src WHERE
st.ord BETWEEN $1::int4 AND $2::int4 ORDER BY st.id, st.ts DESC, st.ord DESC
ON CONFLICT (id) DO UPDATE SET target = excluded.target, head = excluded.head,
observed = excluded.observed, run_id = excluded.run_id, updated = now ()
WHERE b.observed <= excluded.observed
