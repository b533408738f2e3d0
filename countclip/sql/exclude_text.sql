-- Stage 1 exclusion list, plain text: one URL (or URL hash) a line; blank lines are ignored.
-- Read as a one-column CSV with no quoting and a tab delimiter (a URL holds no tab), so commas
-- and quotes in URLs stay as they are. Keys of hash lists are compared in lower case.
-- Parameters: $list (its index in metadata.exclude), $hash ('none', 'md5', 'sha256'), $path.
INSERT INTO laion_exclude
SELECT $list, $hash, CASE WHEN $hash = 'none' THEN trim(value) ELSE lower(trim(value)) END
FROM read_csv($path, header = false, columns = {'value': 'VARCHAR'}, delim = '\t',
              quote = '', escape = '', auto_detect = false)
