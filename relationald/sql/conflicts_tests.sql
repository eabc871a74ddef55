-- Staged tests rows whose stored row holds other content: conflicts
SELECT st.ord FROM stage_tests st JOIN ci_tests t ON t.id = st.id
WHERE t.content <> st.content
