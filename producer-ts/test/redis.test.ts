/** The Redis transport against the real Redis at 127.0.0.1:6379, one stream per test. */

import { createRedisLogger, RedisTransport, type RedisLike } from "../src/redis.ts";
import { DEFAULT_STREAM } from "../src/index.ts";
import { deepEqual, equal, ok, test } from "./harness.ts";

const URL_ = "redis://127.0.0.1:6379/0";

interface TestClient extends RedisLike {
  xrange(key: string, start: string, end: string): Promise<Array<[string, string[]]>>;
  del(key: string): Promise<number>;
  quit(): Promise<unknown>;
}

async function client(): Promise<TestClient> {
  const specifier = "ioredis";
  const mod = (await import(specifier)) as { Redis?: new (url: string) => TestClient; default: new (url: string) => TestClient };
  const Redis = mod.Redis ?? mod.default;
  return new Redis(URL_);
}

function streamKey(): string {
  return `ailedger:test:ts:${crypto.randomUUID()}`;
}

test("events are XADDed with fields e and v, as the Python producer writes them", async () => {
  const redis = await client();
  const stream = streamKey();
  const logger = createRedisLogger({ url: URL_, stream, flushOnExit: false, batchSize: 2 });
  try {
    const job = "5b0e8f36-9c1f-4e43-9a6e-0f5d2b8b7f10";
    const ids = [
      logger.log({ task: "material_classification", model: "claude-3-5-haiku-20241022", input_tokens: 812, output_tokens: 64, latency_ms: 930, job_id: job }),
      logger.log({
        task: "product_enrichment_stage2",
        model: "claude-3-5-sonnet-20241022",
        response: {
          type: "message",
          model: "claude-3-5-sonnet-20241022",
          usage: { input_tokens: 10, cache_read_input_tokens: 90, output_tokens: 5 },
        },
        request_data: { api_key: "sk-proj-abcdefghijklmnopqrstuvwxyz", prompt: "enrich" },
        confidence_breakdown: { model_confidence: 0.9 },
      }),
      logger.log({ task: "embedding", model: "text-embedding-3-small", input_tokens: 37, timestamp: "2025-05-01T12:00:00Z" }),
    ];
    equal(await logger.flush(5000), true);
    const entries = await redis.xrange(stream, "-", "+");
    equal(entries.length, 3);
    for (const [, fields] of entries) {
      equal(fields.length, 4);
      equal(fields[0], "e");
      equal(fields[2], "v");
      equal(fields[3], "1");
    }
    const events = entries.map(([, fields]) => JSON.parse(fields[1]!) as Record<string, unknown>);
    deepEqual(events.map((e) => e.id), ids, "in order, with the ids log() returned");
    const [first, second, third] = events as [Record<string, unknown>, Record<string, unknown>, Record<string, unknown>];
    deepEqual(Object.keys(first).sort(), ["id", "input_tokens", "job_id", "latency_ms", "model", "output_tokens", "task", "timestamp"]);
    equal(first.job_id, job);
    ok(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(String(first.timestamp)), "ISO 8601 UTC");
    equal(second.input_tokens, 100);
    equal(second.cache_read_tokens, 90);
    equal(second.provider, "anthropic");
    deepEqual(second.request_data, { api_key: "[REDACTED]", prompt: "enrich" });
    equal(second.response, undefined, "the SDK object itself is not sent");
    ok(typeof second.response_data === "object");
    deepEqual(third, {
      id: ids[2],
      task: "embedding",
      model: "text-embedding-3-small",
      input_tokens: 37,
      timestamp: "2025-05-01T12:00:00Z",
    });
    deepEqual(logger.stats, { logged: 3, sent: 3, dropped: 0, rejected: 0, retries: 0, buffered: 0 });
  } finally {
    await logger.close(1000);
    await redis.del(stream);
    await redis.quit();
  }
});

test("a client passed in is used and left open; the default stream is ailedger:events", async () => {
  const redis = await client();
  const stream = streamKey();
  equal(new RedisTransport({ client: redis }).stream, DEFAULT_STREAM);
  const logger = createRedisLogger({ client: redis, stream, flushOnExit: false });
  try {
    logger.log({ task: "t", model: "m" });
    equal(await logger.flush(5000), true);
    await logger.close(1000);
    const entries = await redis.xrange(stream, "-", "+");
    equal(entries.length, 1, "the client still answers after the logger closed");
  } finally {
    await redis.del(stream);
    await redis.quit();
  }
});

test("Redis unreachable: the batch is kept and retried, flush says false", async () => {
  const problems: string[] = [];
  const logger = createRedisLogger({
    url: "redis://127.0.0.1:1/0",
    stream: streamKey(),
    flushOnExit: false,
    timeoutMs: 500,
    backoff: { baseMs: 10, capMs: 50 },
    onError: (error) => problems.push(error.kind),
  });
  try {
    logger.log({ task: "t", model: "m" });
    equal(await logger.flush(300), false);
    equal(logger.stats.buffered, 1);
    ok(problems.includes("unreachable"), problems.join(","));
  } finally {
    equal(await logger.close(200), false);
  }
});
