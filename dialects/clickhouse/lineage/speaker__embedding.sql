-- metaxy-sql resolve: speaker/embedding
-- feature_version: 0dd83750b68bb6f4995822436b892dcd
-- field embedding (code_version 1, field_version 7c4b940fb1c71a4c972c79954ec948f3) <- audio/utterance.audio
-- metaxy_dv_token__<field> and metaxy_provenance__<field> are columns the tables derive from their maps (metaxy-sql render --ddl)
-- dialect: clickhouse; digest: sha256
WITH "upstream__audio__utterance" AS (
  SELECT
    "speaker_id",
    COALESCE(
      toString(
        length(
          SUBSTRING(
            lower(
              hex(
                SHA256('mxs1|g' || arrayStringConcat(arraySort(groupArray("metaxy_member__audio"))))
              )
            ),
            1,
            32
          )
        )
      ) || ':' || SUBSTRING(
        lower(
          hex(
            SHA256('mxs1|g' || arrayStringConcat(arraySort(groupArray("metaxy_member__audio"))))
          )
        ),
        1,
        32
      ),
      '~'
    ) AS "metaxy_dv_token__audio"
  FROM (
    SELECT
      "speaker_id",
      "utterance_id",
      COALESCE(toString(length(toString("speaker_id"))) || ':' || toString("speaker_id"), '~') || COALESCE(toString(length(toString("utterance_id"))) || ':' || toString("utterance_id"), '~') || COALESCE(
        toString(
          length(
            (
              CASE
                WHEN mapContains("metaxy_data_version_by_field", 'audio')
                THEN "metaxy_data_version_by_field"['audio']
                ELSE NULL
              END
            )
          )
        ) || ':' || (
          CASE
            WHEN mapContains("metaxy_data_version_by_field", 'audio')
            THEN "metaxy_data_version_by_field"['audio']
            ELSE NULL
          END
        ),
        '~'
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
    SUBSTRING(
      lower(
        hex(
          SHA256(
            'mxs1|f9:embedding1:115:audio/utterance5:audio' || "upstream__audio__utterance"."metaxy_dv_token__audio"
          )
        )
      ),
      1,
      32
    ) AS "metaxy_provenance__embedding"
  FROM "upstream__audio__utterance"
), "current" AS (
  SELECT
    "speaker_id",
    "metaxy_provenance__embedding"
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
      THEN CAST([] AS Array(String))
      ELSE CAST(arrayFilter(
        "x" -> isNotNull(x),
        [
          CASE
            WHEN "expected"."metaxy_provenance__embedding" <> "current"."metaxy_provenance__embedding"
            OR "current"."metaxy_provenance__embedding" IS NULL
            THEN 'embedding'
          END
        ]
      ) AS Array(String))
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
  map('embedding', "metaxy_provenance__embedding") AS "metaxy_provenance_by_field",
  SUBSTRING(
    lower(
      hex(
        SHA256(
          'mxs1|s9:embedding' || COALESCE(
            toString(length("metaxy_provenance__embedding")) || ':' || "metaxy_provenance__embedding",
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
