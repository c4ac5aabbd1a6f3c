/** The logger against a local ingest server that keeps to the server's contract. */

import { AICallLogger, AILedgerError, type LoggerOptions } from "../src/index.ts";
import { deepEqual, equal, ok, test, waitFor } from "./harness.ts";
import { IngestServer, type IngestOptions } from "./ingest-server.ts";

const FAST = { baseMs: 10, capMs: 50 };

interface Setup {
  server: IngestServer;
  logger: AICallLogger;
  problems: AILedgerError[];
}

async function setup(options: Partial<LoggerOptions> = {}, serverOptions: IngestOptions = {}): Promise<Setup> {
  const server = await new IngestServer(serverOptions).start();
  const problems: AILedgerError[] = [];
  const logger = new AICallLogger({
    endpoint: server.url,
    token: server.token,
    flushIntervalMs: 60_000,
    backoff: FAST,
    flushOnExit: false,
    onError: (error) => problems.push(error),
    ...options,
  });
  return { server, logger, problems };
}

async function teardown({ server, logger }: Setup): Promise<void> {
  await logger.close(1000);
  await server.stop();
}

function call(n: number, extra: Record<string, unknown> = {}) {
  return { task: "material_classification", model: "claude-3-5-haiku-20241022", input_tokens: n, output_tokens: 1, ...extra };
}

test("full batches leave on their own, the rest on flush, each event once", async () => {
  const s = await setup({ batchSize: 3 });
  try {
    const ids = Array.from({ length: 7 }, (_, n) => s.logger.log(call(n)));
    await waitFor(() => s.logger.stats.sent === 6, "two full batches");
    equal(s.server.stored.size, 6);
    equal(s.server.requests.length, 2);
    equal(s.logger.stats.buffered, 1);
    equal(await s.logger.flush(2000), true);
    deepEqual([...s.server.stored.keys()].sort(), [...ids].sort());
    equal(s.server.duplicates, 0);
    deepEqual(s.logger.stats, { logged: 7, sent: 7, dropped: 0, rejected: 0, retries: 0, buffered: 0 });
    equal(s.server.requests[0]!.authorization, `Bearer ${s.server.token}`);
    const stored = s.server.stored.get(ids[0]!)!;
    equal(stored.task, "material_classification");
    equal(stored.input_tokens, 0);
    ok(typeof stored.timestamp === "string" && stored.timestamp.endsWith("Z"), "an ISO timestamp");
  } finally {
    await teardown(s);
  }
});

test("a batch that does not fill leaves after flushIntervalMs without a flush", async () => {
  const s = await setup({ batchSize: 100, flushIntervalMs: 50 });
  try {
    s.logger.log(call(1));
    s.logger.log(call(2));
    await waitFor(() => s.server.stored.size === 2, "the interval's batch");
    equal(s.server.requests.length, 1);
  } finally {
    await teardown(s);
  }
});

test("flush is false when the server cannot take the events in time, true once it has", async () => {
  const s = await setup({ batchSize: 10 });
  try {
    for (let i = 0; i < 20; i++) s.server.script.push({ status: 503 });
    s.logger.log(call(1));
    equal(await s.logger.flush(200), false);
    equal(s.logger.stats.buffered, 1);
    s.server.script.length = 0;
    equal(await s.logger.flush(3000), true);
    equal(s.server.stored.size, 1);
    equal(s.problems.filter((p) => p.kind === "unreachable").length, 1, "the outage is reported once");
  } finally {
    await teardown(s);
  }
});

test("503 with Retry-After: waits as told, then delivers everything once", async () => {
  const s = await setup({ batchSize: 5 });
  try {
    s.server.script.push({ status: 503, retryAfter: "1" });
    const ids = Array.from({ length: 12 }, (_, n) => s.logger.log(call(n)));
    const started = Date.now();
    equal(await s.logger.flush(5000), true);
    ok(Date.now() - started >= 900, `Retry-After honoured (${Date.now() - started} ms)`);
    deepEqual([...s.server.stored.keys()].sort(), [...ids].sort());
    equal(s.server.duplicates, 0, "no id delivered twice");
    equal(s.logger.stats.retries, 1);
    equal(s.logger.stats.sent, 12);
    equal(s.server.requests[0]!.status, 503);
  } finally {
    await teardown(s);
  }
});

test("429 and 500 are retried with backoff", async () => {
  const s = await setup();
  try {
    s.server.script.push({ status: 429 }, { status: 500 }, { status: 502 });
    const id = s.logger.log(call(1));
    equal(await s.logger.flush(3000), true);
    ok(s.server.stored.has(id));
    equal(s.logger.stats.retries, 3);
  } finally {
    await teardown(s);
  }
});

test("server down, then up again on the same port: nothing lost", async () => {
  const s = await setup({ batchSize: 4, backoff: { baseMs: 20, capMs: 100 } });
  try {
    const port = s.server.port;
    await s.server.stop();
    const ids = Array.from({ length: 10 }, (_, n) => s.logger.log(call(n)));
    equal(await s.logger.flush(300), false);
    await waitFor(() => s.problems.some((p) => p.kind === "unreachable"), "the outage report");
    equal(s.logger.stats.buffered, 10);
    s.server.port = port;
    await s.server.start();
    equal(await s.logger.flush(5000), true);
    deepEqual([...s.server.stored.keys()].sort(), [...ids].sort());
    equal(s.problems.filter((p) => p.kind === "unreachable").length, 1);
    ok(s.logger.stats.retries >= 1);
  } finally {
    await teardown(s);
  }
});

test("401: reported once, events kept up to the bound, then dropped and counted", async () => {
  const s = await setup({ batchSize: 2, maxBuffer: 6, authRetryMs: 20, token: "a-revoked-token" });
  try {
    for (let i = 0; i < 4; i++) s.logger.log(call(i));
    const started = Date.now();
    equal(await s.logger.flush(5000), false);
    ok(Date.now() - started < 2000, "a refused token makes flush say false at once");
    await waitFor(() => s.server.requests.length >= 4, "several attempts");
    const auth = s.problems.filter((p) => p.kind === "auth");
    equal(auth.length, 1, "the 401 is reported once");
    equal(auth[0]!.status, 401);
    ok(auth[0]!.message.includes("token"));
    equal(s.logger.stats.buffered, 4);
    for (let i = 0; i < 5; i++) s.logger.log(call(i));
    equal(s.logger.stats.buffered, 6);
    equal(s.logger.stats.dropped, 3);
    await waitFor(() => s.problems.some((p) => p.kind === "overflow"), "the overflow report");
    equal(s.problems.filter((p) => p.kind === "overflow").length, 1);
    equal(s.server.stored.size, 0);
  } finally {
    await teardown(s);
  }
});

test("413: the batch is split in halves; an event too large alone is rejected and counted", async () => {
  const big = "x".repeat(5000);
  const s = await setup(
    { batchSize: 8, gzipMinBytes: 0, maxPayloadBytes: 50_000 },
    { maxBodyBytes: 1000 },
  );
  try {
    const small = Array.from({ length: 8 }, (_, n) => s.logger.log(call(n)));
    const huge = s.logger.log(call(99, { request_data: { document: big } }));
    equal(await s.logger.flush(5000), false, "flush says false: one event never made it");
    deepEqual([...s.server.stored.keys()].sort(), [...small].sort());
    equal(s.logger.stats.rejected, 1);
    equal(s.logger.stats.sent, 8);
    equal(s.logger.stats.buffered, 0);
    const rejected = s.problems.filter((p) => p.kind === "rejected");
    equal(rejected.length, 1);
    equal(rejected[0]!.rejections[0]!.id, huge);
    ok(rejected[0]!.rejections[0]!.error.includes("413"), rejected[0]!.message);
    ok(s.server.requests.filter((r) => r.status === 413).length >= 2, "split at least once");
    equal(s.server.duplicates, 0);
    equal(await s.logger.flush(1000), true, "the next flush starts clean");
  } finally {
    await teardown(s);
  }
});

test("per-event rejections are counted and surfaced through onError", async () => {
  const s = await setup({}, { reject: (event) => (event.task === "bad" ? "task: not a known task" : null) });
  try {
    const good = s.logger.log(call(1));
    const bad = s.logger.log(call(2, { task: "bad" }));
    equal(await s.logger.flush(2000), false);
    ok(s.server.stored.has(good));
    ok(!s.server.stored.has(bad));
    equal(s.logger.stats.rejected, 1);
    equal(s.logger.stats.sent, 1);
    const [problem] = s.problems;
    equal(problem?.kind, "rejected");
    deepEqual(problem?.rejections, [{ index: 1, id: bad, error: "task: not a known task" }]);
    ok(problem!.message.includes(bad) && problem!.message.includes("not a known task"));
  } finally {
    await teardown(s);
  }
});

test("a full buffer drops new events, counts them and says so once", async () => {
  const s = await setup({ maxBuffer: 5 });
  try {
    const ids = Array.from({ length: 8 }, (_, n) => s.logger.log(call(n)));
    equal(new Set(ids).size, 8, "log() returns an id even for a dropped event");
    equal(s.logger.stats.buffered, 5);
    equal(s.logger.stats.dropped, 3);
    await waitFor(() => s.problems.length > 0, "the overflow report");
    equal(s.problems.filter((p) => p.kind === "overflow").length, 1);
    equal(await s.logger.flush(2000), false, "three were lost");
    equal(s.server.stored.size, 5);
    equal(await s.logger.flush(2000), true);
  } finally {
    await teardown(s);
  }
});

test("large batches are gzipped and arrive intact", async () => {
  const s = await setup({ batchSize: 50, service: "pdf-extractor" });
  try {
    const ids = Array.from({ length: 50 }, (_, n) => s.logger.log(call(n, { request_data: { prompt: `describe item ${n}` } })));
    equal(await s.logger.flush(3000), true);
    equal(s.server.stored.size, 50);
    ok(s.server.requests[0]!.gzip, "Content-Encoding: gzip");
    equal(s.server.requests[0]!.service, "pdf-extractor");
    equal(s.server.stored.get(ids[7]!)!.service, "pdf-extractor");
    deepEqual(s.server.stored.get(ids[7]!)!.request_data, { prompt: "describe item 7" });
  } finally {
    await teardown(s);
  }
});

test("secrets in request_data are redacted before they leave", async () => {
  const s = await setup();
  try {
    const key = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789";
    const id = s.logger.log(
      call(1, {
        request_data: {
          api_key: key,
          headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
          messages: [{ role: "user", content: `my key is ${key}, please classify` }],
          max_tokens: 512,
        },
      }),
    );
    equal(await s.logger.flush(2000), true);
    const stored = s.server.stored.get(id)!;
    ok(!JSON.stringify(stored).includes("abcdefghijklmnop"), "no trace of the key");
    deepEqual(stored.request_data, {
      api_key: "[REDACTED]",
      headers: { Authorization: "[REDACTED]", "Content-Type": "application/json" },
      messages: [{ role: "user", content: "my key is [REDACTED], please classify" }],
      max_tokens: 512,
    });
  } finally {
    await teardown(s);
  }
});

test("log() never throws, whatever it is given", async () => {
  const s = await setup();
  try {
    const cyclic: Record<string, unknown> = { name: "loop" };
    cyclic.self = cyclic;
    const hostile = {
      get task(): string {
        throw new Error("getter");
      },
    };
    const ids = [
      s.logger.log(call(1, { request_data: cyclic })),
      s.logger.log(call(2, { big: 10n ** 30n, when: new Date("2025-01-02T03:04:05Z") })),
      s.logger.log(null as never),
      s.logger.log(hostile as never),
      s.logger.log(call(3, { error_message: new RangeError("out of range") })),
    ];
    ok(ids.every((id) => typeof id === "string"));
    await s.logger.flush(2000);
    deepEqual(s.server.stored.get(ids[0]!)!.request_data, { name: "loop", self: "[cycle]" });
    equal(s.server.stored.get(ids[1]!)!.big, "1000000000000000000000000000000");
    equal(s.server.stored.get(ids[1]!)!.when, "2025-01-02T03:04:05.000Z");
    equal(s.server.stored.get(ids[4]!)!.error_message, "RangeError: out of range");
  } finally {
    await teardown(s);
  }
});

test("the timestamp is when the call started: log time minus latency_ms", async () => {
  const s = await setup();
  try {
    const before = Date.now();
    const id = s.logger.log(call(1, { latency_ms: 1500 }));
    const given = s.logger.log(call(2, { timestamp: "2025-03-01T10:00:00Z" }));
    equal(await s.logger.flush(2000), true);
    const started = Date.parse(String(s.server.stored.get(id)!.timestamp));
    ok(started >= before - 1500 - 5 && started <= Date.now() - 1500 + 5, `started ${started}, logged ${before}`);
    equal(s.server.stored.get(given)!.timestamp, "2025-03-01T10:00:00Z");
  } finally {
    await teardown(s);
  }
});

test("close() sends what is buffered; events logged after it are dropped and counted", async () => {
  const s = await setup();
  try {
    s.logger.log(call(1));
    equal(await s.logger.close(2000), true);
    equal(s.server.stored.size, 1);
    s.logger.log(call(2));
    equal(s.logger.stats.dropped, 1);
  } finally {
    await teardown(s);
  }
});

test("close() gives up at its deadline against a dead server and counts what it lost", async () => {
  const s = await setup();
  try {
    await s.server.stop();
    s.logger.log(call(1));
    s.logger.log(call(2));
    equal(await s.logger.close(200), false);
    equal(s.logger.stats.dropped, 2);
    equal(s.logger.stats.buffered, 0);
  } finally {
    await teardown(s);
  }
});

test("the endpoint may be given with or without /api/ingest, with a trailing slash", async () => {
  const s = await setup();
  const other = new AICallLogger({ endpoint: `${s.server.url}/api/ingest/`, token: s.server.token, flushOnExit: false });
  try {
    other.log(call(1));
    equal(await other.flush(2000), true);
    equal(s.server.stored.size, 1);
  } finally {
    await other.close();
    await teardown(s);
  }
});

test("ids are version-8 UUIDs: one random prefix per process, then consecutive", async () => {
  const s = await setup();
  try {
    const ids = Array.from({ length: 1_000 }, (_, i) => s.logger.log(call(i)));
    const canonical = /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
    ok(ids.every((id) => canonical.test(id)), `not canonical version-8 UUIDs: ${ids.slice(0, 3)}`);
    equal(new Set(ids).size, ids.length);
    equal(new Set(ids.map((id) => id.slice(0, 24))).size, 1);
    const counters = ids.map((id) => parseInt(id.slice(24), 16));
    ok(counters.every((n, i) => i === 0 || n === counters[i - 1]! + 1), "ids not consecutive");
    ok(counters[0]! < 2 ** 47, "the counter starts in the lower half of its 48 bits");
    equal(await s.logger.flush(5000), true);
    deepEqual([...s.server.stored.keys()].sort(), [...ids].sort());
  } finally {
    await teardown(s);
  }
});
