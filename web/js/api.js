// The HTTP API as the console uses it: every failure becomes an ApiError carrying the server's errorCode and
// errorDescription, and is handed to `onError` as it happens (unless the caller asked for `quiet`).

export class ApiError extends Error {
  /**
   * @param {{status: number, errorCode: string, errorDescription: string, method: string, path: string,
   *   items?: {errorCode: string, errorDescription?: string, trackName?: string, adapterId?: string}[]}} info
   */
  constructor(info) {
    super(`${info.errorCode}: ${info.errorDescription}`);
    this.name = "ApiError";
    this.status = info.status;
    this.errorCode = info.errorCode;
    this.errorDescription = info.errorDescription;
    this.method = info.method;
    this.path = info.path;
    this.items = info.items ?? [];
    /** Set once shown to the user, so a caller that catches it does not show it twice. */
    this.reported = false;
  }
}

/** Per-item failures of a batch answer (tracks/new, tracks/close, adapters/websocket/new|close). */
export function itemErrors(body) {
  const tracks = body && typeof body === "object" && Array.isArray(body.tracks) ? body.tracks : [];
  return tracks.filter((t) => t && typeof t === "object" && typeof t.errorCode === "string");
}

export class Api {
  /**
   * @param {{appId: string, secret: string}} creds
   * @param {{onError?: (err: ApiError) => void}} [hooks]
   */
  constructor(creds, hooks = {}) {
    this.appId = creds.appId;
    this.secret = creds.secret;
    this.base = `${location.origin}/v1/apps/${encodeURIComponent(creds.appId)}`;
    this.onError = hooks.onError ?? (() => {});
  }

  /**
   * One API call. Resolves with the JSON body on a 2xx answer (a 200 batch answer may still hold failed items:
   * they are reported through onError as item errors, and returned to the caller as they are). Rejects with
   * an ApiError otherwise.
   * @param {"GET"|"POST"|"PUT"} method
   * @param {string} path relative to /v1/apps/{appId}/
   * @param {unknown} [body]
   * @param {{quiet?: boolean, explain?: (item: {errorCode: string, errorDescription?: string}, index: number)
   *   => string | undefined}} [opts] quiet: do not report (the caller shows the outcome itself); explain: what
   *   a per-item failure (`tracks[i]`) means, appended to its errorDescription before it is shown
   */
  async call(method, path, body, opts = {}) {
    const fail = (info) => {
      const err = new ApiError({ method, path, ...info });
      if (!opts.quiet) {
        err.reported = true;
        this.onError(err);
      }
      return err;
    };
    let res;
    try {
      res = await fetch(`${this.base}/${path}`, {
        method,
        headers: {
          Authorization: `Bearer ${this.secret}`,
          ...(body === undefined ? {} : { "Content-Type": "application/json" }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
      });
    } catch (err) {
      throw fail({
        status: 0,
        errorCode: "network_error",
        errorDescription: `the server did not answer (${err instanceof Error ? err.message : String(err)})`,
      });
    }
    const text = await res.text();
    let json;
    try {
      json = text ? JSON.parse(text) : {};
    } catch {
      json = undefined;
    }
    if (opts.explain && Array.isArray(json?.tracks))
      json.tracks.forEach((t, i) => {
        if (!t || typeof t !== "object" || typeof t.errorCode !== "string") return;
        const extra = opts.explain?.(t, i);
        if (extra) t.errorDescription = t.errorDescription ? `${t.errorDescription} — ${extra}` : extra;
      });
    if (!res.ok) {
      const items = itemErrors(json);
      const errorCode =
        typeof json?.errorCode === "string" ? json.errorCode : (items[0]?.errorCode ?? `http_${res.status}`);
      const errorDescription =
        typeof json?.errorDescription === "string"
          ? json.errorDescription
          : items.length > 0
            ? items.map((i) => i.errorDescription ?? i.errorCode).join("; ")
            : text.slice(0, 300) || res.statusText;
      if (items.length > 1 && !opts.quiet) {
        // Every item failed (HTTP 503): show each one with its own code, throw one error for the call.
        this.#reportItems(method, path, res.status, items);
        const err = new ApiError({ method, path, status: res.status, errorCode, errorDescription, items });
        err.reported = true;
        throw err;
      }
      throw fail({ status: res.status, errorCode, errorDescription, items });
    }
    if (json === undefined)
      throw fail({
        status: res.status,
        errorCode: "invalid_response",
        errorDescription: `the answer is not JSON: ${text.slice(0, 120)}`,
      });
    // HTTP 200 with per-item failures: each one is an error the user should see.
    if (!opts.quiet) this.#reportItems(method, path, res.status, itemErrors(json));
    return json;
  }

  #reportItems(method, path, status, items) {
    for (const item of items) {
      const err = new ApiError({
        method,
        path,
        status,
        errorCode: item.errorCode,
        errorDescription: item.errorDescription ?? "",
        items: [item],
      });
      err.reported = true;
      this.onError(err);
    }
  }
}
