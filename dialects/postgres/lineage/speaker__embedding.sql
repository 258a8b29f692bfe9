-- metaxy-sql resolve: speaker/embedding
-- feature_version: 0dd83750b68bb6f4995822436b892dcd
-- field embedding (code_version 1, field_version 7c4b940fb1c71a4c972c79954ec948f3) <- audio/utterance.audio
-- dialect: postgres; digest: sha256
WITH "upstream__audio__utterance" AS (
  SELECT
    "speaker_id",
    COALESCE(
      CAST(OCTET_LENGTH(
        SUBSTRING(ENCODE(
          SHA256(
            CONVERT_TO(
              CONCAT(
                'mxs1|g',
                STRING_AGG("metaxy_member__audio", ''
                ORDER BY
                  "metaxy_member__audio" COLLATE "C")
              ),
              'UTF8'
            )
          ),
          'hex'
        ) FROM 1 FOR 32)
      ) AS TEXT) || ':' || SUBSTRING(ENCODE(
        SHA256(
          CONVERT_TO(
            CONCAT(
              'mxs1|g',
              STRING_AGG("metaxy_member__audio", ''
              ORDER BY
                "metaxy_member__audio" COLLATE "C")
            ),
            'UTF8'
          )
        ),
        'hex'
      ) FROM 1 FOR 32),
      '~'
    ) AS "metaxy_dv_token__audio"
  FROM (
    SELECT
      "speaker_id",
      "utterance_id",
      CONCAT(
        COALESCE(
          CAST(OCTET_LENGTH(CAST("speaker_id" AS TEXT)) AS TEXT) || ':' || CAST("speaker_id" AS TEXT),
          '~'
        ),
        COALESCE(
          CAST(OCTET_LENGTH(CAST("utterance_id" AS TEXT)) AS TEXT) || ':' || CAST("utterance_id" AS TEXT),
          '~'
        ),
        COALESCE(
          CAST(OCTET_LENGTH((
            "metaxy_data_version_by_field" ->> 'audio'
          )) AS TEXT) || ':' || (
            "metaxy_data_version_by_field" ->> 'audio'
          ),
          '~'
        )
      ) AS "metaxy_member__audio"
    FROM "audio__utterance"
    WHERE
      NOT "metaxy_superseded" AND NOT "metaxy_deleted"
  ) AS "members"
  GROUP BY
    "speaker_id"
), "expected" AS (
  SELECT
    "upstream__audio__utterance"."speaker_id",
    SUBSTRING(ENCODE(
      SHA256(
        CONVERT_TO(
          CONCAT(
            'mxs1|f9:embedding1:115:audio/utterance5:audio',
            "upstream__audio__utterance"."metaxy_dv_token__audio"
          ),
          'UTF8'
        )
      ),
      'hex'
    ) FROM 1 FOR 32) AS "metaxy_provenance__embedding"
  FROM "upstream__audio__utterance"
), "current" AS (
  SELECT
    "speaker_id",
    "metaxy_provenance_by_field" ->> 'embedding' AS "metaxy_provenance__embedding"
  FROM "speaker__embedding"
  WHERE
    NOT "metaxy_superseded" AND NOT "metaxy_deleted"
), "increment" AS (
  SELECT
    CASE
      WHEN "current"."speaker_id" IS NULL
      THEN 'new'
      WHEN "expected"."speaker_id" IS NULL
      THEN 'orphaned'
      ELSE 'stale'
    END AS "metaxy_status",
    COALESCE("expected"."speaker_id", "current"."speaker_id") AS "speaker_id",
    CASE
      WHEN "expected"."speaker_id" IS NULL
      THEN "current"."metaxy_provenance__embedding"
      ELSE "expected"."metaxy_provenance__embedding"
    END AS "metaxy_provenance__embedding",
    CASE
      WHEN "current"."speaker_id" IS NULL OR "expected"."speaker_id" IS NULL
      THEN CAST(ARRAY[] AS TEXT[])
      ELSE CAST(ARRAY_REMOVE(
        ARRAY[
          CASE
            WHEN "expected"."metaxy_provenance__embedding" <> "current"."metaxy_provenance__embedding"
            OR "current"."metaxy_provenance__embedding" IS NULL
            THEN 'embedding'
          END
        ],
        NULL
      ) AS TEXT[])
    END AS "metaxy_changed_fields"
  FROM "expected"
  FULL OUTER JOIN "current"
    ON "expected"."speaker_id" = "current"."speaker_id"
  WHERE
    "current"."speaker_id" IS NULL
    OR "expected"."speaker_id" IS NULL
    OR (
      "expected"."metaxy_provenance__embedding" <> "current"."metaxy_provenance__embedding"
      OR "current"."metaxy_provenance__embedding" IS NULL
    )
)
SELECT
  "metaxy_status",
  "speaker_id",
  JSONB_BUILD_OBJECT('embedding', "metaxy_provenance__embedding") AS "metaxy_provenance_by_field",
  SUBSTRING(ENCODE(
    SHA256(
      CONVERT_TO(
        CONCAT(
          'mxs1|s9:embedding',
          COALESCE(
            CAST(OCTET_LENGTH("metaxy_provenance__embedding") AS TEXT) || ':' || "metaxy_provenance__embedding",
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
