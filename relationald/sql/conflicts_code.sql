-- Staged code rows whose stored row holds other content: conflicts
SELECT st.ord FROM stage_code st JOIN code_stats t ON t.id = st.id
WHERE t.content <> st.content
