/** The built package (dist/) loads by its published names and works end to end. */

import { equal, ok, runtime, test } from "./harness.ts";
import { IngestServer } from "./ingest-server.ts";

test("dist: both entry points load, and a logger delivers", async () => {
  // Node resolves the package by its own name (package.json "exports"); Deno by path.
  const main = runtime === "node" ? "@ailedger/producer" : new URL("../dist/index.js", import.meta.url).href;
  const redisEntry = runtime === "node" ? "@ailedger/producer/redis" : new URL("../dist/redis.js", import.meta.url).href;
  const pkg = (await import(main)) as typeof import("../src/index.ts");
  const redis = (await import(redisEntry)) as typeof import("../src/redis.ts");
  ok(typeof redis.RedisTransport === "function" && typeof redis.createRedisLogger === "function");
  equal(pkg.confidenceScore({ model_confidence: 0.705 }), 0.71);
  const server = await new IngestServer().start();
  const logger = new pkg.AICallLogger({ endpoint: server.url, token: server.token, flushOnExit: false });
  try {
    const id = logger.log({ task: "t", model: "m" });
    equal(await logger.flush(2000), true);
    ok(server.stored.has(id));
  } finally {
    await logger.close();
    await server.stop();
  }
});
