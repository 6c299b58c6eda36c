// Every installed package supports the Node versions package.json declares (issue 10 item 9): `npm ci` on
// Node 20 printed EBADENGINE for content-disposition@3 and cookie@2 (Node ≥ 22, ESM only: on Node < 20.19,
// without require(esm), @fastify/static and light-my-request could not even load them).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

const read = (file: string) => JSON.parse(readFileSync(new URL(`../../${file}`, import.meta.url), "utf8"));

type Version = [number, number, number];

function parse(v: string): { version: Version; parts: number } {
  const m = /^v?(\d+)(?:\.(\d+|x|\*))?(?:\.(\d+|x|\*))?$/.exec(v);
  if (!m) throw new Error(`cannot read version ${JSON.stringify(v)}`);
  const nums = [m[1], m[2], m[3]].filter((p) => p !== undefined && p !== "x" && p !== "*");
  return { version: [0, 1, 2].map((i) => Number(nums[i] ?? 0)) as Version, parts: nums.length };
}

function cmp(a: Version, b: Version): number {
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}

/** The subset of semver ranges that engines fields use: `||`, `*`, >=, >, <=, <, ^, ~ and partial versions. */
function satisfies(v: Version, range: string): boolean {
  return range.split("||").some((set) => {
    const comparators = set
      .replace(/(>=|<=|>|<|\^|~)\s+/g, "$1")
      .trim()
      .split(/\s+/);
    return comparators.every((c) => {
      if (c === "*" || c === "") return true;
      const op = /^(>=|<=|>|<|\^|~|=)?(.*)$/.exec(c)!;
      const { version: w, parts } = parse(op[2]);
      const d = cmp(v, w);
      switch (op[1]) {
        case ">=":
          return d >= 0;
        case ">":
          return d > 0;
        case "<=":
          return d <= 0;
        case "<":
          return d < 0;
        case "^":
          return d >= 0 && (w[0] > 0 ? v[0] === w[0] : v[0] === 0 && v[1] === w[1]);
        case "~":
          return d >= 0 && v[0] === w[0] && (parts < 2 || v[1] === w[1]);
        default: // exact, or a partial version (20 = 20.x.x)
          return v[0] === w[0] && (parts < 2 || v[1] === w[1]) && (parts < 3 || v[2] === w[2]);
      }
    });
  });
}

test("the lockfile holds no package whose engines exclude our lowest supported Node", () => {
  const pkg = read("package.json");
  const lock = read("package-lock.json") as {
    packages: Record<string, { version?: string; engines?: { node?: string } }>;
  };
  const declared = /^>=\s*(\S+)$/.exec(pkg.engines.node);
  assert.ok(declared, `package.json engines.node is ">=x.y": ${pkg.engines.node}`);
  const lowest = parse(declared[1]).version;
  const bad = Object.entries(lock.packages)
    .filter(([path, p]) => path !== "" && p.engines?.node && !satisfies(lowest, p.engines.node))
    .map(
      ([path, p]) => `${path.replace(/^.*node_modules\//, "")}@${p.version} needs node ${p.engines!.node}`,
    );
  assert.deepEqual(bad, [], `Node ${lowest.join(".")} (package.json engines ${pkg.engines.node})`);
});

test("the range check itself", () => {
  const v: Version = [20, 11, 0];
  for (const ok of [">=18", ">= 10.x", "18 || 20 || >=22", "^16 || ^18 || >=20", "*", ">=16 || 14 >=14.17"])
    assert.ok(satisfies(v, ok), ok);
  for (const no of [">=22", ">=20.12", "^18", "18 || >=22", "~20.10"]) assert.ok(!satisfies(v, no), no);
});
