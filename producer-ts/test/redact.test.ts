/** Redaction, ported case for case from the Python producer's tests/test_redact.py. */

import { REDACTED, redact, redactText } from "../src/index.ts";
import { deepEqual, equal, ok, test } from "./harness.ts";

const OPENAI_KEY = "sk-proj-4fTq9ZxW2mLk8RvB1nYcH7dJ3sPa6eUo0gKi5tQw";
const ANTHROPIC_KEY = "sk-ant-api03-Zx8Qm2Lk7RvB1nYcH7dJ3sPa6eUo0gKi5tQwXy9-AbCdEfAA";
const AWS_KEY_ID = "AKIAIOSFODNN7EXAMPLE";
const JWT =
  "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ" +
  ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

function utf8(value: unknown): number {
  return new TextEncoder().encode(JSON.stringify(value)).byteLength;
}

test("values under secret keys are redacted whatever their spelling", () => {
  const payload = {
    api_key: "k-111111",
    apiKey: "k-222222",
    "X-API-Key": "k-333333",
    Authorization: "Token k-444444",
    password: "hunter2-555555",
    client_secret: "k-666666",
    access_token: "k-777777",
    "refresh-token": "k-888888",
    Cookie: "session=k-999999",
    "Set-Cookie": "sid=k-000000; HttpOnly",
    credentials: { user: "svc", pass: "k-121212" },
    token: "k-131313",
  };
  const out = redact(payload) as Record<string, unknown>;
  deepEqual(Object.keys(out).sort(), Object.keys(payload).sort());
  ok(Object.values(out).every((value) => value === REDACTED));
  ok(!JSON.stringify(out).includes("k-"));
});

test("token counts and request settings survive", () => {
  const payload = {
    model: "claude-3-5-haiku-20241022",
    max_tokens: 1024,
    input_tokens: 812,
    output_tokens: 64,
    cache_read_tokens: 0,
    max_completion_tokens: 500,
    usage: { prompt_tokens: 9, completion_tokens: 3, total_tokens: 12 },
    tokens: ["oak", "veneer"],
    token_count: 2,
    pad_token: "<pad>",
    logprobs: { content: [{ token: "oak", logprob: -0.01 }] },
  };
  deepEqual(redact(payload), payload);
});

test("credentials inside strings are redacted", () => {
  const payload = {
    messages: [
      { role: "user", content: `use ${OPENAI_KEY} to call the API` },
      { role: "user", content: `the anthropic key is ${ANTHROPIC_KEY}.` },
    ],
    headers: [
      ["Authorization", `Bearer ${JWT}`],
      ["X-Trace", "abc"],
    ],
    error: `AccessDenied for ${AWS_KEY_ID} while reading s3://bucket/x.pdf`,
    dsn: "postgresql://ailedger:s3cr3t-pw@db.internal:5432/ledger",
    callback: "https://hooks.example.com/run?api_key=zz-topsecret-zz&job=42",
    raw_body: '{"model": "gpt-4o", "password": "pw-in-json-text", "max_tokens": 5}',
    note: "bearer",
  };
  const out = redact(payload) as Record<string, any>;
  const text = JSON.stringify(out);
  for (const secret of [OPENAI_KEY, ANTHROPIC_KEY, AWS_KEY_ID, JWT, "s3cr3t-pw", "zz-topsecret-zz", "pw-in-json-text"]) {
    ok(!text.includes(secret), `${secret} is gone`);
  }
  equal(out.messages[0].content, `use ${REDACTED} to call the API`);
  deepEqual(out.headers[0], ["Authorization", REDACTED]);
  deepEqual(out.headers[1], ["X-Trace", "abc"]);
  ok(out.dsn.includes("db.internal:5432/ledger"));
  ok(out.callback.includes("job=42"));
  ok(out.raw_body.includes('"max_tokens": 5'));
  equal(out.note, "bearer");
});

test("whole authorization values are redacted", () => {
  for (const header of ["Bearer xyz", "bearer abc.def", "Basic dXNlcjpwYXNzd29yZA==", "Basic YWxhZGRpbjpv"]) {
    equal(redactText(header), REDACTED, header);
    deepEqual(redact({ h: header }), { h: REDACTED });
  }
});

test("ordinary text is left alone", () => {
  for (const text of [
    "Basic information about the material",
    "Basic information",
    "a task-oriented risk-assessment of the oak panel",
    "The product is 120 cm wide",
  ]) {
    equal(redactText(text), text);
  }
});

test("private key blocks are redacted", () => {
  const pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\n-----END RSA PRIVATE KEY-----";
  deepEqual(redact({ key_file: `contents:\n${pem}\n` }), { key_file: `contents:\n${REDACTED}\n` });
});

test("a small payload comes back equal, as a copy", () => {
  const payload = { model: "gpt-4o", messages: [{ role: "user", content: "hi" }] };
  const out = redact(payload);
  deepEqual(out, payload);
  ok(out !== payload);
});

test("long strings are truncated with a marker that counts what was cut", () => {
  const image = "iVBORw0KGgo" + "A".repeat(100_000);
  const out = redact({ model: "claude", prompt: "describe", image }, 4096) as Record<string, string>;
  ok(utf8(out) <= 4096, `${utf8(out)} bytes`);
  equal(out.prompt, "describe");
  ok(out.image!.startsWith("iVBORw0KGgo") && out.image!.endsWith("chars]"));
  const match = /…\[truncated (\d+) chars\]$/.exec(out.image!)!;
  equal(out.image!.length - match[0].length + Number(match[1]), image.length);
});

test("long arrays and objects are cut with a count of what was cut", () => {
  const embedding = Array.from({ length: 50_000 }, () => 0.0123456789);
  const chunks = Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`chunk_${i}`, i]));
  const out = redact({ embedding, chunks }, 2048) as Record<string, any>;
  ok(utf8(out) <= 2048, `${utf8(out)} bytes`);
  const kept: unknown[] = out.embedding;
  equal(kept[0], 0.0123456789);
  equal(kept[kept.length - 1], `…[${50_000 - (kept.length - 1)} more items]`);
  equal(out.chunks.chunk_0, 0);
  equal(out.chunks._truncated_keys, 10_000 - (Object.keys(out.chunks).length - 1));
});

test("what cannot fit at all becomes a size note", () => {
  const out = redact({ a: "x".repeat(1000) }, 60);
  ok(utf8(out) <= 60, JSON.stringify(out));
});

test("lone surrogates become U+FFFD, so the JSON is valid UTF-8", () => {
  deepEqual(redact({ text: "broken \ud800 pair" }), { text: "broken \ufffd pair" });
});
