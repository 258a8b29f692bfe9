-- metaxy-sql resolve: subtitles/raw
-- feature_version: 2ab4028f182d2a0e937a697f42f9a37a
-- field text (code_version 1, field_version 558bb81f0a00695180038e6807c8b1e6) <- (root)
-- dialect: postgres; digest: sha256
WITH "upstream__subtitles__raw" AS (
  SELECT
    "sample_uid",
    "metaxy_provenance_by_field" ->> 'text' AS "metaxy_provenance__text"
  FROM "metaxy_samples__subtitles__raw"
), "expected" AS (
  SELECT
    "upstream__subtitles__raw"."sample_uid",
    "upstream__subtitles__raw"."metaxy_provenance__text"
  FROM "upstream__subtitles__raw"
), "current" AS (
  SELECT
    "sample_uid",
    "metaxy_provenance_by_field" ->> 'text' AS "metaxy_provenance__text"
  FROM "subtitles__raw"
  WHERE
    NOT "metaxy_superseded" AND NOT "metaxy_deleted"
), "increment" AS (
  SELECT
    CASE
      WHEN "current"."sample_uid" IS NULL
      THEN 'new'
      WHEN "expected"."sample_uid" IS NULL
      THEN 'orphaned'
      ELSE 'stale'
    END AS "metaxy_status",
    COALESCE("expected"."sample_uid", "current"."sample_uid") AS "sample_uid",
    CASE
      WHEN "expected"."sample_uid" IS NULL
      THEN "current"."metaxy_provenance__text"
      ELSE "expected"."metaxy_provenance__text"
    END AS "metaxy_provenance__text",
    CASE
      WHEN "current"."sample_uid" IS NULL OR "expected"."sample_uid" IS NULL
      THEN CAST(ARRAY[] AS TEXT[])
      ELSE CAST(ARRAY_REMOVE(
        ARRAY[
          CASE
            WHEN "expected"."metaxy_provenance__text" <> "current"."metaxy_provenance__text"
            OR "current"."metaxy_provenance__text" IS NULL
            THEN 'text'
          END
        ],
        NULL
      ) AS TEXT[])
    END AS "metaxy_changed_fields"
  FROM "expected"
  FULL OUTER JOIN "current"
    ON "expected"."sample_uid" = "current"."sample_uid"
  WHERE
    "current"."sample_uid" IS NULL
    OR "expected"."sample_uid" IS NULL
    OR (
      "expected"."metaxy_provenance__text" <> "current"."metaxy_provenance__text"
      OR "current"."metaxy_provenance__text" IS NULL
    )
)
SELECT
  "metaxy_status",
  "sample_uid",
  JSONB_BUILD_OBJECT('text', "metaxy_provenance__text") AS "metaxy_provenance_by_field",
  SUBSTRING(ENCODE(
    SHA256(
      CONVERT_TO(
        CONCAT(
          'mxs1|s4:text',
          COALESCE(
            CAST(OCTET_LENGTH("metaxy_provenance__text") AS TEXT) || ':' || "metaxy_provenance__text",
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
