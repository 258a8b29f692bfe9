-- metaxy-sql resolve: video/full
-- feature_version: cb8b07ef8ca4cf390fd99023543e9fd9
-- field audio (code_version 1, field_version 5b6aaaff5683aa4af0c75d5852b7b432) <- (root)
-- field frames (code_version 1, field_version 4843c296f28a2c4e139a47e5ab78869a) <- (root)
-- dialect: duckdb; digest: sha256
WITH "upstream__video__full" AS (
  SELECT
    "sample_uid",
    "metaxy_provenance_by_field"['audio'] AS "metaxy_provenance__audio",
    "metaxy_provenance_by_field"['frames'] AS "metaxy_provenance__frames"
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
    "metaxy_provenance_by_field"['audio'] AS "metaxy_provenance__audio",
    "metaxy_provenance_by_field"['frames'] AS "metaxy_provenance__frames"
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
      THEN CAST([] AS TEXT[])
      ELSE CAST(LIST_FILTER(
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
  MAP(['audio', 'frames'], ["metaxy_provenance__audio", "metaxy_provenance__frames"]) AS "metaxy_provenance_by_field",
  SUBSTRING(
    SHA256(
      CONCAT(
        'mxs1|s5:audio',
        COALESCE(
          CAST(STRLEN("metaxy_provenance__audio") AS TEXT) || ':' || "metaxy_provenance__audio",
          '~'
        ),
        '6:frames',
        COALESCE(
          CAST(STRLEN("metaxy_provenance__frames") AS TEXT) || ':' || "metaxy_provenance__frames",
          '~'
        )
      )
    ),
    1,
    32
  ) AS "metaxy_provenance",
  "metaxy_changed_fields"
FROM "increment"
