-- metaxy-sql resolve: video/captioned
-- feature_version: 2a2ab9dfdcf04304c8cd8c6808f40ab9
-- field caption (code_version 1, field_version 9cf02ca3374ea9cec9e052fb8492731e) <- subtitles/raw.text, video/full.audio, video/full.frames
-- dialect: postgres; digest: sha256
WITH "upstream__subtitles__raw" AS (
  SELECT
    "sample_uid",
    COALESCE(
      CAST(OCTET_LENGTH((
        "metaxy_data_version_by_field" ->> 'text'
      )) AS TEXT) || ':' || (
        "metaxy_data_version_by_field" ->> 'text'
      ),
      '~'
    ) AS "metaxy_dv_token__text"
  FROM "subtitles__raw"
  WHERE
    NOT "metaxy_superseded" AND NOT "metaxy_deleted"
), "upstream__video__full" AS (
  SELECT
    "sample_uid",
    COALESCE(
      CAST(OCTET_LENGTH((
        "metaxy_data_version_by_field" ->> 'audio'
      )) AS TEXT) || ':' || (
        "metaxy_data_version_by_field" ->> 'audio'
      ),
      '~'
    ) AS "metaxy_dv_token__audio",
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
            'mxs1|f7:caption1:113:subtitles/raw4:text',
            COALESCE("upstream__subtitles__raw"."metaxy_dv_token__text", '~'),
            '10:video/full5:audio',
            "upstream__video__full"."metaxy_dv_token__audio",
            '10:video/full6:frames',
            "upstream__video__full"."metaxy_dv_token__frames"
          ),
          'UTF8'
        )
      ),
      'hex'
    ) FROM 1 FOR 32) AS "metaxy_provenance__caption"
  FROM "upstream__video__full"
  LEFT JOIN "upstream__subtitles__raw"
    ON "upstream__video__full"."sample_uid" = "upstream__subtitles__raw"."sample_uid"
), "current" AS (
  SELECT
    "sample_uid",
    "metaxy_provenance_by_field" ->> 'caption' AS "metaxy_provenance__caption"
  FROM "video__captioned"
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
      THEN "current"."metaxy_provenance__caption"
      ELSE "expected"."metaxy_provenance__caption"
    END AS "metaxy_provenance__caption",
    CASE
      WHEN "current"."sample_uid" IS NULL OR "expected"."sample_uid" IS NULL
      THEN CAST(ARRAY[] AS TEXT[])
      ELSE CAST(ARRAY_REMOVE(
        ARRAY[
          CASE
            WHEN "expected"."metaxy_provenance__caption" <> "current"."metaxy_provenance__caption"
            OR "current"."metaxy_provenance__caption" IS NULL
            THEN 'caption'
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
      "expected"."metaxy_provenance__caption" <> "current"."metaxy_provenance__caption"
      OR "current"."metaxy_provenance__caption" IS NULL
    )
)
SELECT
  "metaxy_status",
  "sample_uid",
  JSONB_BUILD_OBJECT('caption', "metaxy_provenance__caption") AS "metaxy_provenance_by_field",
  SUBSTRING(ENCODE(
    SHA256(
      CONVERT_TO(
        CONCAT(
          'mxs1|s7:caption',
          COALESCE(
            CAST(OCTET_LENGTH("metaxy_provenance__caption") AS TEXT) || ':' || "metaxy_provenance__caption",
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
