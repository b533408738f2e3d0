-- Stage 1 bookkeeping: one scan that counts the rows read and the rows each filter drops, in
-- the same order as candidates.sql (exclusion lists, then the LAION quality filters of
-- sql/laion_filters.sql: URL scheme, NSFW tag, CLIP similarity, image size), then splits the
-- survivors into number-word candidates and non-counting rows (the pool common_sample.sql
-- draws from). excluded_per_list maps a list's index to the rows it holds (lists overlap, so
-- these may sum to more than excluded).
-- Parameters: $source, $allowed_nsfw (VARCHAR[], NULL = no NSFW filter), $min_similarity,
--             $min_width, $min_height, $pattern (RE2, matched case-insensitively).
WITH flags AS (
    SELECT
        excluded_lists,
        len(excluded_lists) = 0 AS ok_excluded,
        laion_ok_url(URL) AS ok_url,
        laion_ok_nsfw(NSFW, $allowed_nsfw) AS ok_nsfw,
        laion_ok_similarity(similarity, $min_similarity) AS ok_similarity,
        laion_ok_size(WIDTH, HEIGHT, $min_width, $min_height) AS ok_size,
        coalesce(length(TEXT) > 0, false) AS ok_text,
        coalesce(regexp_matches(TEXT, $pattern, 'i'), false) AS has_number
    FROM laion_rows($source)
),
passed AS (
    SELECT
        *,
        ok_excluded AND ok_url AS p_url,
        ok_excluded AND ok_url AND ok_nsfw AS p_nsfw,
        ok_excluded AND ok_url AND ok_nsfw AND ok_similarity AS p_similarity,
        ok_excluded AND ok_url AND ok_nsfw AND ok_similarity AND ok_size AS p_size,
        ok_excluded AND ok_url AND ok_nsfw AND ok_similarity AND ok_size AND ok_text AS p_text
    FROM flags
)
SELECT
    count(*) AS rows_read,
    count_if(NOT ok_excluded) AS dropped_excluded,
    count_if(ok_excluded AND NOT ok_url) AS dropped_url,
    count_if(p_url AND NOT ok_nsfw) AS dropped_nsfw,
    count_if(p_nsfw AND NOT ok_similarity) AS dropped_similarity,
    count_if(p_similarity AND NOT ok_size) AS dropped_size,
    count_if(p_size AND NOT ok_text) AS dropped_empty_text,
    count_if(p_text AND NOT has_number) AS no_number,
    count_if(p_text AND has_number) AS candidates,
    list_aggregate(flatten(list(excluded_lists) FILTER (WHERE NOT ok_excluded)), 'histogram')
        AS excluded_per_list
FROM passed
