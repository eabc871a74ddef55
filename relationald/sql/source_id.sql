-- A source's id, made when it is new
WITH made AS (INSERT INTO sources (name) VALUES ($1) ON CONFLICT (name) DO NOTHING
RETURNING id) SELECT id FROM made UNION ALL SELECT id FROM sources WHERE name = $1
