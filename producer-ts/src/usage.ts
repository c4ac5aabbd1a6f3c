/**
 * Token usage from AI provider responses: Anthropic, OpenAI and Together SDK objects or JSON.
 *
 * The same rules as the Python producer's `producer/usage.py`: `input_tokens` is the whole
 * input, cache reads and writes included (OpenAI's and OpenTelemetry's convention;
 * Anthropic's `input_tokens` excludes them, so its three counts are added);
 * `cache_read_tokens` and `cache_write_tokens` say how much of it was priced at the cache
 * rates, and `cache_write_1h_tokens` how much of the writes went to the 1-hour cache.
 */

export const ANTHROPIC = "anthropic";
export const OPENAI = "openai";
export const TOGETHER = "together";

/** What a response says about its call; only the keys found are present. */
export interface Usage {
  model?: string;
  provider?: string;
  input_tokens?: number;
  output_tokens?: number;
  cache_read_tokens?: number;
  cache_write_tokens?: number;
  cache_write_1h_tokens?: number;
}

// Organisations whose open models Together serves as `org/model`. OpenAI's and Anthropic's
// own APIs never put a slash in a model name, so `org/model` from one of these is Together.
const TOGETHER_ORGS = new Set([
  "meta-llama",
  "mistralai",
  "qwen",
  "deepseek-ai",
  "togethercomputer",
  "nousresearch",
  "google",
  "nvidia",
  "baai",
  "intfloat",
  "moonshotai",
  "zai-org",
  "arcee-ai",
  "black-forest-labs",
  "lgai-exaone",
  "marin-community",
  "salesforce",
  "servicenow-ai",
  "upstage",
  "allenai",
  "microsoft",
  "alibaba-nlp",
  "thudm",
  "gryphe",
  "scb10x",
  "meta",
]);

const OPENAI_MODEL =
  /^(?:(?:ft:)?gpt-(?!oss)|chatgpt-|o[1-9](?:$|-)|text-embedding-|davinci|babbage|omni-moderation|computer-use|codex-|dall-e|tts-|whisper-)/i;

const CHAT_OBJECTS = new Set(["chat.completion", "chat.completion.chunk", "text_completion", "list"]);

type Shape = "anthropic" | "prompt" | "responses";

/**
 * The model, provider and token counts an SDK response (or its JSON) reports.
 *
 * `provider` is left out rather than guessed when the response does not say.
 * Never throws: anything unrecognised gives `{}`.
 */
export function usageFromResponse(response: unknown): Usage {
  try {
    return extract(response);
  } catch {
    return {};
  }
}

function extract(response: unknown): Usage {
  if (response === null || typeof response !== "object" || Array.isArray(response)) return {};
  let kind = tag(response, "type");
  if (kind === "message_start") {
    // A streamed Anthropic message starts with an event that carries the message.
    const inner = field(response, "message");
    if (inner !== undefined && inner !== null) {
      response = inner;
      kind = tag(inner, "type");
    }
  }
  const result: Usage = {};
  const rawModel = field(response, "model");
  const model = typeof rawModel === "string" && rawModel ? rawModel : undefined;
  if (model !== undefined) result.model = model;
  const usage = field(response, "usage");
  const shape = shapeOf(kind, tag(response, "object"), usage);
  const provider = providerOf(response, kind, shape, model);
  if (provider !== undefined) result.provider = provider;
  if (usage !== undefined && usage !== null && shape !== undefined) Object.assign(result, counts(usage, shape));
  return result;
}

/** `obj[name]`, undefined when absent or when reading it throws. */
function field(obj: unknown, name: string): unknown {
  if (obj === null || (typeof obj !== "object" && typeof obj !== "function")) return undefined;
  try {
    if (obj instanceof Map) return obj.get(name);
    return (obj as Record<string, unknown>)[name];
  } catch {
    return undefined;
  }
}

function tag(obj: unknown, name: string): string | undefined {
  const value = field(obj, name);
  return typeof value === "string" ? value : undefined;
}

function count(value: unknown): number | undefined {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 ? value : undefined;
}

function present(value: unknown): boolean {
  return value !== undefined && value !== null;
}

function shapeOf(kind: string | undefined, obj: string | undefined, usage: unknown): Shape | undefined {
  if (kind === "message") return "anthropic";
  if (obj !== undefined && CHAT_OBJECTS.has(obj)) return "prompt";
  if (obj === "response") return "responses";
  if (!present(usage)) return undefined;
  // No type marker (a trimmed recording, another SDK): recognise the usage object itself.
  if (present(field(usage, "prompt_tokens"))) return "prompt";
  if (present(field(usage, "cache_creation_input_tokens")) || present(field(usage, "cache_read_input_tokens"))) {
    return "anthropic";
  }
  if (present(field(usage, "input_tokens")) || present(field(usage, "output_tokens"))) {
    // Without cache details both conventions agree: input_tokens is the whole input.
    return "responses";
  }
  return undefined;
}

function counts(usage: unknown, shape: Shape): Usage {
  const out: Usage = {};
  let cacheRead: number | undefined;
  let cacheWrite: number | undefined;
  let cacheWrite1h: number | undefined;
  let output: number | undefined;
  if (shape === "anthropic") {
    const uncached = count(field(usage, "input_tokens"));
    cacheRead = count(field(usage, "cache_read_input_tokens"));
    cacheWrite = count(field(usage, "cache_creation_input_tokens"));
    // Anthropic splits the writes by cache lifetime; cache_creation_input_tokens is their sum.
    const byTtl = field(usage, "cache_creation");
    const write5m = count(field(byTtl, "ephemeral_5m_input_tokens"));
    cacheWrite1h = count(field(byTtl, "ephemeral_1h_input_tokens"));
    if (cacheWrite === undefined && (write5m !== undefined || cacheWrite1h !== undefined)) {
      cacheWrite = (write5m ?? 0) + (cacheWrite1h ?? 0);
    }
    if (uncached !== undefined) out.input_tokens = uncached + (cacheRead ?? 0) + (cacheWrite ?? 0);
    output = count(field(usage, "output_tokens"));
  } else if (shape === "prompt") {
    const prompt = count(field(usage, "prompt_tokens"));
    if (prompt !== undefined) out.input_tokens = prompt;
    const details = field(usage, "prompt_tokens_details");
    // Together reports cached prompt tokens at the top level of usage.
    cacheRead = count(field(details, "cached_tokens")) ?? count(field(usage, "cached_tokens"));
    cacheWrite = count(field(details, "cache_write_tokens"));
    output = count(field(usage, "completion_tokens"));
  } else {
    const totalInput = count(field(usage, "input_tokens"));
    if (totalInput !== undefined) out.input_tokens = totalInput;
    const details = field(usage, "input_tokens_details");
    cacheRead = count(field(details, "cached_tokens"));
    cacheWrite = count(field(details, "cache_write_tokens"));
    output = count(field(usage, "output_tokens"));
  }
  if (output !== undefined) out.output_tokens = output;
  if (cacheRead !== undefined) out.cache_read_tokens = cacheRead;
  if (cacheWrite !== undefined) out.cache_write_tokens = cacheWrite;
  if (cacheWrite1h !== undefined) out.cache_write_1h_tokens = cacheWrite1h;
  return out;
}

function providerOf(
  response: unknown,
  kind: string | undefined,
  shape: Shape | undefined,
  model: string | undefined,
): string | undefined {
  if (kind === "message") return ANTHROPIC;
  if (model === undefined || shape === undefined) return undefined;
  const slash = model.indexOf("/");
  if (slash >= 0) {
    const org = model.slice(0, slash);
    const name = model.slice(slash + 1);
    // Routers (OpenRouter) serve the same `org/model` names; they mark their responses.
    const routed = present(field(response, "provider")) || String(field(response, "id") ?? "").startsWith("gen-");
    if (TOGETHER_ORGS.has(org.toLowerCase()) && name && !routed) return TOGETHER;
    return undefined;
  }
  if (model.toLowerCase().startsWith("claude")) return ANTHROPIC;
  // The OpenAI SDK also talks to other OpenAI-compatible APIs; OpenAI's own model names tell.
  if (OPENAI_MODEL.test(model)) return OPENAI;
  return undefined;
}
