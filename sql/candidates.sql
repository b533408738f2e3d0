-- Stage 1: rows whose caption contains a number word (a cheap RE2 prefilter; spaCy decides
-- later) and that pass the usual LAION quality filters. Streamed by COPY ... TO $out.
-- Parameters: $source, $allowed_nsfw (VARCHAR[]), $min_similarity, $min_width, $min_height,
--             $pattern (RE2, matched case-insensitively).
SELECT SAMPLE_ID, URL, TEXT, HEIGHT, WIDTH, LICENSE, NSFW, similarity
FROM read_parquet($source)
WHERE regexp_matches(URL, '^https?://', 'i')
  AND list_contains($allowed_nsfw, NSFW)
  AND similarity >= $min_similarity
  AND WIDTH >= $min_width
  AND HEIGHT >= $min_height
  AND regexp_matches(TEXT, $pattern, 'i')
