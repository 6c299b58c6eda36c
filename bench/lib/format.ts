// Text output helpers shared by the benchmark orchestrators.

/** A number with `d` decimals, or "-" for undefined/NaN. */
export const f = (x: number | undefined, d = 1): string =>
  x === undefined || Number.isNaN(x) ? "-" : x.toFixed(d);

/** A fixed-width table: the first `leftColumns` columns left-aligned, the rest right-aligned. */
export function renderTable(head: string[], rows: string[][], leftColumns: number): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i < leftColumns ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ");
  return [line(head), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}
