/**
 * The Python worker's own validation (worker/event.py `parse_entry`) accepts what this
 * producer XADDs. Runs where the repository's Python dependencies are importable;
 * otherwise says so and passes (the Python side tests the same contract from its end).
 */

import { createRedisLogger } from "../src/redis.ts";
import { equal, ok, runtime, test } from "./harness.ts";

interface Reader {
  xrange(key: string, start: string, end: string): Promise<Array<[string, string[]]>>;
  del(key: string): Promise<number>;
  quit(): Promise<unknown>;
}

const CHECK = String.raw`
import json, os, sys, types
# Only the validation is wanted: load producer.redact and producer.constants without the
# producer package's __init__, which starts on redis-py.
package = types.ModuleType("producer")
package.__path__ = [os.path.join(os.environ["PYTHONPATH"], "producer")]
sys.modules["producer"] = package
from worker.event import parse_entry, ParsedEvent
out = []
for fields in json.load(sys.stdin):
    parsed = parse_entry({k.encode(): v.encode("utf-8", "surrogatepass") for k, v in fields.items()})
    if isinstance(parsed, ParsedEvent):
        e = parsed.event
        out.append({"ok": True, "id": str(e["id"]), "input_tokens": e.get("input_tokens"),
                    "cache_read_tokens": e.get("cache_read_tokens"),
                    "timestamp": e["timestamp"].isoformat(),
                    "job_id": str(e["job_id"]) if e.get("job_id") else None, "notes": parsed.notes})
    else:
        out.append({"ok": False, "reason": parsed.reason})
print(json.dumps(out))
`;

test("the Python worker accepts the entries this producer writes", async () => {
  if (runtime !== "node") return;
  const { spawnSync } = await import("node:child_process");
  const { fileURLToPath } = await import("node:url");
  const { existsSync } = await import("node:fs");
  const { dirname, join } = await import("node:path");
  let repo = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(repo, "worker", "event.py"))) {
    if (dirname(repo) === repo) {
      console.log("skipped: no worker/event.py above this test");
      return;
    }
    repo = dirname(repo);
  }
  const env = { ...process.env, PYTHONPATH: repo };
  // `make test` names the project's Python (AILEDGER_PYTHON): there the check must run.
  const python = process.env.AILEDGER_PYTHON ?? "python3";
  const probe = spawnSync(python, ["-c", CHECK.split("from worker.event")[0] + "import worker.event"], { env, encoding: "utf8" });
  if (probe.status !== 0) {
    const why = probe.stderr?.trim().split("\n").pop() ?? String(probe.error);
    if (process.env.AILEDGER_PYTHON) throw new Error(`${python} cannot import the worker: ${why}`);
    console.log(`skipped: the worker's Python dependencies are not importable here (${why})`);
    return;
  }
  const stream = `ailedger:test:ts:${crypto.randomUUID()}`;
  const logger = createRedisLogger({ stream, flushOnExit: false });
  const ids = [
    logger.log({ task: "material_classification", model: "claude-3-5-haiku-20241022", latency_ms: 930, jobId: "5b0e8f36-9c1f-4e43-9a6e-0f5d2b8b7f10" }),
    logger.log({
      task: "enrichment",
      model: "claude-3-5-sonnet-20241022",
      response: { type: "message", model: "claude-3-5-sonnet-20241022", usage: { input_tokens: 10, cache_read_input_tokens: 90, output_tokens: 5 } },
      request_data: { prompt: "é 😀 \ud800" },
      error_message: new TypeError("boom"),
      big: 10n ** 20n,
    }),
  ];
  try {
    equal(await logger.flush(5000), true);
    const { default: Redis } = (await import("ioredis")) as unknown as { default: new (url: string) => Reader };
    const redis = new Redis("redis://127.0.0.1:6379/0");
    let entries: Array<[string, string[]]>;
    try {
      entries = await redis.xrange(stream, "-", "+");
    } finally {
      await redis.quit();
    }
    // Exactly the entry's fields, as XREADGROUP hands them to the worker.
    const input = JSON.stringify(entries.map(([, f]) => Object.fromEntries([[f[0], f[1]], [f[2], f[3]]])));
    const result = spawnSync(python, ["-c", CHECK], { env, encoding: "utf8", input });
    equal(result.status, 0, result.stderr);
    const parsed = JSON.parse(result.stdout) as Array<Record<string, unknown>>;
    equal(parsed.length, 2);
    ok(parsed.every((p) => p.ok === true), result.stdout);
    equal(parsed[0]!.id, ids[0]);
    equal(parsed[0]!.job_id, "5b0e8f36-9c1f-4e43-9a6e-0f5d2b8b7f10");
    equal(parsed[1]!.input_tokens, 100);
    equal(parsed[1]!.cache_read_tokens, 90);
    equal(JSON.stringify(parsed[1]!.notes), "{}", "nothing had to be cleaned");
  } finally {
    await logger.close(1000);
    const { default: Redis } = (await import("ioredis")) as unknown as { default: new (url: string) => Reader };
    const redis = new Redis("redis://127.0.0.1:6379/0");
    await redis.del(stream);
    await redis.quit();
  }
});
