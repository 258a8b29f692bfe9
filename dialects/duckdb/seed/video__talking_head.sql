-- metaxy-sql resolve: video/talking_head
-- feature_version: d96e933566d15db2897065949d2cf04e
-- field clip (code_version 1, field_version cd200d92d53b287e3118ce564cd1add0) <- transcript/whisper.text, video/face_crop.frames
-- dialect: duckdb; digest: sha256
WITH "upstream__transcript__whisper" AS (
  SELECT
    "sample_uid",
    COALESCE(
      CAST(STRLEN((
        "metaxy_data_version_by_field"['text']
      )) AS TEXT) || ':' || (
        "metaxy_data_version_by_field"['text']
      ),
      '~'
    ) AS "metaxy_dv_token__text"
  FROM "transcript__whisper"
  WHERE
    NOT "metaxy_superseded" AND NOT "metaxy_deleted"
), "upstream__video__face_crop" AS (
  SELECT
    "sample_uid",
    COALESCE(
      CAST(STRLEN((
        "metaxy_data_version_by_field"['frames']
      )) AS TEXT) || ':' || (
        "metaxy_data_version_by_field"['frames']
      ),
      '~'
    ) AS "metaxy_dv_token__frames"
  FROM "video__face_crop"
  WHERE
    NOT "metaxy_superseded" AND NOT "metaxy_deleted"
), "expected" AS (
  SELECT
    "upstream__transcript__whisper"."sample_uid",
    SUBSTRING(
      SHA256(
        CONCAT(
          'mxs1|f4:clip1:118:transcript/whisper4:text',
          "upstream__transcript__whisper"."metaxy_dv_token__text",
          '15:video/face_crop6:frames',
          "upstream__video__face_crop"."metaxy_dv_token__frames"
        )
      ),
      1,
      32
    ) AS "metaxy_provenance__clip"
  FROM "upstream__transcript__whisper"
  INNER JOIN "upstream__video__face_crop"
    ON "upstream__transcript__whisper"."sample_uid" = "upstream__video__face_crop"."sample_uid"
), "current" AS (
  SELECT
    "sample_uid",
    "metaxy_provenance_by_field"['clip'] AS "metaxy_provenance__clip"
  FROM "video__talking_head"
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
      THEN "current"."metaxy_provenance__clip"
      ELSE "expected"."metaxy_provenance__clip"
    END AS "metaxy_provenance__clip",
    CASE
      WHEN "current"."sample_uid" IS NULL OR "expected"."sample_uid" IS NULL
      THEN CAST([] AS TEXT[])
      ELSE CAST(LIST_FILTER(
        [
          CASE
            WHEN "expected"."metaxy_provenance__clip" <> "current"."metaxy_provenance__clip"
            OR "current"."metaxy_provenance__clip" IS NULL
            THEN 'clip'
          END
        ],
        LAMBDA "x" : NOT "x" IS NULL
      ) AS TEXT[])
    END AS "metaxy_changed_fields"
  FROM "expected"
  FULL OUTER JOIN "current"
    ON "expected"."sample_uid" = "current"."sample_uid"
  WHERE
    "current"."sample_uid" IS NULL
    OR "expected"."sample_uid" IS NULL
    OR (
      "expected"."metaxy_provenance__clip" <> "current"."metaxy_provenance__clip"
      OR "current"."metaxy_provenance__clip" IS NULL
    )
)
SELECT
  "metaxy_status",
  "sample_uid",
  MAP(['clip'], ["metaxy_provenance__clip"]) AS "metaxy_provenance_by_field",
  SUBSTRING(
    SHA256(
      CONCAT(
        'mxs1|s4:clip',
        COALESCE(
          CAST(STRLEN("metaxy_provenance__clip") AS TEXT) || ':' || "metaxy_provenance__clip",
          '~'
        )
      )
    ),
    1,
    32
  ) AS "metaxy_provenance",
  "metaxy_changed_fields"
FROM "increment"
