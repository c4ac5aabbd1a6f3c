// Log the calls of a JSON file with the TypeScript producer's build, under Node.
//
//     node log_calls.mjs http|redis CALLS.json
//
// http: AILEDGER_ENDPOINT and AILEDGER_INGEST_TOKEN; redis: AILEDGER_REDIS_URL and
// AILEDGER_STREAM. Prints {"ids": [...], "flushed": bool, "stats": {...}}; each problem
// the logger reports goes to stderr as one "ailedger: <kind>: <message>" line.

import { readFile } from "node:fs/promises";

const [transport, callsFile] = process.argv.slice(2);
const dist = new URL("../../producer-ts/dist/", import.meta.url);
const options = {
  flushOnExit: false,
  onError: (error) => process.stderr.write(`ailedger: ${error.kind}: ${error.message}\n`),
};
let logger;
if (transport === "redis") {
  const { createRedisLogger } = await import(new URL("redis.js", dist).href);
  logger = createRedisLogger(options);
} else if (transport === "http") {
  const { AICallLogger } = await import(new URL("index.js", dist).href);
  logger = new AICallLogger(options);
} else {
  process.stderr.write("usage: node log_calls.mjs http|redis CALLS.json\n");
  process.exit(2);
}
const calls = JSON.parse(await readFile(callsFile, "utf8"));
const ids = calls.map((call) => logger.log(call));
const flushed = await logger.close(15_000);
process.stdout.write(JSON.stringify({ ids, flushed, stats: logger.stats }));
process.exit(flushed ? 0 : 1);
