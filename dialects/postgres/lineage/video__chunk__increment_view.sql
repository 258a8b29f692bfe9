-- metaxy-sql materialize: view "video__chunk__increment"
-- metaxy-sql resolve: video/chunk
-- feature_version: 876a49f0e1a16a9a4e06975c2f5207fb
-- field frames (code_version 1, field_version b4b5a7b362f8cb1be036d5c79add72c1) <- video/full.frames
-- dialect: postgres; digest: sha256
CREATE OR REPLACE VIEW "video__chunk__increment" AS
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
    "chunk_id",
    "metaxy_provenance_by_field" ->> 'frames' AS "metaxy_provenance__frames"
  FROM "video__chunk"
  WHERE
    NOT "metaxy_superseded" AND NOT "metaxy_deleted"
), "increment" AS (
  SELECT
    CASE WHEN COUNT("current"."sample_uid") = 0 THEN 'new' ELSE 'stale' END AS "metaxy_status",
    "expected"."sample_uid" AS "sample_uid",
    NULL AS "chunk_id",
    "expected"."metaxy_provenance__frames" AS "metaxy_provenance__frames",
    CASE
      WHEN COUNT("current"."sample_uid") = 0
      THEN CAST(ARRAY[] AS TEXT[])
      ELSE CAST(ARRAY_REMOVE(
        ARRAY[
          CASE
            WHEN MAX(
              CASE
                WHEN "expected"."metaxy_provenance__frames" <> "current"."metaxy_provenance__frames"
                OR "current"."metaxy_provenance__frames" IS NULL
                THEN 1
                ELSE 0
              END
            ) = 1
            THEN 'frames'
          END
        ],
        NULL
      ) AS TEXT[])
    END AS "metaxy_changed_fields"
  FROM "expected"
  LEFT JOIN "current"
    ON "expected"."sample_uid" = "current"."sample_uid"
  GROUP BY
    "expected"."sample_uid",
    "expected"."metaxy_provenance__frames"
  HAVING
    COUNT("current"."sample_uid") = 0
    OR MAX(
      CASE
        WHEN "expected"."metaxy_provenance__frames" <> "current"."metaxy_provenance__frames"
        OR "current"."metaxy_provenance__frames" IS NULL
        THEN 1
        ELSE 0
      END
    ) = 1
  UNION ALL
  SELECT
    'orphaned' AS "metaxy_status",
    "current"."sample_uid",
    "current"."chunk_id",
    "current"."metaxy_provenance__frames",
    CAST(ARRAY[] AS TEXT[]) AS "metaxy_changed_fields"
  FROM "current"
  LEFT JOIN "expected"
    ON "current"."sample_uid" = "expected"."sample_uid"
  WHERE
    "expected"."sample_uid" IS NULL
)
SELECT
  "metaxy_status",
  "sample_uid",
  "chunk_id",
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
