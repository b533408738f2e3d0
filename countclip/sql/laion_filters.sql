-- The LAION quality filters, defined once as DuckDB macros and created on every stage-1
-- connection (countclip.metadata.connect). candidates.sql and common_sample.sql keep a row when
-- laion_quality(...) holds; filter_stats.sql counts the rows each single filter drops, in the
-- same order. A NULL field fails its filter; a NULL allowed_nsfw list turns the NSFW filter off
-- (a source without NSFW tags, already filtered upstream: metadata.allowed_nsfw: null).
CREATE OR REPLACE TEMP MACRO laion_ok_url(url) AS
    coalesce(regexp_matches(url, '^https?://', 'i'), false);
CREATE OR REPLACE TEMP MACRO laion_ok_nsfw(nsfw, allowed_nsfw) AS
    allowed_nsfw IS NULL OR coalesce(list_contains(allowed_nsfw, nsfw), false);
CREATE OR REPLACE TEMP MACRO laion_ok_similarity(similarity, min_similarity) AS
    coalesce(similarity >= min_similarity, false);
CREATE OR REPLACE TEMP MACRO laion_ok_size(width, height, min_width, min_height) AS
    coalesce(width >= min_width AND height >= min_height, false);
CREATE OR REPLACE TEMP MACRO laion_quality(
    url, nsfw, similarity, width, height, allowed_nsfw, min_similarity, min_width, min_height
) AS
    laion_ok_url(url)
    AND laion_ok_nsfw(nsfw, allowed_nsfw)
    AND laion_ok_similarity(similarity, min_similarity)
    AND laion_ok_size(width, height, min_width, min_height);
