-- A report's figures: mutable, the newest report of the key wins
INSERT INTO analysis_summaries AS a (id, source_id, day, since, until, commits, authors,
files, builds, success_rate, test_runs, tests, code_lines, bus_factor, observed, run_id)
SELECT DISTINCT ON (st.id) st.id, so.id, st.day::date, st.since, st.until, st.commits,
st.authors, st.files, st.builds, st.success_rate, st.test_runs, st.tests, st.code_lines,
st.bus_factor, st.ts, st.run
FROM stage_analysis st
JOIN sources so ON so.name = st.src WHERE
st.ord BETWEEN $1::int4 AND $2::int4 ORDER BY st.id, st.ts DESC, st.ord DESC
ON CONFLICT (id) DO UPDATE SET commits = excluded.commits, authors = excluded.authors,
files = excluded.files, builds = excluded.builds, success_rate = excluded.success_rate,
test_runs = excluded.test_runs, tests = excluded.tests, code_lines = excluded.code_lines,
bus_factor = excluded.bus_factor, observed = excluded.observed, run_id = excluded.run_id,
updated = now () WHERE a.observed <= excluded.observed
