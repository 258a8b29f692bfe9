-- metaxy-sql resolve: video/face_crop
-- feature_version: f803872e281c9a58fef5cee16a379ca2
-- field frames (code_version 1, field_version d29dead03741661a6f3b8ca0d0366d78) <- video/full.frames
-- dialect: duckdb; digest: sha256
WITH "upstream__video__full" AS (
  SELECT
    "sample_uid",
    "metaxy_data_version_by_field"['frames'] AS "metaxy_data_version__frames"
  FROM "video__full"
  WHERE
    NOT "metaxy_superseded" AND NOT "metaxy_deleted"
), "expected" AS (
  SELECT
    "upstream__video__full"."sample_uid",
    SUBSTRING(
      SHA256(
        'mxs1|f6:frames1:110:video/full6:frames' || COALESCE(
          CAST(STRLEN("upstream__video__full"."metaxy_data_version__frames") AS TEXT) || ':' || "upstream__video__full"."metaxy_data_version__frames",
          '~'
        )
      ),
      1,
      32
    ) AS "metaxy_provenance__frames"
  FROM "upstream__video__full"
), "current" AS (
  SELECT
    "sample_uid",
    "metaxy_provenance_by_field"['frames'] AS "metaxy_provenance__frames"
  FROM "video__face_crop"
  WHERE
    NOT "metaxy_superseded" AND NOT "metaxy_deleted"
), "increment" AS (
  SELECT
    'new' AS "metaxy_status",
    "expected"."sample_uid",
    "expected"."metaxy_provenance__frames",
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
    "expected"."metaxy_provenance__frames",
    CAST(LIST_FILTER(
      [
        CASE
          WHEN "expected"."metaxy_provenance__frames" <> "current"."metaxy_provenance__frames"
          OR "current"."metaxy_provenance__frames" IS NULL
          THEN 'frames'
        END
      ],
      LAMBDA "x" : NOT "x" IS NULL
    ) AS TEXT[]) AS "metaxy_changed_fields"
  FROM "expected"
  INNER JOIN "current"
    ON "expected"."sample_uid" = "current"."sample_uid"
  WHERE
    "expected"."metaxy_provenance__frames" <> "current"."metaxy_provenance__frames"
    OR "current"."metaxy_provenance__frames" IS NULL
  UNION ALL
  SELECT
    'orphaned' AS "metaxy_status",
    "current"."sample_uid",
    "current"."metaxy_provenance__frames",
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
  MAP(['frames'], ["metaxy_provenance__frames"]) AS "metaxy_provenance_by_field",
  SUBSTRING(
    SHA256(
      'mxs1|s6:frames' || COALESCE(
        CAST(STRLEN("metaxy_provenance__frames") AS TEXT) || ':' || "metaxy_provenance__frames",
        '~'
      )
    ),
    1,
    32
  ) AS "metaxy_provenance",
  "metaxy_changed_fields"
FROM "increment"
