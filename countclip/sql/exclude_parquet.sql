-- Stage 1 exclusion list, parquet: the URLs (or URL hashes) are in column $column, taken from
-- the row struct by name (a bound value, never spliced into the SQL); only that column is read.
-- Parameters: $list (its index in metadata.exclude), $hash ('none', 'md5', 'sha256'), $path,
--             $column.
INSERT INTO laion_exclude
SELECT $list, $hash,
       CASE WHEN $hash = 'none' THEN trim(v) ELSE lower(trim(v)) END
FROM (SELECT CAST(struct_extract(r, $column) AS VARCHAR) AS v
      FROM read_parquet($path) AS r)
