INSERT INTO ci_builds AS b (id, source_id, pipeline, build_id, status, system, branch,
sha, started, finished, duration, trigger, tests, observed, run_id)
SELECT DISTINCT ON (st.id) st.id, so.id, st.pipeline, st.build_id, st.status, st.system,
st.branch, st.sha, st.started, st.finished, st.duration, st.trigger, st.tests::jsonb,
st.ts, st.run
FROM stage_builds st
JOIN sources so ON so.name = st.src WHERE
st.ord BETWEEN $1::int4 AND $2::int4 ORDER BY st.id, st.ts DESC, st.ord DESC
ON CONFLICT (id) DO UPDATE SET status = excluded.status, system = excluded.system,
branch = excluded.branch, sha = excluded.sha, started = excluded.started,
finished = excluded.finished, duration = excluded.duration, trigger = excluded.trigger,
tests = excluded.tests, observed = excluded.observed, run_id = excluded.run_id,
updated = now () WHERE b.observed <= excluded.observed
