-- Stage 1 bookkeeping: one scan that counts the rows read and the rows each LAION quality
-- filter drops, applied in the same order as candidates.sql (URL scheme, NSFW tag, CLIP
-- similarity, image size), then splits the survivors into number-word candidates and
-- non-counting rows (the pool common_sample.sql draws from).
-- Parameters: $source, $allowed_nsfw (VARCHAR[]), $min_similarity, $min_width, $min_height,
--             $pattern (RE2, matched case-insensitively).
WITH flags AS (
    SELECT
        coalesce(regexp_matches(URL, '^https?://', 'i'), false) AS ok_url,
        coalesce(list_contains($allowed_nsfw, NSFW), false) AS ok_nsfw,
        coalesce(similarity >= $min_similarity, false) AS ok_similarity,
        coalesce(WIDTH >= $min_width AND HEIGHT >= $min_height, false) AS ok_size,
        coalesce(length(TEXT) > 0, false) AS ok_text,
        coalesce(regexp_matches(TEXT, $pattern, 'i'), false) AS has_number
    FROM read_parquet($source)
)
SELECT
    count(*) AS rows_read,
    count_if(NOT ok_url) AS dropped_url,
    count_if(ok_url AND NOT ok_nsfw) AS dropped_nsfw,
    count_if(ok_url AND ok_nsfw AND NOT ok_similarity) AS dropped_similarity,
    count_if(ok_url AND ok_nsfw AND ok_similarity AND NOT ok_size) AS dropped_size,
    count_if(ok_url AND ok_nsfw AND ok_similarity AND ok_size AND NOT ok_text) AS dropped_empty_text,
    count_if(ok_url AND ok_nsfw AND ok_similarity AND ok_size AND ok_text AND NOT has_number)
        AS no_number,
    count_if(ok_url AND ok_nsfw AND ok_similarity AND ok_size AND ok_text AND has_number)
        AS candidates
FROM flags
