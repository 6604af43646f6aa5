-- The exact version of its object that each upload row describes. Two
-- uploads of one file name in the same second used to share an object key,
-- so the first row described content that had been replaced; keys are now
-- unique per upload, and the row pins its version as a publish does. NULL
-- for rows written before this column existed (they point at HEAD).
ALTER TABLE landing_files ADD COLUMN s3_version_id VARCHAR(1024);
