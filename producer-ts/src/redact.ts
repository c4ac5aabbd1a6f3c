/**
 * Secrets out, size capped: what a request or response payload may carry into the ledger.
 *
 * A port of the Python producer's `producer/redact.py`, rule for rule: values under
 * secret-looking keys, and credentials found inside strings, read `[REDACTED]`; a payload
 * whose JSON is larger than `maxBytes` is shrunk deterministically with the same markers.
 */

export const REDACTED = "[REDACTED]";
export const DEFAULT_MAX_BYTES = 16_384;
export const MAX_DEPTH = 32;

// Strings longer than maxBytes can never fit; only this much past the cap is scanned for
// credentials, so that a secret straddling the eventual cut is still recognised whole.
const SCAN_MARGIN = 512;
const TRUNCATED = /…\[truncated (\d+) chars\]$/;
const MORE_ITEMS = /^…\[(\d+) more items\]$/;
const MORE_KEYS = "_truncated_keys"; // the number of entries cut from an object

// Key names, lower-cased with "-", "_", "." and spaces removed.
const SECRET_KEYS = new Set(["auth", "token", "pwd", "cookie", "setcookie", "xapikey"]);
const SECRET_KEY_PART =
  /password|passwd|passphrase|secret|apikey|privatekey|authorization|cookie|credential|subscriptionkey/;
const VOCABULARY_TOKEN = /^(?:pad|bos|eos|unk|sep|cls|mask|stop|start|end)token$/; // not secret

interface Rule {
  gates: string[];
  needs: string;
  pattern: RegExp;
  replacement: string;
}

function rule(gates: string, pattern: RegExp, replacement = REDACTED, needs = ""): Rule {
  return { gates: gates.split("|"), needs, pattern, replacement };
}

// A rule runs only when one of its "|"-separated gates, and what it needs, occur in the
// lower-cased text: substring tests are far cheaper than a regex scan, and most strings
// trip none. JavaScript has no scoped flags, so Python's `(?i:bearer)` makes the whole
// pattern case-insensitive where the rest of it already accepts both cases.
const RULES: readonly Rule[] = [
  rule("private key", /-----BEGIN[A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END[A-Z ]*PRIVATE KEY-----|$)/g),
  rule("sk-", /\bsk-[A-Za-z0-9_-]{20,}/g), // OpenAI sk-…, sk-proj-…; Anthropic sk-ant-…
  rule("akia|asia", /\b(?:AKIA|ASIA)[A-Z0-9]{16}\b/g), // AWS access key ids
  rule("eyj", /\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*/g), // JWT
  rule("ghp_|gho_|ghu_|ghs_|ghr_|github_pat_", /\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{20,})/g),
  rule("aiza", /\bAIza[0-9A-Za-z_-]{30,}/g), // Google
  rule("xox", /\bxox[abprs]-[A-Za-z0-9-]{10,}/g), // Slack
  rule("hf_", /\bhf_[A-Za-z0-9]{30,}/g), // Hugging Face
  rule("tgp_v1_", /\btgp_v1_[A-Za-z0-9_-]{20,}/g), // Together
  rule("k_live_|k_test_", /\b[rsp]k_(?:live|test)_[A-Za-z0-9]{16,}/g), // Stripe
  rule("bearer", /\bbearer\s+[A-Za-z0-9._~+/=-]{16,}/gi),
  // Credentials next to a name that says what they are: URLs, headers, key=value, JSON text.
  rule("://", /(?<=:\/\/)[^\s/@:]+:[^\s/@]+(?=@)/g, REDACTED, "@"),
  rule(
    "key=|token=|secret=|password=|passwd=|signature=|sig=|credential=",
    /([?&;][\w.-]*?(?:key|token|secret|password|passwd|signature|sig|credential)=)[^&#\s"'<>]+/gi,
    `$1${REDACTED}`,
  ),
  rule(
    "authorization|cookie|x-api-key",
    /^(\s*(?:proxy-)?authorization|\s*(?:set-)?cookie|\s*x-api-key)\s*:\s*\S[^\r\n]*/gim,
    `$1: ${REDACTED}`,
    ":",
  ),
  rule(
    "password|passwd|pwd|secret|apikey|api_key|api-key|token=|token =",
    /\b((?:password|passwd|pwd|client_secret|secret|api[_-]?key|(?:access|refresh|auth|id)[_-]?token)\s*=\s*)[^\s&,;'"]+/gi,
    `$1${REDACTED}`,
    "=",
  ),
  rule(
    'password"|passwd"|secret"|key"|authorization"|cookie"|token"',
    /("(?:[\w-]*(?:password|passwd|secret|api[_-]?key|authorization|cookie)|(?:[\w-]*[_-])?token)"\s*:\s*)"(?:[^"\\]|\\.)*"/gi,
    `$1"${REDACTED}"`,
    ":",
  ),
];
const GATES = [...new Set(RULES.flatMap((r) => r.gates))];
const HEADER_VALUE = /^\s*(?:bearer\s+\S+|basic\s+([A-Za-z0-9+/]{8,}={0,2}))\s*$/i;

/** The UTF-8 size of a string, without allocating its bytes. */
export function utf8Length(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) continue;
    if (code < 0x800) bytes += 1;
    else if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 2; // a pair: 2 UTF-16 units, 4 bytes
        i++;
      } else bytes += 2;
    } else bytes += 2;
  }
  return bytes;
}

/** `text` as UTF-8 can carry it: lone surrogates become U+FFFD. */
export function repairText(text: string): string {
  const fix = (text as { toWellFormed?: () => string }).toWellFormed;
  if (typeof fix === "function") return fix.call(text);
  return text.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, "\ufffd");
}

/** The first `limit` UTF-16 units of `text`, never ending in half a surrogate pair. */
function cut(text: string, limit: number): string {
  let end = Math.max(0, limit);
  if (end >= text.length) return text;
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end -= 1;
  return text.slice(0, end);
}

/**
 * A JSON-native copy of `value` without secrets, whose JSON encoding fits `maxBytes`.
 *
 * Values under secret-looking keys (`api_key`, `Authorization`, `password`, `access_token`,
 * `cookie`…; not token counts such as `max_tokens`) and credentials inside strings (`sk-…`
 * keys, bearer tokens, AWS key ids, JWTs, private keys…) become `"[REDACTED]"`. A payload
 * too big is shrunk: long strings end in `"…[truncated N chars]"`, long arrays in
 * `"…[N more items]"`; when even that does not fit, the result is
 * `{"_truncated": true, "_original_bytes": N}`. Never throws.
 */
export function redact(value: unknown, maxBytes: number = DEFAULT_MAX_BYTES): unknown {
  try {
    const limit = Math.max(Math.trunc(Number(maxBytes)) || 0, 0);
    const clean = new Cleaner(limit).clean(value, 0);
    const size = encodedSize(clean);
    if (size <= limit) return clean;
    for (const [strings, items, depth] of shrinkSteps(limit)) {
      const smaller = shrink(clean, strings, items, depth);
      if (encodedSize(smaller) <= limit) return smaller;
    }
    return { _truncated: true, _original_bytes: size };
  } catch (error) {
    // Only a defect in this module gets here; the payload is dropped, never sent raw.
    return { _redaction_failed: error instanceof Error ? error.name : "Error" };
  }
}

function encodedSize(value: unknown): number {
  return utf8Length(JSON.stringify(value) ?? "null");
}

/** `text` with the credentials found in it replaced by `[REDACTED]`. */
export function redactText(text: string): string {
  if (text.length < 8) return text;
  const lower = text.toLowerCase();
  const trimmed = lower.trimStart();
  if (trimmed.startsWith("bearer") || trimmed.startsWith("basic")) {
    const header = HEADER_VALUE.exec(text);
    if (header !== null) {
      const basic = header[1];
      // "Basic <base64>" only when it looks like base64: "Basic information" survives.
      if (basic === undefined || !isLower(basic) || /[0-9+/=]/.test(basic)) return REDACTED;
    }
  }
  if (!GATES.some((gate) => lower.includes(gate))) return text; // the common case
  for (const { gates, needs, pattern, replacement } of RULES) {
    if (!lower.includes(needs)) continue;
    if (gates.some((gate) => lower.includes(gate))) text = text.replace(pattern, replacement);
  }
  return text;
}

/** Python's str.islower(): some cased character, and none upper case. */
function isLower(text: string): boolean {
  return text === text.toLowerCase() && text !== text.toUpperCase();
}

const secretKeyCache = new Map<string, boolean>();

/** Whether a value stored under this key name is a credential (`X-Api-Key`, `token`…). */
export function isSecretKey(name: string): boolean {
  const known = secretKeyCache.get(name);
  if (known !== undefined) return known;
  const key = name.toLowerCase().replace(/[-_. ]/g, "");
  // "access_token" is a secret, "input_tokens" and "max_tokens" are counts.
  const secret =
    SECRET_KEYS.has(key) || SECRET_KEY_PART.test(key) || (key.endsWith("token") && !VOCABULARY_TOKEN.test(key));
  if (secretKeyCache.size > 4096) secretKeyCache.clear();
  secretKeyCache.set(name, secret);
  return secret;
}

function isNumberLike(value: unknown): boolean {
  // Numbers, booleans and null carry no credential: "max_token": 512 stays.
  return value === null || value === undefined || typeof value === "number" || typeof value === "boolean" || typeof value === "bigint";
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** One pass that redacts and converts to JSON-native values, bounded in depth and work. */
class Cleaner {
  private budget: number;
  private readonly path = new Set<object>(); // the containers being cleaned, to spot cycles

  constructor(private readonly maxBytes: number) {
    // Shared references could expand a small object graph exponentially; every node
    // costs at least a byte of output, so past this many nothing more can fit anyway.
    this.budget = 4 * maxBytes + 1024;
  }

  clean(value: unknown, depth: number): Json {
    this.budget -= 1;
    switch (typeof value) {
      case "string":
        return this.text(value);
      case "boolean":
        return value;
      case "number":
        return Number.isFinite(value) ? value : null;
      case "bigint":
        return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)
          ? Number(value)
          : value.toString();
      case "undefined":
        return null;
      case "symbol":
        return this.text(value.toString());
      case "function":
        return `[function ${value.name || "anonymous"}]`;
    }
    if (value === null) return null;
    if (this.budget < 0) return "[…]";
    if (depth >= MAX_DEPTH) return "[depth limit]";
    const obj = value as object;
    if (this.path.has(obj)) return "[cycle]";
    this.path.add(obj);
    try {
      return this.container(obj, depth);
    } catch {
      // A container whose reading fails (a throwing getter) loses itself only.
      return `[unreadable ${obj.constructor?.name ?? "object"}]`;
    } finally {
      this.path.delete(obj);
    }
  }

  private container(value: object, depth: number): Json {
    if (Array.isArray(value)) return this.sequence(value, depth);
    if (value instanceof Set) return this.sequence([...value], depth);
    if (value instanceof Map) return this.mapping(value.entries(), value.has("logprob"), depth);
    if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
    if (value instanceof Error) return this.text(`${errorName(value)}: ${value.message}`);
    if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) return this.bytes(value);
    const toJSON = (value as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === "function") {
      // Decimal libraries, URLs, SDK objects: what JSON.stringify would write.
      return this.clean(toJSON.call(value), depth + 1);
    }
    return this.mapping(Object.entries(value), Object.prototype.hasOwnProperty.call(value, "logprob"), depth);
  }

  private text(text: string): string {
    text = repairText(text);
    if (text.length <= this.maxBytes) return redactText(text);
    const window = cut(text, this.maxBytes + SCAN_MARGIN);
    const scanned = redactText(window);
    const kept = cut(scanned, this.maxBytes);
    return `${kept}…[truncated ${text.length - window.length + scanned.length - kept.length} chars]`;
  }

  private bytes(value: ArrayBuffer | ArrayBufferView): string {
    const raw =
      value instanceof ArrayBuffer ? new Uint8Array(value) : new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
    try {
      return this.text(new TextDecoder("utf-8", { fatal: true }).decode(raw));
    } catch {
      return `[${raw.byteLength} bytes]`;
    }
  }

  private mapping(entries: Iterable<[unknown, unknown]>, vocabulary: boolean, depth: number): Json {
    // Each entry encodes to at least 5 bytes ('"":0,'), so more could never fit.
    const room = Math.floor(this.maxBytes / 5) + 1;
    const out: Record<string, Json> = {};
    const all = [...entries].filter(([, item]) => item !== undefined && typeof item !== "function");
    for (let index = 0; index < all.length; index++) {
      if (index >= room) {
        out[MORE_KEYS] = all.length - index;
        break;
      }
      const [key, item] = all[index]!;
      const name = this.key(key);
      // vocabulary: OpenAI logprobs, {"token": "Hello", "logprob": …}
      if (isSecretKey(name) && !(vocabulary && name === "token") && !isNumberLike(item)) {
        out[name] = REDACTED;
      } else {
        out[name] = this.clean(item, depth + 1);
      }
    }
    return out;
  }

  private key(key: unknown): string {
    let name: string;
    if (typeof key === "string") name = key;
    else if (key === null || typeof key === "number" || typeof key === "boolean") name = JSON.stringify(key);
    else {
      const cleaned = this.clean(key, MAX_DEPTH - 1);
      name = typeof cleaned === "string" ? cleaned : JSON.stringify(cleaned);
    }
    if (name.length > this.maxBytes) return this.text(name);
    return redactText(repairText(name));
  }

  private sequence(items: unknown[], depth: number): Json[] {
    const room = Math.floor(this.maxBytes / 2) + 1; // each item takes at least 2 bytes ("0,")
    const dropped = items.length - room;
    if (dropped > 0) items = items.slice(0, room);
    // Header pairs: ["X-Api-Key", "abc123"], ["Authorization", "..."].
    if (items.length === 2 && typeof items[0] === "string" && isSecretKey(items[0]) && !isNumberLike(items[1])) {
      return [this.clean(items[0], depth + 1), REDACTED];
    }
    const out = items.map((item) => this.clean(item, depth + 1));
    if (dropped > 0) out.push(moreItems(dropped));
    return out;
  }
}

/** An error's class name, as Python's `type(exc).__name__` would give it. */
export function errorName(error: Error): string {
  if (error.name && error.name !== "Error") return error.name;
  const ctor = (error as { constructor?: { name?: unknown } }).constructor;
  return typeof ctor?.name === "string" && ctor.name ? ctor.name : "Error";
}

/** `text` cut to `limit` characters plus a marker counting all it has lost so far. */
function truncate(text: string, limit: number): string {
  let dropped = 0;
  const previous = TRUNCATED.exec(text);
  if (previous !== null) {
    text = text.slice(0, previous.index);
    dropped = Number(previous[1]);
  }
  const kept = cut(text, limit);
  return `${kept}…[truncated ${dropped + text.length - kept.length} chars]`;
}

function moreItems(count: number): string {
  return `…[${count} more items]`;
}

/** (longest string, most items per array or object, deepest nesting), loosest first. */
function shrinkSteps(maxBytes: number): Array<[number, number, number]> {
  return [
    [Math.floor(maxBytes / 2), 256, MAX_DEPTH],
    [Math.floor(maxBytes / 8), 64, MAX_DEPTH],
    [Math.floor(maxBytes / 32), 16, 16],
    [32, 8, 8],
    [8, 4, 4],
    [0, 1, 2],
  ];
}

function shrink(value: Json, strings: number, items: number, depth: number): Json {
  if (typeof value === "string") {
    // A marker costs ~25 bytes: cutting less than that would grow the string.
    return value.length > strings + 32 ? truncate(value, strings) : value;
  }
  if (value === null || typeof value !== "object") return value;
  if (depth <= 0) return "[depth limit]";
  if (Array.isArray(value)) {
    let dropped = 0;
    const last = value[value.length - 1];
    const earlier = typeof last === "string" ? MORE_ITEMS.exec(last) : null;
    if (earlier !== null) {
      value = value.slice(0, -1); // cut once already
      dropped = Number(earlier[1]);
    }
    const out = value.slice(0, items).map((item) => shrink(item, strings, items, depth - 1));
    dropped += Math.max(value.length - items, 0);
    if (dropped) out.push(moreItems(dropped));
    return out;
  }
  const shrunk: Record<string, Json> = {};
  const earlier = value[MORE_KEYS];
  const dropped0 = typeof earlier === "number" && Number.isInteger(earlier) && earlier > 0 ? earlier : 0;
  const entries = Object.entries(value).filter(([key]) => !(dropped0 && key === MORE_KEYS));
  for (const [key, item] of entries.slice(0, items)) {
    const name = key.length <= strings + 32 ? key : truncate(key, strings);
    shrunk[name] = shrink(item, strings, items, depth - 1);
  }
  const dropped = dropped0 + Math.max(entries.length - items, 0);
  if (dropped) shrunk[MORE_KEYS] = dropped;
  return shrunk;
}
