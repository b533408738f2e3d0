-- laion_rows (sql/laion_source.sql) for a stage with no exclusion list: the same columns, with
-- an empty excluded_lists and no joins, which cost ~20 % of a candidate scan even when the
-- lists are empty. Created after laion_source.sql, replacing its laion_rows.
CREATE OR REPLACE TEMP MACRO laion_rows(src) AS TABLE
SELECT *, CAST([] AS INTEGER[]) AS excluded_lists
FROM laion_mapped(src);
