-- metaxy-sql resolve: video/talking_head
-- feature_version: d96e933566d15db2897065949d2cf04e
-- field clip (code_version 1, field_version cd200d92d53b287e3118ce564cd1add0) <- transcript/whisper.text, video/face_crop.frames
-- dialect: postgres; digest: sha256
WITH "upstream__transcript__whisper" AS (
  SELECT
    "sample_uid",
    "metaxy_data_version_by_field" ->> 'text' AS "metaxy_data_version__text"
  FROM (
    SELECT
      "sample_uid",
      "metaxy_data_version_by_field",
      "metaxy_deleted",
      ROW_NUMBER() OVER (
        PARTITION BY "sample_uid"
        ORDER BY "metaxy_created_at" DESC NULLS LAST, "metaxy_deleted" DESC NULLS LAST, "metaxy_data_version" DESC NULLS LAST
      ) AS "metaxy_row_number"
    FROM "transcript__whisper"
  ) AS "transcript__whisper"
  WHERE
    "metaxy_row_number" = 1 AND NOT "metaxy_deleted"
), "upstream__video__face_crop" AS (
  SELECT
    "sample_uid",
    "metaxy_data_version_by_field" ->> 'frames' AS "metaxy_data_version__frames"
  FROM (
    SELECT
      "sample_uid",
      "metaxy_data_version_by_field",
      "metaxy_deleted",
      ROW_NUMBER() OVER (
        PARTITION BY "sample_uid"
        ORDER BY "metaxy_created_at" DESC NULLS LAST, "metaxy_deleted" DESC NULLS LAST, "metaxy_data_version" DESC NULLS LAST
      ) AS "metaxy_row_number"
    FROM "video__face_crop"
  ) AS "video__face_crop"
  WHERE
    "metaxy_row_number" = 1 AND NOT "metaxy_deleted"
), "expected" AS (
  SELECT
    "upstream__transcript__whisper"."sample_uid",
    SUBSTRING(ENCODE(
      SHA256(
        CONVERT_TO(
          'mxs1|f4:clip1:118:transcript/whisper4:text' || COALESCE(
            CAST(OCTET_LENGTH("upstream__transcript__whisper"."metaxy_data_version__text") AS TEXT) || ':' || "upstream__transcript__whisper"."metaxy_data_version__text",
            '~'
          ) || '15:video/face_crop6:frames' || COALESCE(
            CAST(OCTET_LENGTH("upstream__video__face_crop"."metaxy_data_version__frames") AS TEXT) || ':' || "upstream__video__face_crop"."metaxy_data_version__frames",
            '~'
          ),
          'UTF8'
        )
      ),
      'hex'
    ) FROM 1 FOR 32) AS "metaxy_provenance__clip"
  FROM "upstream__transcript__whisper"
  INNER JOIN "upstream__video__face_crop"
    ON "upstream__transcript__whisper"."sample_uid" = "upstream__video__face_crop"."sample_uid"
), "current" AS (
  SELECT
    "sample_uid",
    "metaxy_provenance_by_field" ->> 'clip' AS "metaxy_provenance__clip"
  FROM (
    SELECT
      "sample_uid",
      "metaxy_provenance_by_field",
      "metaxy_deleted",
      ROW_NUMBER() OVER (
        PARTITION BY "sample_uid"
        ORDER BY "metaxy_created_at" DESC NULLS LAST, "metaxy_deleted" DESC NULLS LAST, "metaxy_data_version" DESC NULLS LAST
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
    CAST(ARRAY[] AS TEXT[]) AS "metaxy_changed_fields"
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
    CAST(ARRAY_REMOVE(
      ARRAY[
        CASE
          WHEN "expected"."metaxy_provenance__clip" <> "current"."metaxy_provenance__clip"
          OR "current"."metaxy_provenance__clip" IS NULL
          THEN 'clip'
        END
      ],
      NULL
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
    CAST(ARRAY[] AS TEXT[]) AS "metaxy_changed_fields"
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
  JSONB_BUILD_OBJECT('clip', "metaxy_provenance__clip") AS "metaxy_provenance_by_field",
  SUBSTRING(ENCODE(
    SHA256(
      CONVERT_TO(
        'mxs1|s4:clip' || COALESCE(
          CAST(OCTET_LENGTH("metaxy_provenance__clip") AS TEXT) || ':' || "metaxy_provenance__clip",
          '~'
        ),
        'UTF8'
      )
    ),
    'hex'
  ) FROM 1 FOR 32) AS "metaxy_provenance",
  "metaxy_changed_fields"
FROM "increment"
