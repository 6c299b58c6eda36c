/**
 * Which simulcast layer one subscriber gets, from its preferences (Cloudflare's `simulcast` object on a
 * pull) and which layers the publisher is sending now. Pure.
 *
 * - No `preferredRid` (or ""): the server chooses: the first active layer in ASCII order of the rids
 *   (Cloudflare's convention: "a" is the highest quality; Chromium's f/h/q sort the same way).
 * - `preferredRid` active: that layer.
 * - `preferredRid` not active: `ridNotAvailable: "none"` forwards nothing until it comes back;
 *   `"asciibetical"` takes the next active layer after it in ASCII order of the rids, wrapping around.
 * - `priorityOrdering` is about stepping down when bandwidth is short; Patchbay does not estimate
 *   subscribers' bandwidth yet, so it has no effect (documented in README).
 */
export interface LayerPreferenceInput {
  preferredRid?: string;
  priorityOrdering: "none" | "asciibetical";
  ridNotAvailable: "none" | "asciibetical";
}

function ascii(rids: readonly string[]): number[] {
  return rids.map((_, i) => i).sort((a, b) => (rids[a] < rids[b] ? -1 : rids[a] > rids[b] ? 1 : 0));
}

export function selectLayer(
  rids: readonly string[],
  active: readonly boolean[],
  pref: LayerPreferenceInput,
): number | undefined {
  if (rids.length === 0) return active[0] ? 0 : undefined;
  const preferred = pref.preferredRid === undefined ? -1 : rids.indexOf(pref.preferredRid);
  if (preferred >= 0) {
    if (active[preferred]) return preferred;
    if (pref.ridNotAvailable === "none") return undefined;
    const order = ascii(rids);
    const at = order.indexOf(preferred);
    for (let k = 1; k < order.length; k++) {
      const candidate = order[(at + k) % order.length];
      if (active[candidate]) return candidate;
    }
    return undefined;
  }
  return ascii(rids).find((i) => active[i]);
}
