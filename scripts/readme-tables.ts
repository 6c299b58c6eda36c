// Regenerates README's configuration and error tables from their sources of truth
// (`configHelp("markdown")` and the error registry). test/unit/readme.test.ts fails when they drift.
import { readFileSync, writeFileSync } from "node:fs";
import { ERRORS } from "../src/api/errors.ts";
import { configHelp } from "../src/config.ts";

const file = new URL("../README.md", import.meta.url);
let readme = readFileSync(file, "utf8");

function replace(name: string, body: string): void {
  const re = new RegExp(`(<!-- ${name}:start -->\\n)[\\s\\S]*?(\\n<!-- ${name}:end -->)`);
  if (!re.test(readme)) throw new Error(`README has no ${name} markers`);
  readme = readme.replace(re, `$1${body}$2`);
}

replace("config-table", configHelp("markdown").trim());
replace(
  "error-table",
  [
    "| errorCode | HTTP status | Meaning |",
    "|---|---|---|",
    ...Object.entries(ERRORS).map(([code, e]) => `| \`${code}\` | ${e.status} | ${e.description} |`),
  ].join("\n"),
);
writeFileSync(file, readme);
