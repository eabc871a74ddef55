INSERT INTO code_stats AS t (id, source_id, rev, language, path, files, blank, comment,
code, observed, run_id, content)
SELECT st.id, so.id, st.rev, st.language, st.path, st.files, st.blank, st.comment,
st.code, st.ts, st.run, st.content
FROM stage_code st
JOIN sources so ON so.name = st.src WHERE
st.ord BETWEEN $1::int4 AND $2::int4 ORDER BY st.id
ON CONFLICT (id) DO UPDATE SET content = excluded.content WHERE t.content IS NULL
