-- metaxy-sql resolve: video/full
-- feature_version: cb8b07ef8ca4cf390fd99023543e9fd9
-- field audio (code_version 1, field_version 5b6aaaff5683aa4af0c75d5852b7b432) <- (root)
-- field frames (code_version 1, field_version 4843c296f28a2c4e139a47e5ab78869a) <- (root)
-- metaxy_dv_token__<field> and metaxy_provenance__<field> are columns the tables derive from their maps (metaxy-sql render --ddl)
-- dialect: clickhouse; digest: sha256
WITH "upstream__video__full" AS (
  SELECT
    "sample_uid",
    CASE
      WHEN mapContains("metaxy_provenance_by_field", 'audio')
      THEN "metaxy_provenance_by_field"['audio']
      ELSE NULL
    END AS "metaxy_provenance__audio",
    CASE
      WHEN mapContains("metaxy_provenance_by_field", 'frames')
      THEN "metaxy_provenance_by_field"['frames']
      ELSE NULL
    END AS "metaxy_provenance__frames"
  FROM "metaxy_samples__video__full"
), "expected" AS (
  SELECT
    "upstream__video__full"."sample_uid",
    "upstream__video__full"."metaxy_provenance__audio",
    "upstream__video__full"."metaxy_provenance__frames"
  FROM "upstream__video__full"
), "current" AS (
  SELECT
    "sample_uid",
    "metaxy_provenance__audio",
    "metaxy_provenance__frames"
  FROM "video__full"
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
      THEN "current"."metaxy_provenance__audio"
      ELSE "expected"."metaxy_provenance__audio"
    END AS "metaxy_provenance__audio",
    CASE
      WHEN "expected"."sample_uid" IS NULL
      THEN "current"."metaxy_provenance__frames"
      ELSE "expected"."metaxy_provenance__frames"
    END AS "metaxy_provenance__frames",
    CASE
      WHEN "current"."sample_uid" IS NULL OR "expected"."sample_uid" IS NULL
      THEN CAST([] AS Array(String))
      ELSE CAST(arrayFilter(
        "x" -> isNotNull(x),
        [
          CASE
            WHEN "expected"."metaxy_provenance__audio" <> "current"."metaxy_provenance__audio"
            OR "current"."metaxy_provenance__audio" IS NULL
            THEN 'audio'
          END,
          CASE
            WHEN "expected"."metaxy_provenance__frames" <> "current"."metaxy_provenance__frames"
            OR "current"."metaxy_provenance__frames" IS NULL
            THEN 'frames'
          END
        ]
      ) AS Array(String))
    END AS "metaxy_changed_fields"
  FROM "expected"
  FULL OUTER JOIN "current"
    ON "expected"."sample_uid" = "current"."sample_uid"
  WHERE
    "current"."sample_uid" IS NULL
    OR "expected"."sample_uid" IS NULL
    OR (
      "expected"."metaxy_provenance__audio" <> "current"."metaxy_provenance__audio"
      OR "current"."metaxy_provenance__audio" IS NULL
    )
    OR (
      "expected"."metaxy_provenance__frames" <> "current"."metaxy_provenance__frames"
      OR "current"."metaxy_provenance__frames" IS NULL
    )
)
SELECT
  "metaxy_status",
  "sample_uid",
  map('audio', "metaxy_provenance__audio", 'frames', "metaxy_provenance__frames") AS "metaxy_provenance_by_field",
  SUBSTRING(
    lower(
      hex(
        SHA256(
          'mxs1|s5:audio' || COALESCE(
            toString(length("metaxy_provenance__audio")) || ':' || "metaxy_provenance__audio",
            '~'
          ) || '6:frames' || COALESCE(
            toString(length("metaxy_provenance__frames")) || ':' || "metaxy_provenance__frames",
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
SETTINGS join_use_nulls = 1, join_algorithm = 'full_sorting_merge,hash'
