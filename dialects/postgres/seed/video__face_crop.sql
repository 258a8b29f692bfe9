-- metaxy-sql resolve: video/face_crop
-- feature_version: f803872e281c9a58fef5cee16a379ca2
-- field frames (code_version 1, field_version d29dead03741661a6f3b8ca0d0366d78) <- video/full.frames
-- dialect: postgres; digest: sha256
WITH "upstream__video__full" AS (
  SELECT
    "sample_uid",
    COALESCE(
      CAST(OCTET_LENGTH((
        "metaxy_data_version_by_field" ->> 'frames'
      )) AS TEXT) || ':' || (
        "metaxy_data_version_by_field" ->> 'frames'
      ),
      '~'
    ) AS "metaxy_dv_token__frames"
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
            'mxs1|f6:frames1:110:video/full6:frames',
            "upstream__video__full"."metaxy_dv_token__frames"
          ),
          'UTF8'
        )
      ),
      'hex'
    ) FROM 1 FOR 32) AS "metaxy_provenance__frames"
  FROM "upstream__video__full"
), "current" AS (
  SELECT
    "sample_uid",
    "metaxy_provenance_by_field" ->> 'frames' AS "metaxy_provenance__frames"
  FROM "video__face_crop"
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
      THEN "current"."metaxy_provenance__frames"
      ELSE "expected"."metaxy_provenance__frames"
    END AS "metaxy_provenance__frames",
    CASE
      WHEN "current"."sample_uid" IS NULL OR "expected"."sample_uid" IS NULL
      THEN CAST(ARRAY[] AS TEXT[])
      ELSE CAST(ARRAY_REMOVE(
        ARRAY[
          CASE
            WHEN "expected"."metaxy_provenance__frames" <> "current"."metaxy_provenance__frames"
            OR "current"."metaxy_provenance__frames" IS NULL
            THEN 'frames'
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
      "expected"."metaxy_provenance__frames" <> "current"."metaxy_provenance__frames"
      OR "current"."metaxy_provenance__frames" IS NULL
    )
)
SELECT
  "metaxy_status",
  "sample_uid",
  JSONB_BUILD_OBJECT('frames', "metaxy_provenance__frames") AS "metaxy_provenance_by_field",
  SUBSTRING(ENCODE(
    SHA256(
      CONVERT_TO(
        CONCAT(
          'mxs1|s6:frames',
          COALESCE(
            CAST(OCTET_LENGTH("metaxy_provenance__frames") AS TEXT) || ':' || "metaxy_provenance__frames",
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
