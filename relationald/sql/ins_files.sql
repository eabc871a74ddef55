-- Binary files have no line counts (NULL), whatever the record says.
-- A file row carries its commit's source (for row-level security and
-- per-source reads without a look-up of every commit)
INSERT INTO commit_files (commit_id, path, insertions, deletions, is_binary, old_path,
source_id)
SELECT st.commit_id, st.path, CASE WHEN st.is_binary THEN NULL ELSE st.insertions END,
CASE WHEN st.is_binary THEN NULL ELSE st.deletions END, st.is_binary, st.old_path,
c.source_id FROM stage_files st JOIN commits c ON c.id = st.commit_id WHERE
st.ord BETWEEN $1::int4 AND $2::int4 ORDER BY st.commit_id, st.path ON CONFLICT DO NOTHING
