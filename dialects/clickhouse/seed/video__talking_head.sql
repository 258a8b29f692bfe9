-- metaxy-sql resolve: video/talking_head
-- feature_version: d96e933566d15db2897065949d2cf04e
-- field clip (code_version 1, field_version cd200d92d53b287e3118ce564cd1add0) <- transcript/whisper.text, video/face_crop.frames
-- dialect: clickhouse; digest: sha256
WITH "upstream__transcript__whisper" AS (
  SELECT
    "sample_uid",
    CASE
      WHEN mapContains("metaxy_data_version_by_field", 'text')
      THEN "metaxy_data_version_by_field"['text']
      ELSE NULL
    END AS "metaxy_data_version__text"
  FROM (
    SELECT
      "sample_uid",
      "metaxy_data_version_by_field",
      "metaxy_deleted",
      ROW_NUMBER() OVER (
        PARTITION BY "sample_uid"
        ORDER BY "metaxy_created_at" DESC, "metaxy_deleted" DESC, "metaxy_data_version" DESC
      ) AS "metaxy_row_number"
    FROM "transcript__whisper"
  ) AS "transcript__whisper"
  WHERE
    "metaxy_row_number" = 1 AND NOT "metaxy_deleted"
), "upstream__video__face_crop" AS (
  SELECT
    "sample_uid",
    CASE
      WHEN mapContains("metaxy_data_version_by_field", 'frames')
      THEN "metaxy_data_version_by_field"['frames']
      ELSE NULL
    END AS "metaxy_data_version__frames"
  FROM (
    SELECT
      "sample_uid",
      "metaxy_data_version_by_field",
      "metaxy_deleted",
      ROW_NUMBER() OVER (
        PARTITION BY "sample_uid"
        ORDER BY "metaxy_created_at" DESC, "metaxy_deleted" DESC, "metaxy_data_version" DESC
      ) AS "metaxy_row_number"
    FROM "video__face_crop"
  ) AS "video__face_crop"
  WHERE
    "metaxy_row_number" = 1 AND NOT "metaxy_deleted"
), "expected" AS (
  SELECT
    "upstream__transcript__whisper"."sample_uid",
    SUBSTRING(
      lower(
        hex(
          SHA256(
            'mxs1|f4:clip1:118:transcript/whisper4:text' || COALESCE(
              toString(length("upstream__transcript__whisper"."metaxy_data_version__text")) || ':' || "upstream__transcript__whisper"."metaxy_data_version__text",
              '~'
            ) || '15:video/face_crop6:frames' || COALESCE(
              toString(length("upstream__video__face_crop"."metaxy_data_version__frames")) || ':' || "upstream__video__face_crop"."metaxy_data_version__frames",
              '~'
            )
          )
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
    CASE
      WHEN mapContains("metaxy_provenance_by_field", 'clip')
      THEN "metaxy_provenance_by_field"['clip']
      ELSE NULL
    END AS "metaxy_provenance__clip"
  FROM (
    SELECT
      "sample_uid",
      "metaxy_provenance_by_field",
      "metaxy_deleted",
      ROW_NUMBER() OVER (
        PARTITION BY "sample_uid"
        ORDER BY "metaxy_created_at" DESC, "metaxy_deleted" DESC, "metaxy_data_version" DESC
      ) AS "metaxy_row_number"
    FROM "video__talking_head"
  ) AS "video__talking_head"
  WHERE
    "metaxy_row_number" = 1 AND NOT "metaxy_deleted"
), "increment" AS (
  SELECT
    'new' AS "metaxy_status",
    "expected"."sample_uid",
    "expected"."metaxy_provenance__clip",
    CAST([] AS Array(String)) AS "metaxy_changed_fields"
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
    CAST(arrayFilter(
      "x" -> isNotNull(x),
      [
        CASE
          WHEN "expected"."metaxy_provenance__clip" <> "current"."metaxy_provenance__clip"
          OR "current"."metaxy_provenance__clip" IS NULL
          THEN 'clip'
        END
      ]
    ) AS Array(String)) AS "metaxy_changed_fields"
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
    CAST([] AS Array(String)) AS "metaxy_changed_fields"
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
  map('clip', "metaxy_provenance__clip") AS "metaxy_provenance_by_field",
  SUBSTRING(
    lower(
      hex(
        SHA256(
          'mxs1|s4:clip' || COALESCE(
            toString(length("metaxy_provenance__clip")) || ':' || "metaxy_provenance__clip",
            '~'
          )
        )
      )
    ),
    1,
    32
  ) AS "metaxy_provenance",
  "metaxy_changed_fields"
FROM "increment"
