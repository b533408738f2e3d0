-- Stage 1 input check: the columns of every parquet file the source matches, so a file
-- without the LAION columns is reported by name before any scan.
-- Parameters: $source.
SELECT file_name, list(name) AS columns
FROM parquet_schema($source)
GROUP BY file_name
ORDER BY file_name
