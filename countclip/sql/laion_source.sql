-- Stage 1 input: the source's rows under LAION-400M's column names and types, each with the
-- exclusion lists its URL is on. Created on every stage-1 connection
-- (countclip.data.metadata.connect), after two variables are set from bound parameters:
--   laion_columns   STRUCT(SAMPLE_ID, URL, TEXT, HEIGHT, WIDTH, LICENSE, NSFW, similarity) of
--                   VARCHAR: the source column that holds each LAION column (metadata.columns);
--                   NULL = the source has none: LICENSE/NSFW are NULL, SAMPLE_ID is derived
--                   from md5(URL, TEXT) (60 bits, stable across machines and DuckDB versions).
--   laion_hashes    VARCHAR[]: the keys the exclusion lists use ('none' = the URL itself,
--                   'md5', 'sha256'), so a query reads URL and computes a hash only when a
--                   list needs it (with no lists, every join key is a constant NULL).
-- A column name goes through struct_extract(row, name) on the row struct: bound like a value,
-- never spliced into the SQL, and DuckDB still reads only the columns a query uses.
-- laion_file and laion_row (the file and the row's number in it) give outputs a stable order:
-- the exclusion joins do not keep the scan's order, so candidates.sql sorts by them.
CREATE OR REPLACE TEMP TABLE laion_exclude (list INTEGER, hash VARCHAR, key VARCHAR);

-- One row per (hash, key) with every list holding it: a LEFT JOIN on it keeps one row per
-- source row.
CREATE OR REPLACE TEMP VIEW laion_exclude_keys AS
SELECT hash, key, list(DISTINCT list ORDER BY list) AS lists
FROM laion_exclude
WHERE key IS NOT NULL AND key <> ''
GROUP BY hash, key;

CREATE OR REPLACE TEMP MACRO laion_col(r, name, fallback) AS
    struct_extract(r, coalesce(getvariable('laion_columns')[name], fallback));

-- The source's rows under LAION names and types, in scan order (no join: DuckDB keeps the
-- order of a plain scan). A remote source is copied to a local file once through this macro
-- (sql/stage_source.sql), so the stage's three scans do not each cross the network.
CREATE OR REPLACE TEMP MACRO laion_mapped(src) AS TABLE
SELECT
    CASE WHEN getvariable('laion_columns').SAMPLE_ID IS NULL
         THEN CAST(('0x' || md5(concat_ws(chr(31),
                   laion_col(r, 'URL', NULL), laion_col(r, 'TEXT', NULL)))[1:15]) AS BIGINT)
         ELSE CAST(laion_col(r, 'SAMPLE_ID', NULL) AS BIGINT) END AS SAMPLE_ID,
    CAST(laion_col(r, 'URL', NULL) AS VARCHAR) AS URL,
    CAST(laion_col(r, 'TEXT', NULL) AS VARCHAR) AS TEXT,
    CAST(laion_col(r, 'HEIGHT', NULL) AS INTEGER) AS HEIGHT,
    CAST(laion_col(r, 'WIDTH', NULL) AS INTEGER) AS WIDTH,
    CASE WHEN getvariable('laion_columns').LICENSE IS NULL THEN NULL
         ELSE CAST(laion_col(r, 'LICENSE', getvariable('laion_columns').URL) AS VARCHAR)
    END AS LICENSE,
    CASE WHEN getvariable('laion_columns').NSFW IS NULL THEN NULL
         ELSE CAST(laion_col(r, 'NSFW', getvariable('laion_columns').URL) AS VARCHAR)
    END AS NSFW,
    CAST(laion_col(r, 'similarity', NULL) AS DOUBLE) AS similarity,
    r.laion_file AS laion_file,
    r.file_row_number AS laion_row
FROM read_parquet(src, filename = 'laion_file', file_row_number = true) AS r;

CREATE OR REPLACE TEMP MACRO laion_rows(src) AS TABLE
SELECT
    m.*,
    list_distinct(flatten([coalesce(u.lists, []), coalesce(h5.lists, []),
                           coalesce(h256.lists, [])])) AS excluded_lists
FROM laion_mapped(src) AS m
LEFT JOIN laion_exclude_keys AS u
       ON u.hash = 'none'
      AND u.key = CASE WHEN list_contains(getvariable('laion_hashes'), 'none') THEN m.URL END
LEFT JOIN laion_exclude_keys AS h5
       ON h5.hash = 'md5'
      AND h5.key = CASE WHEN list_contains(getvariable('laion_hashes'), 'md5') THEN md5(m.URL) END
LEFT JOIN laion_exclude_keys AS h256
       ON h256.hash = 'sha256'
      AND h256.key = CASE WHEN list_contains(getvariable('laion_hashes'), 'sha256')
                          THEN sha256(m.URL) END;
