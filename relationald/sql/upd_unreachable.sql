-- Flagged unless the same batch sends the commit again after the flag
UPDATE commits c SET reachable = false, unreachable_since = u.ts
FROM (SELECT DISTINCT ON (so.id, st.sha) so.id AS source_id, st.sha, st.ts, st.ord, st.src
      FROM stage_unreach st JOIN sources so ON so.name = st.src
      WHERE st.ord BETWEEN $1::int4 AND $2::int4
      ORDER BY so.id, st.sha, st.ord DESC) u
WHERE c.source_id = u.source_id AND c.sha = u.sha AND c.reachable
AND NOT EXISTS (SELECT 1 FROM stage_commits sc WHERE sc.src = u.src AND sc.sha = u.sha
                AND sc.ord > u.ord)
