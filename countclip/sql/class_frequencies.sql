-- Class frequencies of the downloaded counting samples: n_c per count c.
--
-- Input: img2dataset's output parquet (per-shard files, any pass) or the download stage's
-- results.parquet (one row per input sample, final status). Only successes count: λ must
-- balance what the trainer will actually see, not what the metadata promised.
-- A sample succeeds at most once across passes (a retry pass re-queues failures only), so
-- count(*) over successes is the number of downloaded samples.
--
-- Parameters: $paths (list of parquet files), $min_count, $max_count (inclusive).
SELECT
    CAST("count" AS INTEGER) AS count,
    count(*) AS n
FROM read_parquet($paths, union_by_name = true)
WHERE status = 'success'
  AND "count" BETWEEN $min_count AND $max_count
GROUP BY 1
ORDER BY 1
