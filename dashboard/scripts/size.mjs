// Prints each built file's size and gzipped size, and fails past the budget (400 kB gzipped).
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { gzipSync } from "node:zlib";

const root = new URL("../../ailedger/api/dashboard/", import.meta.url).pathname;
const BUDGET = 400 * 1024;
const files = [];
const walk = (dir) => {
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path);
    else files.push(path);
  }
};
walk(root);
let total = 0;
for (const path of files) {
  const bytes = readFileSync(path);
  const gz = gzipSync(bytes, { level: 9 }).length;
  total += gz;
  console.log(`${relative(root, path).padEnd(24)} ${(bytes.length / 1024).toFixed(1).padStart(8)} kB  ${(gz / 1024).toFixed(1).padStart(7)} kB gzipped`);
}
console.log(`total ${(total / 1024).toFixed(1)} kB gzipped (budget ${BUDGET / 1024} kB)`);
if (total > BUDGET) {
  console.error("over the bundle budget");
  process.exit(1);
}
