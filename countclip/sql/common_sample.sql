-- Stage 1: a reproducible (seeded) random sample of non-counting rows that pass the same
-- exclusion lists and quality filters, $n rows. A row's rank is a hash of (SAMPLE_ID, URL)
-- mixed with $seed (re-hashed: DuckDB's multi-argument hash() combines too weakly for a seed
-- to reshuffle); the same seed and data give the same sample on any machine and thread count.
-- The $fraction prefilter (a slight oversample of n / eligible rows, computed by the caller
-- from filter_stats.sql) keeps the top-N small; ORDER BY ... LIMIT then trims to exactly $n.
-- Parameters: as candidates.sql, plus $seed, $fraction (0..1], $n.
SELECT SAMPLE_ID, URL, TEXT, HEIGHT, WIDTH, LICENSE, NSFW, similarity
FROM laion_rows($source)
WHERE len(excluded_lists) = 0
  AND laion_quality(URL, NSFW, similarity, WIDTH, HEIGHT,
                    $allowed_nsfw, $min_similarity, $min_width, $min_height)
  AND length(TEXT) > 0
  AND hash(xor(hash(SAMPLE_ID, URL), hash($seed))) / 18446744073709551615.0 <= $fraction
  AND NOT regexp_matches(TEXT, $pattern, 'i')
ORDER BY hash(xor(hash(SAMPLE_ID, URL), hash($seed))), SAMPLE_ID
LIMIT $n
