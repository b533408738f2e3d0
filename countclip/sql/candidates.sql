-- Stage 1: rows whose caption contains a number word (a cheap RE2 prefilter; spaCy decides
-- later), whose URL is on no exclusion list, and that pass the LAION quality filters
-- (sql/laion_filters.sql). Rows come from laion_rows (sql/laion_source.sql), in source order
-- (file, row) whatever the thread count. Streamed by COPY ... TO $out.
-- Parameters: $source (VARCHAR[] of files), $allowed_nsfw (VARCHAR[], NULL = no NSFW filter),
--             $min_similarity, $min_width, $min_height, $pattern (RE2, case-insensitive).
SELECT SAMPLE_ID, URL, TEXT, HEIGHT, WIDTH, LICENSE, NSFW, similarity
FROM laion_rows($source)
WHERE len(excluded_lists) = 0
  AND laion_quality(URL, NSFW, similarity, WIDTH, HEIGHT,
                    $allowed_nsfw, $min_similarity, $min_width, $min_height)
  AND regexp_matches(TEXT, $pattern, 'i')
ORDER BY laion_file, laion_row
