-- Staged commits rows whose stored row holds other content: conflicts
SELECT st.ord FROM stage_commits st JOIN commits c ON c.id = st.id
WHERE c.content <> st.content
