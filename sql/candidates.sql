-- Stage 1: rows whose caption contains a number word (a cheap RE2 prefilter; spaCy decides
-- later) and that pass the LAION quality filters (sql/laion_filters.sql). Streamed by COPY ... TO $out.
-- Parameters: $source, $allowed_nsfw (VARCHAR[]), $min_similarity, $min_width, $min_height,
--             $pattern (RE2, matched case-insensitively).
SELECT SAMPLE_ID, URL, TEXT, HEIGHT, WIDTH, LICENSE, NSFW, similarity
FROM read_parquet($source)
WHERE laion_quality(URL, NSFW, similarity, WIDTH, HEIGHT,
                    $allowed_nsfw, $min_similarity, $min_width, $min_height)
  AND regexp_matches(TEXT, $pattern, 'i')
