/** track(), withJob() and the module-level default logger. */

import {
  AICallLogger,
  close,
  configure,
  currentJobId,
  flush,
  hasAsyncContext,
  logCall,
  track,
  withJob,
  type CallFields,
} from "../src/index.ts";
import { deepEqual, equal, ok, rejects, sleep, test } from "./harness.ts";
import { IngestServer } from "./ingest-server.ts";

/** A logger stand-in that keeps what it is given. */
class Recorder {
  readonly events: CallFields[] = [];
  log(fields: CallFields): string {
    this.events.push(fields);
    return `id-${this.events.length}`;
  }
}

const anthropicResponse = {
  id: "msg_01",
  type: "message",
  model: "claude-3-5-haiku-20241022",
  content: [{ type: "text", text: "oak" }],
  usage: { input_tokens: 100, cache_read_input_tokens: 900, output_tokens: 12 },
};

test("track(): latency measured, the response's usage recorded, its value returned", async () => {
  const recorder = new Recorder();
  const before = Date.now();
  const result = await track(
    "material_classification",
    "claude-3-5-haiku-20241022",
    async () => {
      await sleep(30);
      return anthropicResponse;
    },
    { logger: recorder, image_id: "img-7" },
  );
  equal(result, anthropicResponse);
  equal(recorder.events.length, 1);
  const event = recorder.events[0]!;
  equal(event.task, "material_classification");
  equal(event.image_id, "img-7");
  equal(event.response, anthropicResponse);
  ok((event.latency_ms ?? 0) >= 25, `latency ${event.latency_ms}`);
  const started = Date.parse(String(event.timestamp));
  ok(started >= before && started <= before + 20, "timestamp is the call's start");
  equal(event.error_message, undefined);
});

test("track(): an error is recorded as error_message and fallback, then rethrown", async () => {
  const recorder = new Recorder();
  class RateLimitError extends Error {}
  const failure = new RateLimitError("429 too many requests");
  await rejects(
    track(
      "product_enrichment_stage2",
      "claude-3-5-sonnet-20241022",
      () => {
        throw failure;
      },
      { logger: recorder },
    ),
    (error) => error === failure,
    "the caller's own error",
  );
  const event = recorder.events[0]!;
  equal(event.error_message, "RateLimitError: 429 too many requests");
  equal(event.action, "fallback_to_rules");
  equal(event.fallback_reason, "error: RateLimitError");
  ok(typeof event.latency_ms === "number");
});

test("track(): record() adds fields; what the service set is kept on error", async () => {
  const recorder = new Recorder();
  await rejects(
    track(
      "image_analysis",
      "clip",
      (call) => {
        call.record({ confidence_breakdown: { model_confidence: 0.4 }, action: "use_ai_result" });
        throw new TypeError("bad image");
      },
      { logger: recorder },
    ),
    (error) => error instanceof TypeError,
  );
  const event = recorder.events[0]!;
  deepEqual(event.confidence_breakdown, { model_confidence: 0.4 });
  equal(event.action, "use_ai_result", "a value the service reported is never overwritten");
  equal(event.error_message, "TypeError: bad image");
});

test("track(): a logger that throws never reaches the caller", async () => {
  const broken = {
    log(): string {
      throw new Error("broken sink");
    },
  };
  equal(await track("t", "m", () => 42, { logger: broken }), 42);
});

test("withJob(): calls logged inside, across awaits, belong to the job", async () => {
  ok(hasAsyncContext, "this runtime has AsyncLocalStorage");
  const recorder = new Recorder();
  const job = "5b0e8f36-9c1f-4e43-9a6e-0f5d2b8b7f10";
  const other = "c1d2e3f4-0000-4000-8000-000000000001";
  await Promise.all([
    withJob(job, async () => {
      await sleep(5);
      equal(currentJobId(), job);
      await track("a", "m", async () => sleep(5), { logger: recorder });
    }),
    withJob(other, async () => {
      await track("b", "m", async () => sleep(1), { logger: recorder });
    }),
  ]);
  equal(currentJobId(), undefined);
  const byTask = Object.fromEntries(recorder.events.map((e) => [e.task, e]));
  // track() passes no job id itself: the logger reads the scope when it logs.
  equal(byTask.a!.job_id, undefined);

  const server = await new IngestServer().start();
  const logger = new AICallLogger({ endpoint: server.url, token: server.token, flushOnExit: false });
  try {
    const inside = await withJob(job, async () => {
      await sleep(1);
      return logger.log({ task: "a", model: "m" });
    });
    const outside = logger.log({ task: "b", model: "m" });
    const explicit = logger.log({ task: "c", model: "m", jobId: other });
    const both = withJob(job, () => logger.log({ task: "d", model: "m", job_id: other }));
    equal(await logger.flush(2000), true);
    equal(server.stored.get(inside)!.job_id, job);
    equal(server.stored.get(outside)!.job_id, undefined);
    equal(server.stored.get(explicit)!.job_id, other);
    equal(server.stored.get(explicit)!.jobId, undefined, "sent under its wire name only");
    equal(server.stored.get(both)!.job_id, other, "an explicit job id wins over the scope");
  } finally {
    await logger.close();
    await server.stop();
  }
});

test("configure() + logCall() + flush(): the module's default logger", async () => {
  const server = await new IngestServer().start();
  try {
    configure({ endpoint: server.url, token: server.token, flushOnExit: false });
    const id = logCall({ task: "embedding", model: "text-embedding-3-small", input_tokens: 37 });
    const tracked = await track("embedding", "text-embedding-3-small", async () => ({
      object: "list",
      model: "text-embedding-3-small",
      data: [],
      usage: { prompt_tokens: 37, total_tokens: 37 },
    }));
    equal(tracked.object, "list");
    equal(await flush(2000), true);
    equal(server.stored.size, 2);
    equal(server.stored.get(id)!.input_tokens, 37);
    const viaTrack = [...server.stored.values()].find((e) => e.id !== id)!;
    equal(viaTrack.provider, "openai");
    equal(viaTrack.input_tokens, 37);
    deepEqual(viaTrack.response_data, {
      object: "list",
      model: "text-embedding-3-small",
      data: [],
      usage: { prompt_tokens: 37, total_tokens: 37 },
    });
  } finally {
    await close(1000);
    await server.stop();
  }
});
