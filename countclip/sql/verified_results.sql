-- The verify stage's results: the download results of the counting samples it kept.
--
-- One row per kept sample: every column of the download stage's results.parquet (status,
-- count, SAMPLE_ID, ...) plus the detected count, so the λ stage (class_frequencies.sql) reads
-- it exactly as it reads a download's results. Samples are matched on the shard that holds
-- them ("pass-0/00000.tar") and their key in it: img2dataset keys are unique per pass only.
--
-- Parameters: $results (the download's results.parquet), $decisions (list of decision files).
SELECT r.*, d.detected_count
FROM read_parquet($results) AS r
JOIN read_parquet($decisions) AS d
  ON r.shard = d.shard AND r."key" = d."key"
WHERE r.status = 'success'
  AND d.kept
ORDER BY r."row"
