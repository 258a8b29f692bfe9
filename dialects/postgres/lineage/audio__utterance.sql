-- metaxy-sql resolve: audio/utterance
-- feature_version: b6b1c35867b5798150249f389b82f080
-- field audio (code_version 1, field_version 7b13d1f4c78ffc0db836a25b50980d72) <- (root)
-- dialect: postgres; digest: sha256
WITH "upstream__audio__utterance" AS (
  SELECT
    "speaker_id",
    "utterance_id",
    "metaxy_provenance_by_field" ->> 'audio' AS "metaxy_provenance__audio"
  FROM "metaxy_samples__audio__utterance"
), "expected" AS (
  SELECT
    "upstream__audio__utterance"."speaker_id",
    "upstream__audio__utterance"."utterance_id",
    "upstream__audio__utterance"."metaxy_provenance__audio"
  FROM "upstream__audio__utterance"
), "current" AS (
  SELECT
    "speaker_id",
    "utterance_id",
    "metaxy_provenance_by_field" ->> 'audio' AS "metaxy_provenance__audio"
  FROM "audio__utterance"
  WHERE
    NOT "metaxy_superseded" AND NOT "metaxy_deleted"
), "increment" AS (
  SELECT
    CASE
      WHEN "current"."speaker_id" IS NULL
      THEN 'new'
      WHEN "expected"."speaker_id" IS NULL
      THEN 'orphaned'
      ELSE 'stale'
    END AS "metaxy_status",
    COALESCE("expected"."speaker_id", "current"."speaker_id") AS "speaker_id",
    COALESCE("expected"."utterance_id", "current"."utterance_id") AS "utterance_id",
    CASE
      WHEN "expected"."speaker_id" IS NULL
      THEN "current"."metaxy_provenance__audio"
      ELSE "expected"."metaxy_provenance__audio"
    END AS "metaxy_provenance__audio",
    CASE
      WHEN "current"."speaker_id" IS NULL OR "expected"."speaker_id" IS NULL
      THEN CAST(ARRAY[] AS TEXT[])
      ELSE CAST(ARRAY_REMOVE(
        ARRAY[
          CASE
            WHEN "expected"."metaxy_provenance__audio" <> "current"."metaxy_provenance__audio"
            OR "current"."metaxy_provenance__audio" IS NULL
            THEN 'audio'
          END
        ],
        NULL
      ) AS TEXT[])
    END AS "metaxy_changed_fields"
  FROM "expected"
  FULL OUTER JOIN "current"
    ON "expected"."speaker_id" = "current"."speaker_id"
    AND "expected"."utterance_id" = "current"."utterance_id"
  WHERE
    "current"."speaker_id" IS NULL
    OR "expected"."speaker_id" IS NULL
    OR (
      "expected"."metaxy_provenance__audio" <> "current"."metaxy_provenance__audio"
      OR "current"."metaxy_provenance__audio" IS NULL
    )
)
SELECT
  "metaxy_status",
  "speaker_id",
  "utterance_id",
  JSONB_BUILD_OBJECT('audio', "metaxy_provenance__audio") AS "metaxy_provenance_by_field",
  SUBSTRING(ENCODE(
    SHA256(
      CONVERT_TO(
        CONCAT(
          'mxs1|s5:audio',
          COALESCE(
            CAST(OCTET_LENGTH("metaxy_provenance__audio") AS TEXT) || ':' || "metaxy_provenance__audio",
            '~'
          )
        ),
        'UTF8'
      )
    ),
    'hex'
  ) FROM 1 FOR 32) AS "metaxy_provenance",
  "metaxy_changed_fields"
FROM "increment"
