-- A commit sent again is reachable again (a branch restored: the
-- collector walks it anew)
INSERT INTO commits AS c (id, source_id, sha, parents, author_name, author_email,
author_time, author_tz, committer_name, committer_email, committer_time, committer_tz,
message, files_changed, insertions, deletions, raw, run_id, author_name_mailmap,
author_email_mailmap, committer_name_mailmap, committer_email_mailmap, content)
SELECT DISTINCT ON (st.id) st.id, so.id, st.sha, st.parents, st.author_name,
st.author_email, to_timestamp (st.author_time), st.author_tz, st.committer_name,
st.committer_email, to_timestamp (st.committer_time), st.committer_tz, st.message,
st.files_changed, st.insertions, st.deletions, st.raw::jsonb, st.run,
st.author_name_mailmap, st.author_email_mailmap, st.committer_name_mailmap,
st.committer_email_mailmap, st.content
FROM stage_commits st
JOIN sources so ON so.name = st.src WHERE
st.ord BETWEEN $1::int4 AND $2::int4 ORDER BY st.id
ON CONFLICT (id) DO UPDATE SET reachable = true, unreachable_since = NULL,
content = coalesce (c.content, excluded.content)
WHERE (NOT c.reachable OR c.content IS NULL)
AND (c.content IS NULL OR c.content = excluded.content)
