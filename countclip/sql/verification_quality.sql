-- Count verification scored against the world's ground truth, per caption count and noise kind.
--
-- A decision is "right" when the image really shows the caption's count (true_count =
-- caption count); the counter is "exact" when it found exactly the objects drawn. Python sums
-- these rows into precision, recall and kept fractions (countclip.data.verify.quality).
--
-- Parameters: $decisions (decisions.parquet), $truth (ground_truth.parquet: SAMPLE_ID,
-- true_count, noise).
SELECT
    CAST(d."count" AS INTEGER) AS count,
    coalesce(t.noise, 'unknown') AS noise,
    count(*) AS samples,
    count(t.SAMPLE_ID) AS with_truth,
    count(*) FILTER (WHERE d.kept) AS kept,
    count(*) FILTER (WHERE t.true_count = d."count") AS right,
    count(*) FILTER (WHERE d.kept AND t.true_count = d."count") AS kept_right,
    count(d.detected_count) AS counted,
    count(*) FILTER (WHERE d.detected_count = t.true_count) AS exact
FROM read_parquet($decisions) AS d
LEFT JOIN read_parquet($truth) AS t USING (SAMPLE_ID)
GROUP BY 1, 2
ORDER BY 1, 2
