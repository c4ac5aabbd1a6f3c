/**
 * Names shared with the Python producer and the workers (producer/constants.py):
 * the stream key and the fields of one stream entry.
 */

export const DEFAULT_STREAM = "ailedger:events";

/** The field of a stream entry that holds the event, as one JSON-encoded object. */
export const EVENT_FIELD = "e";

/** The wire format version, stored beside the event so workers can tell formats apart. */
export const VERSION_FIELD = "v";
export const WIRE_VERSION = "1";

/** The path of the ingest API under the endpoint's base URL. */
export const INGEST_PATH = "/api/ingest";

export const USE_AI_RESULT = "use_ai_result";
export const FALLBACK_TO_RULES = "fallback_to_rules";
export type Action = typeof USE_AI_RESULT | typeof FALLBACK_TO_RULES;
