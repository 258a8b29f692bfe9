-- metaxy-sql resolve: video/talking_head
-- feature_version: d96e933566d15db2897065949d2cf04e
-- field clip (code_version 1, field_version cd200d92d53b287e3118ce564cd1add0) <- transcript/whisper.text, video/face_crop.frames
-- dialect: duckdb; digest: sha256
WITH "upstream__transcript__whisper" AS (
  SELECT
    "sample_uid",
    "metaxy_data_version_by_field"['text'] AS "metaxy_data_version__text"
  FROM "transcript__whisper"
  WHERE
    NOT "metaxy_superseded" AND NOT "metaxy_deleted"
), "upstream__video__face_crop" AS (
  SELECT
    "sample_uid",
    "metaxy_data_version_by_field"['frames'] AS "metaxy_data_version__frames"
  FROM "video__face_crop"
  WHERE
    NOT "metaxy_superseded" AND NOT "metaxy_deleted"
), "expected" AS (
  SELECT
    "upstream__transcript__whisper"."sample_uid",
    SUBSTRING(
      SHA256(
        'mxs1|f4:clip1:118:transcript/whisper4:text' || COALESCE(
          CAST(STRLEN("upstream__transcript__whisper"."metaxy_data_version__text") AS TEXT) || ':' || "upstream__transcript__whisper"."metaxy_data_version__text",
          '~'
        ) || '15:video/face_crop6:frames' || COALESCE(
          CAST(STRLEN("upstream__video__face_crop"."metaxy_data_version__frames") AS TEXT) || ':' || "upstream__video__face_crop"."metaxy_data_version__frames",
          '~'
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
    'new' AS "metaxy_status",
    "expected"."sample_uid",
    "expected"."metaxy_provenance__clip",
    CAST([] AS TEXT[]) AS "metaxy_changed_fields"
  FROM "expected"
  WHERE
    NOT EXISTS(
      SELECT
        1
      FROM "current"
      WHERE
        "current"."sample_uid" = "expected"."sample_uid"
    )
  UNION ALL
  SELECT
    'stale' AS "metaxy_status",
    "expected"."sample_uid",
    "expected"."metaxy_provenance__clip",
    CAST(LIST_FILTER(
      [
        CASE
          WHEN "expected"."metaxy_provenance__clip" <> "current"."metaxy_provenance__clip"
          OR "current"."metaxy_provenance__clip" IS NULL
          THEN 'clip'
        END
      ],
      LAMBDA "x" : NOT "x" IS NULL
    ) AS TEXT[]) AS "metaxy_changed_fields"
  FROM "expected"
  INNER JOIN "current"
    ON "expected"."sample_uid" = "current"."sample_uid"
  WHERE
    "expected"."metaxy_provenance__clip" <> "current"."metaxy_provenance__clip"
    OR "current"."metaxy_provenance__clip" IS NULL
  UNION ALL
  SELECT
    'orphaned' AS "metaxy_status",
    "current"."sample_uid",
    "current"."metaxy_provenance__clip",
    CAST([] AS TEXT[]) AS "metaxy_changed_fields"
  FROM "current"
  WHERE
    NOT EXISTS(
      SELECT
        1
      FROM "expected"
      WHERE
        "expected"."sample_uid" = "current"."sample_uid"
    )
)
SELECT
  "metaxy_status",
  "sample_uid",
  MAP(['clip'], ["metaxy_provenance__clip"]) AS "metaxy_provenance_by_field",
  SUBSTRING(
    SHA256(
      'mxs1|s4:clip' || COALESCE(
        CAST(STRLEN("metaxy_provenance__clip") AS TEXT) || ':' || "metaxy_provenance__clip",
        '~'
      )
    ),
    1,
    32
  ) AS "metaxy_provenance",
  "metaxy_changed_fields"
FROM "increment"
