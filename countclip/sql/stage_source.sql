-- Stage 1, remote source: the LAION columns of every source file, mapped and typed
-- (laion_mapped, sql/laion_source.sql), copied once to a local parquet file in the stage's
-- work directory with COPY ... TO $out. Only the mapped columns cross the network (range
-- requests), once; the three scans of the stage then read the local copy. Scan order is kept.
-- Parameters: $source (VARCHAR[] of files).
SELECT SAMPLE_ID, URL, TEXT, HEIGHT, WIDTH, LICENSE, NSFW, similarity
FROM laion_mapped($source)
