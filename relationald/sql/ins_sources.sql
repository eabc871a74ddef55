INSERT INTO sources (name)
SELECT DISTINCT st.src FROM stage_sources st WHERE
st.ord BETWEEN $1::int4 AND $2::int4 AND NOT EXISTS (SELECT 1 FROM sources s WHERE s.name = st.src)
ORDER BY st.src ON CONFLICT (name) DO NOTHING
