INSERT INTO ci_tests AS t (id, source_id, suite, class, name, status, duration, pipeline,
build_id, file, failure_type, failure_message, flaky, occurrence, retried, observed,
run_id, content)
SELECT st.id, so.id, st.suite, st.class, st.name, st.status, st.duration, st.pipeline,
st.build_id, st.file, st.failure_type, st.failure_message, st.flaky,
coalesce (st.occurrence, 0), coalesce (st.retried, false), st.ts, st.run, st.content
FROM stage_tests st
JOIN sources so ON so.name = st.src WHERE
st.ord BETWEEN $1::int4 AND $2::int4 ORDER BY st.id FOR KEY SHARE OF so
ON CONFLICT (id) DO UPDATE SET content = excluded.content WHERE t.content IS NULL
