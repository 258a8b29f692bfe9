-- metaxy-sql resolve: transcript/whisper
-- feature_version: 12da33c0a5cfb631dc9eb737e408e892
-- field text (code_version 1, field_version 1b4fca4757c8002f5a6e5a822204ca5a) <- video/full.audio
-- dialect: postgres; digest: sha256
WITH "upstream__video__full" AS (
  SELECT
    "sample_uid",
    COALESCE(
      CAST(OCTET_LENGTH((
        "metaxy_data_version_by_field" ->> 'audio'
      )) AS TEXT) || ':' || (
        "metaxy_data_version_by_field" ->> 'audio'
      ),
      '~'
    ) AS "metaxy_dv_token__audio"
  FROM "video__full"
  WHERE
    NOT "metaxy_superseded" AND NOT "metaxy_deleted"
), "expected" AS (
  SELECT
    "upstream__video__full"."sample_uid",
    SUBSTRING(ENCODE(
      SHA256(
        CONVERT_TO(
          CONCAT(
            'mxs1|f4:text1:110:video/full5:audio',
            "upstream__video__full"."metaxy_dv_token__audio"
          ),
          'UTF8'
        )
      ),
      'hex'
    ) FROM 1 FOR 32) AS "metaxy_provenance__text"
  FROM "upstream__video__full"
), "current" AS (
  SELECT
    "sample_uid",
    "metaxy_provenance_by_field" ->> 'text' AS "metaxy_provenance__text"
  FROM "transcript__whisper"
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
