import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { ERRORS } from "../../src/api/errors.ts";
import { configHelp } from "../../src/config.ts";

const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");

test("README's error table matches the error registry", () => {
  for (const [code, { status, description }] of Object.entries(ERRORS)) {
    assert.ok(readme.includes(`| \`${code}\` | ${status} | ${description} |`), `README row for ${code}`);
  }
  const documented = [...readme.matchAll(/^\| `([a-z_]+)` \| \d+ \|/gm)].map((m) => m[1]);
  assert.deepEqual(documented.sort(), Object.keys(ERRORS).sort(), "no stale rows");
});

test("README's configuration table is the one `patchbay --help` prints", () => {
  assert.ok(
    readme.includes(configHelp("markdown").trim()),
    "regenerate the table from configHelp('markdown')",
  );
});
