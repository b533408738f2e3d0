-- Stage 1 bookkeeping: one scan that counts the rows read and the rows each LAION quality
-- filter drops (the macros of sql/laion_filters.sql), in the same order as candidates.sql (URL
-- scheme, NSFW tag, CLIP similarity, image size), then splits the survivors into number-word
-- candidates and non-counting rows (the pool common_sample.sql draws from).
-- Parameters: $source, $allowed_nsfw (VARCHAR[]), $min_similarity, $min_width, $min_height,
--             $pattern (RE2, matched case-insensitively).
WITH flags AS (
    SELECT
        laion_ok_url(URL) AS ok_url,
        laion_ok_nsfw(NSFW, $allowed_nsfw) AS ok_nsfw,
        laion_ok_similarity(similarity, $min_similarity) AS ok_similarity,
        laion_ok_size(WIDTH, HEIGHT, $min_width, $min_height) AS ok_size,
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
