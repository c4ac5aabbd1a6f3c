// The package in Cloudflare's runtime (workerd, through miniflare from the npm registry).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Miniflare } from "miniflare";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..");
// Workers take no dynamic imports: every module of the package is named, as a bundler would.
const modules = [
  { type: "ESModule", path: join(here, "worker.mjs") },
  ...readdirSync(join(root, "dist"))
    .filter((name) => name.endsWith(".js"))
    .map((name) => ({ type: "ESModule", path: join(root, "dist", name) })),
];

for (const flags of [[], ["nodejs_compat"]]) {
  test(`Workers (${flags.join(",") || "no flags"}): log() and flush() deliver, redacted`, async () => {
    const mf = new Miniflare({ modules, modulesRoot: root, compatibilityDate: "2024-09-23", compatibilityFlags: flags });
    try {
      const answer = await (await mf.dispatchFetch("http://localhost/")).json();
      assert.equal(answer.sent, true);
      assert.equal(answer.stats.dropped, 0);
      const events = answer.bodies.flatMap((b) => b.events);
      assert.deepEqual(events.map((e) => e.id).sort(), [...answer.ids].sort());
      assert.ok(answer.bodies.every((b) => b.url === "https://ingest.example/api/ingest"));
      assert.ok(answer.bodies.some((b) => b.gzip), "a large body goes gzipped");
      const [enrich] = events.filter((e) => e.task === "enrich");
      assert.equal(enrich.request_data.api_key, "[REDACTED]");
      assert.equal(enrich.job_id, "5b0e8f36-9c1f-4e43-9a6e-0f5d2b8b7f10");
      const [classify] = events.filter((e) => e.task === "classify");
      assert.ok(Date.parse(classify.timestamp) <= Date.now() - 100, "timestamp is the call's start");
    } finally {
      await mf.dispose();
    }
  });
}
